//! Crash-safe local state: openmls's [`StorageProvider`] and the app's own
//! records, on one sled tree, committed atomically.
//!
//! # Model
//!
//! - [`SledStorage`] owns the sled database. Reads go straight to sled. A write
//!   made directly on it (outside a transaction) is committed on its own
//!   (durable before the call returns): each single key write is durable on
//!   its own, but several such writes are not atomic together.
//! - [`Transaction`] (from [`SledStorage::begin`] or [`SledStorage::transaction`])
//!   collects every write in an in-memory overlay. Reads through the transaction
//!   see the overlay first (read-your-writes, including deletions and list
//!   appends/removals). [`Transaction::commit`] writes the whole overlay as one
//!   checksummed record to the commit journal and `fdatasync`s it, then applies
//!   it to sled; so when it returns the operation is durable, and after a crash
//!   either all of the operation's writes are recovered or none is (see
//!   `storage/journal.rs` for the recovery argument). Dropping a transaction without
//!   committing (or calling [`Transaction::rollback`]) discards the overlay and
//!   leaves disk untouched.
//! - Committed writes stay in memory (and in the journal) until a checkpoint
//!   moves them into sled as one batch and flushes it (when the journal
//!   passes 8 MiB, on [`SledStorage::flush`] and on drop). Reads see them
//!   first. Readers never see half a commit.
//! - Transactions are serialized: [`SledStorage::begin`] waits until no other
//!   transaction on the same store is open. Do not begin a second transaction on
//!   the same thread while one is open: it would wait for itself forever.
//! - Both types implement openmls's [`StorageProvider`] and carry the app's own
//!   records (`put_app`, `get_app`, `remove_app`, `scan_prefix_app`), so an MLS
//!   operation and the app's bookkeeping commit in one batch.
//! - [`GroveProvider`] is the `OpenMlsProvider` (RustCrypto + [`SledStorage`]);
//!   [`GroveProvider::transaction`] hands out a [`TxnProvider`] whose storage is a
//!   [`Transaction`].
//!
//! After a rollback, any `MlsGroup` value that took part in the operation holds
//! in-memory state that is ahead of disk: reload it with `MlsGroup::load`.
//!
//! ```no_run
//! use grove_client::storage::{GroveProvider, StorageError};
//! use openmls_traits::OpenMlsProvider;
//! # fn main() -> Result<(), StorageError> {
//! let provider = GroveProvider::open("/home/me/.grove")?;
//! provider.transaction(|p| -> Result<(), StorageError> {
//!     // MLS operations take `p` as their provider, for example
//!     // `group.process_message(p, message)?` then `group.merge_staged_commit(p, staged)?`;
//!     // the app's bookkeeping goes into the same batch:
//!     p.storage().put_app("cursors", b"group-1", &42u64.to_be_bytes())?;
//!     Ok(())
//! })?; // committed: one journal record (fdatasync), then applied to sled
//! # Ok(()) }
//! ```
//!
//! # On-disk layout
//!
//! `home/store.sled/` holds the sled database and the commit journal
//! (`grove.journal`, empty after a clean close). The committed state is sled's
//! content with the journal's records applied on top, which
//! [`SledStorage::open`] does. One sled tree (the default one), keys prefixed
//! by a namespace byte:
//! - `0x00 "format"`: the format marker (see [`FORMAT_VERSION`]).
//! - `0x01 label 0x00 key`: openmls values. `label` is the same label the
//!   reference `openmls_memory_storage` uses (`"Tree"`, `"GroupContext"`, ...),
//!   `key` is the codec encoding of openmls's key (group id, tuple, ...).
//! - `0x02 len(ns) ns key`: app records in namespace `ns` (at most 255 bytes).
//!
//! Values are encoded with a [`ValueCodec`], MessagePack by default (see
//! [`codec`] for why).
//!
//! [`StorageProvider`]: openmls_traits::storage::StorageProvider

