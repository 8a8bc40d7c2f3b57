//! Key transparency over a real DS that lies (`grove_ds::kt::tamper`,
//! feature `testing`, never in a release build). Each misbehaviour of
//! issue 16 is caught by the check meant for it:
//!
//! - a key for bob served to alice only: her lookup proof check refuses it
//!   and she pins nothing;
//! - a key the DS publishes in bob's name, for everyone: bob's own history
//!   check raises a `key_transparency_alert` naming version and epoch;
//! - bob's history served without a version (the device he linked): his
//!   history proof does not verify, an alert;
//! - a directory forked between two members of one group: the roots they
//!   gossip in their messages differ, a `split_view` for both;
//! - an old epoch rewritten: the auditor fails, naming the epoch;
//! - members a client first sees in a group are checked by it too.

mod common;

use std::path::Path;

use common::{config, new_client, start_ds, TestResult};
use grove_client::{audit, Client, Error, TrustMode};
use grove_ds::testing::TestServer;
use openmls::prelude::SignatureScheme;
use openmls_basic_credential::SignatureKeyPair;

/// A key the DS makes up (mallory's).
fn made_up_key() -> Vec<u8> {
    SignatureKeyPair::new(SignatureScheme::ED25519).expect("a key").public().to_vec()
}

/// Publishes `user`'s value now (as the DS computes it, tampering included).
async fn publish(ds: &TestServer, user: &str) -> u64 {
    let kt = ds.ds.kt();
    kt.mark(user);
    kt.flush().await.expect("publish");
    kt.latest_epoch()
}

