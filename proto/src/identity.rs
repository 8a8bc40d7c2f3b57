//! User identities and their devices (`docs/identity.md`).
//!
//! A user has one long-term **identity key** (Ed25519) that never signs MLS
//! messages. Each device has its own MLS signature key, certified by a
//! [`DeviceCertificate`] that the identity key signs and that travels in the
//! device's MLS credential ([`device_credential_identity`]). The identity key
//! also signs the user's [`DeviceList`]: versioned, each version hash-chained
//! to the one before, so a server that stores and serves it can neither add a
//! device, nor roll the list back, nor show two histories without the
//! clients noticing.
//!
//! Everything here is TLS-encoded (RFC 9420 §2.1 presentation language) and
//! every signature covers a label, so no signature of one kind can be taken
//! for another (nor for an MLS signature, whose labels start `"MLS 1.0 "`).

use sha2::Digest as _;
use tls_codec::{Deserialize as _, TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// Label of a device certificate's signature.
pub const DEVICE_CERT_LABEL: &[u8] = b"grove-v1-device-cert";
/// Label of a device list's signature.
pub const DEVICE_LIST_LABEL: &[u8] = b"grove-v1-device-list";
/// The prefix of a BasicCredential identity that carries a device
/// certificate. A user name cannot contain `:`, so a legacy identity (the
/// bare user name) is never mistaken for one.
pub const DEVICE_CREDENTIAL_PREFIX: &[u8] = b"grove-device-v1:";
/// Ed25519's TLS SignatureScheme code point, the only identity key scheme.
pub const ED25519: u16 = 0x0807;
/// Most devices one list may hold.
pub const MAX_DEVICES: usize = 64;

/// Why an identity object was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// Not a well-formed encoding.
    Malformed(String),
    /// A signature does not verify with the identity key.
    BadSignature,
    /// The object is for another user, or another identity key, than expected.
    WrongIdentity(String),
    /// A list's version is not the next one (`got` after `have`), or its
    /// chain hash does not match the list it claims to follow.
    NotASuccessor {
        /// The version already verified.
        have: u64,
        /// The version offered.
        got: u64,
    },
    /// Two different lists with the same version: the history forked.
    Fork {
        /// The version both claim.
        version: u64,
    },
    /// A list with a lower version than one already verified.
    Rollback {
        /// The version already verified.
        have: u64,
        /// The version offered.
        got: u64,
    },
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityError::Malformed(why) => write!(f, "malformed identity data: {why}"),
            IdentityError::BadSignature => f.write_str("the signature does not verify with the identity key"),
            IdentityError::WrongIdentity(why) => write!(f, "wrong identity: {why}"),
            IdentityError::NotASuccessor { have, got } => {
                write!(f, "device list version {got} does not follow version {have} (wrong version or chain hash)")
            }
            IdentityError::Fork { version } => {
                write!(f, "two different device lists claim version {version}: the history forked")
            }
            IdentityError::Rollback { have, got } => {
                write!(f, "device list version {got} is older than the verified version {have}")
            }
        }
    }
}

impl std::error::Error for IdentityError {}

/// Verifies an Ed25519 signature by `key` over `label || 0x00 || body`.
pub fn verify_labeled(key: &[u8], label: &[u8], body: &[u8], sig: &[u8]) -> Result<(), IdentityError> {
    let key: [u8; 32] = key.try_into().map_err(|_| IdentityError::Malformed("identity key is not 32 bytes".into()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| IdentityError::Malformed("identity key is not an Ed25519 point".into()))?;
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| IdentityError::BadSignature)?;
    key.verify_strict(&labeled(label, body), &sig).map_err(|_| IdentityError::BadSignature)
}

/// The bytes a labeled signature covers: `label || 0x00 || body`.
pub fn labeled(label: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(label.len() + 1 + body.len());
    v.extend_from_slice(label);
    v.push(0);
    v.extend_from_slice(body);
    v
}

/// A device's id: the first 16 bytes of SHA-256 of its signature key, in
/// hex (32 characters). Stable for the device's life, derived, never chosen.
pub fn device_id(device_key: &[u8]) -> String {
    hex::encode(&sha2::Sha256::digest(device_key)[..16])
}

