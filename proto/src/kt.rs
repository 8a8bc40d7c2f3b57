//! Key transparency (`docs/api.md` §3.7, `docs/identity.md`): the directory's
//! configuration, the value it holds per user, its signed heads, the JSON
//! bodies of its routes, and the verification of its proofs.
//!
//! The directory is an [akd](https://github.com/facebook/akd) directory. Its
//! label is the user name; its value ([`DirectoryValue`]) commits to the
//! user's identity key and the hash of their latest signed device list.
//! After each publish the DS signs the epoch and root hash ([`SignedHead`])
//! with its head key. Proofs travel as akd's protobuf encoding, in base64.
//!
//! Everything here is what a client checks; the DS side is `grove_ds::kt`.

use std::fmt;

use akd_core::configuration::DomainLabel;
use akd_core::verify::HistoryVerificationParams;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

pub use akd_core;

/// The domain separator of Grove's directory (every hash akd computes).
#[derive(Clone, Debug)]
pub struct GroveLabel;

impl DomainLabel for GroveLabel {
    fn domain_label() -> &'static [u8] {
        b"grove-key-transparency-v1"
    }
}

/// The akd configuration of Grove's directory, shared by the DS and clients.
pub type KtConfig = akd_core::ExperimentalConfiguration<GroveLabel>;

/// The format byte of [`DirectoryValue`].
pub const VALUE_FORMAT: u8 = 1;
/// What the head key signs: this label, then [`head_signed_bytes`].
pub const HEAD_LABEL: &[u8] = b"grove-kt-head-v1";
/// Longest identity key a value holds (the DS accepts keys up to 133 bytes).
const MAX_KEY: usize = 255;

/// A failed key-transparency check, or a body that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtError(pub String);

impl fmt::Display for KtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KtError {}

fn err(s: impl Into<String>) -> KtError {
    KtError(s.into())
}

/// What the directory holds for one user: their identity key (for a user
/// without device lists, their one signature key) and the version and hash
/// of their latest signed device list (version 0 and zeros: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryValue {
    /// The identity key (raw public key bytes).
    pub identity_key: Vec<u8>,
    /// The latest device list's version (0: the user has none).
    pub list_version: u64,
    /// [`list_hash`] of that list (zeros: none).
    pub list_hash: [u8; 32],
}

/// The hash of a TLS-encoded signed device list, as a [`DirectoryValue`] holds it.
pub fn list_hash(list: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"grove-kt-device-list-v1");
    h.update(list);
    h.finalize().into()
}

impl DirectoryValue {
    /// The value of a user with `identity_key` and, if any, the latest
    /// device list `(version, TLS-encoded list)`.
    pub fn of(identity_key: &[u8], list: Option<(u64, &[u8])>) -> Self {
        let (list_version, list_hash) = match list {
            Some((v, bytes)) => (v, list_hash(bytes)),
            None => (0, [0; 32]),
        };
        DirectoryValue { identity_key: identity_key.to_vec(), list_version, list_hash }
    }

    /// `format (1) | key length (1) | key | list version (8, big-endian) | list hash (32)`.
    pub fn encode(&self) -> Vec<u8> {
        let key = &self.identity_key[..self.identity_key.len().min(MAX_KEY)];
        let mut v = Vec::with_capacity(42 + key.len());
        v.push(VALUE_FORMAT);
        v.push(key.len() as u8);
        v.extend_from_slice(key);
        v.extend_from_slice(&self.list_version.to_be_bytes());
        v.extend_from_slice(&self.list_hash);
        v
    }

    /// Decodes [`DirectoryValue::encode`]'s output, exactly.
    pub fn decode(b: &[u8]) -> Result<Self, KtError> {
        let [format, n, rest @ ..] = b else { return Err(err("directory value: too short")) };
        if *format != VALUE_FORMAT {
            return Err(err(format!("directory value: unknown format {format}")));
        }
        let n = usize::from(*n);
        if rest.len() != n + 40 {
            return Err(err(format!("directory value: {} bytes after the header, expected {}", rest.len(), n + 40)));
        }
        let (key, tail) = rest.split_at(n);
        let (version, hash) = tail.split_at(8);
        Ok(DirectoryValue {
            identity_key: key.to_vec(),
            list_version: u64::from_be_bytes(version.try_into().map_err(|_| err("directory value: version"))?),
            list_hash: hash.try_into().map_err(|_| err("directory value: hash"))?,
        })
    }
}

/// What the head key signs for an epoch: [`HEAD_LABEL`], the epoch
/// (big-endian) and the root hash.
pub fn head_signed_bytes(epoch: u64, root_hash: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEAD_LABEL.len() + 8 + root_hash.len());
    v.extend_from_slice(HEAD_LABEL);
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(root_hash);
    v
}

