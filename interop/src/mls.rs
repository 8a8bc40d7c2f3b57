//! Our own decoding and encoding of the RFC 9420 wire structures the verifiers
//! need to look inside (§6, §7, §12). Each type decodes with `decode` (reading
//! exactly its bytes) and encodes back with `encode`.
//!
//! Sub-structures nobody here needs to inspect (a credential's body, the
//! capabilities) are validated while decoding and kept as their encoded bytes.

use crate::codec::{Reader, Writer};
use crate::Error;

/// A decoded structure that can be written back.
pub trait Codec: Sized {
    /// Decodes one value from `r`.
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error>;
    /// Writes the value.
    fn encode(&self, w: &mut Writer);

    /// Decodes `bytes`, which must hold exactly one value.
    fn decode_exact(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish(std::any::type_name::<Self>())?;
        Ok(v)
    }

    /// The encoding as a byte vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }
}

fn list<T: Codec>(r: &mut Reader<'_>) -> Result<Vec<T>, Error> {
    r.vl_list(|r| T::decode(r))
}

fn write_list<T: Codec>(w: &mut Writer, items: &[T]) {
    let mut inner = Writer::new();
    for item in items {
        item.encode(&mut inner);
    }
    w.vl(&inner.finish());
}

fn u16_list(r: &mut Reader<'_>) -> Result<Vec<u16>, Error> {
    r.vl_list(|r| r.u16())
}

fn write_u16_list(w: &mut Writer, items: &[u16]) {
    let mut inner = Writer::new();
    for i in items {
        inner.u16(*i);
    }
    w.vl(&inner.finish());
}

/// `Extension`: a type and opaque data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// `extension_type`.
    pub kind: u16,
    /// `extension_data`.
    pub data: Vec<u8>,
}

impl Codec for Extension {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { kind: r.u16()?, data: r.vl()?.to_vec() })
    }
    fn encode(&self, w: &mut Writer) {
        w.u16(self.kind).vl(&self.data);
    }
}

/// `Credential` (§5.3): basic or X.509, kept as a type and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `basic`: an identity.
    Basic(Vec<u8>),
    /// `x509`: a certificate chain.
    X509(Vec<Vec<u8>>),
}

impl Codec for Credential {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        match r.u16()? {
            1 => Ok(Self::Basic(r.vl()?.to_vec())),
            2 => Ok(Self::X509(r.vl_list(|r| Ok(r.vl()?.to_vec()))?)),
            other => Err(Error::decode(format!("unknown credential type {other}"))),
        }
    }
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Basic(id) => {
                w.u16(1).vl(id);
            }
            Self::X509(certs) => {
                let mut inner = Writer::new();
                for c in certs {
                    inner.vl(c);
                }
                w.u16(2).vl(&inner.finish());
            }
        }
    }
}

/// `Capabilities` (§7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `versions`.
    pub versions: Vec<u16>,
    /// `cipher_suites`.
    pub cipher_suites: Vec<u16>,
    /// `extensions`.
    pub extensions: Vec<u16>,
    /// `proposals`.
    pub proposals: Vec<u16>,
    /// `credentials`.
    pub credentials: Vec<u16>,
}

impl Codec for Capabilities {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            versions: u16_list(r)?,
            cipher_suites: u16_list(r)?,
            extensions: u16_list(r)?,
            proposals: u16_list(r)?,
            credentials: u16_list(r)?,
        })
    }
    fn encode(&self, w: &mut Writer) {
        write_u16_list(w, &self.versions);
        write_u16_list(w, &self.cipher_suites);
        write_u16_list(w, &self.extensions);
        write_u16_list(w, &self.proposals);
        write_u16_list(w, &self.credentials);
    }
}

/// `leaf_node_source` and its variant fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafNodeSource {
    /// From a KeyPackage, with its lifetime `(not_before, not_after)`.
    KeyPackage(u64, u64),
    /// From an Update proposal.
    Update,
    /// From a Commit's UpdatePath, with its `parent_hash`.
    Commit(Vec<u8>),
}

