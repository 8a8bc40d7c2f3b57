//! The per-group runtime: the openmls public state (and its codec), the roster
//! the fast paths check, and the in-memory tail of the log. Loaded from the
//! store on first use and cached for the life of the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};
use tokio::sync::watch;

use super::{Ds, MAX_GROUP_ID_LEN};
use crate::error::DsError;
use crate::store::{GroupRecord, LogEntry, StoreError};

#[derive(Debug, Clone)]
pub(super) struct MemberInfo {
    pub(super) leaf: u32,
    pub(super) signature_key: Vec<u8>,
}

/// The fast-path view of a group, guarded by a std mutex held only for short,
/// non-async sections (sequence assignment and the store append).
pub(super) struct GroupView {
    pub(super) record: GroupRecord,
    pub(super) next_seq: u64,
    pub(super) members: HashMap<String, MemberInfo>,
    pub(super) removed: HashMap<String, u64>,
}

/// openmls public state, mutated only under the group's commit lock.
pub(super) struct PublicState {
    pub(super) storage: MemoryStorage,
    pub(super) group: PublicGroup,
}

/// Most recent log entries of a group, kept in memory so that the members
/// following the group (long-poll, WebSocket) are served without a storage scan.
/// It holds a contiguous run of the log's newest entries, at most
/// [`TAIL_ENTRIES`] entries and [`TAIL_BYTES`] bytes. On a shared store,
/// appends complete out of order (the database orders them): an entry past a
/// gap waits in `early` until the gap fills, or starts a new run if the gap
/// stays (entries another replica appended).
#[derive(Default)]
pub(super) struct Tail {
    entries: std::collections::VecDeque<Arc<LogEntry>>,
    bytes: usize,
    early: std::collections::BTreeMap<u64, Arc<LogEntry>>,
}

/// Entries kept per group in the in-memory tail.
const TAIL_ENTRIES: usize = 1024;
/// Bytes of messages kept per group in the in-memory tail.
const TAIL_BYTES: usize = 4 << 20;
/// Entries past a gap kept waiting for it to fill.
const TAIL_EARLY: usize = 256;

impl Tail {
    fn push(&mut self, e: Arc<LogEntry>) {
        match self.entries.back().map(|last| last.seq) {
            Some(last) if e.seq <= last => return, // covered already, or too old
            Some(last) if e.seq != last + 1 => {
                self.early.insert(e.seq, e);
                if self.early.len() > TAIL_EARLY {
                    // The gap is not filling: start over from the waiting run.
                    let early = std::mem::take(&mut self.early);
                    *self = Tail::default();
                    for (_, e) in early {
                        self.push(e);
                    }
                }
                return;
            }
            _ => self.append(e),
        }
        while let Some(next) = self.entries.back().and_then(|l| self.early.remove(&(l.seq + 1))) {
            self.append(next);
        }
    }

    fn append(&mut self, e: Arc<LogEntry>) {
        self.bytes += e.message.len();
        self.entries.push_back(e);
        while self.entries.len() > TAIL_ENTRIES || self.bytes > TAIL_BYTES {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.message.len(),
                None => break,
            }
        }
    }

    /// Entries with `after < seq <= up_to`, if the tail covers that whole
    /// range (from `after + 1` through `up_to`).
    pub(super) fn range(&self, after: u64, up_to: u64, limit: usize) -> Option<Vec<Arc<LogEntry>>> {
        let first = self.entries.front()?.seq;
        let last = self.entries.back()?.seq;
        if first > after.saturating_add(1) || (last < up_to && after < up_to) {
            return None;
        }
        let skip = usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        Some(self.entries.iter().skip(skip).take_while(|e| e.seq <= up_to).take(limit).cloned().collect())
    }
}

/// The runtime of one group.
pub(super) struct GroupRt {
    pub(super) tail: Mutex<Tail>,
    pub(super) internal_id: u64,
    pub(super) group_id: Vec<u8>,
    /// The openmls public state; held for the whole of a handshake append, so
    /// that handshake messages of one group are validated one at a time.
    /// Taken before `append_lock` whenever both are.
    pub(super) commit_lock: tokio::sync::Mutex<PublicState>,
    /// Held while an entry's sequence number is taken and the entry stored,
    /// so that this replica's appends reach the store in sequence order.
    pub(super) append_lock: tokio::sync::Mutex<()>,
    /// A reload from the store is queued (another replica changed the group).
    pub(super) refresh_pending: std::sync::atomic::AtomicBool,
    pub(super) view: Mutex<GroupView>,
    /// Highest durable (and so visible) sequence number.
    pub(super) visible: watch::Sender<u64>,
    /// This replica's appends not yet visible, in seq order, with the
    /// store's durability mark taken after each was written (unshared
    /// stores that keep one): the first publish after their fsync makes
    /// them all visible at once.
    pub(super) unflushed: Mutex<VecDeque<(u64, u64)>>,
}

