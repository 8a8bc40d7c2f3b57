//! The on-disk store: sled, with group commit.
//!
//! # Layout (sled trees)
//! | tree | key | value |
//! | --- | --- | --- |
//! | `meta` | `format` | format version, u32 big-endian |
//! | `users` | user name | [`UserRecord`] |
//! | `key_packages` | user, 0x00, suite (u16 BE), kind (0 one-time, 1 last-resort), id (u64 BE) | KeyPackage MLSMessage |
//! | `groups` | MLS group id | [`GroupRecord`] |
//! | `log` | internal id (u64 BE), seq (u64 BE) | [`LogEntry`] value |
//! | `pruned` | internal id (u64 BE) | highest pruned seq (u64 BE) |
//! | `cursors` | internal id (u64 BE), user name | acknowledged seq (u64 BE) |
//! | `inbox` | user name, 0x00, id (u64 BE) | [`WelcomeEntry`] |
//!
//! Durability: a dedicated flusher thread takes every pending [`Store::persist`]
//! request, runs one `sled::Db::flush` (fsync) for all of them, and answers them
//! all. Requests that arrive during an fsync wait for the next one, so the number
//! of fsyncs per second stays bounded whatever the request rate.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::oneshot;

use super::records::{corrupt, decode, encode};
use super::{
    Addressed, GroupRecord, KeyPackageBatch, KeyPackageCounts, KeyPackageKind, LogEntry, PersistFuture,
    RegisterOutcome, Store, StoreError, StoreResult, UserRecord, WelcomeEntry,
};

const FORMAT_VERSION: u32 = 1;
const KP_ONE_TIME: u8 = 0;
const KP_LAST_RESORT: u8 = 1;

/// Observer of fsync batches (for metrics): called with the batch size and the
/// flush duration in seconds.
pub type FlushObserver = Arc<dyn Fn(usize, f64) + Send + Sync>;

type FlushReply = oneshot::Sender<Result<(), String>>;