fn encode<T: tls_codec::Serialize>(v: &T) -> Vec<u8> {
    // invariant: encoding into a Vec fails only for lengths above the
    // VLBytes limit (2^30), which no identity object can reach.
    v.tls_serialize_detached().unwrap_or_default()
}

/// What a device certificate's signature covers.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DeviceCertificateTbs {
    /// The user name.
    pub user: VLBytes,
    /// The user's identity key (Ed25519, 32 bytes).
    pub identity_key: VLBytes,
    /// The device's MLS signature key.
    pub device_key: VLBytes,
    /// The device key's SignatureScheme.
    pub signature_scheme: u16,
    /// When the certificate was made, unix seconds.
    pub created_at: u64,
}

/// A device certificate: the identity key vouches that `device_key` is a
/// device of `user`.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DeviceCertificate {
    /// The signed content.
    pub tbs: DeviceCertificateTbs,
    /// Ed25519 signature by `tbs.identity_key` over [`DEVICE_CERT_LABEL`] `0x00` tbs.
    pub signature: VLBytes,
}

impl DeviceCertificate {
    /// Signs a new certificate with `sign` (an Ed25519 signature by the
    /// identity key over the bytes it is given).
    pub fn new(tbs: DeviceCertificateTbs, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Self {
        let signature = sign(&labeled(DEVICE_CERT_LABEL, &encode(&tbs))).into();
        DeviceCertificate { tbs, signature }
    }

    /// The user name.
    pub fn user(&self) -> String {
        String::from_utf8_lossy(self.tbs.user.as_slice()).into_owned()
    }

    /// The device id ([`device_id`]).
    pub fn device_id(&self) -> String {
        device_id(self.tbs.device_key.as_slice())
    }

    /// Checks the signature with the identity key the certificate names.
    /// (Whether that key is the user's is for the caller: compare it with
    /// the pinned or registered identity key.)
    pub fn verify(&self) -> Result<(), IdentityError> {
        verify_labeled(
            self.tbs.identity_key.as_slice(),
            DEVICE_CERT_LABEL,
            &encode(&self.tbs),
            self.signature.as_slice(),
        )
    }

    /// Checks the signature, and that the certificate is for `user`, the
    /// identity key `identity_key`, and the device key `device_key`.
    pub fn verify_for(&self, user: &str, identity_key: &[u8], device_key: &[u8]) -> Result<(), IdentityError> {
        if self.tbs.user.as_slice() != user.as_bytes() {
            return Err(IdentityError::WrongIdentity(format!("certificate of {:?}, not {user:?}", self.user())));
        }
        if self.tbs.identity_key.as_slice() != identity_key {
            return Err(IdentityError::WrongIdentity(format!("certificate of {user} by another identity key")));
        }
        if self.tbs.device_key.as_slice() != device_key {
            return Err(IdentityError::WrongIdentity("certificate of another device key".into()));
        }
        self.verify()
    }

    /// The identity bytes of the BasicCredential that carries this certificate.
    pub fn to_credential_identity(&self) -> Vec<u8> {
        let mut v = DEVICE_CREDENTIAL_PREFIX.to_vec();
        v.extend_from_slice(&encode(self));
        v
    }
}

/// What a BasicCredential's identity says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialIdentity {
    /// A device certificate (the current form).
    Device(Box<DeviceCertificate>),
    /// A bare user name: a credential made before devices existed, whose
    /// signature key is the user's identity key.
    Legacy(String),
}

impl CredentialIdentity {
    /// The user name either form names.
    pub fn user(&self) -> String {
        match self {
            CredentialIdentity::Device(c) => c.user(),
            CredentialIdentity::Legacy(u) => u.clone(),
        }
    }

    /// The [`mailbox`] of the leaf this credential is in: its device's, or
    /// the bare user name of a legacy credential.
    pub fn mailbox(&self) -> String {
        match self {
            CredentialIdentity::Device(c) => mailbox(&c.user(), Some(&c.device_id())),
            CredentialIdentity::Legacy(u) => u.clone(),
        }
    }
}

/// Separates the user from the device in a [`mailbox`]. A user name cannot
/// contain it, so a mailbox never collides with a user name.
pub const MAILBOX_SEP: char = '/';

