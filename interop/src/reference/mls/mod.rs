//! Our own decoding and encoding of the RFC 9420 wire structures the verifiers
//! need to look inside (§6, §7, §12). Each type decodes with `decode` (reading
//! exactly its bytes) and encodes back with `encode`.
//!
//! Sub-structures nobody here needs to inspect (a credential's body, the
//! capabilities) are validated while decoding and kept as their encoded bytes.

mod content;
mod group;
mod handshake;
mod tree_nodes;

pub use content::*;
pub use group::*;
pub use handshake::*;
pub use tree_nodes::*;

use crate::reference::codec::{Reader, Writer};
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
