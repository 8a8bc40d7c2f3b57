//! Groups: creation from a GroupInfo and ratchet tree, commits (validate,
//! merge on a copy, append, publish), and what members may read about a group
//! (its roster and latest GroupInfo).

use std::sync::Arc;

use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use tls_codec::Deserialize as _;

use super::log::{Appended, Change, CommitChange};
use super::runtime::{clone_storage, members_of, serialize_public_state, user_in, GroupRt, PublicState};
use super::validate::{parse_group_info, Committer, ValidatedCommit};
use super::{now_secs, Ds, MAX_GROUP_ID_LEN, SUPPORTED_SUITES};
use crate::api::GroupId;
use crate::api::{self, UserName};
use crate::error::DsError;
use crate::store::{EntryKind, GroupRecord, WelcomeEntry};

impl Ds {
    /// Creates a group from its GroupInfo and ratchet tree.
    pub async fn create_group(&self, user: &str, body: &[u8]) -> Result<api::GroupCreatedResponse, DsError> {
        let req = api::GroupCreateBody::tls_deserialize_exact(body)
            .map_err(|e| DsError::MalformedMessage(format!("not a Grove group-create body: {e}")))?;
        let vgi = parse_group_info(req.group_info.as_slice(), "group_info")?;
        let tree = RatchetTreeIn::tls_deserialize_exact(req.ratchet_tree.as_slice())
            .map_err(|e| DsError::MalformedMessage(format!("ratchet_tree is not a TLS-encoded ratchet tree: {e}")))?;
        let gid = vgi.group_id().as_slice().to_vec();
        if gid.is_empty() || gid.len() > MAX_GROUP_ID_LEN {
            return Err(DsError::InvalidGroupInfo(format!("group id must be 1 to {MAX_GROUP_ID_LEN} bytes")));
        }
        let suite = u16::from(vgi.ciphersuite());
        if !SUPPORTED_SUITES.contains(&suite) {
            return Err(DsError::UnsupportedCiphersuite(suite));
        }
        let key = gid.clone();
        if self.cached_group(&gid)?.is_some() || self.store.load_group(&key).await?.is_some() {
            return Err(DsError::GroupExists);
        }
        let storage = MemoryStorage::default();
        let (group, _gi) = PublicGroup::from_external(&self.crypto, &storage, tree, vgi, ProposalStore::new())
            .map_err(|e| DsError::InvalidGroupInfo(e.to_string()))?;
        let mut creator_found = false;
        for m in group.members() {
            let who = self.check_registered_member(&m.credential, &m.signature_key).await?;
            creator_found |= who == user;
        }
        if !creator_found {
            return Err(DsError::InvalidGroupInfo("the creator must be a member of the group".into()));
        }
        let epoch = group.group_context().epoch().as_u64();
        let record = GroupRecord {
            group_id: gid.clone().into(),
            internal_id: self.store.next_internal_id().await?,
            epoch,
            ciphersuite: suite,
            public_state: serialize_public_state(&storage)?.into(),
            group_info: req.group_info.clone(),
            removed: Vec::new(),
            created_at: now_secs(),
        };
        if !self.store.create_group(&record).await? {
            return Err(DsError::GroupExists);
        }
        // Cache before awaiting the fsync, so a concurrent request for this group
        // cannot load a second runtime (two commit locks) from the store.
        let rt = Arc::new(self.make_rt(record, 1, storage, group));
        self.groups.lock().map_err(|_| DsError::Internal("group map poisoned".into()))?.insert(gid.clone(), rt);
        self.persist().await?;
        self.metrics.groups.inc();
        tracing::info!(group = %api::group_id_to_path(&gid), epoch, "group created");
        Ok(api::GroupCreatedResponse { group_id: api::GroupId::from_bytes(&gid)?, epoch })
    }

    /// Validates and applies a commit bundle; the log entry, the new public
    /// state and the Welcomes land atomically, and durably before this returns.
    /// If another replica appended first, the group is reloaded and the
    /// commit validated again (it then fails as stale if the epoch moved).
    pub async fn post_commit(&self, user: &str, gid: &GroupId, body: &[u8]) -> Result<api::PostedResponse, DsError> {
        let gid = gid.as_bytes();
        let bundle = api::CommitBundleBody::tls_deserialize_exact(body)
            .map_err(|e| DsError::MalformedMessage(format!("not a Grove commit bundle: {e}")))?;
        let rt = self.group(gid).await?;
        let mut public = rt.commit_lock.lock().await;
        let mut tries = 0;
        let (appended, added, new_epoch, removed) = loop {
            match self.try_commit(user, &rt, &mut public, &bundle).await {
                Err(e) if self.may_be_stale(&e, tries) => {
                    tries += 1;
                    if !self.refresh(&rt, &mut public).await? && !matches!(e, DsError::Stale(_)) {
                        return Err(e);
                    }
                }
                other => break other?,
            }
        };
        // New members start reading after the commit that added them.
        self.publish(&rt, &appended, "commit", &added).await?;
        drop(public);
        let seq = appended.seq;
        tracing::info!(group = %api::group_id_to_path(gid), seq, epoch = new_epoch, user, added = added.len(), removed, "commit accepted");
        Ok(api::PostedResponse { seq, epoch: new_epoch })
    }

