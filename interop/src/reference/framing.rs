//! Message framing and protection (§6): PublicMessage signing and membership
//! tags, PrivateMessage encryption with the secret tree and sender data,
//! written from the RFC on the provider's signature, MAC and AEAD.

use crate::reference::codec::{Reader, Writer};
use crate::reference::mls::{AuthData, Codec, Content, FramedContent, PrivateMessage, PublicMessage, Sender};
use crate::reference::secret_tree::{leaf_secret, ratchet_key, sender_data_key, RatchetKind};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};

/// `wire_format` of a PublicMessage.
pub const WIRE_PUBLIC: u16 = 1;
/// `wire_format` of a PrivateMessage.
pub const WIRE_PRIVATE: u16 = 2;

/// The group state a member needs to protect and unprotect messages.
#[derive(Debug)]
pub struct GroupKeys<'a> {
    /// The suite.
    pub suite: &'a Suite,
    /// The serialized GroupContext.
    pub group_context: Vec<u8>,
    /// Number of leaves (for the secret tree).
    pub n_leaves: u32,
    /// `encryption_secret`.
    pub encryption_secret: &'a [u8],
    /// `sender_data_secret`.
    pub sender_data_secret: &'a [u8],
    /// `membership_key`.
    pub membership_key: &'a [u8],
}

/// `FramedContentTBS` (§6.1).
pub fn content_tbs(wire_format: u16, content: &FramedContent, group_context: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(1).u16(wire_format);
    content.encode(&mut w);
    if matches!(content.sender, Sender::Member(_) | Sender::NewMemberCommit) {
        w.raw(group_context);
    }
    w.finish()
}

