//! Connection limits and timeouts: a slow or idle connection is closed after
//! the header-read timeout, one address cannot hold more than its share of
//! connections (so `/v1/health` still answers for everyone else), a declared
//! body over the limit gets 413 before any of it is sent, and WebSocket
//! streams are capped per address.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is
/// all loopback on Linux, so each address is another "client").
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Waits up to `within` for the server to close `conn`; returns how long it took.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(start.elapsed()), conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue, // a response (e.g. 408) before the close
        }
    }
}

/// `GET /v1/health` over a fresh connection from `from`; the status line.
async fn health_from(from: &str, to: SocketAddr) -> String {
    let mut c = connect_from(from, to).await;
    c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: grove\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_with(dir.path(), |c| c.header_read_timeout_secs = 1).await;
    // Half a request line, then nothing: closed after about a second.
    let mut slow = connect_from("127.0.0.1", ds.addr).await;
    slow.write_all(b"GET /v1/heal").await.unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(5)).await.expect("a partial request is cut off");
    assert!(took >= Duration::from_millis(900), "not before the timeout: {took:?}");
    // One header every 400 ms never completes the request within the timeout.
    let mut drip = connect_from("127.0.0.1", ds.addr).await;
    drip.write_all(b"GET /v1/health HTTP/1.1\r\n").await.unwrap();
    let start = Instant::now();
    let mut cut = false;
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if drip.write_all(format!("X-Drip-{i}: 1\r\n").as_bytes()).await.is_err() {
            cut = true;
            break;
        }
    }
    cut = cut || closed_within(&mut drip, Duration::from_secs(1)).await.is_some();
    assert!(cut && start.elapsed() < Duration::from_secs(4), "a dripping client is cut off: {:?}", start.elapsed());
    // An idle keep-alive connection is closed too, after its last request.
    let mut idle = connect_from("127.0.0.1", ds.addr).await;
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: grove\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await.is_some(), "an idle connection is closed");
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_with(dir.path(), |c| {
        c.max_connections = Some(6);
        c.max_connections_per_ip = Some(3);
        c.header_read_timeout_secs = 60; // held connections stay open for the test
    })
    .await;
    // One client holds its maximum of idle connections ...
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", ds.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ... its next one is closed at once ...
    let mut extra = connect_from("127.0.0.2", ds.addr).await;
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await.is_some(), "over the per-address cap");
    // ... and everyone else is still served.
    assert_eq!(health_from("127.0.0.3", ds.addr).await, "HTTP/1.1 200 OK");
    // A second address takes the rest of the total: then nobody new gets in,
    // until a connection closes.
    for _ in 0..3 {
        held.push(connect_from("127.0.0.4", ds.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over_total = connect_from("127.0.0.5", ds.addr).await;
    assert!(closed_within(&mut over_total, Duration::from_secs(2)).await.is_some(), "over the total cap");
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(health_from("127.0.0.5", ds.addr).await, "HTTP/1.1 200 OK", "a freed slot is reused");
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversized_body_is_refused_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let alice = Peer::join(&ds.url(), "alice", SUITES[0]).await;
    let (_g, gid) = alice.create_group().await;
    for path in [format!("/v1/groups/{gid}/messages"), format!("/v1/groups/{gid}/blobs"), "/v1/users".to_owned()] {
        let mut c = connect_from("127.0.0.1", ds.addr).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: grove\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 99999999999\r\n\r\n",
            alice.token
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer without the body"))
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
    }
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_are_capped_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_with(dir.path(), |c| c.max_streams_per_ip = Some(2)).await;
    let alice = Peer::join(&ds.url(), "alice", SUITES[0]).await;
    let (_g, gid) = alice.create_group().await;
    let request = || {
        let mut req = format!("ws://{}/v1/groups/{gid}/ws?after=0", ds.addr).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {}", alice.token).parse().unwrap());
        req
    };
    let (first, _) = tokio_tungstenite::connect_async(request()).await.expect("first stream");
    let (_second, _) = tokio_tungstenite::connect_async(request()).await.expect("second stream");
    match tokio_tungstenite::connect_async(request()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("too_many_streams"), "{body}");
        }
        other => panic!("a third stream from one address must be refused: {other:?}"),
    }
    // Closing one frees its slot.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(request()).await {
            Ok((mut s, _)) => {
                let _ = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "the slot never came back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ds.shutdown().await.unwrap();
}
