//! `welcome.json` through openmls: a `ProcessedWelcome` from the vector's
//! keys.
//!
//! The vector's KeyPackage (validated by openmls) and `init_priv` go into
//! openmls's storage as a `KeyPackageBundle`, the way a client holds its own
//! KeyPackage. `ProcessedWelcome::new_from_welcome` then finds it by its
//! KeyPackageRef, opens the GroupSecrets with `init_priv` (HPKE), runs the
//! key schedule from the joiner secret to the welcome key and nonce, and
//! decrypts the GroupInfo (AEAD). The GroupInfo's signature is verified with
//! `signer_pub` through openmls's public `Verifiable` trait.
//!
//! The vector has no ratchet tree and no encryption private key: it stops
//! at the GroupInfo. openmls checks the confirmation tag only while staging
//! the join, which needs the tree, and exposes neither the confirmation key
//! nor a way to recompute the tag. So the confirmation tag is checked by the
//! reference model only; here staging without a tree must be refused with
//! exactly `MissingRatchetTree` (the GroupInfo carries no `ratchet_tree`
//! extension). The bundle's encryption key is a placeholder that nothing
//! reads before that point.

use openmls::framing::MlsMessageBodyIn;
use openmls::group::{MlsGroupJoinConfig, ProcessedWelcome, WelcomeError};
use openmls::prelude::{OpenMlsSignaturePublicKey, Verifiable};
use openmls_traits::types::Ciphersuite;
use openmls_traits::OpenMlsProvider;
use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::provider::{decode_message, memory_provider, own_key_package, store_key_package};
use crate::{expect_eq, Error};

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    init_priv: Hex,
    signer_pub: Hex,
    key_package: Hex,
    welcome: Hex,
}

/// The bundle's encryption private key: welcome.json gives none, and
/// nothing before the join reads it.
const NO_ENCRYPTION_KEY: &[u8] = &[0u8; 32];

/// openmls's Welcome processing, up to the verified GroupInfo.
#[derive(Debug)]
pub struct WelcomeCheck;

impl CaseVerifier for WelcomeCheck {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let cs = cs.ok_or_else(|| Error::decode("suite required"))?;
        let provider = memory_provider();
        let key_package = own_key_package(provider.crypto(), &c.key_package)?;
        expect_eq("key_package cipher suite", cs, key_package.ciphersuite())?;
        store_key_package(&provider, &key_package, &c.init_priv, NO_ENCRYPTION_KEY)?;

        let welcome = match decode_message(&c.welcome, "welcome")?.extract() {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => return Err(Error::decode("welcome is not a Welcome message")),
        };
        let processed = ProcessedWelcome::new_from_welcome(&provider, &MlsGroupJoinConfig::default(), welcome)
            .map_err(|e| Error::openmls("processing the Welcome (ProcessedWelcome::new_from_welcome)", e))?;
        let group_info = processed.unverified_group_info().clone();
        expect_eq("GroupInfo cipher suite", cs, group_info.ciphersuite())?;

        let signer = OpenMlsSignaturePublicKey::new(c.signer_pub.0.clone().into(), cs.signature_algorithm())
            .map_err(|e| Error::crypto("signer_pub", e))?;
        group_info
            .verify(provider.crypto(), &signer)
            .map_err(|e| Error::crypto("GroupInfo signature (signer_pub)", e))?;

        match processed.into_staged_welcome(&provider, None) {
            Err(WelcomeError::MissingRatchetTree) => Ok(()),
            Ok(_) => Err(Error::NotRefused("staging the join without a ratchet tree".into())),
            Err(e) => Err(Error::openmls("staging without a ratchet tree: expected MissingRatchetTree", e)),
        }
    }
}
