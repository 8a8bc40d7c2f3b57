//! `grove-ds check`: verify a whole sled store without serving it.
//!
//! Beyond the quick comparison with the watermark that every open runs
//! (`store::integrity`), this decodes every record and recomputes every
//! group's log chain from its start, so an entry whose bytes changed is found
//! even where sled did not notice.

use std::collections::BTreeMap;
use std::path::Path;

use super::chain::{self, Chain};
use super::integrity::{self, be_u64, key_tail, Trees};
use super::records::decode;
use super::watermark;
use super::{GroupRecord, LogEntry, StoreError, UserRecord, WelcomeEntry};

/// The most problems a report lists.
const MAX_PROBLEMS: usize = 100;

/// What `grove-ds check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// The store directory.
    pub dir: String,
    /// The store's format version.
    pub format: u32,
    /// Registered users.
    pub users: u64,
    /// Groups.
    pub groups: u64,
    /// Log entries stored (all groups).
    pub log_entries: u64,
    /// KeyPackages stored (one-time and last-resort).
    pub key_packages: u64,
    /// Welcomes waiting in inboxes.
    pub welcomes: u64,
    /// Stored cursors.
    pub cursors: u64,
    /// When the watermark was written (unix seconds), if there is one.
    pub watermark_written_at: Option<u64>,
    /// Everything found wrong; empty for a healthy store.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether the store is healthy.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else if self.problems.len() == MAX_PROBLEMS {
            self.problems.push("(more problems not listed)".into());
        }
    }
}

/// Verifies every record of the store in `trees`; with `against_watermark`,
/// also compares it with the watermark file in `dir`.
pub(super) fn verify(dir: &Path, t: &Trees, format: u32, against_watermark: bool) -> Result<CheckReport, StoreError> {
    let mut r = CheckReport { dir: dir.display().to_string(), format, ..CheckReport::default() };
    records(t, &mut r)?;
    logs(t, &mut r)?;
    match watermark::read(dir) {
        Ok(Some(w)) => {
            r.watermark_written_at = Some(w.written_at);
            if against_watermark {
                let heads = integrity::heads(t)?;
                for p in integrity::compare(t, &w, &heads)? {
                    r.problem(p);
                }
            }
        }
        Ok(None) if against_watermark && (r.users > 0 || r.groups > 0) => r.problem(format!(
            "{} is missing, so nothing shows whether this database is complete",
            watermark::path(dir).display()
        )),
        Ok(None) => {}
        Err(e) if against_watermark => r.problem(e.to_string()),
        Err(_) => {}
    }
    Ok(r)
}

/// Decodes every record of a keyed tree (`users`, `groups`): each must decode,
/// and name the key it is stored under. Returns how many there are.
fn keyed<T: tls_codec::Deserialize>(
    tree: &sled::Tree,
    what: &'static str,
    key_of: fn(&T) -> &[u8],
    show: fn(&[u8]) -> String,
    r: &mut CheckReport,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for item in tree.iter() {
        let (k, v) = item?;
        n += 1;
        match decode::<T>(what, &v) {
            Ok(rec) if key_of(&rec) == &k[..] => {}
            Ok(_) => r.problem(format!("{what} {}: the record is stored under another key", show(&k))),
            Err(e) => r.problem(format!("{what} {}: {e}", show(&k))),
        }
    }
    Ok(n)
}

/// Decodes users, groups, Welcomes and cursors; counts KeyPackages.
fn records(t: &Trees, r: &mut CheckReport) -> Result<(), StoreError> {
    r.users = keyed::<UserRecord>(&t.users, "user", |u| u.name.as_slice(), |k| String::from_utf8_lossy(k).into(), r)?;
    r.groups = keyed::<GroupRecord>(&t.groups, "group", |g| g.group_id.as_slice(), |k| hex::encode(k), r)?;
    r.key_packages = t.key_packages.len() as u64;
    for item in t.inbox.iter() {
        let (_, v) = item?;
        r.welcomes += 1;
        if let Err(e) = decode::<WelcomeEntry>("welcome", &v) {
            r.problem(format!("inbox: {e}"));
        }
    }
    for item in t.cursors.iter() {
        let (_, v) = item?;
        r.cursors += 1;
        if let Err(e) = be_u64("cursor", &v) {
            r.problem(format!("cursors: {e}"));
        }
    }
    Ok(())
}

/// One group's walk through its log.
struct Walk {
    id: u64,
    seq: u64,
    chain: Chain,
}

/// Recomputes each group's chain over its stored entries, in order.
fn logs(t: &Trees, r: &mut CheckReport) -> Result<(), StoreError> {
    let mut known = BTreeMap::new();
    for item in t.groups.iter() {
        let (_, v) = item?;
        if let Ok((id, _)) = GroupRecord::peek_ids(&v) {
            known.insert(id, ());
        }
    }
    let mut walk: Option<Walk> = None;
    for item in t.log.iter() {
        let (k, v) = item?;
        r.log_entries += 1;
        let (id, seq) = match (be_u64("log key", k.get(..8).unwrap_or_default()), be_u64("log key", key_tail(&k))) {
            (Ok(id), Ok(seq)) => (id, seq),
            _ => {
                r.problem(format!("log: a key of {} bytes", k.len()));
                continue;
            }
        };
        if walk.as_ref().map(|w| w.id) != Some(id) {
            if !known.contains_key(&id) {
                r.problem(format!("log: entries of group {id}, which has no group record"));
            }
            let (seq0, chain0) = integrity::pruned_marker(&t.pruned, id)?.unwrap_or((0, chain::base(id, 0)));
            walk = Some(Walk { id, seq: seq0, chain: chain0 });
        }
        let Some(w) = walk.as_mut() else { continue };
        step(w, seq, &v, r);
    }
    Ok(())
}

/// Checks one entry against the walk so far and advances it.
fn step(w: &mut Walk, seq: u64, value: &[u8], r: &mut CheckReport) {
    if seq <= w.seq {
        // Left over from a prune interrupted between its two writes.
        return;
    }
    let (encoded, stored) = match LogEntry::split_chained(value) {
        Ok(parts) => parts,
        Err(e) => {
            r.problem(format!("group {} entry {seq}: {e}", w.id));
            return;
        }
    };
    if let Err(e) = LogEntry::decode_value(seq, encoded) {
        r.problem(format!("group {} entry {seq}: {e}", w.id));
    }
    if seq != w.seq + 1 {
        r.problem(format!("group {}: the log jumps from seq {} to {seq}", w.id, w.seq));
    } else if chain::next(&w.chain, w.id, seq, encoded) != stored {
        r.problem(format!("group {} entry {seq}: its bytes do not match the log's hash chain", w.id));
    }
    w.seq = seq;
    w.chain = stored;
}
