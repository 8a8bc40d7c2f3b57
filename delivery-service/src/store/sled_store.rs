//! The on-disk store: sled, with group commit.
//!
//! # Layout (sled trees)
//! | tree | key | value |
//! | --- | --- | --- |
//! | `meta` | `format` | format version, u32 big-endian |
//! | `users` | user name | [`UserRecord`] |
//! | `key_packages` | user, 0x00, suite (u16 BE), kind (0 one-time, 1 last-resort), id (u64 BE) | KeyPackage MLSMessage |
//! | `groups` | MLS group id | [`GroupRecord`] |
//! | `log_v2` | internal id (u64 BE), seq (u64 BE) | [`LogEntry`] value, then its 32-byte chain value |
//! | `pruned` | internal id (u64 BE) | highest pruned seq (u64 BE), then the chain value there (format 1: seq only) |
//! | `cursors` | internal id (u64 BE), user name | acknowledged seq (u64 BE) |
//! | `inbox` | user name, 0x00, id (u64 BE) | [`WelcomeEntry`] |
//!
//! Durability: a dedicated flusher thread takes every pending [`Store::persist`]
//! request, runs one `sled::Db::flush` (fsync) for all of them, and answers them
//! all. Requests that arrive during an fsync wait for the next one, so the number
//! of fsyncs per second stays bounded whatever the request rate. The same
//! thread rewrites the watermark file ([`super::watermark`]) after a flush, at
//! most once per [`WATERMARK_INTERVAL`]. The thread is in [`super::flusher`].
//!
//! Integrity: [`SledStore::open`] migrates an older format
//! ([`super::migrate`]), then compares the database with its watermark
//! ([`super::integrity`]) and refuses a store that holds less than the
//! watermark recorded. [`SledStore::check`] verifies everything
//! ([`super::check`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::oneshot;

use super::chain::{self, Head};
use super::check::CheckReport;
use super::flusher::{FlushClock, FlushReply, Flusher};
use super::heads::{self, HeadTable};
use super::integrity::{self, be_u64, integrity_error, key_tail, log_key, pruned_marker, pruned_value, Trees};
use super::migrate::{self, FORMAT_VERSION};
use super::records::{corrupt, decode, encode};
use super::watermark;
use super::{
    Addressed, GroupRecord, KeyPackageBatch, KeyPackageCounts, KeyPackageKind, LogEntry, RegisterOutcome, StoreError,
    StoreResult, UserRecord, WelcomeEntry,
};

/// How often, at most, the watermark file is rewritten.
pub const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);
const KP_ONE_TIME: u8 = 0;
const KP_LAST_RESORT: u8 = 1;

/// Observer of fsync batches (for metrics): called with the batch size and the
/// flush duration in seconds.
pub type FlushObserver = Arc<dyn Fn(usize, f64) + Send + Sync>;

/// What [`Inner::persist`] returns: resolves once the writes are on disk.
type PersistFuture = std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send>>;

/// The sled-backed [`Store`](super::Store): a cheap handle on the open database, whose scans
/// run on the blocking pool.
pub struct SledStore {
    pub(super) inner: Arc<Inner>,
}

/// The open database and its fsync thread.
pub(super) struct Inner {
    dir: PathBuf,
    pub(super) t: Trees,
    heads: Arc<HeadTable>,
    flush_tx: Mutex<Option<mpsc::Sender<FlushReply>>>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    kp_lock: Mutex<()>,
    messages: AtomicU64,
    /// Which writes the fsync thread has made durable (see [`FlushClock`]).
    pub(super) clock: Arc<FlushClock>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

/// Opens sled in `dir`. A database that sled cannot read is
/// [`StoreError::Integrity`]; one that another process holds is
/// [`StoreError::Db`] saying so.
fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).flush_every_ms(Some(1000)).open().map_err(|e| {
        if matches!(&e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock) || e.to_string().contains("lock") {
            StoreError::Db(format!(
                "cannot open the database in {}: {e}: another grove-ds (or grove-ds check) has it open; stop that one first",
                dir.display()
            ))
        } else {
            integrity_error(dir, vec![format!("sled cannot read its files: {e}")])
        }
    })
}

