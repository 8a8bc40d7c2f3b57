//! A group's log: the one append path that commits, proposals and application
//! messages all take (sequence number, store write, tail, durability,
//! visibility), posting proposals and application messages, page fetch and
//! long-poll, and the per-member read cursor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openmls::prelude::*;
use tls_codec::VLBytes;
use tokio::sync::watch;

use super::runtime::{clone_storage, serialize_public_state, GroupRt, GroupView, MemberInfo, PublicState};
use super::validate::{body_name, content_type_name, parse_mls};
use super::{now_secs, Ds};
use crate::api;
use crate::api::GroupId;
use crate::error::DsError;
use crate::store::{EntryKind, GroupRecord, LogEntry, RemovedMember, StoreError, WelcomeEntry};

/// How often an append is retried after another replica got the sequence
/// number first.
const STALE_RETRIES: u32 = 5;

/// A page of a group's log as the domain layer returns it.
#[derive(Debug, Clone)]
pub struct LogPage {
    /// Entries with `seq > after`, in order.
    pub entries: Vec<Arc<LogEntry>>,
    /// The highest sequence number the caller may read now.
    pub last_seq: u64,
    /// Seq of the commit that removed the caller, if it was removed.
    pub removed_at: Option<u64>,
}

/// What an append changes besides adding the entry to the log.
pub(super) enum Change {
    /// An application message: the log only.
    Log,
    /// A proposal: the group's public state (with the proposal queued).
    State(Vec<u8>),
    /// A commit: the new epoch's state, roster and GroupInfo, and the Welcomes.
    Commit(CommitChange),
}

/// The state a commit moves its group to.
pub(super) struct CommitChange {
    /// The new epoch.
    pub(super) epoch: u64,
    /// The new public state, encoded.
    pub(super) state: Vec<u8>,
    /// The new epoch's GroupInfo, if the committer sent one.
    pub(super) group_info: Option<VLBytes>,
    /// The new roster.
    pub(super) members: HashMap<String, MemberInfo>,
    /// Users the commit removes.
    pub(super) removed_now: Vec<String>,
    /// One Welcome per added user.
    pub(super) welcomes: Vec<(String, WelcomeEntry)>,
}

/// An entry the store accepted, not yet durable or visible.
pub(super) struct Appended {
    /// Its sequence number.
    pub(super) seq: u64,
    /// Inbox ids of the Welcomes stored with it.
    welcome_ids: Vec<u64>,
}

/// The outcome of access checks for reading a group's log.
struct ReadAccess {
    up_to: u64,
    removed_at: Option<u64>,
}

impl Ds {
    /// Appends one entry to a group's log. Under the group's append lock, so
    /// entries get consecutive sequence numbers in store order: `check` the
    /// view, take the next seq, write the entry and its `change` in one store
    /// operation, keep it in the tail, update the view. Then [`Ds::publish`].
    ///
    /// [`DsError::Stale`] means another replica appended first (shared
    /// stores): nothing was written; refresh the group and try again.
    pub(super) async fn append(
        &self,
        rt: &GroupRt,
        kind: EntryKind,
        epoch: u64,
        message: bytes::Bytes,
        change: Change,
        check: impl FnOnce(&GroupView) -> Result<(), DsError>,
    ) -> Result<Appended, DsError> {
        // Application messages on a shared store are ordered by the database
        // (batched there), so several may be in flight; everything else
        // takes its seq under the append lock.
        let unordered = matches!(change, Change::Log) && self.store.shared();
        let _order = if unordered { None } else { Some(rt.append_lock.lock().await) };
        let (seq, record) = {
            let view = rt.view()?;
            check(&view)?;
            let seq = view.next_seq;
            let record = match &change {
                Change::Log => None,
                Change::State(state) => {
                    let mut record = view.record.clone();
                    record.public_state = state.clone().into();
                    Some(record)
                }
                Change::Commit(c) => Some(commit_record(&view, seq, c).0),
            };
            (seq, record)
        };
        let mut entry = LogEntry { seq, epoch, kind, received_at: now_secs(), message };
        // Shared stores may take a later seq than the view's next (other
        // replicas' application messages came first).
        let written = match (&change, &record) {
            (Change::Commit(c), Some(record)) => self.store.append_commit(record, &entry, &c.welcomes).await,
            (Change::Log, None) => {
                let view_epoch = rt.view()?.record.epoch;
                self.store.append_application(rt.internal_id, &entry, view_epoch).await.map(|s| (s, Vec::new()))
            }
            (Change::State(_), Some(record)) => {
                let base = rt.view()?.record.clone();
                self.store.append_proposal(&base, record, &entry).await.map(|s| (s, Vec::new()))
            }
            _ => self.store.append_message(rt.internal_id, &entry, record.as_ref()).await.map(|()| (seq, Vec::new())),
        };
        let (taken, welcome_ids) = match written {
            Ok(w) => w,
            Err(StoreError::Conflict(why)) => return Err(DsError::Stale(why)),
            Err(e) => return Err(e.into()),
        };
        entry.seq = taken;
        let mut view = rt.view()?;
        if let Change::Commit(c) = change {
            // Computed again: the removal seqs name the seq the commit took.
            let (record, removed) = commit_record(&view, taken, &c);
            view.record = record;
            view.members = c.members;
            view.removed = removed;
        } else if let Some(record) = record {
            view.record = record;
        }
        let seq = taken;
        rt.remember(entry);
        view.next_seq = view.next_seq.max(seq + 1);
        drop(view);
        // Still under the append lock, so in seq order; after the tail and
        // the view know the entry, since another publish may make it visible.
        if !unordered {
            if let Some(mark) = self.store.durability_mark() {
                rt.note_unflushed(seq, mark);
            }
        }
        Ok(Appended { seq, welcome_ids })
    }

