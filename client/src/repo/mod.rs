//! The typed repository over the app's records in the local store: the only
//! module that knows namespaces and key layouts.
//!
//! A [`Repo`] wraps either front end of the store: the store itself (reads,
//! outside a transaction) or an open [`Transaction`](crate::storage::Transaction)
//! (reads see the transaction's writes; writes commit with it). Each record
//! family has its own view: [`Repo::meta`], [`Repo::groups`],
//! [`Repo::contacts`], [`Repo::messages`], [`Repo::pending`],
//! [`Repo::outbox`] and [`Repo::resources`].
//!
//! # Schema and migrations
//!
//! The app records have a schema version of their own (`meta/schema`), below
//! the store's layout version ([`crate::storage::FORMAT_VERSION`]): a schema
//! change only adds records derived from existing ones (indexes), which
//! [`migrate`] builds for a home written by an earlier release when it is
//! opened, in one transaction. A home without the marker is schema 0.
//! - Schema 1: the group name index (`group_names`), so that a group is found
//!   by name without reading every group record.
//! - Schema 2: the outbox by group (`outbox_groups`), so that a sync of one
//!   group reads only that group's unconfirmed messages.
//!
//! An older build keeps opening a migrated home (the store's layout is the
//! same) but does not keep the indexes: once the home is back on this build,
//! a group it renamed is not found by its new name, and a message it left
//! unconfirmed is confirmed by its echo but not posted again. Lookups check
//! each index hit against its record, so they never return a stale one.

mod groups;
mod outbox;
mod resources;
#[cfg(test)]
mod tests;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::records::{Contact, IdentityRecord, PendingCommit, StoredMessage};
use crate::storage::app::{app_get, app_get_value, app_put, app_put_value, app_remove, app_scan, decode_value};
use crate::storage::seal::Part;
use crate::storage::{GroveProvider, Kv, StorageError, TxnProvider};

pub(crate) use groups::Groups;
pub(crate) use outbox::Outbox;
pub(crate) use resources::{ResourceId, Resources};

/// App-record namespaces.
mod ns {
    /// `identity` → [`IdentityRecord`](crate::records::IdentityRecord);
    /// `last_resort` → KeyPackageRef bytes; `last_resort_used` → bool;
    /// `schema` → u32 (see [`SCHEMA`](super::SCHEMA)).
    pub(super) const META: &str = "meta";
    /// group id → [`GroupRecord`](crate::records::GroupRecord).
    pub(super) const GROUPS: &str = "groups";
    /// `len(name) (be u32) name gid` → empty: the groups by name.
    pub(super) const GROUP_NAMES: &str = "group_names";
    /// `len(gid) (be u32) gid local_id (be u64)` → [`StoredMessage`](crate::records::StoredMessage).
    pub(super) const MESSAGES: &str = "messages";
    /// group id → [`PendingCommit`](crate::records::PendingCommit).
    pub(super) const PENDING: &str = "pending";
    /// SHA-256 of an MLSMessage we sent → [`OutboxEntry`](crate::records::OutboxEntry).
    pub(super) const OUTBOX: &str = "outbox";
    /// `len(gid) (be u32) gid hash` → empty: the outbox by group.
    pub(super) const OUTBOX_GROUPS: &str = "outbox_groups";
    /// user → [`Contact`](crate::records::Contact).
    pub(super) const CONTACTS: &str = "contacts";
    /// `group_prefix(gid) resource_id` → [`ResourceRecord`](crate::records::ResourceRecord).
    pub(super) const RESOURCES: &str = "resources";
    /// `group_prefix(gid) resource_id version (be u64) seq (be u64)` →
    /// [`VersionRecord`](crate::records::VersionRecord): every version whose key this client holds.
    pub(super) const VERSIONS: &str = "versions";
    /// `group_prefix(gid) seq (be u64) n (be u32)` → [`ResourceEventRecord`](crate::records::ResourceEventRecord):
    /// the group's resource history (versions, deletions, policy changes, shares).
    pub(super) const RESOURCE_LOG: &str = "resource_log";
}