/// Where the Delivery Service keeps what belongs to one device rather than
/// to its user: its Welcome inbox, its KeyPackages, its read cursors and its
/// leaves' membership. `user/device_id` for a device, the bare user name for
/// a user without a device list (one key, one "device").
pub fn mailbox(user: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("{user}{MAILBOX_SEP}{d}"),
        None => user.to_owned(),
    }
}

/// The user and device a [`mailbox`] names.
pub fn split_mailbox(mailbox: &str) -> (&str, Option<&str>) {
    match mailbox.split_once(MAILBOX_SEP) {
        Some((u, d)) => (u, Some(d)),
        None => (mailbox, None),
    }
}

/// Parses a BasicCredential identity: a device certificate after
/// [`DEVICE_CREDENTIAL_PREFIX`], or a UTF-8 user name.
pub fn device_credential_identity(identity: &[u8]) -> Result<CredentialIdentity, IdentityError> {
    match identity.strip_prefix(DEVICE_CREDENTIAL_PREFIX) {
        Some(rest) => DeviceCertificate::tls_deserialize_exact(rest)
            .map(|c| CredentialIdentity::Device(Box::new(c)))
            .map_err(|e| IdentityError::Malformed(format!("device certificate: {e}"))),
        None => String::from_utf8(identity.to_vec())
            .map(CredentialIdentity::Legacy)
            .map_err(|_| IdentityError::Malformed("the credential identity is neither a certificate nor UTF-8".into())),
    }
}

/// One device in a list.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DeviceEntry {
    /// The device's MLS signature key.
    pub device_key: VLBytes,
    /// Its SignatureScheme.
    pub signature_scheme: u16,
    /// When it was added, unix seconds.
    pub added_at: u64,
    /// A name the user gave it ("phone"), for display; may be empty.
    pub label: VLBytes,
}

impl DeviceEntry {
    /// The device id ([`device_id`]).
    pub fn id(&self) -> String {
        device_id(self.device_key.as_slice())
    }
}

/// What a device list's signature covers.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DeviceListTbs {
    /// The user name.
    pub user: VLBytes,
    /// The identity key that signs this list.
    pub identity_key: VLBytes,
    /// 1 for the first list of an identity, then +1 each change.
    pub version: u64,
    /// SHA-256 of the previous version's encoding ([`DeviceList::hash`]);
    /// empty for version 1.
    pub previous: VLBytes,
    /// The devices, in the order they were added.
    pub devices: Vec<DeviceEntry>,
    /// When the list was signed, unix seconds.
    pub issued_at: u64,
}

/// A user's signed device list.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct DeviceList {
    /// The signed content.
    pub tbs: DeviceListTbs,
    /// Ed25519 signature by `tbs.identity_key` over [`DEVICE_LIST_LABEL`] `0x00` tbs.
    pub signature: VLBytes,
}

impl DeviceList {
    /// Signs a list with `sign` (the identity key's Ed25519 signature over
    /// the bytes it is given).
    pub fn new(tbs: DeviceListTbs, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Self {
        let signature = sign(&labeled(DEVICE_LIST_LABEL, &encode(&tbs))).into();
        DeviceList { tbs, signature }
    }

    /// Decodes a list (not yet verified).
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        DeviceList::tls_deserialize_exact(bytes).map_err(|e| IdentityError::Malformed(format!("device list: {e}")))
    }

    /// The TLS encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// SHA-256 of the encoding: what the next version's `previous` holds.
    pub fn hash(&self) -> Vec<u8> {
        sha2::Sha256::digest(self.encode()).to_vec()
    }

    /// The user name.
    pub fn user(&self) -> String {
        String::from_utf8_lossy(self.tbs.user.as_slice()).into_owned()
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.tbs.version
    }

    /// Whether `device_key` is in the list.
    pub fn contains(&self, device_key: &[u8]) -> bool {
        self.tbs.devices.iter().any(|d| d.device_key.as_slice() == device_key)
    }

    /// The entry of a device id.
    pub fn device(&self, id: &str) -> Option<&DeviceEntry> {
        self.tbs.devices.iter().find(|d| d.id() == id)
    }

