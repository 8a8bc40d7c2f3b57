//! The sled storage provider with real openmls groups: full flows across
//! restarts, atomic rollback, corrupt values, format marker, and list semantics
//! compared with `openmls_memory_storage`.

use std::error::Error;
use std::path::Path;

use grove_client::storage::{GroveProvider, SledStorage, StorageError, TxnProvider, ValueCodec, DB_DIR_NAME};
use openmls::prelude::hash_ref::ProposalRef;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_memory_storage::MemoryStorage;
use openmls_traits::storage::{traits, Entity, Key, StorageProvider, CURRENT_VERSION};
use serde::{Deserialize, Serialize};
use tls_codec::{Deserialize as _, Serialize as _};

type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

const SUITES: [Ciphersuite; 2] = [
    Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
];

/// One client: its provider (on its own sled store), signer and credential.
struct Client {
    provider: GroveProvider,
    signer: SignatureKeyPair,
    cwk: CredentialWithKey,
}

/// Creates an identity and stores the signer plus an app record naming its
/// public key, in one transaction.
fn new_client(home: &Path, name: &str, cs: Ciphersuite) -> TestResult<Client> {
    let provider = GroveProvider::open(home)?;
    let signer = SignatureKeyPair::new(cs.signature_algorithm())?;
    provider.transaction(|p| -> TestResult {
        signer.store(p.storage())?;
        p.storage().put_app("identity", b"signature_key", signer.public())?;
        Ok(())
    })?;
    let cwk = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.public().into(),
    };
    Ok(Client { provider, signer, cwk })
}

/// Reopens a client from disk: the store, then the signer found through the
/// app record.
fn reopen_client(home: &Path, name: &str, cs: Ciphersuite) -> TestResult<Client> {
    let provider = GroveProvider::open(home)?;
    let public = provider.storage().get_app("identity", b"signature_key")?.ok_or("no identity record")?;
    let signer =
        SignatureKeyPair::read(provider.storage(), &public, cs.signature_algorithm()).ok_or("signer not in store")?;
    let cwk = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.public().into(),
    };
    Ok(Client { provider, signer, cwk })
}

fn create_config(cs: Ciphersuite) -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(cs)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

fn to_wire(msg: &MlsMessageOut) -> TestResult<Vec<u8>> {
    Ok(msg.tls_serialize_detached()?)
}

fn protocol_message(bytes: &[u8]) -> TestResult<ProtocolMessage> {
    Ok(MlsMessageIn::tls_deserialize_exact(bytes)?.try_into_protocol_message()?)
}

fn key_package(c: &Client, cs: Ciphersuite) -> TestResult<KeyPackage> {
    let bundle = c.provider.transaction(|p| -> TestResult<KeyPackageBundle> {
        Ok(KeyPackage::builder().build(cs, p, &c.signer, c.cwk.clone())?)
    })?;
    Ok(bundle.key_package().clone())
}

/// Sends an application message in one transaction that also records it in the
/// app's history (namespace "history", key = 8-byte counter).
fn send(c: &Client, group: &mut MlsGroup, text: &[u8]) -> TestResult<Vec<u8>> {
    c.provider.transaction(|p| -> TestResult<Vec<u8>> {
        let out = group.create_message(p, &c.signer, text)?;
        record_history(p, group, text)?;
        to_wire(&out)
    })
}

fn record_history(p: &TxnProvider<'_>, group: &MlsGroup, text: &[u8]) -> TestResult {
    let ns = format!("history/{}", hex::encode(group.group_id().as_slice()));
    let n = p.storage().scan_prefix_app(&ns, b"")?.len() as u64;
    p.storage().put_app(&ns, &n.to_be_bytes(), text)?;
    Ok(())
}

fn history(c: &Client, group_id: &GroupId) -> TestResult<Vec<Vec<u8>>> {
    let ns = format!("history/{}", hex::encode(group_id.as_slice()));
    Ok(c.provider.storage().scan_prefix_app(&ns, b"")?.into_iter().map(|(_, v)| v).collect())
}

/// Receives one application message (decrypt + history record in one transaction).
fn receive_app(c: &Client, group: &mut MlsGroup, bytes: &[u8]) -> TestResult<Vec<u8>> {
    c.provider.transaction(|p| -> TestResult<Vec<u8>> {
        let processed = group.process_message(p, protocol_message(bytes)?)?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => {
                let text = m.into_bytes();
                record_history(p, group, &text)?;
                Ok(text)
            }
            _ => Err("expected an application message".into()),
        }
    })
}