/// How the keys of namespace `ns` are cut into parts, for a store encrypted
/// at rest (`storage/seal.rs`): byte strings are hashed, numbers kept in clear
/// so that scans keep their order. Every scan prefix the repository uses
/// ends on a part boundary. A namespace not listed here is one hashed part.
pub(crate) fn key_layout(ns: &[u8]) -> &'static [Part] {
    const ONE: &[Part] = &[Part::Rest];
    const BY_GROUP: &[Part] = &[Part::Prefixed, Part::Rest];
    match std::str::from_utf8(ns).unwrap_or("") {
        ns::GROUP_NAMES | ns::OUTBOX_GROUPS | ns::RESOURCES => BY_GROUP,
        ns::MESSAGES => &[Part::Prefixed, Part::U64],
        ns::VERSIONS => &[Part::Prefixed, Part::Fixed(std::mem::size_of::<ResourceId>()), Part::U64, Part::U64],
        ns::RESOURCE_LOG => &[Part::Prefixed, Part::U64, Part::U32],
        _ => ONE,
    }
}

/// The app records' schema version this build writes (see the module docs).
pub(crate) const SCHEMA: u32 = 2;

const IDENTITY: &[u8] = b"identity";
const LAST_RESORT: &[u8] = b"last_resort";
const LAST_RESORT_USED: &[u8] = b"last_resort_used";
const SCHEMA_KEY: &[u8] = b"schema";
const KT: &[u8] = b"kt";

/// Key of a group's records in ordered namespaces: `len(gid) gid`.
fn group_prefix(gid: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(gid.len() + 4);
    // Group ids are 1 to 256 bytes (docs/api.md); a u32 length cannot overflow.
    k.extend_from_slice(&u32::try_from(gid.len()).unwrap_or(u32::MAX).to_be_bytes());
    k.extend_from_slice(gid);
    k
}

/// `prefix` followed by the big-endian `n`.
fn with_u64(mut prefix: Vec<u8>, n: u64) -> Vec<u8> {
    prefix.extend_from_slice(&n.to_be_bytes());
    prefix
}

/// The app records over one front end of the store. Cheap to make: build one
/// where it is needed (`Repo::new(p.storage())`, [`Repo::of`]).
pub(crate) struct Repo<'s, K> {
    kv: &'s K,
}

impl<K> Clone for Repo<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Repo<'_, K> {}

impl<'s, K: Kv> Repo<'s, K> {
    /// The records of `kv` (the store, or an open transaction).
    pub(crate) fn new(kv: &'s K) -> Self {
        Self { kv }
    }

    /// Identity, KeyPackage bookkeeping and the schema version.
    pub(crate) fn meta(self) -> Meta<'s, K> {
        Meta(self)
    }

    /// Group records and the name index.
    pub(crate) fn groups(self) -> Groups<'s, K> {
        Groups::new(self)
    }

    /// Pinned keys.
    pub(crate) fn contacts(self) -> Contacts<'s, K> {
        Contacts(self)
    }

    /// Message history.
    pub(crate) fn messages(self) -> Messages<'s, K> {
        Messages(self)
    }

    /// Own commits posted but not merged.
    pub(crate) fn pending(self) -> Pending<'s, K> {
        Pending(self)
    }

    /// Own messages sent but not confirmed.
    pub(crate) fn outbox(self) -> Outbox<'s, K> {
        Outbox::new(self)
    }

    /// Resources, their versions and the resource history.
    pub(crate) fn resources(self) -> Resources<'s, K> {
        Resources::new(self)
    }

    fn get<T: DeserializeOwned>(self, ns: &str, key: &[u8]) -> Result<Option<T>> {
        Ok(app_get_value(self.kv, ns, key)?)
    }

    fn put<T: Serialize + ?Sized>(self, ns: &str, key: &[u8], value: &T) -> Result<()> {
        Ok(app_put_value(self.kv, ns, key, value)?)
    }

    fn remove(self, ns: &str, key: &[u8]) -> Result<()> {
        Ok(app_remove(self.kv, ns, key)?)
    }

    fn exists(self, ns: &str, key: &[u8]) -> Result<bool> {
        Ok(app_get(self.kv, ns, key)?.is_some())
    }

    /// Keys (namespace stripped) whose key starts with `prefix`, in order.
    fn keys(self, ns: &str, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(app_scan(self.kv, ns, prefix)?.into_iter().map(|(k, _)| k).collect())
    }

    /// Decoded records whose key starts with `prefix`, in key order; `what`
    /// names them in a corruption error.
    fn scan<T: DeserializeOwned>(self, ns: &str, prefix: &[u8], what: &str) -> Result<Vec<(Vec<u8>, T)>> {
        app_scan(self.kv, ns, prefix)?
            .into_iter()
            .map(|(k, v)| Ok((k, decode_value::<K::Codec, T>(what, &v)?)))
            .collect()
    }
}

