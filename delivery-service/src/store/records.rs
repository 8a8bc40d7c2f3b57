//! The records the store keeps, and their compact binary encoding (TLS
//! presentation language via `tls_codec`: length-prefixed and bounds-checked, so a
//! damaged record is an error, never a panic or a huge allocation).

use tls_codec::{Deserialize as _, Serialize as _, Size as _, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

use super::chain::Chain;
use super::StoreError;

/// A registered client: user name bound to an MLS credential and signature key.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct UserRecord {
    /// The unique user name (also the BasicCredential identity).
    pub name: VLBytes,
    /// The TLS-encoded MLS `Credential`.
    pub credential: VLBytes,
    /// The raw signature public key.
    pub signature_key: VLBytes,
    /// The TLS SignatureScheme code point (0x0807 for Ed25519).
    pub signature_scheme: u16,
    /// Registration time, unix seconds.
    pub registered_at: u64,
}

impl UserRecord {
    /// The user name as text (names are validated as ASCII on registration).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(self.name.as_slice()).into_owned()
    }
}

/// Which kind of KeyPackage a claim returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPackageKind {
    /// A one-time package, now removed from the directory.
    OneTime,
    /// The last-resort package (no one-time package was left); it stays.
    LastResort,
}

/// How many KeyPackages a client has left for one ciphersuite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct KeyPackageCounts {
    /// One-time packages left.
    pub one_time: u64,
    /// Whether a last-resort package is stored.
    pub last_resort: bool,
}

/// A removed member and the sequence number of the commit that removed it.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct RemovedMember {
    /// User name.
    pub user: VLBytes,
    /// Sequence number of the removing commit; the user may fetch up to it.
    pub seq: u64,
}

/// The Delivery Service's view of one group.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupRecord {
    /// The MLS group id.
    pub group_id: VLBytes,
    /// The store's short id for the group (log and cursor keys use it).
    pub internal_id: u64,
    /// The current epoch.
    pub epoch: u64,
    /// Ciphersuite code point.
    pub ciphersuite: u16,
    /// The serialized openmls public group state (tree, context, transcript hash,
    /// confirmation tag, proposal queue).
    pub public_state: VLBytes,
    /// The latest GroupInfo a member uploaded (MLSMessage), or empty.
    pub group_info: VLBytes,
    /// Members removed and the commit that removed each.
    pub removed: Vec<RemovedMember>,
    /// Creation time, unix seconds.
    pub created_at: u64,
}

/// The kind of a log entry, visible to the DS from the MLS framing (the API's
/// vocabulary; stored as its one-byte code).
pub use crate::api::EntryKind;

/// One entry of a group's ordered log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// The MLS epoch the message belongs to.
    pub epoch: u64,
    /// What the message is.
    pub kind: EntryKind,
    /// When the DS accepted it, unix seconds.
    pub received_at: u64,
    /// The TLS-encoded MLSMessage, as posted (copied once out of the request
    /// buffer, then shared, not copied, by the store and the tail cache).
    pub message: bytes::Bytes,
}

#[derive(TlsSerialize, TlsDeserialize, TlsSize)]
struct LogEntryWire {
    epoch: u64,
    kind: u8,
    received_at: u64,
    message: VLBytes,
}

/// [`LogEntryWire`] borrowing the message, for encoding without a copy.
#[derive(TlsSerialize, TlsSize)]
struct LogEntryRef<'a> {
    epoch: u64,
    kind: u8,
    received_at: u64,
    message: tls_codec::VLByteSlice<'a>,
}

impl LogEntry {
    /// Encodes the entry's value (the sequence number lives in the key) into a
    /// buffer with `extra` bytes of spare capacity: the message is copied once,
    /// straight into the buffer.
    pub(crate) fn encode_with_room(&self, extra: usize) -> Result<Vec<u8>, StoreError> {
        let r = LogEntryRef {
            epoch: self.epoch,
            kind: self.kind.to_u8(),
            received_at: self.received_at,
            message: tls_codec::VLByteSlice(&self.message),
        };
        let mut out = Vec::with_capacity(r.tls_serialized_len() + extra);
        r.tls_serialize(&mut out).map_err(|e| corrupt("log entry", e))?;
        Ok(out)
    }

