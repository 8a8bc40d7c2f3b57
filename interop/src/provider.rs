//! An openmls provider for the vectors, and importing a vector's KeyPackage
//! with its private keys into openmls's storage (the `welcome` and
//! passive-client verifiers).

use openmls::framing::{MlsMessageBodyIn, MlsMessageIn};
use openmls::key_packages::errors::KeyPackageVerifyError;
use openmls::key_packages::{KeyPackage, KeyPackageBundle};
use openmls::prelude::ProtocolVersion;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::storage::{StorageProvider, CURRENT_VERSION};
use openmls_traits::types::{Ciphersuite, HpkePrivateKey};
use openmls_traits::OpenMlsProvider;
use tls_codec::Deserialize as _;

use crate::Error;

/// The provider's crypto ([`RustCrypto`]) paired with any storage.
#[derive(Debug, Default)]
pub struct VectorProvider<S> {
    crypto: RustCrypto,
    storage: S,
}

impl<S> VectorProvider<S> {
    /// Pairs `storage` with a fresh [`RustCrypto`].
    pub fn new(storage: S) -> Self {
        Self { crypto: RustCrypto::default(), storage }
    }
}

impl<S: StorageProvider<CURRENT_VERSION>> OpenMlsProvider for VectorProvider<S> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = S;

    fn storage(&self) -> &S {
        &self.storage
    }

    fn crypto(&self) -> &RustCrypto {
        &self.crypto
    }

    fn rand(&self) -> &RustCrypto {
        &self.crypto
    }
}

/// A provider on openmls's in-memory storage.
pub fn memory_provider() -> VectorProvider<MemoryStorage> {
    VectorProvider::new(MemoryStorage::default())
}

/// Decodes an `MLSMessage` with openmls (all bytes must be used).
pub fn decode_message(bytes: &[u8], what: &str) -> Result<MlsMessageIn, Error> {
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| Error::openmls(format!("decoding {what}"), e))
}

/// Decodes and validates, with openmls, a KeyPackage the vector gives us as
/// our own (an `MLSMessage`).
///
/// The vectors' KeyPackages carry lifetimes that have since expired, and
/// `KeyPackageIn::validate` checks them against the wall clock with no
/// switch. In openmls 0.9.2 the lifetime is its last check: it returns
/// `LifetimeError` only after the leaf signature, the protocol version, the
/// init key differing from the encryption key, the KeyPackage signature and
/// the extensions-in-capabilities rule have passed (the negative tests flip
/// the KeyPackage signature and must see it refused). We hold this
/// KeyPackage ourselves (we are not accepting it from someone), so on
/// `LifetimeError` alone we take it as is, converted through openmls's serde
/// form; every other validation error is a failure.
pub fn own_key_package(crypto: &impl OpenMlsCrypto, bytes: &[u8]) -> Result<KeyPackage, Error> {
    let key_package = match decode_message(bytes, "key_package")?.extract() {
        MlsMessageBodyIn::KeyPackage(kp) => kp,
        _ => return Err(Error::decode("key_package is not a KeyPackage message")),
    };
    match key_package.clone().validate(crypto, ProtocolVersion::Mls10) {
        Ok(kp) => Ok(kp),
        Err(KeyPackageVerifyError::LifetimeError(_)) => {
            serde_json::from_value(to_value(&key_package)?).map_err(|e| Error::openmls("converting the KeyPackage", e))
        }
        Err(e) => Err(Error::openmls("validating key_package", e)),
    }
}

/// Checks that `signature_priv` signs for the KeyPackage's signature key
/// (with the provider's signature primitives).
pub fn check_signature_key(
    crypto: &impl OpenMlsCrypto,
    cs: Ciphersuite,
    signature_priv: &[u8],
    key_package: &KeyPackage,
) -> Result<(), Error> {
    let probe = b"grove interop: signature_priv matches the KeyPackage";
    let sig = crypto
        .sign(cs.signature_algorithm(), probe, signature_priv)
        .map_err(|e| Error::crypto("signing with signature_priv", e))?;
    crypto
        .verify_signature(cs.signature_algorithm(), probe, key_package.leaf_node().signature_key().as_slice(), &sig)
        .map_err(|e| Error::crypto("signature_priv vs KeyPackage signature key", e))
}

/// Writes the [`KeyPackageBundle`] for `key_package` and its private keys to
/// the provider's storage, where openmls finds it when a Welcome arrives.
///
/// openmls has no public constructor for a bundle with given private keys
/// (`KeyPackageBundle::new` needs `test-utils`), but the bundle is a public
/// serde type: its fields are part of openmls's storage format, checked by its
/// storage-stability tests. We build that form and let openmls deserialize it.
pub fn store_key_package<P: OpenMlsProvider>(
    provider: &P,
    key_package: &KeyPackage,
    init_priv: &[u8],
    encryption_priv: &[u8],
) -> Result<(), Error> {
    let value = serde_json::json!({
        "key_package": to_value(key_package)?,
        "private_init_key": to_value(&HpkePrivateKey::from(init_priv))?,
        "private_encryption_key": { "key": to_value(&HpkePrivateKey::from(encryption_priv))? },
    });
    let bundle: KeyPackageBundle =
        serde_json::from_value(value).map_err(|e| Error::openmls("building KeyPackageBundle", e))?;
    let hash_ref = key_package.hash_ref(provider.crypto()).map_err(|e| Error::openmls("KeyPackageRef", e))?;
    provider
        .storage()
        .write_key_package(&hash_ref, &bundle)
        .map_err(|e| Error::openmls("storing the KeyPackageBundle", e))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::openmls("serializing with serde", e))
}
