//! The reference model: our own implementation of RFC 9420, written from the
//! RFC on the crypto provider's primitives (`openmls_rust_crypto::RustCrypto`
//! through [`openmls_traits::crypto::OpenMlsCrypto`]: hash, HKDF, HMAC, AEAD,
//! HPKE, signatures). It is not the code Grove ships: it checks the vectors
//! that openmls's public API cannot take (tree math, secret tree, key
//! schedule, PSKs, transcript hashes, message protection, tree operations,
//! TreeKEM) and checks again, independently, the ones that do go through
//! openmls. Behind the cargo feature `reference-model`, which the crate's
//! own tests turn on (self dev-dependency in `interop/Cargo.toml`).
//!
//! # Layout
//! - [`suite`]: a cipher suite on the provider, and the labeled operations
//!   (ExpandWithLabel, DeriveSecret, RefHash, Sign/VerifyWithLabel,
//!   Encrypt/DecryptWithLabel).
//! - [`codec`]: TLS encoding and decoding primitives.
//! - [`mls`]: the MLS wire structures (tree nodes, handshake messages,
//!   framing, group state).
//! - [`tree_math`]: array-based tree math (§4.1).
//! - [`tree`]: the ratchet tree: resolutions, tree and parent hashes, leaf
//!   signatures, Add/Update/Remove.
//! - [`secret_tree`]: the secret tree and its ratchets (§9).
//! - [`key_schedule`]: the key schedule, PSKs, transcript hashes (§8).
//! - [`framing`]: PublicMessage and PrivateMessage protection (§6).
//! - [`treekem`]: creating, applying and decrypting UpdatePaths (§7.4 to §7.6).
//! - [`checks`]: one verifier per vector file it covers.

pub mod checks;
pub mod codec;
pub mod framing;
pub mod key_schedule;
pub mod mls;
pub mod secret_tree;
pub mod suite;
pub mod tree;
pub mod tree_math;
pub mod treekem;