/// `LeafNode` (§7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafNode {
    /// `encryption_key`.
    pub encryption_key: Vec<u8>,
    /// `signature_key`.
    pub signature_key: Vec<u8>,
    /// `credential`.
    pub credential: Credential,
    /// `capabilities`.
    pub capabilities: Capabilities,
    /// `leaf_node_source` and its fields.
    pub source: LeafNodeSource,
    /// `extensions`.
    pub extensions: Vec<Extension>,
    /// `signature`.
    pub signature: Vec<u8>,
}

impl LeafNode {
    fn encode_unsigned(&self, w: &mut Writer) {
        w.vl(&self.encryption_key).vl(&self.signature_key);
        self.credential.encode(w);
        self.capabilities.encode(w);
        match &self.source {
            LeafNodeSource::KeyPackage(nb, na) => {
                w.u8(1).u64(*nb).u64(*na);
            }
            LeafNodeSource::Update => {
                w.u8(2);
            }
            LeafNodeSource::Commit(ph) => {
                w.u8(3).vl(ph);
            }
        }
        write_list(w, &self.extensions);
    }

    /// `LeafNodeTBS`: the signed fields, with `group_id` and `leaf_index`
    /// for update and commit leaves.
    pub fn tbs(&self, group_id: &[u8], leaf_index: u32) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_unsigned(&mut w);
        if !matches!(self.source, LeafNodeSource::KeyPackage(..)) {
            w.vl(group_id).u32(leaf_index);
        }
        w.finish()
    }

    /// The `parent_hash` of a commit leaf.
    pub fn parent_hash(&self) -> Option<&[u8]> {
        match &self.source {
            LeafNodeSource::Commit(ph) => Some(ph),
            _ => None,
        }
    }
}

impl Codec for LeafNode {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let encryption_key = r.vl()?.to_vec();
        let signature_key = r.vl()?.to_vec();
        let credential = Credential::decode(r)?;
        let capabilities = Capabilities::decode(r)?;
        let source = match r.u8()? {
            1 => LeafNodeSource::KeyPackage(r.u64()?, r.u64()?),
            2 => LeafNodeSource::Update,
            3 => LeafNodeSource::Commit(r.vl()?.to_vec()),
            other => return Err(Error::decode(format!("leaf_node_source {other}"))),
        };
        Ok(Self {
            encryption_key,
            signature_key,
            credential,
            capabilities,
            source,
            extensions: list(r)?,
            signature: r.vl()?.to_vec(),
        })
    }
    fn encode(&self, w: &mut Writer) {
        self.encode_unsigned(w);
        w.vl(&self.signature);
    }
}

/// `ParentNode` (§7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentNode {
    /// `encryption_key`.
    pub encryption_key: Vec<u8>,
    /// `parent_hash`.
    pub parent_hash: Vec<u8>,
    /// `unmerged_leaves` (leaf indices).
    pub unmerged_leaves: Vec<u32>,
}

impl Codec for ParentNode {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            encryption_key: r.vl()?.to_vec(),
            parent_hash: r.vl()?.to_vec(),
            unmerged_leaves: r.vl_list(|r| r.u32())?,
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.encryption_key).vl(&self.parent_hash);
        let mut inner = Writer::new();
        for l in &self.unmerged_leaves {
            inner.u32(*l);
        }
        w.vl(&inner.finish());
    }
}

/// `Node` (§12.4.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A leaf.
    Leaf(LeafNode),
    /// A parent.
    Parent(ParentNode),
}

impl Node {
    /// The node's public HPKE key.
    pub fn encryption_key(&self) -> &[u8] {
        match self {
            Node::Leaf(l) => &l.encryption_key,
            Node::Parent(p) => &p.encryption_key,
        }
    }
}

impl Codec for Node {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        match r.u8()? {
            1 => Ok(Node::Leaf(LeafNode::decode(r)?)),
            2 => Ok(Node::Parent(ParentNode::decode(r)?)),
            other => Err(Error::decode(format!("node_type {other}"))),
        }
    }
    fn encode(&self, w: &mut Writer) {
        match self {
            Node::Leaf(l) => {
                w.u8(1);
                l.encode(w);
            }
            Node::Parent(p) => {
                w.u8(2);
                p.encode(w);
            }
        }
    }
}

