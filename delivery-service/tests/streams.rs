//! The WebSocket stream of a group's log.

mod common;

use common::*;
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_new_messages_and_refuses_strangers() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let eve = Peer::join(&url, "eve", suite).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.send_text(&mut ag, &gid, "first").await.status, 201);

    let ws_url = format!("ws://{}/v1/groups/{gid}/ws?after=0", ds.addr);
    let mut req = ws_url.clone().into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", alice.token).parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    let next = |m: Option<Result<Message, _>>| -> serde_json::Value {
        match m {
            Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    };
    // The backlog first ...
    let m = next(tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.unwrap());
    assert_eq!((m["seq"].as_u64(), m["kind"].as_str()), (Some(1), Some("application")));
    // ... then new messages as they are accepted.
    assert_eq!(alice.send_text(&mut ag, &gid, "second").await.status, 201);
    let m = next(tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.unwrap());
    assert_eq!(m["seq"].as_u64(), Some(2));

    // A non-member is refused before the upgrade, with the JSON error.
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", eve.token).parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 403),
        other => panic!("a stranger must not get a stream: {other:?}"),
    }
    drop(socket);
    ds.shutdown().await.unwrap();
}
