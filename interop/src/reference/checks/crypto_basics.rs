//! `crypto-basics.json`: the labeled primitives of RFC 9420 §5 and §8.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

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

/// All six operations, with our own labeled constructions on the provider.
#[derive(Debug)]
pub struct CryptoBasics;

impl CaseVerifier for CryptoBasics {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;

        let r = &c.ref_hash;
        expect_bytes("ref_hash.out", &r.out, &s.ref_hash(r.label.as_bytes(), &r.value)?)?;

        let e = &c.expand_with_label;
        expect_bytes(
            "expand_with_label.out",
            &e.out,
            &s.expand_with_label(&e.secret, e.label.as_bytes(), &e.context, e.length)?,
        )?;

        let d = &c.derive_secret;
        expect_bytes("derive_secret.out", &d.out, &s.derive_secret(&d.secret, d.label.as_bytes())?)?;

        let t = &c.derive_tree_secret;
        expect_bytes(
            "derive_tree_secret.out",
            &t.out,
            &s.derive_tree_secret(&t.secret, t.label.as_bytes(), t.generation, t.length)?,
        )?;

        let g = &c.sign_with_label;
        let label = g.label.as_bytes();
        s.verify_with_label(&g.public, label, &g.content, &g.signature)?;
        let fresh = s.sign_with_label(&g.private, label, &g.content)?;
        s.verify_with_label(&g.public, label, &g.content, &fresh)?;
        // A signature under another label must not verify.
        if s.verify_with_label(&g.public, b"other label", &g.content, &g.signature).is_ok() {
            return Err(Error::NotRefused("sign_with_label: signature verified under a different label".into()));
        }

        let x = &c.encrypt_with_label;
        let label = x.label.as_bytes();
        let pt = s.decrypt_with_label(&x.private, label, &x.context, &x.kem_output, &x.ciphertext)?;
        expect_bytes("encrypt_with_label.plaintext", &x.plaintext, &pt)?;
        let (kem, ct) = s.encrypt_with_label(&x.public, label, &x.context, &x.plaintext)?;
        let pt = s.decrypt_with_label(&x.private, label, &x.context, &kem, &ct)?;
        expect_bytes("encrypt_with_label.plaintext (fresh)", &x.plaintext, &pt)?;
        Ok(())
    }
}