impl<T: Codec> Codec for Option<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        r.optional(|r| T::decode(r))
    }
    fn encode(&self, w: &mut Writer) {
        match self {
            None => {
                w.u8(0);
            }
            Some(v) => {
                w.u8(1);
                v.encode(w);
            }
        }
    }
}

/// The `ratchet_tree` extension body: `optional<Node> nodes<V>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatchetTree(pub Vec<Option<Node>>);

impl Codec for RatchetTree {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self(list(r)?))
    }
    fn encode(&self, w: &mut Writer) {
        write_list(w, &self.0);
    }
}

/// `KeyPackage` (§10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackage {
    /// `version`.
    pub version: u16,
    /// `cipher_suite`.
    pub cipher_suite: u16,
    /// `init_key`.
    pub init_key: Vec<u8>,
    /// `leaf_node`.
    pub leaf_node: LeafNode,
    /// `extensions`.
    pub extensions: Vec<Extension>,
    /// `signature`.
    pub signature: Vec<u8>,
}

impl KeyPackage {
    /// `KeyPackageTBS`: everything but the signature.
    pub fn tbs(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u16(self.version).u16(self.cipher_suite).vl(&self.init_key);
        self.leaf_node.encode(&mut w);
        write_list(&mut w, &self.extensions);
        w.finish()
    }
}

impl Codec for KeyPackage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            version: r.u16()?,
            cipher_suite: r.u16()?,
            init_key: r.vl()?.to_vec(),
            leaf_node: LeafNode::decode(r)?,
            extensions: list(r)?,
            signature: r.vl()?.to_vec(),
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.tbs()).vl(&self.signature);
    }
}

/// `PreSharedKeyID` (§8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PskId {
    /// External or resumption, with the variant's fields.
    pub kind: PskKind,
    /// `psk_nonce`.
    pub nonce: Vec<u8>,
}

/// The variant part of a [`PskId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PskKind {
    /// `external`: `psk_id`.
    External(Vec<u8>),
    /// `resumption`: usage, group id and epoch.
    Resumption {
        /// `usage`.
        usage: u8,
        /// `psk_group_id`.
        group_id: Vec<u8>,
        /// `psk_epoch`.
        epoch: u64,
    },
}

impl Codec for PskId {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let kind = match r.u8()? {
            1 => PskKind::External(r.vl()?.to_vec()),
            2 => PskKind::Resumption { usage: r.u8()?, group_id: r.vl()?.to_vec(), epoch: r.u64()? },
            other => return Err(Error::decode(format!("psktype {other}"))),
        };
        Ok(Self { kind, nonce: r.vl()?.to_vec() })
    }
    fn encode(&self, w: &mut Writer) {
        match &self.kind {
            PskKind::External(id) => {
                w.u8(1).vl(id);
            }
            PskKind::Resumption { usage, group_id, epoch } => {
                w.u8(2).u8(*usage).vl(group_id).u64(*epoch);
            }
        }
        w.vl(&self.nonce);
    }
}

/// `Proposal` (§12.1), with the proposal type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// `add`.
    Add(KeyPackage),
    /// `update`.
    Update(LeafNode),
    /// `remove`: the removed leaf index.
    Remove(u32),
    /// `psk`.
    Psk(PskId),
    /// `reinit`.
    ReInit {
        /// `group_id`.
        group_id: Vec<u8>,
        /// `version`.
        version: u16,
        /// `cipher_suite`.
        cipher_suite: u16,
        /// `extensions`.
        extensions: Vec<Extension>,
    },
    /// `external_init`: `kem_output`.
    ExternalInit(Vec<u8>),
    /// `group_context_extensions`.
    GroupContextExtensions(Vec<Extension>),
}