#[macro_use]
pub(crate) mod app;
pub mod codec;
mod error;
mod fs;
pub(crate) mod journal;
mod mls;
mod provider;
pub(crate) mod seal;
mod transaction;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use journal::Journal;

use serde::{de::DeserializeOwned, Serialize};

#[cfg(test)]
use app::app_key;
use app::{decode_value, encode_value};
pub use codec::{DefaultCodec, MsgPack, ValueCodec};
pub use error::StorageError;
#[cfg(test)]
use fs::LOCK_WAIT;
use fs::{create_private_dir, open_sled};
pub use provider::{GroveProvider, TxnProvider};
use seal::Sealer;
pub use seal::{StoreKey, STORE_KEY_LEN};
use transaction::apply_overlay;
pub use transaction::Transaction;

/// Version of Grove's on-disk layout. Bump it on any incompatible change to the
/// key layout or value encoding; old stores then fail to open with
/// [`StorageError::IncompatibleFormat`].
///
/// Version 2 added the commit journal (`store.sled/grove.journal`): a build
/// that does not replay it would miss the last transactions after a crash, so
/// v1 builds must not open a v2 store. A v1 store (which has no journal) is
/// upgraded in place when opened.
pub const FORMAT_VERSION: u32 = 2;

/// The layout versions this build opens (and upgrades to [`FORMAT_VERSION`]).
const READABLE_FORMAT_VERSIONS: [u32; 2] = [1, FORMAT_VERSION];

/// Name of the sled directory inside a Grove home directory.
pub const DB_DIR_NAME: &str = "store.sled";

const NS_META: u8 = 0x00;
const NS_MLS: u8 = 0x01;
const NS_APP: u8 = 0x02;
const FORMAT_KEY: &[u8] = b"\x00format";
const _: () = assert!(FORMAT_KEY[0] == NS_META);

/// Key/value pairs in key order, as returned by scans.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Pending writes: key → new value, `None` meaning deleted.
type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The format marker of layout `version` with codec `C`.
fn format_marker<C: ValueCodec>(version: u32) -> String {
    format!(
        "grove-client-store v{version} codec={} openmls-storage={}",
        C::NAME,
        openmls_traits::storage::CURRENT_VERSION
    )
}

/// What the format marker of a store encrypted at rest ends with.
const SEALED_SUFFIX: &str = " sealed=xchacha20poly1305+hmac-sha256";

/// Raw key/value access shared by [`SledStorage`] (auto-commit) and
/// [`Transaction`] (overlay). Everything else is built on these two calls.
pub(crate) trait Kv {
    /// The value codec.
    type Codec: ValueCodec;
    /// Reads one raw value.
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Writes (`Some`) or deletes (`None`) one raw value.
    fn put_raw(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StorageError>;
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_raw(&self, prefix: &[u8]) -> Result<Entries, StorageError>;
}

/// openmls state and app records on sled. See the [module docs](self).
pub struct SledStorage<C: ValueCodec = DefaultCodec> {
    db: sled::Db,
    /// Held by the open [`Transaction`], if any: transactions are serialized.
    writer: Mutex<()>,
    /// How commits become durable; also serializes them.
    commits: Mutex<CommitPath>,
    /// Committed writes (journal mode) not yet applied to sled: newer than
    /// sled's content, read first. Moved into sled by each checkpoint (one
    /// batch, then a flush), so sled alone always holds the state of the last
    /// checkpoint. A commit inserts its whole overlay under the write lock:
    /// nobody sees half a commit.
    pending: RwLock<Overlay>,
    /// `Some` for a store encrypted at rest: keys and values on disk (sled,
    /// journal, `pending`) are sealed; the `Kv` calls take and return them
    /// in clear.
    sealer: Option<Box<Sealer>>,
    _codec: PhantomData<fn() -> C>,
}

/// How [`SledStorage::apply`] makes a commit durable.
#[derive(Debug)]
struct CommitPath {
    /// `Some` for a store opened from its directory: the record is made durable
    /// in the journal, then the writes go to `pending`. `None`
    /// for a store made from an already opened database ([`SledStorage::from_db`]):
    /// one sled batch, then a sled flush.
    journal: Option<Journal>,
    /// Set when a commit failed half way; every later write is refused.
    poisoned: bool,
}

impl<C: ValueCodec> fmt::Debug for SledStorage<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStorage").field("codec", &C::NAME).finish_non_exhaustive()
    }
}

