//! Resync by external commit (issue 14): a member that cannot follow a
//! group's log any more rejoins it with an external commit that replaces its
//! own leaf, over a real DS: after being offline past the DS's retention,
//! after its home was restored from an old copy, and (refused) after it was
//! removed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{copy_dir, new_client, texts, TestResult, SUITES};
use grove_client::{Client, GroupState};
use grove_ds::config::Config;
use grove_ds::testing::TestServer;

/// A DS whose retention deletes entries older than one second when run.
async fn ds_with_short_ttl(dir: &Path) -> TestServer {
    grove_ds::server::install_crypto_provider();
    let mut c = Config::for_tests(dir.join("ds"));
    c.rate_limit_per_sec = 0;
    c.message_ttl_secs = 1;
    TestServer::start(c).await.expect("start test DS")
}

/// Alice, bob and carol in group `g`, created by alice.
async fn trio(dir: &Path, url: &str, suite: u16) -> (Client, Client, Client) {
    let alice = new_client(dir, url, "alice", suite).await;
    let bob = new_client(dir, url, "bob", suite).await;
    let carol = new_client(dir, url, "carol", suite).await;
    alice.create_group("g").await.expect("create");
    alice.add_members("g", &["bob", "carol"]).await.expect("add");
    bob.sync().await.expect("bob joins");
    carol.sync().await.expect("carol joins");
    (alice, bob, carol)
}

/// Lets everything sent so far age past the one-second TTL, then prunes it.
async fn expire_log(ds: &TestServer) -> u64 {
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ds.ds.run_retention().await.expect("retention")
}