/// Receives and merges one commit.
fn receive_commit(c: &Client, group: &mut MlsGroup, bytes: &[u8]) -> TestResult {
    c.provider.transaction(|p| -> TestResult {
        let processed = group.process_message(p, protocol_message(bytes)?)?;
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(p, *staged)?;
                Ok(())
            }
            _ => Err("expected a commit".into()),
        }
    })
}

/// Self-update committed and merged by the committer in one transaction.
fn self_update(c: &Client, group: &mut MlsGroup) -> TestResult<Vec<u8>> {
    c.provider.transaction(|p| -> TestResult<Vec<u8>> {
        let bundle = group.self_update(p, &c.signer, LeafNodeParameters::default())?;
        group.merge_pending_commit(p)?;
        to_wire(bundle.commit())
    })
}

/// Alice creates a group and adds Bob, who joins from the Welcome with his own store.
fn setup_pair(alice: &Client, bob: &Client, cs: Ciphersuite) -> TestResult<(MlsGroup, MlsGroup)> {
    let bob_kp = key_package(bob, cs)?;
    let mut ag = alice.provider.transaction(|p| -> TestResult<MlsGroup> {
        let g = MlsGroup::new(p, &alice.signer, &create_config(cs), alice.cwk.clone())?;
        p.storage().put_app("groups", g.group_id().as_slice(), b"")?;
        Ok(g)
    })?;
    let welcome = alice.provider.transaction(|p| -> TestResult<Vec<u8>> {
        let (_commit, welcome, _info) = ag.add_members(p, &alice.signer, &[bob_kp])?;
        ag.merge_pending_commit(p)?;
        to_wire(&welcome)
    })?;
    let bg = bob.provider.transaction(|p| -> TestResult<MlsGroup> {
        let MlsMessageBodyIn::Welcome(w) = MlsMessageIn::tls_deserialize_exact(&welcome)?.extract() else {
            return Err("expected a Welcome".into());
        };
        let g = StagedWelcome::new_from_welcome(p, &join_config(), w, None)?.into_group(p)?;
        p.storage().put_app("groups", g.group_id().as_slice(), b"")?;
        Ok(g)
    })?;
    Ok((ag, bg))
}

fn assert_in_sync(a: &MlsGroup, b: &MlsGroup) {
    assert_eq!(a.epoch(), b.epoch());
    assert_eq!(a.epoch_authenticator().as_slice(), b.epoch_authenticator().as_slice());
}

fn load(c: &Client, gid: &GroupId) -> TestResult<MlsGroup> {
    Ok(MlsGroup::load(c.provider.storage(), gid)?.ok_or("group not in store")?)
}

#[test]
fn full_flow_survives_restart() -> TestResult {
    for cs in SUITES {
        let dir = tempfile::tempdir()?;
        let (ah, bh) = (dir.path().join("alice"), dir.path().join("bob"));
        let alice = new_client(&ah, "alice", cs)?;
        let bob = new_client(&bh, "bob", cs)?;
        let (mut ag, mut bg) = setup_pair(&alice, &bob, cs)?;
        assert_in_sync(&ag, &bg);
        assert_eq!(ag.epoch().as_u64(), 1);
        assert_eq!(bg.members().count(), 2);

        let m = send(&alice, &mut ag, b"hello bob")?;
        assert_eq!(receive_app(&bob, &mut bg, &m)?, b"hello bob");
        let m = send(&bob, &mut bg, b"hello alice")?;
        assert_eq!(receive_app(&alice, &mut ag, &m)?, b"hello alice");

        let commit = self_update(&bob, &mut bg)?;
        receive_commit(&alice, &mut ag, &commit)?;
        assert_in_sync(&ag, &bg);
        assert_eq!(ag.epoch().as_u64(), 2);

        let gid = ag.group_id().clone();
        let epoch = ag.epoch();
        let auth = ag.epoch_authenticator().as_slice().to_vec();
        drop((ag, bg, alice, bob));

        // Reopen both stores from disk.
        let alice = reopen_client(&ah, "alice", cs)?;
        let bob = reopen_client(&bh, "bob", cs)?;
        let mut ag = load(&alice, &gid)?;
        let mut bg = load(&bob, &gid)?;
        assert_eq!(ag.epoch(), epoch);
        assert_eq!(ag.epoch_authenticator().as_slice(), auth.as_slice());
        assert_in_sync(&ag, &bg);
        // App records committed with the MLS operations are there too.
        assert_eq!(history(&alice, &gid)?, vec![b"hello bob".to_vec(), b"hello alice".to_vec()]);
        assert_eq!(history(&bob, &gid)?.len(), 2);
        assert!(alice.provider.storage().get_app("groups", gid.as_slice())?.is_some());

        // They continue: messages both ways, then another commit.
        let m = send(&alice, &mut ag, b"after restart")?;
        assert_eq!(receive_app(&bob, &mut bg, &m)?, b"after restart");
        let m = send(&bob, &mut bg, b"still here")?;
        assert_eq!(receive_app(&alice, &mut ag, &m)?, b"still here");
        let commit = self_update(&alice, &mut ag)?;
        receive_commit(&bob, &mut bg, &commit)?;
        assert_in_sync(&ag, &bg);
        assert_eq!(ag.epoch().as_u64(), 3);
        let m = send(&bob, &mut bg, b"epoch 3")?;
        assert_eq!(receive_app(&alice, &mut ag, &m)?, b"epoch 3");
    }
    Ok(())
}

