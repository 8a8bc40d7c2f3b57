//! The in-memory [`Store`]: the same promises as the sled store except
//! durability (nothing survives the process). Used by the shared storage test
//! suite and by tests of the layers above.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{
    Addressed, GroupRecord, KeyPackageBatch, KeyPackageCounts, KeyPackageKind, LinkRecord, LogEntry, RegisterOutcome,
    Store, StoreError, StoreResult, TokenRecord, UserRecord, WelcomeEntry,
};

/// One client's packages for one suite: one-time packages in upload order, and
/// the last-resort package.
type KeyPackageSlot = (std::collections::VecDeque<Vec<u8>>, Option<Vec<u8>>);

#[derive(Default)]
struct Inner {
    users: HashMap<String, UserRecord>,
    /// (user, suite) -> (one-time packages in upload order, last resort)
    key_packages: HashMap<(String, u16), KeyPackageSlot>,
    groups: HashMap<Vec<u8>, GroupRecord>,
    log: BTreeMap<(u64, u64), LogEntry>,
    pruned: HashMap<u64, u64>,
    cursors: BTreeMap<(u64, String), u64>,
    reports: BTreeMap<(u64, u64, String), Vec<u8>>,
    inbox: BTreeMap<(String, u64), WelcomeEntry>,
    challenges: HashMap<[u8; 32], TokenRecord>,
    tokens: HashMap<[u8; 32], TokenRecord>,
    device_lists: HashMap<String, Vec<Vec<u8>>>,
    links: HashMap<[u8; 16], LinkRecord>,
    kt: BTreeMap<Vec<u8>, Vec<u8>>,
    next_id: u64,
}

impl Inner {
    /// The next free sequence number of a group's log.
    fn next_seq(&self, id: u64) -> u64 {
        let last = self.log.range((id, 0)..=(id, u64::MAX)).next_back().map(|(k, _)| k.1).unwrap_or(0);
        last.max(self.pruned.get(&id).copied().unwrap_or(0)) + 1
    }

    /// [`StoreError::Conflict`] unless `seq` is the next free sequence number.
    fn check_next(&self, id: u64, seq: u64) -> StoreResult<()> {
        let next = self.next_seq(id);
        if seq != next {
            return Err(StoreError::Conflict(format!("log sequence number {seq} is not the next one ({next})")));
        }
        Ok(())
    }
}