    /// Makes an append durable, then visible: `new_readers` (the users a commit
    /// adds) start reading after it, and its Welcomes are held back from the
    /// inbox until they are durable.
    pub(super) async fn publish(
        &self,
        rt: &GroupRt,
        appended: &Appended,
        kind: &'static str,
        new_readers: &[String],
    ) -> Result<(), DsError> {
        let ids = &appended.welcome_ids;
        if let Ok(mut p) = self.pending_welcomes.lock() {
            p.extend(ids.iter().copied());
        }
        let durable = async {
            for u in new_readers {
                self.store.set_cursor(rt.internal_id, u, appended.seq).await?;
            }
            self.persist().await
        }
        .await;
        if let Ok(mut p) = self.pending_welcomes.lock() {
            for id in ids {
                p.remove(id);
            }
        }
        durable?;
        let mut visible = appended.seq;
        if self.store.shared() {
            // A batch's appends complete together (`store::pg_batch`): let
            // the others record theirs, then make everything this replica
            // has appended visible at once, so that followers wake once per
            // batch rather than once per message. Everything below the
            // view's next seq is committed.
            tokio::task::yield_now().await;
            visible = visible.max(rt.view()?.next_seq.saturating_sub(1));
        } else {
            // The same fsync made this group's other appends of the batch
            // durable: make them visible now, so that followers wake once
            // per batch rather than once per message.
            visible = rt.durable_through(visible, |mark| self.store.is_durable(mark));
        }
        rt.advance_visible(visible);
        if !ids.is_empty() {
            self.welcomes.send_modify(|v| *v += 1);
        }
        self.metrics.stored_messages.inc();
        self.metrics.count_accepted(kind);
        Ok(())
    }

    /// Accepts a proposal (PublicMessage) or an application message
    /// (PrivateMessage) into a group's log.
    pub async fn post_message(
        &self,
        user: &str,
        gid: &GroupId,
        body: bytes::Bytes,
    ) -> Result<api::PostedResponse, DsError> {
        let gid = gid.as_bytes();
        let protocol: ProtocolMessage = match parse_mls(&body)? {
            MlsMessageBodyIn::PrivateMessage(pm) => pm.into(),
            MlsMessageBodyIn::PublicMessage(pm) => pm.into(),
            other => {
                return Err(DsError::WrongMessageType(format!(
                    "expected a PublicMessage proposal or a PrivateMessage, got a {}",
                    body_name(&other)
                )))
            }
        };
        let private = protocol.wire_format() == WireFormat::PrivateMessage;
        match (private, protocol.content_type()) {
            (true, ContentType::Application) | (false, ContentType::Proposal) => {}
            (true, other) => {
                return Err(DsError::WrongWireFormat(format!(
                    "a {} must be sent as PublicMessage so the DS can validate it",
                    content_type_name(other)
                )))
            }
            (false, ContentType::Application) => {
                return Err(DsError::WrongWireFormat("application messages must be PrivateMessage".into()))
            }
            (false, ContentType::Commit) => {
                return Err(DsError::WrongMessageType(
                    "commits go to POST /v1/groups/{id}/commits as a commit bundle".into(),
                ))
            }
        }
        if protocol.group_id().as_slice() != gid {
            return Err(DsError::GroupIdMismatch);
        }
        let rt = self.group(gid).await?;
        // One copy out of the request buffer: the body may be a slice of
        // hyper's read buffer, which the tail cache would otherwise pin.
        let body = bytes::Bytes::copy_from_slice(&body);
        if private {
            self.append_application(user, &rt, protocol.epoch().as_u64(), body).await
        } else {
            self.append_proposal(user, &rt, body).await
        }
    }