    /// Checks the signature and the list's own shape (user and identity key
    /// as expected, no duplicate device, at most [`MAX_DEVICES`], at least
    /// one device, version 1 without a previous hash and later versions
    /// with one).
    pub fn verify(&self, user: &str, identity_key: &[u8]) -> Result<(), IdentityError> {
        let t = &self.tbs;
        if t.user.as_slice() != user.as_bytes() {
            return Err(IdentityError::WrongIdentity(format!("device list of {:?}, not {user:?}", self.user())));
        }
        if t.identity_key.as_slice() != identity_key {
            return Err(IdentityError::WrongIdentity(format!("device list of {user} by another identity key")));
        }
        if t.devices.is_empty() || t.devices.len() > MAX_DEVICES {
            return Err(IdentityError::Malformed(format!("a list holds 1 to {MAX_DEVICES} devices")));
        }
        let mut keys: Vec<&[u8]> = t.devices.iter().map(|d| d.device_key.as_slice()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(IdentityError::Malformed("a device appears twice".into()));
        }
        match (t.version, t.previous.as_slice().len()) {
            (0, _) => return Err(IdentityError::Malformed("version 0".into())),
            (1, 0) => {}
            (1, _) => return Err(IdentityError::Malformed("version 1 with a previous hash".into())),
            (_, 32) => {}
            _ => return Err(IdentityError::Malformed("a later version without a 32-byte previous hash".into())),
        }
        verify_labeled(identity_key, DEVICE_LIST_LABEL, &encode(t), self.signature.as_slice())
    }