    /// Decodes a value written by [`LogEntry::encode_with_room`] (trailing bytes
    /// are an error).
    pub(crate) fn decode_value(seq: u64, bytes: &[u8]) -> Result<Self, StoreError> {
        let w = LogEntryWire::tls_deserialize_exact(bytes).map_err(|e| corrupt("log entry", e))?;
        let kind = EntryKind::from_u8(w.kind)
            .ok_or_else(|| StoreError::Corrupt { what: "log entry", detail: format!("unknown kind {}", w.kind) })?;
        let message = bytes::Bytes::from(Vec::from(w.message));
        Ok(LogEntry { seq, epoch: w.epoch, kind, received_at: w.received_at, message })
    }

    /// The value as stored since format 2: the entry's encoding, then its
    /// chain value ([`super::chain`]).
    pub(crate) fn chained_value(encoded: &[u8], chain: &Chain) -> Vec<u8> {
        let mut v = Vec::with_capacity(encoded.len() + chain.len());
        v.extend_from_slice(encoded);
        v.extend_from_slice(chain);
        v
    }

    /// Appends the chain value to an encoding made by
    /// [`LogEntry::encode_with_room`] with 32 bytes of room, in place.
    pub(crate) fn push_chain(mut encoded: Vec<u8>, chain: &Chain) -> Vec<u8> {
        encoded.extend_from_slice(chain);
        encoded
    }

    /// Splits a stored value into the entry's encoding and its chain value.
    pub(crate) fn split_chained(bytes: &[u8]) -> Result<(&[u8], Chain), StoreError> {
        let at = bytes.len().checked_sub(32).ok_or_else(|| corrupt("log entry", "shorter than its chain value"))?;
        let (encoded, chain) = bytes.split_at(at);
        let chain: Chain = chain.try_into().map_err(|_| corrupt("log entry", "chain value length"))?;
        Ok((encoded, chain))
    }

    /// Decodes a value written by [`LogEntry::chained_value`].
    pub(crate) fn decode_chained(seq: u64, bytes: &[u8]) -> Result<(Self, Chain), StoreError> {
        let (encoded, chain) = Self::split_chained(bytes)?;
        Ok((Self::decode_value(seq, encoded)?, chain))
    }
}

impl GroupRecord {
    /// The internal id and epoch of an encoded record, without decoding the
    /// rest (the public state can be large).
    pub(crate) fn peek_ids(mut bytes: &[u8]) -> Result<(u64, u64), StoreError> {
        let _group_id = VLBytes::tls_deserialize(&mut bytes).map_err(|e| corrupt("group", e))?;
        let internal_id = u64::tls_deserialize(&mut bytes).map_err(|e| corrupt("group", e))?;
        let epoch = u64::tls_deserialize(&mut bytes).map_err(|e| corrupt("group", e))?;
        Ok((internal_id, epoch))
    }
}

/// A Welcome waiting in a client's inbox.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct WelcomeEntry {
    /// Inbox id, increasing per client (assigned by the store; 0 before that).
    pub id: u64,
    /// The group the Welcome is for.
    pub group_id: VLBytes,
    /// The epoch the new member joins at.
    pub epoch: u64,
    /// When it was stored, unix seconds.
    pub received_at: u64,
    /// The TLS-encoded MLSMessage carrying the Welcome.
    pub message: VLBytes,
}

pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: e.to_string() }
}

/// Encodes any record with the TLS presentation language.
pub(crate) fn encode<T: tls_codec::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    v.tls_serialize_detached().map_err(|e| corrupt(what, e))
}

/// Decodes a record; trailing bytes are an error.
pub(crate) fn decode<T: tls_codec::Deserialize>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    T::tls_deserialize_exact(bytes).map_err(|e| corrupt(what, e))
}
