//! openmls's `StorageProvider` on top of [`Kv`], for both [`SledStorage`]
//! (auto-commit) and [`Transaction`] (overlay).
//!
//! Semantics mirror `openmls_memory_storage` 0.6.0 key for key: the same labels,
//! one value per (label, key), lists (own leaf nodes, proposal queue refs) stored
//! as a list of encoded items, epoch key pairs stored as one encoded list, missing
//! lists read as empty. Differences: a corrupt value is an error instead of a
//! panic, a queued proposal listed but missing is an error instead of a panic,
//! and `clear_proposal_queue` really deletes the queued proposals (the reference
//! store leaves them behind, unreachable, because it forgets the label).

use openmls_traits::storage::{traits, StorageProvider, CURRENT_VERSION};
use serde::{de::DeserializeOwned, Serialize};

use super::{decode_value, encode_value, Kv, SledStorage, StorageError, Transaction, ValueCodec, NS_MLS};

/// What a `StorageProvider` writer or deleter returns.
type Done = Result<(), StorageError>;
/// What a `StorageProvider` reader returns.
type Got<T> = Result<T, StorageError>;

const KEY_PACKAGE_LABEL: &[u8] = b"KeyPackage";
const PSK_LABEL: &[u8] = b"Psk";
const ENCRYPTION_KEY_PAIR_LABEL: &[u8] = b"EncryptionKeyPair";
const SIGNATURE_KEY_PAIR_LABEL: &[u8] = b"SignatureKeyPair";
const EPOCH_KEY_PAIRS_LABEL: &[u8] = b"EpochKeyPairs";
const TREE_LABEL: &[u8] = b"Tree";
const GROUP_CONTEXT_LABEL: &[u8] = b"GroupContext";
const INTERIM_TRANSCRIPT_HASH_LABEL: &[u8] = b"InterimTranscriptHash";
const CONFIRMATION_TAG_LABEL: &[u8] = b"ConfirmationTag";
const JOIN_CONFIG_LABEL: &[u8] = b"MlsGroupJoinConfig";
const OWN_LEAF_NODES_LABEL: &[u8] = b"OwnLeafNodes";
const GROUP_STATE_LABEL: &[u8] = b"GroupState";
const QUEUED_PROPOSAL_LABEL: &[u8] = b"QueuedProposal";
const PROPOSAL_QUEUE_REFS_LABEL: &[u8] = b"ProposalQueueRefs";
const OWN_LEAF_NODE_INDEX_LABEL: &[u8] = b"OwnLeafNodeIndex";
const EPOCH_SECRETS_LABEL: &[u8] = b"EpochSecrets";
const RESUMPTION_PSK_STORE_LABEL: &[u8] = b"ResumptionPsk";
const MESSAGE_SECRETS_LABEL: &[u8] = b"MessageSecrets";

fn label_name(label: &[u8]) -> String {
    String::from_utf8_lossy(label).into_owned()
}

/// `0x01 label 0x00 encoded-key`. Labels are ASCII without NUL, so the
/// separator keeps (label, key) pairs apart.
fn storage_key<K: Kv, Key: Serialize + ?Sized>(label: &[u8], key: &Key) -> Result<Vec<u8>, StorageError> {
    let key = encode_value::<K::Codec, Key>(&format!("{} key", label_name(label)), key)?;
    let mut out = Vec::with_capacity(2 + label.len() + key.len());
    out.push(NS_MLS);
    out.extend_from_slice(label);
    out.push(0);
    out.extend_from_slice(&key);
    Ok(out)
}

fn write<K: Kv, Key: Serialize + ?Sized, V: Serialize + ?Sized>(
    kv: &K,
    label: &[u8],
    key: &Key,
    value: &V,
) -> Result<(), StorageError> {
    let value = encode_value::<K::Codec, V>(&label_name(label), value)?;
    kv.put_raw(storage_key::<K, Key>(label, key)?, Some(value))
}

