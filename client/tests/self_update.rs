//! The self-update policy (issue 14): a member's own leaf is updated on its
//! next send or sync once it is older than the policy's age or has sent the
//! policy's number of messages; a copy of the member's state taken before the
//! update (its old leaf key and epoch secrets, as a thief would have them)
//! reads what was sent before the update, and nothing after it. Over a real
//! DS, with a mock clock.

mod common;

use common::{copy_dir, ds_with_pair, new_client, start_ds, texts, TestResult, SUITES};
use grove_client::{Client, UpdatePolicy};
use grove_proto::EntryKind;

const DAY: u64 = 24 * 3600;

/// The application message at `seq` as the DS stores it.
async fn stored(c: &Client, group: &str, seq: u64) -> Vec<u8> {
    let page = c.fetch_log(group, seq - 1).await.expect("fetch");
    let m = page.messages.into_iter().find(|m| m.seq == seq).expect("entry in the log");
    assert_eq!(m.kind, EntryKind::Application);
    m.message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_is_updated_by_age_and_a_leaked_old_state_reads_nothing_after() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let (ds, alice, bob) = ds_with_pair(dir.path(), suite, "pcs").await;

        let status = bob.update_policy("pcs")?;
        assert_eq!(status.policy, UpdatePolicy { max_age_secs: 7 * DAY, max_messages: 1_000 }, "the default");
        assert!(!status.due);
        // Nothing is due yet: a send and a sync leave the epoch alone.
        let epoch = bob.epoch(&bob.resolve_group("pcs")?)?;
        bob.send("pcs", "first").await?;
        assert!(bob.sync().await?.self_updated.is_empty());
        assert_eq!(bob.epoch(&bob.resolve_group("pcs")?)?, epoch);

        // A thief copies bob's state (old leaf key, current epoch secrets).
        let bob_home = bob.home().to_path_buf();
        drop(bob);
        let leaked_home = dir.path().join("leaked-bob");
        copy_dir(&bob_home, &leaked_home)?;
        let leaked = Client::open(&leaked_home)?;
        let bob = Client::open(&bob_home)?;

        // Before the update, the stolen state reads the group.
        let before = alice.send("pcs", "before the update").await?;
        assert_eq!(
            leaked.try_decrypt("pcs", &stored(&alice, "pcs", before).await)?,
            br#"{"type":"text","text":"before the update"}"#
        );

        // Eight days on, bob's next sync updates his leaf.
        bob.advance_clock(8 * DAY);
        assert!(bob.update_policy("pcs")?.due);
        let report = bob.sync().await?;
        assert_eq!(report.self_updated, vec![bob.resolve_group("pcs").map(|g| common_b64(&g))?], "suite {suite}");
        assert_eq!(bob.epoch(&bob.resolve_group("pcs")?)?, epoch + 1);
        let status = bob.update_policy("pcs")?;
        assert!(!status.due && status.leaf_age_secs < 60 && status.sent_since_update == 0, "{status:?}");

        // After it, the stolen state reads nothing; the group goes on.
        alice.sync().await?;
        let after = alice.send("pcs", "after the update").await?;
        let err = leaked.try_decrypt("pcs", &stored(&alice, "pcs", after).await).unwrap_err();
        assert!(matches!(err, grove_client::Error::Mls { op: "decrypt", .. }), "suite {suite}: {err}");
        bob.sync().await?;
        assert_eq!(texts(&bob, "pcs").last().map(String::as_str), Some("alice: after the update"));
        ds.shutdown().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_is_updated_after_the_policys_message_count() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    alice.create_group("count").await?;
    let gid = alice.resolve_group("count")?;
    let status = alice.set_update_policy("count", UpdatePolicy { max_age_secs: 0, max_messages: 3 })?;
    assert_eq!(status.policy.max_messages, 3);
    // Every own application message counts, the group name announcement too.
    assert_eq!(status.sent_since_update, 1);
    let epoch = alice.epoch(&gid)?;
    alice.send("count", "one").await?;
    assert_eq!(alice.epoch(&gid)?, epoch, "two messages: not due");
    assert_eq!(alice.update_policy("count")?.sent_since_update, 2);
    alice.send("count", "two").await?;
    assert_eq!(alice.epoch(&gid)?, epoch + 1, "the third message's send updated the leaf");
    assert_eq!(alice.update_policy("count")?.sent_since_update, 0);
    // The update is a commit in the log, validated by the DS like any other.
    let page = alice.fetch_log("count", 0).await?;
    assert_eq!(page.messages.last().map(|m| m.kind), Some(EntryKind::Commit));
    // A policy with both limits off never updates.
    alice.set_update_policy("count", UpdatePolicy { max_age_secs: 0, max_messages: 0 })?;
    alice.advance_clock(365 * DAY);
    for _ in 0..4 {
        alice.send("count", "x").await?;
    }
    assert_eq!(alice.epoch(&gid)?, epoch + 1);
    ds.shutdown().await?;
    Ok(())
}

/// Group ids as the client reports them (base64url, no padding).
fn common_b64(gid: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(gid)
}