impl GroupKeys<'_> {
    fn membership_tag(&self, content: &FramedContent, auth: &AuthData) -> Result<Vec<u8>, Error> {
        let mut w = Writer::new();
        w.raw(&content_tbs(WIRE_PUBLIC, content, &self.group_context));
        auth.encode(&mut w);
        self.suite.mac(self.membership_key, &w.finish())
    }

    /// Signs `content` for `wire_format`; for commits the confirmation tag
    /// is `confirmation_tag`.
    pub fn sign(
        &self,
        wire_format: u16,
        content: &FramedContent,
        signature_priv: &[u8],
        confirmation_tag: Option<Vec<u8>>,
    ) -> Result<AuthData, Error> {
        let signature = self.suite.sign_with_label(
            signature_priv,
            b"FramedContentTBS",
            &content_tbs(wire_format, content, &self.group_context),
        )?;
        Ok(AuthData { signature, confirmation_tag })
    }

    /// Builds a PublicMessage; refuses application content (§6.2).
    pub fn protect_public(
        &self,
        content: FramedContent,
        signature_priv: &[u8],
        confirmation_tag: Option<Vec<u8>>,
    ) -> Result<PublicMessage, Error> {
        if matches!(content.content, Content::Application(_)) {
            return Err(Error::decode("application data cannot be sent as a PublicMessage"));
        }
        let auth = self.sign(WIRE_PUBLIC, &content, signature_priv, confirmation_tag)?;
        let membership_tag = match content.sender {
            Sender::Member(_) => Some(self.membership_tag(&content, &auth)?),
            _ => None,
        };
        Ok(PublicMessage { content, auth, membership_tag })
    }

    /// Verifies a PublicMessage's membership tag and signature; refuses
    /// application content. Returns the content.
    pub fn unprotect_public(&self, msg: &PublicMessage, signature_pub: &[u8]) -> Result<FramedContent, Error> {
        if matches!(msg.content.content, Content::Application(_)) {
            return Err(Error::decode("PublicMessage carries application data"));
        }
        if let Sender::Member(_) = msg.content.sender {
            let tag = msg
                .membership_tag
                .as_ref()
                .ok_or_else(|| Error::decode("member PublicMessage without membership_tag"))?;
            expect_bytes("membership_tag", tag, &self.membership_tag(&msg.content, &msg.auth)?)?;
        }
        self.suite.verify_with_label(
            signature_pub,
            b"FramedContentTBS",
            &content_tbs(WIRE_PUBLIC, &msg.content, &self.group_context),
            &msg.auth.signature,
        )?;
        Ok(msg.content.clone())
    }

    fn kind(content_type: u8) -> RatchetKind {
        if content_type == 1 {
            RatchetKind::Application
        } else {
            RatchetKind::Handshake
        }
    }

    fn nonce(base: &[u8], reuse_guard: &[u8; 4]) -> Vec<u8> {
        let mut n = base.to_vec();
        for (b, g) in n.iter_mut().zip(reuse_guard) {
            *b ^= g;
        }
        n
    }

    fn sender_data_aad(group_id: &[u8], epoch: u64, content_type: u8) -> Vec<u8> {
        Writer::new().vl(group_id).u64(epoch).u8(content_type).finish()
    }

    fn content_aad(m: &PrivateMessage) -> Vec<u8> {
        Writer::new().vl(&m.group_id).u64(m.epoch).u8(m.content_type).vl(&m.authenticated_data).finish()
    }

    /// Builds a PrivateMessage from member `leaf` at `generation`, with
    /// `padding` zero bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn protect_private(
        &self,
        content: &FramedContent,
        signature_priv: &[u8],
        confirmation_tag: Option<Vec<u8>>,
        generation: u32,
        reuse_guard: [u8; 4],
        padding: usize,
    ) -> Result<PrivateMessage, Error> {
        let Sender::Member(leaf) = content.sender else {
            return Err(Error::decode("PrivateMessage sender must be a member"));
        };
        let auth = self.sign(WIRE_PRIVATE, content, signature_priv, confirmation_tag)?;
        let mut pt = Writer::new();
        content.content.encode_body(&mut pt);
        auth.encode(&mut pt);
        pt.raw(&vec![0u8; padding]);
        let ct_type = content.content.content_type();
        let mut m = PrivateMessage {
            group_id: content.group_id.clone(),
            epoch: content.epoch,
            content_type: ct_type,
            authenticated_data: content.authenticated_data.clone(),
            encrypted_sender_data: vec![],
            ciphertext: vec![],
        };
        let s = self.suite;
        let secret = leaf_secret(s, self.encryption_secret, self.n_leaves, leaf)?;
        let kn = ratchet_key(s, &secret, Self::kind(ct_type), generation)?;
        m.ciphertext = s.seal(&kn.key, &Self::nonce(&kn.nonce, &reuse_guard), &Self::content_aad(&m), &pt.finish())?;
        let sd = sender_data_key(s, self.sender_data_secret, &m.ciphertext)?;
        let sender_data = Writer::new().u32(leaf).u32(generation).raw(&reuse_guard).finish();
        m.encrypted_sender_data =
            s.seal(&sd.key, &sd.nonce, &Self::sender_data_aad(&m.group_id, m.epoch, ct_type), &sender_data)?;
        Ok(m)
    }

    /// Decrypts a PrivateMessage and verifies its signature; returns the
    /// content and its auth data. The padding must be all zeros.
    pub fn unprotect_private(
        &self,
        m: &PrivateMessage,
        signature_pub: &[u8],
    ) -> Result<(FramedContent, AuthData), Error> {
        let s = self.suite;
        let sd = sender_data_key(s, self.sender_data_secret, &m.ciphertext)?;
        let sender_data = s.open(
            &sd.key,
            &sd.nonce,
            &Self::sender_data_aad(&m.group_id, m.epoch, m.content_type),
            &m.encrypted_sender_data,
        )?;
        let mut r = Reader::new(&sender_data);
        let leaf = r.u32()?;
        let generation = r.u32()?;
        let mut reuse_guard = [0u8; 4];
        reuse_guard.copy_from_slice(r.bytes(4)?);
        r.finish("SenderData")?;
        if leaf >= self.n_leaves {
            return Err(Error::decode(format!("sender leaf {leaf} outside the tree")));
        }
        let secret = leaf_secret(s, self.encryption_secret, self.n_leaves, leaf)?;
        let kn = ratchet_key(s, &secret, Self::kind(m.content_type), generation)?;
        let pt = s.open(&kn.key, &Self::nonce(&kn.nonce, &reuse_guard), &Self::content_aad(m), &m.ciphertext)?;
        let mut r = Reader::new(&pt);
        let content = Content::decode_typed(m.content_type, &mut r)?;
        let auth = AuthData::decode_for(m.content_type, &mut r)?;
        let padding = r.bytes(pt.len() - r.position())?;
        if padding.iter().any(|b| *b != 0) {
            return Err(Error::decode("non-zero padding in PrivateMessageContent"));
        }
        let content = FramedContent {
            group_id: m.group_id.clone(),
            epoch: m.epoch,
            sender: Sender::Member(leaf),
            authenticated_data: m.authenticated_data.clone(),
            content,
        };
        s.verify_with_label(
            signature_pub,
            b"FramedContentTBS",
            &content_tbs(WIRE_PRIVATE, &content, &self.group_context),
            &auth.signature,
        )?;
        Ok((content, auth))
    }
}
