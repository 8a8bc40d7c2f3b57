//! `crypto-basics.json` through openmls: its public labeled-signature and
//! hash-reference code, and its crypto provider (`RustCrypto` through
//! [`OpenMlsCrypto`]) for the rest.
//!
//! What openmls 0.9.2 exposes publicly, and what it does not:
//! - RefHash: [`HashReference::new`] (public).
//! - SignWithLabel / VerifyWithLabel: openmls's [`Signable`] and
//!   [`Verifiable`] traits (public; they build the `SignContent` and call the
//!   signer or the provider), with `openmls_basic_credential`'s
//!   [`SignatureKeyPair`] as the signer, as Grove's client signs.
//! - ExpandWithLabel, DeriveSecret, DeriveTreeSecret: openmls keeps `Secret`
//!   and its `KDFLabel` crate-private. We encode the `KDFLabel` with
//!   `tls_codec` and call the provider's [`OpenMlsCrypto::hkdf_expand`].
//! - EncryptWithLabel / DecryptWithLabel: openmls's `hpke` module is
//!   crate-private (its public `safe_*` functions need the `extensions-draft`
//!   feature and use a component label). We encode the `EncryptContext` with
//!   `tls_codec` and call [`OpenMlsCrypto::hpke_seal`] / `hpke_open`.

use openmls::ciphersuite::hash_ref::HashReference;
use openmls::prelude::{
    OpenMlsSignaturePublicKey, Signable, Signature, SignatureError, SignedStruct, Verifiable, VerifiedStruct,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{Ciphersuite, HpkeCiphertext};
use serde::Deserialize;
use tls_codec::{TlsSerialize, TlsSize, VLBytes};

use crate::harness::{CaseVerifier, Hex};
use crate::{expect_bytes, Error};

/// `ref_hash`.
#[derive(Debug, Deserialize)]
pub struct RefHash {
    label: String,
    value: Hex,
    out: Hex,
}

/// `expand_with_label`.
#[derive(Debug, Deserialize)]
pub struct ExpandWithLabel {
    secret: Hex,
    label: String,
    context: Hex,
    length: usize,
    out: Hex,
}

/// `derive_secret`.
#[derive(Debug, Deserialize)]
pub struct DeriveSecret {
    secret: Hex,
    label: String,
    out: Hex,
}

/// `derive_tree_secret`.
#[derive(Debug, Deserialize)]
pub struct DeriveTreeSecret {
    secret: Hex,
    label: String,
    generation: u32,
    length: usize,
    out: Hex,
}

/// `sign_with_label`.
#[derive(Debug, Deserialize)]
pub struct SignWithLabel {
    #[serde(rename = "priv")]
    private: Hex,
    #[serde(rename = "pub")]
    public: Hex,
    content: Hex,
    label: String,
    signature: Hex,
}

/// `encrypt_with_label`.
#[derive(Debug, Deserialize)]
pub struct EncryptWithLabel {
    #[serde(rename = "priv")]
    private: Hex,
    #[serde(rename = "pub")]
    public: Hex,
    label: String,
    context: Hex,
    plaintext: Hex,
    kem_output: Hex,
    ciphertext: Hex,
}

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    ref_hash: RefHash,
    expand_with_label: ExpandWithLabel,
    derive_secret: DeriveSecret,
    derive_tree_secret: DeriveTreeSecret,
    sign_with_label: SignWithLabel,
    encrypt_with_label: EncryptWithLabel,
}

/// `"MLS 1.0 " + label`.
fn labeled(label: &str) -> VLBytes {
    format!("MLS 1.0 {label}").into_bytes().into()
}

/// `KDFLabel` (RFC 9420 §8).
#[derive(TlsSerialize, TlsSize)]
struct KdfLabel {
    length: u16,
    label: VLBytes,
    context: VLBytes,
}

/// `EncryptContext` (RFC 9420 §5.1.3).
#[derive(TlsSerialize, TlsSize)]
struct EncryptContext {
    label: VLBytes,
    context: VLBytes,
}

fn tls(v: &impl tls_codec::Serialize) -> Result<Vec<u8>, Error> {
    v.tls_serialize_detached().map_err(|e| Error::decode(format!("tls_codec: {e:?}")))
}

/// `ExpandWithLabel` on the provider's HKDF.
fn expand_with_label(
    crypto: &RustCrypto,
    cs: Ciphersuite,
    secret: &[u8],
    label: &str,
    context: &[u8],
    length: usize,
) -> Result<Vec<u8>, Error> {
    let info = tls(&KdfLabel {
        length: u16::try_from(length).map_err(|_| Error::decode("length > u16"))?,
        label: labeled(label),
        context: context.into(),
    })?;
    crypto
        .hkdf_expand(cs.hash_algorithm(), secret, &info, length)
        .map(|s| s.as_slice().to_vec())
        .map_err(|e| Error::crypto("hkdf_expand", e))
}

/// Content to sign under a label, for openmls's [`Signable`].
struct ToSign<'a> {
    label: &'a str,
    content: &'a [u8],
}

/// The result of [`Signable::sign`]: the signature.
struct Signed(Signature);

