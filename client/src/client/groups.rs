//! Groups: finding one, creating one, and the operations on its membership
//! (add, remove, self-update, leave).

use grove_proto as proto;
use openmls::prelude::*;
use tls_codec::{Deserialize as _, Serialize as _};

use super::commit::CommitOp;
use super::{b64url, hash, identity_of, Client, CommitOutcome, SyncReport, MAX_PAST_EPOCHS};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{Envelope, GroupRecord, GroupState, HistoryPolicy, OutboxEntry};
use crate::repo::Repo;
use crate::storage::TxnProvider;

fn create_config(suite: Ciphersuite) -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(suite)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .build()
}

/// How groups joined from a Welcome are configured.
pub(super) fn join_config() -> MlsGroupJoinConfig {
    padded_join_config(0)
}

/// The group configuration with MLS padding to multiples of `padding_size`
/// bytes (see [`padding_block`]); the rest is as every Grove group has it.
pub(super) fn padded_join_config(padding_size: usize) -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .padding_size(padding_size)
        .build()
}

/// An upper bound on the bytes of a PrivateMessage's padded content besides
/// the application data: its length prefix, the signature (and its length),
/// the AEAD tag. About 90 with Ed25519; the margin leaves room for larger
/// signatures and later fields.
const PADDING_MARGIN: usize = 192;

/// The smallest bucket: every short message (a text of up to ~290 bytes)
/// looks the same.
const PADDING_SMALLEST: usize = 512;

/// Past this, padded lengths are multiples of it rather than powers of two.
const PADDING_LARGE: usize = 4096;

/// The MLS padding block (RFC 9420 §6.3.1) for an application message of
/// `payload_len` bytes, so that the DS learns only a bucket of its length:
/// the padded content (application data plus [`PADDING_MARGIN`]) fills the
/// smallest power of two from 512 to 4 KiB that holds it, and above 4 KiB
/// the smallest multiple of 4 KiB that holds it. openmls pads to a multiple
/// of the block, so a block at least as large as the content pads it to
/// exactly the block.
pub(super) fn padding_block(payload_len: usize) -> usize {
    let framed = payload_len.saturating_add(PADDING_MARGIN);
    if framed > PADDING_LARGE {
        framed.div_ceil(PADDING_LARGE).saturating_mul(PADDING_LARGE)
    } else {
        framed.next_power_of_two().max(PADDING_SMALLEST)
    }
}

impl Client {
    pub(super) fn group_record(&self, gid: &[u8]) -> Result<GroupRecord> {
        self.repo().groups().require(gid)
    }

