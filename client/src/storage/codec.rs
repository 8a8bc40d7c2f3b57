//! How values (and keys) are turned into bytes.
//!
//! openmls hands the storage provider serde types. The reference in-memory store
//! encodes them with JSON; Grove uses MessagePack (`rmp-serde`) by default.
//!
//! Why MessagePack and not a faster non-self-describing format such as
//! `postcard` or `bincode`: openmls stores `MlsGroupJoinConfig`, whose field
//! `PastEpochDeletionPolicy` deserializes through a `#[serde(untagged)]` enum
//! (kept for backwards compatibility). Untagged enums need
//! `Deserializer::deserialize_any`, which non-self-describing formats cannot
//! offer, so a group written with `postcard` cannot be loaded again
//! (`MlsGroup::load` fails with a decode error). MessagePack is
//! self-describing, round-trips every value openmls writes (checked with real
//! groups in `tests/storage.rs` and `tests/codec_eval.rs`), and is several times
//! smaller and faster than JSON because openmls byte strings are sequences of
//! `u8`, which JSON writes as decimal text. The measured numbers are in
//! `docs/dependencies.md`.

use serde::{de::DeserializeOwned, Serialize};

/// A serde format the store uses for its keys and values.
///
/// The codec's [`NAME`](ValueCodec::NAME) is written into the store's format
/// marker, so opening a store with a different codec than it was written with
/// fails with [`StorageError::IncompatibleFormat`](super::StorageError::IncompatibleFormat)
/// instead of misreading data.
///
/// Key encodings must be deterministic: equal keys must give equal bytes.
pub trait ValueCodec: Send + Sync + 'static {
    /// A short stable name, recorded in the store's format marker.
    const NAME: &'static str;

    /// Encodes a value. The error is a human-readable reason.
    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String>;

    /// Decodes a value. Must return an error (never panic) on malformed input.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String>;
}

/// MessagePack via `rmp-serde`, structs written as arrays (compact form).
///
/// This is the default codec. See the module docs for why.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl ValueCodec for MsgPack {
    const NAME: &'static str = "msgpack";

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec(value).map_err(|e| e.to_string())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// The codec [`SledStorage`](super::SledStorage) uses unless told otherwise.
pub type DefaultCodec = MsgPack;
