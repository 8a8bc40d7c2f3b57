//! Identity key and devices on the client (`docs/identity.md`): the identity
//! key a new home creates, this device's certificate (carried in its MLS
//! credential) and the first device list, and the key that stands for a
//! member when it is pinned (a verified certificate's identity key, or the
//! leaf key of a single-key user).

use grove_proto::identity::{
    self as id, CredentialIdentity, DeviceCertificate, DeviceCertificateTbs, DeviceEntry, DeviceList, DeviceListTbs,
};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

use super::Client;
use crate::error::{Error, Result};
use crate::records::{IdentityRecord, IdentitySecret};

/// A new identity key, from the operating system's randomness.
pub(super) fn new_identity_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    key
}

fn signer(key: &ed25519_dalek::SigningKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    use ed25519_dalek::Signer as _;
    move |m| key.sign(m).to_bytes().to_vec()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The identity parts of a new home: the identity key, the certificate of
/// `device` and the first device list holding it.
pub(super) fn first_device(
    user: &str,
    device: &SignatureKeyPair,
) -> (ed25519_dalek::SigningKey, DeviceCertificate, DeviceList) {
    let identity = new_identity_key();
    let identity_key = identity.verifying_key().to_bytes().to_vec();
    let scheme = device.signature_scheme() as u16;
    let at = now();
    let cert = DeviceCertificate::new(
        DeviceCertificateTbs {
            user: user.as_bytes().to_vec().into(),
            identity_key: identity_key.clone().into(),
            device_key: device.public().to_vec().into(),
            signature_scheme: scheme,
            created_at: at,
        },
        signer(&identity),
    );
    let list = DeviceList::new(
        DeviceListTbs {
            user: user.as_bytes().to_vec().into(),
            identity_key: identity_key.into(),
            version: 1,
            previous: Vec::new().into(),
            devices: vec![DeviceEntry {
                device_key: device.public().to_vec().into(),
                signature_scheme: scheme,
                added_at: at,
                label: Vec::new().into(),
            }],
            issued_at: at,
        },
        signer(&identity),
    );
    (identity, cert, list)
}

/// Fills the identity fields of a new home's record.
pub(super) fn set_identity(
    id: &mut IdentityRecord,
    identity: &ed25519_dalek::SigningKey,
    cert: &DeviceCertificate,
    list: &DeviceList,
) {
    id.identity_key = identity.verifying_key().to_bytes().to_vec();
    id.identity_secret = IdentitySecret(identity.to_bytes().to_vec());
    id.device_list = list.encode();
    id.device_credential = cert.to_credential_identity();
}

/// The key a member is pinned by: for a device credential, the identity
/// key of its certificate, once the certificate verifies for this user and
/// this leaf key; for a single-key user's credential, the leaf key itself.
/// A certificate that does not verify yields the leaf key, which never
/// matches an identity pin (so the member shows as changed, never as known).
pub(crate) fn pin_key_of(user: &str, credential: &Credential, leaf_key: &[u8]) -> Vec<u8> {
    let Ok(basic) = BasicCredential::try_from(credential.clone()) else { return leaf_key.to_vec() };
    match id::device_credential_identity(basic.identity()) {
        Ok(CredentialIdentity::Device(cert)) => {
            let ik = cert.tbs.identity_key.as_slice().to_vec();
            if cert.verify_for(user, &ik, leaf_key).is_ok() {
                ik
            } else {
                leaf_key.to_vec()
            }
        }
        _ => leaf_key.to_vec(),
    }
}

/// What a registration signs: the registered key, its proof of possession,
/// and (with an identity key) the first device list.
pub(super) struct Registration {
    pub(super) key: Vec<u8>,
    pub(super) proof: Vec<u8>,
    pub(super) device_list: Option<Vec<u8>>,
}

impl Client {
    /// This user's identity key: the identity key of a home that has one,
    /// else (a home made before identity keys) its one signature key.
    pub(super) fn identity_public(&self) -> &[u8] {
        if self.id.identity_key.is_empty() {
            self.signer.public()
        } else {
            &self.id.identity_key
        }
    }

    /// The identity signing key, if this home has one.
    pub(super) fn identity_signer(&self) -> Result<Option<ed25519_dalek::SigningKey>> {
        if self.id.identity_key.is_empty() {
            return Ok(None);
        }
        let secret: [u8; 32] =
            self.id.identity_secret.0.as_slice().try_into().map_err(|_| {
                crate::repo::corrupt(&format!("identity key in {}", self.home.display()), "not 32 bytes")
            })?;
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        if key.verifying_key().to_bytes().as_slice() != self.id.identity_key.as_slice() {
            return Err(crate::repo::corrupt(
                &format!("identity key in {}", self.home.display()),
                "its secret and public halves do not match",
            ));
        }
        Ok(Some(key))
    }

    /// The signed registration of this home. With an identity key: the
    /// identity key, its proof, and the device list; without: the device key
    /// and its proof.
    pub(super) fn registration(&self) -> Result<Registration> {
        match self.identity_signer()? {
            Some(identity) => {
                let key = self.id.identity_key.clone();
                let proof =
                    signer(&identity)(&grove_proto::signed_bytes(grove_proto::REGISTER_LABEL, &self.id.user, &key));
                Ok(Registration { key, proof, device_list: Some(self.id.device_list.clone()) })
            }
            None => {
                let key = self.signer.public().to_vec();
                let proof = openmls_traits::signatures::Signer::sign(
                    self.signer.as_ref(),
                    &grove_proto::signed_bytes(grove_proto::REGISTER_LABEL, &self.id.user, &key),
                )
                .map_err(|e| Error::mls_because("sign the registration", format!("{e:?}")))?;
                Ok(Registration { key, proof, device_list: None })
            }
        }
    }
}
