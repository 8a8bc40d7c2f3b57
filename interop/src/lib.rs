//! Interop checks for Grove: the RFC 9420 test vectors.
//!
//! Every vector file published by the MLS working group
//! (`mlswg/mls-implementations`, folder `test-vectors/`) has a verifier here.
//! Where openmls exposes a public API for a check we use it (the passive-client
//! files run through [`openmls::group::MlsGroup`]; `messages.json` also
//! round-trips through openmls's public types); everything else is our own
//! code, written from the RFC, on top of the crypto provider's primitives
//! (`openmls_rust_crypto::RustCrypto` through
//! [`openmls_traits::crypto::OpenMlsCrypto`]). No verifier needs openmls's
//! `test-utils` feature.
//!
//! The tests (`tests/vectors.rs`) and the `vector-report` binary share
//! [`run_named`] and [`run_all`]. The cross-implementation tests against
//! mls-rs live in `tests/mls_rs.rs` (in process) and
//! `tests/foreign_client.rs` (an mls-rs client over the real DS).
//!
//! # Layout
//! - [`harness`]: locating the vectors, running the cases of a file, counting.
//! - [`suite`]: a cipher suite on the provider and the labeled operations.
//! - [`codec`]: TLS encoding and decoding primitives.
//! - [`mls`]: our decoding and encoding of the MLS wire structures.
//! - [`tree_math`], [`tree`], [`secret_tree`], [`key_schedule`], [`framing`], [`treekem`]: RFC 9420
//!   machinery on the primitives.
//! - [`passive`]: the passive client on openmls, run through a client store
//!   (Grove's sled store, `grove_client::storage::GroveProvider`, in the tests).
//! - [`checks`]: one verifier per vector file.
//! - [`report`]: the Markdown report.

pub mod checks;
pub mod codec;
mod error;
pub mod framing;
pub mod harness;
pub mod key_schedule;
pub mod mls;
pub mod passive;
pub mod report;
pub mod secret_tree;
pub mod suite;
pub mod tree;
pub mod tree_math;
pub mod treekem;

use std::path::Path;

pub use error::{expect_bytes, expect_eq, Error};
pub use harness::{FileReport, VECTORS_SOURCE_COMMIT};

use harness::run_file;

/// The sixteen vector files, in report order.
pub const FILES: &[&str] = &[
    "tree-math.json",
    "crypto-basics.json",
    "secret-tree.json",
    "message-protection.json",
    "key-schedule.json",
    "psk_secret.json",
    "transcript-hashes.json",
    "welcome.json",
    "tree-operations.json",
    "tree-validation.json",
    "treekem.json",
    "messages.json",
    "deserialization.json",
    "passive-client-welcome.json",
    "passive-client-handling-commit.json",
    "passive-client-random.json",
];

/// Runs the verifier of `file` (one of [`FILES`]) on the copy in `dir`;
/// `None` for an unknown file name.
pub fn run_named(dir: &Path, file: &str) -> Option<FileReport> {
    Some(match file {
        "tree-math.json" => run_file::<checks::tree_math::TreeMath>(dir, file),
        "crypto-basics.json" => run_file::<checks::crypto_basics::CryptoBasics>(dir, file),
        "secret-tree.json" => run_file::<checks::secret_tree::SecretTree>(dir, file),
        "message-protection.json" => run_file::<checks::message_protection::MessageProtection>(dir, file),
        "key-schedule.json" => run_file::<checks::key_schedule::KeySchedule>(dir, file),
        "psk_secret.json" => run_file::<checks::psk_secret::PskSecret>(dir, file),
        "transcript-hashes.json" => run_file::<checks::transcript_hashes::TranscriptHashes>(dir, file),
        "welcome.json" => run_file::<checks::welcome::WelcomeCheck>(dir, file),
        "tree-operations.json" => run_file::<checks::tree_operations::TreeOperations>(dir, file),
        "tree-validation.json" => run_file::<checks::tree_validation::TreeValidation>(dir, file),
        "treekem.json" => run_file::<checks::treekem::TreeKem>(dir, file),
        "messages.json" => run_file::<checks::messages::Messages>(dir, file),
        "deserialization.json" => run_file::<checks::deserialization::Deserialization>(dir, file),
        "passive-client-welcome.json" | "passive-client-handling-commit.json" | "passive-client-random.json" => {
            run_file::<checks::passive_client::PassiveClient>(dir, file)
        }
        _ => return None,
    })
}

/// Runs every file of [`FILES`] found in `dir`.
pub fn run_all(dir: &Path) -> Vec<FileReport> {
    FILES.iter().filter_map(|f| run_named(dir, f)).collect()
}
