//! [`StorageError`]: what the local store can fail with.

use std::path::PathBuf;

/// Errors of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Creating or securing the home directory failed.
    #[error("store directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another handle in this one) has the store open.
    #[error("the store {path} is in use by another process (sled holds a lock on it); close that process and retry")]
    Locked {
        /// The sled directory.
        path: PathBuf,
    },
    /// sled reported an error (I/O, corruption of its own files, ...).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A value could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The codec's reason.
        reason: String,
    },
    /// A stored value could not be decoded: the store is corrupt or was written
    /// by an incompatible version.
    #[error("corrupt value for {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The codec's reason.
        reason: String,
    },
    /// The store was written in another format (layout version or codec).
    #[error("incompatible store format: found {found:?}, this build expects {expected:?}")]
    IncompatibleFormat {
        /// The marker found on disk.
        found: String,
        /// The marker this build writes.
        expected: String,
    },
    /// The store holds data but no format marker: not a Grove store.
    #[error("the store holds data but has no Grove format marker")]
    MissingFormatMarker,
    /// Writing or reading the commit journal failed.
    #[error("commit journal: {0}")]
    Journal(#[source] std::io::Error),
    /// An earlier commit failed half way (journal or sled error): the store
    /// refuses further writes until it is opened again, which recovers the
    /// last durable state.
    #[error("the store refuses writes after a failed commit; reopen it")]
    Poisoned,
    /// The home is encrypted at rest and was opened without its store key.
    #[error("this home is encrypted at rest: open it with its store key (the app's key store holds it)")]
    StoreKeyRequired,
    /// The store key given is not the key this home is encrypted under.
    /// Nothing was read or changed.
    #[error("wrong store key: this home is encrypted under another key; nothing was changed")]
    WrongStoreKey,
    /// A store key of the wrong length.
    #[error("a store key has 32 bytes, got {len}")]
    BadStoreKey {
        /// The length given.
        len: usize,
    },
    /// A key whose layout the sealed store does not know (a bug).
    #[error("cannot seal the store key {key:?}: {reason}")]
    Unsealable {
        /// The start of the key.
        key: String,
        /// Why.
        reason: String,
    },
    /// An app namespace longer than 255 bytes.
    #[error("app namespace is {len} bytes long, at most 255 allowed")]
    NamespaceTooLong {
        /// The namespace length.
        len: usize,
    },
}