/// The sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    users: sled::Tree,
    key_packages: sled::Tree,
    groups: sled::Tree,
    log: sled::Tree,
    pruned: sled::Tree,
    cursors: sled::Tree,
    inbox: sled::Tree,
    flush_tx: Mutex<Option<mpsc::Sender<FlushReply>>>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    kp_lock: Mutex<()>,
    messages: AtomicU64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `observer` sees every fsync batch.
    pub fn open(dir: &Path, observer: Option<FlushObserver>) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).flush_every_ms(Some(1000)).open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("format")? {
            Some(v) => {
                let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| corrupt("meta", "format version length"))?;
                let found = u32::from_be_bytes(bytes);
                if found != FORMAT_VERSION {
                    return Err(StoreError::Version { found, supported: FORMAT_VERSION });
                }
            }
            None => {
                meta.insert("format", &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        let log = db.open_tree("log")?;
        let messages = AtomicU64::new(log.len() as u64);
        let (tx, rx) = mpsc::channel::<FlushReply>();
        let flush_db = db.clone();
        let flusher = std::thread::Builder::new()
            .name("grove-ds-fsync".into())
            .spawn(move || flusher_loop(flush_db, rx, observer))
            .map_err(|e| StoreError::Db(format!("cannot start the fsync thread: {e}")))?;
        Ok(SledStore {
            users: db.open_tree("users")?,
            key_packages: db.open_tree("key_packages")?,
            groups: db.open_tree("groups")?,
            pruned: db.open_tree("pruned")?,
            cursors: db.open_tree("cursors")?,
            inbox: db.open_tree("inbox")?,
            log,
            db,
            flush_tx: Mutex::new(Some(tx)),
            flusher: Mutex::new(Some(flusher)),
            kp_lock: Mutex::new(()),
            messages,
        })
    }

    /// Flushes everything and stops the fsync thread. Later `persist` calls
    /// flush synchronously.
    pub fn close(&self) -> Result<(), StoreError> {
        let tx = self.flush_tx.lock().map_err(|_| StoreError::Db("flush lock poisoned".into()))?.take();
        drop(tx);
        if let Some(h) = self.flusher.lock().map_err(|_| StoreError::Db("flush lock poisoned".into()))?.take() {
            let _ = h.join();
        }
        self.db.flush()?;
        Ok(())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn flusher_loop(db: sled::Db, rx: mpsc::Receiver<FlushReply>, observer: Option<FlushObserver>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let start = Instant::now();
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Some(obs) = &observer {
            obs(batch.len(), start.elapsed().as_secs_f64());
        }
        for reply in batch {
            let _ = reply.send(result.clone());
        }
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

fn log_key(internal_id: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&internal_id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
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

/// What follows the 8-byte internal id of a `log` or `cursors` key (empty
/// if a damaged key is shorter).
fn key_tail(k: &[u8]) -> &[u8] {
    k.get(8..).unwrap_or_default()
}

fn be_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(what, "expected 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

impl Store for SledStore {
    fn register_user(&self, user: &UserRecord) -> Result<RegisterOutcome, StoreError> {
        let value = encode("user", user)?;
        match self.users.compare_and_swap(user.name.as_slice(), None as Option<&[u8]>, Some(value))? {
            Ok(()) => Ok(RegisterOutcome::Created),
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

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.users.get(name.as_bytes())?.map(|v| decode("user", &v)).transpose()
    }

    fn put_key_packages(&self, user: &str, batch: KeyPackageBatch<'_>, cap: u64) -> StoreResult<KeyPackageCounts> {
        let KeyPackageBatch { suite, one_time, last_resort } = batch;
        let _guard = self.kp_lock.lock().map_err(|_| StoreError::Db("key package lock poisoned".into()))?;
        let existing = self.key_packages.scan_prefix(kp_prefix(user, suite, KP_ONE_TIME)).count() as u64;
        let total = super::check_key_package_cap(existing, one_time.len(), cap)?;
        let mut batch = sled::Batch::default();
        for kp in one_time {
            let mut key = kp_prefix(user, suite, KP_ONE_TIME);
            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
            batch.insert(key, kp.as_slice());
        }
        let lr_key = kp_prefix(user, suite, KP_LAST_RESORT);
        if let Some(lr) = last_resort {
            batch.insert(lr_key.clone(), lr);
        }
        self.key_packages.apply_batch(batch)?;
        Ok(KeyPackageCounts { one_time: total, last_resort: self.key_packages.contains_key(lr_key)? })
    }

    fn claim_key_package(&self, user: &str, suite: u16) -> Result<Option<(Vec<u8>, KeyPackageKind)>, StoreError> {
        loop {
            let first = self.key_packages.scan_prefix(kp_prefix(user, suite, KP_ONE_TIME)).next().transpose()?;
            match first {
                Some((key, value)) => {
                    // Compare-and-swap to "absent": of concurrent claimers exactly one
                    // succeeds; the others see a conflict and try the next package.
                    if self.key_packages.compare_and_swap(&key, Some(&value), None as Option<&[u8]>)?.is_ok() {
                        return Ok(Some((value.to_vec(), KeyPackageKind::OneTime)));
                    }
                }
                None => {
                    return Ok(self
                        .key_packages
                        .get(kp_prefix(user, suite, KP_LAST_RESORT))?
                        .map(|v| (v.to_vec(), KeyPackageKind::LastResort)));
                }
            }
        }
    }

    fn key_package_counts(&self, user: &str, suite: u16) -> Result<KeyPackageCounts, StoreError> {
        Ok(KeyPackageCounts {
            one_time: self.key_packages.scan_prefix(kp_prefix(user, suite, KP_ONE_TIME)).count() as u64,
            last_resort: self.key_packages.contains_key(kp_prefix(user, suite, KP_LAST_RESORT))?,
        })
    }

    fn create_group(&self, record: &GroupRecord) -> Result<bool, StoreError> {
        let value = encode("group", record)?;
        Ok(self.groups.compare_and_swap(record.group_id.as_slice(), None as Option<&[u8]>, Some(value))?.is_ok())
    }

    fn next_internal_id(&self) -> Result<u64, StoreError> {
        // generate_id is persistent and monotonic across restarts.
        self.db.generate_id()?.checked_add(1).ok_or_else(|| corrupt("meta", "id counter at its maximum"))
    }

    fn load_group(&self, group_id: &[u8]) -> Result<Option<(GroupRecord, u64)>, StoreError> {
        let Some(v) = self.groups.get(group_id)? else { return Ok(None) };
        let record: GroupRecord = decode("group", &v)?;
        let prefix = record.internal_id.to_be_bytes();
        let last = match self.log.scan_prefix(prefix).next_back().transpose()? {
            Some((k, _)) => be_u64("log key", key_tail(&k))?,
            None => 0,
        };
        let pruned = match self.pruned.get(prefix)? {
            Some(v) => be_u64("pruned marker", &v)?,
            None => 0,
        };
        let next = last.max(pruned).checked_add(1).ok_or_else(|| corrupt("log", "sequence number at its maximum"))?;
        Ok(Some((record, next)))
    }

    fn group_ids(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.groups.iter().keys().map(|k| k.map(|k| k.to_vec()).map_err(Into::into)).collect()
    }

    fn append_commit(&self, record: &GroupRecord, entry: &LogEntry, welcomes: &[Addressed]) -> StoreResult<Vec<u64>> {
        let group_value = encode("group", record)?;
        let entry_value = entry.encode_value()?;
        let key = log_key(record.internal_id, entry.seq);
        let mut inbox_rows = Vec::with_capacity(welcomes.len());
        let mut ids = Vec::with_capacity(welcomes.len());
        for (user, w) in welcomes {
            let id =
                self.db.generate_id()?.checked_add(1).ok_or_else(|| corrupt("meta", "id counter at its maximum"))?;
            let mut w = w.clone();
            w.id = id;
            inbox_rows.push((inbox_key(user, id), encode("welcome", &w)?));
            ids.push(id);
        }
        (&self.groups, &self.log, &self.inbox)
            .transaction(|(groups, log, inbox)| {
                if log.get(key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(seq_taken(entry.seq)));
                }
                log.insert(&key[..], entry_value.as_slice())?;
                groups.insert(record.group_id.as_slice(), group_value.as_slice())?;
                for (k, v) in &inbox_rows {
                    inbox.insert(k.as_slice(), v.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.messages.fetch_add(1, Ordering::Relaxed);
        Ok(ids)
    }

    fn append_message(&self, internal_id: u64, entry: &LogEntry, new_state: Option<&GroupRecord>) -> StoreResult<()> {
        let key = log_key(internal_id, entry.seq);
        let entry_value = entry.encode_value()?;
        match new_state {
            None => {
                let res = self.log.compare_and_swap(key, None as Option<&[u8]>, Some(entry_value))?;
                if res.is_err() {
                    return Err(seq_taken(entry.seq));
                }
            }
            Some(record) => {
                let group_value = encode("group", record)?;
                (&self.groups, &self.log)
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
        self.messages.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn fetch_after(&self, internal_id: u64, after: u64, up_to: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        if after >= up_to || limit == 0 {
            return Ok(Vec::new());
        }
        let start = log_key(internal_id, after.saturating_add(1));
        let end = log_key(internal_id, up_to);
        let mut out = Vec::new();
        for item in self.log.range(start..=end).take(limit) {
            let (k, v) = item?;
            out.push(LogEntry::decode_value(be_u64("log key", key_tail(&k))?, &v)?);
        }
        Ok(out)
    }

    fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> Result<u64, StoreError> {
        let key = cursor_key(internal_id, user);
        let mut result = Ok(seq);
        self.cursors.fetch_and_update(&key, |old| {
            let old_seq = old.and_then(|o| <[u8; 8]>::try_from(o).ok()).map(u64::from_be_bytes).unwrap_or(0);
            let new = old_seq.max(seq);
            result = Ok(new);
            Some(new.to_be_bytes().to_vec())
        })?;
        result
    }

    fn cursors(&self, internal_id: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.cursors.scan_prefix(internal_id.to_be_bytes()) {
            let (k, v) = item?;
            let user = String::from_utf8(key_tail(&k).to_vec()).map_err(|e| corrupt("cursor", e))?;
            out.push((user, be_u64("cursor", &v)?));
        }
        Ok(out)
    }

    fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> Result<u64, StoreError> {
        let mut batch = sled::Batch::default();
        let mut count = 0u64;
        let mut last = None;
        for item in self.log.scan_prefix(internal_id.to_be_bytes()) {
            let (k, v) = item?;
            let seq = be_u64("log key", key_tail(&k))?;
            let entry = LogEntry::decode_value(seq, &v)?;
            if seq <= through || entry.received_at < received_before {
                batch.remove(k);
                count += 1;
                last = Some(seq);
            } else {
                break;
            }
        }
        if let Some(last) = last {
            // The marker is written first: if we crash between the two writes the
            // entries are still there and the sequence numbers still continue.
            let prev = match self.pruned.get(internal_id.to_be_bytes())? {
                Some(v) => be_u64("pruned marker", &v)?,
                None => 0,
            };
            self.pruned.insert(internal_id.to_be_bytes(), &prev.max(last).to_be_bytes())?;
            self.log.apply_batch(batch)?;
            self.messages.fetch_sub(count.min(self.messages.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        Ok(count)
    }

    fn message_count(&self) -> Result<u64, StoreError> {
        Ok(self.messages.load(Ordering::Relaxed))
    }

    fn inbox_after(&self, user: &str, after: u64, limit: usize) -> Result<Vec<WelcomeEntry>, StoreError> {
        let start = inbox_key(user, after.saturating_add(1));
        let end = inbox_key(user, u64::MAX);
        let mut out = Vec::new();
        for item in self.inbox.range(start..=end).take(limit) {
            let (_, v) = item?;
            out.push(decode("welcome", &v)?);
        }
        Ok(out)
    }

    fn inbox_ack(&self, user: &str, id: u64) -> Result<bool, StoreError> {
        Ok(self.inbox.remove(inbox_key(user, id))?.is_some())
    }

    fn persist(&self) -> PersistFuture {
        let (tx, rx) = oneshot::channel();
        let sent = match self.flush_tx.lock() {
            Ok(guard) => guard.as_ref().map(|s| s.send(tx).is_ok()).unwrap_or(false),
            Err(_) => false,
        };
        if !sent {
            // The fsync thread is gone (closing): flush on the caller's behalf.
            let db = self.db.clone();
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

/// The error of an append whose sequence number is already in the log.
fn seq_taken(seq: u64) -> StoreError {
    StoreError::Conflict(format!("log sequence number {seq} is taken"))
}
