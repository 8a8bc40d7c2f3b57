//! Crash safety: a commit the DS accepted whose client "crashed" before merging
//! is recovered by the next sync; a storage batch interrupted before its flush
//! leaves the previous state.

mod common;

use common::{new_client, start_ds, texts, TestResult, SUITES};
use grove_client::storage::GroveProvider;
use grove_client::{Client, Error, Fault, HistoryPolicy};
use openmls::prelude::{GroupId, MlsGroup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_accepted_then_crash_recovers_on_sync() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let ds = start_ds(dir.path()).await;
        let url = ds.url();
        let alice = new_client(dir.path(), &url, "alice", suite).await;
        let bob = new_client(dir.path(), &url, "bob", suite).await;
        let carol = new_client(dir.path(), &url, "carol", suite).await;
        let gid = alice.create_group("g").await?;
        alice.add_members("g", &["bob"]).await?;
        bob.sync().await?;

        // The DS accepts alice's add of carol, then alice "crashes" before merging.
        alice.inject_fault(Some(Fault::StopAfterCommitAccepted));
        let r = alice.add_members("g", &["carol"]).await;
        assert!(matches!(r, Err(Error::InjectedFault(_))), "{r:?}");
        assert_eq!(alice.epoch_authenticator("g")?.0, 1, "not merged yet");
        drop(alice);

        // Everyone else moves on to epoch 2.
        bob.sync().await?;
        carol.sync().await?;
        assert_eq!(bob.epoch_authenticator("g")?.0, 2);
        assert_eq!(bob.server_view(&gid).await?.epoch, 2);

        // Alice restarts: the next sync finds her own commit in the log and merges it.
        let alice = Client::open(dir.path().join("alice"))?;
        alice.sync().await?;
        assert_eq!(alice.epoch_authenticator("g")?, bob.epoch_authenticator("g")?);
        assert_eq!(alice.epoch_authenticator("g")?, carol.epoch_authenticator(&gid)?);
        // Nothing is stuck: messages and commits flow.
        alice.send("g", "still here").await?;
        bob.sync().await?;
        carol.sync().await?;
        assert_eq!(texts(&carol, &gid), ["alice: still here"]);
        // The name alice owed carol arrived after her recovery.
        assert_eq!(carol.groups()?[0].name.as_deref(), Some("g"));
        carol.self_update("g").await?;
        alice.sync().await?;
        bob.sync().await?;
        assert_eq!(alice.epoch_authenticator("g")?, carol.epoch_authenticator("g")?);
        ds.shutdown().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_batch_leaves_previous_state() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let gid_text = alice.create_group("g").await?;
    alice.add_members("g", &["bob"]).await?;
    bob.sync().await?;
    let before = alice.epoch_authenticator("g")?;
    drop(alice);

    // An operation runs in a transaction (a commit, and a message that advances
    // the sender ratchet) and the process dies before the batch is applied.
    let gid = GroupId::from_slice(&grove_proto::group_id_from_path(&gid_text).ok_or("gid")?);
    {
        let provider = GroveProvider::open(dir.path().join("alice"))?;
        let p = provider.begin();
        let mut g = MlsGroup::load(openmls_traits::OpenMlsProvider::storage(&p), &gid)?.ok_or("group")?;
        let before_epoch = g.epoch();
        let _ = g.self_update(
            &p,
            &openmls_basic_credential::SignatureKeyPair::new(openmls::prelude::SignatureScheme::ED25519)?,
            openmls::prelude::LeafNodeParameters::default(),
        );
        g.merge_pending_commit(&p)?;
        assert_ne!(g.epoch(), before_epoch);
        assert!(openmls_traits::OpenMlsProvider::storage(&p).pending_writes() > 0);
        drop(p); // crash: the overlay is never applied
    }

    let alice = Client::open(dir.path().join("alice"))?;
    assert_eq!(alice.epoch_authenticator("g")?, before);
    // The state on disk is the consistent one: messaging works both ways.
    alice.send("g", "after the crash").await?;
    bob.sync().await?;
    assert_eq!(texts(&bob, "g"), ["alice: after the crash"]);
    bob.send("g", "ack").await?;
    alice.sync().await?;
    assert_eq!(texts(&alice, "g"), ["alice: after the crash", "bob: ack"]);
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_is_persisted_before_it_is_sent() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    alice.create_group("g").await?;
    alice.add_members("g", &["bob"]).await?;
    bob.sync().await?;

    // The message is encrypted and stored (ratchet advanced), then the process dies.
    alice.inject_fault(Some(Fault::StopBeforeSend));
    let r = alice.send("g", "never posted").await;
    assert!(matches!(r, Err(Error::InjectedFault(_))), "{r:?}");
    drop(alice);

    let alice = Client::open(dir.path().join("alice"))?;
    let stored = alice.messages("g")?;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].text.as_str(), stored[0].seq, stored[0].own), ("never posted", None, true));
    // The next sync posts the stored ciphertext (as it was: no re-encryption),
    // and later messages use later ratchet generations.
    alice.sync().await?;
    assert!(alice.messages("g")?[0].seq.is_some(), "confirmed by the DS");
    alice.send("g", "posted").await?;
    bob.sync().await?;
    assert_eq!(texts(&bob, "g"), ["alice: never posted", "alice: posted"]);
    // Bob's echo check: alice's next sync sees both in the log and stores nothing twice.
    alice.sync().await?;
    assert_eq!(texts(&alice, "g"), ["alice: never posted", "alice: posted"]);
    ds.shutdown().await?;
    Ok(())
}

/// A policy change the DS accepted, whose response the client never saw, is
/// applied when the next sync finds it in the log, and stays applied (the echo
/// used to be overwritten by the group record read before it was confirmed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_policy_change_survives_a_lost_response() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", SUITES[0]).await;
    let bob = new_client(dir.path(), &url, "bob", SUITES[0]).await;
    alice.create_group("g").await?;
    alice.add_members("g", &["bob"]).await?;
    bob.sync().await?;
    assert_eq!(alice.history_policy("g")?, HistoryPolicy::None);

    alice.inject_fault(Some(Fault::StopAfterSendAccepted));
    let r = alice.set_history_policy("g", HistoryPolicy::Share).await;
    assert!(matches!(r, Err(Error::InjectedFault(_))), "{r:?}");
    assert_eq!(alice.history_policy("g")?, HistoryPolicy::None, "not recorded before the echo");
    drop(alice);

    let alice = Client::open(dir.path().join("alice"))?;
    alice.sync().await?;
    assert_eq!(alice.history_policy("g")?, HistoryPolicy::Share, "the echo applied the policy");
    alice.sync().await?;
    assert_eq!(alice.history_policy("g")?, HistoryPolicy::Share);
    bob.sync().await?;
    assert_eq!(bob.history_policy("g")?, HistoryPolicy::Share);
    let hist = alice.group_resource_history("g")?;
    assert_eq!(hist.iter().filter(|h| h.kind == "policy").count(), 1, "one policy event, not re-sent: {hist:?}");
    ds.shutdown().await?;
    Ok(())
}
