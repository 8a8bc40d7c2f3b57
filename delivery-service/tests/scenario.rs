//! End to end over a real in-process DS with real openmls clients: register,
//! key packages, group creation, adds with Welcomes, messages, removal.

mod common;

use common::*;
use openmls::prelude::*;
use tls_codec::Deserialize as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_group_lifecycle_every_suite() {
    for suite in SUITES {
        let dir = tempfile::tempdir().unwrap();
        let ds = start(dir.path()).await;
        let url = ds.url();
        let alice = Peer::join(&url, "alice", suite).await;
        let bob = Peer::join(&url, "bob", suite).await;
        let carol = Peer::join(&url, "carol", suite).await;
        for m in [&bob, &carol] {
            let r = m.upload_key_packages(3, true).await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.json()["one_time"], 3);
            assert_eq!(r.json()["last_resort"], true);
        }

        let (mut ag, gid) = alice.create_group().await;
        let r = alice.add(&mut ag, &gid, &["bob", "carol"]).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["seq"], 1);
        assert_eq!(r.json()["epoch"], 1);

        // Both new members got the Welcome and join at epoch 1.
        let mut bg = bob.accept_welcome(&gid).await;
        let mut cg = carol.accept_welcome(&gid).await;
        assert_eq!(bg.epoch().as_u64(), 1);
        assert_eq!(cg.epoch().as_u64(), 1);
        assert_eq!(bg.epoch_authenticator().as_slice(), ag.epoch_authenticator().as_slice());

        // The roster the DS sees.
        let info = send(bob.get(&format!("/v1/groups/{gid}"))).await.json();
        let names: Vec<&str> =
            info["members"].as_array().unwrap().iter().map(|m| m["user"].as_str().unwrap()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);

        // Application messages in both directions.
        let (mut ac, mut bc, mut cc) = (1u64, 1u64, 1u64);
        assert_eq!(alice.send_text(&mut ag, &gid, "hello from alice").await.status, 201);
        assert_eq!(bob.send_text(&mut bg, &gid, "hello from bob").await.status, 201);
        assert_eq!(bob.sync(&mut bg, &gid, &mut bc).await, ["hello from alice"]);
        assert_eq!(carol.sync(&mut cg, &gid, &mut cc).await, ["hello from alice", "hello from bob"]);
        assert_eq!(alice.sync(&mut ag, &gid, &mut ac).await, ["hello from bob"]);

        // Remove carol; she may fetch up to and including the removing commit.
        let r = alice.remove(&mut ag, &gid, &["carol"]).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let removal_seq = r.json()["seq"].as_u64().unwrap();
        bob.sync(&mut bg, &gid, &mut bc).await;
        assert_eq!(bg.epoch(), ag.epoch());

        let secret = alice.app_bytes(&mut ag, b"after carol left");
        assert_eq!(alice.post_raw(&gid, secret.clone()).await.status, 201);
        assert_eq!(bob.sync(&mut bg, &gid, &mut bc).await, ["after carol left"]);

        // Carol: the log stops at her removal; she learns she was removed.
        let page = carol.fetch(&gid, cc).await;
        assert_eq!(page.status, 200);
        let page = page.json();
        assert_eq!(page["removed_at"], removal_seq);
        let seqs: Vec<u64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs.last().copied(), Some(removal_seq), "carol sees exactly up to her removal");
        carol.sync(&mut cg, &gid, &mut cc).await;
        assert!(!cg.is_active(), "carol's group must know she was removed");
        // Nothing after the removal is served to her ...
        let after = carol.fetch(&gid, removal_seq).await;
        assert_eq!(after.status, 200);
        assert!(after.json()["messages"].as_array().unwrap().is_empty());
        // ... she cannot post ...
        let r = carol.post_raw(&gid, b"\x00\x01garbage".to_vec()).await;
        assert!(r.status == 400 || r.status == 403);
        // ... and even with the ciphertext in hand she cannot decrypt it.
        let msg = MlsMessageIn::tls_deserialize_exact(&secret).unwrap().try_into_protocol_message().unwrap();
        assert!(cg.process_message(&carol.provider, msg).is_err(), "a removed member must not decrypt later messages");
        // And the roster is refused to her.
        assert_eq!(send(carol.get(&format!("/v1/groups/{gid}"))).await.code(), "not_a_member");

        // A stranger cannot read the group at all.
        let eve = Peer::join(&url, "eve", suite).await;
        let r = eve.fetch(&gid, 0).await;
        assert_eq!((r.status, r.code().as_str()), (403, "not_a_member"));
        let r = eve.send_text(&mut ag, &gid, "eve pretends").await;
        assert_eq!((r.status, r.code().as_str()), (403, "not_a_member"));
        ds.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_joiner_cannot_read_earlier_messages() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let dave = Peer::join(&url, "dave", suite).await;
    dave.upload_key_packages(1, false).await;
    let (mut ag, gid) = alice.create_group().await;
    let early = alice.app_bytes(&mut ag, b"before dave");
    assert_eq!(alice.post_raw(&gid, early.clone()).await.status, 201);
    assert_eq!(alice.add(&mut ag, &gid, &["dave"]).await.status, 201);
    let mut dg = dave.accept_welcome(&gid).await;
    let msg = MlsMessageIn::tls_deserialize_exact(&early).unwrap().try_into_protocol_message().unwrap();
    assert!(dg.process_message(&dave.provider, msg).is_err(), "a later joiner must not decrypt earlier messages");
    ds.shutdown().await.unwrap();
}
