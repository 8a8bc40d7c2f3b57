//! Key transparency over the real DS: lookup, history and audit proofs
//! verify; registrations and device lists are published, batched into few
//! epochs; the directory and its keys survive a restart; an upgraded data
//! dir's users are published; and a DS that rewrites an old epoch or hides
//! a version fails the checks that must catch it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use grove_ds::api;
use grove_proto::kt::{self, DirectoryValue, KtKeys};

const SUITE: openmls::prelude::Ciphersuite = SUITES[0];

/// A registered, logged-in user with an identity key and a device list.
async fn signed_in(base: &str, name: &str) -> Peer {
    let mut p = Peer::with_identity(base, name, SUITE);
    p.register().await;
    p.login().await;
    p
}

fn value_of(p: &Peer) -> DirectoryValue {
    let id = p.identity.as_ref().unwrap().verifying_key().to_bytes();
    let list = p.devices.as_ref().unwrap();
    DirectoryValue::of(&id, Some((list.version(), &list.encode())))
}

#[tokio::test]
async fn lookups_prove_each_users_key_and_latest_device_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let base = server.url();
    let mut alice = signed_in(&base, "alice").await;
    let bob = {
        let b = signed_in(&base, "bob").await;
        b
    };
    // Right after registering, the lookup waits for the publish.
    let v = kt_verified(&alice, "bob").await;
    assert_eq!(v.value, value_of(&bob));
    assert_eq!(v.version, 1);
    // A new device list is a new version.
    let second = SignatureKeyPairExt::fresh();
    let next = device_list(
        alice.identity.as_ref().unwrap(),
        "alice",
        alice.devices.as_ref(),
        &[alice.signer.public(), &second],
    );
    assert_eq!(alice.publish_devices(&next).await.status, 201);
    alice.devices = Some(next);
    let v = kt_verified(&bob, "alice").await;
    assert_eq!(v.value, value_of(&alice));
    assert_eq!((v.version, v.value.list_version), (2, 2));
    // A proof for another label does not verify as alice's.
    let r = kt_lookup(&bob, "alice").await;
    let l: kt::LookupResponse = serde_json::from_slice(&r.body).unwrap();
    let err = kt::verify_lookup(&kt_keys(&bob).await, &l.head, "bob", &l.proof).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // A head signed by another key does not verify.
    let other = KtKeys { head_key: vec![7; 32], ..kt_keys(&bob).await };
    assert!(kt::verify_lookup(&other, &l.head, "alice", &l.proof).is_err());
    // Nobody unregistered is in the directory.
    let r = kt_lookup(&bob, "nobody").await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_in_directory"));
    // The history holds both of alice's versions, newest first.
    let r = send(bob.get(&api::routes::kt_history(&user_name("alice")))).await;
    let h: kt::HistoryResponse = serde_json::from_slice(&r.body).unwrap();
    let versions = kt::verify_history(&kt_keys(&bob).await, &h.head, "alice", &h.proof).unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(versions[0].value, value_of(&alice));
    // Every epoch so far audits as append-only.
    let latest = server.ds.kt().latest_epoch();
    assert!(latest >= 2, "epochs: {latest}");
    kt_audit(&alice, 0, latest).await.unwrap();
    server.shutdown().await.unwrap();
}

/// A fresh Ed25519 public key (a device key for a list).
struct SignatureKeyPairExt;
impl SignatureKeyPairExt {
    fn fresh() -> Vec<u8> {
        ed25519_dalek::SigningKey::from_bytes(&rand_bytes()).verifying_key().to_bytes().to_vec()
    }
}