impl Proposal {
    /// Decodes the body of a proposal of type `kind` (the part after the type).
    pub fn decode_body(kind: u16, r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(match kind {
            1 => Self::Add(KeyPackage::decode(r)?),
            2 => Self::Update(LeafNode::decode(r)?),
            3 => Self::Remove(r.u32()?),
            4 => Self::Psk(PskId::decode(r)?),
            5 => Self::ReInit {
                group_id: r.vl()?.to_vec(),
                version: r.u16()?,
                cipher_suite: r.u16()?,
                extensions: list(r)?,
            },
            6 => Self::ExternalInit(r.vl()?.to_vec()),
            7 => Self::GroupContextExtensions(list(r)?),
            other => return Err(Error::decode(format!("unknown proposal type {other}"))),
        })
    }

    /// Writes the body only (no proposal type).
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Self::Add(kp) => kp.encode(w),
            Self::Update(leaf) => leaf.encode(w),
            Self::Remove(i) => {
                w.u32(*i);
            }
            Self::Psk(id) => id.encode(w),
            Self::ReInit { group_id, version, cipher_suite, extensions } => {
                w.vl(group_id).u16(*version).u16(*cipher_suite);
                write_list(w, extensions);
            }
            Self::ExternalInit(kem) => {
                w.vl(kem);
            }
            Self::GroupContextExtensions(ext) => write_list(w, ext),
        }
    }

    /// The proposal type code point.
    pub fn kind(&self) -> u16 {
        match self {
            Self::Add(_) => 1,
            Self::Update(_) => 2,
            Self::Remove(_) => 3,
            Self::Psk(_) => 4,
            Self::ReInit { .. } => 5,
            Self::ExternalInit(_) => 6,
            Self::GroupContextExtensions(_) => 7,
        }
    }
}

impl Codec for Proposal {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let kind = r.u16()?;
        Self::decode_body(kind, r)
    }
    fn encode(&self, w: &mut Writer) {
        w.u16(self.kind());
        self.encode_body(w);
    }
}

/// `ProposalOrRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposalOrRef {
    /// An inline proposal.
    Proposal(Box<Proposal>),
    /// A `ProposalRef`.
    Reference(Vec<u8>),
}

impl Codec for ProposalOrRef {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        match r.u8()? {
            1 => Ok(Self::Proposal(Box::new(Proposal::decode(r)?))),
            2 => Ok(Self::Reference(r.vl()?.to_vec())),
            other => Err(Error::decode(format!("ProposalOrRefType {other}"))),
        }
    }
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Proposal(p) => {
                w.u8(1);
                p.encode(w);
            }
            Self::Reference(r) => {
                w.u8(2).vl(r);
            }
        }
    }
}

/// `HPKECiphertext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeCiphertext {
    /// `kem_output`.
    pub kem_output: Vec<u8>,
    /// `ciphertext`.
    pub ciphertext: Vec<u8>,
}

impl Codec for HpkeCiphertext {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { kem_output: r.vl()?.to_vec(), ciphertext: r.vl()?.to_vec() })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.kem_output).vl(&self.ciphertext);
    }
}

/// `UpdatePathNode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePathNode {
    /// `encryption_key`.
    pub encryption_key: Vec<u8>,
    /// `encrypted_path_secret`, one per node of the copath child's resolution.
    pub encrypted_path_secret: Vec<HpkeCiphertext>,
}

impl Codec for UpdatePathNode {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { encryption_key: r.vl()?.to_vec(), encrypted_path_secret: list(r)? })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.encryption_key);
        write_list(w, &self.encrypted_path_secret);
    }
}

/// `UpdatePath` (§7.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePath {
    /// `leaf_node`.
    pub leaf_node: LeafNode,
    /// `nodes`.
    pub nodes: Vec<UpdatePathNode>,
}

impl Codec for UpdatePath {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { leaf_node: LeafNode::decode(r)?, nodes: list(r)? })
    }
    fn encode(&self, w: &mut Writer) {
        self.leaf_node.encode(w);
        write_list(w, &self.nodes);
    }
}

