//! A new home has an identity key and is its first device (`docs/identity.md`):
//! the DS holds the signed device list, the MLS leaf is the device key with
//! its certificate, and contacts pin, show and compare the identity key.

mod common;

use common::{ds_with_pair, SUITES};
use grove_client::KeyStatus;
use grove_proto::identity::DeviceList;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_home_is_the_first_device_of_its_identity() {
    for suite in SUITES {
        let dir = tempfile::tempdir().unwrap();
        let (ds, alice, bob) = ds_with_pair(dir.path(), suite, "ops").await;
        let (wa, wb) = (alice.whoami(), bob.whoami());

        // The DS holds version 1 of alice's list, signed by the identity key
        // whose fingerprint alice shows; the one device in it is not that key.
        let bytes = ds.ds.store().latest_device_list("alice").await.unwrap().expect("alice has a device list");
        let list = DeviceList::decode(&bytes).unwrap();
        let identity_key = list.tbs.identity_key.as_slice().to_vec();
        list.verify("alice", &identity_key).unwrap();
        assert_eq!(list.version(), 1);
        assert_eq!(grove_proto::fingerprint(&identity_key), wa.fingerprint);
        assert_eq!(list.tbs.devices.len(), 1);
        assert_ne!(
            list.tbs.devices[0].device_key.as_slice(),
            identity_key.as_slice(),
            "the identity key never signs MLS"
        );

        // bob sees alice by her identity key: pinned, same fingerprint, and
        // both compute the same safety number on the identity keys.
        let members = bob.members("ops").unwrap();
        let a = members.iter().find(|m| m.user == "alice").unwrap();
        assert_eq!((a.fingerprint.as_str(), a.key), (wa.fingerprint.as_str(), KeyStatus::Pinned));
        let own = members.iter().find(|m| m.user == "bob").unwrap();
        assert_eq!((own.fingerprint.as_str(), own.key), (wb.fingerprint.as_str(), KeyStatus::Own));
        let (na, nb) = (alice.verify("bob", false).await.unwrap(), bob.verify("alice", false).await.unwrap());
        assert_eq!(na.number, nb.number);
        let bob_identity = registered_key(&ds, "bob").await;
        assert_eq!(grove_proto::fingerprint(&bob_identity), wb.fingerprint);
        assert_eq!(na.number, grove_client::safety_number("alice", &identity_key, "bob", &bob_identity));
        // The contact code names the identity key.
        assert!(bob.contact_code().ends_with(&wb.fingerprint));

        // Messages flow as before.
        alice.send("ops", "hello from a device").await.unwrap();
        bob.sync().await.unwrap();
        assert_eq!(common::texts(&bob, "ops"), ["alice: hello from a device"]);
        ds.shutdown().await.unwrap();
    }
}

/// The key the DS registered for `user` (its identity key).
async fn registered_key(ds: &grove_ds::testing::TestServer, user: &str) -> Vec<u8> {
    ds.ds.store().user(user).await.unwrap().unwrap().signature_key.as_slice().to_vec()
}

/// A malicious DS serves bob's device list with a device of its own (a list
/// it signed itself, since it has no identity key), or takes bob's list
/// away: alice refuses to add bob, says why, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_list_the_identity_key_did_not_sign_is_refused() {
    use grove_proto::identity::{DeviceList, DeviceListTbs};
    let dir = tempfile::tempdir().unwrap();
    let ds = common::start_ds(dir.path()).await;
    let (proxy, evil, _) = common::evil::start(&ds.url()).await;
    let alice =
        grove_client::Client::create(dir.path().join("alice"), common::config(&proxy, "alice", 1)).await.unwrap();
    let bob = common::new_client(dir.path(), &ds.url(), "bob", 1).await;
    alice.create_group("one").await.unwrap();
    alice.add_members("one", &["bob"]).await.unwrap();
    bob.sync().await.unwrap();

    // Version 2 "signed" by a key the DS controls, adding its own device.
    let real = DeviceList::decode(&ds.ds.store().latest_device_list("bob").await.unwrap().unwrap()).unwrap();
    let dsk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut tbs: DeviceListTbs = real.tbs.clone();
    tbs.version = 2;
    tbs.previous = real.hash().into();
    tbs.devices.push(grove_proto::identity::DeviceEntry { device_key: vec![7; 32].into(), ..tbs.devices[0].clone() });
    let forged = DeviceList::new(tbs, |m| ed25519_dalek::Signer::sign(&dsk, m).to_bytes().to_vec());
    *evil.fake_bob_list.lock().unwrap() = Some(Some(forged.encode()));
    alice.create_group("two").await.unwrap();
    let e = alice.add_members("two", &["bob"]).await.unwrap_err();
    assert!(matches!(e, grove_client::Error::DeviceListRejected { ref user, .. } if user == "bob"), "{e}");
    assert!(e.to_string().contains("signature"), "{e}");

    // The DS takes bob's list away (as if bob were a single-key user again).
    *evil.fake_bob_list.lock().unwrap() = Some(None);
    let e = alice.add_members("two", &["bob"]).await.unwrap_err();
    assert!(e.to_string().contains("rollback"), "{e}");

    // Honest again: the add goes through, and bob is in.
    *evil.fake_bob_list.lock().unwrap() = None;
    alice.add_members("two", &["bob"]).await.unwrap();
    bob.sync().await.unwrap();
    assert!(alice.members("two").unwrap().iter().any(|m| m.user == "bob"));
    ds.shutdown().await.unwrap();
}

/// `Client::identity_backup`: the identity key and pins sealed under a
/// passphrase; nothing readable in the file; only the passphrase opens it;
/// a changed header or ciphertext is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_backup_opens_only_with_its_passphrase() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let (ds, alice, bob) = ds_with_pair(dir.path(), 1, "ops").await;
    let pass = "correct horse battery staple";
    assert!(alice.identity_backup("short").is_err(), "a short passphrase is refused");
    let file = alice.identity_backup(pass).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    let ik = registered_key(&ds, "alice").await;
    for needle in [hex::encode(&ik), base64::engine::general_purpose::STANDARD.encode(&ik), alice.whoami().fingerprint]
    {
        assert!(!text.contains(&needle), "the backup shows {needle} in the clear");
    }
    let b = grove_client::open_identity_backup(&file, pass).unwrap();
    assert_eq!((b.user.as_str(), b.identity_key.as_slice()), ("alice", ik.as_slice()));
    assert!(b.is_consistent());
    let bob_key = registered_key(&ds, "bob").await;
    assert!(b.contacts.iter().any(|(u, k, _)| u == "bob" && *k == bob_key), "{b:?}");

    let wrong = grove_client::open_identity_backup(&file, "not the passphrase at all").unwrap_err();
    assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
    // The header is bound to the ciphertext: weaker KDF costs are refused.
    let mut j: serde_json::Value = serde_json::from_slice(&file).unwrap();
    j["t_cost"] = serde_json::json!(1);
    let e = grove_client::open_identity_backup(&serde_json::to_vec(&j).unwrap(), pass).unwrap_err();
    assert!(e.to_string().contains("wrong passphrase, or the backup file was changed"), "{e}");
    assert!(grove_client::open_identity_backup(b"{}", pass).is_err());
    drop(bob);
    ds.shutdown().await.unwrap();
}
