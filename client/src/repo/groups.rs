//! `groups`: one [`GroupRecord`] per group id, and the name index
//! (`group_names`) that finds a group by name without reading every record.
//!
//! Every write of a record goes through [`Groups::put`], which keeps the index
//! in step (in the same transaction when the repository wraps one).

use crate::error::{Error, Result};
use crate::records::GroupRecord;
use crate::storage::Kv;

use super::{group_prefix, ns, Repo};

/// The group records.
pub(crate) struct Groups<'s, K> {
    repo: Repo<'s, K>,
}

fn b64url(gid: &[u8]) -> String {
    grove_proto::group_id_to_path(gid)
}

/// Index key: `len(name) name gid`.
fn name_key(name: &str, gid: &[u8]) -> Vec<u8> {
    let mut k = group_prefix(name.as_bytes());
    k.extend_from_slice(gid);
    k
}

impl<'s, K: Kv> Groups<'s, K> {
    pub(super) fn new(repo: Repo<'s, K>) -> Self {
        Self { repo }
    }

    /// The record of `gid`, if this client knows the group.
    pub(crate) fn get(&self, gid: &[u8]) -> Result<Option<GroupRecord>> {
        self.repo.get(ns::GROUPS, gid)
    }

    /// The record of `gid`; [`Error::UnknownGroup`] if there is none.
    pub(crate) fn require(&self, gid: &[u8]) -> Result<GroupRecord> {
        self.get(gid)?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))
    }

    /// Writes the record of `gid`, moving its name index entry if the name changed.
    pub(crate) fn put(&self, gid: &[u8], rec: &GroupRecord) -> Result<()> {
        let old = self.get(gid)?;
        let old_name = old.as_ref().and_then(|r| r.name.as_deref());
        if old.is_none() || old_name != rec.name.as_deref() {
            if let Some(name) = old_name {
                self.repo.remove(ns::GROUP_NAMES, &name_key(name, gid))?;
            }
            if let Some(name) = &rec.name {
                self.repo.put(ns::GROUP_NAMES, &name_key(name, gid), &())?;
            }
        }
        self.repo.put(ns::GROUPS, gid, rec)
    }

    /// Changes the record of `gid` with `f` and writes it back;
    /// [`Error::UnknownGroup`] if there is none. Returns the new record.
    pub(crate) fn update(&self, gid: &[u8], f: impl FnOnce(&mut GroupRecord)) -> Result<GroupRecord> {
        let mut rec = self.require(gid)?;
        f(&mut rec);
        self.put(gid, &rec)?;
        Ok(rec)
    }

    /// Like [`update`](Self::update), but does nothing if the group is unknown.
    pub(crate) fn update_if_present(&self, gid: &[u8], f: impl FnOnce(&mut GroupRecord)) -> Result<()> {
        if let Some(mut rec) = self.get(gid)? {
            f(&mut rec);
            self.put(gid, &rec)?;
        }
        Ok(())
    }

    /// Forgets the group (record and index entry).
    pub(crate) fn remove(&self, gid: &[u8]) -> Result<()> {
        if let Some(name) = self.get(gid)?.and_then(|r| r.name) {
            self.repo.remove(ns::GROUP_NAMES, &name_key(&name, gid))?;
        }
        self.repo.remove(ns::GROUPS, gid)
    }

    /// Every group id, in key order.
    pub(crate) fn ids(&self) -> Result<Vec<Vec<u8>>> {
        self.repo.keys(ns::GROUPS, b"")
    }

    /// Every group with its record, in id order.
    pub(crate) fn all(&self) -> Result<Vec<(Vec<u8>, GroupRecord)>> {
        self.repo.scan(ns::GROUPS, b"", "app record in \"groups\"")
    }

    /// The ids of the groups named `name`, in id order (from the index; each
    /// checked against its record).
    pub(crate) fn named(&self, name: &str) -> Result<Vec<Vec<u8>>> {
        let prefix = group_prefix(name.as_bytes());
        let mut out = Vec::new();
        for key in self.repo.keys(ns::GROUP_NAMES, &prefix)? {
            let gid = key[prefix.len()..].to_vec();
            if self.get(&gid)?.is_some_and(|r| r.name.as_deref() == Some(name)) {
                out.push(gid);
            }
        }
        Ok(out)
    }

    /// Resolves a group name or id (base64url) to the group id: an id first
    /// (one direct read), then a name (one index scan). A name shared by
    /// several groups fails with [`Error::AmbiguousGroup`], unless all but
    /// one of them were replaced by a successor group this client created
    /// (the name then means the one that was not).
    pub(crate) fn resolve(&self, name_or_id: &str) -> Result<Vec<u8>> {
        if let Some(gid) = grove_proto::group_id_from_path(name_or_id) {
            if b64url(&gid) == name_or_id && self.repo.exists(ns::GROUPS, &gid)? {
                return Ok(gid);
            }
        }
        let mut by_name = self.named(name_or_id)?;
        if by_name.len() > 1 {
            let mut current = Vec::new();
            for gid in &by_name {
                if self.get(gid)?.is_some_and(|r| r.successor.is_none() || r.successor_by.is_some()) {
                    current.push(gid.clone());
                }
            }
            if current.len() == 1 {
                by_name = current;
            }
        }
        match by_name.len() {
            0 => Err(Error::UnknownGroup(name_or_id.to_owned())),
            1 => Ok(by_name.remove(0)),
            _ => Err(Error::AmbiguousGroup {
                name: name_or_id.to_owned(),
                ids: by_name.iter().map(|g| b64url(g)).collect(),
            }),
        }
    }

    /// Builds the name index from the records (migration to schema 1).
    pub(super) fn build_name_index(&self) -> Result<()> {
        for (gid, rec) in self.all()? {
            if let Some(name) = &rec.name {
                self.repo.put(ns::GROUP_NAMES, &name_key(name, &gid), &())?;
            }
        }
        Ok(())
    }
}