/// `Commit` (§12.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// `proposals`.
    pub proposals: Vec<ProposalOrRef>,
    /// `path`.
    pub path: Option<UpdatePath>,
}

impl Codec for Commit {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { proposals: list(r)?, path: Option::<UpdatePath>::decode(r)? })
    }
    fn encode(&self, w: &mut Writer) {
        write_list(w, &self.proposals);
        self.path.encode(w);
    }
}

/// `Sender` (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// `member`: a leaf index.
    Member(u32),
    /// `external`: a sender index.
    External(u32),
    /// `new_member_proposal`.
    NewMemberProposal,
    /// `new_member_commit`.
    NewMemberCommit,
}

impl Codec for Sender {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        match r.u8()? {
            1 => Ok(Self::Member(r.u32()?)),
            2 => Ok(Self::External(r.u32()?)),
            3 => Ok(Self::NewMemberProposal),
            4 => Ok(Self::NewMemberCommit),
            other => Err(Error::decode(format!("sender_type {other}"))),
        }
    }
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Member(i) => w.u8(1).u32(*i),
            Self::External(i) => w.u8(2).u32(*i),
            Self::NewMemberProposal => w.u8(3),
            Self::NewMemberCommit => w.u8(4),
        };
    }
}

/// The typed body of a `FramedContent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `application`: the application data.
    Application(Vec<u8>),
    /// `proposal`.
    Proposal(Proposal),
    /// `commit`.
    Commit(Commit),
}

impl Content {
    /// The `ContentType` code point.
    pub fn content_type(&self) -> u8 {
        match self {
            Content::Application(_) => 1,
            Content::Proposal(_) => 2,
            Content::Commit(_) => 3,
        }
    }

    /// Decodes a body of content type `ct`.
    pub fn decode_typed(ct: u8, r: &mut Reader<'_>) -> Result<Self, Error> {
        match ct {
            1 => Ok(Self::Application(r.vl()?.to_vec())),
            2 => Ok(Self::Proposal(Proposal::decode(r)?)),
            3 => Ok(Self::Commit(Commit::decode(r)?)),
            other => Err(Error::decode(format!("content_type {other}"))),
        }
    }

    /// Writes the body only (no content type).
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Content::Application(d) => {
                w.vl(d);
            }
            Content::Proposal(p) => p.encode(w),
            Content::Commit(c) => c.encode(w),
        }
    }
}

/// `FramedContent` (§6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedContent {
    /// `group_id`.
    pub group_id: Vec<u8>,
    /// `epoch`.
    pub epoch: u64,
    /// `sender`.
    pub sender: Sender,
    /// `authenticated_data`.
    pub authenticated_data: Vec<u8>,
    /// The typed body.
    pub content: Content,
}

impl Codec for FramedContent {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let group_id = r.vl()?.to_vec();
        let epoch = r.u64()?;
        let sender = Sender::decode(r)?;
        let authenticated_data = r.vl()?.to_vec();
        let ct = r.u8()?;
        Ok(Self { group_id, epoch, sender, authenticated_data, content: Content::decode_typed(ct, r)? })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.group_id).u64(self.epoch);
        self.sender.encode(w);
        w.vl(&self.authenticated_data).u8(self.content.content_type());
        self.content.encode_body(w);
    }
}

/// `FramedContentAuthData`: the signature and, for commits, the confirmation tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    /// `signature`.
    pub signature: Vec<u8>,
    /// `confirmation_tag`, present exactly for commits.
    pub confirmation_tag: Option<Vec<u8>>,
}

impl AuthData {
    /// Decodes the auth data of content type `ct`.
    pub fn decode_for(ct: u8, r: &mut Reader<'_>) -> Result<Self, Error> {
        let signature = r.vl()?.to_vec();
        let confirmation_tag = if ct == 3 { Some(r.vl()?.to_vec()) } else { None };
        Ok(Self { signature, confirmation_tag })
    }

    /// Writes the auth data.
    pub fn encode(&self, w: &mut Writer) {
        w.vl(&self.signature);
        if let Some(tag) = &self.confirmation_tag {
            w.vl(tag);
        }
    }
}

