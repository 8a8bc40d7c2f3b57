//! End to end over a real in-process DS, for ciphersuites 0x0001 and 0x0003:
//! three users, create, add, messages both ways, remove; the removed user can
//! neither fetch nor decrypt later messages; a later joiner cannot read what
//! was sent before; leave is committed by the next member who syncs.

mod common;

use common::{new_client, start_ds, texts, TestResult, SUITES};
use grove_client::{Error, GroupState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_add_message_remove_and_late_joiner() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let ds = start_ds(dir.path()).await;
        let url = ds.url();
        let alice = new_client(dir.path(), &url, "alice", suite).await;
        let bob = new_client(dir.path(), &url, "bob", suite).await;
        let carol = new_client(dir.path(), &url, "carol", suite).await;
        let dave = new_client(dir.path(), &url, "dave", suite).await;

        let gid = alice.create_group("team").await?;
        let out = alice.add_members("team", &["bob", "carol"]).await?;
        assert!(out.committed);
        assert_eq!(out.epoch, 1);

        let rb = bob.sync().await?;
        assert_eq!(rb.joined, vec![gid.clone()]);
        carol.sync().await?;
        // The name travelled inside encrypted group data.
        assert_eq!(bob.groups()?[0].name.as_deref(), Some("team"));
        assert_eq!(bob.members("team")?.len(), 3);

        alice.send("team", "from alice").await?;
        bob.sync().await?;
        bob.send("team", "from bob").await?;
        carol.sync().await?;
        carol.send("team", "from carol").await?;
        alice.sync().await?;
        bob.sync().await?;
        assert_eq!(texts(&alice, "team"), ["alice: from alice", "bob: from bob", "carol: from carol"]);
        assert_eq!(texts(&bob, "team"), ["alice: from alice", "bob: from bob", "carol: from carol"]);
        assert_eq!(texts(&carol, "team"), ["alice: from alice", "bob: from bob", "carol: from carol"]);

        // Remove carol.
        let out = alice.remove_members("team", &["carol"]).await?;
        assert_eq!(out.epoch, 2);
        let rc = carol.sync().await?;
        assert_eq!(rc.left, vec![gid.clone()]);
        assert_eq!(carol.group_state(&gid)?.0, GroupState::Left);
        // Her history stays readable.
        assert_eq!(texts(&carol, &gid).len(), 3);

        let secret_seq = alice.send("team", "after carol left").await?;
        bob.sync().await?;
        assert_eq!(texts(&bob, "team").last().map(String::as_str), Some("alice: after carol left"));

        // Carol can neither fetch it ...
        let page = carol.fetch_log(&gid, 0).await?;
        let removed_at = page.removed_at.expect("carol is marked removed");
        assert!(removed_at < secret_seq);
        assert!(page.messages.iter().all(|m| m.seq <= removed_at));
        let r = carol.fetch_log(&gid, removed_at).await?;
        assert!(r.messages.is_empty());
        carol.sync().await?;
        assert!(!texts(&carol, &gid).iter().any(|t| t.contains("after carol left")));
        // ... nor decrypt it when handed the ciphertext.
        let cipher = bob.fetch_log("team", secret_seq - 1).await?.messages.remove(0).message;
        assert!(bob.try_decrypt("team", &cipher).is_err(), "own-epoch state already consumed the key: sanity");
        assert!(carol.try_decrypt(&gid, &cipher).is_err());
        // Operations on a left group fail cleanly.
        assert!(matches!(carol.send(&gid, "x").await, Err(Error::GroupLeft(_))));

        // A later joiner cannot read what was sent before.
        alice.add_members("team", &["dave"]).await?;
        dave.sync().await?;
        assert_eq!(dave.groups()?[0].name.as_deref(), Some("team"));
        assert!(texts(&dave, "team").is_empty(), "dave sees nothing from before he joined");
        assert!(dave.try_decrypt("team", &cipher).is_err());
        bob.sync().await?; // bob moves to dave's epoch; a message of the previous epoch would be unreadable to dave
        bob.send("team", "welcome dave").await?;
        dave.sync().await?;
        assert_eq!(texts(&dave, "team"), ["bob: welcome dave"]);

        // Leave: dave asks, the next member to sync commits it.
        dave.leave("team").await?;
        assert_eq!(dave.group_state("team")?.0, GroupState::Leaving);
        let ra = alice.sync().await?;
        assert_eq!(ra.proposals_committed, 1);
        let rd = dave.sync().await?;
        assert_eq!(rd.left, vec![gid.clone()]);
        bob.sync().await?;
        let names: Vec<String> = bob.members("team")?.into_iter().map(|m| m.user).collect();
        assert_eq!(names, ["alice", "bob"]);
        let (ea, aa) = alice.epoch_authenticator("team")?;
        let (eb, ab) = bob.epoch_authenticator("team")?;
        assert_eq!((ea, &aa), (eb, &ab));
        // The DS agrees on the roster.
        let view = alice.server_view("team").await?;
        assert_eq!(view.epoch, ea);
        assert_eq!(view.members.len(), 2);
        ds.shutdown().await?;
    }
    Ok(())
}

/// The history is in log order: an own message sent before a sync that brings
/// an earlier message of someone else is listed after it (it used to come
/// first, in the order this client stored them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_in_log_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", SUITES[0]).await;
    let bob = new_client(dir.path(), &url, "bob", SUITES[0]).await;
    let gid = alice.create_group("g").await?;
    alice.add_members(&gid, &["bob"]).await?;
    bob.sync().await?;
    alice.sync().await?;
    let first = bob.send(&gid, "bob first").await?;
    let second = alice.send(&gid, "alice second").await?; // before alice has seen bob's
    assert!(first < second);
    alice.sync().await?;
    assert_eq!(texts(&alice, &gid), ["bob: bob first", "alice: alice second"]);
    let seqs: Vec<Option<u64>> = alice.messages(&gid)?.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [Some(first), Some(second)]);
    ds.shutdown().await?;
    Ok(())
}
