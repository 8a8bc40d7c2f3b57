//! Interop checks for Grove: the RFC 9420 test vectors.
//!
//! Every vector file published by the MLS working group
//! (`mlswg/mls-implementations`, folder `test-vectors/`) has at least one
//! verifier, on one or both of two routes ([`Route`]):
//!
//! - **openmls**: openmls's public API and its crypto provider
//!   (`openmls_rust_crypto::RustCrypto` through
//!   [`openmls_traits::crypto::OpenMlsCrypto`]), the code Grove ships, in
//!   [`checks`]. The passive-client files run there on Grove's own client
//!   store (`grove_client::storage::GroveProvider`, [`passive`]).
//! - **reference model**: our own implementation of RFC 9420 on the
//!   provider's primitives, in `reference` (cargo feature
//!   `reference-model`, which this crate's tests turn on), for the files
//!   openmls's public API cannot take and as a second check of the others.
//!
//! [`FILES`] says which file runs on which route. No verifier needs
//! openmls's `test-utils` feature. The tests (`tests/vectors.rs`,
//! `tests/reference.rs`, `tests/negative.rs`) and the `vector-report` binary
//! share [`run_named`] and [`run_all`]. The cross-implementation tests
//! against mls-rs live in `tests/mls_rs.rs` (in process) and
//! `tests/foreign_client.rs` (an mls-rs client over the real DS).
//!
//! # Layout
//! - [`harness`]: locating the vectors, running the cases of a file on a
//!   route, counting, and the skip-or-fail rule for a missing folder.
//! - [`provider`]: an openmls provider for the vectors, and importing a
//!   vector's KeyPackage and private keys into openmls's storage.
//! - [`checks`]: the openmls verifiers, one module per file:
//!   `crypto_basics`, `deserialization`, `messages`, `tree_validation`,
//!   `welcome`, `passive_client` (the three passive-client files).
//! - [`passive`]: the passive client on openmls, run through a client store
//!   (Grove's sled store in the tests).
//! - `reference` (feature `reference-model`): the reference model:
//!   `reference::suite` (a suite on the provider, the labeled operations),
//!   `reference::codec` (TLS primitives), `reference::mls` (wire structures:
//!   `tree_nodes`, `handshake`, `content`, `group`), `reference::tree_math`,
//!   `reference::tree`, `reference::secret_tree`, `reference::key_schedule`,
//!   `reference::framing`, `reference::treekem`, and `reference::checks`
//!   (one verifier per file it covers: `tree_math`, `crypto_basics`,
//!   `secret_tree`, `message_protection`, `key_schedule`, `psk_secret`,
//!   `transcript_hashes`, `welcome`, `tree_operations`, `tree_validation`,
//!   `treekem`, `messages`, `deserialization`).
//! - [`report`]: the Markdown report (`docs/interop.md`), written by the
//!   `vector-report` binary (`src/bin/vector-report.rs`).
//! - `error` (private): [`Error`], [`expect_bytes`], [`expect_eq`].

pub mod checks;
mod error;
pub mod harness;
pub mod passive;
pub mod provider;
#[cfg(feature = "reference-model")]
pub mod reference;
pub mod report;

use std::path::Path;

pub use error::{expect_bytes, expect_eq, Error};
pub use harness::{FileReport, Route, VECTORS_SOURCE_COMMIT};

use harness::run_file;

/// One vector file and what it runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorFile {
    /// The file name, e.g. `welcome.json`.
    pub name: &'static str,
    /// Runs through openmls's public API ([`Route::Openmls`]).
    pub openmls: bool,
    /// What of the file openmls covers, when not all of it (empty otherwise).
    pub openmls_scope: &'static str,
    /// That openmls run is on Grove's client store.
    pub grove_store: bool,
    /// Runs through the reference model ([`Route::Reference`]).
    pub reference: bool,
}

impl VectorFile {
    /// Whether the file runs on `route`.
    pub fn runs_on(&self, route: Route) -> bool {
        match route {
            Route::Openmls => self.openmls,
            Route::Reference => self.reference,
        }
    }
}

const fn openmls_and_reference(name: &'static str, openmls_scope: &'static str) -> VectorFile {
    VectorFile { name, openmls: true, openmls_scope, grove_store: false, reference: true }
}

const fn reference_only(name: &'static str) -> VectorFile {
    VectorFile { name, openmls: false, openmls_scope: "", grove_store: false, reference: true }
}

const fn grove_store(name: &'static str) -> VectorFile {
    VectorFile { name, openmls: true, openmls_scope: "", grove_store: true, reference: false }
}

/// The sixteen vector files, in report order, and their routes.
pub const FILES: &[VectorFile] = &[
    reference_only("tree-math.json"),
    openmls_and_reference(
        "crypto-basics.json",
        "openmls's RefHash and labeled signatures; ExpandWithLabel family and HPKE labels on its provider's primitives",
    ),
    reference_only("secret-tree.json"),
    reference_only("message-protection.json"),
    reference_only("key-schedule.json"),
    reference_only("psk_secret.json"),
    reference_only("transcript-hashes.json"),
    openmls_and_reference("welcome.json", "up to the verified GroupInfo; not the confirmation tag"),
    reference_only("tree-operations.json"),
    openmls_and_reference(
        "tree-validation.json",
        "decoding, leaf signatures, parent hashes, tree import; not tree hashes or resolutions",
    ),
    reference_only("treekem.json"),
    openmls_and_reference("messages.json", "every field but GroupSecrets; ReInit refused (known divergence)"),
    openmls_and_reference("deserialization.json", "through tls_codec, the codec openmls ships with"),
    grove_store("passive-client-welcome.json"),
    grove_store("passive-client-handling-commit.json"),
    grove_store("passive-client-random.json"),
];