fn kt_error<T: std::fmt::Debug>(r: Result<T, Error>) -> (String, String, u64, String) {
    match r {
        Err(Error::KeyTransparency { user, key, epoch, reason }) => (user, key, epoch, reason),
        other => panic!("expected a key transparency error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_served_to_alice_only_is_refused_and_nothing_is_pinned() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let carol = new_client(dir.path(), &url, "carol", 1).await;
    ds.ds.kt().flush().await?;
    let fake = made_up_key();
    ds.ds.kt().tamper.serve_key("alice", "bob", &fake);

    let (user, key, epoch, reason) = kt_error(alice.lookup_user("bob").await);
    assert_eq!((user.as_str(), key.as_str()), ("bob", grove_proto::fingerprint(&fake).as_str()));
    assert_eq!(epoch, ds.ds.kt().latest_epoch());
    assert!(reason.contains("another identity key"), "{reason}");
    let msg = alice.lookup_user("bob").await.unwrap_err().to_string();
    assert!(msg.contains(&key) && msg.contains(&format!("directory epoch {epoch}")), "{msg}");
    // Nothing was pinned or used: adding bob fails the same way, nothing is committed.
    alice.create_group("g").await?;
    kt_error(alice.add_members("g", &["bob"]).await);
    assert_eq!(alice.members("g")?.len(), 1);
    assert!(bob.sync().await?.joined.is_empty());

    // carol is served bob's real key, and the directory vouches for it.
    assert_eq!(carol.lookup_user("bob").await?.fingerprint, bob.whoami().fingerprint);
    // Once the DS stops lying, alice pins bob's real key: the fake one was never pinned.
    ds.ds.kt().tamper.clear();
    assert_eq!(alice.lookup_user("bob").await?.fingerprint, bob.whoami().fingerprint);
    assert!(alice.add_members("g", &["bob"]).await?.committed);
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_published_in_bobs_name_alerts_bob_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    ds.ds.kt().flush().await?;
    assert!(bob.check_key_history().await?.is_empty(), "an honest directory raises nothing");
    drop(bob);

    let fake = made_up_key();
    ds.ds.kt().tamper.publish_key("bob", &fake);
    let epoch = publish(&ds, "bob").await;

    // bob's app starts again: its first sync checks his history.
    let bob = Client::open(dir.path().join("bob"))?;
    let report = bob.sync().await?;
    assert_eq!(report.key_transparency_alerts.len(), 1, "{:?}", report.key_transparency_alerts);
    let alert = &report.key_transparency_alerts[0];
    assert!(alert.contains(&format!("(epoch {epoch})")), "names the epoch: {alert}");
    assert!(alert.starts_with("version "), "names the version: {alert}");
    assert!(alert.contains(&grove_proto::fingerprint(&fake)), "names the key: {alert}");
    // Reported once, and kept.
    assert!(bob.sync().await?.key_transparency_alerts.is_empty());
    assert!(bob.check_key_history().await?.is_empty());
    assert_eq!(bob.key_transparency_alerts()?.0, vec![alert.clone()]);

    // alice is served bob's real key, which the directory no longer holds.
    let (user, _, _, reason) = kt_error(alice.lookup_user("bob").await);
    assert_eq!(user, "bob");
    assert!(reason.contains("another identity key"), "{reason}");
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_hidden_from_bobs_history_alerts_him() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let phone = new_client(dir.path(), &url, "bob", 1).await;
    // bob links his laptop: a new device list, a new version of his entry.
    let (_, codes) = Client::request_link(dir.path().join("laptop"), config(&url, "bob", 1), "laptop").await?;
    assert!(phone.approve_link(&codes.link_code, true).await?.approved);
    let (laptop, _) = Client::open(dir.path().join("laptop"))?.finish_link().await?;
    let epoch = publish(&ds, "bob").await;
    assert!(laptop.check_key_history().await?.is_empty());

    // The DS hides the newest version (the laptop's list) from bob's history.
    ds.ds.kt().tamper.drop_newest_version("bob");
    let alerts = phone.check_key_history().await?;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains(&format!("epoch {epoch}")) && alerts[0].contains("does not verify"), "{alerts:?}");
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_forked_between_two_members_is_a_split_view() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let carol = new_client(dir.path(), &url, "carol", 1).await;
    new_client(dir.path(), &url, "bob", 1).await;
    alice.create_group("g").await?;
    alice.add_members("g", &["carol"]).await?;
    carol.sync().await?;
    let kt = ds.ds.kt();
    kt.flush().await?;

    // From now on alice alone is shown a directory in which bob's key is
    // the DS's (and the DS serves her that key), at the next epoch...
    let fake = made_up_key();
    let forked = kt.fork_for("alice", "bob", &fake).await?;
    kt.tamper.serve_key("alice", "bob", &fake);
    // ...while everyone else's next epoch holds something else.
    new_client(dir.path(), &url, "dave", 1).await;
    kt.flush().await?;
    assert!(kt.latest_epoch() >= forked);

    // alice's lookup verifies against her fork: she is fooled, for now.
    assert_eq!(alice.lookup_user("bob").await?.fingerprint, grove_proto::fingerprint(&fake));
    // Her messages carry the root she verified; carol's sync compares it.
    alice.send("g", "hello").await?;
    let report = carol.sync().await?;
    assert_eq!(report.split_views.len(), 1, "{report:?}");
    let view = &report.split_views[0];
    assert!(view.starts_with(&format!("epoch {forked}: alice was shown root")), "{view}");
    // And carol's messages carry hers: alice catches it too.
    carol.send("g", "hi").await?;
    let report = alice.sync().await?;
    assert!(
        report.split_views.iter().any(|v| v.starts_with(&format!("epoch {forked}: carol was shown root"))),
        "{report:?}"
    );
    assert_eq!(alice.key_transparency_alerts()?.1, report.split_views);
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_first_seen_in_a_group_are_checked_against_the_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let carol = new_client(dir.path(), &url, "carol", 1).await;
    alice.create_group("g").await?;
    alice.add_members("g", &["bob", "carol"]).await?;
    // bob joins: alice and carol are pinned from the tree, then checked.
    let report = bob.sync().await?;
    assert_eq!(report.joined.len(), 1);
    assert!(report.key_transparency_alerts.is_empty(), "{report:?}");
    // carol's DS answers her lookups of bob with another key: the check at
    // the end of the sync that made her pin bob from the group catches it.
    ds.ds.kt().tamper.serve_key("carol", "bob", &made_up_key());
    let report = carol.sync().await?;
    assert_eq!(report.joined.len(), 1);
    let alerts: Vec<&String> =
        report.key_transparency_alerts.iter().filter(|a| a.starts_with("bob, pinned from a group")).collect();
    assert_eq!(alerts.len(), 1, "{report:?}");
    assert!(alerts[0].contains("key transparency"), "{}", alerts[0]);
    // Checked once: the next sync asks nothing more about bob.
    assert!(carol.sync().await?.key_transparency_alerts.is_empty());
    ds.shutdown().await?;
    Ok(())
}

async fn run_audit(url: &str, progress: &Path, from: Option<u64>) -> Result<audit::AuditReport, Error> {
    audit::audit(url, &TrustMode::SystemRoots, progress, from, &mut |_, _| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_verifies_every_epoch_and_catches_a_rewritten_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    for name in ["alice", "bob", "carol"] {
        new_client(dir.path(), &url, name, 1).await;
        ds.ds.kt().flush().await?; // an epoch each, at least
    }
    let latest = ds.ds.kt().latest_epoch();
    let progress = dir.path().join("audit.json");
    let report = run_audit(&url, &progress, None).await?;
    assert_eq!((report.from, report.to, report.verified), (0, latest, latest));
    // The next run resumes where this one stopped.
    new_client(dir.path(), &url, "dave", 1).await;
    ds.ds.kt().flush().await?;
    let report = run_audit(&url, &progress, None).await?;
    assert_eq!(report.from, latest);
    assert!(report.to > latest);

    // The DS rewrites epoch 2: an audit from the start fails there...
    ds.ds.kt().tamper.rewrite_root(2, &[0x42; 32]);
    match run_audit(&url, &dir.path().join("fresh.json"), None).await {
        Err(Error::AuditFailed { epoch, reason }) => assert_eq!(epoch, 2, "{reason}"),
        other => panic!("expected the audit to fail, got {other:?}"),
    }
    // ...and a rewrite of the epoch the progress file ends at is caught by
    // the next run, which starts from the root it kept.
    ds.ds.kt().tamper.rewrite_root(report.to, &[0x43; 32]);
    match run_audit(&url, &progress, None).await {
        Err(Error::AuditFailed { epoch, reason }) => {
            assert_eq!(epoch, report.to);
            assert!(reason.contains(&"43".repeat(32)), "{reason}");
        }
        other => panic!("expected the audit to fail, got {other:?}"),
    }
    let kept: audit::AuditProgress = serde_json::from_slice(&std::fs::read(&progress)?)?;
    assert_eq!((kept.epoch, kept.root), (report.to, report.root), "the progress file keeps the last good epoch");
    ds.shutdown().await?;
    Ok(())
}
