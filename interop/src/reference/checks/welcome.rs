//! `welcome.json`: decrypt a Welcome, verify its GroupInfo, recompute the tag.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::key_schedule::{from_joiner, welcome_key_nonce};
use crate::reference::mls::{Codec, GroupInfo, GroupSecrets, KeyPackage, MlsMessage, Welcome};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    init_priv: Hex,
    signer_pub: Hex,
    key_package: Hex,
    welcome: Hex,
}

/// Unwraps an MLSMessage holding a KeyPackage.
pub fn key_package_of(msg: &[u8]) -> Result<KeyPackage, Error> {
    match MlsMessage::decode_exact(msg)? {
        MlsMessage::KeyPackage(kp) => Ok(kp),
        _ => Err(Error::decode("MLSMessage is not a KeyPackage")),
    }
}

/// Unwraps an MLSMessage holding a Welcome.
pub fn welcome_of(msg: &[u8]) -> Result<Welcome, Error> {
    match MlsMessage::decode_exact(msg)? {
        MlsMessage::Welcome(w) => Ok(w),
        _ => Err(Error::decode("MLSMessage is not a Welcome")),
    }
}

/// Opens a Welcome for `kp` with `init_priv`: the GroupSecrets and the
/// decrypted GroupInfo. Only PSK-free Welcomes can be opened here.
pub fn open_welcome(
    s: &Suite,
    welcome: &Welcome,
    kp: &KeyPackage,
    init_priv: &[u8],
) -> Result<(GroupSecrets, GroupInfo), Error> {
    let kp_ref = s.ref_hash(b"MLS 1.0 KeyPackage Reference", &kp.to_bytes())?;
    let egs = welcome
        .secrets
        .iter()
        .find(|e| e.new_member == kp_ref)
        .ok_or_else(|| Error::decode("no EncryptedGroupSecrets for our KeyPackageRef"))?;
    let gs_bytes = s.decrypt_with_label(
        init_priv,
        b"Welcome",
        &welcome.encrypted_group_info,
        &egs.encrypted_group_secrets.kem_output,
        &egs.encrypted_group_secrets.ciphertext,
    )?;
    let gs = GroupSecrets::decode_exact(&gs_bytes)?;
    if !gs.psks.is_empty() {
        return Err(Error::decode("Welcome with PSKs: values not available"));
    }
    let psk_secret = vec![0u8; s.nh()];
    let member = s.extract(&gs.joiner_secret, &psk_secret)?;
    let welcome_secret = s.derive_secret(&member, b"welcome")?;
    let (key, nonce) = welcome_key_nonce(s, &welcome_secret)?;
    let gi_bytes = s.open(&key, &nonce, &[], &welcome.encrypted_group_info)?;
    Ok((gs, GroupInfo::decode_exact(&gi_bytes)?))
}

/// Our Welcome processing (§12.4.3.1) on the provider's HPKE, AEAD, HKDF,
/// HMAC and signatures.
#[derive(Debug)]
pub struct WelcomeCheck;

impl CaseVerifier for WelcomeCheck {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let kp = key_package_of(&c.key_package)?;
        s.verify_with_label(&kp.leaf_node.signature_key, b"KeyPackageTBS", &kp.tbs(), &kp.signature)?;
        let welcome = welcome_of(&c.welcome)?;
        let (gs, gi) = open_welcome(s, &welcome, &kp, &c.init_priv)?;
        s.verify_with_label(&c.signer_pub, b"GroupInfoTBS", &gi.tbs(), &gi.signature)?;
        let gc = gi.group_context.to_bytes();
        let k = from_joiner(s, &gs.joiner_secret, &vec![0u8; s.nh()], &gc)?;
        let tag = s.mac(&k.confirmation_key, &gi.group_context.confirmed_transcript_hash)?;
        expect_bytes("group_info.confirmation_tag", &gi.confirmation_tag, &tag)
    }
}
