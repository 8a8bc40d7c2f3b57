//! The commit machinery: an own commit is stored as pending (bytes and
//! epoch) before it is posted, merged only after the DS's 201, discarded on
//! a definitive refusal, and redone after a lost race (`409 stale_epoch`).

use grove_proto as proto;
use openmls::messages::group_info::GroupInfo;
use openmls::prelude::*;
use tls_codec::Serialize as _;

use super::{b64url, identity_of, Client, CommitOutcome, Fault, SyncReport};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::PendingCommit;
use crate::repo::Repo;
use crate::storage::TxnProvider;

/// What a commit does.
pub(super) enum CommitOp {
    /// Add the devices of these KeyPackages (those not members yet).
    Add(Vec<KeyPackage>),
    /// Remove these users, every leaf of each (those still members).
    Remove(Vec<String>),
    /// Remove the leaves of these devices (by device id), if still there.
    RemoveDevices(Vec<String>),
    /// Update the own leaf.
    Update,
    /// Commit the pending proposals (if any).
    Pending,
}

/// A commit's messages as openmls returns them.
type Built = (MlsMessageOut, Option<MlsMessageOut>, Option<GroupInfo>);

impl Client {
    /// Builds, posts and (after the DS's 201) merges one commit; on `409
    /// stale_epoch` clears it, waits (jittered exponential backoff, see
    /// [`super::retry`]), syncs and redoes the operation, until the retry
    /// budget is spent.
    pub(super) async fn commit(&self, gid: &[u8], op_name: &'static str, op: CommitOp) -> Result<CommitOutcome> {
        // A pending commit left by a crash or an unknown outcome is resolved first.
        if self.repo().pending().exists(gid)? {
            self.sync_group(gid, &mut SyncReport::default()).await?;
        }
        let gpath = b64url(gid);
        let outcome = |committed, attempts| -> Result<CommitOutcome> {
            Ok(CommitOutcome { group: gpath.clone(), epoch: self.epoch(gid)?, committed, attempts })
        };
        let mut backoff = self.backoff();
        loop {
            let attempt = backoff.attempts();
            let Some(body) = self.provider.transaction(|p| self.stage_commit(p, gid, &op))? else {
                return outcome(false, attempt);
            };
            match self.ds.post_commit(&gpath, body).await {
                Ok(_posted) => {
                    if self.fault() == Some(Fault::StopAfterCommitAccepted) {
                        return Err(Error::InjectedFault("stopped after the DS accepted the commit"));
                    }
                    self.provider.transaction(|p| -> Result<()> {
                        let mut g = Self::load(p, gid)?;
                        let mut rec = Repo::of(p).groups().require(gid)?;
                        self.note_own_commit(&g, &mut rec);
                        Repo::of(p).groups().put(gid, &rec)?;
                        g.merge_pending_commit(p).mls("merge the own commit")?;
                        Repo::of(p).pending().remove(gid)?;
                        self.pin_members(p, &g)
                    })?;
                    return outcome(true, attempt);
                }
                Err(e @ Error::Server { status: 409, code: proto::ErrorCode::StaleEpoch, .. }) => {
                    if let rolled_back @ Error::ServerRollback { .. } = self.epoch_rollback(gid, e)? {
                        self.discard_pending_commit(gid)?;
                        return Err(rolled_back);
                    }
                    tracing::debug!(group = %gpath, attempt, "commit lost the race; syncing and redoing");
                    self.discard_pending_commit(gid)?;
                    if !backoff.pause().await {
                        return Err(backoff.exhausted(op_name));
                    }
                    self.sync_group(gid, &mut SyncReport::default()).await?;
                }
                Err(e @ Error::Server { status: 400..=499, .. }) => {
                    // Refused for good: never merge a commit the DS did not accept.
                    self.discard_pending_commit(gid)?;
                    return Err(self.epoch_rollback(gid, e)?);
                }
                // Unknown outcome (network, 5xx): keep the pending commit; the
                // next sync finds it in the log or discards it.
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the commit of `op` in `p` and stores it as pending; returns the
    /// DS's commit bundle body, or `None` if there is nothing to commit.
    fn stage_commit(&self, p: &TxnProvider<'_>, gid: &[u8], op: &CommitOp) -> Result<Option<Vec<u8>>> {
        let mut g = Self::load(p, gid)?;
        if !g.is_active() {
            return Err(Error::GroupLeft(b64url(gid)));
        }
        let Some((commit, welcome, gi)) = self.build_commit(p, &mut g, op)? else {
            return Ok(None);
        };
        let commit_bytes = commit.tls_serialize_detached().mls("encode")?;
        let body = proto::CommitBundleBody {
            commit: commit_bytes.clone().into(),
            welcome: welcome.map(|w| w.tls_serialize_detached()).transpose().mls("encode")?.unwrap_or_default().into(),
            group_info: gi
                .map(|gi| MlsMessageOut::from(gi).tls_serialize_detached())
                .transpose()
                .mls("encode")?
                .unwrap_or_default()
                .into(),
        }
        .tls_serialize_detached()
        .mls("encode")?;
        Repo::of(p).pending().put(gid, &PendingCommit { commit: commit_bytes, epoch: g.epoch().as_u64() })?;
        Ok(Some(body))
    }

    /// The openmls commit of `op`, or `None` if there is nothing to do.
    fn build_commit(&self, p: &TxnProvider<'_>, g: &mut MlsGroup, op: &CommitOp) -> Result<Option<Built>> {
        let signer = self.signer.as_ref();
        let built = match op {
            CommitOp::Add(kps) => {
                // By signature key: a redo after a lost race skips the devices
                // another member added meanwhile.
                let present: Vec<Vec<u8>> = g.members().map(|m| m.signature_key).collect();
                let todo: Vec<KeyPackage> = kps
                    .iter()
                    .filter(|kp| !present.iter().any(|k| k.as_slice() == kp.leaf_node().signature_key().as_slice()))
                    .cloned()
                    .collect();
                if todo.is_empty() {
                    return Ok(None);
                }
                let (c, w, gi) = g.add_members(p, signer, &todo).mls("add members")?;
                (c, Some(w), gi)
            }
            CommitOp::Remove(users) => {
                let leaves: Vec<LeafNodeIndex> =
                    g.members().filter(|m| users.contains(&identity_of(&m.credential))).map(|m| m.index).collect();
                if leaves.is_empty() {
                    return Ok(None);
                }
                g.remove_members(p, signer, &leaves).mls("remove members")?
            }
            CommitOp::RemoveDevices(ids) => {
                let leaves: Vec<LeafNodeIndex> = g
                    .members()
                    .filter(|m| ids.contains(&grove_proto::identity::device_id(&m.signature_key)))
                    .map(|m| m.index)
                    .collect();
                if leaves.is_empty() {
                    return Ok(None);
                }
                g.remove_members(p, signer, &leaves).mls("remove a device's leaves")?
            }
            CommitOp::Update => {
                let b = g.self_update(p, signer, LeafNodeParameters::default()).mls("self update")?;
                (b.commit().clone(), b.to_welcome_msg(), b.group_info().cloned())
            }
            CommitOp::Pending => {
                if g.pending_proposals().next().is_none() {
                    return Ok(None);
                }
                g.commit_to_pending_proposals(p, signer).mls("commit pending proposals")?
            }
        };
        Ok(Some(built))
    }

    /// Drops the own pending commit (openmls's and the app's record of it).
    pub(super) fn discard_pending_commit(&self, gid: &[u8]) -> Result<()> {
        self.provider.transaction(|p| -> Result<()> {
            Self::load(p, gid)?.clear_pending_commit(p.storage())?;
            Repo::of(p).pending().remove(gid)
        })
    }
}