#[test]
fn rolled_back_operation_leaves_previous_state() -> TestResult {
    for cs in SUITES {
        let dir = tempfile::tempdir()?;
        let (ah, bh) = (dir.path().join("alice"), dir.path().join("bob"));
        let alice = new_client(&ah, "alice", cs)?;
        let bob = new_client(&bh, "bob", cs)?;
        let (mut ag, mut bg) = setup_pair(&alice, &bob, cs)?;
        let gid = ag.group_id().clone();
        let epoch = ag.epoch();
        let auth = ag.epoch_authenticator().as_slice().to_vec();

        // 1. Interrupted before flush: the commit is merged in the overlay, then
        //    the transaction is dropped without committing.
        {
            let p = alice.provider.begin();
            ag.self_update(&p, &alice.signer, LeafNodeParameters::default())?;
            ag.merge_pending_commit(&p)?;
            p.storage().put_app("groups", gid.as_slice(), b"advanced")?;
            assert!(p.storage().pending_writes() > 0);
            assert_eq!(ag.epoch().as_u64(), epoch.as_u64() + 1);
            // Read-your-writes: the overlay holds the new epoch.
            assert_eq!(load_in(&p, &gid)?.epoch(), ag.epoch());
            drop(p);
        }
        // 2. An operation that fails after writing: `transaction` rolls back.
        let result = alice.provider.transaction(|p| -> TestResult {
            let mut g = load_in(p, &gid)?;
            g.self_update(p, &alice.signer, LeafNodeParameters::default())?;
            g.merge_pending_commit(p)?;
            p.storage().put_app("groups", gid.as_slice(), b"advanced")?;
            Err("the DS refused the commit".into())
        });
        assert!(result.is_err());

        // Same provider: the stored group is still at the old epoch.
        let ag = load(&alice, &gid)?;
        assert_eq!(ag.epoch(), epoch);
        drop((ag, alice));

        // Reopen: previous state intact, and it still works with Bob.
        let alice = reopen_client(&ah, "alice", cs)?;
        let mut ag = load(&alice, &gid)?;
        assert_eq!(ag.epoch(), epoch);
        assert_eq!(ag.epoch_authenticator().as_slice(), auth.as_slice());
        assert_eq!(alice.provider.storage().get_app("groups", gid.as_slice())?, Some(Vec::new()));
        let m = send(&alice, &mut ag, b"nothing happened")?;
        assert_eq!(receive_app(&bob, &mut bg, &m)?, b"nothing happened");
        let commit = self_update(&alice, &mut ag)?;
        receive_commit(&bob, &mut bg, &commit)?;
        assert_in_sync(&ag, &bg);
        assert_eq!(ag.epoch().as_u64(), epoch.as_u64() + 1);
    }
    Ok(())
}

fn load_in(p: &TxnProvider<'_>, gid: &GroupId) -> TestResult<MlsGroup> {
    Ok(MlsGroup::load(p.storage(), gid)?.ok_or("group not in store")?)
}