impl GroupRt {
    /// Adds a stored entry to the tail (this replica's appends, and other
    /// replicas' application messages read once when a notification comes).
    pub(super) fn remember(&self, entry: LogEntry) {
        if let Ok(mut t) = self.tail.lock() {
            t.push(Arc::new(entry));
        }
    }

    /// Makes entries up to `seq` visible (after their fsync); never moves back.
    pub(super) fn advance_visible(&self, seq: u64) {
        self.visible.send_if_modified(|v| {
            let changed = seq > *v;
            *v = (*v).max(seq);
            changed
        });
    }

    /// Records that `seq` was written, with the store's durability mark
    /// taken after the write. Called under the append lock, so in seq order.
    pub(super) fn note_unflushed(&self, seq: u64, mark: u64) {
        if let Ok(mut u) = self.unflushed.lock() {
            u.push_back((seq, mark));
        }
    }

    /// The highest seq that is durable now, given that `seq` is (see
    /// [`drain_durable`]). Forgets the appends it covers.
    pub(super) fn durable_through(&self, seq: u64, durable: impl Fn(u64) -> bool) -> u64 {
        match self.unflushed.lock() {
            Ok(mut u) => drain_durable(&mut u, seq, durable),
            Err(_) => seq,
        }
    }

    pub(super) fn forget_tail(&self) {
        if let Ok(mut t) = self.tail.lock() {
            *t = Tail::default();
        }
    }

    pub(super) fn view(&self) -> Result<std::sync::MutexGuard<'_, GroupView>, DsError> {
        self.view.lock().map_err(|_| DsError::Internal("group view lock poisoned".into()))
    }
}

#[derive(Debug, tls_codec::TlsSerialize, tls_codec::TlsDeserialize, tls_codec::TlsSize)]
struct KvPair {
    key: VLBytes,
    value: VLBytes,
}

pub(super) fn serialize_public_state(storage: &MemoryStorage) -> Result<Vec<u8>, DsError> {
    let values = storage.values.read().map_err(|_| DsError::Internal("public state lock poisoned".into()))?;
    let mut pairs: Vec<KvPair> =
        values.iter().map(|(k, v)| KvPair { key: k.clone().into(), value: v.clone().into() }).collect();
    pairs.sort_by(|a, b| a.key.as_slice().cmp(b.key.as_slice()));
    pairs.tls_serialize_detached().map_err(|e| DsError::Internal(format!("encoding public state: {e}")))
}

fn deserialize_public_state(bytes: &[u8]) -> Result<MemoryStorage, DsError> {
    let pairs = Vec::<KvPair>::tls_deserialize_exact(bytes)
        .map_err(|e| DsError::Storage(StoreError::Corrupt { what: "group public state", detail: e.to_string() }))?;
    let storage = MemoryStorage::default();
    {
        let mut values = storage.values.write().map_err(|_| DsError::Internal("public state lock poisoned".into()))?;
        for p in pairs {
            values.insert(p.key.into(), p.value.into());
        }
    }
    Ok(storage)
}

pub(super) fn clone_storage(storage: &MemoryStorage) -> Result<MemoryStorage, DsError> {
    let values = storage.values.read().map_err(|_| DsError::Internal("public state lock poisoned".into()))?;
    Ok(MemoryStorage { values: std::sync::RwLock::new(values.clone()) })
}

/// The `PublicGroup` in a decoded public state.
fn load_public(storage: &MemoryStorage, gid: &[u8]) -> Result<PublicGroup, DsError> {
    PublicGroup::load(storage, &GroupId::from_slice(gid))
        .map_err(|e| DsError::Storage(StoreError::Corrupt { what: "group public state", detail: e.to_string() }))?
        .ok_or_else(|| {
            DsError::Storage(StoreError::Corrupt { what: "group public state", detail: "incomplete".into() })
        })
}

/// The removed members of a record, by name.
fn removed_of(record: &GroupRecord) -> HashMap<String, u64> {
    record.removed.iter().map(|r| (String::from_utf8_lossy(r.user.as_slice()).into_owned(), r.seq)).collect()
}

/// The user a credential names: a device certificate's user, or a legacy
/// BasicCredential's UTF-8 identity.
pub(super) fn identity_of(credential: &Credential) -> Option<String> {
    super::devices::credential_identity(credential).ok().map(|i| i.user())
}

