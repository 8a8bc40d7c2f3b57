//! Linking a new device to its user (`docs/identity.md`, "Linking").
//!
//! The new device makes a [`LinkRequest`] (its device key, an HPKE key the
//! approval is sealed to, and a MAC under a secret that only the link code
//! carries) and posts it; the DS keeps it for [`LINK_TTL_SECS`]. The link
//! code, shown on the new device and entered on an existing one, names the
//! request and carries the secret: the DS never sees the secret, so it can
//! neither swap the request's keys (the MAC would fail) nor forge an
//! approval (the approval carries a MAC under the same secret). The
//! existing device shows a comparison code derived from the secret, the new
//! device's key and the identity key; the new device shows the same code
//! once it has the approval.
//!
//! The cryptography (HMAC, HPKE) is done by the clients; this module holds
//! the encodings both sides and the DS share.

use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// How long a link request waits for its approval, seconds.
pub const LINK_TTL_SECS: u64 = 600;
/// The first field of a link code.
pub const LINK_CODE_PREFIX: &str = "grove-link-v1";
/// Label of the new device's proof of possession over its request.
pub const LINK_PROOF_LABEL: &[u8] = b"grove-v1-link-proof";
/// Label of the request's MAC under the link secret.
pub const LINK_REQUEST_MAC_LABEL: &[u8] = b"grove-v1-link-request";
/// Label of the approval's MAC under the link secret (and the HPKE info).
pub const LINK_APPROVAL_LABEL: &[u8] = b"grove-v1-link-approval";
/// Label of the comparison code's hash.
pub const LINK_COMPARE_LABEL: &[u8] = b"grove-v1-link-compare";
/// Largest request the DS stores, bytes.
pub const MAX_LINK_REQUEST: usize = 4096;
/// Largest approval the DS stores, bytes.
pub const MAX_LINK_APPROVAL: usize = 256 * 1024;

/// What the MAC of a [`LinkRequest`] covers.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LinkRequestTbs {
    /// The user the device is for.
    pub user: VLBytes,
    /// The new device's MLS signature key.
    pub device_key: VLBytes,
    /// Its SignatureScheme.
    pub signature_scheme: u16,
    /// The HPKE public key (the ciphersuite's KEM) the approval is sealed to.
    pub hpke_public: VLBytes,
    /// The ciphersuite whose HPKE seals the approval.
    pub ciphersuite: u16,
    /// A name for the device ("laptop"), may be empty.
    pub label: VLBytes,
    /// When it was made, unix seconds.
    pub created_at: u64,
}

/// A new device's request to be linked.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LinkRequest {
    /// What the MAC covers.
    pub tbs: LinkRequestTbs,
    /// HMAC-SHA256 under the link secret of
    /// `LINK_REQUEST_MAC_LABEL || 0x00 || tbs`.
    pub mac: VLBytes,
}

impl LinkRequest {
    /// Decodes a TLS-encoded request.
    pub fn decode(bytes: &[u8]) -> Result<Self, tls_codec::Error> {
        tls_codec::Deserialize::tls_deserialize_exact(bytes)
    }

    /// The user, as UTF-8.
    pub fn user(&self) -> String {
        String::from_utf8_lossy(self.tbs.user.as_slice()).into_owned()
    }
}

/// An approval, as the DS stores and serves it: the payload sealed (HPKE
/// base mode, info [`LINK_APPROVAL_LABEL`], aad the request id) to the
/// request's HPKE key, and a MAC under the link secret over
/// `LINK_APPROVAL_LABEL || 0x00` and then the request id, `enc` and
/// `ciphertext`, each prefixed by its length (u32, big-endian).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct SealedApproval {
    /// HPKE encapsulated key.
    pub enc: VLBytes,
    /// HPKE ciphertext of a TLS-encoded [`LinkApproval`].
    pub ciphertext: VLBytes,
    /// The MAC.
    pub mac: VLBytes,
}

/// What an approving device hands the new one (sealed).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LinkApproval {
    /// The identity key's secret (Ed25519 seed, 32 bytes): every linked
    /// device holds it, so any of them can link or revoke devices.
    pub identity_secret: VLBytes,
    /// The new device's certificate (TLS-encoded `DeviceCertificate`).
    pub device_certificate: VLBytes,
    /// The device list that holds the new device (TLS-encoded `DeviceList`).
    pub device_list: VLBytes,
    /// The groups the user is in: the new device joins each.
    pub groups: Vec<LinkGroup>,
    /// The approving device's pinned contacts: (user, identity key, verified).
    pub contacts: Vec<LinkContact>,
}

/// One group in a [`LinkApproval`].
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LinkGroup {
    /// The MLS group id.
    pub group_id: VLBytes,
    /// Its local name on the approving device (empty: none).
    pub name: VLBytes,
    /// Its history policy: 0 none, 1 share.
    pub history: u8,
}

/// One pinned contact in a [`LinkApproval`].
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct LinkContact {
    /// The contact's user name.
    pub user: VLBytes,
    /// The key the contact is pinned by.
    pub key: VLBytes,
    /// Whether it was verified out of band: 1 yes, 0 no.
    pub verified: u8,
}