    async fn append_application(
        &self,
        user: &str,
        rt: &GroupRt,
        epoch: u64,
        message: bytes::Bytes,
    ) -> Result<api::PostedResponse, DsError> {
        let window = self.limits.app_epoch_window;
        let mut tries = 0;
        let appended = loop {
            let check = |view: &GroupView| {
                if !view.members.contains_key(user) {
                    return Err(DsError::NotAMember);
                }
                let current = view.record.epoch;
                if epoch > current {
                    return Err(DsError::WrongEpoch { current, got: epoch });
                }
                if epoch.saturating_add(window) < current {
                    return Err(DsError::StaleEpoch { current, got: epoch });
                }
                Ok(())
            };
            match self.append(rt, EntryKind::Application, epoch, message.clone(), Change::Log, check).await {
                Err(e) if self.may_be_stale(&e, tries) => {
                    tries += 1;
                    if !self.refresh_unlocked(rt).await? && !matches!(e, DsError::Stale(_)) {
                        return Err(e);
                    }
                }
                other => break other?,
            }
        };
        self.publish(rt, &appended, "application", &[]).await?;
        Ok(api::PostedResponse { seq: appended.seq, epoch })
    }

    /// Whether a refusal may come from this replica's view of the group being
    /// behind the store (another replica appended), so that a refresh and a
    /// retry may succeed: always for [`DsError::Stale`] (a few times), once
    /// for a membership or epoch refusal on a shared store.
    pub(super) fn may_be_stale(&self, e: &DsError, tries: u32) -> bool {
        match e {
            DsError::Stale(_) => tries < STALE_RETRIES,
            DsError::NotAMember | DsError::WrongEpoch { .. } => tries == 0 && self.store.shared(),
            _ => false,
        }
    }

