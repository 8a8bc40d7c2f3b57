//! Integrity of the sled store: the heads of every group's log, their
//! comparison with the watermark file on open, and the full verification that
//! `grove-ds check` runs.
//!
//! Sled checks the CRC of what it reads back from its log and stops recovery at
//! the first damaged record, so damage to the file shows up as a database that
//! ends early: users or log entries missing, or a group's record gone. The
//! watermark ([`super::watermark`]) is what makes "ends early" visible; the
//! chain ([`super::chain`]) makes "holds other bytes" visible.

use std::collections::BTreeMap;
use std::path::Path;

use super::chain::{self, Chain, Head};
use super::records::corrupt;
use super::watermark::Watermark;
use super::{GroupRecord, LogEntry, StoreError};

/// At most this many problems are listed in an error (the count says the rest).
const MAX_LISTED: usize = 12;

/// The sled trees of the store.
#[derive(Clone)]
pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) users: sled::Tree,
    pub(super) key_packages: sled::Tree,
    pub(super) groups: sled::Tree,
    pub(super) log: sled::Tree,
    pub(super) pruned: sled::Tree,
    pub(super) cursors: sled::Tree,
    pub(super) inbox: sled::Tree,
    /// Members' signed reports of commits they could not process.
    pub(super) reports: sled::Tree,
    /// Bearer tokens by hash, and authentication challenges: what a
    /// restarted grove-ds needs to keep its sessions.
    pub(super) tokens: sled::Tree,
    /// Outstanding authentication challenges.
    pub(super) challenges: sled::Tree,
    /// Users' signed device lists, every version (`user 0x00 version`).
    pub(super) device_lists: sled::Tree,
    /// Pending and approved link requests, by id (`sled_trait`).
    pub(super) links: sled::Tree,
    /// The key directory's records (`crate::kt`), opaque here.
    pub(super) kt: sled::Tree,
}

/// The name of the log tree since format 2 (entries carry their chain value).
pub(super) const LOG_TREE: &str = "log_v2";

impl Trees {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Trees {
            users: db.open_tree("users")?,
            key_packages: db.open_tree("key_packages")?,
            groups: db.open_tree("groups")?,
            log: db.open_tree(LOG_TREE)?,
            pruned: db.open_tree("pruned")?,
            cursors: db.open_tree("cursors")?,
            inbox: db.open_tree("inbox")?,
            reports: db.open_tree("commit_reports")?,
            tokens: db.open_tree("tokens")?,
            challenges: db.open_tree("challenges")?,
            device_lists: db.open_tree("device_lists")?,
            links: db.open_tree("links")?,
            kt: db.open_tree("kt")?,
            db: db.clone(),
        })
    }
}

pub(super) fn log_key(internal_id: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&internal_id.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// What follows the 8-byte internal id of a `log` or `cursors` key (empty
/// if a damaged key is shorter).
pub(super) fn key_tail(k: &[u8]) -> &[u8] {
    k.get(8..).unwrap_or_default()
}

pub(super) fn be_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt(what, "expected 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

/// A group's pruned marker: the highest pruned seq and the chain value there.
/// Format 1 wrote the seq alone; its chain is then [`chain::base`] at that seq
/// (the migration starts the chain there).
pub(super) fn pruned_marker(pruned: &sled::Tree, internal_id: u64) -> Result<Option<(u64, Chain)>, StoreError> {
    let Some(v) = pruned.get(internal_id.to_be_bytes())? else { return Ok(None) };
    match v.len() {
        8 => {
            let seq = be_u64("pruned marker", &v)?;
            Ok(Some((seq, chain::base(internal_id, seq))))
        }
        40 => {
            let seq = be_u64("pruned marker", &v[..8])?;
            let c: Chain = v[8..].try_into().map_err(|_| corrupt("pruned marker", "chain length"))?;
            Ok(Some((seq, c)))
        }
        n => Err(corrupt("pruned marker", format!("{n} bytes"))),
    }
}

pub(super) fn pruned_value(seq: u64, c: &Chain) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.extend_from_slice(c);
    v
}

/// The head of one group's log as stored: its last entry, else its pruned
/// marker, else an empty log. `epoch` is the group record's epoch.
pub(super) fn db_head(t: &Trees, internal_id: u64, epoch: u64) -> Result<Head, StoreError> {
    if let Some((k, v)) = t.log.scan_prefix(internal_id.to_be_bytes()).next_back().transpose()? {
        let seq = be_u64("log key", key_tail(&k))?;
        let (entry, c) = LogEntry::decode_chained(seq, &v)?;
        return Ok(Head { internal_id, seq, epoch: epoch.max(entry.epoch), chain: c });
    }
    Ok(match pruned_marker(&t.pruned, internal_id)? {
        Some((seq, c)) => Head { internal_id, seq, epoch, chain: c },
        None => Head::empty(internal_id, epoch),
    })
}

/// Every group's internal id and epoch, from the `groups` tree.
fn group_epochs(t: &Trees) -> Result<BTreeMap<u64, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for item in t.groups.iter() {
        let (_, v) = item?;
        let (internal_id, epoch) = GroupRecord::peek_ids(&v)?;
        out.insert(internal_id, epoch);
    }
    Ok(out)
}

