//! Upgrading from the last release, from a checked-in fixture
//! (`tests/fixtures/release-1`, made by `tests/fixtures/make-release-fixture.sh`
//! with that release's binaries): its DS data dir and its two client homes
//! (alice and bob, single-key users in a group "ops" with two messages) open
//! with this build, keep their history, become identities with a first
//! device (their key is the identity key: no contact sees a change), replace
//! their single-key leaves with their devices' on sync, keep talking, and
//! talk to a user made by this build (carol).

mod common;

use std::path::Path;

use grove_client::{Client, KeyStatus};
use grove_ds::config::Config;
use grove_ds::testing::TestServer;

/// The address the fixture's homes keep for their DS.
const FIXTURE_DS: &str = "127.0.0.1:47811";

/// The id of alice's group "ops".
fn group_id(c: &Client) -> grove_ds::api::GroupId {
    let g = c.groups().unwrap().into_iter().find(|g| g.name.as_deref() == Some("ops")).unwrap();
    grove_ds::api::GroupId::from_path(&g.id).unwrap()
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_release_opens_keeps_its_history_and_meets_device_users() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&fixture(), dir.path()).unwrap();
    grove_ds::server::install_crypto_provider();
    let mut c = Config::for_tests(dir.path().join("ds"));
    c.listen = FIXTURE_DS.parse().unwrap();
    c.rate_limit_per_sec = 0;
    let ds = TestServer::start(c).await.expect("serve the fixture's data dir on its address");
    let url = ds.url();

    let alice = Client::open(dir.path().join("alice")).unwrap();
    let bob = Client::open(dir.path().join("bob")).unwrap();
    let history = ["alice: before the upgrade, from alice", "bob: before the upgrade, from bob"];
    assert_eq!(common::texts(&alice, "ops"), history);
    assert_eq!(common::texts(&bob, "ops"), history);
    // Opening upgraded them: the key their contacts pinned is now their
    // identity key (the fingerprint is unchanged), and nothing warns.
    let fingerprints = (alice.whoami().fingerprint, bob.whoami().fingerprint);
    let pinned_by_bob = bob.members("ops").unwrap().into_iter().find(|m| m.user == "alice").unwrap();
    assert_eq!(pinned_by_bob.fingerprint, fingerprints.0);
    let members = alice.members("ops").unwrap();
    assert!(members.iter().all(|m| matches!(m.key, KeyStatus::Own | KeyStatus::Pinned)), "{members:?}");

    // The first sync publishes each one's first device list (with the old
    // key's login) and gives its device its own leaf in place of the old one.
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    alice.sync().await.unwrap();
    for c in [&alice, &bob] {
        let devices = c.devices().await.unwrap();
        assert_eq!(devices.len(), 1, "{devices:?}");
        assert!(devices[0].this_device);
    }
    assert_eq!((alice.whoami().fingerprint, bob.whoami().fingerprint), fingerprints);
    for c in [&alice, &bob] {
        let members = c.members("ops").unwrap();
        assert_eq!(members.len(), 2, "one leaf each, the devices': {members:?}");
        assert!(members.iter().all(|m| m.devices == 1 && matches!(m.key, KeyStatus::Own | KeyStatus::Pinned)));
        assert_eq!(common::texts(c, "ops")[..2], history, "the history is kept");
    }
    let mailbox = format!("alice/{}", alice.devices().await.unwrap()[0].id);
    let roster = ds.ds.group_info(&mailbox, &group_id(&alice)).await.unwrap();
    assert!(roster.members.iter().all(|m| m.device.is_some()), "no single-key leaf is left: {:?}", roster.members);

    // They keep talking after the upgrade.
    alice.send("ops", "after the upgrade").await.unwrap();
    bob.sync().await.unwrap();
    assert_eq!(common::texts(&bob, "ops").last().unwrap(), "alice: after the upgrade");

    // A user of this build (identity key, device list) joins their group.
    let carol = common::new_client(dir.path(), &url, "carol", 1).await;
    alice.add_members("ops", &["carol"]).await.unwrap();
    carol.sync().await.unwrap();
    bob.sync().await.unwrap();
    carol.send("ops", "hello from a device").await.unwrap();
    alice.sync().await.unwrap();
    bob.sync().await.unwrap();
    for c in [&alice, &bob] {
        assert_eq!(common::texts(c, "ops").last().unwrap(), "carol: hello from a device");
    }
    let seen_by_bob = bob.members("ops").unwrap();
    let carol_row = seen_by_bob.iter().find(|m| m.user == "carol").unwrap();
    assert_eq!(carol_row.fingerprint, carol.whoami().fingerprint, "carol is pinned by her identity key");
    ds.shutdown().await.unwrap();
}

/// A home of the last release opened with a store key: upgraded and
/// encrypted at rest in one open, its history kept, nothing left in clear.
#[test]
fn a_home_of_the_last_release_opens_encrypted_under_a_store_key() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&fixture().join("alice"), &dir.path().join("alice")).unwrap();
    let home = dir.path().join("alice");
    let key = grove_client::StoreKey::generate();
    let alice = Client::open_with_key(&home, Some(key.clone())).unwrap();
    let history = ["alice: before the upgrade, from alice", "bob: before the upgrade, from bob"];
    assert_eq!(common::texts(&alice, "ops"), history);
    let fingerprint = alice.whoami().fingerprint;
    drop(alice);
    let disk = common::disk_bytes(&home);
    for needle in [&b"before the upgrade"[..], b"ops", b"bob"] {
        assert!(!disk.windows(needle.len()).any(|w| w == needle), "{:?} in clear", String::from_utf8_lossy(needle));
    }
    assert_eq!(Client::open(&home).unwrap_err().code(), "store_key_required");
    let alice = Client::open_with_key(&home, Some(key)).unwrap();
    assert_eq!(common::texts(&alice, "ops"), history);
    assert_eq!(alice.whoami().fingerprint, fingerprint);
}