impl SledStorage {
    /// Where [`open`](Self::open) puts the sled database inside `home`.
    pub fn db_path(home: &Path) -> PathBuf {
        home.join(DB_DIR_NAME)
    }

    /// Opens (or creates) the store in Grove home directory `home`, with the
    /// default codec. See [`open_with_codec`](Self::open_with_codec).
    pub fn open(home: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with_codec(home)
    }

    /// Uses an already opened sled database, with the default codec. See
    /// [`from_db_with_codec`](Self::from_db_with_codec).
    pub fn from_db(db: sled::Db) -> Result<Self, StorageError> {
        Self::from_db_with_codec(db)
    }
}

impl<C: ValueCodec> SledStorage<C> {
    /// Opens (or creates) the store in Grove home directory `home`.
    ///
    /// Creates `home` if needed with owner-only permissions (0700 on unix) and
    /// tightens an existing `home` that is readable by others. The sled database
    /// lives in `home/`[`DB_DIR_NAME`] (see [`db_path`](Self::db_path)), and
    /// so does the commit journal, which is replayed here if the last run
    /// stopped before checkpointing it.
    ///
    /// Fails with [`StorageError::IncompatibleFormat`] if the store was written
    /// with another layout version or codec.
    pub fn open_with_codec(home: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_keyed(home, None)
    }

