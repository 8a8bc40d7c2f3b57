//! Group state on the wire: GroupContext, GroupInfo, Welcome and GroupSecrets
//! (§8.1, §12.4.3).

use super::*;

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
