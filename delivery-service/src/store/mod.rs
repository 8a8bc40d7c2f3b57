//! Storage behind a domain trait.
//!
//! [`Store`] names what the Delivery Service keeps, method by method, and each
//! method's doc states its atomicity promise. There are two implementations:
//! [`SledStore`] (the default, on disk, with group commit for fsyncs) and
//! [`MemoryStore`] (for tests and benchmarks of the layers above). The same test
//! suite (`tests/store.rs`) runs against both.
//!
//! Durability: mutating methods apply their writes atomically but do not wait for
//! the disk. A caller that is about to acknowledge anything awaits
//! [`Store::persist`], which returns once every write made before the call is on
//! disk. Concurrent callers share one fsync (group commit).
//!
//! Integrity (sled store): each group's log is hash-chained ([`chain`]), a
//! watermark file records how far the store had got ([`watermark`]), and opening
//! compares the two (`integrity`) and refuses a damaged or rolled-back store.
//! `grove-ds check` runs the full verification ([`check`]). Format changes are
//! versioned migrations (`migrate`).
//!
//! # Layout
//! - `records`: the stored records and their encoding.
//! - `sled_store`: [`SledStore`], the on-disk store.
//! - `memory`: [`MemoryStore`].
//! - [`chain`], `heads`, [`watermark`], `integrity`, [`check`], `migrate`:
//!   the sled store's integrity and format machinery.

pub mod chain;
pub mod check;
mod heads;
pub(crate) mod integrity;
mod memory;
pub(crate) mod migrate;
pub(crate) mod records;
mod sled_store;
pub mod watermark;

use std::future::Future;
use std::pin::Pin;

pub use check::CheckReport;
pub use memory::MemoryStore;
pub use records::{
    EntryKind, GroupRecord, KeyPackageCounts, KeyPackageKind, LogEntry, RemovedMember, UserRecord, WelcomeEntry,
};
pub use sled_store::{FlushObserver, SledStore, WATERMARK_INTERVAL};

/// What every [`Store`] method returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// A Welcome addressed to the user who may fetch it.
pub type Addressed = (String, WelcomeEntry);

/// One upload of KeyPackages for one ciphersuite, as [`Store::put_key_packages`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct KeyPackageBatch<'a> {
    /// Ciphersuite code point.
    pub suite: u16,
    /// One-time packages, each handed out at most once.
    pub one_time: &'a [Vec<u8>],
    /// Replaces the last-resort package when set.
    pub last_resort: Option<&'a [u8]>,
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The underlying database failed (I/O error, corruption reported by sled).
    #[error("database error: {0}")]
    Db(String),
    /// A stored record could not be decoded: the data directory is damaged or was
    /// written by an incompatible version.
    #[error("corrupt record in {what}: {detail}")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The data directory was written by an incompatible version of grove-ds.
    #[error("data directory format version {found} is not supported (this build reads version {supported})")]
    Version {
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The store holds less than its watermark recorded, or its records do not
    /// match their hash chain: it is damaged or was rolled back, and must not
    /// be served.
    #[error(
        "the store in {dir} is damaged or was rolled back, so grove-ds refuses to serve it:\n  - {}\n\
         Restore the data directory from a backup (the whole directory, with its grove-watermark file). \
         To see what is wrong, run `grove-ds check --data-dir <DIR>`. If you restored an older backup on \
         purpose, accept it with `grove-ds check --data-dir <DIR> --accept-rollback` (clients that saw \
         more will report server_rollback).",
        problems.join("\n  - ")
    )]
    Integrity {
        /// The store directory.
        dir: String,
        /// What is wrong, one line each.
        problems: Vec<String>,
    },
    /// A per-client quota would be exceeded; nothing was written.
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// A record that must be new already exists (for example a log sequence number
    /// that is already taken); nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Result of [`Store::register_user`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The name was free and is now bound to the key.
    Created,
    /// The name was already bound to exactly this credential and key (idempotent retry).
    AlreadyRegistered,
    /// The name is bound to another key; nothing was written.
    NameTaken,
}

