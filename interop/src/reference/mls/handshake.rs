//! Proposals, UpdatePaths and Commits (§7.6, §8.4, §12.1, §12.4).

use super::*;

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