#[test]
fn corrupt_values_give_errors_not_panics() -> TestResult {
    let cs = SUITES[0];
    let dir = tempfile::tempdir()?;
    let (ah, bh) = (dir.path().join("alice"), dir.path().join("bob"));
    let alice = new_client(&ah, "alice", cs)?;
    let bob = new_client(&bh, "bob", cs)?;
    let (ag, _bg) = setup_pair(&alice, &bob, cs)?;
    let gid = ag.group_id().clone();
    drop((ag, alice));

    // Open the raw sled database and a store on the same handle.
    let db = sled::open(SledStorage::db_path(&ah))?;
    let store: SledStorage = SledStorage::from_db(db.clone())?;
    assert!(MlsGroup::load(&store, &gid)?.is_some());

    let mut checked = 0;
    for label in [
        "Tree",
        "GroupContext",
        "InterimTranscriptHash",
        "ConfirmationTag",
        "GroupState",
        "MessageSecrets",
        "ResumptionPsk",
        "OwnLeafNodeIndex",
        "EpochSecrets",
        "MlsGroupJoinConfig",
    ] {
        let mut prefix = vec![0x01];
        prefix.extend_from_slice(label.as_bytes());
        prefix.push(0);
        let entries: Vec<_> = db.scan_prefix(&prefix).collect::<Result<_, _>>()?;
        assert_eq!(entries.len(), 1, "one {label} value for one group");
        let (key, original) = &entries[0];
        let half = original[..original.len() / 2].to_vec();
        for bad in [Vec::new(), half, vec![0xc1], vec![0xff; 64]] {
            db.insert(key, bad)?;
            match MlsGroup::load(&store, &gid) {
                Err(StorageError::Corrupt { what, .. }) => assert_eq!(what, label),
                other => panic!("{label}: expected Corrupt, got {:?}", other.map(|g| g.is_some())),
            }
        }
        db.insert(key, original.clone())?;
        checked += 1;
    }
    assert_eq!(checked, 10);
    assert!(MlsGroup::load(&store, &gid)?.is_some());

    // A corrupt list (own leaf nodes) and a corrupt app record decode to errors too.
    let mut list_key = vec![0x01];
    list_key.extend_from_slice(b"OwnLeafNodes\0");
    list_key.extend_from_slice(&rmp_serde::to_vec(&gid)?);
    db.insert(&list_key, &[0x92, 0xc4][..])?;
    assert!(matches!(MlsGroup::load(&store, &gid), Err(StorageError::Corrupt { .. })));
    Ok(())
}

/// A second codec, only to check that the marker catches a codec change.
struct Json;
impl ValueCodec for Json {
    const NAME: &'static str = "json";
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

#[test]
fn format_marker_is_checked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("h");
    drop(SledStorage::open(&home)?);
    // Reopening with the same build works.
    drop(SledStorage::open(&home)?);
    // Another codec is refused with a clear error.
    let err = SledStorage::<Json>::open_with_codec(&home).unwrap_err();
    assert!(matches!(err, StorageError::IncompatibleFormat { .. }), "{err}");
    assert!(err.to_string().contains("codec=msgpack"), "{err}");

    // A future layout version is refused.
    let db = sled::open(home.join(DB_DIR_NAME))?;
    db.insert(b"\x00format", &b"grove-client-store v999 codec=msgpack openmls-storage=1"[..])?;
    drop(db);
    let err = SledStorage::open(&home).unwrap_err();
    assert!(matches!(err, StorageError::IncompatibleFormat { .. }), "{err}");

    // A sled database with data but no marker is not taken for a Grove store.
    let other = dir.path().join("other");
    std::fs::create_dir(&other)?;
    let db = sled::open(other.join(DB_DIR_NAME))?;
    db.insert(b"k", b"v")?;
    drop(db);
    assert!(matches!(SledStorage::open(&other), Err(StorageError::MissingFormatMarker)));
    Ok(())
}

#[cfg(unix)]
#[test]
fn home_directory_is_owner_only() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("a").join("grove");
    drop(SledStorage::open(&home)?);
    assert_eq!(std::fs::metadata(&home)?.permissions().mode() & 0o777, 0o700);

    let loose = dir.path().join("loose");
    std::fs::create_dir(&loose)?;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755))?;
    drop(SledStorage::open(&loose)?);
    assert_eq!(std::fs::metadata(&loose)?.permissions().mode() & 0o777, 0o700);
    Ok(())
}

// ---- list semantics, compared with openmls_memory_storage ----

