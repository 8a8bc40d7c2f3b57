//! Decoding and validating handshake messages against a group's public state:
//! the message's shape, its sender, its epoch, and for a commit bundle the
//! whole bundle (commit, Welcome, GroupInfo), so that what comes out, a
//! [`ValidatedCommit`], is safe to merge and append.

use std::collections::HashSet;

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use tls_codec::{Deserialize as _, Serialize as _};

use super::devices::Binding;
use super::runtime::{mailbox_of, user_in, GroupRt, PublicState};
use super::Ds;
use crate::api;
use crate::error::DsError;

/// Decodes a TLS-encoded MLSMessage.
pub(super) fn parse_mls(bytes: &[u8]) -> Result<MlsMessageBodyIn, DsError> {
    if bytes.is_empty() {
        return Err(DsError::MalformedMessage("empty body: expected a TLS-encoded MLSMessage".into()));
    }
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map(|m| m.extract())
        .map_err(|e| DsError::MalformedMessage(format!("not a TLS-encoded MLSMessage: {e}")))
}

/// The name of an MLSMessage body's type, for error messages.
pub(super) fn body_name(b: &MlsMessageBodyIn) -> &'static str {
    match b {
        MlsMessageBodyIn::PublicMessage(_) => "PublicMessage",
        MlsMessageBodyIn::PrivateMessage(_) => "PrivateMessage",
        MlsMessageBodyIn::Welcome(_) => "Welcome",
        MlsMessageBodyIn::GroupInfo(_) => "GroupInfo",
        MlsMessageBodyIn::KeyPackage(_) => "KeyPackage",
        #[allow(unreachable_patterns)]
        _ => "another message type",
    }
}

/// The name of a content type, for error messages.
pub(super) fn content_type_name(c: ContentType) -> &'static str {
    match c {
        ContentType::Application => "application",
        ContentType::Proposal => "proposal",
        ContentType::Commit => "commit",
    }
}

/// Decodes an MLSMessage that must be a GroupInfo (`field` names it in errors).
pub(super) fn parse_group_info(bytes: &[u8], field: &str) -> Result<VerifiableGroupInfo, DsError> {
    match parse_mls(bytes)? {
        MlsMessageBodyIn::GroupInfo(gi) => Ok(gi),
        other => Err(DsError::WrongMessageType(format!("{field} must be a GroupInfo, got a {}", body_name(&other)))),
    }
}

/// Who made a commit.
pub(super) enum Committer {
    /// A member, from its leaf.
    Member(LeafNodeIndex),
    /// A member resyncing by an external commit (RFC 9420 §12.4.3.2), or a
    /// new device of a member joining by one, by mailbox: its new leaf is
    /// known only once the commit is merged.
    External(String),
}

/// A commit that passed every check, ready to merge.
pub(super) struct ValidatedCommit {
    /// The epoch the commit was made in (the group's current epoch).
    pub(super) epoch: u64,
    /// The committer.
    pub(super) committer: Committer,
    /// The staged commit, to merge into a copy of the public state.
    pub(super) staged: StagedCommit,
    /// The users the commit adds (each gets the bundle's Welcome).
    pub(super) added: Vec<String>,
    /// The GroupInfo of the new epoch, if the bundle carries one.
    pub(super) group_info: VerifiableGroupInfo,
}

impl Ds {
    /// Decodes the commit of a bundle: a PublicMessage commit for group
    /// `gid`. Also says whether it is an external commit.
    pub(super) fn commit_message(
        bundle: &api::CommitBundleBody,
        gid: &[u8],
    ) -> Result<(ProtocolMessage, bool), DsError> {
        let pm = match parse_mls(bundle.commit.as_slice())? {
            MlsMessageBodyIn::PublicMessage(pm) => pm,
            MlsMessageBodyIn::PrivateMessage(_) => {
                return Err(DsError::WrongWireFormat(
                    "commits must be sent as PublicMessage so the DS can validate them".into(),
                ))
            }
            other => return Err(DsError::WrongMessageType(format!("expected a Commit, got a {}", body_name(&other)))),
        };
        let external = matches!(pm.sender(), Sender::NewMemberCommit);
        let protocol: ProtocolMessage = pm.into();
        if protocol.content_type() != ContentType::Commit {
            return Err(DsError::WrongMessageType(format!(
                "expected a commit, got a {} (post it to /messages)",
                content_type_name(protocol.content_type())
            )));
        }
        if protocol.group_id().as_slice() != gid {
            return Err(DsError::GroupIdMismatch);
        }
        Ok((protocol, external))
    }

