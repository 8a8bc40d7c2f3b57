//! Serving: `run(listener, ds, tls, shutdown)`. The caller binds the listener and
//! passes a shutdown future (ctrl-c/SIGTERM in production, a oneshot in tests).
//! On shutdown `run` stops accepting, wakes long-polls and streams, lets open
//! requests finish (up to the grace period), flushes storage and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::{Config, ConnCaps};
use crate::conn::{ConnLimits, LimitAcceptor};
use crate::ds::Ds;
use crate::http::HttpOptions;

/// HTTP/1 header-read timeout (hyper also applies it to an idle keep-alive
/// connection waiting for its next request); it needs hyper's Tokio timer.
fn set_timeouts(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header: Duration,
) {
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header);
}

/// Installs the process-wide rustls crypto provider (ring). Safe to call more
/// than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads a PEM certificate chain and key into a rustls server config.
pub async fn tls_from_pem(cert: &Path, key: &Path) -> anyhow::Result<RustlsConfig> {
    install_crypto_provider();
    RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))
}

/// Generates (once) a self-signed certificate for `localhost`/127.0.0.1 in
/// `dir` and returns the rustls config and the certificate's SHA-256 fingerprint.
pub async fn dev_tls(dir: &Path) -> anyhow::Result<(RustlsConfig, String)> {
    use sha2::Digest as _;
    install_crypto_provider();
    let cert_path = dir.join("dev-tls-cert.pem");
    let key_path = dir.join("dev-tls-key.pem");
    if !cert_path.exists() || !key_path.exists() {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let ck = rcgen::generate_simple_self_signed(names).context("generating the dev TLS certificate")?;
        std::fs::write(&cert_path, ck.cert.pem()).context("writing the dev TLS certificate")?;
        write_private(&key_path, ck.key_pair.serialize_pem().as_bytes()).context("writing the dev TLS key")?;
    }
    let pem = std::fs::read(&cert_path)?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .context("the dev TLS certificate file holds no certificate")??;
    let fp = hex::encode(sha2::Sha256::digest(der.as_ref()));
    Ok((tls_from_pem(&cert_path, &key_path).await?, fp))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// How the server serves: body and connection limits, timeouts, periods.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest request body outside blob uploads.
    pub max_body_bytes: usize,
    /// How often retention runs.
    pub retention_every: Duration,
    /// How long graceful shutdown waits for open requests.
    pub grace: Duration,
    /// How long a client may take to send a request's headers (and how long
    /// an idle keep-alive connection stays open).
    pub header_read_timeout: Duration,
    /// Caps on open connections and streams.
    pub caps: ConnCaps,
}

impl ServeOptions {
    /// The options `config` asks for.
    pub fn from_config(config: &Config) -> Self {
        ServeOptions {
            max_body_bytes: config.max_body_bytes,
            retention_every: Duration::from_secs(config.retention_interval_secs),
            grace: Duration::from_secs(config.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            caps: config.conn_caps(),
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then drains and
/// flushes. Retention runs every `retention_every`. The connection limits and
/// timeouts are the defaults of [`Config`]; [`run_with`] takes them all.
pub async fn run(
    listener: std::net::TcpListener,
    ds: Arc<Ds>,
    max_body_bytes: usize,
    tls: Option<RustlsConfig>,
    retention_every: Duration,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let defaults = Config::loopback(std::path::PathBuf::new());
    let opts = ServeOptions { max_body_bytes, retention_every, grace, ..ServeOptions::from_config(&defaults) };
    run_with(listener, ds, tls, opts, shutdown).await
}

/// [`run`] with every option given.
pub async fn run_with(
    listener: std::net::TcpListener,
    ds: Arc<Ds>,
    tls: Option<RustlsConfig>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let http = HttpOptions { max_body_bytes: opts.max_body_bytes, max_streams_per_ip: opts.caps.streams_per_ip };
    let app = crate::http::app(ds.clone(), http).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let (retention_every, grace) = (opts.retention_every, opts.grace);
    let limits = ConnLimits::new(opts.caps.total, opts.caps.per_ip);
    tracing::info!(
        max_connections = opts.caps.total,
        per_ip = opts.caps.per_ip,
        streams_per_ip = opts.caps.streams_per_ip,
        header_read_timeout_s = opts.header_read_timeout.as_secs(),
        "connection limits"
    );

    if let Err(e) = ds.load_gauges().await {
        tracing::warn!(error = %e, "reading the store's gauges failed");
    }
    let retention = {
        let ds = ds.clone();
        let mut stop = ds.shutdown_signal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(retention_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = ds.auth.housekeeping(&**ds.store()).await {
                            tracing::warn!(error = %e, "pruning expired tokens failed");
                        }
                        match ds.run_retention().await {
                            Ok(n) if n > 0 => tracing::info!(deleted = n, "retention"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "retention failed"),
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };

    {
        let handle = handle.clone();
        let ds = ds.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests");
            ds.begin_shutdown();
            handle.graceful_shutdown(Some(grace));
        });
    }

    let acceptor = LimitAcceptor::new(limits);
    let served = match tls {
        Some(cfg) => {
            let tls = axum_server::tls_rustls::RustlsAcceptor::new(cfg).acceptor(acceptor);
            let mut server = axum_server::from_tcp(listener).acceptor(tls).handle(handle);
            set_timeouts(server.http_builder(), opts.header_read_timeout);
            server.serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle);
            set_timeouts(server.http_builder(), opts.header_read_timeout);
            server.serve(app).await
        }
    };
    ds.begin_shutdown();
    let _ = retention.await;
    ds.store().persist().await.context("final flush of the store")?;
    tracing::info!("storage flushed; stopped");
    served.context("serving HTTP")
}
