//! Successor groups: when a group cannot be used any more (no usable state
//! to resync from, or a fork whose branches both go on), a member creates a
//! new group with the same name, history policy and members (minus those the
//! user names, such as the member whose commit broke the group), and links
//! it: the first message of the new group names the old one, and each
//! member's client that was in the old group records the link on it (and
//! shows who announced it). The old group stays readable. The creator's
//! client refuses to send into it, naming the successor, and its name now
//! means the successor; other members' clients only show the link, since any
//! member could announce a successor with members of its choosing.

use super::{b64url, identity_of, Client, SyncReport};
use crate::error::{Error, Result};
use crate::records::Envelope;
use crate::repo::Repo;
use crate::storage::TxnProvider;

/// What [`Client::create_successor`] made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuccessorInfo {
    /// The old group's id.
    pub predecessor: String,
    /// The new group's id.
    pub group: String,
    /// The members added to it (this client's user aside).
    pub members: Vec<String>,
}

impl Client {
    /// Creates a successor of `group` (see the module documentation) with the
    /// members this client last saw in it, except `without` and itself.
    /// Every member must have a KeyPackage on the DS. Confirmation is the
    /// caller's job (the CLI asks, or takes `--yes`).
    pub async fn create_successor(&self, group: &str, without: &[&str]) -> Result<SuccessorInfo> {
        let old = self.resolve_group(group)?;
        let rec = self.group_record(&old)?;
        if let Some(s) = &rec.successor {
            return Err(Error::InvalidArgument(format!("{} already has a successor, {s}", b64url(&old))));
        }
        let me = self.whoami().user;
        let present: Vec<String> = match self.try_group(&old)? {
            Some(g) => g.members().map(|m| identity_of(&m.credential)).collect(),
            None => return Err(Error::UnknownGroup(b64url(&old))),
        };
        if let Some(stranger) = without.iter().find(|w| !present.iter().any(|p| p == *w)) {
            return Err(Error::NotInGroup { user: (*stranger).to_owned(), group: b64url(&old) });
        }
        let members: Vec<String> = present.into_iter().filter(|u| *u != me && !without.contains(&u.as_str())).collect();
        let name = rec.name.clone().unwrap_or_else(|| b64url(&old));
        let new = self.create_group_with(&name, rec.history).await?;
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        if !refs.is_empty() {
            self.add_members(&new, &refs).await?;
        }
        let new_gid = self.resolve_group(&new)?;
        let link = Envelope::Successor { predecessor: b64url(&old) };
        {
            let _op = self.ops.lock().await;
            self.send_payload(&new_gid, &link, None).await?;
        }
        self.provider
            .transaction(|p| Repo::of(p).groups().update(&old, |r| r.successor = Some(new.clone())).map(drop))?;
        tracing::info!(old = %b64url(&old), new = %new, members = members.len(), "created a successor group");
        Ok(SuccessorInfo { predecessor: b64url(&old), group: new, members })
    }

    /// Applies a successor link received in group `gid` from `sender`: the
    /// named predecessor, if this client knows it and `sender` was a member of
    /// it, is marked as replaced by `gid`. Returns whether it was.
    pub(super) fn apply_successor_link(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        sender: &str,
        predecessor: &str,
        report: &mut SyncReport,
    ) -> Result<bool> {
        let Some(old) = grove_proto::group_id_from_path(predecessor) else { return Ok(false) };
        let groups = Repo::of(p).groups();
        let Some(mut rec) = groups.get(&old)? else { return Ok(false) };
        let was_member =
            Self::load(p, &old).map(|g| g.members().any(|m| identity_of(&m.credential) == sender)).unwrap_or(false);
        if !was_member || old == gid || rec.successor.is_some() {
            return Ok(false);
        }
        rec.successor = Some(b64url(gid));
        rec.successor_by = Some(sender.to_owned());
        groups.put(&old, &rec)?;
        report.successors.push(format!("{predecessor}: replaced by {} (created by {sender})", b64url(gid)));
        Ok(true)
    }

    /// Refuses to send into a group this client replaced by a successor. (A
    /// successor another member announced is shown, not enforced: any member
    /// can announce one, with members of its choosing.)
    pub(super) fn require_no_successor(&self, gid: &[u8]) -> Result<()> {
        let rec = self.group_record(gid)?;
        match (rec.successor, rec.successor_by) {
            (Some(new), None) => Err(Error::GroupReplaced { group: b64url(gid), successor: new }),
            _ => Ok(()),
        }
    }
}