/// Reads the format version, refusing versions this build does not know, and
/// brings an older store up to date. `None` for a new, empty database.
fn format_of(db: &sled::Db, meta: &sled::Tree) -> Result<Option<u32>, StoreError> {
    let Some(v) = meta.get("format")? else { return Ok(None) };
    let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| corrupt("meta", "format version length"))?;
    let found = u32::from_be_bytes(bytes);
    if found == 0 || found > FORMAT_VERSION {
        return Err(StoreError::Version { found, supported: FORMAT_VERSION });
    }
    migrate::run(db, meta, found)?;
    Ok(Some(found))
}

/// Opens the trees and checks them against the watermark: the store's state
/// at open, or why it must not be served.
fn open_checked(dir: &Path, db: &sled::Db) -> Result<(Trees, HeadTable), StoreError> {
    let meta = db.open_tree("meta")?;
    let mark = watermark::read(dir);
    let found = format_of(db, &meta)?;
    if found.is_none() {
        if let Ok(Some(w)) = &mark {
            return Err(integrity_error(
                dir,
                vec![format!(
                    "the database is empty, but the watermark recorded {} users and {} groups: \
                     the database file was truncated or replaced",
                    w.users,
                    w.groups.len()
                )],
            ));
        }
        meta.insert("format", &FORMAT_VERSION.to_be_bytes())?;
        db.flush()?;
    }
    let t = Trees::open(db)?;
    let heads = integrity::heads(&t)?;
    let users = t.users.len() as u64;
    let problems = match mark {
        Ok(Some(w)) => integrity::compare(&t, &w, &heads)?,
        // Format 1 had no watermark: the first open of this build writes it.
        Ok(None) if found == Some(1) => Vec::new(),
        Ok(None) if users > 0 || !heads.is_empty() => vec![format!(
            "{} is missing, so nothing shows whether this database is complete",
            watermark::path(dir).display()
        )],
        Ok(None) => Vec::new(),
        Err(e) => vec![e.to_string()],
    };
    if !problems.is_empty() {
        return Err(integrity_error(dir, problems));
    }
    let table = HeadTable::new(heads, users);
    write_watermark(dir, db, &table)?;
    Ok((t, table))
}

/// Flushes sled, then records the state from before the flush in the watermark.
fn write_watermark(dir: &Path, db: &sled::Db, table: &HeadTable) -> Result<(), StoreError> {
    let snapshot = table.snapshot(unix_now())?;
    db.flush()?;
    watermark::write(dir, &snapshot)
        .map_err(|e| StoreError::Db(format!("writing {}: {e}", watermark::path(dir).display())))
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `observer` sees every fsync batch.
    ///
    /// Refuses, with [`StoreError::Integrity`], a store that holds less than
    /// its watermark recorded (damaged, truncated or rolled back).
    pub fn open(dir: &Path, observer: Option<FlushObserver>) -> Result<Self, StoreError> {
        let db = open_db(dir)?;
        let (t, table) = open_checked(dir, &db)?;
        let heads = Arc::new(table);
        let messages = AtomicU64::new(t.log.len() as u64);
        let (tx, rx) = mpsc::channel::<FlushReply>();
        let clock = Arc::new(FlushClock::default());
        let flusher = Flusher { db, dir: dir.to_path_buf(), heads: heads.clone(), observer, clock: clock.clone() };
        let flusher = std::thread::Builder::new()
            .name("grove-ds-fsync".into())
            .spawn(move || flusher.run(rx))
            .map_err(|e| StoreError::Db(format!("cannot start the fsync thread: {e}")))?;
        let inner = Inner {
            dir: dir.to_path_buf(),
            t,
            heads,
            flush_tx: Mutex::new(Some(tx)),
            flusher: Mutex::new(Some(flusher)),
            kp_lock: Mutex::new(()),
            messages,
            clock,
        };
        Ok(SledStore { inner: Arc::new(inner) })
    }

    /// Verifies the whole store in `dir` without serving it: every record
    /// decodes, every group's log matches its hash chain, and the database
    /// holds at least what its watermark recorded. Opening migrates a store
    /// written in an older format first.
    pub fn check(dir: &Path) -> Result<CheckReport, StoreError> {
        let db = match open_db(dir) {
            Ok(db) => db,
            Err(StoreError::Integrity { problems, .. }) => {
                return Ok(CheckReport { dir: dir.display().to_string(), problems, ..CheckReport::default() })
            }
            Err(e) => return Err(e),
        };
        let meta = db.open_tree("meta")?;
        let format = format_of(&db, &meta)?.unwrap_or(0);
        let report = super::check::verify(dir, &Trees::open(&db)?, format, true)?;
        db.flush()?;
        Ok(report)
    }

    /// Accepts the store in `dir` as it is now (after an operator restored an
    /// older backup on purpose): verifies it like [`SledStore::check`] except
    /// against the watermark, and if it is otherwise healthy, writes a new
    /// watermark from its current state. Clients that had seen more will
    /// report `server_rollback`.
    pub fn accept_current_state(dir: &Path) -> Result<CheckReport, StoreError> {
        let db = open_db(dir)?;
        let meta = db.open_tree("meta")?;
        if format_of(&db, &meta)?.is_none() {
            meta.insert("format", &FORMAT_VERSION.to_be_bytes())?;
        }
        let t = Trees::open(&db)?;
        let report = super::check::verify(dir, &t, FORMAT_VERSION, false)?;
        if report.ok() {
            let table = HeadTable::new(integrity::heads(&t)?, t.users.len() as u64);
            write_watermark(dir, &db, &table)?;
        }
        Ok(report)
    }

    /// Flushes everything, writes the watermark and stops the fsync thread.
    /// Later `persist` calls flush synchronously.
    pub fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }

    /// The trees, for a transfer to another store.
    pub(super) fn trees(&self) -> &Trees {
        &self.inner.t
    }

    /// Runs `work` on the blocking pool (sled scans must not stall an async worker).
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StoreError::Db(format!("storage task failed: {e}")))?
    }
}

