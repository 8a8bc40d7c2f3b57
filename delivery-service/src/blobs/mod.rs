//! The encrypted blob store: opaque ciphertext of resource versions, streamed
//! in and out, never held whole in memory, durable before the DS answers 201.
//! Blob ids are 128 random bits in hex, chosen by the DS.
//!
//! Two backends behind [`BlobStore`]:
//! - `files` ([`FileBlobs`]): one file per blob in the data directory (the
//!   sled deployment; fsynced file and directory);
//! - `postgres` ([`PgBlobs`]): 1 MiB chunks in PostgreSQL, one transaction
//!   per upload (the multi-replica deployment: every replica serves every blob).

mod files;
mod postgres;

use std::pin::Pin;

use futures_util::{Stream, StreamExt as _};

pub use files::{FileBlobs, READ_BUFFER};
pub use grove_proto::valid_blob_id;
pub use postgres::PgBlobs;

use crate::error::DsError;

/// A blob's bytes, streamed.
pub type BlobBody = Pin<Box<dyn Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>;

/// The blob store of a deployment.
#[derive(Debug, Clone)]
pub enum BlobStore {
    /// Files in the data directory.
    Files(FileBlobs),
    /// Chunks in PostgreSQL.
    Postgres(PgBlobs),
}

impl BlobStore {
    /// The file store in `root` (see [`FileBlobs::open`]).
    pub fn open(root: &std::path::Path, max_bytes: u64) -> Result<Self, DsError> {
        Ok(BlobStore::Files(FileBlobs::open(root, max_bytes)?))
    }

    /// Largest accepted blob.
    pub fn max_bytes(&self) -> u64 {
        match self {
            BlobStore::Files(f) => f.max_bytes(),
            BlobStore::Postgres(p) => p.max_bytes(),
        }
    }

    /// Streams `body` into a new blob of the group; returns its id and size.
    /// Refuses (and keeps nothing of) a blob larger than the limit.
    pub async fn put<S, E>(&self, internal_id: u64, body: S) -> Result<(String, u64), DsError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        match self {
            BlobStore::Files(f) => f.put(internal_id, body).await,
            BlobStore::Postgres(p) => p.put(internal_id, body).await,
        }
    }

    /// A blob's bytes and size; `None` if there is no such blob.
    pub async fn open_blob(&self, internal_id: u64, id: &str) -> Result<Option<(BlobBody, u64)>, DsError> {
        if !valid_blob_id(id) {
            return Err(DsError::InvalidBlobId);
        }
        match self {
            BlobStore::Files(f) => Ok(f.open_blob(internal_id, id).await?.map(|(file, len)| {
                let body: BlobBody = tokio_util::io::ReaderStream::with_capacity(file, READ_BUFFER).boxed();
                (body, len)
            })),
            BlobStore::Postgres(p) => p.open_blob(internal_id, id).await,
        }
    }

    /// Deletes a blob; returns whether it existed.
    pub async fn delete(&self, internal_id: u64, id: &str) -> Result<bool, DsError> {
        if !valid_blob_id(id) {
            return Err(DsError::InvalidBlobId);
        }
        match self {
            BlobStore::Files(f) => f.delete(internal_id, id).await,
            BlobStore::Postgres(p) => p.delete(internal_id, id).await,
        }
    }
}

/// A new blob id: 128 random bits in hex.
pub(crate) fn new_blob_id() -> String {
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    hex::encode(raw)
}
