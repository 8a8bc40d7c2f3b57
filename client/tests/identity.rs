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