macro_rules! test_entity {
    ($name:ident: $($tr:ident),*) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct $name(Vec<u8>);
        impl Entity<CURRENT_VERSION> for $name {}
        $(impl traits::$tr<CURRENT_VERSION> for $name {})*
    };
}
test_entity!(TProposal: QueuedProposal);
test_entity!(TLeaf: LeafNode);
test_entity!(THpke: HpkeKeyPair);
test_entity!(TTree: TreeSync);
test_entity!(TKeyPackage: KeyPackage);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TRef(u32);
impl Entity<CURRENT_VERSION> for TRef {}
impl Key<CURRENT_VERSION> for TRef {}
impl traits::ProposalRef<CURRENT_VERSION> for TRef {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct THashRef(Vec<u8>);
impl Key<CURRENT_VERSION> for THashRef {}
impl traits::HashReference<CURRENT_VERSION> for THashRef {}

/// Runs one scripted sequence against a provider, asserting the expected
/// results, and returns a trace of every read for cross-provider comparison.
fn list_semantics<S: StorageProvider<CURRENT_VERSION>>(s: &S) -> Result<Vec<String>, S::Error> {
    let g = GroupId::from_slice(b"group-1");
    let other = GroupId::from_slice(b"group-2");
    let mut trace = Vec::new();
    let p = |i: u8| TProposal(vec![i; 3]);

    let refs: Vec<TRef> = s.queued_proposal_refs(&g)?;
    assert!(refs.is_empty());
    for i in 1..=3u8 {
        s.queue_proposal(&g, &TRef(u32::from(i)), &p(i))?;
    }
    s.queue_proposal(&other, &TRef(1), &p(9))?;
    let refs: Vec<TRef> = s.queued_proposal_refs(&g)?;
    assert_eq!(refs, vec![TRef(1), TRef(2), TRef(3)]);
    trace.push(format!("{refs:?}"));

    s.remove_proposal(&g, &TRef(2))?;
    let all: Vec<(TRef, TProposal)> = s.queued_proposals(&g)?;
    assert_eq!(all, vec![(TRef(1), p(1)), (TRef(3), p(3))]);
    trace.push(format!("{all:?}"));

    s.remove_proposal(&g, &TRef(42))?; // absent: no change
    let refs: Vec<TRef> = s.queued_proposal_refs(&g)?;
    assert_eq!(refs, vec![TRef(1), TRef(3)]);

    s.clear_proposal_queue::<GroupId, TRef>(&g)?;
    let all: Vec<(TRef, TProposal)> = s.queued_proposals(&g)?;
    assert!(all.is_empty());
    s.queue_proposal(&g, &TRef(4), &p(4))?;
    let all: Vec<(TRef, TProposal)> = s.queued_proposals(&g)?;
    assert_eq!(all, vec![(TRef(4), p(4))]);
    trace.push(format!("{all:?}"));
    // The other group's queue is untouched.
    let all: Vec<(TRef, TProposal)> = s.queued_proposals(&other)?;
    assert_eq!(all, vec![(TRef(1), p(9))]);

    // Own leaf nodes.
    let leaves: Vec<TLeaf> = s.own_leaf_nodes(&g)?;
    assert!(leaves.is_empty());
    s.append_own_leaf_node(&g, &TLeaf(vec![1]))?;
    s.append_own_leaf_node(&g, &TLeaf(vec![2]))?;
    let leaves: Vec<TLeaf> = s.own_leaf_nodes(&g)?;
    assert_eq!(leaves, vec![TLeaf(vec![1]), TLeaf(vec![2])]);
    trace.push(format!("{leaves:?}"));
    s.delete_own_leaf_nodes(&g)?;
    s.append_own_leaf_node(&g, &TLeaf(vec![3]))?;
    let leaves: Vec<TLeaf> = s.own_leaf_nodes(&g)?;
    assert_eq!(leaves, vec![TLeaf(vec![3])]);

    // Encryption epoch key pairs, keyed by (group, epoch, leaf index).
    let e3 = GroupEpoch::from(3);
    let pairs = [THpke(vec![7]), THpke(vec![8])];
    s.write_encryption_epoch_key_pairs(&g, &e3, 0, &pairs)?;
    let got: Vec<THpke> = s.encryption_epoch_key_pairs(&g, &e3, 0)?;
    assert_eq!(got, pairs.to_vec());
    trace.push(format!("{got:?}"));
    let got: Vec<THpke> = s.encryption_epoch_key_pairs(&g, &e3, 1)?;
    assert!(got.is_empty());
    let got: Vec<THpke> = s.encryption_epoch_key_pairs(&g, &GroupEpoch::from(4), 0)?;
    assert!(got.is_empty());
    s.delete_encryption_epoch_key_pairs(&g, &e3, 0)?;
    let got: Vec<THpke> = s.encryption_epoch_key_pairs(&g, &e3, 0)?;
    assert!(got.is_empty());

    // Single values: overwrite and delete.
    s.write_tree(&g, &TTree(vec![1]))?;
    s.write_tree(&g, &TTree(vec![2]))?;
    let tree: Option<TTree> = s.tree(&g)?;
    assert_eq!(tree, Some(TTree(vec![2])));
    s.delete_tree(&g)?;
    let tree: Option<TTree> = s.tree(&g)?;
    assert_eq!(tree, None);
    let h = THashRef(vec![5; 32]);
    s.write_key_package(&h, &TKeyPackage(vec![6]))?;
    let kp: Option<TKeyPackage> = s.key_package(&h)?;
    assert_eq!(kp, Some(TKeyPackage(vec![6])));
    s.delete_key_package(&h)?;
    let kp: Option<TKeyPackage> = s.key_package(&h)?;
    trace.push(format!("{kp:?}"));
    assert_eq!(kp, None);
    Ok(trace)
}

#[test]
fn list_semantics_match_memory_storage() -> TestResult {
    let reference = list_semantics(&MemoryStorage::default())?;

    let dir = tempfile::tempdir()?;
    let store: SledStorage = SledStorage::open(dir.path().join("auto"))?;
    assert_eq!(list_semantics(&store)?, reference, "auto-commit");

    // Inside one transaction (reads see the overlay), then after commit.
    let store: SledStorage = SledStorage::open(dir.path().join("txn"))?;
    let txn = store.begin();
    assert_eq!(list_semantics(&txn)?, reference, "transaction");
    txn.commit()?;
    let g = GroupId::from_slice(b"group-1");
    let all: Vec<(TRef, TProposal)> = store.queued_proposals(&g)?;
    assert_eq!(all, vec![(TRef(4), TProposal(vec![4; 3]))]);
    let leaves: Vec<TLeaf> = store.own_leaf_nodes(&g)?;
    assert_eq!(leaves, vec![TLeaf(vec![3])]);
    Ok(())
}

/// Real openmls proposals: queue two, remove one, reload. Same result with the
/// memory store and the sled store.
#[test]
fn real_proposal_queue_matches_memory_storage() -> TestResult {
    let cs = SUITES[0];
    let dir = tempfile::tempdir()?;
    let (ah, bh) = (dir.path().join("alice"), dir.path().join("bob"));
    let alice = new_client(&ah, "alice", cs)?;
    let bob = new_client(&bh, "bob", cs)?;
    let carol = new_client(&dir.path().join("carol"), "carol", cs)?;
    let dave = new_client(&dir.path().join("dave"), "dave", cs)?;
    let (mut ag, _bg) = setup_pair(&alice, &bob, cs)?;
    let gid = ag.group_id().clone();
    let (kp_c, kp_d) = (key_package(&carol, cs)?, key_package(&dave, cs)?);

    let (r1, r2) = alice.provider.transaction(|p| -> TestResult<_> {
        let (_, r1) = ag.propose_add_member(p, &alice.signer, &kp_c)?;
        let (_, r2) = ag.propose_add_member(p, &alice.signer, &kp_d)?;
        Ok((r1, r2))
    })?;
    assert_eq!(ag.pending_proposals().count(), 2);
    let refs: Vec<ProposalRef> = alice.provider.storage().queued_proposal_refs(&gid)?;
    assert_eq!(refs, vec![r1.clone(), r2.clone()]);
    alice.provider.transaction(|p| -> TestResult {
        ag.remove_pending_proposal(p.storage(), &r1)?;
        Ok(())
    })?;
    let refs: Vec<ProposalRef> = alice.provider.storage().queued_proposal_refs(&gid)?;
    assert_eq!(refs, vec![r2.clone()]);
    let queued: Vec<(ProposalRef, QueuedProposal)> = alice.provider.storage().queued_proposals(&gid)?;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0, r2);

