//! Fork detection. Every application message Grove sends carries, in its MLS
//! `authenticated_data` (readable without decrypting), a tag of the sender's
//! epoch authenticator. Members who processed the same commits have the same
//! epoch authenticator; a DS that showed two members different commits for
//! one epoch (a fork) cannot make their tags agree. A receiver records a
//! fork when an application message of its current epoch carries another
//! tag or fails its AEAD check (which no message of an honest member's
//! current epoch does, tag or not: a DS cannot hide a fork by stripping the
//! tag), or is of a later epoch than its own. It then reports it ([`SyncReport::forks`], [`Client::fork`]) and sends
//! nothing more into the group until the user acknowledges it
//! ([`Client::acknowledge_fork`]).
//!
//! Messages of past epochs are not checked (their authenticators are not
//! kept): a member left behind at an earlier epoch reads the other branch's
//! messages as of a later epoch and detects the fork; the member ahead of it
//! does not, from those messages.

use openmls::framing::errors::MessageDecryptionError;
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

/// Bytes of the whole tag.
const TAG_LEN: usize = TAG_PREFIX.len() + TAG_HASH_LEN;

/// An application message's authenticated data: the fork tag, then the
/// key-directory gossip (`kt.rs`; empty from a client without it).
pub(super) fn split_aad(aad: &[u8]) -> (&[u8], &[u8]) {
    if aad.starts_with(TAG_PREFIX) && aad.len() >= TAG_LEN {
        aad.split_at(TAG_LEN)
    } else {
        (aad, &[])
    }
}

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
    /// Compares the tag of a decrypted application message of `epoch` with
    /// this client's own, if `epoch` is the current one. A different
    /// well-formed tag is recorded as a fork in `rec` (a member with the same
    /// epoch secret but another authenticator: a lying member).
    pub(super) fn check_fork_tag(
        g: &MlsGroup,
        rec: &mut GroupRecord,
        seq: u64,
        epoch: u64,
        aad: &[u8],
        sender: Option<&str>,
    ) {
        let (tag, _gossip) = split_aad(aad);
        let well_formed = tag.len() == TAG_LEN && tag.starts_with(TAG_PREFIX);
        if epoch == g.epoch().as_u64() && well_formed && tag != fork_tag(g).as_slice() {
            flag_fork(
                g,
                rec,
                epoch,
                seq,
                sender.map(str::to_owned).into_iter().collect(),
                "its epoch authenticator differs",
            );
        }
    }

    /// What an application message that could not be decrypted says about a
    /// fork. In an honest group a message of the current epoch always
    /// decrypts, and none is of a later epoch (the DS refuses those, and a
    /// commit comes before the messages of its epoch in the log). So a
    /// message of a later epoch, one of the current epoch that fails its
    /// AEAD check, or one whose tag differs, is recorded as a fork in `rec`.
    pub(super) fn check_undecryptable<E>(
        g: &MlsGroup,
        rec: &mut GroupRecord,
        seq: u64,
        epoch: u64,
        aad: &[u8],
        error: &ProcessMessageError<E>,
    ) {
        let current = g.epoch().as_u64();
        let aead = matches!(
            error,
            ProcessMessageError::ValidationError(ValidationError::UnableToDecrypt(MessageDecryptionError::AeadError))
        );
        if epoch > current {
            flag_fork(g, rec, epoch, seq, Vec::new(), "it is of an epoch this client never saw committed");
        } else if epoch == current && aead {
            flag_fork(g, rec, epoch, seq, Vec::new(), "it does not decrypt with this epoch's keys");
        } else {
            Self::check_fork_tag(g, rec, seq, epoch, aad, None);
        }
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

    /// Refuses to send into a group with an unacknowledged fork, or one that
    /// must be resynced first (its local state is not the group's).
    pub(super) fn require_no_fork(&self, gid: &[u8]) -> Result<()> {
        let rec = self.group_record(gid)?;
        if let Some(r) = rec.resync {
            return Err(Error::ResyncNeeded { group: b64url(gid), reason: r.reason });
        }
        match rec.fork {
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

    /// Acknowledges a fork seen in `group`: sending into it is allowed again,
    /// and that epoch's fork is not reported again (a later epoch's is).
    /// This does not heal the fork: members on the other branch still cannot
    /// read what this client sends (they rejoin, or the group is recreated).
    /// Returns whether there was one.
    pub async fn acknowledge_fork(&self, group: &str) -> Result<bool> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        let had = self.provider.transaction(|p| {
            let groups = Repo::of(p).groups();
            let had = groups.require(&gid)?.fork.is_some();
            groups.update(&gid, |r| {
                if let Some(f) = r.fork.take() {
                    r.fork_acknowledged_epoch = Some(f.epoch);
                }
            })?;
            Ok::<_, Error>(had)
        })?;
        Ok(had)
    }
}

/// Records a fork in `rec`, unless one is recorded already or the user
/// acknowledged this epoch's.
fn flag_fork(g: &MlsGroup, rec: &mut GroupRecord, epoch: u64, seq: u64, members: Vec<String>, why: &str) {
    if rec.fork.is_some() || rec.fork_acknowledged_epoch == Some(epoch) {
        return;
    }
    tracing::warn!(group = %b64url(g.group_id().as_slice()), epoch, seq, why, "fork detected");
    rec.fork = Some(ForkRecord { epoch, seq, members });
}