    /// Validates a commit bundle under the group's commit lock: membership and
    /// epoch, the commit itself (openmls), its sender, every leaf it brings in,
    /// and that the Welcome and GroupInfo match it. `mailbox` is the
    /// committer's (`grove_proto::identity::mailbox`).
    pub(super) async fn validate_commit(
        &self,
        mailbox: &str,
        rt: &GroupRt,
        public: &mut PublicState,
        (protocol, external): (ProtocolMessage, bool),
        bundle: &api::CommitBundleBody,
    ) -> Result<ValidatedCommit, DsError> {
        // A device of a member user that is not in the group yet may join by
        // an external commit (`check_join`); everyone else must be a member.
        let joining = external && !rt.view()?.members.contains_key(mailbox);
        let epoch = match joining {
            true => Self::check_join_epoch(mailbox, rt, public, &protocol)?,
            false => Self::check_handshake(mailbox, rt, public, &protocol)?,
        };
        let processed =
            public.group.process_message(&self.crypto, protocol).map_err(|e| DsError::InvalidCommit(e.to_string()))?;
        let committer = match processed.sender() {
            Sender::NewMemberCommit => Committer::External(mailbox.to_owned()),
            other => {
                self.check_sender(mailbox, &public.group, other).await?;
                let Sender::Member(leaf) = other else { unreachable!("check_sender admits members only") };
                Committer::Member(*leaf)
            }
        };
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(s) => *s,
            _ => return Err(DsError::InvalidCommit("the message is not a commit".into())),
        };
        match (&committer, joining) {
            (Committer::External(_), false) => self.check_resync(mailbox, &public.group, &staged).await?,
            (Committer::External(_), true) => self.check_join(mailbox, &staged).await?,
            _ => {}
        }
        let (added, added_refs) = self.check_new_leaves(&staged).await?;
        check_welcome(bundle.welcome.as_slice(), &added_refs)?;
        let group_info = new_group_info(bundle.group_info.as_slice(), rt.group_id.as_slice(), epoch + 1)?;
        Ok(ValidatedCommit { epoch, committer, staged, added, group_info })
    }

    /// Validates a proposal under the group's commit lock: membership and
    /// epoch, the proposal itself (openmls), its sender, and the leaf an Add or
    /// Update brings in. Returns the epoch and the proposal to queue.
    pub(super) async fn validate_proposal(
        &self,
        user: &str,
        rt: &GroupRt,
        public: &mut PublicState,
        protocol: ProtocolMessage,
    ) -> Result<(u64, QueuedProposal), DsError> {
        let epoch = Self::check_handshake(user, rt, public, &protocol)?;
        let processed = public
            .group
            .process_message(&self.crypto, protocol)
            .map_err(|e| DsError::InvalidProposal(e.to_string()))?;
        self.check_sender(user, &public.group, processed.sender()).await?;
        let queued = match processed.into_content() {
            ProcessedMessageContent::ProposalMessage(q) => *q,
            _ => return Err(DsError::InvalidProposal("the message is not a proposal".into())),
        };
        let leaf = match queued.proposal() {
            Proposal::Add(add) => Some(add.key_package().leaf_node()),
            Proposal::Update(upd) => Some(upd.leaf_node()),
            _ => None,
        };
        if let Some(leaf) = leaf {
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice()).await?;
        }
        Ok((epoch, queued))
    }

    /// Every member a commit brings in, or whose leaf it changes, must be a
    /// registered user with its registered key: a member cannot slip in a key
    /// the server's registry does not vouch for. Returns the added users and
    /// the hash references of their KeyPackages.
    async fn check_new_leaves(&self, staged: &StagedCommit) -> Result<(Vec<String>, HashSet<Vec<u8>>), DsError> {
        let mut added = Vec::new();
        let mut added_refs = HashSet::new();
        for add in staged.add_proposals() {
            let kp = add.add_proposal().key_package();
            let leaf = kp.leaf_node();
            let who = self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice()).await?;
            let r = kp.hash_ref(&self.crypto).map_err(|e| DsError::Internal(e.to_string()))?;
            added_refs.insert(r.as_slice().to_vec());
            added.push(who);
        }
        for upd in staged.update_proposals() {
            let leaf = upd.update_proposal().leaf_node();
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice()).await?;
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice()).await?;
        }
        Ok((added, added_refs))
    }

    /// An external commit is accepted only as a resync (RFC 9420 §12.4.3.2): a
    /// current member replaces its own leaf and nothing else. It removes
    /// exactly the caller's old leaf, adds and updates no one, and its new
    /// leaf carries the caller's registered credential and key. So a removed
    /// member (refused earlier, as a non-member) or a stranger cannot join
    /// this way, and no one can replace another member's leaf.
    async fn check_resync(&self, mailbox: &str, group: &PublicGroup, staged: &StagedCommit) -> Result<(), DsError> {
        let refuse = |why: &str| Err(DsError::InvalidCommit(format!("external commit refused: {why}")));
        let mut removes = staged.remove_proposals();
        let old = match (removes.next(), removes.next()) {
            (Some(r), None) => r.remove_proposal().removed(),
            _ => return refuse("it must remove exactly the committer's own old leaf (a resync)"),
        };
        if group.leaf(old).and_then(|l| mailbox_of(l.credential())).as_deref() != Some(mailbox) {
            return refuse("the leaf it removes is not the committer's");
        }
        let only_resync =
            staged.queued_proposals().all(|q| matches!(q.proposal(), Proposal::ExternalInit(_) | Proposal::Remove(_)));
        if !only_resync {
            return refuse("it may carry only ExternalInit and the Remove of the committer's old leaf");
        }
        let leaf =
            staged.update_path_leaf_node().ok_or(DsError::InvalidCommit("external commit without a path".into()))?;
        if self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice()).await? != mailbox {
            return Err(DsError::SenderMismatch);
        }
        Ok(())
    }

    /// A new device of a user who is a member joins by an external commit
    /// (`docs/identity.md`): it removes no one, adds and updates no one, and
    /// its new leaf is the committing device itself, certified and in its
    /// user's latest device list. A user who is not a member (never was, or
    /// was removed) cannot join this way.
    async fn check_join(&self, mailbox: &str, staged: &StagedCommit) -> Result<(), DsError> {
        let only_init = staged.queued_proposals().all(|q| matches!(q.proposal(), Proposal::ExternalInit(_)));
        if !only_init {
            return Err(DsError::InvalidCommit(
                "external commit refused: a joining device's commit may carry only ExternalInit".into(),
            ));
        }
        let leaf =
            staged.update_path_leaf_node().ok_or(DsError::InvalidCommit("external commit without a path".into()))?;
        if self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice()).await? != mailbox {
            return Err(DsError::SenderMismatch);
        }
        Ok(())
    }

    /// The epoch check of a joining device's external commit: its user
    /// must have a leaf in the group (membership first, as for members).
    fn check_join_epoch(
        mailbox: &str,
        rt: &GroupRt,
        public: &PublicState,
        protocol: &ProtocolMessage,
    ) -> Result<u64, DsError> {
        let (user, device) = grove_proto::identity::split_mailbox(mailbox);
        if device.is_none() || !user_in(&rt.view()?.members, user) {
            return Err(DsError::NotAMember);
        }
        Self::epoch_of(public, protocol)
    }
    /// Membership, then epoch, of a handshake message, under the commit lock.
    /// Membership comes first, so a non-member learns nothing about the epoch.
    pub(super) fn check_handshake(
        user: &str,
        rt: &GroupRt,
        public: &PublicState,
        protocol: &ProtocolMessage,
    ) -> Result<u64, DsError> {
        if !rt.view()?.members.contains_key(user) {
            return Err(DsError::NotAMember);
        }
        Self::epoch_of(public, protocol)
    }

    /// The message's epoch, which must be the group's current one.
    fn epoch_of(public: &PublicState, protocol: &ProtocolMessage) -> Result<u64, DsError> {
        let current = public.group.group_context().epoch().as_u64();
        let got = protocol.epoch().as_u64();
        if got < current {
            return Err(DsError::StaleEpoch { current, got });
        }
        if got > current {
            return Err(DsError::WrongEpoch { current, got });
        }
        Ok(current)
    }

    /// The sender of a handshake message must be the authenticated device's
    /// own leaf (`mailbox`), with its registered or certified key.
    pub(super) async fn check_sender(
        &self,
        mailbox: &str,
        group: &PublicGroup,
        sender: &Sender,
    ) -> Result<(), DsError> {
        let Sender::Member(leaf) = sender else {
            return Err(DsError::WrongMessageType(
                "only members may send handshake messages (no external senders)".into(),
            ));
        };
        let node = group.leaf(*leaf).ok_or(DsError::SenderMismatch)?;
        if mailbox_of(node.credential()).as_deref() != Some(mailbox) {
            return Err(DsError::SenderMismatch);
        }
        let key = node.signature_key().as_slice();
        let user = grove_proto::identity::split_mailbox(mailbox).0;
        match self.binding(user).await? {
            Binding::Legacy(rec) if key == rec.signature_key.as_slice() => Ok(()),
            b @ Binding::Devices(..) if b.check_leaf(user, node.credential(), key).is_ok() => Ok(()),
            _ => Err(DsError::SenderMismatch),
        }
    }

    /// The GroupInfo of the new epoch must describe exactly the state the DS
    /// computed, signed by the committer's (possibly updated) leaf key.
    pub(super) fn verify_group_info(
        &self,
        group: &PublicGroup,
        signer: LeafNodeIndex,
        gi: VerifiableGroupInfo,
    ) -> Result<(), DsError> {
        let ctx = |c: &GroupContext| c.tls_serialize_detached().map_err(|e| DsError::Internal(e.to_string()));
        if ctx(gi.group_context())? != ctx(group.group_context())? {
            return Err(DsError::InvalidGroupInfo("the GroupInfo's group context is not the new epoch's".into()));
        }
        let leaf =
            group.leaf(signer).ok_or_else(|| DsError::InvalidGroupInfo("the committer left the group".into()))?;
        let key = OpenMlsSignaturePublicKey::new(
            leaf.signature_key().as_slice().to_vec().into(),
            group.ciphersuite().signature_algorithm(),
        )
        .map_err(|e| DsError::InvalidGroupInfo(format!("committer key: {e:?}")))?;
        let tag_matches = group_info_tag(&gi)? == ctx_tag(group.confirmation_tag())?;
        // A resyncing member builds on the GroupInfo's ratchet tree: it must
        // be the tree the DS has (the tree hash in the context alone would
        // only make the resync fail, not tell the committer it is wrong).
        if let Some(ext) = gi.extensions().ratchet_tree() {
            let enc = |e: tls_codec::Error| DsError::Internal(format!("encoding a ratchet tree: {e}"));
            let theirs = ext.ratchet_tree().tls_serialize_detached().map_err(enc)?;
            if theirs != group.export_ratchet_tree().tls_serialize_detached().map_err(enc)? {
                return Err(DsError::InvalidGroupInfo("the GroupInfo's ratchet tree is not the new epoch's".into()));
            }
        }
        self.check_external_pub(group, &gi)?;
        gi.verify(&self.crypto, &key).map_err(|_| {
            DsError::InvalidGroupInfo("the GroupInfo's signature does not verify with the committer's key".into())
        })?;
        // Members resync from this GroupInfo (an external commit builds on its
        // confirmation tag): it must carry the tag the DS merged, or resyncing
        // members would build on a transcript the DS does not have.
        if !tag_matches {
            return Err(DsError::InvalidGroupInfo(
                "the GroupInfo's confirmation tag is not the commit's confirmation tag".into(),
            ));
        }
        Ok(())
    }
}