#[tokio::test]
async fn a_burst_of_a_thousand_registrations_makes_few_epochs() {
    let dir = tempfile::tempdir().unwrap();
    // The production default: at most one epoch per second.
    let server = start_with(dir.path(), |c| c.kt_epoch_ms = 1000).await;
    let base = server.url();
    let kt = Arc::clone(server.ds.kt());
    let before = kt.epochs_published();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let base = base.clone();
        tasks.spawn(async move {
            let p = Peer::new(&base, &format!("burst{i:04}"), SUITE);
            let r = p.register().await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        });
        if tasks.len() >= 32 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let registered = started.elapsed();
    // Wait until every registration is published.
    let mut last = Peer::join(&base, "watcher", SUITE).await;
    last.login().await;
    for i in [0, 499, 999] {
        let v = kt_verified(&last, &format!("burst{i:04}")).await;
        assert_eq!(v.version, 1);
    }
    let epochs = kt.epochs_published() - before;
    let secs = started.elapsed().as_secs_f64();
    // At most one epoch per second (plus the one a new update may start at once).
    assert!(
        (epochs as f64) <= secs + 2.0,
        "{epochs} epochs for 1,000 registrations in {secs:.1} s (registering took {registered:?})"
    );
    eprintln!("1,000 registrations in {registered:?}: {epochs} directory epochs");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_directory_and_its_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let base = server.url();
    let alice = signed_in(&base, "alice").await;
    let first = kt_verified(&alice, "alice").await;
    let k1 = kt_keys(&alice).await;
    let epoch = server.ds.kt().latest_epoch();
    server.shutdown().await.unwrap();

    let server = start(dir.path()).await;
    let base = server.url();
    let mut alice2 = Peer::with_identity(&base, "alice", SUITE);
    alice2.identity = alice.identity.clone();
    alice2.signer = alice.signer;
    alice2.devices = alice.devices.clone();
    alice2.cwk = alice.cwk;
    alice2.login().await;
    assert_eq!(kt_keys(&alice2).await, k1, "the directory keys changed across a restart");
    assert_eq!(server.ds.kt().latest_epoch(), epoch, "nothing new was published");
    assert_eq!(kt_verified(&alice2, "alice").await, first);
    signed_in(&base, "bob").await;
    kt_verified(&alice2, "bob").await;
    kt_audit(&alice2, 0, server.ds.kt().latest_epoch()).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_users_of_an_upgraded_data_dir_are_published_at_start() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let server = start(dir.path()).await;
    let mut dave = Peer::join(&server.url(), "dave", SUITE).await;
    dave.login().await;
    for user in ["alice", "bob", "carol"] {
        let stored = server.ds.store().user(user).await.unwrap().unwrap();
        let v = kt_verified(&dave, user).await;
        assert_eq!(v.value, DirectoryValue::of(stored.signature_key.as_slice(), None), "{user}");
    }
    server.shutdown().await.unwrap();
}

fn copy_fixture(to: &std::path::Path) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    copy(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ds-v1"), to);
}

#[tokio::test]
async fn a_rewritten_old_epoch_fails_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let base = server.url();
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let p = signed_in(&base, name).await;
        kt_verified(&p, name).await; // one epoch each
        users.push(p);
    }
    let latest = server.ds.kt().latest_epoch();
    kt_audit(&users[0], 0, latest).await.unwrap();
    server.ds.kt().tamper.rewrite_root(1, &[0x42; 32]);
    let err = kt_audit(&users[0], 0, latest).await.unwrap_err();
    assert!(err.contains("hash") || err.contains("Hash"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_history_without_its_newest_version_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let base = server.url();
    let bob = signed_in(&base, "bob").await;
    let next = device_list(
        bob.identity.as_ref().unwrap(),
        "bob",
        bob.devices.as_ref(),
        &[bob.signer.public(), &SignatureKeyPairExt::fresh()],
    );
    assert_eq!(bob.publish_devices(&next).await.status, 201);
    kt_verified(&bob, "bob").await;
    server.ds.kt().tamper.drop_newest_version("bob");
    let r = send(bob.get(&api::routes::kt_history(&user_name("bob")))).await;
    let h: kt::HistoryResponse = serde_json::from_slice(&r.body).unwrap();
    let err = kt::verify_history(&kt_keys(&bob).await, &h.head, "bob", &h.proof).unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn audits_refuse_bad_ranges_and_heads_of_future_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let p = Peer::join(&server.url(), "alice", SUITE).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let latest = server.ds.kt().latest_epoch();
    let get = |path: String| send(p.http.get(format!("{}{}", p.base, path)));
    let r = get(api::routes::kt_head_at(latest + 5)).await;
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_epoch"));
    let r = get(api::routes::kt_audit(3, 2)).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));
    let r = get(api::routes::kt_audit(0, latest + 1)).await;
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_epoch"));
    let r = get(api::routes::kt_audit(0, kt::MAX_AUDIT_SPAN + 1)).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));
    server.shutdown().await.unwrap();
}