    // Reload from disk: one pending proposal, the one for dave.
    drop((ag, alice));
    let alice = reopen_client(&ah, "alice", cs)?;
    let mut ag = load(&alice, &gid)?;
    let pending: Vec<_> = ag.pending_proposals().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].proposal_reference_ref(), &r2);
    // Committing to it adds dave only.
    alice.provider.transaction(|p| -> TestResult {
        ag.commit_to_pending_proposals(p, &alice.signer)?;
        ag.merge_pending_commit(p)?;
        Ok(())
    })?;
    assert_eq!(ag.members().count(), 3);
    let queued: Vec<(ProposalRef, QueuedProposal)> = alice.provider.storage().queued_proposals(&gid)?;
    assert!(queued.is_empty());

    // The same sequence on openmls's memory store gives the same counts.
    let mem = openmls_rust_crypto::OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(cs.signature_algorithm())?;
    signer.store(mem.storage())?;
    let cwk = CredentialWithKey {
        credential: BasicCredential::new(b"alice".to_vec()).into(),
        signature_key: signer.public().into(),
    };
    let mut mg = MlsGroup::new(&mem, &signer, &create_config(cs), cwk)?;
    let (_, m1) = mg.propose_add_member(&mem, &signer, &kp_c)?;
    let (_, m2) = mg.propose_add_member(&mem, &signer, &kp_d)?;
    mg.remove_pending_proposal(mem.storage(), &m1)?;
    let refs: Vec<ProposalRef> = mem.storage().queued_proposal_refs(mg.group_id())?;
    assert_eq!(refs, vec![m2]);
    let reloaded = MlsGroup::load(mem.storage(), mg.group_id())?.ok_or("missing")?;
    assert_eq!(reloaded.pending_proposals().count(), 1);
    Ok(())
}