/// Messages both ways between `a` and `b`, each reading the other's.
async fn talk(a: &Client, b: &Client, tag: &str) -> TestResult {
    let (an, bn) = (a.whoami().user, b.whoami().user);
    // Each syncs before sending: a message sealed in an epoch before a
    // member's resync is one that member cannot read (it joined after it).
    a.sync().await?;
    a.send("g", &format!("{tag} from {an}")).await?;
    let r = b.sync().await?;
    assert!(texts(b, "g").contains(&format!("{an}: {tag} from {an}")), "{bn} reads {an}: {:?} {r:?}", texts(b, "g"));
    b.send("g", &format!("{tag} from {bn}")).await?;
    let r = a.sync().await?;
    assert!(texts(a, "g").contains(&format!("{bn}: {tag} from {bn}")), "{an} reads {bn}: {:?} {r:?}", texts(a, "g"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_offline_past_retention_resyncs_and_keeps_its_data() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let ds = ds_with_short_ttl(dir.path()).await;
        let (alice, bob, carol) = trio(dir.path(), &ds.url(), suite).await;
        let gid = alice.resolve_group("g")?;
        talk(&alice, &carol, "before").await?;
        let carol_cursor_epoch = carol.epoch(&gid)?;

        // Carol is offline while the group moves on, past the retention.
        alice.self_update("g").await?;
        alice.send("g", "missed one").await?;
        bob.sync().await?;
        bob.self_update("g").await?;
        bob.send("g", "missed two").await?;
        alice.sync().await?;
        assert!(expire_log(&ds).await >= 4, "the entries carol missed are gone");

        let report = carol.sync().await?;
        assert_eq!(report.resynced.len(), 1, "suite {suite}: {report:?}");
        let r = &report.resynced[0];
        assert_eq!(r.group, alice.groups()?[0].id);
        assert!(r.missed >= 4, "{r:?}");
        assert!(r.reason.contains("retention"), "{r:?}");
        assert_eq!(
            r.to_string(),
            format!("resynced group {} at epoch {} (missed {} messages)", r.group, r.epoch, r.missed)
        );
        assert!(report.errors.is_empty() && report.forks.is_empty() && report.bad_commits.is_empty(), "{report:?}");
        assert!(r.epoch > carol_cursor_epoch + 2, "carol's external commit is a new epoch after the two updates");
        // What carol had stays: her history and the group's name.
        assert!(texts(&carol, "g").contains(&"alice: before from alice".to_string()), "{:?}", texts(&carol, "g"));
        assert!(!texts(&carol, "g").iter().any(|t| t.contains("missed")), "pruned messages are not invented");

        // The group works again for everyone, at one epoch.
        talk(&alice, &carol, "after").await?;
        bob.sync().await?;
        talk(&bob, &carol, "after").await?;
        assert_eq!((alice.epoch(&gid)?, bob.epoch(&gid)?), (carol.epoch(&gid)?, carol.epoch(&gid)?));
        // A second sync has nothing more to do.
        assert!(carol.sync().await?.resynced.is_empty());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_restored_from_an_old_copy_resyncs() -> TestResult {
    let suite = SUITES[0];
    let dir = tempfile::tempdir()?;
    let (ds, alice, bob) = common::ds_with_pair(dir.path(), suite, "g").await;
    let gid = alice.resolve_group("g")?;
    talk(&alice, &bob, "early").await?;

    // A copy of bob's home, taken while the client is closed.
    let home = dir.path().join("bob");
    drop(bob);
    copy_dir(&home, &dir.path().join("bob-copy"))?;
    let bob = Client::open(&home)?;

    // Bob goes on: his own commit and messages the copy never saw.
    bob.self_update("g").await?;
    talk(&bob, &alice, "later").await?;
    drop(bob);

    // The home is lost and restored from the old copy.
    std::fs::remove_dir_all(&home)?;
    std::fs::rename(dir.path().join("bob-copy"), &home)?;
    let bob = Client::open(&home)?;
    let report = bob.sync().await?;
    assert_eq!(report.resynced.len(), 1, "{report:?}");
    assert!(report.bad_commits.is_empty(), "its own later commit is not reported as bad: {report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    // The restored history is there, and the group works again.
    assert!(texts(&bob, "g").contains(&"alice: early from alice".to_string()));
    talk(&alice, &bob, "restored").await?;
    assert_eq!(alice.epoch(&gid)?, bob.epoch(&gid)?);
    drop(ds);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_resync() -> TestResult {
    let suite = SUITES[0];
    let dir = tempfile::tempdir()?;
    let ds = ds_with_short_ttl(dir.path()).await;
    let (alice, bob, carol) = trio(dir.path(), &ds.url(), suite).await;
    // Carol is removed while offline, and the log she would learn it from
    // ages out: her sync finds a gap and tries to resync.
    alice.remove_members("g", &["carol"]).await?;
    alice.send("g", "carol is gone").await?;
    bob.sync().await?;
    assert!(expire_log(&ds).await >= 2);
    let report = carol.sync().await?;
    assert!(report.resynced.is_empty(), "{report:?}");
    assert_eq!(report.left.len(), 1, "the DS refuses her as a non-member: {report:?}");
    assert_eq!(carol.group_state("g")?.0, GroupState::Left);
    let err = carol.send("g", "still here?").await.unwrap_err();
    assert!(matches!(err, grove_client::Error::GroupLeft(_)), "{err}");
    // The others are unaffected.
    talk(&alice, &bob, "without carol").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_resyncing_at_once_both_get_in() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = ds_with_short_ttl(dir.path()).await;
    let (alice, bob, carol) = trio(dir.path(), &ds.url(), SUITES[0]).await;
    let gid = alice.resolve_group("g")?;
    // Bob and carol are both offline past the retention.
    alice.self_update("g").await?;
    alice.send("g", "missed").await?;
    assert!(expire_log(&ds).await >= 2);
    // They resync at the same time: their external commits race for one
    // epoch; the loser gets 409, builds on the winner's GroupInfo, and gets in.
    let (b, c) = tokio::join!(bob.sync(), carol.sync());
    let (b, c) = (b?, c?);
    assert_eq!((b.resynced.len(), c.resynced.len()), (1, 1), "{b:?} {c:?}");
    assert_ne!(b.resynced[0].epoch, c.resynced[0].epoch, "one after the other");
    for cl in [&alice, &bob, &carol] {
        cl.sync().await?;
    }
    let e = alice.epoch(&gid)?;
    assert_eq!((bob.epoch(&gid)?, carol.epoch(&gid)?), (e, e));
    talk(&bob, &carol, "both back").await?;
    talk(&alice, &bob, "all back").await?;
    Ok(())
}

/// A DS that makes a member resync (by withholding a commit) and serves it a
/// GroupInfo it made up: same group id, a leaf of a user the member never
/// saw, signed by that leaf. The member refuses to build on it (its path
/// would be encrypted to the DS's leaf), keeps its old state, says why, and
/// resyncs on the real GroupInfo once it gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_info_signed_by_a_stranger_is_refused() -> TestResult {
    use openmls::prelude::*;
    use tls_codec::Serialize as _;
    let dir = tempfile::tempdir()?;
    let ds = common::start_ds(dir.path()).await;
    let url = ds.url();
    let (bob_url, evil, _) = common::evil::start(&url).await;
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    let bob = Client::create(dir.path().join("bob"), common::config(&bob_url, "bob", 1)).await?;
    alice.create_group("g").await?;
    alice.add_members("g", &["bob"]).await?;
    bob.sync().await?;
    let gid = alice.resolve_group("g")?;
    let epoch = bob.epoch(&gid)?;

    // The made-up group state: the real group id, one leaf of "dave".
    let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
    let signer = openmls_basic_credential::SignatureKeyPair::new(SignatureScheme::ED25519)?;
    let cwk = CredentialWithKey {
        credential: BasicCredential::new(b"dave".to_vec()).into(),
        signature_key: signer.public().into(),
    };
    let fake = MlsGroup::builder()
        .with_group_id(GroupId::from_slice(&gid))
        .ciphersuite(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
        .build(&provider, &signer, cwk)?;
    let fake_gi = fake.export_group_info(provider.crypto(), &signer, true)?.tls_serialize_detached()?;

    evil.hide_commits(true);
    evil.serve_group_info(Some(fake_gi));
    alice.self_update("g").await?;
    let report = bob.sync().await?;
    assert!(report.resynced.is_empty(), "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains("dave, whom this client has never seen"), "{report:?}");
    assert_eq!(bob.epoch(&gid)?, epoch, "the old state is kept");
    let err = bob.send("g", "x").await.unwrap_err();
    assert!(matches!(err, grove_client::Error::ResyncNeeded { .. }), "{err}");

    // With the real GroupInfo, the resync goes through.
    evil.serve_group_info(None);
    evil.hide_commits(false);
    let report = bob.sync().await?;
    assert_eq!(report.resynced.len(), 1, "{report:?}");
    talk(&alice, &bob, "real group").await?;
    Ok(())
}