/// The stored head of every group.
pub(super) fn heads(t: &Trees) -> Result<BTreeMap<u64, Head>, StoreError> {
    let mut out = BTreeMap::new();
    for (id, epoch) in group_epochs(t)? {
        out.insert(id, db_head(t, id, epoch)?);
    }
    Ok(out)
}

/// How the database compares with its watermark: one line per problem, empty
/// when the database holds at least everything the watermark recorded.
pub(super) fn compare(t: &Trees, w: &Watermark, heads: &BTreeMap<u64, Head>) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let users = t.users.len() as u64;
    if users < w.users {
        problems.push(format!(
            "{users} users are registered but the watermark recorded {}: registrations were lost or rolled back",
            w.users
        ));
    }
    for mark in &w.groups {
        let id = mark.internal_id;
        let Some(head) = heads.get(&id) else {
            problems.push(format!("group {id} (log at seq {}) is missing from the database", mark.seq));
            continue;
        };
        if head.epoch < mark.epoch {
            problems
                .push(format!("group {id} is at epoch {}, the watermark recorded epoch {}", head.epoch, mark.epoch));
        }
        if head.seq < mark.seq {
            problems.push(format!(
                "group {id}'s log ends at seq {}, the watermark recorded seq {}: entries were lost or rolled back",
                head.seq, mark.seq
            ));
        } else {
            match stored_chain(t, id, mark.seq, head)? {
                Stored::Chain(c) if c == mark.chain => {}
                // Retention pruned past the recorded point: that entry cannot be
                // compared, and pruning is not a loss (the log reaches past it).
                Stored::Pruned => {}
                Stored::Chain(_) => {
                    problems.push(format!("group {id}'s log entry {} is not the one the watermark recorded", mark.seq))
                }
                Stored::Missing => {
                    problems.push(format!("group {id}'s log entry {} (recorded by the watermark) is missing", mark.seq))
                }
            }
        }
    }
    Ok(problems)
}

/// What the store holds at one seq of a group's log.
enum Stored {
    /// The chain value there (the entry is stored, or is the pruned marker's).
    Chain(Chain),
    /// Pruned by retention: no longer comparable.
    Pruned,
    /// Neither stored nor pruned.
    Missing,
}

fn stored_chain(t: &Trees, id: u64, seq: u64, head: &Head) -> Result<Stored, StoreError> {
    if head.seq == seq {
        return Ok(Stored::Chain(head.chain));
    }
    if let Some(v) = t.log.get(log_key(id, seq))? {
        return Ok(Stored::Chain(LogEntry::split_chained(&v)?.1));
    }
    Ok(match pruned_marker(&t.pruned, id)? {
        Some((p, c)) if p == seq => Stored::Chain(c),
        Some((p, _)) if p > seq => Stored::Pruned,
        _ => Stored::Missing,
    })
}

/// Formats problems for [`StoreError::Integrity`].
pub(super) fn integrity_error(dir: &Path, mut problems: Vec<String>) -> StoreError {
    let more = problems.len().saturating_sub(MAX_LISTED);
    problems.truncate(MAX_LISTED);
    if more > 0 {
        problems.push(format!("and {more} more"));
    }
    StoreError::Integrity { dir: dir.display().to_string(), problems }
}