/// Own leaf nodes (from a self-update proposal) persist and are cleared on merge.
#[test]
fn own_leaf_nodes_follow_proposals() -> TestResult {
    let cs = SUITES[0];
    let dir = tempfile::tempdir()?;
    let alice = new_client(&dir.path().join("alice"), "alice", cs)?;
    let bob = new_client(&dir.path().join("bob"), "bob", cs)?;
    let (mut ag, _bg) = setup_pair(&alice, &bob, cs)?;
    let gid = ag.group_id().clone();
    let leaves: Vec<LeafNode> = alice.provider.storage().own_leaf_nodes(&gid)?;
    assert!(leaves.is_empty());
    alice.provider.transaction(|p| -> TestResult {
        ag.propose_self_update(p, &alice.signer, LeafNodeParameters::default())?;
        let leaves: Vec<LeafNode> = p.storage().own_leaf_nodes(&gid)?;
        assert_eq!(leaves.len(), 1, "visible inside the transaction");
        Ok(())
    })?;
    let leaves: Vec<LeafNode> = alice.provider.storage().own_leaf_nodes(&gid)?;
    assert_eq!(leaves.len(), 1, "committed");
    alice.provider.transaction(|p| -> TestResult {
        ag.commit_to_pending_proposals(p, &alice.signer)?;
        ag.merge_pending_commit(p)?;
        Ok(())
    })?;
    let leaves: Vec<LeafNode> = alice.provider.storage().own_leaf_nodes(&gid)?;
    assert!(leaves.is_empty());
    Ok(())
}

// ---- the commit journal: crashes after commit, torn records, old stores ----

/// Set in the child process of `commits_survive_an_abort`: the directory of
/// the two homes.
const CRASH_CHILD_ENV: &str = "GROVE_STORAGE_CRASH_CHILD_DIR";
const CRASH_SENDS: u64 = 200;

/// The child: alice and bob form a group, then alice sends `CRASH_SENDS`
/// messages, each in a transaction that also stores the ciphertext and the
/// count in app records (and moves a temporary record: a delete plus a put),
/// and the process aborts: the stores are never dropped, so there is no
/// checkpoint and no sled flush after the last commits.
fn crash_child(dir: &Path) -> TestResult {
    let cs = SUITES[0];
    let alice = new_client(&dir.join("alice"), "alice", cs)?;
    let bob = new_client(&dir.join("bob"), "bob", cs)?;
    let (mut ag, _bg) = setup_pair(&alice, &bob, cs)?;
    alice.provider.storage().put_app("crash", b"gid", ag.group_id().as_slice())?;
    for i in 1..=CRASH_SENDS {
        alice.provider.transaction(|p| -> TestResult {
            let m = ag.create_message(p, &alice.signer, format!("m{i}").as_bytes())?;
            let s = p.storage();
            s.put_app("crash", format!("msg{i:04}").as_bytes(), &to_wire(&m)?)?;
            s.put_app_value("crash", b"count", &i)?;
            s.remove_app("crash-tmp", format!("{}", i - 1).as_bytes())?;
            s.put_app("crash-tmp", format!("{i}").as_bytes(), b"x")?;
            Ok(())
        })?;
    }
    // Every commit returned: all of them must survive.
    std::process::abort();
}

