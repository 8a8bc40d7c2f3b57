//! Identity keys and devices on the DS (`docs/identity.md`): registration
//! with a signed device list, device-bound logins, publishing the next list
//! (and what is refused: forged certificates and lists, a lowered version, a
//! fork, a gap, a list not signed by the identity key), revocation, and the
//! leaf checks on KeyPackages and commits. Real DS, real openmls peers.

mod common;

use common::{device_credential, device_list, send, start, Peer, Resp};
use grove_ds::api;
use openmls::prelude::*;

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

fn status(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code().as_str()), (status, code), "{}", String::from_utf8_lossy(&r.body));
}

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&common::rand_bytes())
}

async fn joined(base: &str, name: &str) -> Peer {
    let mut p = Peer::with_identity(base, name, SUITE);
    let r = p.register().await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    p.login().await;
    p
}

#[tokio::test]
async fn registration_with_a_device_list_and_device_logins() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let alice = joined(&base, "alice").await;
    // The lookup serves the identity key and the signed list.
    let r = send(alice.get("/v1/users/alice")).await;
    let j = r.json();
    let ik = alice.identity.as_ref().unwrap().verifying_key().to_bytes();
    assert_eq!(common::unb64(j["signature_key"].as_str().unwrap()), ik);
    let list = grove_proto::identity::DeviceList::decode(&common::unb64(j["device_list"].as_str().unwrap())).unwrap();
    assert_eq!(&list, alice.devices.as_ref().unwrap());
    // Registering the same again is idempotent.
    assert_eq!(alice.register().await.status, 200);

    // A login must be by a listed device: not by the identity key, not by a
    // stranger's key, not without a device key.
    let mut stranger = Peer::device_of(&base, "alice", SUITE, alice.identity.clone().unwrap());
    status(&stranger.try_login().await, 401, "device_revoked");
    stranger.identity = None;
    status(&stranger.try_login().await, 401, "device_revoked");
    ds.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_registrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let mallory = key();

    // The certificate is signed by another key than the identity key.
    let mut p = Peer::with_identity(&base, "alice", SUITE);
    p.cwk.credential = device_credential(&mallory, "alice", p.signer.public());
    status(&p.register().await, 400, "device_list_invalid");
    // The list is signed by another key.
    let mut p = Peer::with_identity(&base, "alice", SUITE);
    p.devices = Some(device_list(&mallory, "alice", None, &[p.signer.public()]));
    status(&p.register().await, 400, "device_list_invalid");
    // The credential's device is not in the list.
    let mut p = Peer::with_identity(&base, "alice", SUITE);
    p.devices = Some(device_list(p.identity.as_ref().unwrap(), "alice", None, &[b"another device key"]));
    status(&p.register().await, 400, "device_list_invalid");
    // A registration starts at version 1.
    let mut p = Peer::with_identity(&base, "alice", SUITE);
    let v1 = p.devices.clone().unwrap();
    p.devices = Some(device_list(p.identity.as_ref().unwrap(), "alice", Some(&v1), &[p.signer.public()]));
    status(&p.register().await, 400, "device_list_invalid");
    // None of it registered alice.
    let ok = Peer::with_identity(&base, "alice", SUITE);
    assert_eq!(ok.register().await.status, 201);
    // A second identity for a taken name is refused.
    status(&Peer::with_identity(&base, "alice", SUITE).register().await, 409, "user_exists");
    ds.shutdown().await.unwrap();
}

#[tokio::test]
async fn device_lists_grow_only_by_the_identity_key_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let phone = joined(&base, "alice").await;
    let id = phone.identity.clone().unwrap();
    let v1 = phone.devices.clone().unwrap();
    let mut laptop = Peer::device_of(&base, "alice", SUITE, id.clone());
    // Before the list holds it, the laptop cannot log in.
    status(&laptop.try_login().await, 401, "device_revoked");

    // A list with the laptop, signed by someone else (what a DS or a thief
    // of a token could make), is refused.
    let forged = device_list(&key(), "alice", Some(&v1), &[phone.signer.public(), laptop.signer.public()]);
    status(&phone.publish_devices(&forged).await, 400, "device_list_invalid");
    // A signed list whose device set was changed after signing.
    let mut tampered = device_list(&id, "alice", Some(&v1), &[phone.signer.public()]);
    tampered.tbs.devices.push(tampered.tbs.devices[0].clone());
    tampered.tbs.devices[1].device_key = laptop.signer.public().to_vec().into();
    status(&phone.publish_devices(&tampered).await, 400, "device_list_invalid");
    // A gap: version 3 after version 1.
    let v2 = device_list(&id, "alice", Some(&v1), &[phone.signer.public(), laptop.signer.public()]);
    let v3_early = device_list(&id, "alice", Some(&v2), &[phone.signer.public()]);
    status(&phone.publish_devices(&v3_early).await, 409, "device_list_conflict");

    let r = phone.publish_devices(&v2).await;
    assert_eq!((r.status, r.json()["version"].as_u64()), (201, Some(2)), "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(phone.publish_devices(&v2).await.status, 201, "publishing the current list again is idempotent");
    laptop.login().await;
    // Going back is refused; so is another version 2 (a fork).
    status(&phone.publish_devices(&v1).await, 409, "device_list_conflict");
    let fork = device_list(&id, "alice", Some(&v1), &[phone.signer.public(), b"tablet"]);
    status(&phone.publish_devices(&fork).await, 409, "device_list_conflict");
    // Another user cannot publish alice's list.
    let bob = joined(&base, "bob").await;
    let r = send(
        bob.post("/v1/users/alice/devices")
            .json(&serde_json::json!({ "device_list": common::b64(&v3_early.encode()) })),
    )
    .await;
    status(&r, 403, "not_a_member");

    // Everyone can read the history, to check the chain themselves.
    let h = send(bob.get(&api::routes::user_devices(&common::user_name("alice"), 0))).await.json();
    let lists: Vec<Vec<u8>> =
        h["lists"].as_array().unwrap().iter().map(|l| common::unb64(l.as_str().unwrap())).collect();
    assert_eq!(lists, [v1.encode(), v2.encode()]);
    let h = send(bob.get(&api::routes::user_devices(&common::user_name("alice"), 1))).await.json();
    assert_eq!(h["lists"].as_array().unwrap().len(), 1);

    // Revocation: version 3 drops the laptop; its token stops working at
    // once and it cannot log in again.
    assert_eq!(laptop.get("/v1/key-packages?ciphersuite=1").send().await.unwrap().status(), 200);
    assert_eq!(phone.publish_devices(&v3_early).await.status, 201);
    let r = send(laptop.get("/v1/key-packages?ciphersuite=1")).await;
    status(&r, 401, "device_revoked");
    status(&laptop.try_login().await, 401, "device_revoked");
    // And it cannot publish a list that puts itself back.
    let back = device_list(&id, "alice", Some(&v3_early), &[phone.signer.public(), laptop.signer.public()]);
    status(&laptop.publish_devices(&back).await, 401, "device_revoked");
    ds.shutdown().await.unwrap();
}