/// A boxed future returned by [`Store::persist`].
pub type PersistFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// What the Delivery Service stores. Implementations must be safe to call from
/// many threads at once.
pub trait Store: Send + Sync + 'static {
    /// Binds `user.name` to its credential and signature key.
    ///
    /// Atomic: of two concurrent registrations of one name, exactly one gets
    /// [`RegisterOutcome::Created`]; a name is never re-bound to another key.
    fn register_user(&self, user: &UserRecord) -> Result<RegisterOutcome, StoreError>;

    /// The registration of `name`, if any.
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Adds a batch of one-time KeyPackages (and optionally replaces the
    /// last-resort package) for `user` and ciphersuite `suite`.
    ///
    /// All or nothing: if the one-time packages would exceed `cap`, nothing is
    /// written and [`StoreError::Quota`] is returned.
    fn put_key_packages(&self, user: &str, batch: KeyPackageBatch<'_>, cap: u64) -> StoreResult<KeyPackageCounts>;

    /// [`Store::put_key_packages`] with the batch's fields as arguments.
    fn add_key_packages(
        &self,
        user: &str,
        suite: u16,
        one_time: &[Vec<u8>],
        last_resort: Option<&[u8]>,
        cap: u64,
    ) -> StoreResult<KeyPackageCounts> {
        self.put_key_packages(user, KeyPackageBatch { suite, one_time, last_resort }, cap)
    }

    /// Hands out one KeyPackage of `user` for `suite`: the oldest one-time
    /// package, or the last-resort package when no one-time package is left.
    ///
    /// A one-time package is handed out at most once, even under concurrent
    /// claims (it is removed with compare-and-swap). The last-resort package is
    /// never removed by a claim.
    fn claim_key_package(&self, user: &str, suite: u16) -> Result<Option<(Vec<u8>, KeyPackageKind)>, StoreError>;

    /// How many packages `user` has left for `suite`.
    fn key_package_counts(&self, user: &str, suite: u16) -> Result<KeyPackageCounts, StoreError>;

    /// Creates a group whose `internal_id` came from [`Store::next_internal_id`].
    /// Atomic: returns `false` (and writes nothing) if a group with this id exists.
    fn create_group(&self, record: &GroupRecord) -> Result<bool, StoreError>;

    /// Allocates a fresh internal id for a new group (never reused).
    fn next_internal_id(&self) -> Result<u64, StoreError>;

    /// Loads a group and the next free sequence number of its log.
    fn load_group(&self, group_id: &[u8]) -> Result<Option<(GroupRecord, u64)>, StoreError>;

    /// Ids of every group, for maintenance (retention).
    fn group_ids(&self) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Appends a commit: the log entry, the group's new state and one Welcome
    /// per new member land together or not at all. Fails with
    /// [`StoreError::Conflict`] if `entry.seq` is already taken.
    ///
    /// Returns the inbox ids given to the Welcomes, in order.
    fn append_commit(&self, record: &GroupRecord, entry: &LogEntry, welcomes: &[Addressed]) -> StoreResult<Vec<u64>>;

    /// Appends a non-commit message to a group's log, optionally with a new group
    /// state (a proposal changes the proposal queue), atomically. Fails with
    /// [`StoreError::Conflict`] if `entry.seq` is already taken.
    fn append_message(&self, internal_id: u64, entry: &LogEntry, new_state: Option<&GroupRecord>) -> StoreResult<()>;

    /// Up to `limit` log entries with `after < seq <= up_to`, in order.
    fn fetch_after(&self, internal_id: u64, after: u64, up_to: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError>;

    /// Records that `user` has processed the group's log through `seq`.
    /// Cursors only move forward: a lower value is ignored.
    fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> Result<u64, StoreError>;

    /// Every stored cursor of a group.
    fn cursors(&self, internal_id: u64) -> Result<Vec<(String, u64)>, StoreError>;

    /// Deletes log entries with `seq <= through`, and entries received before
    /// `received_before` (unix seconds) in log order, stopping at the first
    /// entry that is kept. Returns how many entries were deleted. The group's
    /// sequence numbers keep counting from where they were.
    fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> Result<u64, StoreError>;

    /// Stores `reporter`'s signed report (opaque bytes) of the commit at
    /// `seq`, replacing an earlier one of theirs. Returns how many members
    /// have reported that commit. Reports go when the log is pruned past
    /// their commit ([`Store::prune_log`]).
    fn add_commit_report(&self, internal_id: u64, seq: u64, reporter: &str, report: &[u8]) -> StoreResult<u64>;

    /// Number of log entries stored, all groups together.
    fn message_count(&self) -> Result<u64, StoreError>;

    /// Up to `limit` Welcomes in `user`'s inbox with `id > after`, in id order.
    fn inbox_after(&self, user: &str, after: u64, limit: usize) -> Result<Vec<WelcomeEntry>, StoreError>;

    /// Deletes one entry of `user`'s inbox. Returns whether it existed.
    /// (Entries are acknowledged one by one, never "through an id", so an entry
    /// that lands late with a lower id can never be deleted unseen.)
    fn inbox_ack(&self, user: &str, id: u64) -> Result<bool, StoreError>;

    /// Resolves once every write made before the call is durable on disk.
    /// Concurrent callers share one fsync.
    fn persist(&self) -> PersistFuture;
}

/// The one-time count after adding `adding` packages to `existing`, if it
/// stays within `cap`; otherwise [`StoreError::Quota`] (both stores' rule).
pub(crate) fn check_key_package_cap(existing: u64, adding: usize, cap: u64) -> Result<u64, StoreError> {
    let total = existing + adding as u64;
    if total > cap {
        return Err(StoreError::Quota(format!(
            "{existing} one-time KeyPackages stored, {adding} more would exceed the cap of {cap}"
        )));
    }
    Ok(total)
}
