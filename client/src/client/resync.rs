//! Resync: rejoining a group whose log this client can no longer follow, by
//! an external commit that replaces its own leaf (RFC 9420 §12.4.3.2).
//!
//! A client needs it when it was offline past the DS's retention (the log it
//! missed is gone), when its home was restored from an old copy (its state is
//! behind, or at a branch the group left), or when a commit cannot be
//! processed (see `client/recovery.rs`, which reports a bad commit first). The
//! need is recorded in the group record (`resync`) in the same transaction
//! that moves the cursor past what could not be processed, so it survives a
//! crash; sending into the group is refused until the resync is done.
//!
//! The resync itself: fetch the group's latest GroupInfo (members only),
//! build the external commit on it (the group's own data stays: history,
//! resources, name), post it through the normal commit path (`409` on a lost
//! race: back off, fetch the new GroupInfo, build again), and once the DS has
//! accepted it go on from its position in the log. An answer lost on the way
//! (network, crash) is settled by the next sync, which looks for the posted
//! commit in the log before building another.

use grove_proto as proto;
use openmls::prelude::*;
use tls_codec::{Deserialize as _, Serialize as _};

use super::groups::join_config;
use super::{b64url, identity_of, Client, SyncReport, PAGE};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{GroupState, PendingCommit, ResyncRecord};
use crate::repo::Repo;
use crate::storage::TxnProvider;

/// What one resync did, for the sync report and the user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResyncInfo {
    /// The group id.
    pub group: String,
    /// The epoch the group is at after the resync.
    pub epoch: u64,
    /// Log entries between the last one this client processed and its
    /// external commit: messages and commits it will never read.
    pub missed: u64,
    /// Why it was needed.
    pub reason: String,
}

impl std::fmt::Display for ResyncInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "resynced group {} at epoch {} (missed {} messages)", self.group, self.epoch, self.missed)
    }
}

impl Client {
    /// Records that `gid` must be resynced, in transaction `p`: why, and from
    /// which cursor (the entries after it that this client never processed).
    pub(super) fn mark_resync(p: &TxnProvider<'_>, gid: &[u8], from_cursor: u64, reason: String) -> Result<()> {
        Repo::of(p).groups().update(gid, |r| {
            if r.resync.is_none() {
                r.resync = Some(ResyncRecord { reason, from_cursor, posted: None });
            }
        })?;
        Ok(())
    }

