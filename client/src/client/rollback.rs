//! Server rollback: the DS shows less than this client has already seen. Its
//! log ends below this client's cursor, its epoch of a group is below this
//! client's, or a user this client has pinned is unknown to it. Each is
//! reported as [`Error::ServerRollback`] (and in [`SyncReport::rollbacks`]).
//! The group is flagged: nothing more is sent into it until the user
//! acknowledges the rollback with [`Client::acknowledge_rollback`].

use super::{b64url, Client, SyncReport};
use crate::error::{Error, Result};
use crate::records::Rollback;
use crate::repo::Repo;
use grove_proto as proto;

impl Client {
    /// Flags `gid` with a rollback (the first one seen is kept until it is
    /// acknowledged) and returns the error that reports it.
    pub(super) fn flag_rollback(&self, gid: &[u8], detail: String, server_last_seq: Option<u64>) -> Result<Error> {
        tracing::warn!(group = %b64url(gid), %detail, "server rollback");
        let rec = self.provider.transaction(|p| {
            Repo::of(p).groups().update(gid, |r| {
                if r.rollback.is_none() {
                    r.rollback = Some(Rollback { detail: detail.clone(), server_last_seq });
                }
            })
        })?;
        let detail = rec.rollback.map_or(detail, |r| r.detail);
        Ok(Error::ServerRollback { group: b64url(gid), detail })
    }

    /// If `e` is the DS answering that its epoch of `gid` is below this
    /// client's (`wrong_epoch` or `stale_epoch` with `current_epoch`), flags
    /// the rollback and returns its error; otherwise `e` unchanged.
    pub(super) fn epoch_rollback(&self, gid: &[u8], e: Error) -> Result<Error> {
        let Error::Server { code: proto::ErrorCode::WrongEpoch | proto::ErrorCode::StaleEpoch, current_epoch, .. } = &e
        else {
            return Ok(e);
        };
        let own = self.try_group(gid)?.map(|g| g.epoch().as_u64());
        let (Some(server), Some(own)) = (*current_epoch, own) else { return Ok(e) };
        if server >= own {
            return Ok(e);
        }
        let detail = format!("the DS says the group is at epoch {server}, but this client is already at epoch {own}");
        self.flag_rollback(gid, detail, None)
    }

    /// Refuses to send into a group with an unacknowledged rollback.
    pub(super) fn require_no_rollback(&self, gid: &[u8]) -> Result<()> {
        match self.group_record(gid)?.rollback {
            Some(r) => Err(Error::ServerRollback { group: b64url(gid), detail: r.detail }),
            None => Ok(()),
        }
    }

    /// Lists the unacknowledged rollbacks of every group in `report`.
    pub(super) fn report_rollbacks(&self, report: &mut SyncReport) -> Result<()> {
        for gid in self.repo().groups().ids()? {
            if let Some(r) = self.group_record(&gid)?.rollback {
                report.rollbacks.push(format!("{}: {}", b64url(&gid), r.detail));
            }
        }
        Ok(())
    }

    /// Acknowledges a server rollback seen in `group`: sending into it is
    /// allowed again, and the log is read from where the DS's log ended when
    /// the rollback was seen (what it logs from then on is not skipped).
    /// Returns whether there was one. What the DS lost stays lost; members
    /// whose epochs moved past the DS's need to rejoin the group.
    pub async fn acknowledge_rollback(&self, group: &str) -> Result<bool> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        let mut had = false;
        self.provider.transaction(|p| {
            Repo::of(p).groups().update(&gid, |r| {
                if let Some(rb) = r.rollback.take() {
                    had = true;
                    if let Some(seq) = rb.server_last_seq {
                        r.cursor = r.cursor.min(seq);
                    }
                }
            })
        })?;
        Ok(had)
    }
}