impl SignedStruct<ToSign<'_>> for Signed {
    fn from_payload(_: ToSign<'_>, signature: Signature, _: Vec<u8>) -> Self {
        Signed(signature)
    }
}

impl Signable for ToSign<'_> {
    type SignedOutput = Signed;

    fn unsigned_payload(&self) -> Result<Vec<u8>, tls_codec::Error> {
        Ok(self.content.to_vec())
    }

    fn label(&self) -> &str {
        self.label
    }
}

/// Signed content to verify, for openmls's [`Verifiable`].
struct ToVerify<'a> {
    label: &'a str,
    content: &'a [u8],
    signature: Signature,
}

/// What verifying a [`ToVerify`] yields.
struct Verified;

impl VerifiedStruct for Verified {}

impl Verifiable for ToVerify<'_> {
    type VerifiedStruct = Verified;

    fn unsigned_payload(&self) -> Result<Vec<u8>, tls_codec::Error> {
        Ok(self.content.to_vec())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn label(&self) -> &str {
        self.label
    }

    fn verify(self, crypto: &impl OpenMlsCrypto, pk: &OpenMlsSignaturePublicKey) -> Result<Verified, SignatureError> {
        self.verify_no_out(crypto, pk).map(|()| Verified)
    }
}

/// The vector's signature verifies, a fresh one from openmls's signer
/// verifies, and the vector's signature under another label does not.
fn check_signatures(crypto: &RustCrypto, cs: Ciphersuite, g: &SignWithLabel) -> Result<(), Error> {
    let scheme = cs.signature_algorithm();
    let public = OpenMlsSignaturePublicKey::new(g.public.0.clone().into(), scheme)
        .map_err(|e| Error::crypto("signature public key", e))?;
    let verify =
        |label: &str, signature: Signature| ToVerify { label, content: &g.content, signature }.verify(crypto, &public);
    verify(&g.label, Signature::from(g.signature.0.clone()))
        .map_err(|e| Error::crypto("VerifyWithLabel (the vector's signature)", e))?;
    let signer = SignatureKeyPair::from_raw(scheme, g.private.0.clone(), g.public.0.clone());
    let Signed(fresh) =
        ToSign { label: &g.label, content: &g.content }.sign(&signer).map_err(|e| Error::crypto("SignWithLabel", e))?;
    verify(&g.label, fresh).map_err(|e| Error::crypto("VerifyWithLabel (a fresh signature)", e))?;
    if verify("other label", Signature::from(g.signature.0.clone())).is_ok() {
        return Err(Error::NotRefused("sign_with_label: signature verified under a different label".into()));
    }
    Ok(())
}

/// The vector's ciphertext opens, and a fresh one round-trips.
fn check_hpke(crypto: &RustCrypto, cs: Ciphersuite, x: &EncryptWithLabel) -> Result<(), Error> {
    let info = tls(&EncryptContext { label: labeled(&x.label), context: x.context.0.clone().into() })?;
    let open = |ct: &HpkeCiphertext| {
        crypto.hpke_open(cs.hpke_config(), ct, &x.private, &info, &[]).map_err(|e| Error::crypto("DecryptWithLabel", e))
    };
    let given = HpkeCiphertext { kem_output: x.kem_output.0.clone().into(), ciphertext: x.ciphertext.0.clone().into() };
    expect_bytes("encrypt_with_label.plaintext", &x.plaintext, &open(&given)?)?;
    let fresh = crypto
        .hpke_seal(cs.hpke_config(), &x.public, &info, &[], &x.plaintext)
        .map_err(|e| Error::crypto("EncryptWithLabel", e))?;
    expect_bytes("encrypt_with_label.plaintext (fresh)", &x.plaintext, &open(&fresh)?)
}

/// All six operations through openmls's public code and its provider.
#[derive(Debug)]
pub struct CryptoBasics;

impl CaseVerifier for CryptoBasics {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let cs = cs.ok_or_else(|| Error::decode("suite required"))?;
        let crypto = RustCrypto::default();

        let r = &c.ref_hash;
        let out = HashReference::new(&r.value, cs, &crypto, r.label.as_bytes())
            .map_err(|e| Error::crypto("HashReference::new", e))?;
        expect_bytes("ref_hash.out", &r.out, out.as_slice())?;

        let e = &c.expand_with_label;
        let out = expand_with_label(&crypto, cs, &e.secret, &e.label, &e.context, e.length)?;
        expect_bytes("expand_with_label.out", &e.out, &out)?;

        let d = &c.derive_secret;
        let out = expand_with_label(&crypto, cs, &d.secret, &d.label, &[], cs.hash_length())?;
        expect_bytes("derive_secret.out", &d.out, &out)?;

        let t = &c.derive_tree_secret;
        let out = expand_with_label(&crypto, cs, &t.secret, &t.label, &t.generation.to_be_bytes(), t.length)?;
        expect_bytes("derive_tree_secret.out", &t.out, &out)?;

        check_signatures(&crypto, cs, &c.sign_with_label)?;
        check_hpke(&crypto, cs, &c.encrypt_with_label)
    }
}