fn read<K: Kv, Key: Serialize + ?Sized, V: DeserializeOwned>(
    kv: &K,
    label: &[u8],
    key: &Key,
) -> Result<Option<V>, StorageError> {
    match kv.get_raw(&storage_key::<K, Key>(label, key)?)? {
        None => Ok(None),
        Some(bytes) => decode_value::<K::Codec, V>(&label_name(label), &bytes).map(Some),
    }
}

fn delete<K: Kv, Key: Serialize + ?Sized>(kv: &K, label: &[u8], key: &Key) -> Result<(), StorageError> {
    kv.put_raw(storage_key::<K, Key>(label, key)?, None)
}

/// A list is stored as the encoding of `Vec<Vec<u8>>`, each item encoded on its own.
fn read_raw_list<K: Kv>(kv: &K, storage_key: &[u8], label: &[u8]) -> Result<Vec<Vec<u8>>, StorageError> {
    match kv.get_raw(storage_key)? {
        None => Ok(Vec::new()),
        Some(bytes) => decode_value::<K::Codec, Vec<Vec<u8>>>(&label_name(label), &bytes),
    }
}

/// Changes the list under (label, key) with `f`, which gets the list and
/// `item` encoded.
fn edit_list<K: Kv, Key: Serialize + ?Sized, V: Serialize + ?Sized>(
    kv: &K,
    label: &[u8],
    key: &Key,
    item: &V,
    f: impl FnOnce(&mut Vec<Vec<u8>>, Vec<u8>),
) -> Done {
    let skey = storage_key::<K, Key>(label, key)?;
    let mut list = read_raw_list(kv, &skey, label)?;
    f(&mut list, encode_value::<K::Codec, V>(&label_name(label), item)?);
    let bytes = encode_value::<K::Codec, _>(&label_name(label), &list)?;
    kv.put_raw(skey, Some(bytes))
}

fn append<K: Kv, Key: Serialize + ?Sized, V: Serialize + ?Sized>(kv: &K, label: &[u8], key: &Key, item: &V) -> Done {
    edit_list(kv, label, key, item, |list, item| list.push(item))
}

/// Removes the first item equal to `item` (as the reference store does).
fn remove_item<K: Kv, Key: Serialize + ?Sized, V: Serialize + ?Sized>(
    kv: &K,
    label: &[u8],
    key: &Key,
    item: &V,
) -> Done {
    edit_list(kv, label, key, item, |list, item| {
        if let Some(pos) = list.iter().position(|stored| *stored == item) {
            list.remove(pos);
        }
    })
}

fn read_list<K: Kv, Key: Serialize + ?Sized, V: DeserializeOwned>(
    kv: &K,
    label: &[u8],
    key: &Key,
) -> Result<Vec<V>, StorageError> {
    let skey = storage_key::<K, Key>(label, key)?;
    read_raw_list(kv, &skey, label)?.iter().map(|item| decode_value::<K::Codec, V>(&label_name(label), item)).collect()
}

fn queued_proposals<K: Kv, G: Serialize, R: Serialize + DeserializeOwned, P: DeserializeOwned>(
    kv: &K,
    group_id: &G,
) -> Result<Vec<(R, P)>, StorageError> {
    let refs: Vec<R> = read_list(kv, PROPOSAL_QUEUE_REFS_LABEL, group_id)?;
    refs.into_iter()
        .map(|proposal_ref| {
            let proposal: Option<P> = read(kv, QUEUED_PROPOSAL_LABEL, &(group_id, &proposal_ref))?;
            match proposal {
                Some(p) => Ok((proposal_ref, p)),
                None => Err(StorageError::Corrupt {
                    what: label_name(QUEUED_PROPOSAL_LABEL),
                    reason: "proposal listed in the queue but missing".to_owned(),
                }),
            }
        })
        .collect()
}

