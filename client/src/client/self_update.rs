//! The self-update policy: a member updates its own leaf (a fresh HPKE key
//! and path, for post-compromise security) when its leaf is older than the
//! group's `max_age_secs` or has sent `max_messages` messages. The update
//! rides on the member's next send or sync; there is no background timer.

use super::commit::CommitOp;
use super::{b64url, Client};
use crate::error::Result;
use crate::records::{GroupRecord, GroupState, UpdatePolicy};

/// A group's self-update policy and where the own leaf stands against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStatus {
    /// Group id (base64url).
    pub group: String,
    /// The policy.
    pub policy: UpdatePolicy,
    /// Seconds since the own leaf was created, joined or last updated.
    pub leaf_age_secs: u64,
    /// Own messages sent since then.
    pub sent_since_update: u64,
    /// Whether the next send or sync will update the leaf.
    pub due: bool,
}

impl Client {
    /// The group's self-update policy and the own leaf's standing.
    pub fn update_policy(&self, group: &str) -> Result<UpdateStatus> {
        let gid = self.resolve_group(group)?;
        let rec = self.group_record(&gid)?;
        let now = self.now_secs();
        Ok(UpdateStatus {
            group: b64url(&gid),
            policy: rec.update_policy,
            leaf_age_secs: now.saturating_sub(rec.leaf_since),
            sent_since_update: rec.sent_since_update,
            due: rec.update_due(now),
        })
    }

    /// Sets the group's self-update policy (this client's own; each member
    /// keeps its own). Takes effect on the next send or sync.
    pub fn set_update_policy(&self, group: &str, policy: UpdatePolicy) -> Result<UpdateStatus> {
        let gid = self.resolve_group(group)?;
        self.provider.transaction(|p| crate::repo::Repo::of(p).groups().update(&gid, |r| r.update_policy = policy))?;
        self.update_policy(group)
    }

    /// Before an own pending commit of `g` is merged: if it carries a path,
    /// it gives the own leaf fresh keys, so the policy's clock and message
    /// count restart (in `rec`, written by the caller in the same
    /// transaction). Called on every path that merges an own commit: after
    /// the DS's 201, and when the log confirms one whose 201 was lost.
    pub(super) fn note_own_commit(&self, g: &openmls::prelude::MlsGroup, rec: &mut GroupRecord) {
        if g.pending_commit().is_some_and(|c| c.update_path_leaf_node().is_some()) {
            rec.leaf_since = self.now_secs();
            rec.sent_since_update = 0;
        }
    }

    /// Updates the own leaf in `gid` if the policy says it is due. Returns
    /// whether it committed an update. Called with the operation lock held.
    pub(super) async fn update_if_due(&self, gid: &[u8]) -> Result<bool> {
        let rec = self.group_record(gid)?;
        if rec.state != GroupState::Active
            || rec.rollback.is_some()
            || rec.fork.is_some()
            || !rec.update_due(self.now_secs())
        {
            return Ok(false);
        }
        let outcome = self.commit(gid, "update", CommitOp::Update).await?;
        tracing::info!(group = %b64url(gid), epoch = outcome.epoch, "own leaf updated (self-update policy)");
        Ok(outcome.committed)
    }

    /// [`Client::update_if_due`] after an operation that already succeeded:
    /// a failure is logged and left for the next send or sync to retry.
    pub(super) async fn update_if_due_after(&self, gid: &[u8]) -> bool {
        match self.update_if_due(gid).await {
            Ok(updated) => updated,
            Err(e) => {
                tracing::warn!(group = %b64url(gid), error = %e, "self-update failed; retried on the next send or sync");
                false
            }
        }
    }
}