impl Inner {
    /// See [`SledStore::close`].
    fn close(&self) -> Result<(), StoreError> {
        let tx = self.flush_tx.lock().map_err(|_| StoreError::Db("flush lock poisoned".into()))?.take();
        drop(tx);
        if let Some(h) = self.flusher.lock().map_err(|_| StoreError::Db("flush lock poisoned".into()))?.take() {
            let _ = h.join();
        }
        write_watermark(&self.dir, &self.t.db, &self.heads)
    }

    /// The head of group `id`, from the table or (first use) from the log.
    fn head(&self, id: u64) -> Result<heads::SharedHead, StoreError> {
        self.heads.get_or_load(id, || integrity::db_head(&self.t, id, 0))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn user_prefix(user: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 1);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k
}

fn kp_prefix(user: &str, suite: u16, kind: u8) -> Vec<u8> {
    let mut k = user_prefix(user);
    k.extend_from_slice(&suite.to_be_bytes());
    k.push(kind);
    k
}

fn cursor_key(internal_id: u64, user: &str) -> Vec<u8> {
    let mut k = internal_id.to_be_bytes().to_vec();
    k.extend_from_slice(user.as_bytes());
    k
}

fn inbox_key(user: &str, id: u64) -> Vec<u8> {
    let mut k = user_prefix(user);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

impl Inner {
    pub(super) fn register_user(&self, user: &UserRecord) -> Result<RegisterOutcome, StoreError> {
        let value = encode("user", user)?;
        match self.t.users.compare_and_swap(user.name.as_slice(), None as Option<&[u8]>, Some(value))? {
            Ok(()) => {
                self.heads.user_added();
                Ok(RegisterOutcome::Created)
            }
            Err(cas) => {
                let existing: UserRecord = match cas.current {
                    Some(v) => decode("user", &v)?,
                    None => return Err(StoreError::Conflict("user registration raced with a deletion".into())),
                };
                if existing.credential == user.credential && existing.signature_key == user.signature_key {
                    Ok(RegisterOutcome::AlreadyRegistered)
                } else {
                    Ok(RegisterOutcome::NameTaken)
                }
            }
        }
    }

    pub(super) fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.t.users.get(name.as_bytes())?.map(|v| decode("user", &v)).transpose()
    }

    pub(super) fn put_key_packages(
        &self,
        user: &str,
        batch: KeyPackageBatch<'_>,
        cap: u64,
    ) -> StoreResult<KeyPackageCounts> {
        let KeyPackageBatch { suite, one_time, last_resort } = batch;
        let _guard = self.kp_lock.lock().map_err(|_| StoreError::Db("key package lock poisoned".into()))?;
        let existing = self.t.key_packages.scan_prefix(kp_prefix(user, suite, KP_ONE_TIME)).count() as u64;
        let total = super::check_key_package_cap(existing, one_time.len(), cap)?;
        let mut batch = sled::Batch::default();
        for kp in one_time {
            let mut key = kp_prefix(user, suite, KP_ONE_TIME);
            key.extend_from_slice(&self.t.db.generate_id()?.to_be_bytes());
            batch.insert(key, kp.as_slice());
        }
        let lr_key = kp_prefix(user, suite, KP_LAST_RESORT);
        if let Some(lr) = last_resort {
            batch.insert(lr_key.clone(), lr);
        }
        self.t.key_packages.apply_batch(batch)?;
        Ok(KeyPackageCounts { one_time: total, last_resort: self.t.key_packages.contains_key(lr_key)? })
    }

    pub(super) fn claim_key_package(
        &self,
        user: &str,
        suite: u16,
    ) -> Result<Option<(Vec<u8>, KeyPackageKind)>, StoreError> {
        loop {
            let first = self.t.key_packages.scan_prefix(kp_prefix(user, suite, KP_ONE_TIME)).next().transpose()?;
            match first {
                Some((key, value)) => {
                    // Compare-and-swap to "absent": of concurrent claimers exactly one
                    // succeeds; the others see a conflict and try the next package.
                    if self.t.key_packages.compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?.is_ok() {
                        return Ok(Some((value.to_vec(), KeyPackageKind::OneTime)));
                    }
                }
                None => {
                    return Ok(self
                        .t
                        .key_packages
                        .get(kp_prefix(user, suite, KP_LAST_RESORT))?
                        .map(|v| (v.to_vec(), KeyPackageKind::LastResort)));
                }
            }
        }
    }

    pub(super) fn key_package_counts(&self, user: &str, suite: u16) -> Result<KeyPackageCounts, StoreError> {
        Ok(KeyPackageCounts {
            one_time: self.t.key_packages.scan_prefix(kp_prefix(user, suite, KP_ONE_TIME)).count() as u64,
            last_resort: self.t.key_packages.contains_key(kp_prefix(user, suite, KP_LAST_RESORT))?,
        })
    }

    pub(super) fn create_group(&self, record: &GroupRecord) -> Result<bool, StoreError> {
        let value = encode("group", record)?;
        let created =
            self.t.groups.compare_and_swap(record.group_id.as_slice(), None as Option<&[u8]>, Some(value))?.is_ok();
        if created {
            self.heads.insert(Head::empty(record.internal_id, record.epoch))?;
        }
        Ok(created)
    }

    pub(super) fn next_internal_id(&self) -> Result<u64, StoreError> {
        // generate_id is persistent and monotonic across restarts.
        self.t.db.generate_id()?.checked_add(1).ok_or_else(|| corrupt("meta", "id counter at its maximum"))
    }

    pub(super) fn load_group(&self, group_id: &[u8]) -> Result<Option<(GroupRecord, u64)>, StoreError> {
        let Some(v) = self.t.groups.get(group_id)? else { return Ok(None) };
        let record: GroupRecord = decode("group", &v)?;
        let seq = heads::lock(&self.head(record.internal_id)?)?.seq;
        let next = seq.checked_add(1).ok_or_else(|| corrupt("log", "sequence number at its maximum"))?;
        Ok(Some((record, next)))
    }

    pub(super) fn group_ids(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.t.groups.iter().keys().map(|k| k.map(|k| k.to_vec()).map_err(Into::into)).collect()
    }

    pub(super) fn append_commit(
        &self,
        record: &GroupRecord,
        entry: &LogEntry,
        welcomes: &[Addressed],
    ) -> StoreResult<Vec<u64>> {
        let group_value = encode("group", record)?;
        let shared = self.head(record.internal_id)?;
        let mut head = heads::lock(&shared)?;
        let (key, entry_value, new_head) = chained(&head, entry, record.epoch)?;
        let mut inbox_rows = Vec::with_capacity(welcomes.len());
        let mut ids = Vec::with_capacity(welcomes.len());
        for (user, w) in welcomes {
            let id =
                self.t.db.generate_id()?.checked_add(1).ok_or_else(|| corrupt("meta", "id counter at its maximum"))?;
            let mut w = w.clone();
            w.id = id;
            inbox_rows.push((inbox_key(user, id), encode("welcome", &w)?));
            ids.push(id);
        }
        (&self.t.groups, &self.t.log, &self.t.inbox)
            .transaction(|(groups, log, inbox)| {
                if log.get(key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(seq_taken(entry.seq)));
                }
                if let Some(current) = groups.get(record.group_id.as_slice())? {
                    let (_, epoch) = GroupRecord::peek_ids(&current).map_err(ConflictableTransactionError::Abort)?;
                    if epoch != entry.epoch {
                        return Err(ConflictableTransactionError::Abort(epoch_moved(epoch, entry.epoch)));
                    }
                }
                log.insert(&key[..], entry_value.as_slice())?;
                groups.insert(record.group_id.as_slice(), group_value.as_slice())?;
                for (k, v) in &inbox_rows {
                    inbox.insert(k.as_slice(), v.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        *head = new_head;
        self.heads.touch();
        self.messages.fetch_add(1, Ordering::Relaxed);
        Ok(ids)
    }

    pub(super) fn append_message(
        &self,
        internal_id: u64,
        entry: &LogEntry,
        new_state: Option<&GroupRecord>,
    ) -> StoreResult<()> {
        let shared = self.head(internal_id)?;
        let mut head = heads::lock(&shared)?;
        let (key, entry_value, new_head) = chained(&head, entry, new_state.map_or(0, |r| r.epoch))?;
        match new_state {
            None => {
                let res = self.t.log.compare_and_swap(key, None as Option<&[u8]>, Some(entry_value))?;
                if res.is_err() {
                    return Err(seq_taken(entry.seq));
                }
            }
            Some(record) => {
                let group_value = encode("group", record)?;
                (&self.t.groups, &self.t.log)
                    .transaction(|(groups, log)| {
                        if log.get(key)?.is_some() {
                            return Err(ConflictableTransactionError::Abort(seq_taken(entry.seq)));
                        }
                        log.insert(&key[..], entry_value.as_slice())?;
                        groups.insert(record.group_id.as_slice(), group_value.as_slice())?;
                        Ok(())
                    })
                    .map_err(tx_err)?;
            }
        }
        *head = new_head;
        self.heads.touch();
        self.messages.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn fetch_after(
        &self,
        internal_id: u64,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        if after >= up_to || limit == 0 {
            return Ok(Vec::new());
        }
        let start = log_key(internal_id, after.saturating_add(1));
        let end = log_key(internal_id, up_to);
        let mut out = Vec::new();
        for item in self.t.log.range(start..=end).take(limit) {
            let (k, v) = item?;
            out.push(LogEntry::decode_chained(be_u64("log key", key_tail(&k))?, &v)?.0);
        }
        Ok(out)
    }

    pub(super) fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> Result<u64, StoreError> {
        let key = cursor_key(internal_id, user);
        let mut result = Ok(seq);
        self.t.cursors.fetch_and_update(&key, |old| {
            let old_seq = old.and_then(|o| <[u8; 8]>::try_from(o).ok()).map(u64::from_be_bytes).unwrap_or(0);
            let new = old_seq.max(seq);
            result = Ok(new);
            Some(new.to_be_bytes().to_vec())
        })?;
        result
    }

    pub(super) fn cursors(&self, internal_id: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.t.cursors.scan_prefix(internal_id.to_be_bytes()) {
            let (k, v) = item?;
            let user = String::from_utf8(key_tail(&k).to_vec()).map_err(|e| corrupt("cursor", e))?;
            out.push((user, be_u64("cursor", &v)?));
        }
        Ok(out)
    }

    pub(super) fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let mut count = 0u64;
        let mut last = None;
        for item in self.t.log.scan_prefix(internal_id.to_be_bytes()) {
            let (k, v) = item?;
            let seq = be_u64("log key", key_tail(&k))?;
            let (entry, c) = LogEntry::decode_chained(seq, &v)?;
            if seq <= through || entry.received_at < received_before {
                batch.remove(k);
                count += 1;
                last = Some((seq, c));
            } else {
                break;
            }
        }
        if let Some((seq, c)) = last {
            // The marker (with the chain value where the kept log continues) is
            // written first: if we crash between the two writes the entries are
            // still there and the sequence numbers still continue.
            let newer = pruned_marker(&self.t.pruned, internal_id)?.is_none_or(|(prev, _)| prev < seq);
            if newer {
                self.t.pruned.insert(internal_id.to_be_bytes(), pruned_value(seq, &c))?;
            }
            self.t.log.apply_batch(batch)?;
            self.messages.fetch_sub(count.min(self.messages.load(Ordering::Relaxed)), Ordering::Relaxed);
            // Reports of pruned commits go with them.
            for item in self.t.reports.range(log_key(internal_id, 0)..log_key(internal_id, seq.saturating_add(1))) {
                self.t.reports.remove(item?.0)?;
            }
        }
        Ok(count)
    }

    pub(super) fn add_commit_report(
        &self,
        internal_id: u64,
        seq: u64,
        reporter: &str,
        report: &[u8],
    ) -> StoreResult<u64> {
        let prefix = log_key(internal_id, seq);
        let mut key = prefix.to_vec();
        key.extend_from_slice(reporter.as_bytes());
        self.t.reports.insert(key, report)?;
        Ok(self.t.reports.scan_prefix(prefix).count() as u64)
    }

    pub(super) fn message_count(&self) -> Result<u64, StoreError> {
        Ok(self.messages.load(Ordering::Relaxed))
    }

    pub(super) fn inbox_after(&self, user: &str, after: u64, limit: usize) -> Result<Vec<WelcomeEntry>, StoreError> {
        let start = inbox_key(user, after.saturating_add(1));
        let end = inbox_key(user, u64::MAX);
        let mut out = Vec::new();
        for item in self.t.inbox.range(start..=end).take(limit) {
            let (_, v) = item?;
            out.push(decode("welcome", &v)?);
        }
        Ok(out)
    }

    pub(super) fn inbox_ack(&self, user: &str, id: u64) -> Result<bool, StoreError> {
        Ok(self.t.inbox.remove(inbox_key(user, id))?.is_some())
    }

    pub(super) fn persist(&self) -> PersistFuture {
        let (tx, rx) = oneshot::channel();
        let sent = match self.flush_tx.lock() {
            Ok(guard) => guard.as_ref().map(|s| s.send(tx).is_ok()).unwrap_or(false),
            Err(_) => false,
        };
        if !sent {
            // The fsync thread is gone (closing): flush on the caller's behalf.
            let db = self.t.db.clone();
            return Box::pin(async move {
                tokio::task::spawn_blocking(move || db.flush().map(|_| ()))
                    .await
                    .map_err(|e| StoreError::Db(format!("flush task failed: {e}")))?
                    .map_err(Into::into)
            });
        }
        Box::pin(async move {
            match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(StoreError::Db(format!("fsync failed: {e}"))),
                Err(_) => Err(StoreError::Db("the fsync thread stopped".into())),
            }
        })
    }
}

/// The key, stored value and new head of appending `entry` after `head`;
/// `epoch` is the group's epoch after the append, if known (else 0).
fn chained(head: &Head, entry: &LogEntry, epoch: u64) -> StoreResult<([u8; 16], Vec<u8>, Head)> {
    if entry.seq <= head.seq {
        return Err(seq_taken(entry.seq));
    }
    if entry.seq != head.seq + 1 {
        return Err(StoreError::Conflict(format!(
            "log sequence number {} would leave a gap (the next is {})",
            entry.seq,
            head.seq + 1
        )));
    }
    let encoded = entry.encode_with_room(32)?;
    let c = chain::next(&head.chain, head.internal_id, entry.seq, &encoded);
    let new_head =
        Head { internal_id: head.internal_id, seq: entry.seq, epoch: head.epoch.max(epoch).max(entry.epoch), chain: c };
    Ok((log_key(head.internal_id, entry.seq), LogEntry::push_chain(encoded, &c), new_head))
}

/// The error of a commit for an epoch the group has left.
pub(super) fn epoch_moved(current: u64, commit: u64) -> StoreError {
    StoreError::Conflict(format!("the group is at epoch {current}, the commit is for epoch {commit}"))
}

/// The error of an append whose sequence number is already in the log.
fn seq_taken(seq: u64) -> StoreError {
    StoreError::Conflict(format!("log sequence number {seq} is taken"))
}