/// A directory epoch and its root hash, signed by the DS's head key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The directory epoch.
    pub epoch: u64,
    /// The root hash at that epoch (32 bytes).
    #[serde(with = "crate::b64")]
    pub root_hash: Vec<u8>,
    /// Ed25519 signature of [`head_signed_bytes`] by the head key.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedHead {
    /// Checks the signature with `head_key`; returns the root hash.
    pub fn verify(&self, head_key: &[u8]) -> Result<[u8; 32], KtError> {
        let root: [u8; 32] = self
            .root_hash
            .as_slice()
            .try_into()
            .map_err(|_| err(format!("epoch {}: the root hash is not 32 bytes", self.epoch)))?;
        let key: [u8; 32] = head_key.try_into().map_err(|_| err("the head key is not an Ed25519 key"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|e| err(format!("head key: {e}")))?;
        let sig = ed25519_dalek::Signature::from_slice(&self.signature)
            .map_err(|_| err(format!("epoch {}: the head signature is malformed", self.epoch)))?;
        key.verify_strict(&head_signed_bytes(self.epoch, &root), &sig).map_err(|_| {
            err(format!("epoch {}: the head signature does not verify with the DS's head key", self.epoch))
        })?;
        Ok(root)
    }
}

/// `GET /v1/kt/keys`: the directory's public keys. Clients pin them on
/// first use; `grove-ds` prints their fingerprints at startup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtKeys {
    /// The VRF public key (32 bytes): labels are VRF outputs under it.
    #[serde(with = "crate::b64")]
    pub vrf_public_key: Vec<u8>,
    /// The Ed25519 key that signs every epoch's head.
    #[serde(with = "crate::b64")]
    pub head_key: Vec<u8>,
}

impl KtKeys {
    /// A short fingerprint of both keys together, for the operator to publish.
    pub fn fingerprint(&self) -> String {
        let mut both = self.vrf_public_key.clone();
        both.extend_from_slice(&self.head_key);
        crate::fingerprint(&both)
    }
}

/// `GET /v1/kt/head`: the latest epoch (`?epoch=N`: that epoch's head).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadResponse {
    /// The signed head.
    pub head: SignedHead,
}

/// `GET /v1/kt/lookup/{user}`: the user's latest value, proven at the latest epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The head the proof is against.
    pub head: SignedHead,
    /// akd `LookupProof`, protobuf-encoded.
    #[serde(with = "crate::b64")]
    pub proof: Vec<u8>,
}

/// `GET /v1/kt/history/{user}`: every version of the user's value, proven at the latest epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The head the proof is against.
    pub head: SignedHead,
    /// akd `HistoryProof`, protobuf-encoded.
    #[serde(with = "crate::b64")]
    pub proof: Vec<u8>,
}

/// `GET /v1/kt/audit?from=A&to=B`: proof that the directory only grew from
/// epoch A to epoch B, with the signed heads of epochs A through B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResponse {
    /// Heads of epochs `from..=to`, in order.
    pub heads: Vec<SignedHead>,
    /// akd `AppendOnlyProof`, protobuf-encoded.
    #[serde(with = "crate::b64")]
    pub proof: Vec<u8>,
}

/// Most epochs one audit response spans.
pub const MAX_AUDIT_SPAN: u64 = 64;

/// One verified version of a user's directory value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedValue {
    /// The epoch it was published in.
    pub epoch: u64,
    /// Its version (1 is the first).
    pub version: u64,
    /// The value.
    pub value: DirectoryValue,
}

fn parse<M: protobuf::Message>(what: &str, bytes: &[u8]) -> Result<M, KtError> {
    M::parse_from_bytes(bytes).map_err(|e| err(format!("{what}: not a protobuf message: {e}")))
}

/// Encodes an akd proof for the wire (the DS).
pub fn encode_proof<'a, T, M>(proof: &'a T) -> Result<Vec<u8>, KtError>
where
    M: protobuf::Message + From<&'a T>,
{
    M::from(proof).write_to_bytes().map_err(|e| err(format!("encoding a proof: {e}")))
}