/// `AuthenticatedContent` (§6.1): wire format, content and auth data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedContent {
    /// `wire_format`.
    pub wire_format: u16,
    /// `content`.
    pub content: FramedContent,
    /// `auth`.
    pub auth: AuthData,
}

impl Codec for AuthenticatedContent {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let wire_format = r.u16()?;
        let content = FramedContent::decode(r)?;
        let auth = AuthData::decode_for(content.content.content_type(), r)?;
        Ok(Self { wire_format, content, auth })
    }
    fn encode(&self, w: &mut Writer) {
        w.u16(self.wire_format);
        self.content.encode(w);
        self.auth.encode(w);
    }
}

/// `PublicMessage` (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicMessage {
    /// `content`.
    pub content: FramedContent,
    /// `auth`.
    pub auth: AuthData,
    /// `membership_tag`, present exactly for member senders.
    pub membership_tag: Option<Vec<u8>>,
}

impl Codec for PublicMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let content = FramedContent::decode(r)?;
        let auth = AuthData::decode_for(content.content.content_type(), r)?;
        let membership_tag = if matches!(content.sender, Sender::Member(_)) { Some(r.vl()?.to_vec()) } else { None };
        Ok(Self { content, auth, membership_tag })
    }
    fn encode(&self, w: &mut Writer) {
        self.content.encode(w);
        self.auth.encode(w);
        if let Some(tag) = &self.membership_tag {
            w.vl(tag);
        }
    }
}

/// `PrivateMessage` (§6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateMessage {
    /// `group_id`.
    pub group_id: Vec<u8>,
    /// `epoch`.
    pub epoch: u64,
    /// `content_type`.
    pub content_type: u8,
    /// `authenticated_data`.
    pub authenticated_data: Vec<u8>,
    /// `encrypted_sender_data`.
    pub encrypted_sender_data: Vec<u8>,
    /// `ciphertext`.
    pub ciphertext: Vec<u8>,
}

impl Codec for PrivateMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            group_id: r.vl()?.to_vec(),
            epoch: r.u64()?,
            content_type: r.u8()?,
            authenticated_data: r.vl()?.to_vec(),
            encrypted_sender_data: r.vl()?.to_vec(),
            ciphertext: r.vl()?.to_vec(),
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.group_id)
            .u64(self.epoch)
            .u8(self.content_type)
            .vl(&self.authenticated_data)
            .vl(&self.encrypted_sender_data)
            .vl(&self.ciphertext);
    }
}

/// `GroupContext` (§8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupContext {
    /// `version`.
    pub version: u16,
    /// `cipher_suite`.
    pub cipher_suite: u16,
    /// `group_id`.
    pub group_id: Vec<u8>,
    /// `epoch`.
    pub epoch: u64,
    /// `tree_hash`.
    pub tree_hash: Vec<u8>,
    /// `confirmed_transcript_hash`.
    pub confirmed_transcript_hash: Vec<u8>,
    /// `extensions`.
    pub extensions: Vec<Extension>,
}

impl Codec for GroupContext {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            version: r.u16()?,
            cipher_suite: r.u16()?,
            group_id: r.vl()?.to_vec(),
            epoch: r.u64()?,
            tree_hash: r.vl()?.to_vec(),
            confirmed_transcript_hash: r.vl()?.to_vec(),
            extensions: list(r)?,
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.u16(self.version)
            .u16(self.cipher_suite)
            .vl(&self.group_id)
            .u64(self.epoch)
            .vl(&self.tree_hash)
            .vl(&self.confirmed_transcript_hash);
        write_list(w, &self.extensions);
    }
}

/// `GroupInfo` (§12.4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// `group_context`.
    pub group_context: GroupContext,
    /// `extensions`.
    pub extensions: Vec<Extension>,
    /// `confirmation_tag`.
    pub confirmation_tag: Vec<u8>,
    /// `signer`.
    pub signer: u32,
    /// `signature`.
    pub signature: Vec<u8>,
}

