//! Sync: Welcomes (joins), then each group's log from its cursor, one entry
//! per transaction: decoded, then applied as an own echo, an own commit
//! accepted before a crash, someone's commit or proposal, or an application
//! message.

use grove_proto as proto;
use openmls::prelude::*;
use tls_codec::Deserialize as _;

use super::commit::CommitOp;
use super::groups::join_config;
use super::resources::Origin;
use super::{b64url, hash, identity_of, Client, SyncReport, PAGE};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{Envelope, GroupRecord, GroupState, HistoryPolicy, StoredMessage};
use crate::repo::Repo;
use crate::storage::TxnProvider;

/// A log entry as an MLS protocol message, if it is one.
fn decode_entry(m: &proto::MessageOut) -> Option<ProtocolMessage> {
    MlsMessageIn::tls_deserialize_exact(&m.message).ok().and_then(|msg| msg.try_into_protocol_message().ok())
}

/// What processing one log entry led to.
enum Step {
    /// Go on with the next entry.
    Next,
    /// This client learned it was removed.
    Left,
    /// The entry (a handshake message) cannot be processed: the cursor moved
    /// past it and the group is marked for a resync. `blame` is set (with
    /// openmls's reason) when the commit itself is bad in a way the DS cannot
    /// check, so it is reported.
    Stuck { blame: Option<String> },
}

/// Whether the entry was sent from this client's own leaf (a restored home
/// meets its own later commits, which it cannot process: not the sender's fault).
fn own_leaf_sent(g: &MlsGroup, m: &proto::MessageOut) -> bool {
    match decode_entry(m) {
        Some(ProtocolMessage::PublicMessage(pm)) => *pm.sender() == Sender::Member(g.own_leaf_index()),
        _ => false,
    }
}

/// Whether a handshake message failed on a check only members can make (the
/// membership tag, the confirmation tag, the update path): the sender's
/// fault, not this client's state.
fn committer_at_fault<E>(e: &ProcessMessageError<E>) -> bool {
    use openmls::group::StageCommitError as S;
    match e {
        ProcessMessageError::ValidationError(v) => {
            matches!(v, ValidationError::InvalidMembershipTag | ValidationError::MissingMembershipTag)
        }
        ProcessMessageError::InvalidCommit(c) => matches!(
            c,
            S::ConfirmationTagMismatch
                | S::ConfirmationTagMissing
                | S::UpdatePathError(_)
                | S::VerifiedUpdatePathError(_)
                | S::PathLeafNodeVerificationFailure
        ),
        _ => false,
    }
}

impl Client {
    /// Fetches Welcomes (joins), then each group's log from its cursor:
    /// processes entries in order, merges commits, stores messages, acks.
    /// Commits pending proposals (such as a member's leave request). Tops up
    /// KeyPackages after joining.
    pub async fn sync(&self) -> Result<SyncReport> {
        let _op = self.ops.lock().await;
        let mut report = SyncReport::default();
        self.sync_welcomes(&mut report).await?;
        for gid in self.repo().groups().ids()? {
            if self.group_record(&gid)?.state == GroupState::Left {
                continue;
            }
            match self.sync_group(&gid, &mut report).await {
                Ok(()) => {}
                Err(e @ (Error::Mls { .. } | Error::ResyncNeeded { .. })) => {
                    tracing::warn!(group = %b64url(&gid), error = %e, "group log cannot be processed");
                    report.errors.push(format!("{}: {e}", b64url(&gid)));
                    continue;
                }
                Err(e) => return Err(e),
            }
            if self.group_record(&gid)?.rollback.is_none() {
                self.commit_pending_proposals(&gid, &mut report).await?;
                if self.remove_replaced_devices(&gid).await? {
                    report.old_devices_removed.push(b64url(&gid));
                }
            }
            if self.update_if_due_after(&gid).await {
                report.self_updated.push(b64url(&gid));
            }
        }
        // An upgraded single-key home: this device takes the old key's place.
        self.replace_legacy_leaves(&mut report).await?;
        if !report.joined.is_empty() {
            self.ensure_key_packages().await?;
        }
        self.report_rollbacks(&mut report)?;
        self.report_forks(&mut report)?;
        self.kt_finish_sync(&mut report).await;
        Ok(report)
    }