/// The mailbox (`grove_proto::identity::mailbox`) of a leaf's credential:
/// the key under which the DS tracks that leaf's membership, cursor and
/// Welcomes.
pub(super) fn mailbox_of(credential: &Credential) -> Option<String> {
    super::devices::credential_identity(credential).ok().map(|i| i.mailbox())
}

/// Whether any leaf of `user` (any of its devices) is in the roster.
pub(super) fn user_in(members: &HashMap<String, MemberInfo>, user: &str) -> bool {
    members.contains_key(user) || members.keys().any(|m| grove_proto::identity::split_mailbox(m).0 == user)
}

/// The roster: each leaf by its mailbox.
pub(super) fn members_of(group: &PublicGroup) -> HashMap<String, MemberInfo> {
    group
        .members()
        .filter_map(|m| {
            mailbox_of(&m.credential)
                .map(|u| (u, MemberInfo { leaf: m.index.u32(), signature_key: m.signature_key.clone() }))
        })
        .collect()
}

impl Ds {
    pub(super) fn cached_group(&self, gid: &[u8]) -> Result<Option<Arc<GroupRt>>, DsError> {
        let map = self.groups.lock().map_err(|_| DsError::Internal("group map poisoned".into()))?;
        Ok(map.get(gid).cloned())
    }

    /// The runtime of a group, loaded from the store on first use.
    pub(super) async fn group(&self, gid: &[u8]) -> Result<Arc<GroupRt>, DsError> {
        if let Some(rt) = self.cached_group(gid)? {
            return Ok(rt);
        }
        if gid.is_empty() || gid.len() > MAX_GROUP_ID_LEN {
            return Err(DsError::UnknownGroup);
        }
        let loaded = self.store.load_group(gid).await?;
        let Some((record, next_seq)) = loaded else { return Err(DsError::UnknownGroup) };
        let storage = deserialize_public_state(record.public_state.as_slice())?;
        let group = load_public(&storage, gid)?;
        let rt = Arc::new(self.make_rt(record, next_seq, storage, group));
        let mut map = self.groups.lock().map_err(|_| DsError::Internal("group map poisoned".into()))?;
        Ok(map.entry(gid.to_vec()).or_insert(rt).clone())
    }

    /// Reloads a group from the store if its stored state or log moved on
    /// since this replica last looked (another replica wrote: shared stores).
    /// The caller holds the commit lock (`public`). Returns whether anything
    /// changed.
    pub(super) async fn refresh(&self, rt: &GroupRt, public: &mut PublicState) -> Result<bool, DsError> {
        let _order = rt.append_lock.lock().await;
        let (record, stored_next) = self.store.load_group(&rt.group_id).await?.ok_or(DsError::UnknownGroup)?;
        // The record (epoch, public state, roster) decides: this replica's
        // next seq may be ahead of entries it never saw (its own application
        // messages take later seqs), so it alone cannot.
        let next_seq = {
            let view = rt.view()?;
            if record == view.record && stored_next <= view.next_seq {
                return Ok(false);
            }
            stored_next.max(view.next_seq)
        };
        let storage = deserialize_public_state(record.public_state.as_slice())?;
        let group = load_public(&storage, &rt.group_id)?;
        let members = members_of(&group);
        let removed = removed_of(&record);
        *rt.view()? = GroupView { record, next_seq, members, removed };
        *public = PublicState { storage, group };
        rt.forget_tail();
        rt.advance_visible(next_seq - 1);
        self.metrics.group_refreshes.inc();
        Ok(true)
    }

    /// The runtime of a group `user` is a current member of. On a shared
    /// store a refusal is checked again after a refresh.
    pub(super) async fn member_rt(&self, user: &str, gid: &[u8]) -> Result<Arc<GroupRt>, DsError> {
        let rt = self.group(gid).await?;
        let is_member = |rt: &GroupRt| -> Result<bool, DsError> { Ok(rt.view()?.members.contains_key(user)) };
        if is_member(&rt)? || (self.refresh_unlocked(&rt).await? && is_member(&rt)?) {
            return Ok(rt);
        }
        Err(DsError::NotAMember)
    }

    /// [`Ds::refresh`] for a caller that does not hold the commit lock. A
    /// no-op on a store that only this process writes.
    pub(super) async fn refresh_unlocked(&self, rt: &GroupRt) -> Result<bool, DsError> {
        if !self.store.shared() {
            return Ok(false);
        }
        let mut public = rt.commit_lock.lock().await;
        self.refresh(rt, &mut public).await
    }