    async fn append_proposal(
        &self,
        user: &str,
        rt: &GroupRt,
        message: bytes::Bytes,
    ) -> Result<api::PostedResponse, DsError> {
        let mut public = rt.commit_lock.lock().await;
        let mut tries = 0;
        loop {
            match self.try_proposal(user, rt, &mut public, &message).await {
                Err(e) if self.may_be_stale(&e, tries) => {
                    tries += 1;
                    if !self.refresh(rt, &mut public).await? && !matches!(e, DsError::Stale(_)) {
                        return Err(e);
                    }
                }
                Ok((appended, epoch)) => {
                    self.publish(rt, &appended, "proposal", &[]).await?;
                    return Ok(api::PostedResponse { seq: appended.seq, epoch });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt at a proposal, under the commit lock: validate, queue it
    /// on a copy of the state, append.
    async fn try_proposal(
        &self,
        user: &str,
        rt: &GroupRt,
        public: &mut PublicState,
        message: &bytes::Bytes,
    ) -> Result<(Appended, u64), DsError> {
        let protocol: ProtocolMessage = match parse_mls(message)? {
            MlsMessageBodyIn::PublicMessage(pm) => pm.into(),
            _ => return Err(DsError::Internal("a checked proposal no longer parses".into())),
        };
        let (epoch, queued) = self.validate_proposal(user, rt, public, protocol).await?;
        let new_storage = clone_storage(&public.storage)?;
        if let Err(e) = public.group.add_proposal(&new_storage, queued) {
            self.reload_public(public, &rt.group_id)?;
            return Err(DsError::Internal(format!("queueing proposal: {e}")));
        }
        let state = serialize_public_state(&new_storage)?;
        match self.append(rt, EntryKind::Proposal, epoch, message.clone(), Change::State(state), |_| Ok(())).await {
            Ok(a) => {
                public.storage = new_storage;
                Ok((a, epoch))
            }
            Err(e) => {
                self.reload_public(public, &rt.group_id)?;
                Err(e)
            }
        }
    }

    fn read_access(&self, user: &str, rt: &GroupRt) -> Result<ReadAccess, DsError> {
        let visible = *rt.visible.borrow();
        let view = rt.view()?;
        if view.members.contains_key(user) {
            return Ok(ReadAccess { up_to: visible, removed_at: None });
        }
        // A device of a user upgraded from a single key reads through that
        // user's single-key leaf (mailbox: the bare name) until it has its
        // own leaf (`docs/identity.md`, "Upgrading").
        let (name, device) = grove_proto::identity::split_mailbox(user);
        if device.is_some() && view.members.contains_key(name) {
            return Ok(ReadAccess { up_to: visible, removed_at: None });
        }
        match view.removed.get(user) {
            Some(&at) => Ok(ReadAccess { up_to: visible.min(at), removed_at: Some(at) }),
            None => Err(DsError::NotAMember),
        }
    }

    /// [`Ds::read_access`], after a refresh from the store if this replica's
    /// view may be behind (a member another replica just added).
    async fn fresh_access(&self, user: &str, rt: &GroupRt) -> Result<ReadAccess, DsError> {
        match self.read_access(user, rt) {
            Err(e) if self.may_be_stale(&e, 0) => {
                self.refresh_unlocked(rt).await?;
                self.read_access(user, rt)
            }
            other => other,
        }
    }

    /// Log entries after `after`, waiting up to `wait` for new ones. Recent
    /// entries come from the group's in-memory tail, older ones from the store.
    pub async fn fetch_page(
        &self,
        user: &str,
        gid: &GroupId,
        after: u64,
        limit: Option<usize>,
        wait: Duration,
    ) -> Result<LogPage, DsError> {
        let gid = gid.as_bytes();
        let limit = self.page_params(limit, wait)?;
        let rt = self.group(gid).await?;
        let mut visible_rx = rt.visible.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let mut first = true;
        loop {
            let access = if first { self.fresh_access(user, &rt).await? } else { self.read_access(user, &rt)? };
            first = false;
            visible_rx.borrow_and_update();
            let cached = rt.tail.lock().ok().and_then(|t| t.range(after, access.up_to, limit));
            let entries = match cached {
                Some(e) => e,
                None => {
                    // Older than the cached tail: a store scan, off the async workers.
                    let (id, up_to) = (rt.internal_id, access.up_to);
                    let stored = self.store.fetch_after(id, after, up_to, limit).await?;
                    stored.into_iter().map(Arc::new).collect()
                }
            };
            let done = !entries.is_empty()
                || wait.is_zero()
                || access.removed_at.is_some_and(|at| after >= at)
                || *shutdown.borrow();
            if done {
                return Ok(LogPage { entries, last_seq: access.up_to, removed_at: access.removed_at });
            }
            tokio::select! {
                r = visible_rx.changed() => { if r.is_err() { return Err(DsError::ShuttingDown); } }
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(LogPage { entries: Vec::new(), last_seq: access.up_to, removed_at: access.removed_at });
                }
            }
        }
    }

    /// A receiver that changes when the group's log grows (for streams).
    pub async fn subscribe(&self, user: &str, gid: &GroupId) -> Result<watch::Receiver<u64>, DsError> {
        let gid = gid.as_bytes();
        let rt = self.group(gid).await?;
        self.fresh_access(user, &rt).await?;
        Ok(rt.visible.subscribe())
    }

    /// Records that `user` has processed the log through `seq`.
    pub async fn ack(&self, user: &str, gid: &GroupId, seq: u64) -> Result<u64, DsError> {
        let gid = gid.as_bytes();
        let rt = self.group(gid).await?;
        let mut access = self.fresh_access(user, &rt).await?;
        if seq > access.up_to && self.refresh_unlocked(&rt).await? {
            access = self.read_access(user, &rt)?;
        }
        if seq > access.up_to {
            return Err(DsError::AckBeyondLog { seq, last: access.up_to });
        }
        let c = self.store.set_cursor(rt.internal_id, user, seq).await?;
        self.persist().await?;
        Ok(c)
    }
}

/// The group record and removal map after a commit at `seq`.
fn commit_record(view: &GroupView, seq: u64, c: &CommitChange) -> (GroupRecord, HashMap<String, u64>) {
    let mut record = view.record.clone();
    record.epoch = c.epoch;
    record.public_state = c.state.clone().into();
    if let Some(gi) = &c.group_info {
        record.group_info = gi.clone();
    }
    let mut removed = view.removed.clone();
    for u in &c.removed_now {
        removed.insert(u.clone(), seq);
    }
    for u in c.members.keys() {
        removed.remove(u);
    }
    record.removed =
        removed.iter().map(|(u, s)| RemovedMember { user: u.as_bytes().to_vec().into(), seq: *s }).collect();
    (record, removed)
}