    /// Commits the proposals others made in an active group (such as a leave request).
    async fn commit_pending_proposals(&self, gid: &[u8], report: &mut SyncReport) -> Result<()> {
        if self.group_record(gid)?.state != GroupState::Active {
            return Ok(());
        }
        let has_pending = self
            .provider
            .transaction(|p| -> Result<bool> { Ok(Self::load(p, gid)?.pending_proposals().next().is_some()) })?;
        if has_pending && self.commit(gid, "commit pending proposals", CommitOp::Pending).await?.committed {
            report.proposals_committed += 1;
        }
        Ok(())
    }

    async fn sync_welcomes(&self, report: &mut SyncReport) -> Result<()> {
        let page = self.ds.welcomes(0).await?;
        for w in page.welcomes {
            match self.join_from_welcome(&w) {
                Ok(Some(gid)) => report.joined.push(b64url(&gid)),
                Ok(None) => {}
                Err(Error::Mls { op, cause, .. }) => {
                    tracing::warn!(welcome = w.id, op, cause, "dropping a Welcome that cannot be processed");
                    report.failed_welcomes += 1;
                }
                Err(e) => return Err(e),
            }
            self.ds.delete_welcome(w.id).await?;
        }
        Ok(())
    }

    fn join_from_welcome(&self, w: &proto::WelcomeOut) -> Result<Option<Vec<u8>>> {
        let gid = w.group_id.as_bytes().to_vec();
        self.provider.transaction(|p| -> Result<Option<Vec<u8>>> {
            let repo = Repo::of(p);
            let existing = repo.groups().get(&gid)?;
            if existing.as_ref().is_some_and(|r| r.state != GroupState::Left) {
                return Ok(None);
            }
            let msg = MlsMessageIn::tls_deserialize_exact(&w.message).mls("decode the Welcome")?;
            let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
                return Err(Error::mls_because("join", "not a Welcome".into()));
            };
            if let Some(lr) = repo.meta().last_resort()? {
                if welcome.secrets().iter().any(|sec| sec.new_member().as_slice() == lr.as_slice()) {
                    repo.meta().set_last_resort_used(true)?;
                }
            }
            let s = p.storage();
            if let Some(mut old) = MlsGroup::load(s, &GroupId::from_slice(&gid))? {
                old.delete(s)?; // re-added after a removal: start over, keep the history records
            }
            let group = StagedWelcome::new_from_welcome(p, &join_config(), welcome, None)
                .mls("process the Welcome")?
                .into_group(p)
                .mls("join")?;
            if group.group_id().as_slice() != gid.as_slice() {
                return Err(Error::Protocol("Welcome for another group id than announced".into()));
            }
            let history = existing.as_ref().map_or(HistoryPolicy::None, |r| r.history);
            let name = existing.as_ref().and_then(|r| r.name.clone());
            let rec = GroupRecord {
                cursor: existing.as_ref().map_or(0, |r| r.cursor),
                next_local: existing.as_ref().map_or(0, |r| r.next_local),
                update_policy: existing.as_ref().map(|r| r.update_policy).unwrap_or_default(),
                ..GroupRecord::fresh(name, group.epoch().as_u64(), history, self.now_secs())
            };
            repo.groups().put(&gid, &rec)?;
            self.pin_members(p, &group)?;
            Ok(Some(gid.clone()))
        })
    }

    /// Processes one group's log from its cursor to the end.
    pub(super) async fn sync_group(&self, gid: &[u8], report: &mut SyncReport) -> Result<()> {
        self.fetch_and_apply(gid, report).await?;
        let rec = self.group_record(gid)?;
        if rec.announce_name && rec.state == GroupState::Active && rec.fork.is_none() && rec.rollback.is_none() {
            // Boxed: sending may sync again (on a lost race), which may land here.
            // The added users are not known here (the add was recovered from the log).
            Box::pin(self.announce_to_new_members(gid, &[])).await?;
            self.provider.transaction(|p| Repo::of(p).groups().update_if_present(gid, |r| r.announce_name = false))?;
        }
        self.resend_unconfirmed(gid).await?;
        // A pending commit that is not in the log after a full fetch was not
        // accepted: discard it so the group can move on.
        if self.repo().pending().exists(gid)? && self.group_record(gid)?.state != GroupState::Left {
            self.discard_pending_commit(gid)?;
        }
        Ok(())
    }

    /// Fetches the log page by page from the cursor, applies each entry and
    /// acks, until its end or until this client learns it left.
    async fn fetch_and_apply(&self, gid: &[u8], report: &mut SyncReport) -> Result<()> {
        let gpath = b64url(gid);
        loop {
            if self.group_record(gid)?.state == GroupState::Left || !self.resync_if_needed(gid, report).await? {
                return Ok(());
            }
            let rec = self.group_record(gid)?; // after a resync, its cursor is the external commit
            if rec.state == GroupState::Left {
                return Ok(());
            }
            let page = match self.ds.fetch(&gpath, rec.cursor, PAGE).await {
                Ok(p) => p,
                Err(Error::Server { status: 403, code: proto::ErrorCode::NotAMember, .. }) => {
                    self.set_state(gid, GroupState::Left)?;
                    report.left.push(gpath.clone());
                    return Ok(());
                }
                Err(Error::Server { status: 404, code: proto::ErrorCode::UnknownGroup, .. }) => {
                    self.flag_rollback(gid, "the DS does not know this group any more".into(), None)?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if page.last_seq < rec.cursor {
                let detail = format!(
                    "the DS's log ends at seq {}, but this client has already processed it through seq {}",
                    page.last_seq, rec.cursor
                );
                self.flag_rollback(gid, detail, Some(page.last_seq))?;
                return Ok(());
            }
            if self.missed_pruned_commits(gid, rec.cursor, &page).await? {
                continue;
            }
            let Some(last) = page.messages.last().map(|m| m.seq) else { return Ok(()) };
            for m in &page.messages {
                match self.process_entry(gid, m, report)? {
                    Step::Next => {}
                    Step::Left => {
                        report.left.push(gpath.clone());
                        break;
                    }
                    Step::Stuck { blame } => {
                        if let Some(cause) = blame {
                            self.report_bad_commit(gid, m, &cause, report).await;
                        }
                        break;
                    }
                }
            }
            if self.group_record(gid)?.resync.is_some() {
                continue; // resync, then go on from the external commit
            }
            let rec = self.group_record(gid)?;
            self.ds.ack(&gpath, rec.cursor).await?;
            if last >= page.last_seq || self.group_record(gid)?.state == GroupState::Left {
                return Ok(());
            }
        }
    }

    /// Whether the page shows that entries this client has not processed were
    /// pruned (past the DS's retention, or withheld) and the group has moved
    /// past this client's epoch since: then the group is marked for a resync
    /// and true returned (true also means "fetch again"). After a hole, the
    /// page's entries are looked at in order: one of a later epoch than this
    /// client's, before any commit of its epoch, means commits were missed
    /// (entries of earlier epochs are a new member's pre-join history, or late
    /// messages). Pruned entries of the current epoch are skipped.
    async fn missed_pruned_commits(&self, gid: &[u8], cursor: u64, page: &proto::MessagesPage) -> Result<bool> {
        let epoch = self.group(gid)?.epoch().as_u64();
        let (moved_on, gap_end) = match page.messages.first() {
            Some(first) if first.seq > cursor.saturating_add(1) => {
                let later = page
                    .messages
                    .iter()
                    .take_while(|m| !(m.kind.is_handshake() && m.epoch == epoch))
                    .any(|m| m.epoch > epoch);
                (later, first.seq - 1)
            }
            Some(_) => return Ok(false),
            None if page.last_seq > cursor => match self.ds.group(&b64url(gid)).await {
                // The log grew since the page was read: read it again.
                Ok(g) if g.last_seq > page.last_seq => return Ok(true),
                Ok(g) => (g.epoch > epoch, page.last_seq),
                // Removed while the log it would learn it from aged out: the
                // resync attempt is refused, and the group is left.
                Err(Error::Server { status: 403, code: proto::ErrorCode::NotAMember, .. }) => (true, page.last_seq),
                Err(e) => return Err(e),
            },
            None => return Ok(false),
        };
        if !moved_on {
            if page.messages.is_empty() {
                self.provider.transaction(|p| Repo::of(p).groups().update(gid, |r| r.cursor = gap_end).map(drop))?;
            }
            return Ok(false);
        }
        let reason = format!(
            "log entries {} to {gap_end} are gone (past the DS's retention, or withheld) and the group moved on from epoch {epoch}",
            cursor + 1,
        );
        self.provider.transaction(|p| Self::mark_resync(p, gid, cursor, reason))?;
        Ok(true)
    }

    /// Processes one log entry in one transaction (state, history and cursor
    /// together).
    fn process_entry(&self, gid: &[u8], m: &proto::MessageOut, report: &mut SyncReport) -> Result<Step> {
        self.provider.transaction(|p| -> Result<Step> {
            let groups = Repo::of(p).groups();
            let mut rec = groups.require(gid)?;
            if m.seq <= rec.cursor {
                return Ok(Step::Next);
            }
            let before = rec.cursor;
            rec.cursor = m.seq;
            let step = self.apply_entry(p, gid, &mut rec, m, report)?;
            groups.put(gid, &rec)?;
            if let Step::Stuck { blame } = &step {
                let reason = match blame {
                    Some(cause) => format!("the commit at log entry {} cannot be processed: {cause}", m.seq),
                    None => format!("log entry {} does not fit this client's state of the group", m.seq),
                };
                Self::mark_resync(p, gid, before, reason)?;
            }
            Ok(step)
        })
    }

    /// Applies a new log entry to the group's state and `rec` (written by the
    /// caller).
    fn apply_entry(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        rec: &mut GroupRecord,
        m: &proto::MessageOut,
        report: &mut SyncReport,
    ) -> Result<Step> {
        let outbox = Repo::of(p).outbox();
        let h = hash(&m.message);
        if let Some(own) = outbox.get(&h)? {
            // Our own message or proposal echoed back. Confirming it may
            // change the group record (a history policy), so `rec` is read
            // again afterwards, keeping the new cursor.
            self.confirm_outbox_entry(p, gid, &own, m.seq)?;
            outbox.remove(&h)?;
            *rec = GroupRecord { cursor: rec.cursor, ..Repo::of(p).groups().require(gid)? };
            return Ok(Step::Next);
        }
        let mut g = Self::load(p, gid)?;
        if self.settle_pending_commit(p, gid, &mut g, rec, m)? {
            return Ok(Step::Next);
        }
        let skip = if m.kind.is_handshake() { m.epoch < g.epoch().as_u64() } else { m.epoch < rec.joined_epoch };
        if skip {
            return Ok(Step::Next);
        }
        let pm = decode_entry(m);
        // Fork evidence is read before decryption (a message from another
        // branch of a fork cannot be decrypted here): its epoch, from the
        // message itself, and its tag. See `fork.rs`.
        let private = match &pm {
            Some(whole @ ProtocolMessage::PrivateMessage(pm)) => Some((whole.epoch().as_u64(), pm.aad().to_vec())),
            _ => None,
        };
        match pm.map(|pm| g.process_message(p, pm)) {
            Some(Ok(processed)) => {
                if let Some((epoch, aad)) = &private {
                    let sender = identity_of(processed.credential());
                    Self::check_fork_tag(&g, rec, m.seq, *epoch, aad, Some(&sender));
                    self.kt_note_gossip(&sender, super::fork::split_aad(aad).1);
                }
                self.apply_processed(p, &mut g, rec, m, processed, report).map(|left| {
                    if left {
                        Step::Left
                    } else {
                        Step::Next
                    }
                })
            }
            Some(Err(e)) if m.kind == proto::EntryKind::Application => {
                if let Some((epoch, aad)) = &private {
                    Self::check_undecryptable(&g, rec, m.seq, *epoch, aad, &e);
                }
                tracing::debug!(seq = m.seq, error = ?e, "skipping an undecryptable application message");
                report.undecryptable += 1;
                Ok(Step::Next)
            }
            Some(Err(e)) => {
                tracing::warn!(seq = m.seq, error = %e, "a handshake message cannot be processed");
                let own = own_leaf_sent(&g, m);
                Ok(Step::Stuck { blame: (!own && committer_at_fault(&e)).then(|| e.to_string()) })
            }
            None => {
                tracing::warn!(seq = m.seq, "skipping a log entry that is not an MLS protocol message");
                report.undecryptable += 1;
                Ok(Step::Next)
            }
        }
    }

    /// Resolves the own pending commit against a commit entry of its epoch:
    /// merges it if the entry is that commit (accepted before a crash) and
    /// returns true; discards it if another commit won.
    fn settle_pending_commit(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        g: &mut MlsGroup,
        rec: &mut GroupRecord,
        m: &proto::MessageOut,
    ) -> Result<bool> {
        let pending = Repo::of(p).pending();
        let Some(pc) = pending.get(gid)? else { return Ok(false) };
        if m.kind != proto::EntryKind::Commit || pc.epoch != m.epoch {
            return Ok(false);
        }
        if pc.commit != m.message {
            g.clear_pending_commit(p.storage())?;
            pending.remove(gid)?;
            return Ok(false);
        }
        if g.pending_commit().is_some_and(|c| c.add_proposals().next().is_some()) {
            rec.announce_name = true;
        }
        self.note_own_commit(g, rec);
        g.merge_pending_commit(p).mls("merge the own commit")?;
        pending.remove(gid)?;
        self.pin_members(p, g)?;
        Ok(true)
    }

    /// Applies a message openmls processed. Returns whether this client
    /// learned it was removed.
    fn apply_processed(
        &self,
        p: &TxnProvider<'_>,
        g: &mut MlsGroup,
        rec: &mut GroupRecord,
        m: &proto::MessageOut,
        processed: ProcessedMessage,
        report: &mut SyncReport,
    ) -> Result<bool> {
        let sender = identity_of(processed.credential());
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(a) => {
                let at = Origin { sender: &sender, seq: m.seq, epoch: m.epoch };
                let gid = g.group_id().as_slice();
                match serde_json::from_slice::<Envelope>(&a.into_bytes()) {
                    Ok(env) => self.apply_envelope(p, gid, rec, &at, env, report)?,
                    Err(e) => {
                        tracing::info!(seq = m.seq, error = %e, "skipping a message that is not a Grove envelope");
                        report.unknown_format += 1;
                    }
                }
            }
            ProcessedMessageContent::ProposalMessage(q) => g.store_pending_proposal(p.storage(), *q)?,
            ProcessedMessageContent::StagedCommitMessage(sc) => {
                g.merge_staged_commit(p, *sc).mls("merge a commit")?;
                if !g.is_active() {
                    rec.state = GroupState::Left;
                    return Ok(true);
                }
                self.pin_members(p, g)?;
            }
            ProcessedMessageContent::OwnPendingCommit => {
                self.note_own_commit(g, rec);
                g.merge_pending_commit(p).mls("merge the own commit")?;
                Repo::of(p).pending().remove(g.group_id().as_slice())?;
            }
            ProcessedMessageContent::OwnPrivateMessage | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {}
        }
        Ok(false)
    }

    /// Applies a decrypted envelope sent from `at`: a text message joins the
    /// history, a group name or policy updates `rec`, a resource envelope the
    /// resource records (a bad one is counted and skipped).
    fn apply_envelope(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        rec: &mut GroupRecord,
        at: &Origin<'_>,
        env: Envelope,
        report: &mut SyncReport,
    ) -> Result<()> {
        let repo = Repo::of(p);
        match env {
            Envelope::Text { text } => {
                let local = rec.next_local;
                rec.next_local += 1;
                let sm = StoredMessage {
                    seq: Some(at.seq),
                    epoch: at.epoch,
                    sender: at.sender.to_owned(),
                    text,
                    own: false,
                };
                repo.messages().put(gid, local, &sm)?;
                report.messages += 1;
            }
            Envelope::Successor { predecessor } => {
                self.apply_successor_link(p, gid, at.sender, &predecessor, report)?;
            }
            Envelope::GroupName { name, history } => {
                rec.name = Some(name);
                if let Some(h) = history {
                    rec.history = h;
                }
            }
            env => {
                // Resource records; a policy change also updates `rec`.
                if let Envelope::HistoryPolicy { policy, .. } = &env {
                    rec.history = *policy;
                }
                repo.groups().put(gid, rec)?;
                match self.apply_resource_envelope(p, gid, &env, at) {
                    Ok(()) => {}
                    Err(Error::Protocol(reason)) => {
                        tracing::warn!(seq = at.seq, reason, "ignoring a bad resource message");
                        report.unknown_format += 1;
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(())
    }
}
