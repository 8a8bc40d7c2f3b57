//! Opening a home written by the last release (before the group name and
//! outbox indexes).

use openmls::prelude::SignatureScheme;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider as _;

use super::{identity_of, Client};
use crate::records::{GroupRecord, GroupState, HistoryPolicy, OutboxEntry};
use crate::storage::GroveProvider;
use crate::tls::TrustMode;

/// Writes what the last release keeps in a home: identity, signature key and
/// group records, by their raw namespaces, with no name index and no schema marker.
fn write_last_release_home(home: &std::path::Path) {
    let provider = GroveProvider::open(home).unwrap();
    let signer = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
    signer.store(provider.storage()).unwrap();
    // The identity record as the last release wrote it: six fields, no
    // identity key (a single-key home).
    #[derive(serde::Serialize)]
    struct LastReleaseIdentity {
        user: String,
        server: String,
        ciphersuite: u16,
        trust: TrustMode,
        signature_key: Vec<u8>,
        key_packages: u64,
    }
    let id = LastReleaseIdentity {
        user: "alice".into(),
        server: "http://127.0.0.1:9".into(),
        ciphersuite: 1,
        trust: TrustMode::SystemRoots,
        signature_key: signer.public().to_vec(),
        key_packages: 10,
    };
    let s = provider.storage();
    s.put_app_value("meta", b"identity", &id).unwrap();
    for (gid, name, cursor) in [(&b"gid-1"[..], Some("ops"), 3), (b"gid-2", Some("dev"), 5), (b"gid-3", None, 0)] {
        let rec = GroupRecord {
            cursor,
            leaf_since: 0,
            ..GroupRecord::fresh(name.map(str::to_owned), 0, HistoryPolicy::None, 0)
        };
        s.put_app_value("groups", gid, &rec).unwrap();
    }
    // A message whose post had an unknown outcome: the next sync posts it again.
    let unsent = OutboxEntry { group: b"gid-1".to_vec(), local: Some(0), envelope: None, message: b"mls".to_vec() };
    s.put_app_value("outbox", b"hash-1", &unsent).unwrap();
}

#[test]
fn a_home_of_the_last_release_opens_and_finds_its_groups_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    write_last_release_home(&home);
    let mut device_key = None;
    for _ in 0..2 {
        // The first open migrates (and upgrades the single key into an
        // identity with a first device); the second finds the home current.
        let client = Client::open(&home).unwrap();
        assert_eq!(client.user(), "alice");
        // The one key is now the identity key (contacts pinned exactly it):
        // the fingerprint is unchanged, and a new device key signs.
        let old_key = client.id.legacy_key.clone();
        assert!(!old_key.is_empty(), "the single key is kept until its leaves are replaced");
        assert_eq!(client.id.identity_key, old_key);
        assert_eq!(client.whoami().fingerprint, grove_proto::fingerprint(&old_key));
        assert_ne!(client.signer.public(), old_key.as_slice());
        assert_eq!(*device_key.get_or_insert(client.signer.public().to_vec()), client.signer.public(), "upgraded once");
        assert_eq!(identity_of(&client.credential()), "alice");
        let list = grove_proto::identity::DeviceList::decode(&client.id.device_list).unwrap();
        list.verify("alice", &old_key).unwrap();
        assert!(list.contains(client.signer.public()));
        assert_eq!(client.group_state("dev").unwrap(), (GroupState::Active, 5));
        let id = grove_proto::group_id_to_path(b"gid-3");
        assert_eq!(client.resolve_group(&id).unwrap(), b"gid-3");
        assert_eq!(client.groups().unwrap().len(), 3);
        let unsent = client.repo().outbox().of_group(b"gid-1").unwrap();
        assert_eq!(unsent.len(), 1);
        assert_eq!(unsent[0].0, b"hash-1");
    }
}