#[test]
fn commits_survive_an_abort() -> TestResult {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        return crash_child(Path::new(&dir));
    }
    let cs = SUITES[0];
    let dir = tempfile::tempdir()?;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "commits_survive_an_abort", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, dir.path())
        .status()?;
    assert!(!status.success(), "the child aborts");
    // The last commits are only guaranteed by the journal: opening replays them.
    let ah = dir.path().join("alice");
    let journal = SledStorage::db_path(&ah).join("grove.journal");
    assert!(std::fs::metadata(&journal)?.len() > 0, "records left to replay");
    let alice = reopen_client(&ah, "alice", cs)?;
    assert_eq!(std::fs::metadata(&journal)?.len(), 0, "checkpointed on open");

    let s = alice.provider.storage();
    assert_eq!(s.get_app_value::<u64>("crash", b"count")?, Some(CRASH_SENDS));
    let sent = s.scan_prefix_app("crash", b"msg")?;
    assert_eq!(sent.len() as u64, CRASH_SENDS);
    assert_eq!(s.scan_prefix_app("crash-tmp", b"")?, vec![(CRASH_SENDS.to_string().into_bytes(), b"x".to_vec())]);

    // Alice's sender ratchet is the one after her last send: bob reads every
    // stored message, then a new one from alice, which would fail if alice
    // reused a generation he has already consumed.
    let bob = reopen_client(&dir.path().join("bob"), "bob", cs)?;
    let gid = GroupId::from_slice(&s.get_app("crash", b"gid")?.ok_or("gid")?);
    let (mut ag, mut bg) = (load(&alice, &gid)?, load(&bob, &gid)?);
    for (i, (_, wire)) in sent.iter().enumerate() {
        assert_eq!(receive_app(&bob, &mut bg, wire)?, format!("m{}", i + 1).into_bytes());
    }
    let after = send(&alice, &mut ag, b"after the crash")?;
    assert_eq!(receive_app(&bob, &mut bg, &after)?, b"after the crash");
    Ok(())
}

#[test]
fn torn_journal_tail_is_ignored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("h");
    let journal = SledStorage::db_path(&home).join("grove.journal");
    let store = SledStorage::open(&home)?;
    store.put_app("ns", b"k", b"committed")?;
    // A crash while appending the next record: a partial record at the end
    // (here: the start of a real one, and garbage). Simulated on a closed store.
    drop(store);
    for tail in [&b"GJ01\x10\x00\x00\x00"[..], &[0xAB; 100][..], &[0u8; 4096][..]] {
        let mut bytes = std::fs::read(&journal)?;
        bytes.extend_from_slice(tail);
        std::fs::write(&journal, &bytes)?;
        let store = SledStorage::open(&home)?;
        assert_eq!(store.get_app("ns", b"k")?.as_deref(), Some(&b"committed"[..]));
        assert_eq!(std::fs::metadata(&journal)?.len(), 0, "the torn tail is cut off");
        store.put_app("ns", b"k2", b"later")?;
        drop(store);
        assert_eq!(SledStorage::open(&home)?.get_app("ns", b"k2")?.as_deref(), Some(&b"later"[..]));
    }
    Ok(())
}

#[test]
fn version_1_store_is_upgraded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("h");
    std::fs::create_dir(&home)?;
    let db = sled::open(home.join(DB_DIR_NAME))?;
    db.insert(b"\x00format", &b"grove-client-store v1 codec=msgpack openmls-storage=1"[..])?;
    db.insert(b"\x02\x02nsk", &b"v"[..])?;
    drop(db);
    let store = SledStorage::open(&home)?;
    assert_eq!(store.get_app("ns", b"k")?.as_deref(), Some(&b"v"[..]));
    drop(store);
    let db = sled::open(home.join(DB_DIR_NAME))?;
    let marker = db.get(b"\x00format")?.ok_or("marker")?;
    assert!(marker.starts_with(b"grove-client-store v2 "), "{:?}", String::from_utf8_lossy(&marker));
    Ok(())
}