    /// One attempt at a commit under the commit lock: validate, merge on a
    /// copy, append. Returns the append, the added users, the new epoch and
    /// how many members it removed.
    async fn try_commit(
        &self,
        user: &str,
        rt: &GroupRt,
        public: &mut PublicState,
        bundle: &api::CommitBundleBody,
    ) -> Result<(Appended, Vec<String>, u64, usize), DsError> {
        let gid = rt.group_id.as_slice();
        let protocol = Self::commit_message(bundle, gid)?;
        let commit = self.validate_commit(user, rt, public, protocol, bundle).await?;
        let (epoch, added) = (commit.epoch, commit.added.clone());
        let (new_storage, change) = self.merge_commit(rt, public, commit, bundle)?;
        let (new_epoch, removed) = (change.epoch, change.removed_now.len());
        let message = bundle.commit.as_slice().to_vec();
        match self.append(rt, EntryKind::Commit, epoch, message.into(), Change::Commit(change), |_| Ok(())).await {
            Ok(a) => {
                public.storage = new_storage;
                Ok((a, added, new_epoch, removed))
            }
            Err(e) => {
                self.reload_public(public, gid)?;
                Err(e)
            }
        }
    }

    /// Merges a validated commit into a copy of the public state (the cached
    /// state changes only once the store has the new one), checks the new
    /// epoch's GroupInfo against it, and works out the new roster.
    fn merge_commit(
        &self,
        rt: &GroupRt,
        public: &mut PublicState,
        commit: ValidatedCommit,
        bundle: &api::CommitBundleBody,
    ) -> Result<(MemoryStorage, CommitChange), DsError> {
        let gid = rt.group_id.as_slice();
        let new_storage = clone_storage(&public.storage)?;
        let old_members = rt.view()?.members.clone();
        if let Err(e) = public.group.merge_commit(&new_storage, commit.staged) {
            self.reload_public(public, gid)?;
            return Err(DsError::Internal(format!("merging a validated commit failed: {e}")));
        }
        let members = members_of(&public.group);
        let signer = match &commit.committer {
            Committer::Member(leaf) => Some(*leaf),
            Committer::External(mailbox) => members.get(mailbox).map(|m| LeafNodeIndex::new(m.leaf)),
        };
        let checked = match signer {
            Some(signer) => self.verify_group_info(&public.group, signer, commit.group_info),
            None => Err(DsError::Internal("the resyncing member is not in the merged group".into())),
        };
        if let Err(e) = checked {
            self.reload_public(public, gid)?;
            return Err(e);
        }
        let removed_now = old_members.keys().filter(|u| !members.contains_key(*u)).cloned().collect();
        let epoch = commit.epoch + 1;
        let welcome = WelcomeEntry {
            id: 0,
            group_id: gid.to_vec().into(),
            epoch,
            received_at: now_secs(),
            message: bundle.welcome.clone(),
        };
        let welcomes = commit.added.iter().map(|u| (u.clone(), welcome.clone())).collect();
        let group_info = Some(bundle.group_info.clone()).filter(|gi| !gi.as_slice().is_empty());
        let state = serialize_public_state(&new_storage)?;
        Ok((new_storage, CommitChange { epoch, state, group_info, members, removed_now, welcomes }))
    }

    /// The group's roster as the DS sees it, one entry per leaf (for
    /// members and their users' other devices).
    pub async fn group_info(&self, user: &str, gid: &GroupId) -> Result<api::GroupResponse, DsError> {
        let gid = gid.as_bytes();
        let rt = self.group(gid).await?;
        self.refresh_unlocked(&rt).await?;
        let visible = *rt.visible.borrow();
        let view = rt.view()?;
        if !user_in(&view.members, grove_proto::identity::split_mailbox(user).0) {
            return Err(DsError::NotAMember);
        }
        let mut members = view
            .members
            .iter()
            .map(|(mailbox, m)| {
                let (u, device) = grove_proto::identity::split_mailbox(mailbox);
                Ok(api::MemberOut {
                    user: UserName::parse(u)?,
                    device: device.map(str::to_owned),
                    leaf_index: m.leaf,
                    fingerprint: api::fingerprint(&m.signature_key),
                })
            })
            .collect::<Result<Vec<_>, DsError>>()?;
        members.sort_by_key(|m| m.leaf_index);
        Ok(api::GroupResponse {
            group_id: api::GroupId::from_bytes(gid)?,
            epoch: view.record.epoch,
            ciphersuite: view.record.ciphersuite,
            members,
            last_seq: visible,
        })
    }

    /// The latest GroupInfo of the group, or empty: for members, and for
    /// the devices of member users (a new device joins from it).
    pub async fn latest_group_info(&self, user: &str, gid: &GroupId) -> Result<Vec<u8>, DsError> {
        let gid = gid.as_bytes();
        let rt = self.group(gid).await?;
        // A resync builds on it: never hand out an epoch another replica has moved past.
        self.refresh_unlocked(&rt).await?;
        let view = rt.view()?;
        if !user_in(&view.members, grove_proto::identity::split_mailbox(user).0) {
            return Err(DsError::NotAMember);
        }
        Ok(view.record.group_info.as_slice().to_vec())
    }
}