    /// Rejoins `gid` by an external commit if its record says it must; see
    /// the module documentation. Returns whether this client is still a
    /// member (false: the DS refused it as a non-member, the group is left).
    pub(super) async fn resync_if_needed(&self, gid: &[u8], report: &mut SyncReport) -> Result<bool> {
        let gpath = b64url(gid);
        let Some(first) = self.group_record(gid)?.resync else { return Ok(true) };
        if let Some(posted) = &first.posted {
            if let Some(seq) = self.find_in_log(gid, &posted.commit).await? {
                self.finish_resync(gid, seq, report)?;
                return Ok(true);
            }
        }
        let mut backoff = self.backoff();
        let mut last_gi: Option<Vec<u8>> = None;
        loop {
            let gi = match self.ds.group_info(&gpath).await {
                Ok(gi) => gi,
                Err(Error::Server { status: 403, code: proto::ErrorCode::NotAMember, .. }) => {
                    self.left_instead_of_resync(gid, report)?;
                    return Ok(false);
                }
                Err(Error::Server { status: 404, code: proto::ErrorCode::UnknownGroup, .. }) => {
                    self.flag_rollback(gid, "the DS does not know this group any more".into(), None)?;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            if last_gi.as_deref() == Some(gi.as_slice()) {
                // Refused as stale, and the DS has nothing newer: the last
                // commit came without a GroupInfo. No state to resync from.
                let why = "the DS has no GroupInfo of the group's current epoch (its last commit, accepted by an \
                           earlier DS release, carried none); wait for a member's next commit, replace the group \
                           (`grove group successor`) or ask a member to re-add you";
                return Err(self.resync_failed(gid, why.into())?);
            }
            last_gi = Some(gi.clone());
            let body = match self.provider.transaction(|p| self.stage_resync(p, gid, &gi)) {
                Ok(b) => b,
                Err(e) => return Err(self.resync_failed(gid, format!("building the external commit failed: {e}"))?),
            };
            match self.ds.post_commit(&gpath, body).await {
                Ok(posted) => {
                    self.finish_resync(gid, posted.seq, report)?;
                    return Ok(true);
                }
                Err(Error::Server { status: 409, .. }) => {
                    // Another commit won: the GroupInfo is outdated; build on the new one.
                    if !backoff.pause().await {
                        return Err(self.resync_failed(gid, backoff.exhausted("resync").to_string())?);
                    }
                }
                Err(Error::Server { status: 403, code: proto::ErrorCode::NotAMember, .. }) => {
                    self.left_instead_of_resync(gid, report)?;
                    return Ok(false);
                }
                Err(e @ Error::Server { status: 400..=499, .. }) => {
                    return Err(self.resync_failed(gid, format!("the DS refused the external commit: {e}"))?);
                }
                // Unknown outcome: `posted` stays; the next sync settles it.
                Err(e) => return Err(e),
            }
        }
    }

    /// Builds the external commit on the GroupInfo `gi` in `p`, replacing the
    /// group's MLS state (the app's records stay), and records it as posted.
    /// Returns the DS's commit bundle body.
    fn stage_resync(&self, p: &TxnProvider<'_>, gid: &[u8], gi: &[u8]) -> Result<Vec<u8>> {
        let msg = MlsMessageIn::tls_deserialize_exact(gi).mls("decode the group's GroupInfo")?;
        let MlsMessageBodyIn::GroupInfo(vgi) = msg.extract() else {
            return Err(Error::Protocol("the DS's group-info is not a GroupInfo".into()));
        };
        if vgi.group_id().as_slice() != gid {
            return Err(Error::Protocol("the DS's GroupInfo is for another group".into()));
        }
        let epoch = vgi.epoch().as_u64();
        let signer_index = group_info_signer(&vgi)?;
        let s = p.storage();
        let mut known = Vec::new();
        if let Some(mut old) = MlsGroup::load(s, &GroupId::from_slice(gid))? {
            known = old.members().map(|m| (identity_of(&m.credential), m.signature_key)).collect();
            old.delete(s)?;
        }
        let (group, commit, body) = self.external_commit(p, vgi)?;
        self.check_group_info_signer(p, &group, signer_index, &known)?;
        Repo::of(p).groups().update(gid, |r| {
            if let Some(rs) = r.resync.as_mut() {
                rs.posted = Some(PendingCommit { commit, epoch });
            }
        })?;
        Ok(body)
    }

    /// Builds, in `p`, an external commit on `vgi` that gives this device a
    /// leaf (a resync, or a new device joining): the new group state, the
    /// commit's bytes, and the DS's commit bundle body. Leaf lifetimes are
    /// not checked again: the DS checked each leaf when it entered the
    /// group, and a group outlives its KeyPackages' lifetimes.
    pub(super) fn external_commit(
        &self,
        p: &TxnProvider<'_>,
        vgi: openmls::messages::group_info::VerifiableGroupInfo,
    ) -> Result<(MlsGroup, Vec<u8>, Vec<u8>)> {
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .skip_lifetime_validation()
            .build_group(p, vgi, self.cwk())
            .mls("external commit: read the GroupInfo")?
            .load_psks(p.storage())
            .mls("external commit: build it")?
            .build(p.rand(), p.crypto(), self.signer.as_ref(), |_| true)
            .mls("external commit: build it")?
            .finalize(p)
            .mls("external commit: finish it")?;
        let commit = bundle.commit().tls_serialize_detached().mls("encode")?;
        let group_info = match bundle.group_info() {
            Some(gi) => MlsMessageOut::from(gi.clone()).tls_serialize_detached().mls("encode")?,
            None => Vec::new(),
        };
        let body = proto::CommitBundleBody {
            commit: commit.clone().into(),
            welcome: Vec::new().into(),
            group_info: group_info.into(),
        }
        .tls_serialize_detached()
        .mls("encode")?;
        Ok((group, commit, body))
    }

    /// The GroupInfo a resync builds on comes from the DS, which could make
    /// one up: a tree of real members' leaves (from their KeyPackages) plus a
    /// leaf of its own, signed by that leaf, so that the path of the external
    /// commit is encrypted to it. So its signer must be someone this client
    /// knows with that key: a member of its last state of the group, a pinned
    /// contact, or itself (its old leaf, now replaced, when it made the last
    /// commit). Fails (the transaction, and so the old state, is kept) otherwise.
    fn check_group_info_signer(
        &self,
        p: &TxnProvider<'_>,
        group: &MlsGroup,
        signer: u32,
        known: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let Some(m) = group.members().find(|m| m.index.u32() == signer) else {
            return Ok(()); // the slot of the own old leaf, removed by this commit
        };
        let user = identity_of(&m.credential);
        let own = m.index == group.own_leaf_index();
        let in_group = known.iter().any(|(u, k)| *u == user && *k == m.signature_key);
        let pin_key = super::devices::pin_key_of(&user, &m.credential, &m.signature_key);
        let pinned = Repo::of(p).contacts().get(&user)?.is_some_and(|c| c.key == pin_key);
        if own || in_group || pinned {
            return Ok(());
        }
        Err(Error::Protocol(format!(
            "the DS's GroupInfo is signed by {user}, whom this client has never seen with that key: it will not rejoin \
             a group state it cannot trace to a member it knows (the DS may be trying to add itself)"
        )))
    }

    /// The DS accepted the external commit at `seq`: the group goes on from
    /// there with a fresh leaf.
    fn finish_resync(&self, gid: &[u8], seq: u64, report: &mut SyncReport) -> Result<()> {
        let now = self.now_secs();
        let info = self.provider.transaction(|p| -> Result<ResyncInfo> {
            let g = Self::load(p, gid)?;
            let mut rec = Repo::of(p).groups().require(gid)?;
            let rs = rec.resync.take().ok_or_else(|| Error::Protocol("no resync was pending".into()))?;
            let epoch = g.epoch().as_u64();
            let missed = seq.saturating_sub(rs.from_cursor).saturating_sub(1);
            rec.cursor = rec.cursor.max(seq);
            rec.joined_epoch = epoch;
            rec.leaf_since = now;
            rec.sent_since_update = 0;
            Repo::of(p).groups().put(gid, &rec)?;
            Repo::of(p).pending().remove(gid)?;
            self.pin_members(p, &g)?;
            Ok(ResyncInfo { group: b64url(gid), epoch, missed, reason: rs.reason })
        })?;
        tracing::info!(group = %info.group, epoch = info.epoch, missed = info.missed, reason = %info.reason, "resynced");
        report.resynced.push(info);
        Ok(())
    }

    /// Looks for the own external commit `commit` in the log after the cursor
    /// (an accepted commit whose answer was lost); returns its seq.
    async fn find_in_log(&self, gid: &[u8], commit: &[u8]) -> Result<Option<u64>> {
        let gpath = b64url(gid);
        let mut after = self.group_record(gid)?.cursor;
        loop {
            let page = self.ds.fetch(&gpath, after, PAGE).await?;
            if let Some(m) = page.messages.iter().find(|m| m.kind == proto::EntryKind::Commit && m.message == commit) {
                return Ok(Some(m.seq));
            }
            match page.messages.last() {
                Some(last) if last.seq < page.last_seq => after = last.seq,
                _ => return Ok(None),
            }
        }
    }

    /// A resync that cannot succeed now: the posted commit is forgotten (it
    /// was refused), the need stays, and the error says why.
    fn resync_failed(&self, gid: &[u8], why: String) -> Result<Error> {
        tracing::warn!(group = %b64url(gid), why, "resync failed");
        let reason = self.provider.transaction(|p| -> Result<String> {
            let mut reason = why.clone();
            Repo::of(p).groups().update(gid, |r| {
                if let Some(rs) = r.resync.as_mut() {
                    rs.posted = None;
                    reason = format!("{} (last attempt: {why})", rs.reason);
                }
            })?;
            Ok(reason)
        })?;
        Ok(Error::ResyncNeeded { group: b64url(gid), reason })
    }

    /// The DS says this client is not a member: there is nothing to resync.
    fn left_instead_of_resync(&self, gid: &[u8], report: &mut SyncReport) -> Result<()> {
        self.provider.transaction(|p| {
            Repo::of(p).groups().update(gid, |r| {
                r.resync = None;
                r.state = GroupState::Left;
            })
        })?;
        report.left.push(b64url(gid));
        Ok(())
    }
}

impl Client {
    /// Reports the commit `m`, which this client cannot process for `cause`,
    /// to the DS (signed), and lists it in `report`. Best effort: the
    /// recovery (a resync) does not depend on it.
    pub(super) async fn report_bad_commit(
        &self,
        gid: &[u8],
        m: &proto::MessageOut,
        cause: &str,
        report: &mut SyncReport,
    ) {
        let committer = self.committer_of(gid, m).unwrap_or_else(|| "<unknown>".into());
        let mut end = cause.len().min(MAX_REASON);
        while !cause.is_char_boundary(end) {
            end -= 1;
        }
        let reason = cause[..end].to_owned();
        let req = proto::CommitReportRequest {
            seq: m.seq,
            epoch: m.epoch,
            committer: committer.clone(),
            reason: reason.clone(),
            signature: Vec::new(),
        };
        let gpath = b64url(gid);
        match self.ds.report_commit(&gpath, req).await {
            Ok(r) => {
                tracing::warn!(group = %gpath, seq = m.seq, committer, reporters = r.reporters, "reported a bad commit")
            }
            Err(e) => tracing::warn!(group = %gpath, seq = m.seq, error = %e, "could not report a bad commit"),
        }
        report.bad_commits.push(format!("{gpath}: seq {} by {committer}: {reason}", m.seq));
    }

    /// The member who sent the handshake message `m`, as this client's state
    /// of the group names it.
    fn committer_of(&self, gid: &[u8], m: &proto::MessageOut) -> Option<String> {
        let msg = MlsMessageIn::tls_deserialize_exact(&m.message).ok()?;
        let Ok(ProtocolMessage::PublicMessage(pm)) = msg.try_into_protocol_message() else { return None };
        let Sender::Member(leaf) = pm.sender() else { return None };
        let g = self.group(gid).ok()?;
        g.member(*leaf).map(super::identity_of)
    }
}

/// The leaf index of a GroupInfo's signer. openmls does not expose it, so it
/// is read from the encoding (RFC 9420 §12.4.3: the group context, the
/// extensions, the confirmation tag, then the signer).
pub(super) fn group_info_signer(vgi: &openmls::messages::group_info::VerifiableGroupInfo) -> Result<u32> {
    use tls_codec::Size as _;
    let all = vgi.tls_serialize_detached().mls("encode")?;
    let skip = vgi.group_context().tls_serialized_len() + vgi.extensions().tls_serialized_len();
    let mut rest = all.get(skip..).ok_or_else(|| Error::Protocol("truncated GroupInfo".into()))?;
    tls_codec::VLBytes::tls_deserialize(&mut rest).map_err(|e| Error::Protocol(format!("GroupInfo: {e}")))?;
    u32::tls_deserialize(&mut rest).map_err(|e| Error::Protocol(format!("GroupInfo signer: {e}")))
}

/// Longest reason sent in a report (the DS's limit).
const MAX_REASON: usize = 1024;
