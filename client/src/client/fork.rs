//! Fork detection. Every application message Grove sends carries, in its MLS
//! `authenticated_data` (readable without decrypting), a tag of the sender's
//! epoch authenticator. Members who processed the same commits have the same
//! epoch authenticator; a DS that showed two members different commits for
//! one epoch (a fork) cannot make their tags agree. A receiver that sees a
//! well-formed tag for its current epoch that differs from its own records
//! the fork, reports it ([`SyncReport::forks`], [`Client::fork`]) and sends
//! nothing more into the group until the user acknowledges it
//! ([`Client::acknowledge_fork`]).
//!
//! Only messages of the receiver's current epoch are compared (past epochs'
//! authenticators are not kept). Messages without a tag (older Grove
//! releases, other clients) are not checked.

use openmls::prelude::*;
use sha2::Digest as _;

use super::{b64url, Client, SyncReport};
use crate::error::{Error, Result};
use crate::records::{ForkRecord, GroupRecord};
use crate::repo::Repo;

/// The first bytes of the tag: its format and version.
const TAG_PREFIX: &[u8; 4] = b"GRV1";
/// Bytes of the authenticator's hash in the tag.
const TAG_HASH_LEN: usize = 16;

/// The `authenticated_data` of an application message sent in `g`'s epoch:
/// `GRV1` followed by the first 16 bytes of SHA-256("grove epoch
/// authenticator" || epoch_authenticator).
pub(super) fn fork_tag(g: &MlsGroup) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    h.update(b"grove epoch authenticator");
    h.update(g.epoch_authenticator().as_slice());
    let mut tag = TAG_PREFIX.to_vec();
    tag.extend_from_slice(&h.finalize()[..TAG_HASH_LEN]);
    tag
}

/// A fork seen in one group, as [`Client::fork`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkInfo {
    /// Group id (base64url).
    pub group: String,
    /// The epoch whose authenticators differ.
    pub epoch: u64,
    /// The log entry that showed it.
    pub seq: u64,
    /// The members involved, as far as this client can tell: the sender of
    /// that entry when it could be decrypted, else none (a member on the
    /// other branch; its messages cannot be decrypted here).
    pub members: Vec<String>,
}

impl Client {
    /// Compares the tag in an application message of the current epoch with
    /// this client's own; on a difference, records the fork in `rec` (the
    /// first one is kept until acknowledged). `sender` is the decrypted
    /// sender, if the message could be decrypted.
    pub(super) fn check_fork(g: &MlsGroup, rec: &mut GroupRecord, seq: u64, aad: &[u8], sender: Option<&str>) {
        let epoch = g.epoch().as_u64();
        if aad.len() != TAG_PREFIX.len() + TAG_HASH_LEN || !aad.starts_with(TAG_PREFIX) || rec.fork.is_some() {
            return;
        }
        if aad == fork_tag(g).as_slice() {
            return;
        }
        tracing::warn!(group = %b64url(g.group_id().as_slice()), epoch, seq, "fork detected: another epoch authenticator");
        rec.fork = Some(ForkRecord { epoch, seq, members: sender.map(str::to_owned).into_iter().collect() });
    }

    /// The fork seen in `group` and not acknowledged yet, if any.
    pub fn fork(&self, group: &str) -> Result<Option<ForkInfo>> {
        let gid = self.resolve_group(group)?;
        Ok(self.group_record(&gid)?.fork.map(|f| ForkInfo {
            group: b64url(&gid),
            epoch: f.epoch,
            seq: f.seq,
            members: f.members,
        }))
    }

    /// Refuses to send into a group with an unacknowledged fork.
    pub(super) fn require_no_fork(&self, gid: &[u8]) -> Result<()> {
        match self.group_record(gid)?.fork {
            Some(f) => Err(Error::ForkDetected { group: b64url(gid), epoch: f.epoch, seq: f.seq }),
            None => Ok(()),
        }
    }

    /// Lists the unacknowledged forks of every group in `report`.
    pub(super) fn report_forks(&self, report: &mut SyncReport) -> Result<()> {
        for gid in self.repo().groups().ids()? {
            if let Some(f) = self.group_record(&gid)?.fork {
                report.forks.push(format!("{}: epoch {} (seen at seq {})", b64url(&gid), f.epoch, f.seq));
            }
        }
        Ok(())
    }

    /// Acknowledges a fork seen in `group`: sending into it is allowed again.
    /// This does not heal the fork: members on the other branch still cannot
    /// read what this client sends (they rejoin, or the group is recreated).
    /// Returns whether there was one.
    pub async fn acknowledge_fork(&self, group: &str) -> Result<bool> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        let rec = self.provider.transaction(|p| {
            let groups = Repo::of(p).groups();
            let had = groups.require(&gid)?.fork.is_some();
            groups.update(&gid, |r| r.fork = None)?;
            Ok::<_, Error>(had)
        })?;
        Ok(rec)
    }
}
