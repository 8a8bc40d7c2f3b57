//! Connection limits: a cap on open connections in all and per peer IP,
//! enforced when a connection is accepted (before TLS or HTTP), and the same
//! counting for WebSocket streams. A client that opens connections without
//! end runs into its own per-IP cap long before the server's total, so it
//! cannot stop others from being served.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Open connections (or streams), in all and per peer IP, against their caps.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server holds its maximum of connections.
    Total(usize),
    /// This peer IP holds its maximum.
    PerIp(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Total(n) => write!(f, "the server holds its maximum of {n} open connections"),
            Refused::PerIp(n) => write!(f, "this address holds its maximum of {n} open connections"),
        }
    }
}

impl ConnLimits {
    /// Caps of `max_total` in all and `max_per_ip` per peer IP (each at least 1).
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnLimits { max_total: max_total.max(1), max_per_ip: max_per_ip.max(1), open: Mutex::default() })
    }

    /// Counts one more connection from `ip`, or refuses it. The connection is
    /// counted until the guard is dropped.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refused> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refused::Total(self.max_total));
        }
        let of_ip = open.per_ip.entry(ip).or_insert(0);
        if *of_ip >= self.max_per_ip {
            return Err(Refused::PerIp(self.max_per_ip));
        }
        *of_ip += 1;
        open.total += 1;
        Ok(ConnGuard { limits: Arc::clone(self), ip })
    }

    /// Open connections now, in all.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total
    }
}

/// One counted connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// The acceptor that counts every TCP connection against [`ConnLimits`]
/// (and sets `TCP_NODELAY`). A refused connection is closed at once, before
/// any TLS or HTTP work.
#[derive(Debug, Clone)]
pub struct LimitAcceptor {
    limits: Arc<ConnLimits>,
}

impl LimitAcceptor {
    /// An acceptor counting against `limits`.
    pub fn new(limits: Arc<ConnLimits>) -> Self {
        LimitAcceptor { limits }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Counted<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = (|| {
            let peer = stream.peer_addr()?;
            let guard = self.limits.try_open(peer.ip()).map_err(|why| {
                tracing::debug!(peer = %peer, %why, "connection refused");
                io::Error::other(why.to_string())
            })?;
            stream.set_nodelay(true)?;
            Ok((Counted { inner: stream, _guard: guard }, service))
        })();
        ready(accepted)
    }
}

/// A stream that holds its connection's slot while it is open.
#[derive(Debug)]
pub struct Counted<T> {
    inner: T,
    _guard: ConnGuard,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The default cap on open connections: the process's soft limit on open
/// files, less a reserve for the store, blobs and logs (at least 16).
pub fn default_max_connections() -> usize {
    const RESERVE: u64 = 64;
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(65_536);
    usize::try_from(soft.saturating_sub(RESERVE).max(16)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_in_all_and_slots_come_back() {
        let limits = ConnLimits::new(3, 2);
        let (a, b, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let a1 = limits.try_open(a).unwrap();
        let _a2 = limits.try_open(a).unwrap();
        assert_eq!(limits.try_open(a).unwrap_err(), Refused::PerIp(2));
        let _b1 = limits.try_open(b).unwrap();
        assert_eq!(limits.try_open(c).unwrap_err(), Refused::Total(3));
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _c1 = limits.try_open(c).unwrap();
        assert_eq!(limits.try_open(a).unwrap_err(), Refused::Total(3));
    }

    #[test]
    fn the_default_leaves_room_for_files() {
        assert!(default_max_connections() >= 16);
    }
}
