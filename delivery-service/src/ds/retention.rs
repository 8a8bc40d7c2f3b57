//! Retention: deletes log entries that every reader has acknowledged, and
//! entries older than the TTL.

use std::collections::HashMap;

use super::{now_secs, Ds};
use crate::error::DsError;

impl Ds {
    /// Deletes log entries every current member has acknowledged, and entries
    /// older than the TTL. Returns how many were deleted.
    pub async fn run_retention(&self) -> Result<u64, DsError> {
        let cutoff = now_secs().saturating_sub(self.limits.message_ttl_secs);
        let mut total = 0;
        for gid in self.store.group_ids().await? {
            let rt = self.group(&gid).await?;
            let (members, removed): (Vec<String>, HashMap<String, u64>) = {
                let view = rt.view()?;
                (view.members.keys().cloned().collect(), view.removed.clone())
            };
            let internal = rt.internal_id;
            let cursors: HashMap<String, u64> = self.store.cursors(internal).await?.into_iter().collect();
            let through = prunable_through(&members, &removed, &cursors);
            let n = self.store.prune_log(internal, through, cutoff).await?;
            if n > 0 {
                rt.forget_tail();
            }
            total += n;
        }
        if total > 0 {
            self.persist().await?;
            self.metrics.stored_messages.set(self.store.message_count().await? as i64);
        }
        Ok(total)
    }
}

/// The highest seq every reader has acknowledged. A removed member still needs
/// the log up to the commit that removed it (that is how it learns of the
/// removal): that range is kept until it acknowledged it, or until the TTL.
fn prunable_through(members: &[String], removed: &HashMap<String, u64>, cursors: &HashMap<String, u64>) -> u64 {
    let cursor = |u: &str| cursors.get(u).copied().unwrap_or(0);
    let mut through = members.iter().map(|m| cursor(m)).min().unwrap_or(0);
    for (user, at) in removed {
        if cursor(user) < *at {
            through = through.min(cursor(user));
        }
    }
    through
}
