//! Group health on [`GroveClient`]: what an app does after a sync reported
//! a `ServerRollback` or a `Fork` event, a key refresh, and replacing a
//! group that cannot be healed.

use crate::types::CommitOutcome;
use crate::{GroveClient, Result};

/// A successor group, made by [`GroveClient::create_successor`].
#[derive(Debug, Clone, uniffi::Record)]
pub struct Successor {
    /// The old group's id.
    pub predecessor: String,
    /// The new group's id.
    pub group: String,
    /// The users added to it (this user aside).
    pub members: Vec<String>,
}

#[uniffi::export(async_runtime = "tokio")]
impl GroveClient {
    /// Acknowledges a server rollback the last sync reported in `group`
    /// (after telling the user): sending is allowed again. What the DS lost
    /// stays lost. Returns whether there was one.
    pub async fn acknowledge_rollback(&self, group: String) -> Result<bool> {
        Ok(self.client()?.acknowledge_rollback(&group).await?)
    }

    /// Acknowledges a fork the last sync reported in `group`: sending is
    /// allowed again. It does not heal the fork: members on the other branch
    /// cannot read what follows until they rejoin, or the group is replaced
    /// ([`create_successor`](Self::create_successor)). Returns whether there was one.
    pub async fn acknowledge_fork(&self, group: String) -> Result<bool> {
        Ok(self.client()?.acknowledge_fork(&group).await?)
    }

    /// Refreshes this device's own key material in `group` now (the client
    /// also does it by itself on a schedule).
    pub async fn self_update(&self, group: String) -> Result<CommitOutcome> {
        Ok(self.client()?.self_update(&group).await?.into())
    }

    /// Replaces `group` with a new group of the same members, except
    /// `without` (a member whose commits break the group, say). Ask the
    /// user first: every member moves to the new group.
    pub async fn create_successor(&self, group: String, without: Vec<String>) -> Result<Successor> {
        let without: Vec<&str> = without.iter().map(String::as_str).collect();
        let s = self.client()?.create_successor(&group, &without).await?;
        Ok(Successor { predecessor: s.predecessor, group: s.group, members: s.members })
    }
}
