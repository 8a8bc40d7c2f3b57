//! A cipher suite bound to the crypto provider, and the RFC 9420 labeled
//! operations built on its primitives (§5.1 to §5.2, §8): ExpandWithLabel,
//! DeriveSecret, DeriveTreeSecret, RefHash, SignWithLabel/VerifyWithLabel and
//! EncryptWithLabel/DecryptWithLabel.

use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::{Ciphersuite, HpkeCiphertext};

use crate::reference::codec::Writer;
use crate::Error;

/// The label prefix of every labeled operation.
const LABEL_PREFIX: &[u8] = b"MLS 1.0 ";

/// A supported cipher suite together with the provider that implements it.
#[derive(Debug)]
pub struct Suite {
    /// The suite.
    pub cs: Ciphersuite,
    /// The provider's primitives.
    pub crypto: RustCrypto,
}

fn labeled(label: &[u8]) -> Vec<u8> {
    [LABEL_PREFIX, label].concat()
}

impl Suite {
    /// The suite for an RFC 9420 code point, or `None` when the provider does
    /// not implement it (the case is then skipped).
    pub fn new(code: u16) -> Option<Self> {
        let cs = Ciphersuite::try_from(code).ok()?;
        let crypto = RustCrypto::default();
        crypto.supports(cs).ok()?;
        Some(Self { cs, crypto })
    }

    /// The suite of a case the harness has let through (its suite is
    /// supported); an error for a suite-less case.
    pub fn required(cs: Option<Ciphersuite>) -> Result<Self, Error> {
        let cs = cs.ok_or_else(|| Error::decode("suite required"))?;
        Self::new(cs.into()).ok_or_else(|| Error::decode("suite not supported by the provider"))
    }

    /// The code point.
    pub fn code(&self) -> u16 {
        self.cs.into()
    }

    /// `Nh`, the hash output length.
    pub fn nh(&self) -> usize {
        self.cs.hash_length()
    }

    /// `Nk`, the AEAD key length.
    pub fn nk(&self) -> usize {
        self.cs.aead_key_length()
    }

    /// `Nn`, the AEAD nonce length.
    pub fn nn(&self) -> usize {
        self.cs.aead_nonce_length()
    }

    /// `Hash(data)`.
    pub fn hash(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.crypto.hash(self.cs.hash_algorithm(), data).map_err(|e| Error::crypto("hash", e))
    }

    /// `KDF.Extract(salt, ikm)`.
    pub fn extract(&self, salt: &[u8], ikm: &[u8]) -> Result<Vec<u8>, Error> {
        self.crypto
            .hkdf_extract(self.cs.hash_algorithm(), salt, ikm)
            .map(|s| s.as_slice().to_vec())
            .map_err(|e| Error::crypto("hkdf_extract", e))
    }

    /// `KDF.Expand(prk, info, len)`.
    pub fn expand(&self, prk: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>, Error> {
        self.crypto
            .hkdf_expand(self.cs.hash_algorithm(), prk, info, len)
            .map(|s| s.as_slice().to_vec())
            .map_err(|e| Error::crypto("hkdf_expand", e))
    }

    /// `MAC(key, data)` (HMAC with the suite's hash).
    pub fn mac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
        self.crypto
            .hmac(self.cs.hash_algorithm(), key, data)
            .map(|s| s.as_slice().to_vec())
            .map_err(|e| Error::crypto("hmac", e))
    }

    /// `ExpandWithLabel(secret, label, context, length)` (§8).
    pub fn expand_with_label(
        &self,
        secret: &[u8],
        label: &[u8],
        context: &[u8],
        length: usize,
    ) -> Result<Vec<u8>, Error> {
        let len = u16::try_from(length).map_err(|_| Error::decode("KDFLabel length > u16"))?;
        let info = Writer::new().u16(len).vl(&labeled(label)).vl(context).finish();
        self.expand(secret, &info, length)
    }

    /// `DeriveSecret(secret, label)` (§8).
    pub fn derive_secret(&self, secret: &[u8], label: &[u8]) -> Result<Vec<u8>, Error> {
        self.expand_with_label(secret, label, &[], self.nh())
    }