fn clear_proposal_queue<K: Kv, G: Serialize, R: Serialize + DeserializeOwned>(
    kv: &K,
    group_id: &G,
) -> Result<(), StorageError> {
    let refs: Vec<R> = read_list(kv, PROPOSAL_QUEUE_REFS_LABEL, group_id)?;
    for proposal_ref in &refs {
        delete(kv, QUEUED_PROPOSAL_LABEL, &(group_id, proposal_ref))?;
    }
    delete(kv, PROPOSAL_QUEUE_REFS_LABEL, group_id)
}

/// A `StorageProvider` method whose generic parameters are named after the
/// openmls storage traits that bound them.
macro_rules! method {
    (fn $name:ident<$($g:ident),*>(&$self:ident $(, $arg:ident: $ty:ty)*) -> $ret:ty $body:block) => {
        fn $name<$($g: traits::$g<CURRENT_VERSION>),*>(&$self $(, $arg: $ty)*) -> $ret $body
    };
}

/// A `StorageProvider` writer: one value under (label, key).
macro_rules! writer {
    (fn $name:ident<$($g:ident),*>($key:ident, $value:ident) => $label:ident) => {
        fn $name<$($g: traits::$g<CURRENT_VERSION>),*>(&self, key: &$key, value: &$value) -> Result<(), Self::Error> {
            write(self, $label, key, value)
        }
    };
}

/// A `StorageProvider` reader of one value under (label, key).
macro_rules! reader {
    (fn $name:ident<$($g:ident),*>($key:ident) -> $value:ident => $label:ident) => {
        fn $name<$($g: traits::$g<CURRENT_VERSION>),*>(&self, key: &$key) -> Result<Option<$value>, Self::Error> {
            read(self, $label, key)
        }
    };
}

/// A `StorageProvider` deleter of the value under (label, key).
macro_rules! deleter {
    (fn $name:ident<$($g:ident),*>($key:ident) => $label:ident) => {
        fn $name<$($g: traits::$g<CURRENT_VERSION>),*>(&self, key: &$key) -> Result<(), Self::Error> {
            delete(self, $label, key)
        }
    };
}