    /// Opens (or creates) the store in `home`, encrypted at rest under `key`
    /// when one is given (see `storage/seal.rs`).
    ///
    /// - A new store with a key is created sealed.
    /// - A sealed store needs its key: none gives
    ///   [`StorageError::StoreKeyRequired`], another gives
    ///   [`StorageError::WrongStoreKey`], and neither changes anything.
    /// - A store in clear opened with a key is sealed first: a sealed copy is
    ///   built beside it, then swapped in (a crash at any point leaves one
    ///   complete store, and the next open finishes or restarts the job).
    pub fn open_keyed(home: impl AsRef<Path>, key: Option<&StoreKey>) -> Result<Self, StorageError> {
        let home = home.as_ref();
        create_private_dir(home)?;
        Self::finish_interrupted_sealing(home)?;
        let path = SledStorage::db_path(home);
        let db = open_sled(&path)?;
        let sealer = match (Self::sealed_marker(&db)?, key) {
            (true, None) => return Err(StorageError::StoreKeyRequired),
            (false, Some(key)) if !db.is_empty() => {
                drop(db);
                Self::seal_plain_store(home, key)?;
                return Self::open_keyed(home, Some(key));
            }
            (_, None) => None,
            (_, Some(key)) => Some(Box::new(Self::sealer_of(&db, key)?)),
        };
        let mut store = Self::from_db_sealed(db, sealer)?;
        let (mut journal, records) = Journal::open(&path).map_err(StorageError::Journal)?;
        if !records.is_empty() {
            for overlay in &records {
                store.db.apply_batch(to_batch(overlay.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))))?;
            }
            store.db.flush()?;
            journal.reset().map_err(StorageError::Journal)?;
        }
        store.commits.get_mut().unwrap_or_else(PoisonError::into_inner).journal = Some(journal);
        Ok(store)
    }

    /// Uses an already opened sled database (for example a temporary one).
    ///
    /// Writes the format marker into an empty database; checks it otherwise.
    /// Such a store has no journal: each commit is one sled batch followed by
    /// a sled flush (slower, equally safe). Do not use it on the database of a
    /// Grove home whose journal is not empty (after a crash): open the home
    /// with [`open`](Self::open) first, which replays the journal; otherwise
    /// that later replay would put the journaled values back over newer ones.
    pub fn from_db_with_codec(db: sled::Db) -> Result<Self, StorageError> {
        if Self::sealed_marker(&db)? {
            return Err(StorageError::StoreKeyRequired);
        }
        Self::from_db_sealed(db, None)
    }

    /// Whether `db` is a sealed store (its marker says so).
    fn sealed_marker(db: &sled::Db) -> Result<bool, StorageError> {
        Ok(db.get(FORMAT_KEY)?.is_some_and(|m| m.ends_with(SEALED_SUFFIX.as_bytes())))
    }

    /// The sealer of `db` under `key`: a new one (salt and key check
    /// written) for an empty database, else checked against the key check.
    fn sealer_of(db: &sled::Db, key: &StoreKey) -> Result<Sealer, StorageError> {
        match (db.get(seal::SALT_KEY)?, db.get(seal::KEY_CHECK_KEY)?) {
            (Some(salt), Some(check)) => Sealer::open(key, &salt, &check),
            _ if db.is_empty() => {
                let (sealer, salt, check) = Sealer::create(key);
                db.insert(seal::SALT_KEY, &salt[..])?;
                db.insert(seal::KEY_CHECK_KEY, &check[..])?;
                Ok(sealer)
            }
            _ => Err(StorageError::Corrupt {
                what: "store key check".into(),
                reason: "a sealed store without its salt or key check".into(),
            }),
        }
    }

    /// [`from_db_with_codec`](Self::from_db_with_codec), sealed when `sealer` is set.
    fn from_db_sealed(db: sled::Db, sealer: Option<Box<Sealer>>) -> Result<Self, StorageError> {
        let suffix = if sealer.is_some() { SEALED_SUFFIX } else { "" };
        let expected = format_marker::<C>(FORMAT_VERSION) + suffix;
        match db.get(FORMAT_KEY)? {
            Some(found) if found.as_ref() == expected.as_bytes() => {}
            Some(found) => {
                let older = READABLE_FORMAT_VERSIONS
                    .iter()
                    .any(|&v| found.as_ref() == (format_marker::<C>(v) + suffix).as_bytes());
                if !older {
                    return Err(StorageError::IncompatibleFormat {
                        found: String::from_utf8_lossy(&found).into_owned(),
                        expected,
                    });
                }
                // Same data, newer layout: mark it so that older builds refuse it.
                db.insert(FORMAT_KEY, expected.as_bytes())?;
                db.flush()?;
            }
            None => {
                let meta_only = db.iter().keys().all(|k| k.is_ok_and(|k| k.first() == Some(&NS_META)));
                if !meta_only {
                    return Err(StorageError::MissingFormatMarker);
                }
                db.insert(FORMAT_KEY, expected.as_bytes())?;
                db.flush()?;
            }
        }
        Ok(Self {
            db,
            writer: Mutex::new(()),
            commits: Mutex::new(CommitPath { journal: None, poisoned: false }),
            pending: RwLock::new(Overlay::new()),
            sealer,
            _codec: PhantomData,
        })
    }

    /// Begins a transaction. Waits while another transaction on this store is
    /// open (never begin a second one on the same thread).
    pub fn begin(&self) -> Transaction<'_, C> {
        // A poisoned lock only means a panic happened while a transaction was
        // open; its overlay was dropped and disk is unchanged, so go on.
        let guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Transaction { store: self, overlay: RefCell::new(Overlay::new()), _guard: guard }
    }

    /// Runs `f` in a transaction: commits (durably, atomically) if `f`
    /// returns `Ok`, discards every write if it returns `Err`.
    ///
    /// A failed commit is returned as `Err(E::from(StorageError))`.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Transaction<'_, C>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        transaction::run(self.begin(), f, Transaction::commit)
    }

    /// Applies the journaled commits to sled, flushes sled and empties the
    /// journal (a checkpoint). Never needed for durability: commits are
    /// durable already.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *commits {
            CommitPath { poisoned: true, .. } => Err(StorageError::Poisoned),
            CommitPath { journal: None, .. } => Ok(self.db.flush().map(drop)?),
            CommitPath { journal: Some(journal), poisoned } => self.checkpoint(journal, poisoned),
        }
    }

    /// Moves `pending` into sled (one batch), flushes sled, then empties the
    /// journal. Called with the commit lock held. Any failure poisons the
    /// store: the journal still holds everything, reopening recovers.
    fn checkpoint(&self, journal: &mut Journal, poisoned: &mut bool) -> Result<(), StorageError> {
        let result = (|| {
            let batch = {
                let pending = self.pending.read().unwrap_or_else(PoisonError::into_inner);
                if pending.is_empty() && journal.len() == 0 {
                    return Ok(());
                }
                to_batch(pending.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))
            };
            self.db.apply_batch(batch)?;
            // sled now has every pending value: readers may go there.
            self.pending.write().unwrap_or_else(PoisonError::into_inner).clear();
            self.db.flush()?;
            journal.reset().map_err(StorageError::Journal)
        })();
        if result.is_err() {
            *poisoned = true;
        }
        result
    }

    /// Makes `overlay` durable and visible, all of it or nothing (also after a
    /// crash).
    fn apply(&self, overlay: Overlay) -> Result<(), StorageError> {
        if overlay.is_empty() {
            return Ok(());
        }
        let overlay = match &self.sealer {
            None => overlay,
            Some(s) => overlay
                .into_iter()
                .map(|(key, value)| {
                    let sealed_key = s.key(&key)?;
                    let value = value.map(|v| s.seal(&sealed_key, &key, &v)).transpose()?;
                    Ok((sealed_key, value))
                })
                .collect::<Result<Overlay, StorageError>>()?,
        };
        let mut commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        let CommitPath { journal, poisoned } = &mut *commits;
        if *poisoned {
            return Err(StorageError::Poisoned);
        }
        let Some(journal) = journal else {
            self.db.apply_batch(to_batch(overlay.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))))?;
            self.db.flush()?;
            return Ok(());
        };
        // Durable first (on error the journal may end in a partial record, and
        // a record may even be durable although its write reported an error:
        // refuse to write anything after it until the store is reopened).
        if let Err(e) = journal.append(&overlay) {
            *poisoned = true;
            return Err(StorageError::Journal(e));
        }
        // Then visible, all at once. It reaches sled at the next checkpoint;
        // until then the journal is what makes it durable.
        self.pending.write().unwrap_or_else(PoisonError::into_inner).extend(overlay);
        if journal.len() > journal::CHECKPOINT_BYTES {
            // This commit is durable and visible whatever happens here; a
            // failed checkpoint poisons the store, so the next write reports it.
            if let Err(e) = self.checkpoint(journal, poisoned) {
                tracing::error!("storage checkpoint failed, refusing further writes until reopened: {e}");
            }
        }
        Ok(())
    }

    app_methods!();
}