/// The TLS encoding of a confirmation tag.
fn ctx_tag(tag: &ConfirmationTag) -> Result<Vec<u8>, DsError> {
    tag.tls_serialize_detached().map_err(|e| DsError::Internal(e.to_string()))
}

/// The confirmation tag of a GroupInfo, TLS-encoded. openmls does not expose
/// it, so it is read from the encoding (RFC 9420 §12.4.3: the group context,
/// the extensions, then the tag).
fn group_info_tag(gi: &VerifiableGroupInfo) -> Result<Vec<u8>, DsError> {
    let enc = |e: tls_codec::Error| DsError::Internal(format!("encoding a GroupInfo: {e}"));
    let all = gi.tls_serialize_detached().map_err(enc)?;
    let skip = gi.group_context().tls_serialized_len() + gi.extensions().tls_serialized_len();
    let mut rest = all.get(skip..).ok_or_else(|| DsError::InvalidGroupInfo("truncated GroupInfo".into()))?;
    let tag = tls_codec::VLBytes::tls_deserialize(&mut rest)
        .map_err(|e| DsError::InvalidGroupInfo(format!("GroupInfo confirmation tag: {e}")))?;
    tag.tls_serialize_detached().map_err(enc)
}

impl Ds {
    /// A resync encrypts to the GroupInfo's `external_pub` key: it must be
    /// there and be a public key of the group's KEM (an HPKE seal to it
    /// works). The DS cannot tell whether it is the epoch's real key; a key
    /// no member holds still lets members resync (only the committer, the one
    /// member at that epoch, could not follow).
    fn check_external_pub(&self, group: &PublicGroup, gi: &VerifiableGroupInfo) -> Result<(), DsError> {
        use openmls::prelude::OpenMlsCrypto as _;
        let ext = gi.extensions().external_pub().ok_or_else(|| {
            DsError::InvalidGroupInfo("the GroupInfo has no external_pub extension (members resync from it)".into())
        })?;
        let config = group.ciphersuite().hpke_config();
        self.crypto.hpke_seal(config, ext.external_pub().as_slice(), b"", b"", b"").map(drop).map_err(|_| {
            DsError::InvalidGroupInfo(
                "the GroupInfo's external_pub is not a valid public key for its ciphersuite".into(),
            )
        })
    }
}

