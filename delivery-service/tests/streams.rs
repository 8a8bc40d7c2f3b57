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
    // The stream ends when its token expires (checked before every batch).
    ds.ds.auth.expire_all_tokens_for_tests();
    let mut alice = alice;
    alice.login().await;
    assert_eq!(alice.send_text(&mut ag, &gid, "third").await.status, 201);
    match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4401);
            assert_eq!(frame.reason.as_str(), "token_expired");
        }
        other => panic!("expected a 4401 close, got {other:?}"),
    }
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_fetch_and_binary_stream_carry_the_same_entries_as_json() {
    use tls_codec::Deserialize as _;
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let (mut ag, gid) = alice.create_group().await;
    for text in ["one", "two", "three"] {
        assert_eq!(alice.send_text(&mut ag, &gid, text).await.status, 201);
    }
    let json = alice.fetch(&gid, 0).await.json();
    let r =
        send(alice.get(&format!("/v1/groups/{gid}/messages?after=0")).header("accept", grove_ds::api::MEDIA_MESSAGES))
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get("content-type").unwrap(), grove_ds::api::MEDIA_MESSAGES);
    let page = grove_ds::api::MessagesPageBody::tls_deserialize_exact(&r.body).unwrap();
    assert_eq!(page.last_seq, json["last_seq"].as_u64().unwrap());
    assert_eq!(page.removed_at, 0);
    let json_msgs = json["messages"].as_array().unwrap();
    assert_eq!(page.messages.len(), 3);
    for (b, j) in page.messages.iter().zip(json_msgs) {
        assert_eq!(b.seq, j["seq"].as_u64().unwrap());
        assert_eq!(b.kind, 3);
        assert_eq!(b.message.as_slice(), unb64(j["message"].as_str().unwrap()).as_slice());
    }

    // The stream in binary form: one frame per batch.
    let mut req = format!("ws://{}/v1/groups/{gid}/ws?after=1&format=binary", ds.addr).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", alice.token).parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next()).await.unwrap();
    let Some(Ok(Message::Binary(bytes))) = frame else { panic!("expected a binary frame, got {frame:?}") };
    let batch = grove_ds::api::MessagesPageBody::tls_deserialize_exact(&bytes).unwrap();
    assert_eq!(batch.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
    // An unknown format is refused before the upgrade.
    let mut req = format!("ws://{}/v1/groups/{gid}/ws?format=xml", ds.addr).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", alice.token).parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 400),
        other => panic!("unknown format must be refused: {other:?}"),
    }
    drop(socket);
    ds.shutdown().await.unwrap();
}

/// A client may not push large messages into a stream (it only ever needs
/// pings and a close): a 100 KiB frame ends the stream, and the DS keeps
/// serving streams to others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_refuses_large_incoming_frames() {
    use futures_util::SinkExt as _;
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.send_text(&mut ag, &gid, "first").await.status, 201);
    let connect = || async {
        let mut req = format!("ws://{}/v1/groups/{gid}/ws?after=0", ds.addr).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {}", alice.token).parse().unwrap());
        tokio_tungstenite::connect_async(req).await.expect("websocket connects").0
    };
    let wait = std::time::Duration::from_secs(5);
    let mut socket = connect().await;
    assert!(matches!(tokio::time::timeout(wait, socket.next()).await.unwrap(), Some(Ok(Message::Text(_)))));
    // A ping is fine: the stream goes on.
    socket.send(Message::Ping(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(alice.send_text(&mut ag, &gid, "second").await.status, 201);
    let mut got_second = false;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(wait, socket.next()).await {
        if matches!(m, Message::Text(_)) {
            got_second = true;
            break;
        }
    }
    assert!(got_second, "the stream carries on after a ping");
    let _ = socket.send(Message::Text("x".repeat(100 * 1024).into())).await;
    let ended = loop {
        match tokio::time::timeout(wait, socket.next()).await.expect("the DS ends the stream, it does not hang") {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break true,
            Some(Ok(_)) => {}
        }
    };
    assert!(ended);
    let mut other = connect().await;
    assert!(matches!(tokio::time::timeout(wait, other.next()).await.unwrap(), Some(Ok(Message::Text(_)))));
    ds.shutdown().await.unwrap();
}