impl<'s, 'a> Repo<'s, crate::storage::Transaction<'a>> {
    /// The records of the transaction `p` runs in.
    pub(crate) fn of(p: &'s TxnProvider<'a>) -> Self {
        use openmls_traits::OpenMlsProvider as _;
        Repo::new(p.storage())
    }
}

/// A corrupt record: `what` with `reason`.
pub(crate) fn corrupt(what: &str, reason: impl Into<String>) -> Error {
    Error::Storage(StorageError::Corrupt { what: what.to_owned(), reason: reason.into() })
}

/// Brings the app records of a home written by an earlier release up to
/// [`SCHEMA`], in one transaction (nothing is written if they are current).
pub(crate) fn migrate(provider: &GroveProvider) -> Result<()> {
    use openmls_traits::OpenMlsProvider as _;
    if Repo::new(provider.storage()).meta().schema()? >= SCHEMA {
        return Ok(());
    }
    provider.transaction(|p| -> Result<()> {
        let repo = Repo::of(p);
        let from = repo.meta().schema()?;
        if from < 1 {
            repo.groups().build_name_index()?;
        }
        if from < 2 {
            repo.outbox().build_group_index()?;
        }
        repo.meta().set_schema(SCHEMA)
    })
}

/// `meta`: identity, KeyPackage bookkeeping, schema.
pub(crate) struct Meta<'s, K>(Repo<'s, K>);

impl<K: Kv> Meta<'_, K> {
    pub(crate) fn identity(&self) -> Result<Option<IdentityRecord>> {
        self.0.get(ns::META, IDENTITY)
    }

    pub(crate) fn set_identity(&self, id: &IdentityRecord) -> Result<()> {
        self.0.put(ns::META, IDENTITY, id)
    }

    /// The hash reference of the current last-resort KeyPackage.
    pub(crate) fn last_resort(&self) -> Result<Option<Vec<u8>>> {
        Ok(app_get(self.0.kv, ns::META, LAST_RESORT)?)
    }

    /// Records a new last-resort KeyPackage (not used yet).
    pub(crate) fn set_last_resort(&self, hash_ref: &[u8]) -> Result<()> {
        app_put(self.0.kv, ns::META, LAST_RESORT, hash_ref)?;
        self.set_last_resort_used(false)
    }

    pub(crate) fn last_resort_used(&self) -> Result<bool> {
        Ok(self.0.get(ns::META, LAST_RESORT_USED)?.unwrap_or(false))
    }

    pub(crate) fn set_last_resort_used(&self, used: bool) -> Result<()> {
        self.0.put(ns::META, LAST_RESORT_USED, &used)
    }

    /// What this client knows of the key directory.
    pub(crate) fn kt(&self) -> Result<Option<crate::records::KtState>> {
        self.0.get(ns::META, KT)
    }

    pub(crate) fn set_kt(&self, s: &crate::records::KtState) -> Result<()> {
        self.0.put(ns::META, KT, s)
    }

    /// The app records' schema version (0 for a home without the marker).
    pub(crate) fn schema(&self) -> Result<u32> {
        Ok(self.0.get(ns::META, SCHEMA_KEY)?.unwrap_or(0))
    }

    fn set_schema(&self, version: u32) -> Result<()> {
        self.0.put(ns::META, SCHEMA_KEY, &version)
    }
}

