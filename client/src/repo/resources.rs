//! `resources`, `versions` and `resource_log`: what this client knows of each
//! group's resources, the versions whose keys it holds, and the resource
//! history.

use crate::error::Result;
use crate::records::{ResourceEventRecord, ResourceRecord, VersionRecord};
use crate::storage::Kv;

use super::{corrupt, group_prefix, ns, with_u64, Repo};

/// A resource id: 16 random bytes.
pub(crate) type ResourceId = [u8; 16];

/// The resource records of all groups.
pub(crate) struct Resources<'s, K> {
    repo: Repo<'s, K>,
}

/// `group_prefix(gid) rid`.
fn resource_key(gid: &[u8], rid: &ResourceId) -> Vec<u8> {
    let mut k = group_prefix(gid);
    k.extend_from_slice(rid);
    k
}

impl<'s, K: Kv> Resources<'s, K> {
    pub(super) fn new(repo: Repo<'s, K>) -> Self {
        Self { repo }
    }

    /// The record of resource `rid` in `gid`.
    pub(crate) fn get(&self, gid: &[u8], rid: &ResourceId) -> Result<Option<ResourceRecord>> {
        self.repo.get(ns::RESOURCES, &resource_key(gid, rid))
    }

    pub(crate) fn put(&self, gid: &[u8], rid: &ResourceId, rec: &ResourceRecord) -> Result<()> {
        self.repo.put(ns::RESOURCES, &resource_key(gid, rid), rec)
    }

    /// Every resource of `gid` (deleted ones too), in id order.
    pub(crate) fn list(&self, gid: &[u8]) -> Result<Vec<(ResourceId, ResourceRecord)>> {
        self.repo
            .scan::<ResourceRecord>(ns::RESOURCES, &group_prefix(gid), "resource record")?
            .into_iter()
            .map(|(key, rec)| {
                let rid = key
                    .len()
                    .checked_sub(16)
                    .and_then(|at| key[at..].try_into().ok())
                    .ok_or_else(|| corrupt("resource key", "too short"))?;
                Ok((rid, rec))
            })
            .collect()
    }

    /// Versions of one resource, sorted by (version, seq).
    pub(crate) fn versions(&self, gid: &[u8], rid: &ResourceId) -> Result<Vec<VersionRecord>> {
        let found = self.repo.scan(ns::VERSIONS, &resource_key(gid, rid), "resource version")?;
        Ok(found.into_iter().map(|(_, v)| v).collect())
    }

    /// Whether any copy of version `version` of the resource is recorded.
    pub(crate) fn has_version(&self, gid: &[u8], rid: &ResourceId, version: u64) -> Result<bool> {
        Ok(!self.repo.keys(ns::VERSIONS, &with_u64(resource_key(gid, rid), version))?.is_empty())
    }

    /// Records version `v` (carried by the message at `v.seq`).
    pub(crate) fn put_version(&self, gid: &[u8], rid: &ResourceId, v: &VersionRecord) -> Result<()> {
        let key = with_u64(with_u64(resource_key(gid, rid), v.manifest.version), v.seq);
        self.repo.put(ns::VERSIONS, &key, v)
    }

    /// Records the resource event of the message at `e.seq` (one per message).
    pub(crate) fn put_event(&self, gid: &[u8], e: &ResourceEventRecord) -> Result<()> {
        let mut key = with_u64(group_prefix(gid), e.seq);
        key.extend_from_slice(&0u32.to_be_bytes());
        self.repo.put(ns::RESOURCE_LOG, &key, e)
    }

    /// The group's resource history, in log order.
    pub(crate) fn events(&self, gid: &[u8]) -> Result<Vec<ResourceEventRecord>> {
        let found = self.repo.scan(ns::RESOURCE_LOG, &group_prefix(gid), "resource history entry")?;
        Ok(found.into_iter().map(|(_, e)| e).collect())
    }
}
