//! Storage behind a domain trait.
//!
//! [`Store`] names what the Delivery Service keeps, method by method, and each
//! method's doc states its atomicity promise. There are two implementations:
//! [`SledStore`] (the default, on disk, with group commit for fsyncs) and
//! [`MemoryStore`] (for tests and benchmarks of the layers above), and
//! [`PgStore`] (PostgreSQL, for several replicas on one database). The same
//! test suite (`tests/store.rs`) runs against all three.
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
//! - `sled_store`: [`SledStore`], the on-disk store (open, records);
//!   `sled_trait`: its [`Store`] implementation and the auth trees.
//! - `flusher`: the sled store's fsync thread (group commit, the flush count
//!   behind [`Store::is_durable`], the watermark after a flush).
//! - [`postgres`]: [`PgStore`], its schema migrations (`pg/*.sql`) and the
//!   listener for other replicas' changes; `pg_batch`: group commit of
//!   application messages.
//! - [`transfer`]: `grove-ds migrate`, a sled store copied into PostgreSQL.
//! - `memory`: [`MemoryStore`].
//! - [`chain`], `heads`, [`watermark`], `integrity`, [`check`], `migrate`:
//!   the sled store's integrity and format machinery.

pub mod chain;
pub mod check;
mod flusher;
mod heads;
pub(crate) mod integrity;
mod memory;
pub(crate) mod migrate;
mod pg_auth;
mod pg_batch;
mod pg_kt;
pub mod postgres;
pub(crate) mod records;
mod sled_store;
mod sled_trait;
pub mod transfer;
pub mod watermark;

pub use check::CheckReport;
pub use memory::MemoryStore;
pub use postgres::PgStore;
pub use records::{
    EntryKind, GroupRecord, KeyPackageCounts, KeyPackageKind, LogEntry, RemovedMember, UserRecord, WelcomeEntry,
};
pub use sled_store::{FlushObserver, SledStore, WATERMARK_INTERVAL};

/// What every [`Store`] method returns.
pub type StoreResult<T> = Result<T, StoreError>;

/// The guard of [`Store::kt_publish_lock`]: the lock is held until it drops.
pub struct KtPublishLock(#[allow(dead_code)] pub(crate) Option<Box<dyn Send>>);

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
#[derive(Debug, Clone, thiserror::Error)]
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
    /// The database cannot be reached (a network database that is down or
    /// restarting). Nothing was written; the request can be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
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

/// A change another process made to a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Another replica appended the entry `seq` of `kind` to the group's log.
    Appended {
        /// The MLS group id.
        group_id: Vec<u8>,
        /// The first sequence number appended (a batch of application
        /// messages appends a range).
        first: u64,
        /// The last sequence number appended.
        seq: u64,
        /// What the entry is.
        kind: EntryKind,
    },
    /// Changes may have been missed (the listening connection was lost and
    /// is back): everything cached must be checked against the store.
    Missed,
}

/// A signed-in session: who a bearer token belongs to, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The user the token was issued to.
    pub user: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// The device (its id, `grove_proto::identity::device_id`) the token was
    /// issued to, for a user with a device list; `None` for a user without
    /// one (and for challenges).
    pub device: Option<String>,
}

/// A request to link a new device (`docs/identity.md`): made by the new
/// device, approved once by one of its user's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// The user the new device belongs to.
    pub user: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// The request (TLS-encoded `grove_proto::link::LinkRequest`), opaque here.
    pub request: Vec<u8>,
    /// The approval (opaque, encrypted to the new device), once given.
    pub approval: Option<Vec<u8>>,
}

