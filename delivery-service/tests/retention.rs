//! Retention: entries go once every member (and every removed member, up to its
//! removal) has acknowledged them; sequence numbers keep counting.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_are_deleted_but_removed_members_keep_their_range() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let bob = Peer::join(&url, "bob", suite).await;
    let carol = Peer::join(&url, "carol", suite).await;
    bob.upload_key_packages(1, false).await;
    carol.upload_key_packages(1, false).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.add(&mut ag, &gid, &["bob", "carol"]).await.status, 201); // seq 1
    let mut bg = bob.accept_welcome(&gid).await;
    for i in 0..3 {
        assert_eq!(alice.send_text(&mut ag, &gid, &format!("m{i}")).await.status, 201);
        // seq 2..4
    }
    let removal = alice.remove(&mut ag, &gid, &["carol"]).await; // seq 5
    assert_eq!(removal.status, 201);
    let removal_seq = removal.json()["seq"].as_u64().unwrap();
    assert_eq!(alice.send_text(&mut ag, &gid, "after").await.status, 201); // seq 6
    let mut bc = 1;
    bob.sync(&mut bg, &gid, &mut bc).await;
    let ack =
        |p: &Peer, seq: u64| send(p.post(&format!("/v1/groups/{gid}/ack")).json(&serde_json::json!({"seq": seq})));
    assert_eq!(ack(&alice, 6).await.status, 204);
    assert_eq!(ack(&bob, 6).await.status, 204);

    // Carol (removed, cursor still at her join) holds retention back.
    assert_eq!(ds.ds.run_retention().await.unwrap(), 1, "only the add commit, which carol's join covers, goes");
    let first = |r: Resp| r.json()["messages"][0]["seq"].as_u64();
    assert_eq!(first(carol.fetch(&gid, 0).await), Some(2));

    // Once carol acknowledged her removal, everything acknowledged goes.
    assert_eq!(ack(&carol, removal_seq).await.status, 204);
    assert_eq!(ds.ds.run_retention().await.unwrap(), 5);
    assert!(bob.fetch(&gid, 0).await.json()["messages"].as_array().unwrap().is_empty());
    // Sequence numbers keep counting, across a restart too.
    ds.shutdown().await.unwrap();
    let ds = start(dir.path()).await;
    let mut alice = alice;
    alice.base = ds.url();
    alice.login().await;
    let r = alice.send_text(&mut ag, &gid, "later").await;
    assert_eq!(r.json()["seq"], 7);
    ds.shutdown().await.unwrap();
}