/// `contacts`: pinned keys by user.
pub(crate) struct Contacts<'s, K>(Repo<'s, K>);

impl<K: Kv> Contacts<'_, K> {
    pub(crate) fn get(&self, user: &str) -> Result<Option<Contact>> {
        self.0.get(ns::CONTACTS, user.as_bytes())
    }

    pub(crate) fn put(&self, user: &str, contact: &Contact) -> Result<()> {
        self.0.put(ns::CONTACTS, user.as_bytes(), contact)
    }

    /// Every contact, by user name.
    pub(crate) fn all(&self) -> Result<Vec<(String, Contact)>> {
        let rows: Vec<(Vec<u8>, Contact)> = self.0.scan(ns::CONTACTS, b"", "contact")?;
        Ok(rows.into_iter().map(|(k, c)| (String::from_utf8_lossy(&k).into_owned(), c)).collect())
    }

    /// Changes the contact of `user` with `f`; [`Error::UnknownContact`] if none.
    pub(crate) fn update(&self, user: &str, f: impl FnOnce(&mut Contact)) -> Result<Contact> {
        let mut c = self.get(user)?.ok_or_else(|| Error::UnknownContact(user.to_owned()))?;
        f(&mut c);
        self.put(user, &c)?;
        Ok(c)
    }
}

/// `messages`: each group's history, by local id.
pub(crate) struct Messages<'s, K>(Repo<'s, K>);

impl<K: Kv> Messages<'_, K> {
    fn key(gid: &[u8], local: u64) -> Vec<u8> {
        with_u64(group_prefix(gid), local)
    }

    pub(crate) fn put(&self, gid: &[u8], local: u64, m: &StoredMessage) -> Result<()> {
        self.0.put(ns::MESSAGES, &Self::key(gid, local), m)
    }

    pub(crate) fn remove(&self, gid: &[u8], local: u64) -> Result<()> {
        self.0.remove(ns::MESSAGES, &Self::key(gid, local))
    }

    /// Sets the log position of an own message, if it is still stored.
    pub(crate) fn confirm(&self, gid: &[u8], local: u64, seq: u64) -> Result<()> {
        let key = Self::key(gid, local);
        if let Some(mut m) = self.0.get::<StoredMessage>(ns::MESSAGES, &key)? {
            m.seq = Some(seq);
            self.0.put(ns::MESSAGES, &key, &m)?;
        }
        Ok(())
    }

    /// The group's history in local-id order.
    pub(crate) fn list(&self, gid: &[u8]) -> Result<Vec<StoredMessage>> {
        Ok(self.0.scan(ns::MESSAGES, &group_prefix(gid), "stored message")?.into_iter().map(|(_, m)| m).collect())
    }
}

/// `pending`: the own commit of a group posted but not merged yet.
pub(crate) struct Pending<'s, K>(Repo<'s, K>);

impl<K: Kv> Pending<'_, K> {
    pub(crate) fn get(&self, gid: &[u8]) -> Result<Option<PendingCommit>> {
        self.0.get(ns::PENDING, gid)
    }

    pub(crate) fn exists(&self, gid: &[u8]) -> Result<bool> {
        self.0.exists(ns::PENDING, gid)
    }

    pub(crate) fn put(&self, gid: &[u8], pc: &PendingCommit) -> Result<()> {
        self.0.put(ns::PENDING, gid, pc)
    }

    pub(crate) fn remove(&self, gid: &[u8]) -> Result<()> {
        self.0.remove(ns::PENDING, gid)
    }
}
