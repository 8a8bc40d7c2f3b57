//! Members' signed reports of commits they cannot process on a check only
//! members can make (confirmation or membership tag, update path). The DS
//! cannot judge such a commit itself; it keeps each member's signed report
//! as evidence for the operator, logs it and counts it. The `committer` in
//! a report is the reporter's word; who posted the commit is in the DS's own
//! log line for it ("commit accepted", with `user`), which the operator
//! compares it with. The members recover
//! on their own (by a resync, see the client's `client/resync.rs`).

use super::Ds;
use crate::api::{self, GroupId, UserName};
use crate::auth;
use crate::error::DsError;
use crate::store::EntryKind;

/// Longest reason accepted in a report, bytes.
const MAX_REASON: usize = 1024;

impl Ds {
    /// Verifies and stores `user`'s report of the commit at `req.seq`.
    pub async fn report_commit(
        &self,
        user: &str,
        gid: &GroupId,
        req: api::CommitReportRequest,
    ) -> Result<api::CommitReportResponse, DsError> {
        if req.reason.len() > MAX_REASON || UserName::parse(&req.committer).is_err() {
            return Err(DsError::InvalidReport(format!(
                "a report's reason is at most {MAX_REASON} bytes and its committer a user name"
            )));
        }
        let rt = self.member_rt(user, gid.as_bytes()).await?;
        // Signed by the reporting device's key (the registered key of a
        // user without devices), over the user name.
        let (name, device) = grove_proto::identity::split_mailbox(user);
        let (key, scheme) = self.signing_key(name, device).await?;
        let scheme = auth::scheme_from_u16(scheme)
            .ok_or_else(|| DsError::Internal("stored signature scheme unsupported".into()))?;
        auth::verify(&self.crypto, scheme, &req.signed_data(name, gid), &key, &req.signature)?;
        let (id, seq) = (rt.internal_id, req.seq);
        let found = self.store.fetch_after(id, seq.saturating_sub(1), seq, 1).await?;
        if !found.first().is_some_and(|e| e.seq == seq && e.kind == EntryKind::Commit && e.epoch == req.epoch) {
            return Err(DsError::InvalidReport(format!(
                "log entry {seq} is not a stored commit of this group at epoch {}",
                req.epoch
            )));
        }
        let stored = serde_json::to_vec(&req).map_err(|e| DsError::Internal(e.to_string()))?;
        let reporters = self.store.add_commit_report(id, seq, user, &stored).await?;
        self.persist().await?;
        self.metrics.count_accepted("commit_report");
        tracing::warn!(
            group = %gid, seq, epoch = req.epoch, committer = %req.committer, reporter = user, reporters,
            reason = %req.reason, "a member reports a commit it cannot process"
        );
        Ok(api::CommitReportResponse { reporters })
    }
}