/// Implements `StorageProvider<CURRENT_VERSION>` for a type that implements [`Kv`].
macro_rules! impl_storage_provider {
    ($ty:ty) => {
        impl<C: ValueCodec> StorageProvider<CURRENT_VERSION> for $ty {
            type Error = StorageError;

            // ---- writers ----

            writer!(fn write_mls_join_config<GroupId, MlsGroupJoinConfig>(GroupId, MlsGroupJoinConfig)
                => JOIN_CONFIG_LABEL);

            method!(fn append_own_leaf_node<GroupId, LeafNode>(
                &self, group_id: &GroupId, leaf_node: &LeafNode) -> Done {
                append(self, OWN_LEAF_NODES_LABEL, group_id, leaf_node)
            });

            method!(fn queue_proposal<GroupId, ProposalRef, QueuedProposal>(
                &self, group_id: &GroupId, proposal_ref: &ProposalRef, proposal: &QueuedProposal) -> Done {
                write(self, QUEUED_PROPOSAL_LABEL, &(group_id, proposal_ref), proposal)?;
                append(self, PROPOSAL_QUEUE_REFS_LABEL, group_id, proposal_ref)
            });

            writer!(fn write_tree<GroupId, TreeSync>(GroupId, TreeSync) => TREE_LABEL);
            writer!(fn write_interim_transcript_hash<GroupId, InterimTranscriptHash>(GroupId, InterimTranscriptHash)
                => INTERIM_TRANSCRIPT_HASH_LABEL);
            writer!(fn write_context<GroupId, GroupContext>(GroupId, GroupContext) => GROUP_CONTEXT_LABEL);
            writer!(fn write_confirmation_tag<GroupId, ConfirmationTag>(GroupId, ConfirmationTag)
                => CONFIRMATION_TAG_LABEL);
            writer!(fn write_group_state<GroupState, GroupId>(GroupId, GroupState) => GROUP_STATE_LABEL);
            writer!(fn write_message_secrets<GroupId, MessageSecrets>(GroupId, MessageSecrets)
                => MESSAGE_SECRETS_LABEL);
            writer!(fn write_resumption_psk_store<GroupId, ResumptionPskStore>(GroupId, ResumptionPskStore)
                => RESUMPTION_PSK_STORE_LABEL);
            writer!(fn write_own_leaf_index<GroupId, LeafNodeIndex>(GroupId, LeafNodeIndex)
                => OWN_LEAF_NODE_INDEX_LABEL);
            writer!(fn write_group_epoch_secrets<GroupId, GroupEpochSecrets>(GroupId, GroupEpochSecrets)
                => EPOCH_SECRETS_LABEL);
            writer!(fn write_signature_key_pair<SignaturePublicKey, SignatureKeyPair>(
                SignaturePublicKey, SignatureKeyPair) => SIGNATURE_KEY_PAIR_LABEL);
            writer!(fn write_encryption_key_pair<EncryptionKey, HpkeKeyPair>(EncryptionKey, HpkeKeyPair)
                => ENCRYPTION_KEY_PAIR_LABEL);

            method!(fn write_encryption_epoch_key_pairs<GroupId, EpochKey, HpkeKeyPair>(
                &self, group_id: &GroupId, epoch: &EpochKey, leaf_index: u32, key_pairs: &[HpkeKeyPair]) -> Done {
                write(self, EPOCH_KEY_PAIRS_LABEL, &(group_id, epoch, leaf_index), key_pairs)
            });

            writer!(fn write_key_package<HashReference, KeyPackage>(HashReference, KeyPackage) => KEY_PACKAGE_LABEL);
            writer!(fn write_psk<PskId, PskBundle>(PskId, PskBundle) => PSK_LABEL);

            // ---- getters ----

            reader!(fn mls_group_join_config<GroupId, MlsGroupJoinConfig>(GroupId) -> MlsGroupJoinConfig
                => JOIN_CONFIG_LABEL);

            method!(fn own_leaf_nodes<GroupId, LeafNode>(&self, group_id: &GroupId) -> Got<Vec<LeafNode>> {
                read_list(self, OWN_LEAF_NODES_LABEL, group_id)
            });

            method!(fn queued_proposal_refs<GroupId, ProposalRef>(&self, group_id: &GroupId) -> Got<Vec<ProposalRef>> {
                read_list(self, PROPOSAL_QUEUE_REFS_LABEL, group_id)
            });

            method!(fn queued_proposals<GroupId, ProposalRef, QueuedProposal>(
                &self, group_id: &GroupId) -> Got<Vec<(ProposalRef, QueuedProposal)>> {
                queued_proposals(self, group_id)
            });

            reader!(fn tree<GroupId, TreeSync>(GroupId) -> TreeSync => TREE_LABEL);
            reader!(fn group_context<GroupId, GroupContext>(GroupId) -> GroupContext => GROUP_CONTEXT_LABEL);
            reader!(fn interim_transcript_hash<GroupId, InterimTranscriptHash>(GroupId) -> InterimTranscriptHash
                => INTERIM_TRANSCRIPT_HASH_LABEL);
            reader!(fn confirmation_tag<GroupId, ConfirmationTag>(GroupId) -> ConfirmationTag
                => CONFIRMATION_TAG_LABEL);
            reader!(fn group_state<GroupState, GroupId>(GroupId) -> GroupState => GROUP_STATE_LABEL);
            reader!(fn message_secrets<GroupId, MessageSecrets>(GroupId) -> MessageSecrets => MESSAGE_SECRETS_LABEL);
            reader!(fn resumption_psk_store<GroupId, ResumptionPskStore>(GroupId) -> ResumptionPskStore
                => RESUMPTION_PSK_STORE_LABEL);
            reader!(fn own_leaf_index<GroupId, LeafNodeIndex>(GroupId) -> LeafNodeIndex => OWN_LEAF_NODE_INDEX_LABEL);
            reader!(fn group_epoch_secrets<GroupId, GroupEpochSecrets>(GroupId) -> GroupEpochSecrets
                => EPOCH_SECRETS_LABEL);
            reader!(fn signature_key_pair<SignaturePublicKey, SignatureKeyPair>(SignaturePublicKey) -> SignatureKeyPair
                => SIGNATURE_KEY_PAIR_LABEL);
            reader!(fn encryption_key_pair<HpkeKeyPair, EncryptionKey>(EncryptionKey) -> HpkeKeyPair
                => ENCRYPTION_KEY_PAIR_LABEL);

            method!(fn encryption_epoch_key_pairs<GroupId, EpochKey, HpkeKeyPair>(
                &self, group_id: &GroupId, epoch: &EpochKey, leaf_index: u32) -> Got<Vec<HpkeKeyPair>> {
                Ok(read(self, EPOCH_KEY_PAIRS_LABEL, &(group_id, epoch, leaf_index))?.unwrap_or_default())
            });

            reader!(fn key_package<HashReference, KeyPackage>(HashReference) -> KeyPackage => KEY_PACKAGE_LABEL);
            reader!(fn psk<PskBundle, PskId>(PskId) -> PskBundle => PSK_LABEL);

            // ---- deleters ----

            method!(fn remove_proposal<GroupId, ProposalRef>(
                &self, group_id: &GroupId, proposal_ref: &ProposalRef) -> Done {
                remove_item(self, PROPOSAL_QUEUE_REFS_LABEL, group_id, proposal_ref)?;
                delete(self, QUEUED_PROPOSAL_LABEL, &(group_id, proposal_ref))
            });

            deleter!(fn delete_own_leaf_nodes<GroupId>(GroupId) => OWN_LEAF_NODES_LABEL);
            deleter!(fn delete_group_config<GroupId>(GroupId) => JOIN_CONFIG_LABEL);
            deleter!(fn delete_tree<GroupId>(GroupId) => TREE_LABEL);
            deleter!(fn delete_confirmation_tag<GroupId>(GroupId) => CONFIRMATION_TAG_LABEL);
            deleter!(fn delete_group_state<GroupId>(GroupId) => GROUP_STATE_LABEL);
            deleter!(fn delete_context<GroupId>(GroupId) => GROUP_CONTEXT_LABEL);
            deleter!(fn delete_interim_transcript_hash<GroupId>(GroupId) => INTERIM_TRANSCRIPT_HASH_LABEL);
            deleter!(fn delete_message_secrets<GroupId>(GroupId) => MESSAGE_SECRETS_LABEL);
            deleter!(fn delete_all_resumption_psk_secrets<GroupId>(GroupId) => RESUMPTION_PSK_STORE_LABEL);
            deleter!(fn delete_own_leaf_index<GroupId>(GroupId) => OWN_LEAF_NODE_INDEX_LABEL);
            deleter!(fn delete_group_epoch_secrets<GroupId>(GroupId) => EPOCH_SECRETS_LABEL);

            method!(fn clear_proposal_queue<GroupId, ProposalRef>(&self, group_id: &GroupId) -> Done {
                clear_proposal_queue::<_, GroupId, ProposalRef>(self, group_id)
            });

            deleter!(fn delete_signature_key_pair<SignaturePublicKey>(SignaturePublicKey) => SIGNATURE_KEY_PAIR_LABEL);
            deleter!(fn delete_encryption_key_pair<EncryptionKey>(EncryptionKey) => ENCRYPTION_KEY_PAIR_LABEL);

            method!(fn delete_encryption_epoch_key_pairs<GroupId, EpochKey>(
                &self, group_id: &GroupId, epoch: &EpochKey, leaf_index: u32) -> Done {
                delete(self, EPOCH_KEY_PAIRS_LABEL, &(group_id, epoch, leaf_index))
            });

            deleter!(fn delete_key_package<HashReference>(HashReference) => KEY_PACKAGE_LABEL);
            deleter!(fn delete_psk<PskId>(PskId) => PSK_LABEL);
        }
    };
}

impl_storage_provider!(SledStorage<C>);
impl_storage_provider!(Transaction<'_, C>);