/// Verifies a lookup of `user` against `head`, signed by `keys.head_key`.
pub fn verify_lookup(keys: &KtKeys, head: &SignedHead, user: &str, proof: &[u8]) -> Result<VerifiedValue, KtError> {
    use akd_core::proto::specs::types as pb;
    let root = head.verify(&keys.head_key)?;
    let proof = akd_core::LookupProof::try_from(&parse::<pb::LookupProof>("lookup proof", proof)?)
        .map_err(|e| err(format!("lookup proof of {user}: {e:?}")))?;
    let r = akd_core::verify::lookup_verify::<KtConfig>(
        &keys.vrf_public_key,
        root,
        head.epoch,
        akd_core::AkdLabel::from(user),
        proof,
    )
    .map_err(|e| err(format!("the lookup proof of {user} does not verify at epoch {}: {e}", head.epoch)))?;
    Ok(VerifiedValue { epoch: r.epoch, version: r.version, value: DirectoryValue::decode(&r.value)? })
}

/// Verifies the complete key history of `user` against `head`; returns
/// every version, newest first.
pub fn verify_history(
    keys: &KtKeys,
    head: &SignedHead,
    user: &str,
    proof: &[u8],
) -> Result<Vec<VerifiedValue>, KtError> {
    use akd_core::proto::specs::types as pb;
    let root = head.verify(&keys.head_key)?;
    let proof = akd_core::HistoryProof::try_from(&parse::<pb::HistoryProof>("history proof", proof)?)
        .map_err(|e| err(format!("history proof of {user}: {e:?}")))?;
    let results = akd_core::verify::key_history_verify::<KtConfig>(
        &keys.vrf_public_key,
        root,
        head.epoch,
        akd_core::AkdLabel::from(user),
        proof,
        HistoryVerificationParams::Default { history_params: akd_core::verify::history::HistoryParams::Complete },
    )
    .map_err(|e| err(format!("the key history of {user} does not verify at epoch {}: {e}", head.epoch)))?;
    results
        .into_iter()
        .map(|r| Ok(VerifiedValue { epoch: r.epoch, version: r.version, value: DirectoryValue::decode(&r.value)? }))
        .collect()
}

/// Decodes an audit response's proof (verification needs the `akd` crate:
/// `akd::auditor::audit_verify`).
pub fn decode_audit_proof(proof: &[u8]) -> Result<akd_core::AppendOnlyProof, KtError> {
    use akd_core::proto::specs::types as pb;
    akd_core::AppendOnlyProof::try_from(&parse::<pb::AppendOnlyProof>("audit proof", proof)?)
        .map_err(|e| err(format!("audit proof: {e:?}")))
}

/// The gossip a member puts in its messages' authenticated data: the
/// directory epoch and root hash it last verified. `b"GKT1" | epoch (8) | root (32)`.
pub fn encode_gossip(epoch: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(44);
    v.extend_from_slice(b"GKT1");
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(root);
    v
}

/// Decodes [`encode_gossip`]'s output (`None`: no gossip, or another format).
pub fn decode_gossip(aad: &[u8]) -> Option<(u64, [u8; 32])> {
    let rest = aad.strip_prefix(b"GKT1")?;
    if rest.len() != 40 {
        return None;
    }
    let epoch = u64::from_be_bytes(rest[..8].try_into().ok()?);
    Some((epoch, rest[8..].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_refuse_trailing_or_short_bytes() {
        let v = DirectoryValue::of(&[7; 32], Some((3, b"list")));
        let b = v.encode();
        assert_eq!(DirectoryValue::decode(&b).unwrap(), v);
        let mut long = b.clone();
        long.push(0);
        assert!(DirectoryValue::decode(&long).is_err());
        assert!(DirectoryValue::decode(&b[..b.len() - 1]).is_err());
        assert!(DirectoryValue::decode(&[2, 0]).is_err());
        let none = DirectoryValue::of(&[1; 32], None);
        assert_eq!((none.list_version, none.list_hash), (0, [0; 32]));
    }

    #[test]
    fn gossip_round_trips_and_ignores_other_data() {
        let g = encode_gossip(9, &[5; 32]);
        assert_eq!(decode_gossip(&g), Some((9, [5; 32])));
        assert_eq!(decode_gossip(b""), None);
        assert_eq!(decode_gossip(&g[..g.len() - 1]), None);
    }

    #[test]
    fn a_head_verifies_only_with_its_key_and_its_bytes() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        use ed25519_dalek::Signer as _;
        let root = [9u8; 32];
        let head = SignedHead {
            epoch: 4,
            root_hash: root.to_vec(),
            signature: sk.sign(&head_signed_bytes(4, &root)).to_bytes().to_vec(),
        };
        assert_eq!(head.verify(sk.verifying_key().as_bytes()).unwrap(), root);
        let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        assert!(head.verify(other.verifying_key().as_bytes()).is_err());
        let moved = SignedHead { epoch: 5, ..head };
        assert!(moved.verify(sk.verifying_key().as_bytes()).is_err());
    }
}