#[tokio::test]
async fn key_packages_and_leaves_must_be_current_certified_devices() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let alice = joined(&base, "alice").await;
    let bob = joined(&base, "bob").await;
    // Each device uploads its own, certified KeyPackages.
    assert_eq!(bob.upload_key_packages(2, true).await.status, 201);
    // A KeyPackage of a device bob's list does not hold (certified by his
    // identity key, but never published) is refused on upload...
    let mut ghost = Peer::device_of(&base, "bob", SUITE, bob.identity.clone().unwrap());
    ghost.token = bob.token.clone();
    let r = ghost.upload_key_packages(1, false).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_key_package"));
    // ... and so is a bare-name credential: bob has devices.
    let mut bare = Peer::new(&base, "bob", SUITE);
    bare.token = bob.token.clone();
    assert_eq!(bare.upload_key_packages(1, false).await.code(), "invalid_key_package");

    // alice creates a group (her leaf is her certified device) and adds bob.
    let (mut group, gid) = alice.create_group().await;
    let r = alice.add(&mut group, &gid, &["bob"]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // A commit adding the ghost device (certified, but not in bob's list):
    // what a DS or thief with bob's identity signature on a certificate but
    // no published list could try. Refused.
    let kp = ghost.key_package(false);
    let (commit, welcome, _) = group.add_members(&alice.provider, &alice.signer, &[kp]).unwrap();
    let r = alice.post_bundle(&gid, &commit, Some(&welcome), None).await;
    assert_eq!((r.status, r.code().as_str()), (400, "unregistered_member"), "{}", String::from_utf8_lossy(&r.body));
    group.clear_pending_commit(alice.provider.storage()).unwrap();
    ds.shutdown().await.unwrap();
}

/// A user registered before devices existed publishes its first list, signed
/// by its one key (which becomes its identity key); from then on only
/// certified devices log in and upload.
#[tokio::test]
async fn a_single_key_user_upgrades_to_devices() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let legacy_key = key();
    let mut old = Peer::new(&base, "carol", SUITE);
    old.signer = openmls_basic_credential::SignatureKeyPair::from_raw(
        SignatureScheme::ED25519,
        legacy_key.as_bytes().to_vec(),
        legacy_key.verifying_key().to_bytes().to_vec(),
    );
    old.cwk.signature_key = old.signer.public().into();
    assert_eq!(old.register().await.status, 201);
    old.login().await;
    assert_eq!(old.upload_key_packages(1, true).await.status, 201);

    let mut device = Peer::device_of(&base, "carol", SUITE, legacy_key.clone());
    let v1 = device.devices.clone().unwrap();
    // Signed by another key than the registered one: refused.
    let wrong = device_list(&key(), "carol", None, &[device.signer.public()]);
    status(&old.publish_devices(&wrong).await, 400, "device_list_invalid");
    assert_eq!(old.publish_devices(&v1).await.status, 201);
    device.login().await;
    assert_eq!(device.upload_key_packages(1, false).await.status, 201);
    // The single key no longer logs in, nor uploads bare-name KeyPackages.
    status(&old.try_login().await, 401, "device_revoked");
    assert_eq!(old.upload_key_packages(1, false).await.code(), "invalid_key_package");
    // The identity key is the old key: contacts' pins stay valid.
    let j = send(device.get("/v1/users/carol")).await.json();
    assert_eq!(common::unb64(j["signature_key"].as_str().unwrap()), legacy_key.verifying_key().to_bytes());
    ds.shutdown().await.unwrap();
}
