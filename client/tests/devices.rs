//! Several devices of one user through the library (`docs/identity.md`):
//! a linked device reads with the first, a DS that swaps the link request or
//! forges the approval is caught, and a member refuses to send to a group
//! holding a device its user revoked (when a malicious DS drops the commit
//! that removes it).

mod common;

use common::{config, evil, new_client, start_ds};
use grove_client::{Client, Error};

/// A linked pair of alice's devices (`phone` at `url_phone`, the laptop
/// direct), and the laptop's device id.
async fn linked(dir: &std::path::Path, url_phone: &str, url: &str) -> (Client, Client, String) {
    let phone = Client::create(dir.join("phone"), config(url_phone, "alice", 1)).await.unwrap();
    let (_, codes) = Client::request_link(dir.join("laptop"), config(url, "alice", 1), "laptop").await.unwrap();
    let shown = phone.approve_link(&codes.link_code, false).await.unwrap();
    assert_eq!(shown.compare, codes.compare, "both devices show the same comparison code");
    assert!(!shown.approved);
    assert!(phone.approve_link(&codes.link_code, true).await.unwrap().approved);
    let (laptop, done) = Client::open(dir.join("laptop")).unwrap().finish_link().await.unwrap();
    let id = done.unwrap().device;
    assert_eq!(laptop.whoami().fingerprint, phone.whoami().fingerprint, "one identity, two devices");
    (phone, laptop, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_left_in_a_group_by_the_ds_stops_senders() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (proxy, evil, _) = evil::start(&url).await;
    let (phone, laptop, laptop_id) = linked(dir.path(), &proxy, &url).await;
    let bob = new_client(dir.path(), &url, "bob", 1).await;

    // bob adds alice: both her devices, in one commit.
    bob.create_group("g").await.unwrap();
    bob.add_members("g", &["alice"]).await.unwrap();
    let alice = bob.members("g").unwrap().into_iter().find(|m| m.user == "alice").unwrap();
    assert_eq!(alice.devices, 2);
    assert_eq!(phone.sync().await.unwrap().joined.len(), 1);
    assert_eq!(laptop.sync().await.unwrap().joined.len(), 1);
    bob.send("g", "to both").await.unwrap();
    for c in [&phone, &laptop] {
        c.sync().await.unwrap();
        assert!(c.messages("g").unwrap().iter().any(|m| m.text == "to both"));
    }

    // alice revokes the laptop; the DS drops her commit that removes it
    // from the group. bob, who then sees the laptop's leaf while alice's
    // list no longer holds it, refuses to send.
    evil.swallow_commits(true);
    let r = phone.revoke_device(&laptop_id).await.unwrap();
    assert!(r.list_version.is_some());
    // (Within LIST_RECHECK_SECS of its last check, bob still trusts the
    // list it verified; past it, it fetches the list again.)
    bob.advance_clock(grove_client::LIST_RECHECK_SECS + 1);
    match bob.send("g", "must not reach the revoked laptop").await {
        Err(Error::UnlistedDevice { user, device, .. }) => assert_eq!((user.as_str(), device), ("alice", laptop_id)),
        other => panic!("expected unlisted_device, got {other:?}"),
    }
    // The DS stopped the laptop's token: it cannot read on.
    match laptop.sync().await {
        Err(Error::Server { status: 401, code, .. }) => assert_eq!(code.as_str(), "device_revoked"),
        other => panic!("expected device_revoked, got {other:?}"),
    }
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_the_ds_tampers_with_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let phone = new_client(dir.path(), &url, "alice", 1).await;
    let (_, codes) = Client::request_link(dir.path().join("laptop"), config(&url, "alice", 1), "").await.unwrap();
    // The code names the request and carries its secret; a code whose id
    // names another request (what a DS that swaps requests amounts to), or
    // whose secret differs, fails the MAC check on the approving device.
    let (_, other) = Client::request_link(dir.path().join("tablet"), config(&url, "alice", 1), "").await.unwrap();
    let mut parts: Vec<&str> = codes.link_code.split(':').collect();
    let other_id = other.link_code.split(':').nth(2).unwrap().to_owned();
    parts[2] = &other_id;
    let swapped = parts.join(":");
    assert!(matches!(phone.approve_link(&swapped, true).await, Err(Error::LinkRefused(_))));
    // Nothing was approved: both new devices still wait.
    let waiting = Client::open(dir.path().join("laptop")).unwrap().finish_link().await;
    assert!(matches!(waiting, Err(Error::LinkPending { .. })), "{waiting:?}");
    // A user's code approved by another user is refused.
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    assert!(matches!(bob.approve_link(&codes.link_code, true).await, Err(Error::LinkRefused(_))));
    ds.shutdown().await.unwrap();
}

/// A group that never had a commit (its creator alone in it) still lets a
/// new device of the creator join: the GroupInfo the DS got at creation
/// carries the ratchet tree (it once did not, and the join failed with "No
/// ratchet tree available").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_joins_a_group_that_never_had_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let phone = Client::create(dir.path().join("phone"), config(&url, "alice", 1)).await.unwrap();
    let gid = phone.create_group("notes").await.unwrap();
    phone.send("notes", "from the phone").await.unwrap();
    let (_, codes) = Client::request_link(dir.path().join("laptop"), config(&url, "alice", 1), "laptop").await.unwrap();
    assert!(phone.approve_link(&codes.link_code, true).await.unwrap().approved);
    let (laptop, done) = Client::open(dir.path().join("laptop")).unwrap().finish_link().await.unwrap();
    let done = done.unwrap();
    assert_eq!((done.joined, done.failed), (vec![gid], Vec::<String>::new()));
    laptop.send("notes", "from the laptop").await.unwrap();
    phone.sync().await.unwrap();
    assert_eq!(phone.messages("notes").unwrap().last().unwrap().text, "from the laptop");
}