    pub(super) fn make_rt(
        &self,
        record: GroupRecord,
        next_seq: u64,
        storage: MemoryStorage,
        group: PublicGroup,
    ) -> GroupRt {
        let members = members_of(&group);
        let removed = removed_of(&record);
        GroupRt {
            tail: Mutex::new(Tail::default()),
            internal_id: record.internal_id,
            group_id: record.group_id.as_slice().to_vec(),
            commit_lock: tokio::sync::Mutex::new(PublicState { storage, group }),
            append_lock: tokio::sync::Mutex::new(()),
            refresh_pending: std::sync::atomic::AtomicBool::new(false),
            visible: watch::channel(next_seq.saturating_sub(1)).0,
            unflushed: Mutex::new(VecDeque::new()),
            view: Mutex::new(GroupView { record, next_seq, members, removed }),
        }
    }

    /// Restores the cached `PublicGroup` from the (unchanged) stored state
    /// after a failed merge or store write.
    pub(super) fn reload_public(&self, public: &mut PublicState, gid: &[u8]) -> Result<(), DsError> {
        let group = PublicGroup::load(&public.storage, &GroupId::from_slice(gid))
            .map_err(|e| DsError::Internal(format!("reloading public group: {e}")))?
            .ok_or_else(|| DsError::Internal("public group vanished".into()))?;
        public.group = group;
        Ok(())
    }
}

/// Given that `seq` is durable, the highest seq that is: every append up to
/// `seq` (each was written before it, so the flush that covered `seq` covered
/// them), then, in order, every one whose mark `durable` confirms. Removes
/// them from `unflushed` (seqs in order, each with its durability mark).
fn drain_durable(unflushed: &mut VecDeque<(u64, u64)>, seq: u64, durable: impl Fn(u64) -> bool) -> u64 {
    let mut through = seq;
    while let Some(&(s, mark)) = unflushed.front() {
        if s > seq && !durable(mark) {
            break;
        }
        through = through.max(s);
        unflushed.pop_front();
    }
    through
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EntryKind;

    fn e(seq: u64) -> Arc<LogEntry> {
        Arc::new(LogEntry { seq, epoch: 0, kind: EntryKind::Application, received_at: 0, message: vec![1].into() })
    }

    fn seqs(t: &Tail, after: u64, up_to: u64) -> Option<Vec<u64>> {
        t.range(after, up_to, 1000).map(|v| v.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn the_tail_is_a_contiguous_run_even_when_appends_complete_out_of_order() {
        let mut t = Tail::default();
        for s in [1, 2, 4, 3, 2] {
            t.push(e(s));
        }
        assert_eq!(seqs(&t, 0, 4), Some(vec![1, 2, 3, 4]), "3 filled the gap, 2 again is ignored");
        t.push(e(6));
        assert_eq!(seqs(&t, 0, 6), None, "5 is missing: the tail does not cover through 6");
        assert_eq!(seqs(&t, 2, 4), Some(vec![3, 4]));
        t.push(e(5));
        assert_eq!(seqs(&t, 4, 6), Some(vec![5, 6]));
        // A gap that never fills (another replica's entries): the waiting run takes over.
        for s in 8..8 + TAIL_EARLY as u64 + 1 {
            t.push(e(s));
        }
        assert_eq!(seqs(&t, 7, 8 + TAIL_EARLY as u64), Some((8..=8 + TAIL_EARLY as u64).collect()));
        assert_eq!(seqs(&t, 5, 8), None, "7 never came: nothing before 8 is served from memory");
    }

    #[test]
    fn a_flush_makes_every_append_it_covered_visible_and_no_other() {
        // seqs 5..=9 with the marks read after each write: 5 to 7 before
        // flush 3 began, 8 and 9 after.
        let mut u: VecDeque<(u64, u64)> = [(5, 2), (6, 2), (7, 2), (8, 3), (9, 3)].into();
        // Flush 3 has completed (marks below 3 are durable); its caller wrote 6.
        assert_eq!(drain_durable(&mut u, 6, |m| m < 3), 7, "7 is durable too; 8 and 9 wait");
        assert_eq!(u, VecDeque::from([(8, 3), (9, 3)]));
        // A caller whose own append is 9 knows 8 is durable whatever the marks say.
        assert_eq!(drain_durable(&mut u, 9, |_| false), 9);
        assert!(u.is_empty());
        // Nothing recorded (another store, or already drained): just the caller's seq.
        assert_eq!(drain_durable(&mut u, 4, |_| true), 4);
        // A gap is not jumped: 11 is not durable, so 12 waits even if its mark says so.
        let mut u: VecDeque<(u64, u64)> = [(10, 1), (11, 5), (12, 1)].into();
        assert_eq!(drain_durable(&mut u, 10, |m| m < 2), 10);
        assert_eq!(u.len(), 2);
    }
}