impl<C: ValueCodec> Drop for SledStorage<C> {
    /// Checkpoints, so that sled alone holds everything and the next open has
    /// no journal to replay. On failure the journal stays: the next open
    /// replays it.
    fn drop(&mut self) {
        let mut commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        if let CommitPath { journal: Some(journal), poisoned } = &mut *commits {
            if !*poisoned {
                let _ = self.checkpoint(journal, poisoned);
            }
        }
    }
}

/// Writes (`None`: delete) as one sled batch.
fn to_batch<'a>(writes: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
    }
    batch
}

impl<C: ValueCodec> Kv for SledStorage<C> {
    type Codec = C;

    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(s) = &self.sealer else { return self.get_stored(key) };
        let sealed_key = s.key(key)?;
        let Some(sealed) = self.get_stored(&sealed_key)? else { return Ok(None) };
        let (found, value) = s.open_value(&sealed_key, &sealed)?;
        if found != key {
            return Err(StorageError::Corrupt {
                what: "sealed value".into(),
                reason: "it belongs to another key".into(),
            });
        }
        Ok(Some(value))
    }

    /// Auto-commit: the write is durable before returning.
    fn put_raw(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StorageError> {
        let mut overlay = Overlay::new();
        overlay.insert(key, value);
        self.apply(overlay)
    }

    fn scan_raw(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        let Some(s) = &self.sealer else { return self.scan_stored(prefix) };
        let sealed_prefix = s.prefix(prefix)?;
        let mut out = Vec::new();
        for (sealed_key, sealed) in self.scan_stored(&sealed_prefix)? {
            if sealed_key.first() == Some(&NS_META) {
                continue;
            }
            let (key, value) = s.open_value(&sealed_key, &sealed)?;
            if key.starts_with(prefix) {
                out.push((key, value));
            }
        }
        // Hashed parts scatter the order; give it back.
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

impl<C: ValueCodec> SledStorage<C> {
    /// One stored (sealed, in a sealed store) value: `pending` first, then sled.
    fn get_stored(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let pending = self.pending.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = pending.get(key) {
            return Ok(value.clone());
        }
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    /// Stored entries under `prefix`: sled's, with `pending` applied.
    fn scan_stored(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        let pending = self.pending.read().unwrap_or_else(PoisonError::into_inner);
        let stored = self.db.scan_prefix(prefix).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())));
        if pending.is_empty() {
            return stored.collect::<Result<_, _>>().map_err(Into::into);
        }
        let mut merged = stored.collect::<Result<BTreeMap<_, _>, _>>()?;
        apply_overlay(&mut merged, &pending, prefix);
        Ok(merged.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> SledStorage {
        let db = sled::Config::new().temporary(true).open().unwrap();
        SledStorage::from_db(db).unwrap()
    }

    #[test]
    fn a_store_open_elsewhere_is_reported_as_locked_and_reopens_once_closed() {
        let dir = tempfile::tempdir().unwrap();
        let first: SledStorage = SledStorage::open(dir.path()).unwrap();
        first.put_app("c", b"k", b"v").unwrap();
        let started = std::time::Instant::now();
        match SledStorage::open(dir.path()) {
            Err(StorageError::Locked { path }) => assert!(path.ends_with(DB_DIR_NAME)),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(started.elapsed() >= LOCK_WAIT, "gave up before waiting");
        // Closed and reopened at once, many times, as the passive-client
        // vectors do after every step.
        drop(first);
        for _ in 0..20 {
            let again: SledStorage = SledStorage::open(dir.path()).unwrap();
            assert_eq!(again.get_app("c", b"k").unwrap(), Some(b"v".to_vec()));
        }
    }

    #[test]
    fn overlay_read_your_writes_and_scan() {
        let store = temp_store();
        store.put_app("contacts", b"alice", b"1").unwrap();
        store.put_app("contacts", b"bob", b"2").unwrap();
        store.put_app("contactsX", b"zed", b"9").unwrap();

        let txn = store.begin();
        txn.put_app("contacts", b"carol", b"3").unwrap();
        txn.remove_app("contacts", b"alice").unwrap();
        assert_eq!(txn.get_app("contacts", b"alice").unwrap(), None);
        assert_eq!(txn.get_app("contacts", b"carol").unwrap(), Some(b"3".to_vec()));
        let scanned = txn.scan_prefix_app("contacts", b"").unwrap();
        assert_eq!(scanned, vec![(b"bob".to_vec(), b"2".to_vec()), (b"carol".to_vec(), b"3".to_vec())]);
        // Not visible outside before commit.
        assert_eq!(store.get_app("contacts", b"carol").unwrap(), None);
        txn.rollback();
        assert_eq!(store.get_app("contacts", b"alice").unwrap(), Some(b"1".to_vec()));

        store
            .transaction(|t| -> Result<(), StorageError> {
                t.put_app("contacts", b"carol", b"3")?;
                t.remove_app("contacts", b"alice")
            })
            .unwrap();
        assert_eq!(store.get_app("contacts", b"alice").unwrap(), None);
        assert_eq!(store.scan_prefix_app("contacts", b"c").unwrap().len(), 1);
    }

    #[test]
    fn journal_mode_reads_pending_writes_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store: SledStorage = SledStorage::open(dir.path()).unwrap();
        let journal = SledStorage::db_path(dir.path()).join(journal::JOURNAL_FILE);
        store.put_app("c", b"a", b"1").unwrap();
        store.put_app("c", b"b", b"2").unwrap();
        store.flush().unwrap();
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
        // Pending (journal only) on top of sled: a put, an overwrite, a delete.
        store
            .transaction(|t| -> Result<(), StorageError> {
                t.put_app("c", b"c", b"3")?;
                t.put_app("c", b"a", b"1'")?;
                t.remove_app("c", b"b")
            })
            .unwrap();
        assert!(std::fs::metadata(&journal).unwrap().len() > 0);
        let expected = vec![(b"a".to_vec(), b"1'".to_vec()), (b"c".to_vec(), b"3".to_vec())];
        assert_eq!(store.scan_prefix_app("c", b"").unwrap(), expected);
        assert_eq!(store.get_app("c", b"b").unwrap(), None);
        assert_eq!(store.begin().scan_prefix_app("c", b"").unwrap(), expected);
        // sled alone still has the last checkpoint's state.
        assert_eq!(store.db.get(app_key("c", b"b").unwrap()).unwrap().as_deref(), Some(&b"2"[..]));
        store.flush().unwrap();
        assert_eq!(store.db.get(app_key("c", b"b").unwrap()).unwrap(), None);
        assert_eq!(store.scan_prefix_app("c", b"").unwrap(), expected);
        // A large journal checkpoints by itself.
        let big = vec![7u8; 1 << 20];
        for i in 0u8..9 {
            store.put_app("big", &[i], &big).unwrap();
        }
        assert!(std::fs::metadata(&journal).unwrap().len() < journal::CHECKPOINT_BYTES);
        assert_eq!(store.scan_prefix_app("big", b"").unwrap().len(), 9);
        drop(store);
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0, "checkpointed on drop");
        let store: SledStorage = SledStorage::open(dir.path()).unwrap();
        assert_eq!(store.scan_prefix_app("c", b"").unwrap(), expected);
    }

    #[test]
    fn transactions_are_serialized() {
        let store = temp_store();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..25 {
                        store
                            .transaction(|t| -> Result<(), StorageError> {
                                let n: u64 = t.get_app_value("c", b"n")?.unwrap_or(0);
                                std::thread::yield_now();
                                t.put_app_value("c", b"n", &(n + 1))
                            })
                            .unwrap();
                    }
                });
            }
        });
        // No lost update: every read-modify-write saw the previous commit.
        assert_eq!(store.get_app_value::<u64>("c", b"n").unwrap(), Some(50));
    }

    #[test]
    fn typed_app_values_and_namespace_limit() {
        let store = temp_store();
        store.put_app_value("cursors", b"g1", &42u64).unwrap();
        assert_eq!(store.get_app_value::<u64>("cursors", b"g1").unwrap(), Some(42));
        store.put_app("cursors", b"bad", &[0xc1]).unwrap(); // 0xc1 is never valid msgpack
        assert!(matches!(store.get_app_value::<u64>("cursors", b"bad"), Err(StorageError::Corrupt { .. })));
        let long = "x".repeat(256);
        assert!(matches!(store.put_app(&long, b"k", b"v"), Err(StorageError::NamespaceTooLong { len: 256 })));
    }
}
