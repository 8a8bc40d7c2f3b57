//! The in-memory table of every group's log head, kept by the sled store as it
//! appends, and snapshotted into the watermark file.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::chain::Head;
use super::watermark::Watermark;
use super::StoreError;

/// One group's head; appends to the group hold its lock while they write.
pub(super) type SharedHead = Arc<Mutex<Head>>;

/// Heads of all groups, the user count, and a generation that moves on every change.
#[derive(Debug, Default)]
pub(super) struct HeadTable {
    map: Mutex<HashMap<u64, SharedHead>>,
    users: AtomicU64,
    generation: AtomicU64,
}

fn poisoned() -> StoreError {
    StoreError::Db("a log head lock was poisoned by a panic; restart grove-ds".into())
}

impl HeadTable {
    /// A table holding `heads` and `users`.
    pub(super) fn new(heads: BTreeMap<u64, Head>, users: u64) -> Self {
        let map = heads.into_iter().map(|(id, h)| (id, Arc::new(Mutex::new(h)))).collect();
        HeadTable { map: Mutex::new(map), users: AtomicU64::new(users), generation: AtomicU64::new(0) }
    }

    /// The head of group `id`, loaded with `load` if the table has none.
    pub(super) fn get_or_load(
        &self,
        id: u64,
        load: impl FnOnce() -> Result<Head, StoreError>,
    ) -> Result<SharedHead, StoreError> {
        if let Some(h) = self.map.lock().map_err(|_| poisoned())?.get(&id) {
            return Ok(h.clone());
        }
        let loaded = Arc::new(Mutex::new(load()?));
        let mut map = self.map.lock().map_err(|_| poisoned())?;
        Ok(map.entry(id).or_insert(loaded).clone())
    }

    /// Records a new group's head.
    pub(super) fn insert(&self, head: Head) -> Result<(), StoreError> {
        self.map.lock().map_err(|_| poisoned())?.insert(head.internal_id, Arc::new(Mutex::new(head)));
        self.touch();
        Ok(())
    }

    /// Records one more registered user.
    pub(super) fn user_added(&self) {
        self.users.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Marks the table changed.
    pub(super) fn touch(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A counter that moves on every change.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Everything in the table, as a watermark written at `now`.
    pub(super) fn snapshot(&self, now: u64) -> Result<Watermark, StoreError> {
        let shared: Vec<SharedHead> = self.map.lock().map_err(|_| poisoned())?.values().cloned().collect();
        let mut groups = Vec::with_capacity(shared.len());
        for h in shared {
            groups.push(*h.lock().map_err(|_| poisoned())?);
        }
        groups.sort_by_key(|h| h.internal_id);
        Ok(Watermark { written_at: now, users: self.users.load(Ordering::Relaxed), groups })
    }
}

/// Locks one group's head.
pub(super) fn lock(head: &SharedHead) -> Result<MutexGuard<'_, Head>, StoreError> {
    head.lock().map_err(|_| poisoned())
}