impl GroupInfo {
    /// `GroupInfoTBS`: everything but the signature.
    pub fn tbs(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.group_context.encode(&mut w);
        write_list(&mut w, &self.extensions);
        w.vl(&self.confirmation_tag).u32(self.signer);
        w.finish()
    }
}

impl Codec for GroupInfo {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self {
            group_context: GroupContext::decode(r)?,
            extensions: list(r)?,
            confirmation_tag: r.vl()?.to_vec(),
            signer: r.u32()?,
            signature: r.vl()?.to_vec(),
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.tbs()).vl(&self.signature);
    }
}

/// `EncryptedGroupSecrets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedGroupSecrets {
    /// `new_member` (a KeyPackageRef).
    pub new_member: Vec<u8>,
    /// `encrypted_group_secrets`.
    pub encrypted_group_secrets: HpkeCiphertext,
}

impl Codec for EncryptedGroupSecrets {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { new_member: r.vl()?.to_vec(), encrypted_group_secrets: HpkeCiphertext::decode(r)? })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.new_member);
        self.encrypted_group_secrets.encode(w);
    }
}

/// `Welcome` (§12.4.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// `cipher_suite`.
    pub cipher_suite: u16,
    /// `secrets`.
    pub secrets: Vec<EncryptedGroupSecrets>,
    /// `encrypted_group_info`.
    pub encrypted_group_info: Vec<u8>,
}

impl Codec for Welcome {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { cipher_suite: r.u16()?, secrets: list(r)?, encrypted_group_info: r.vl()?.to_vec() })
    }
    fn encode(&self, w: &mut Writer) {
        w.u16(self.cipher_suite);
        write_list(w, &self.secrets);
        w.vl(&self.encrypted_group_info);
    }
}

/// `GroupSecrets` (§12.4.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSecrets {
    /// `joiner_secret`.
    pub joiner_secret: Vec<u8>,
    /// `path_secret`.
    pub path_secret: Option<Vec<u8>>,
    /// `psks`.
    pub psks: Vec<PskId>,
}

impl Codec for GroupSecrets {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(Self { joiner_secret: r.vl()?.to_vec(), path_secret: r.optional(|r| Ok(r.vl()?.to_vec()))?, psks: list(r)? })
    }
    fn encode(&self, w: &mut Writer) {
        w.vl(&self.joiner_secret);
        match &self.path_secret {
            None => w.u8(0),
            Some(p) => w.u8(1).vl(p),
        };
        write_list(w, &self.psks);
    }
}

/// `MLSMessage` (§6) with its typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlsMessage {
    /// `mls_public_message`.
    Public(PublicMessage),
    /// `mls_private_message`.
    Private(PrivateMessage),
    /// `mls_welcome`.
    Welcome(Welcome),
    /// `mls_group_info`.
    GroupInfo(GroupInfo),
    /// `mls_key_package`.
    KeyPackage(KeyPackage),
}

impl Codec for MlsMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let version = r.u16()?;
        if version != 1 {
            return Err(Error::decode(format!("protocol version {version}")));
        }
        Ok(match r.u16()? {
            1 => Self::Public(PublicMessage::decode(r)?),
            2 => Self::Private(PrivateMessage::decode(r)?),
            3 => Self::Welcome(Welcome::decode(r)?),
            4 => Self::GroupInfo(GroupInfo::decode(r)?),
            5 => Self::KeyPackage(KeyPackage::decode(r)?),
            other => return Err(Error::decode(format!("wire_format {other}"))),
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.u16(1);
        match self {
            Self::Public(m) => {
                w.u16(1);
                m.encode(w);
            }
            Self::Private(m) => {
                w.u16(2);
                m.encode(w);
            }
            Self::Welcome(m) => {
                w.u16(3);
                m.encode(w);
            }
            Self::GroupInfo(m) => {
                w.u16(4);
                m.encode(w);
            }
            Self::KeyPackage(m) => {
                w.u16(5);
                m.encode(w);
            }
        }
    }
}