    /// Checks that `next` (already [`verify`](Self::verify)d) may replace
    /// `self`: the same list again, or the next version chained to it. A
    /// lower version is a rollback, another list of the same version a fork.
    pub fn check_successor(&self, next: &DeviceList) -> Result<(), IdentityError> {
        let (have, got) = (self.version(), next.version());
        if next.tbs.user != self.tbs.user || next.tbs.identity_key != self.tbs.identity_key {
            return Err(IdentityError::WrongIdentity("the next list is for another user or identity key".into()));
        }
        if got < have {
            return Err(IdentityError::Rollback { have, got });
        }
        if got == have {
            return if next == self { Ok(()) } else { Err(IdentityError::Fork { version: got }) };
        }
        if got != have + 1 || next.tbs.previous.as_slice() != self.hash().as_slice() {
            return Err(IdentityError::NotASuccessor { have, got });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn signer(k: &ed25519_dalek::SigningKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
        move |m| k.sign(m).to_bytes().to_vec()
    }

    fn cert(id: &ed25519_dalek::SigningKey, user: &str, device: &[u8]) -> DeviceCertificate {
        let tbs = DeviceCertificateTbs {
            user: user.as_bytes().to_vec().into(),
            identity_key: id.verifying_key().to_bytes().to_vec().into(),
            device_key: device.to_vec().into(),
            signature_scheme: ED25519,
            created_at: 1,
        };
        DeviceCertificate::new(tbs, signer(id))
    }

    fn entry(device: &[u8]) -> DeviceEntry {
        DeviceEntry { device_key: device.to_vec().into(), signature_scheme: ED25519, added_at: 1, label: vec![].into() }
    }

    fn list(id: &ed25519_dalek::SigningKey, version: u64, prev: Option<&DeviceList>, devs: &[&[u8]]) -> DeviceList {
        let tbs = DeviceListTbs {
            user: b"alice".to_vec().into(),
            identity_key: id.verifying_key().to_bytes().to_vec().into(),
            version,
            previous: prev.map(|p| p.hash()).unwrap_or_default().into(),
            devices: devs.iter().map(|d| entry(d)).collect(),
            issued_at: 1,
        };
        DeviceList::new(tbs, signer(id))
    }

    #[test]
    fn a_certificate_verifies_and_round_trips_through_the_credential() {
        let id = key(1);
        let ik = id.verifying_key().to_bytes();
        let c = cert(&id, "alice", b"device-key-1");
        c.verify_for("alice", &ik, b"device-key-1").unwrap();
        let parsed = device_credential_identity(&c.to_credential_identity()).unwrap();
        assert_eq!(parsed, CredentialIdentity::Device(Box::new(c.clone())));
        assert_eq!(parsed.user(), "alice");
        assert_eq!(device_credential_identity(b"alice").unwrap(), CredentialIdentity::Legacy("alice".into()));
        assert_eq!(c.device_id().len(), 32);
    }

    #[test]
    fn forged_or_misused_certificates_are_refused() {
        let (id, mallory) = (key(1), key(2));
        let ik = id.verifying_key().to_bytes();
        // Signed by another key that claims to be alice's identity key.
        let mut forged = cert(&mallory, "alice", b"d");
        forged.tbs.identity_key = ik.to_vec().into();
        assert_eq!(forged.verify_for("alice", &ik, b"d"), Err(IdentityError::BadSignature));
        // Genuine, but for another user, identity or device.
        let c = cert(&id, "alice", b"d");
        assert!(matches!(c.verify_for("bob", &ik, b"d"), Err(IdentityError::WrongIdentity(_))));
        let mk = mallory.verifying_key().to_bytes();
        assert!(matches!(c.verify_for("alice", &mk, b"d"), Err(IdentityError::WrongIdentity(_))));
        assert!(matches!(c.verify_for("alice", &ik, b"e"), Err(IdentityError::WrongIdentity(_))));
        // A device key changed after signing.
        let mut moved = c;
        moved.tbs.device_key = b"e".to_vec().into();
        assert_eq!(moved.verify_for("alice", &ik, b"e"), Err(IdentityError::BadSignature));
        // Garbage after the prefix.
        let mut bad = DEVICE_CREDENTIAL_PREFIX.to_vec();
        bad.extend_from_slice(&[0xff; 9]);
        assert!(matches!(device_credential_identity(&bad), Err(IdentityError::Malformed(_))));
    }

    #[test]
    fn lists_chain_and_refuse_rollback_fork_and_gaps() {
        let id = key(1);
        let ik = id.verifying_key().to_bytes();
        let v1 = list(&id, 1, None, &[b"phone"]);
        let v2 = list(&id, 2, Some(&v1), &[b"phone", b"laptop"]);
        let v3 = list(&id, 3, Some(&v2), &[b"phone"]);
        for l in [&v1, &v2, &v3] {
            l.verify("alice", &ik).unwrap();
            assert_eq!(&DeviceList::decode(&l.encode()).unwrap(), l);
        }
        v1.check_successor(&v2).unwrap();
        v2.check_successor(&v3).unwrap();
        v2.check_successor(&v2).unwrap();
        assert!(v2.contains(b"laptop") && !v3.contains(b"laptop"));
        assert_eq!(v2.check_successor(&v1), Err(IdentityError::Rollback { have: 2, got: 1 }));
        assert_eq!(v1.check_successor(&v3), Err(IdentityError::NotASuccessor { have: 1, got: 3 }));
        let other_v2 = list(&id, 2, Some(&v1), &[b"phone", b"tablet"]);
        assert_eq!(v2.check_successor(&other_v2), Err(IdentityError::Fork { version: 2 }));
        // The right version number on a chain that skips a list.
        let unchained = list(&id, 2, None, &[b"phone"]);
        assert!(unchained.verify("alice", &ik).is_err());
        let mut wrong_prev = list(&id, 3, Some(&v1), &[b"phone"]);
        assert_eq!(v2.check_successor(&wrong_prev), Err(IdentityError::NotASuccessor { have: 2, got: 3 }));
        // The server adds a device to a signed list: the signature breaks.
        wrong_prev = v2;
        wrong_prev.tbs.devices.push(entry(b"server-device"));
        assert_eq!(wrong_prev.verify("alice", &ik), Err(IdentityError::BadSignature));
        // Another identity key's list.
        let mallory = key(2);
        let m1 = list(&mallory, 1, None, &[b"phone"]);
        assert!(matches!(m1.verify("alice", &ik), Err(IdentityError::WrongIdentity(_))));
        // Duplicates and empty lists are malformed.
        assert!(matches!(list(&id, 1, None, &[b"a", b"a"]).verify("alice", &ik), Err(IdentityError::Malformed(_))));
        assert!(matches!(list(&id, 1, None, &[]).verify("alice", &ik), Err(IdentityError::Malformed(_))));
    }
}
