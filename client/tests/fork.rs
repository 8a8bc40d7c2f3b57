//! Fork detection (issue 14): a malicious DS shows two members different
//! commits for the same epoch. Here a proxy in front of the real DS answers
//! bob's self-update commit with a 201 and never forwards it, while alice's
//! self-update of the same epoch reaches the DS: alice and bob are both at
//! the next epoch, on different branches, and the DS accepts both their
//! application messages (it cannot tell). Each detects the fork from the
//! other's first message, reports it, and refuses to send until the user
//! acknowledges it.

mod common;

use common::{config, evil, start_ds, TestResult, SUITES};
use grove_client::{Client, Error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_is_detected_within_one_message_of_either_member() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let ds = start_ds(dir.path()).await;
        let url = ds.url();
        // Bob talks to the DS through the proxy; alice talks to it directly.
        let (bob_url, evil, _) = evil::start(&url).await;
        let alice = Client::create(dir.path().join("alice"), config(&url, "alice", suite)).await?;
        let bob = Client::create(dir.path().join("bob"), config(&bob_url, "bob", suite)).await?;
        alice.create_group("f").await?;
        alice.add_members("f", &["bob"]).await?;
        bob.sync().await?;
        // Same branch: messages both ways, no fork.
        alice.send("f", "same branch").await?;
        bob.sync().await?;
        bob.send("f", "same branch too").await?;
        assert!(alice.sync().await?.forks.is_empty());
        assert_eq!(alice.fork("f")?, None);
        let epoch = alice.epoch(&alice.resolve_group("f")?)?;

        // The fork: bob's commit is swallowed, alice's reaches the DS.
        evil.swallow_commits(true);
        assert!(bob.self_update("f").await?.committed);
        evil.swallow_commits(false);
        alice.self_update("f").await?;
        let gid = alice.resolve_group("f")?;
        assert_eq!((alice.epoch(&gid)?, bob.epoch(&gid)?), (epoch + 1, epoch + 1), "both at the next epoch");

        // Bob's first message on his branch: alice detects the fork.
        bob.sync().await?; // alice's commit is of an epoch bob has left behind: skipped
        let seq = bob.send("f", "from the other branch").await?;
        let report = alice.sync().await?;
        assert_eq!(report.forks.len(), 1, "suite {suite}: {report:?}");
        let fork = alice.fork("f")?.expect("alice records the fork");
        assert_eq!((fork.epoch, fork.seq), (epoch + 1, seq));
        assert!(fork.members.is_empty(), "the other branch cannot be decrypted: {fork:?}");
        assert_eq!(report.undecryptable, 1);
        // Alice refuses to send into the forked group, with a clear error.
        let err = alice.send("f", "refused").await.unwrap_err();
        assert!(matches!(err, Error::ForkDetected { epoch: e, .. } if e == epoch + 1), "{err}");
        assert!(err.to_string().contains("grove group ack-fork"), "{err}");

        // Bob detects it from alice's next message (sent after acknowledging).
        assert!(alice.acknowledge_fork("f").await?);
        assert_eq!(alice.fork("f")?, None);
        let seq = alice.send("f", "from the first branch").await?;
        bob.sync().await?;
        let fork = bob.fork("f")?.expect("bob records the fork");
        assert_eq!((fork.epoch, fork.seq), (epoch + 1, seq));
        assert!(matches!(bob.send("f", "x").await, Err(Error::ForkDetected { .. })));

        // An acknowledged fork is not reported again for its epoch.
        assert!(bob.acknowledge_fork("f").await?);
        bob.send("f", "still on the other branch").await?;
        let report = alice.sync().await?;
        assert!(report.forks.is_empty() && alice.fork("f")?.is_none(), "suite {suite}: {report:?}");
        assert_eq!(report.undecryptable, 1, "the other branch still cannot be read");
        ds.shutdown().await?;
    }
    Ok(())
}

/// A DS that withholds a commit from one member: bob's log pages leave out
/// alice's commit, so the log bob sees has a hole where it was, and the group
/// is at a later epoch than bob. Bob cannot tell this from entries pruned past
/// the retention, and heals the same way: he resyncs by an external commit on
/// the group's current GroupInfo (signed by alice), says so, and reads what
/// alice sends next. (Equivocation, two different commits for one epoch, is
/// what the fork tag detects; see the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_commit_is_healed_by_a_resync() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (bob_url, evil, _) = evil::start(&url).await;
    let alice = Client::create(dir.path().join("alice"), config(&url, "alice", 1)).await?;
    let bob = Client::create(dir.path().join("bob"), config(&bob_url, "bob", 1)).await?;
    alice.create_group("w").await?;
    alice.add_members("w", &["bob"]).await?;
    bob.sync().await?;
    let gid = alice.resolve_group("w")?;
    let epoch = alice.epoch(&gid)?;

    evil.hide_commits(true);
    alice.self_update("w").await?;
    let report = bob.sync().await?;
    assert_eq!(report.resynced.len(), 1, "{report:?}");
    assert_eq!(report.resynced[0].missed, 1, "the withheld commit: {report:?}");
    assert_eq!(bob.epoch(&gid)?, epoch + 2, "bob's external commit follows alice's");
    assert_eq!(bob.fork("w")?, None);
    alice.sync().await?;
    alice.send("w", "in the new epoch").await?;
    let report = bob.sync().await?;
    assert!(report.forks.is_empty() && report.resynced.is_empty(), "{report:?}");
    assert_eq!(common::texts(&bob, "w").last().map(String::as_str), Some("alice: in the new epoch"));
    bob.send("w", "healed").await?;
    alice.sync().await?;
    assert_eq!(common::texts(&alice, "w").last().map(String::as_str), Some("bob: healed"));
    ds.shutdown().await?;
    Ok(())
}
