//! Users with several devices on the DS (`docs/identity.md`): one commit
//! adds every device of a user (one KeyPackage claimed per device), each
//! device gets its own Welcome and reads with its own cursor, a new device
//! of a member joins by an external commit, a revoked device is shut out,
//! and link requests (made by a new device, approved once by another device
//! of its user). Real DS, real openmls peers.

mod common;

use common::{device_list, send, start, Peer, Resp};
use grove_ds::api;
use openmls::prelude::*;
use openmls_traits::signatures::Signer as _;
use tls_codec::{Deserialize as _, Serialize as _};

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

fn status(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code().as_str()), (status, code), "{}", String::from_utf8_lossy(&r.body));
}

async fn joined(base: &str, name: &str) -> Peer {
    let mut p = Peer::with_identity(base, name, SUITE);
    let r = p.register().await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    p.login().await;
    p
}

/// A second device of `first`'s user: listed (the next version, published
/// by `first`), logged in, with KeyPackages.
async fn second_device(first: &mut Peer) -> Peer {
    let id = first.identity.clone().unwrap();
    let mut d = Peer::device_of(&first.base, &first.name, SUITE, id.clone());
    let prev = first.devices.clone().unwrap();
    let mut keys: Vec<Vec<u8>> = prev.tbs.devices.iter().map(|e| e.device_key.as_slice().to_vec()).collect();
    keys.push(d.signer.public().to_vec());
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let next = device_list(&id, &first.name, Some(&prev), &refs);
    assert_eq!(first.publish_devices(&next).await.status, 201);
    first.devices = Some(next.clone());
    d.devices = Some(next);
    d.login().await;
    assert_eq!(d.upload_key_packages(1, true).await.status, 201);
    d
}

/// Claims one KeyPackage per device of `user`.
async fn claim_devices(by: &Peer, user: &str) -> (Vec<KeyPackage>, serde_json::Value) {
    let r = send(by.post(&api::routes::key_package_claim_devices(&common::user_name(user), 1))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    let kps = j["key_packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let msg = MlsMessageIn::tls_deserialize_exact(common::unb64(k["key_package"].as_str().unwrap())).unwrap();
            let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else { panic!("not a KeyPackage") };
            kp.validate(by.provider.crypto(), ProtocolVersion::Mls10).unwrap()
        })
        .collect();
    (kps, j)
}