    /// `DeriveTreeSecret(secret, label, generation, length)` (§9).
    pub fn derive_tree_secret(
        &self,
        secret: &[u8],
        label: &[u8],
        generation: u32,
        length: usize,
    ) -> Result<Vec<u8>, Error> {
        self.expand_with_label(secret, label, &generation.to_be_bytes(), length)
    }

    /// `RefHash(label, value)` (§5.2).
    pub fn ref_hash(&self, label: &[u8], value: &[u8]) -> Result<Vec<u8>, Error> {
        self.hash(&Writer::new().vl(label).vl(value).finish())
    }

    fn sign_content(label: &[u8], content: &[u8]) -> Vec<u8> {
        Writer::new().vl(&labeled(label)).vl(content).finish()
    }

    /// `SignWithLabel(priv, label, content)` (§5.1.2).
    pub fn sign_with_label(&self, private: &[u8], label: &[u8], content: &[u8]) -> Result<Vec<u8>, Error> {
        self.crypto
            .sign(self.cs.signature_algorithm(), &Self::sign_content(label, content), private)
            .map_err(|e| Error::crypto("SignWithLabel", e))
    }

    /// `VerifyWithLabel(pub, label, content, signature)` (§5.1.2).
    pub fn verify_with_label(
        &self,
        public: &[u8],
        label: &[u8],
        content: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        self.crypto
            .verify_signature(self.cs.signature_algorithm(), &Self::sign_content(label, content), public, signature)
            .map_err(|e| Error::crypto(format!("VerifyWithLabel({})", String::from_utf8_lossy(label)), e))
    }

    fn encrypt_context(label: &[u8], context: &[u8]) -> Vec<u8> {
        Writer::new().vl(&labeled(label)).vl(context).finish()
    }

    /// `EncryptWithLabel(pub, label, context, plaintext)` (§5.1.3); returns
    /// `(kem_output, ciphertext)`.
    pub fn encrypt_with_label(
        &self,
        public: &[u8],
        label: &[u8],
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let ct = self
            .crypto
            .hpke_seal(self.cs.hpke_config(), public, &Self::encrypt_context(label, context), &[], plaintext)
            .map_err(|e| Error::crypto("EncryptWithLabel", e))?;
        Ok((ct.kem_output.as_slice().to_vec(), ct.ciphertext.as_slice().to_vec()))
    }

    /// `DecryptWithLabel(priv, label, context, kem_output, ciphertext)` (§5.1.3).
    pub fn decrypt_with_label(
        &self,
        private: &[u8],
        label: &[u8],
        context: &[u8],
        kem_output: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let input = HpkeCiphertext { kem_output: kem_output.to_vec().into(), ciphertext: ciphertext.to_vec().into() };
        self.crypto
            .hpke_open(self.cs.hpke_config(), &input, private, &Self::encrypt_context(label, context), &[])
            .map_err(|e| Error::crypto(format!("DecryptWithLabel({})", String::from_utf8_lossy(label)), e))
    }

    /// The HPKE key pair derived from `ikm` (`DeriveKeyPair`): `(private, public)`.
    pub fn derive_key_pair(&self, ikm: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let kp = self
            .crypto
            .derive_hpke_keypair(self.cs.hpke_config(), ikm)
            .map_err(|e| Error::crypto("DeriveKeyPair", e))?;
        Ok((kp.private.to_vec(), kp.public))
    }

    /// AEAD encryption with the suite's AEAD.
    pub fn seal(&self, key: &[u8], nonce: &[u8], aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, Error> {
        self.crypto
            .aead_encrypt(self.cs.aead_algorithm(), key, pt, nonce, aad)
            .map_err(|e| Error::crypto("AEAD seal", e))
    }

    /// AEAD decryption with the suite's AEAD.
    pub fn open(&self, key: &[u8], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, Error> {
        self.crypto
            .aead_decrypt(self.cs.aead_algorithm(), key, ct, nonce, aad)
            .map_err(|e| Error::crypto("AEAD open", e))
    }

    /// `n` random bytes from the provider.
    pub fn random(&self, n: usize) -> Result<Vec<u8>, Error> {
        self.crypto.random_vec(n).map_err(|e| Error::crypto("random", e))
    }
}