    /// The group's MLS state inside transaction `p`.
    pub(super) fn load(p: &TxnProvider<'_>, gid: &[u8]) -> Result<MlsGroup> {
        MlsGroup::load(p.storage(), &GroupId::from_slice(gid))?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))
    }

    /// The group's MLS state as committed.
    pub(super) fn group(&self, gid: &[u8]) -> Result<MlsGroup> {
        self.try_group(gid)?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))
    }

    /// The group's MLS state as committed, if this client has any.
    pub(super) fn try_group(&self, gid: &[u8]) -> Result<Option<MlsGroup>> {
        Ok(MlsGroup::load(self.provider.storage(), &GroupId::from_slice(gid))?)
    }

    /// Resolves a group name or id (base64url) to the group id. A name shared
    /// by several groups fails with [`Error::AmbiguousGroup`].
    pub fn resolve_group(&self, name_or_id: &str) -> Result<Vec<u8>> {
        self.repo().groups().resolve(name_or_id)
    }

    /// Creates a group named `name` (the name travels only inside MLS
    /// application data) and registers it with the DS, with history policy
    /// [`HistoryPolicy::None`]. Returns its id.
    pub async fn create_group(&self, name: &str) -> Result<String> {
        self.create_group_with(name, HistoryPolicy::None).await
    }

    /// Creates a group named `name` with the given resource history policy
    /// (see [`HistoryPolicy`]). Returns its id.
    pub async fn create_group_with(&self, name: &str, history: HistoryPolicy) -> Result<String> {
        let _op = self.ops.lock().await;
        let (gid, body) = self.new_group(name, history)?;
        if let Err(e) = self.ds.create_group(body).await {
            // The DS does not know the group: forget it locally.
            self.provider.transaction(|p| -> Result<()> {
                if let Some(mut g) = MlsGroup::load(p.storage(), &GroupId::from_slice(&gid))? {
                    g.delete(p.storage())?;
                }
                Repo::of(p).groups().remove(&gid)
            })?;
            return Err(e);
        }
        self.send_payload(&gid, &Envelope::GroupName { name: name.to_owned(), history: Some(history) }, None).await?;
        Ok(b64url(&gid))
    }

    /// Creates the group locally; returns its id and the DS's creation body.
    fn new_group(&self, name: &str, history: HistoryPolicy) -> Result<(Vec<u8>, Vec<u8>)> {
        let suite = self.suite();
        let cwk = self.cwk();
        self.provider.transaction(|p| -> Result<(Vec<u8>, Vec<u8>)> {
            let group =
                MlsGroup::new(p, self.signer.as_ref(), &create_config(suite), cwk.clone()).mls("create the group")?;
            let gid = group.group_id().as_slice().to_vec();
            // With the ratchet tree, like every commit's GroupInfo: a device of
            // this user may join by an external commit before any commit.
            let gi = group.export_group_info(p.crypto(), self.signer.as_ref(), true).mls("export the group info")?;
            let body = proto::GroupCreateBody {
                group_info: gi.tls_serialize_detached().mls("encode")?.into(),
                ratchet_tree: group.export_ratchet_tree().tls_serialize_detached().mls("encode")?.into(),
            }
            .tls_serialize_detached()
            .mls("encode")?;
            let rec = GroupRecord::fresh(Some(name.to_owned()), 0, history, self.now_secs());
            Repo::of(p).groups().put(&gid, &rec)?;
            Ok((gid, body))
        })
    }

    /// Adds `users` to the group, each with all of their current devices:
    /// claims one KeyPackage per device (one for a single-key user), checks
    /// each package's signature, that its key is the pinned identity of that
    /// user, and that its device is in the user's verified device list,
    /// commits once, and posts the commit with the Welcome. A device without
    /// a package left is skipped: it joins later on its own (`client/link.rs`).
    pub async fn add_members(&self, group: &str, users: &[&str]) -> Result<CommitOutcome> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        let mut kps = Vec::new();
        for user in users {
            kps.extend(self.claim_user(user).await?);
        }
        let outcome = self.commit(&gid, "add", CommitOp::Add(kps)).await?;
        if outcome.committed {
            let added: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
            self.announce_to_new_members(&gid, &added).await?;
        }
        Ok(outcome)
    }

    /// One checked KeyPackage of each current device of `user`.
    async fn claim_user(&self, user: &str) -> Result<Vec<KeyPackage>> {
        let suite = self.suite();
        let pinned = self.pinned_key(user).await?;
        let list = self.device_list_of(user).await?;
        let claimed = match &list {
            Some(_) => self.ds.claim_devices(user, self.id.ciphersuite).await?.key_packages,
            None => vec![proto::ClaimedKeyPackage {
                device: None,
                last_resort: false,
                key_package: self.ds.claim(user, self.id.ciphersuite).await?,
            }],
        };
        let mut kps = Vec::new();
        for c in claimed {
            let kp = self.check_key_package(user, &c.key_package, suite)?;
            let leaf = kp.leaf_node();
            let seen = super::devices::pin_key_of(user, leaf.credential(), leaf.signature_key().as_slice());
            if seen != pinned {
                self.check_key(user, &seen)?;
            }
            // The device must be in the user's latest list as this client
            // verified it: the DS cannot sign a list, so it cannot slip in
            // a device the user never added, or one it revoked.
            if let Some(list) = &list {
                if !list.contains(leaf.signature_key().as_slice()) {
                    tracing::warn!(
                        user,
                        version = list.version(),
                        "skipping a KeyPackage of a device not in the verified list"
                    );
                    continue;
                }
            }
            kps.push(kp);
        }
        if kps.is_empty() {
            let version = list.as_ref().map_or(0, |l| l.version());
            return Err(Error::BadKeyPackage {
                user: user.to_owned(),
                reason: format!("none of its KeyPackages is of a device in {user}'s device list (version {version})"),
            });
        }
        Ok(kps)
    }

    fn check_key_package(&self, user: &str, bytes: &[u8], suite: Ciphersuite) -> Result<KeyPackage> {
        let bad = |reason: String| Error::BadKeyPackage { user: user.to_owned(), reason };
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| bad(format!("not an MLSMessage: {e}")))?;
        let MlsMessageBodyIn::KeyPackage(kp_in) = msg.extract() else {
            return Err(bad("not a KeyPackage".into()));
        };
        let kp = kp_in
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| bad(format!("does not verify: {e:?}")))?;
        if kp.ciphersuite() != suite {
            return Err(bad(format!("ciphersuite {:?}, expected {suite:?}", kp.ciphersuite())));
        }
        let who = identity_of(kp.leaf_node().credential());
        if who != user {
            return Err(bad(format!("its credential names {who}")));
        }
        Ok(kp)
    }

    /// Removes `users` from the group (one commit).
    pub async fn remove_members(&self, group: &str, users: &[&str]) -> Result<CommitOutcome> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        let members = self.members(group)?;
        for u in users {
            if !members.iter().any(|m| m.user == *u) {
                return Err(Error::NotInGroup { user: (*u).to_owned(), group: group.to_owned() });
            }
        }
        self.commit(&gid, "remove", CommitOp::Remove(users.iter().map(|u| (*u).to_owned()).collect())).await
    }

    /// Updates the own leaf (fresh HPKE key: post-compromise security).
    pub async fn self_update(&self, group: &str) -> Result<CommitOutcome> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.commit(&gid, "update", CommitOp::Update).await
    }

    /// Asks to leave: posts a remove proposal for the own leaf. The next member
    /// who syncs commits it; until then the group is `leaving`.
    pub async fn leave(&self, group: &str) -> Result<()> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        let mut backoff = self.backoff();
        loop {
            let bytes = self.provider.transaction(|p| -> Result<Vec<u8>> {
                let mut g = Self::load(p, &gid)?;
                let msg = g.leave_group(p, self.signer.as_ref()).mls("leave")?;
                let bytes = msg.tls_serialize_detached().mls("encode")?;
                let entry = OutboxEntry { group: gid.clone(), local: None, message: Vec::new(), envelope: None };
                Repo::of(p).outbox().put(&hash(&bytes), &entry)?;
                Ok(bytes)
            })?;
            match self.ds.post_message(&b64url(&gid), bytes.clone()).await {
                Ok(_) => {
                    self.set_state(&gid, GroupState::Leaving)?;
                    return Ok(());
                }
                Err(Error::Server { status: 409, .. }) => {
                    self.provider.transaction(|p| -> Result<()> {
                        Self::load(p, &gid)?.clear_pending_proposals(p.storage())?;
                        Repo::of(p).outbox().remove(&hash(&bytes))
                    })?;
                    if !backoff.pause().await {
                        return Err(backoff.exhausted("leave"));
                    }
                    self.sync_group(&gid, &mut SyncReport::default()).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Refuses to send into a group this client left, or one with an
    /// unacknowledged server rollback or fork.
    pub(super) fn require_active(&self, gid: &[u8]) -> Result<()> {
        match self.group_record(gid)?.state {
            GroupState::Left => Err(Error::GroupLeft(b64url(gid))),
            _ => {
                self.require_no_rollback(gid)?;
                self.require_no_successor(gid)?;
                self.require_no_fork(gid)
            }
        }
    }

    /// Sets the group's membership state.
    pub(super) fn set_state(&self, gid: &[u8], state: GroupState) -> Result<()> {
        self.provider.transaction(|p| Repo::of(p).groups().update(gid, |rec| rec.state = state).map(drop))
    }
}