/// A Welcome goes with a commit exactly when it adds members, and its
/// recipients are exactly the KeyPackages the commit adds.
fn check_welcome(welcome: &[u8], added_refs: &HashSet<Vec<u8>>) -> Result<(), DsError> {
    match (added_refs.is_empty(), welcome.is_empty()) {
        (true, true) => Ok(()),
        (true, false) => Err(DsError::WelcomeMismatch("a Welcome was sent but the commit adds nobody".into())),
        (false, true) => Err(DsError::WelcomeMismatch("the commit adds members but no Welcome was sent".into())),
        (false, false) => {
            let welcome = match parse_mls(welcome)? {
                MlsMessageBodyIn::Welcome(w) => w,
                other => {
                    return Err(DsError::WrongMessageType(format!(
                        "welcome must be a Welcome, got a {}",
                        body_name(&other)
                    )))
                }
            };
            let refs: HashSet<Vec<u8>> = welcome.secrets().iter().map(|s| s.new_member().as_slice().to_vec()).collect();
            if &refs != added_refs {
                return Err(DsError::WelcomeMismatch(
                    "the Welcome's recipients are not exactly the KeyPackages the commit adds".into(),
                ));
            }
            Ok(())
        }
    }
}

/// The bundle's GroupInfo, which must be there, for this group's new epoch,
/// with the ratchet tree: members resync from it (`docs/api.md` §5.14), so
/// a commit without one would leave them no state to rejoin.
fn new_group_info(bytes: &[u8], gid: &[u8], new_epoch: u64) -> Result<VerifiableGroupInfo, DsError> {
    if bytes.is_empty() {
        return Err(DsError::InvalidGroupInfo(
            "a commit bundle must carry the new epoch's GroupInfo, with the ratchet_tree and external_pub \
             extensions (members resync from it)"
                .into(),
        ));
    }
    let gi = parse_group_info(bytes, "group_info")?;
    if gi.group_id().as_slice() != gid || gi.epoch().as_u64() != new_epoch {
        return Err(DsError::InvalidGroupInfo("the GroupInfo is not for this group's new epoch".into()));
    }
    if gi.extensions().ratchet_tree().is_none() {
        return Err(DsError::InvalidGroupInfo(
            "the GroupInfo has no ratchet_tree extension (members resync from it)".into(),
        ));
    }
    Ok(gi)
}