/// The in-memory store. One mutex guards everything, which makes every method
/// trivially atomic.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Db("memory store lock poisoned".into()))
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn register_user(&self, user: &UserRecord) -> Result<RegisterOutcome, StoreError> {
        let mut g = self.lock()?;
        let name = user.name_str();
        match g.users.get(&name) {
            Some(existing)
                if existing.credential == user.credential && existing.signature_key == user.signature_key =>
            {
                Ok(RegisterOutcome::AlreadyRegistered)
            }
            Some(_) => Ok(RegisterOutcome::NameTaken),
            None => {
                g.users.insert(name, user.clone());
                Ok(RegisterOutcome::Created)
            }
        }
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.lock()?.users.get(name).cloned())
    }

    async fn put_key_packages(
        &self,
        user: &str,
        batch: KeyPackageBatch<'_>,
        cap: u64,
    ) -> StoreResult<KeyPackageCounts> {
        let KeyPackageBatch { suite, one_time, last_resort } = batch;
        let mut g = self.lock()?;
        let entry = g.key_packages.entry((user.to_string(), suite)).or_default();
        super::check_key_package_cap(entry.0.len() as u64, one_time.len(), cap)?;
        entry.0.extend(one_time.iter().cloned());
        if let Some(lr) = last_resort {
            entry.1 = Some(lr.to_vec());
        }
        Ok(KeyPackageCounts { one_time: entry.0.len() as u64, last_resort: entry.1.is_some() })
    }

    async fn claim_key_package(&self, user: &str, suite: u16) -> Result<Option<(Vec<u8>, KeyPackageKind)>, StoreError> {
        let mut g = self.lock()?;
        let Some(entry) = g.key_packages.get_mut(&(user.to_string(), suite)) else { return Ok(None) };
        if let Some(kp) = entry.0.pop_front() {
            return Ok(Some((kp, KeyPackageKind::OneTime)));
        }
        Ok(entry.1.clone().map(|kp| (kp, KeyPackageKind::LastResort)))
    }

    async fn key_package_counts(&self, user: &str, suite: u16) -> Result<KeyPackageCounts, StoreError> {
        let g = self.lock()?;
        Ok(g.key_packages
            .get(&(user.to_string(), suite))
            .map(|e| KeyPackageCounts { one_time: e.0.len() as u64, last_resort: e.1.is_some() })
            .unwrap_or_default())
    }

    async fn create_group(&self, record: &GroupRecord) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        if g.groups.contains_key(record.group_id.as_slice()) {
            return Ok(false);
        }
        g.groups.insert(record.group_id.as_slice().to_vec(), record.clone());
        Ok(true)
    }

    async fn next_internal_id(&self) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        g.next_id += 1;
        Ok(g.next_id)
    }

    async fn load_group(&self, group_id: &[u8]) -> Result<Option<(GroupRecord, u64)>, StoreError> {
        let g = self.lock()?;
        let Some(rec) = g.groups.get(group_id) else { return Ok(None) };
        Ok(Some((rec.clone(), g.next_seq(rec.internal_id))))
    }

    async fn group_ids(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.lock()?.groups.keys().cloned().collect())
    }

    async fn append_commit(
        &self,
        record: &GroupRecord,
        entry: &LogEntry,
        welcomes: &[Addressed],
    ) -> StoreResult<(u64, Vec<u64>)> {
        let mut g = self.lock()?;
        let key = (record.internal_id, entry.seq);
        g.check_next(record.internal_id, entry.seq)?;
        if let Some(current) = g.groups.get(record.group_id.as_slice()).map(|r| r.epoch) {
            if current != entry.epoch {
                return Err(super::sled_store::epoch_moved(current, entry.epoch));
            }
        }
        g.log.insert(key, entry.clone());
        g.groups.insert(record.group_id.as_slice().to_vec(), record.clone());
        let mut ids = Vec::new();
        for (user, w) in welcomes {
            g.next_id += 1;
            let id = g.next_id;
            let mut w = w.clone();
            w.id = id;
            g.inbox.insert((user.clone(), id), w);
            ids.push(id);
        }
        Ok((entry.seq, ids))
    }

    async fn append_message(
        &self,
        internal_id: u64,
        entry: &LogEntry,
        new_state: Option<&GroupRecord>,
    ) -> StoreResult<()> {
        let mut g = self.lock()?;
        let key = (internal_id, entry.seq);
        g.check_next(internal_id, entry.seq)?;
        g.log.insert(key, entry.clone());
        if let Some(rec) = new_state {
            g.groups.insert(rec.group_id.as_slice().to_vec(), rec.clone());
        }
        Ok(())
    }

    async fn fetch_after(
        &self,
        internal_id: u64,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let g = self.lock()?;
        if after >= up_to {
            return Ok(Vec::new());
        }
        Ok(g.log.range((internal_id, after + 1)..=(internal_id, up_to)).take(limit).map(|(_, e)| e.clone()).collect())
    }

    async fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        let c = g.cursors.entry((internal_id, user.to_string())).or_insert(0);
        *c = (*c).max(seq);
        Ok(*c)
    }

    async fn cursors(&self, internal_id: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let g = self.lock()?;
        Ok(g.cursors
            .range((internal_id, String::new())..)
            .take_while(|((id, _), _)| *id == internal_id)
            .map(|((_, u), s)| (u.clone(), *s))
            .collect())
    }

    async fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        let doomed: Vec<u64> = g
            .log
            .range((internal_id, 0)..=(internal_id, u64::MAX))
            .take_while(|(k, e)| k.1 <= through || e.received_at < received_before)
            .map(|(k, _)| k.1)
            .collect();
        if let Some(&last) = doomed.last() {
            let p = g.pruned.entry(internal_id).or_insert(0);
            *p = (*p).max(last);
            g.reports.retain(|(i, s, _), _| *i != internal_id || *s > last);
        }
        for seq in &doomed {
            g.log.remove(&(internal_id, *seq));
        }
        Ok(doomed.len() as u64)
    }

    async fn add_commit_report(&self, internal_id: u64, seq: u64, reporter: &str, report: &[u8]) -> StoreResult<u64> {
        let mut g = self.lock()?;
        g.reports.insert((internal_id, seq, reporter.to_string()), report.to_vec());
        Ok(g.reports.keys().filter(|(i, s, _)| (*i, *s) == (internal_id, seq)).count() as u64)
    }

    async fn message_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.log.len() as u64)
    }

    async fn inbox_after(&self, user: &str, after: u64, limit: usize) -> Result<Vec<WelcomeEntry>, StoreError> {
        let g = self.lock()?;
        Ok(g.inbox
            .range((user.to_string(), after.saturating_add(1))..=(user.to_string(), u64::MAX))
            .take(limit)
            .map(|(_, w)| w.clone())
            .collect())
    }

    async fn inbox_ack(&self, user: &str, id: u64) -> Result<bool, StoreError> {
        Ok(self.lock()?.inbox.remove(&(user.to_string(), id)).is_some())
    }

    async fn put_challenge(&self, challenge: &[u8; 32], user: &str, expires_at: u64) -> StoreResult<()> {
        self.lock()?.challenges.insert(*challenge, TokenRecord { user: user.to_string(), expires_at, device: None });
        Ok(())
    }

    async fn take_challenge(&self, challenge: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        Ok(self.lock()?.challenges.remove(challenge))
    }

    async fn put_token(&self, hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.lock()?.tokens.insert(*hash, token.clone());
        Ok(())
    }

    async fn token(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        Ok(self.lock()?.tokens.get(hash).cloned())
    }

    async fn append_device_list(&self, user: &str, version: u64, list: &[u8]) -> StoreResult<bool> {
        let mut g = self.lock()?;
        let lists = g.device_lists.entry(user.to_string()).or_default();
        if version != lists.len() as u64 + 1 {
            return Ok(false);
        }
        lists.push(list.to_vec());
        Ok(true)
    }

    async fn device_lists(&self, user: &str, after: u64) -> StoreResult<Vec<Vec<u8>>> {
        let g = self.lock()?;
        let all = g.device_lists.get(user).map(Vec::as_slice).unwrap_or_default();
        Ok(all.iter().skip(usize::try_from(after).unwrap_or(usize::MAX)).cloned().collect())
    }

    async fn latest_device_list(&self, user: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.lock()?.device_lists.get(user).and_then(|l| l.last().cloned()))
    }

    async fn reset_user(&self, user: &UserRecord, first_list: &[u8]) -> StoreResult<bool> {
        let mut g = self.lock()?;
        let name = user.name_str();
        if !g.users.contains_key(&name) {
            return Ok(false);
        }
        g.users.insert(name.clone(), user.clone());
        g.device_lists.insert(name, vec![first_list.to_vec()]);
        Ok(true)
    }

    async fn put_link(&self, id: &[u8; 16], link: &LinkRecord) -> StoreResult<bool> {
        let mut g = self.lock()?;
        if g.links.contains_key(id) {
            return Ok(false);
        }
        g.links.insert(*id, link.clone());
        Ok(true)
    }

    async fn link(&self, id: &[u8; 16]) -> StoreResult<Option<LinkRecord>> {
        Ok(self.lock()?.links.get(id).cloned())
    }

    async fn approve_link(&self, id: &[u8; 16], approval: &[u8]) -> StoreResult<bool> {
        let mut g = self.lock()?;
        match g.links.get_mut(id) {
            Some(l) if l.approval.is_none() => {
                l.approval = Some(approval.to_vec());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn prune_auth(&self, now: u64) -> StoreResult<u64> {
        let mut g = self.lock()?;
        let before = g.tokens.len() + g.challenges.len() + g.links.len();
        g.tokens.retain(|_, t| t.expires_at >= now);
        g.challenges.retain(|_, c| c.expires_at >= now);
        g.links.retain(|_, l| l.expires_at >= now);
        Ok((before - g.tokens.len() - g.challenges.len() - g.links.len()) as u64)
    }

    async fn user_names(&self) -> StoreResult<Vec<String>> {
        let mut names: Vec<String> = self.lock()?.users.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn kt_get(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let g = self.lock()?;
        Ok(keys.iter().map(|k| g.kt.get(k).cloned()).collect())
    }

    async fn kt_put(&self, records: &[(Vec<u8>, Vec<u8>)]) -> StoreResult<()> {
        let mut g = self.lock()?;
        for (k, v) in records {
            g.kt.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    async fn kt_put_absent(&self, key: &[u8], value: &[u8]) -> StoreResult<Vec<u8>> {
        Ok(self.lock()?.kt.entry(key.to_vec()).or_insert_with(|| value.to_vec()).clone())
    }

    async fn kt_scan(&self, prefix: &[u8]) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let g = self.lock()?;
        Ok(g.kt
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn persist(&self) -> StoreResult<()> {
        Ok(())
    }
}
