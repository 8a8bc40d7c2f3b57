//! Versioned migrations of the sled store's format (`meta/format`).
//!
//! | version | change |
//! | --- | --- |
//! | 1 | first release |
//! | 2 | log entries carry their hash-chain value ([`super::chain`]), in the tree `log_v2`; the watermark file appears |
//!
//! Each migration is restartable: it writes into new trees, switches the
//! format version only after those are flushed, and removes the old trees
//! last. A crash at any point leaves a store that the next open migrates again
//! or finishes cleaning.

use super::chain;
use super::integrity::{be_u64, key_tail, pruned_marker, LOG_TREE};
use super::{LogEntry, StoreError};

/// The format version this build writes.
pub(super) const FORMAT_VERSION: u32 = 2;
const V1_LOG_TREE: &str = "log";
const BATCH: usize = 1024;

/// Brings the store in `db` from `found` up to [`FORMAT_VERSION`].
pub(super) fn run(db: &sled::Db, meta: &sled::Tree, found: u32) -> Result<(), StoreError> {
    if found == 1 {
        v1_to_v2(db)?;
        meta.insert("format", &2u32.to_be_bytes())?;
        db.flush()?;
        tracing::info!("migrated the store from format 1 to 2 (log hash chain)");
    }
    // A crash after the switch may have left the old tree behind.
    if db.tree_names().iter().any(|n| n.as_ref() == V1_LOG_TREE.as_bytes()) {
        db.drop_tree(V1_LOG_TREE)?;
    }
    Ok(())
}

/// Copies every log entry into `log_v2` with its chain value. Entries at or
/// below a group's pruned marker are left over from an interrupted prune and
/// are not copied.
fn v1_to_v2(db: &sled::Db) -> Result<(), StoreError> {
    db.drop_tree(LOG_TREE)?;
    let old = db.open_tree(V1_LOG_TREE)?;
    let new = db.open_tree(LOG_TREE)?;
    let pruned = db.open_tree("pruned")?;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0usize;
    let mut current: Option<(u64, u64, chain::Chain)> = None;
    for item in old.iter() {
        let (k, v) = item?;
        let id = be_u64("log key", k.get(..8).unwrap_or_default())?;
        let seq = be_u64("log key", key_tail(&k))?;
        if current.map(|(cid, _, _)| cid) != Some(id) {
            let (after, base) = pruned_marker(&pruned, id)?.unwrap_or((0, chain::base(id, 0)));
            current = Some((id, after, base));
        }
        let Some((_, after, prev)) = current.as_mut() else { continue };
        if seq <= *after {
            continue;
        }
        LogEntry::decode_value(seq, &v)?;
        let c = chain::next(prev, id, seq, &v);
        batch.insert(&k[..], LogEntry::chained_value(&v, &c));
        *prev = c;
        in_batch += 1;
        if in_batch == BATCH {
            new.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    new.apply_batch(batch)?;
    db.flush()?;
    Ok(())
}