#[tokio::test]
async fn one_commit_adds_every_device_and_each_reads_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let mut phone = joined(&base, "alice").await;
    assert_eq!(phone.upload_key_packages(1, true).await.status, 201);
    let laptop = second_device(&mut phone).await;
    let bob = joined(&base, "bob").await;

    // One package per device, in list order, each naming its device.
    let (kps, j) = claim_devices(&bob, "alice").await;
    assert_eq!(kps.len(), 2);
    assert_eq!(j["missing"].as_array().unwrap().len(), 0);
    let ids: Vec<String> =
        j["key_packages"].as_array().unwrap().iter().map(|k| k["device"].as_str().unwrap().to_owned()).collect();
    let phone_id = grove_proto::identity::device_id(phone.signer.public());
    let laptop_id = grove_proto::identity::device_id(laptop.signer.public());
    assert_eq!(ids, [phone_id.clone(), laptop_id.clone()]);

    let (mut group, gid) = bob.create_group().await;
    let (commit, welcome, gi) = group.add_members(&bob.provider, &bob.signer, &kps).unwrap();
    let r = bob.post_bundle(&gid, &commit, Some(&welcome), gi.map(MlsMessageOut::from).as_ref()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    group.merge_pending_commit(&bob.provider).unwrap();

    // Each device has the Welcome in its own inbox, and joins.
    let mut on_phone = phone.accept_welcome(&gid).await;
    let mut on_laptop = laptop.accept_welcome(&gid).await;
    // The roster lists one entry per leaf, alice's with their devices.
    let roster = send(phone.get(&api::routes::group(&common::gid_of(&gid)))).await.json();
    let mut devices: Vec<String> = roster["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["user"] == "alice")
        .map(|m| m["device"].as_str().unwrap().to_owned())
        .collect();
    devices.sort();
    let mut want = vec![phone_id.clone(), laptop_id.clone()];
    want.sort();
    assert_eq!(devices, want);

    assert_eq!(bob.send_text(&mut group, &gid, "to both").await.status, 201);
    let (mut c1, mut c2) = (0, 0);
    assert_eq!(phone.sync(&mut on_phone, &gid, &mut c1).await, ["to both"]);
    assert_eq!(laptop.sync(&mut on_laptop, &gid, &mut c2).await, ["to both"]);
    // A device posts as itself: the laptop's message is accepted from its token.
    assert_eq!(laptop.send_text(&mut on_laptop, &gid, "from the laptop").await.status, 201);
    // A device acts only as itself: the laptop's commit posted with the
    // phone's token is refused (its sender leaf is not the phone's).
    let b = on_laptop.self_update(&laptop.provider, &laptop.signer, LeafNodeParameters::default()).unwrap();
    status(&phone.post_commit_bundle(&gid, &b).await, 403, "sender_mismatch");
    on_laptop.clear_pending_commit(laptop.provider.storage()).unwrap();

    // Revocation: the phone publishes a list without the laptop; the
    // laptop's token stops working, and the phone removes its leaf.
    let id = phone.identity.clone().unwrap();
    let v3 = device_list(&id, "alice", phone.devices.as_ref(), &[phone.signer.public()]);
    assert_eq!(phone.publish_devices(&v3).await.status, 201);
    status(&send(laptop.get(&api::routes::fetch(&common::gid_of(&gid), 0, 10, None))).await, 401, "device_revoked");
    phone.sync(&mut on_phone, &gid, &mut c1).await;
    let leaf = Peer::leaf_of_key(&on_phone, laptop.signer.public());
    let (commit, _, gi) = on_phone.remove_members(&phone.provider, &phone.signer, &[leaf]).unwrap();
    let r = phone.post_bundle(&gid, &commit, None, gi.map(MlsMessageOut::from).as_ref()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    on_phone.merge_pending_commit(&phone.provider).unwrap();
    let mut cb = 0;
    bob.sync(&mut group, &gid, &mut cb).await;
    assert_eq!(group.members().count(), 2);
    // The revoked device's packages are not handed out any more.
    let (kps, _) = claim_devices(&bob, "alice").await;
    assert_eq!(kps.len(), 1);
    assert_eq!(kps[0].leaf_node().signature_key().as_slice(), phone.signer.public());
    ds.shutdown().await.unwrap();
}

/// Builds an external commit joining `gid` from the DS's GroupInfo.
async fn external_join(p: &Peer, gid: &str) -> (Resp, Option<MlsGroup>) {
    let r = send(p.get(&api::routes::group_info(&common::gid_of(gid)))).await;
    if r.status != 200 {
        return (r, None);
    }
    let msg = MlsMessageIn::tls_deserialize_exact(&r.body).unwrap();
    let MlsMessageBodyIn::GroupInfo(vgi) = msg.extract() else { panic!("not a GroupInfo") };
    let (group, bundle) = MlsGroup::external_commit_builder()
        .with_config(Peer::join_config())
        .build_group(&p.provider, vgi, p.cwk.clone())
        .unwrap()
        .load_psks(p.provider.storage())
        .unwrap()
        .build(p.provider.rand(), p.provider.crypto(), &p.signer, |_| true)
        .unwrap()
        .finalize(&p.provider)
        .unwrap();
    let r = p.post_commit_bundle(gid, &bundle).await;
    (r, Some(group))
}

#[tokio::test]
async fn a_new_device_of_a_member_joins_by_external_commit_and_no_one_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let mut phone = joined(&base, "alice").await;
    let bob = joined(&base, "bob").await;
    let carol = joined(&base, "carol").await;
    let (mut group, gid) = phone.create_group().await;
    assert_eq!(bob.upload_key_packages(1, true).await.status, 201);
    assert_eq!(phone.add(&mut group, &gid, &["bob"]).await.status, 201);
    let mut on_bob = bob.accept_welcome(&gid).await;

    // carol is no member: she can neither read the GroupInfo nor join.
    status(&send(carol.get(&api::routes::group_info(&common::gid_of(&gid)))).await, 403, "not_a_member");

    // alice's laptop, once listed, joins by itself.
    let laptop = second_device(&mut phone).await;
    let (r, on_laptop) = external_join(&laptop, &gid).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let mut on_laptop = on_laptop.unwrap();
    on_laptop.merge_pending_commit(&laptop.provider).unwrap();
    let (mut cp, mut cb, mut cl) = (0, 0, 0);
    phone.sync(&mut group, &gid, &mut cp).await;
    bob.sync(&mut on_bob, &gid, &mut cb).await;
    assert_eq!(on_bob.members().count(), 3);
    assert_eq!(bob.send_text(&mut on_bob, &gid, "after the laptop joined").await.status, 201);
    assert_eq!(laptop.sync(&mut on_laptop, &gid, &mut cl).await, ["after the laptop joined"]);

    // A device certified by bob's identity key but never listed cannot log
    // in, so it cannot join; and once bob's user is out of the group, his
    // new devices cannot join either.
    let leaf = Peer::leaf_of_key(&on_bob, bob.signer.public());
    let (commit, _, gi) = group.remove_members(&phone.provider, &phone.signer, &[leaf]).unwrap();
    let r = phone.post_bundle(&gid, &commit, None, gi.map(MlsMessageOut::from).as_ref()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    group.merge_pending_commit(&phone.provider).unwrap();
    let mut bob = bob;
    let bob2 = second_device(&mut bob).await;
    let (r, _) = external_join(&bob2, &gid).await;
    status(&r, 403, "not_a_member");
    ds.shutdown().await.unwrap();
}

#[tokio::test]
async fn link_requests_are_approved_once_by_a_device_of_the_same_user() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let mut phone = joined(&base, "alice").await;
    let bob = joined(&base, "bob").await;
    let id = phone.identity.clone().unwrap();
    let laptop = Peer::device_of(&base, "alice", SUITE, id.clone());

    let request = |user: &str, key: &[u8]| grove_proto::link::LinkRequest {
        tbs: grove_proto::link::LinkRequestTbs {
            user: user.as_bytes().to_vec().into(),
            device_key: key.to_vec().into(),
            signature_scheme: grove_proto::identity::ED25519,
            hpke_public: vec![7; 32].into(),
            ciphersuite: 1,
            label: b"laptop".to_vec().into(),
            created_at: 1,
        },
        mac: vec![1; 32].into(),
    };
    let post = |p: &Peer,
                user: &str,
                req: &grove_proto::link::LinkRequest,
                signer: &openmls_basic_credential::SignatureKeyPair| {
        let bytes = req.tls_serialize_detached().unwrap();
        let proof = signer.sign(&grove_proto::identity::labeled(grove_proto::link::LINK_PROOF_LABEL, &bytes)).unwrap();
        let body = serde_json::json!({ "request": common::b64(&bytes), "proof": common::b64(&proof) });
        let url = format!("{}{}", p.base, api::routes::user_links(&common::user_name(user)));
        send(p.http.post(url).json(&body))
    };
    let req = request("alice", laptop.signer.public());
    // Signed by another key than the request's device key: refused.
    status(&post(&laptop, "alice", &req, &bob.signer).await, 401, "bad_signature");
    // A request for alice posted under bob's name: refused.
    status(&post(&laptop, "bob", &req, &laptop.signer).await, 400, "link_invalid");
    // A device alice has already: refused.
    let dup = request("alice", phone.signer.public());
    status(&post(&phone, "alice", &dup, &phone.signer).await, 400, "link_invalid");
    // A user without an identity key (one key, made before devices) cannot link.
    let dave = Peer::join(&base, "dave", SUITE).await;
    let legacy = request("dave", laptop.signer.public());
    status(&post(&dave, "dave", &legacy, &laptop.signer).await, 400, "link_invalid");
    let r = post(&laptop, "alice", &req, &laptop.signer).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let link_id = r.json()["id"].as_str().unwrap().to_owned();
    let link_url = format!("{base}{}", api::routes::link(&link_id));

    // Anyone with the id reads the request; there is no approval yet.
    let j = send(laptop.http.get(&link_url)).await.json();
    assert_eq!(common::unb64(j["request"].as_str().unwrap()), req.tls_serialize_detached().unwrap());
    assert!(j.get("approval").is_none());
    status(
        &send(laptop.http.get(format!("{base}{}", api::routes::link("AAAAAAAAAAAAAAAAAAAAAA")))).await,
        404,
        "unknown_link",
    );

    let approve = |p: &Peer| {
        send(
            p.post(&api::routes::link_approval(&link_id))
                .json(&serde_json::json!({ "approval": common::b64(b"sealed") })),
        )
    };
    // Only a device of alice approves; and only once the list holds the laptop.
    status(&approve(&bob).await, 403, "not_a_member");
    status(&approve(&phone).await, 400, "link_invalid");
    let v2 = device_list(&id, "alice", phone.devices.as_ref(), &[phone.signer.public(), laptop.signer.public()]);
    assert_eq!(phone.publish_devices(&v2).await.status, 201);
    phone.devices = Some(v2);
    assert_eq!(approve(&phone).await.status, 204);
    // The same code again (a replay) is refused.
    status(&approve(&phone).await, 409, "link_used");
    let j = send(laptop.http.get(&link_url)).await.json();
    assert_eq!(common::unb64(j["approval"].as_str().unwrap()), b"sealed");
    ds.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_link_request_needs_the_app_login_when_the_ds_requires_one() {
    let dir = tempfile::tempdir().unwrap();
    let auth = grove_ds::testing::AuthServer::ed25519();
    let ds = common::start_with(dir.path(), |c| auth.configure(c, dir.path())).await;
    let base = ds.url();
    // With the login required, a link request without the app's JWT is refused.
    let laptop = Peer::with_identity(&base, "alice", SUITE);
    let req = grove_proto::link::LinkRequest {
        tbs: grove_proto::link::LinkRequestTbs {
            user: b"alice".to_vec().into(),
            device_key: laptop.signer.public().to_vec().into(),
            signature_scheme: grove_proto::identity::ED25519,
            hpke_public: vec![7; 32].into(),
            ciphersuite: 1,
            label: Vec::new().into(),
            created_at: 1,
        },
        mac: vec![1; 32].into(),
    };
    let bytes = req.tls_serialize_detached().unwrap();
    let proof =
        laptop.signer.sign(&grove_proto::identity::labeled(grove_proto::link::LINK_PROOF_LABEL, &bytes)).unwrap();
    let url = format!("{base}{}", api::routes::user_links(&common::user_name("alice")));
    let body = serde_json::json!({ "request": common::b64(&bytes), "proof": common::b64(&proof) });
    status(&send(laptop.http.post(&url).json(&body)).await, 401, "login_token_required");
    let mut body = body;
    body["login_token"] = serde_json::json!(auth.login("mallory"));
    status(&send(laptop.http.post(&url).json(&body)).await, 401, "login_token_subject_mismatch");
    ds.shutdown().await.unwrap();
}

/// A device restored from a backup has the identity key but no token: it
/// reads the lists without one and publishes the next list without one.
/// Only a list the identity key signed, following the stored one, is taken.
#[tokio::test]
async fn a_restored_device_publishes_its_list_with_the_identity_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let base = ds.url();
    let phone = joined(&base, "alice").await;
    let id = phone.identity.clone().unwrap();
    let mut restored = Peer::device_of(&base, "alice", SUITE, id.clone());
    let anon = common::http();
    let lists = send(anon.get(format!("{base}{}", api::routes::user_devices(&common::user_name("alice"), 0)))).await;
    assert_eq!(lists.json()["lists"].as_array().unwrap().len(), 1, "read without a token");
    let url = format!("{base}{}", api::routes::user_devices_restore(&common::user_name("alice")));
    let publish = |list: &grove_proto::identity::DeviceList| {
        send(anon.post(&url).json(&serde_json::json!({ "device_list": common::b64(&list.encode()) })))
    };
    let keys = [phone.signer.public(), restored.signer.public()];
    // Signed by another key: refused. A version that does not follow: refused.
    let thief = ed25519_dalek::SigningKey::from_bytes(&common::rand_bytes());
    status(&publish(&device_list(&thief, "alice", phone.devices.as_ref(), &keys)).await, 400, "device_list_invalid");
    status(&publish(&device_list(&id, "alice", None, &keys)).await, 409, "device_list_conflict");
    let v2 = device_list(&id, "alice", phone.devices.as_ref(), &keys);
    assert_eq!(publish(&v2).await.status, 201);
    restored.devices = Some(v2);
    restored.login().await;
    assert_eq!(restored.upload_key_packages(1, true).await.status, 201);
    ds.shutdown().await.unwrap();
}

/// An identity reset re-binds a taken name to a new identity key, with the
/// app's login when the DS requires one: the old devices are out at once,
/// and the lists start again at version 1 under the new key.
#[tokio::test]
async fn an_identity_reset_needs_the_app_login_and_cuts_off_the_old_devices() {
    let dir = tempfile::tempdir().unwrap();
    let auth = grove_ds::testing::AuthServer::ed25519();
    let ds = common::start_with(dir.path(), |c| auth.configure(c, dir.path())).await;
    let base = ds.url();
    let register = |p: &Peer, reset: bool, token: Option<String>| {
        let mut body = p.register_body();
        body["reset"] = serde_json::json!(reset);
        if let Some(t) = token {
            body["login_token"] = serde_json::json!(t);
        }
        send(p.http.post(format!("{base}{}", api::routes::USERS)).json(&body))
    };
    let mut old = Peer::with_identity(&base, "alice", SUITE);
    assert_eq!(register(&old, false, Some(auth.login("alice"))).await.status, 201);
    old.login().await;
    let mut new = Peer::with_identity(&base, "alice", SUITE);
    // Without the reset flag, the name is taken; with it, the app's login decides.
    status(&register(&new, false, Some(auth.login("alice"))).await, 409, "user_exists");
    status(&register(&new, true, None).await, 401, "login_token_required");
    status(&register(&new, true, Some(auth.login("mallory"))).await, 401, "login_token_subject_mismatch");
    let r = register(&new, true, Some(auth.login("alice"))).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // The old device's token and login are refused; the new device logs in.
    status(&send(old.get("/v1/key-packages?ciphersuite=1")).await, 401, "device_revoked");
    status(&old.try_login().await, 401, "device_revoked");
    new.login().await;
    let j = send(new.get("/v1/users/alice")).await.json();
    assert_eq!(
        common::unb64(j["signature_key"].as_str().unwrap()),
        new.identity.as_ref().unwrap().verifying_key().to_bytes()
    );
    let lists = send(new.get(&api::routes::user_devices(&common::user_name("alice"), 0))).await.json();
    assert_eq!(lists["lists"].as_array().unwrap().len(), 1, "the new identity's chain starts at version 1");
    ds.shutdown().await.unwrap();
}
