//! Tree nodes and KeyPackages: credentials, capabilities, leaf and parent
//! nodes, the `ratchet_tree` extension body, `KeyPackage` (§5.3, §7, §10).

use super::*;

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