/// The coverage counts, for the report: "8 of 16 ...".
pub fn coverage_summary() -> String {
    let n = FILES.len();
    let openmls = FILES.iter().filter(|f| f.openmls).count();
    let partly = FILES.iter().filter(|f| f.openmls && !f.openmls_scope.is_empty()).count();
    let store = FILES.iter().filter(|f| f.grove_store).count();
    let only_reference = FILES.iter().filter(|f| !f.openmls && f.reference).count();
    let reference = FILES.iter().filter(|f| f.reference).count();
    format!(
        "{openmls} of {n} files run through openmls ({partly} of them in part, see the table), {store} of them \
         also through Grove's client store; {only_reference} of {n} run only through the reference model \
         (which also re-checks {} of the openmls ones, {reference} of {n} in all)",
        reference - only_reference
    )
}

/// Runs the verifier of `file` (one of [`FILES`]) on `route` on the copy in
/// `dir`; `None` when there is no such verifier (an unknown file, a file the
/// route does not take, or the reference model not built).
pub fn run_named(dir: &Path, file: &str, route: Route) -> Option<FileReport> {
    match route {
        Route::Openmls => run_openmls(dir, file),
        Route::Reference => run_reference(dir, file),
    }
}

fn run_openmls(dir: &Path, file: &str) -> Option<FileReport> {
    use checks::*;
    let r = Route::Openmls;
    Some(match file {
        "crypto-basics.json" => run_file::<crypto_basics::CryptoBasics>(dir, file, r),
        "welcome.json" => run_file::<welcome::WelcomeCheck>(dir, file, r),
        "tree-validation.json" => run_file::<tree_validation::TreeValidation>(dir, file, r),
        "messages.json" => run_file::<messages::Messages>(dir, file, r),
        "deserialization.json" => run_file::<deserialization::Deserialization>(dir, file, r),
        "passive-client-welcome.json" | "passive-client-handling-commit.json" | "passive-client-random.json" => {
            run_file::<passive_client::PassiveClient>(dir, file, r)
        }
        _ => return None,
    })
}

#[cfg(feature = "reference-model")]
fn run_reference(dir: &Path, file: &str) -> Option<FileReport> {
    use reference::checks::*;
    let r = Route::Reference;
    Some(match file {
        "tree-math.json" => run_file::<tree_math::TreeMath>(dir, file, r),
        "crypto-basics.json" => run_file::<crypto_basics::CryptoBasics>(dir, file, r),
        "secret-tree.json" => run_file::<secret_tree::SecretTree>(dir, file, r),
        "message-protection.json" => run_file::<message_protection::MessageProtection>(dir, file, r),
        "key-schedule.json" => run_file::<key_schedule::KeySchedule>(dir, file, r),
        "psk_secret.json" => run_file::<psk_secret::PskSecret>(dir, file, r),
        "transcript-hashes.json" => run_file::<transcript_hashes::TranscriptHashes>(dir, file, r),
        "welcome.json" => run_file::<welcome::WelcomeCheck>(dir, file, r),
        "tree-operations.json" => run_file::<tree_operations::TreeOperations>(dir, file, r),
        "tree-validation.json" => run_file::<tree_validation::TreeValidation>(dir, file, r),
        "treekem.json" => run_file::<treekem::TreeKem>(dir, file, r),
        "messages.json" => run_file::<messages::Messages>(dir, file, r),
        "deserialization.json" => run_file::<deserialization::Deserialization>(dir, file, r),
        _ => return None,
    })
}

#[cfg(not(feature = "reference-model"))]
fn run_reference(_: &Path, _: &str) -> Option<FileReport> {
    None
}

/// Runs, for every file of [`FILES`], each route it runs on whose verifier
/// is built.
pub fn run_all(dir: &Path) -> Vec<FileReport> {
    FILES
        .iter()
        .flat_map(|f| Route::ALL.into_iter().filter(|r| f.runs_on(*r)).map(move |r| (f.name, r)))
        .filter_map(|(name, route)| run_named(dir, name, route))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the table names has a verifier (the reference model's
    /// when it is built), and no verifier exists that the table does not name.
    #[test]
    fn the_table_matches_the_verifiers() {
        let nowhere = Path::new("/nonexistent/grove-interop-vectors");
        for f in FILES {
            for route in Route::ALL {
                let built = route == Route::Openmls || cfg!(feature = "reference-model");
                let report = run_named(nowhere, f.name, route);
                assert_eq!(report.is_some(), f.runs_on(route) && built, "{} via {}", f.name, route.name());
                if let Some(r) = report {
                    assert!(r.load_error.is_some() && !r.ok(), "{}: a missing file must not pass", f.name);
                }
            }
            assert!(f.openmls || f.reference, "{} runs nowhere", f.name);
            assert!(!f.grove_store || f.openmls, "{}: Grove's store is an openmls run", f.name);
        }
        assert_eq!(FILES.len(), 16);
    }

    #[test]
    fn coverage_counts() {
        assert_eq!(
            coverage_summary(),
            "8 of 16 files run through openmls (5 of them in part, see the table), 3 of them also through \
             Grove's client store; 8 of 16 run only through the reference model (which also re-checks 5 of \
             the openmls ones, 13 of 16 in all)"
        );
    }
}