/// What the Delivery Service stores. Implementations must be safe to call from
/// many tasks at once, and from several processes when the backing database is
/// shared (PostgreSQL): every promise below then holds across processes.
///
/// The methods are async so that a network database fits without blocking
/// the runtime; the sled store runs its scans on the blocking pool.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Binds `user.name` to its credential and signature key.
    ///
    /// Atomic: of two concurrent registrations of one name, exactly one gets
    /// [`RegisterOutcome::Created`]; a name is never re-bound to another key.
    async fn register_user(&self, user: &UserRecord) -> StoreResult<RegisterOutcome>;

    /// The registration of `name`, if any.
    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>>;

    /// Adds a batch of one-time KeyPackages (and optionally replaces the
    /// last-resort package) for `user` and ciphersuite `batch.suite`.
    ///
    /// All or nothing: if the one-time packages would exceed `cap`, nothing is
    /// written and [`StoreError::Quota`] is returned.
    async fn put_key_packages(&self, user: &str, batch: KeyPackageBatch<'_>, cap: u64)
        -> StoreResult<KeyPackageCounts>;

    /// [`Store::put_key_packages`] with the batch's fields as arguments.
    async fn add_key_packages(
        &self,
        user: &str,
        suite: u16,
        one_time: &[Vec<u8>],
        last_resort: Option<&[u8]>,
        cap: u64,
    ) -> StoreResult<KeyPackageCounts> {
        self.put_key_packages(user, KeyPackageBatch { suite, one_time, last_resort }, cap).await
    }

    /// Hands out one KeyPackage of `user` for `suite`: the oldest one-time
    /// package, or the last-resort package when no one-time package is left.
    ///
    /// A one-time package is handed out at most once, even under concurrent
    /// claims. The last-resort package is never removed by a claim.
    async fn claim_key_package(&self, user: &str, suite: u16) -> StoreResult<Option<(Vec<u8>, KeyPackageKind)>>;

    /// How many packages `user` has left for `suite`.
    async fn key_package_counts(&self, user: &str, suite: u16) -> StoreResult<KeyPackageCounts>;

    /// Creates a group whose `internal_id` came from [`Store::next_internal_id`].
    /// Atomic: returns `false` (and writes nothing) if a group with this id exists.
    async fn create_group(&self, record: &GroupRecord) -> StoreResult<bool>;

    /// Allocates a fresh internal id for a new group (never reused).
    async fn next_internal_id(&self) -> StoreResult<u64>;

    /// Loads a group and the next free sequence number of its log.
    async fn load_group(&self, group_id: &[u8]) -> StoreResult<Option<(GroupRecord, u64)>>;

    /// Ids of every group, for maintenance (retention).
    async fn group_ids(&self) -> StoreResult<Vec<Vec<u8>>>;

    /// Appends a commit: the log entry, the group's new state and one Welcome
    /// per new member land together or not at all. Exactly one commit per
    /// (group, epoch): if the group is no longer at `entry.epoch` (another
    /// writer committed first), nothing is written, the result is
    /// [`StoreError::Conflict`], and the caller must reload the group
    /// ([`Store::load_group`]). An unshared store also requires `entry.seq`
    /// to be the next free sequence number; a shared one takes the next free
    /// number (application messages of other replicas may come first) and
    /// writes it for `entry.seq` into the record's removed members.
    ///
    /// Returns the sequence number taken and the inbox ids given to the
    /// Welcomes, in order.
    async fn append_commit(
        &self,
        record: &GroupRecord,
        entry: &LogEntry,
        welcomes: &[Addressed],
    ) -> StoreResult<(u64, Vec<u64>)>;

    /// Appends a non-commit message to a group's log, optionally with a new group
    /// state (a proposal changes the proposal queue), atomically. `entry.seq`
    /// must be the next free sequence number, as for [`Store::append_commit`].
    async fn append_message(
        &self,
        internal_id: u64,
        entry: &LogEntry,
        new_state: Option<&GroupRecord>,
    ) -> StoreResult<()>;

    /// Appends an application message (no state change) at the log's next
    /// free sequence number, provided the group is still at `epoch` (the
    /// epoch the caller checked the sender's membership against); returns
    /// the sequence number taken. A shared store may take a later number
    /// than `entry.seq` (other replicas' messages in between); a group that
    /// moved to another epoch is [`StoreError::Conflict`]. The default
    /// takes exactly `entry.seq`, like [`Store::append_message`].
    async fn append_application(&self, internal_id: u64, entry: &LogEntry, epoch: u64) -> StoreResult<u64> {
        let _ = epoch;
        self.append_message(internal_id, entry, None).await.map(|()| entry.seq)
    }

    /// Appends a proposal with the group's new state (`record`, the proposal
    /// queued), provided the stored state is still `base` (the state the
    /// proposal was validated against); returns the sequence number taken.
    /// On a shared store, if another writer changed the state, nothing is
    /// written and the result is [`StoreError::Conflict`]; it may take a
    /// later number than `entry.seq` (application messages of other
    /// replicas in between). The default, for a store with one writer (whose
    /// caller holds the group's locks), takes exactly `entry.seq`.
    async fn append_proposal(&self, base: &GroupRecord, record: &GroupRecord, entry: &LogEntry) -> StoreResult<u64> {
        let _ = base;
        self.append_message(record.internal_id, entry, Some(record)).await.map(|()| entry.seq)
    }

    /// Up to `limit` log entries with `after < seq <= up_to`, in order.
    async fn fetch_after(&self, internal_id: u64, after: u64, up_to: u64, limit: usize) -> StoreResult<Vec<LogEntry>>;

    /// Records that `user` has processed the group's log through `seq`.
    /// Cursors only move forward: a lower value is ignored. Returns the cursor.
    async fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> StoreResult<u64>;

    /// Every stored cursor of a group.
    async fn cursors(&self, internal_id: u64) -> StoreResult<Vec<(String, u64)>>;

    /// Deletes log entries with `seq <= through`, and entries received before
    /// `received_before` (unix seconds) in log order, stopping at the first
    /// entry that is kept. Returns how many entries were deleted. The group's
    /// sequence numbers keep counting from where they were.
    async fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> StoreResult<u64>;

    /// Stores `reporter`'s signed report (opaque bytes) of the commit at
    /// `seq`, replacing an earlier one of theirs. Returns how many members
    /// have reported that commit. Reports go when the log is pruned past
    /// their commit ([`Store::prune_log`]).
    async fn add_commit_report(&self, internal_id: u64, seq: u64, reporter: &str, report: &[u8]) -> StoreResult<u64>;

    /// Number of log entries stored, all groups together.
    async fn message_count(&self) -> StoreResult<u64>;

    /// Up to `limit` Welcomes in `user`'s inbox with `id > after`, in id order.
    async fn inbox_after(&self, user: &str, after: u64, limit: usize) -> StoreResult<Vec<WelcomeEntry>>;

    /// Deletes one entry of `user`'s inbox. Returns whether it existed.
    /// (Entries are acknowledged one by one, never "through an id", so an entry
    /// that lands late with a lower id can never be deleted unseen.)
    async fn inbox_ack(&self, user: &str, id: u64) -> StoreResult<bool>;

    /// Stores a one-time authentication challenge for `user`.
    async fn put_challenge(&self, challenge: &[u8; 32], user: &str, expires_at: u64) -> StoreResult<()>;

    /// Removes a challenge and returns whom it was issued to: of concurrent
    /// takers (on any replica) exactly one gets it.
    async fn take_challenge(&self, challenge: &[u8; 32]) -> StoreResult<Option<TokenRecord>>;

    /// Stores a bearer token by its SHA-256 hash (the token itself is never stored).
    async fn put_token(&self, hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()>;

    /// The session a token hash belongs to, expired or not.
    async fn token(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>>;

    /// Stores `list` (a TLS-encoded, signed device list, already verified)
    /// as version `version` of `user`'s device list, if it is the next one:
    /// version 1 when none is stored, otherwise the latest stored version
    /// plus one. Returns `false`, writing nothing, when that version exists
    /// already or the one before it does not (another replica got there
    /// first, or a version was skipped). Stored lists are never changed.
    async fn append_device_list(&self, user: &str, version: u64, list: &[u8]) -> StoreResult<bool>;

    /// The device lists of `user` with a version above `after`, oldest first.
    async fn device_lists(&self, user: &str, after: u64) -> StoreResult<Vec<Vec<u8>>>;

    /// The latest device list of `user` (`None`: the user has none).
    async fn latest_device_list(&self, user: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Rebinds an existing user to a new identity (an identity reset): the
    /// user record is replaced and the device lists start again with
    /// `first_list` as version 1, together. Returns `false`, writing
    /// nothing, when the user is not registered.
    async fn reset_user(&self, user: &UserRecord, first_list: &[u8]) -> StoreResult<bool>;

    /// Stores a link request under `id`, unless one with that id exists
    /// (then nothing is written and the result is `false`).
    async fn put_link(&self, id: &[u8; 16], link: &LinkRecord) -> StoreResult<bool>;

    /// The link request `id`, expired or not.
    async fn link(&self, id: &[u8; 16]) -> StoreResult<Option<LinkRecord>>;

    /// Records the approval of link request `id`, if it exists and has none
    /// yet: of concurrent approvals (on any replica) exactly one wins.
    async fn approve_link(&self, id: &[u8; 16], approval: &[u8]) -> StoreResult<bool>;

    /// Deletes tokens, challenges and link requests that expired before
    /// `now` (unix seconds). Returns how many were deleted.
    async fn prune_auth(&self, now: u64) -> StoreResult<u64>;

    /// The name of every registered user, in name order (the key directory
    /// publishes users it has not seen yet at startup).
    async fn user_names(&self) -> StoreResult<Vec<String>>;

    /// Key-directory records (`crate::kt` lays out their keys): the value
    /// stored under each of `keys`, in order.
    async fn kt_get(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<Option<Vec<u8>>>>;

    /// Writes key-directory records, all or none (a key twice: the last
    /// value wins). Durable once [`Store::persist`] returns.
    async fn kt_put(&self, records: &[(Vec<u8>, Vec<u8>)]) -> StoreResult<()>;

    /// Stores `value` under `key` unless the key has a value already (of
    /// concurrent callers, on any replica, one wins); returns the stored value.
    async fn kt_put_absent(&self, key: &[u8], value: &[u8]) -> StoreResult<Vec<u8>>;

    /// Every key-directory record whose key starts with `prefix`, in key order.
    async fn kt_scan(&self, prefix: &[u8]) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Takes the key directory's publish lock: one publish at a time on
    /// this store, whichever replica makes it (akd's writes of one epoch
    /// must not interleave with another's). Released when the guard drops,
    /// or when the holder's process dies. The default (one process per
    /// store: sled, memory) holds nothing; the caller's own lock suffices.
    async fn kt_publish_lock(&self) -> StoreResult<KtPublishLock> {
        Ok(KtPublishLock(None))
    }

    /// Resolves once every write made before the call is durable on disk.
    /// Concurrent callers share one fsync.
    async fn persist(&self) -> StoreResult<()>;

    /// A mark for every write completed before the call, for
    /// [`Store::is_durable`]; `None` if this store keeps no such count (then
    /// only [`Store::persist`] tells).
    fn durability_mark(&self) -> Option<u64> {
        None
    }

    /// Whether the writes behind a [`Store::durability_mark`] are durable
    /// already (a flush that began after them has completed).
    fn is_durable(&self, _mark: u64) -> bool {
        false
    }

    /// Whether other processes write to this store too (several replicas on
    /// one database): a replica's cached view of a group may then be behind.
    fn shared(&self) -> bool {
        false
    }

    /// Other processes' changes to a shared store, once: the first call
    /// takes the receiver (the domain layer follows it), later calls and
    /// unshared stores give `None`.
    fn take_events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<StoreEvent>> {
        None
    }
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
