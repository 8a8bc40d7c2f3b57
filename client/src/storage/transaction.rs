//! [`Transaction`]: writes buffered in an overlay until one atomic commit.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::MutexGuard;

use serde::{de::DeserializeOwned, Serialize};

use super::{DefaultCodec, Entries, Kv, Overlay, SledStorage, StorageError, ValueCodec};

/// An open transaction: writes are buffered until [`commit`](Self::commit).
///
/// Dropping it without committing rolls back. It holds the store's writer
/// lock until it is committed or dropped.
pub struct Transaction<'a, C: ValueCodec = DefaultCodec> {
    pub(super) store: &'a SledStorage<C>,
    pub(super) overlay: RefCell<Overlay>,
    pub(super) _guard: MutexGuard<'a, ()>,
}

impl<C: ValueCodec> fmt::Debug for Transaction<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").field("pending_writes", &self.pending_writes()).finish_non_exhaustive()
    }
}

impl<C: ValueCodec> Transaction<'_, C> {
    /// Makes every buffered write durable (one journal record, `fdatasync`ed;
    /// for a store without a journal, one sled batch and a sled flush), then
    /// visible.
    ///
    /// On `Ok`, all writes are durable. On `Err`, the writes were not applied,
    /// but may still be recovered, all together, when the store is reopened
    /// (an I/O error does not tell whether the data reached the disk); the
    /// store then refuses further writes ([`StorageError::Poisoned`]) until it
    /// is reopened. No partial transaction is ever visible, also after a crash.
    pub fn commit(self) -> Result<(), StorageError> {
        let overlay = self.overlay.into_inner();
        self.store.apply(overlay)
    }

    /// Discards every buffered write (the same as dropping the transaction).
    pub fn rollback(self) {}

    /// Number of keys written or deleted so far.
    pub fn pending_writes(&self) -> usize {
        self.overlay.borrow().len()
    }

    app_methods!();
}

impl<C: ValueCodec> Kv for Transaction<'_, C> {
    type Codec = C;

    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(pending) = self.overlay.borrow().get(key) {
            return Ok(pending.clone());
        }
        self.store.get_raw(key)
    }

    fn put_raw(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StorageError> {
        self.overlay.borrow_mut().insert(key, value);
        Ok(())
    }

    fn scan_raw(&self, prefix: &[u8]) -> Result<Entries, StorageError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self.store.scan_raw(prefix)?.into_iter().collect();
        apply_overlay(&mut merged, &self.overlay.borrow(), prefix);
        Ok(merged.into_iter().collect())
    }
}

/// Runs `f` on the open transaction `txn`, then `commit`s it if `f`
/// returned `Ok`; on `Err`, drops it, which discards every write.
pub(super) fn run<X, T, E: From<StorageError>>(
    txn: X,
    f: impl FnOnce(&X) -> Result<T, E>,
    commit: impl FnOnce(X) -> Result<(), StorageError>,
) -> Result<T, E> {
    let value = f(&txn)?;
    commit(txn)?;
    Ok(value)
}

/// Applies the writes of `overlay` whose key starts with `prefix` to `entries`.
pub(super) fn apply_overlay(entries: &mut BTreeMap<Vec<u8>, Vec<u8>>, overlay: &Overlay, prefix: &[u8]) {
    for (key, value) in overlay.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
        match value {
            Some(v) => entries.insert(key.clone(), v.clone()),
            None => entries.remove(key),
        };
    }
}
