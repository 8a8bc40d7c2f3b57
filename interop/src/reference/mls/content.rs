//! Framing: senders, content, auth data, Public and Private messages (§6).

use super::*;

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
