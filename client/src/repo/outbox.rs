//! `outbox`: own MLSMessages by hash, until their echo or the DS's 201
//! confirms them, and `outbox_groups`, the same hashes by group, so that a
//! group's entries are found without reading every group's.

use crate::error::Result;
use crate::records::OutboxEntry;
use crate::storage::Kv;

use super::{group_prefix, ns, Repo};

/// The outbox.
pub(crate) struct Outbox<'s, K> {
    repo: Repo<'s, K>,
}

/// Index key: `group_prefix(gid) hash`.
fn group_key(gid: &[u8], hash: &[u8]) -> Vec<u8> {
    let mut k = group_prefix(gid);
    k.extend_from_slice(hash);
    k
}

impl<'s, K: Kv> Outbox<'s, K> {
    pub(super) fn new(repo: Repo<'s, K>) -> Self {
        Self { repo }
    }

    /// The entry of the MLSMessage whose SHA-256 is `hash`.
    pub(crate) fn get(&self, hash: &[u8]) -> Result<Option<OutboxEntry>> {
        self.repo.get(ns::OUTBOX, hash)
    }

    /// Stores `entry` under `hash`, indexed by its group.
    pub(crate) fn put(&self, hash: &[u8], entry: &OutboxEntry) -> Result<()> {
        if let Some(old) = self.get(hash)? {
            self.repo.remove(ns::OUTBOX_GROUPS, &group_key(&old.group, hash))?;
        }
        self.repo.put(ns::OUTBOX_GROUPS, &group_key(&entry.group, hash), &())?;
        self.repo.put(ns::OUTBOX, hash, entry)
    }

    /// Removes the entry under `hash` (no error if there is none).
    pub(crate) fn remove(&self, hash: &[u8]) -> Result<()> {
        if let Some(old) = self.get(hash)? {
            self.repo.remove(ns::OUTBOX_GROUPS, &group_key(&old.group, hash))?;
        }
        self.repo.remove(ns::OUTBOX, hash)
    }

    /// The entries of group `gid`, with their hashes, in hash order.
    pub(crate) fn of_group(&self, gid: &[u8]) -> Result<Vec<(Vec<u8>, OutboxEntry)>> {
        let prefix = group_prefix(gid);
        let mut out = Vec::new();
        for key in self.repo.keys(ns::OUTBOX_GROUPS, &prefix)? {
            let hash = key[prefix.len()..].to_vec();
            if let Some(entry) = self.get(&hash)?.filter(|e| e.group == gid) {
                out.push((hash, entry));
            }
        }
        Ok(out)
    }

    /// Builds the group index from the entries (migration to schema 2).
    pub(super) fn build_group_index(&self) -> Result<()> {
        for (hash, entry) in self.repo.scan::<OutboxEntry>(ns::OUTBOX, b"", "outbox entry")? {
            self.repo.put(ns::OUTBOX_GROUPS, &group_key(&entry.group, &hash), &())?;
        }
        Ok(())
    }
}
