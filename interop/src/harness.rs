//! Finding the vector files, running every case of a file, and counting.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::Ciphersuite;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::Error;

/// The mlswg/mls-implementations commit the vector set was taken from
/// (stated in the vectors' README).
pub const VECTORS_SOURCE_COMMIT: &str = "cfd450286d1bfd9cd2519b95c80f9771f94a5b1a";

/// Environment variable that overrides where the vectors are read from.
pub const VECTORS_ENV: &str = "MLS_TEST_VECTORS";

/// The vector folder: `$MLS_TEST_VECTORS` if set, else `../shared/mls-test-vectors`
/// beside the workspace root.
pub fn vectors_dir() -> PathBuf {
    match std::env::var_os(VECTORS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mls-test-vectors"),
    }
}

/// Binary data written as lowercase hex in the JSON files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hex(pub Vec<u8>);

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).map(Hex).map_err(serde::de::Error::custom)
    }
}

impl AsRef<[u8]> for Hex {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Hex {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A failed case: its index in the file, its suite and what went wrong.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Index of the case in the file's JSON array.
    pub index: usize,
    /// The case's `cipher_suite`, if it has one.
    pub suite: Option<u16>,
    /// The error, formatted.
    pub error: String,
}

/// What a vector file's cases are run through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum Route {
    /// openmls's public API and its crypto provider (the code Grove ships);
    /// for the passive-client files, on Grove's client store.
    #[default]
    Openmls,
    /// The reference model (`interop::reference`, feature `reference-model`):
    /// our own implementation of RFC 9420 on the provider's primitives.
    Reference,
}

impl Route {
    /// Both routes, in report order.
    pub const ALL: [Route; 2] = [Route::Openmls, Route::Reference];

    /// The name used in reports and test output.
    pub fn name(self) -> &'static str {
        match self {
            Route::Openmls => "openmls",
            Route::Reference => "reference model",
        }
    }
}

/// The counts for one vector file on one route.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// The file name, e.g. `tree-math.json`.
    pub file: String,
    /// What the cases ran through.
    pub route: Route,
    /// Number of cases in the file.
    pub total: usize,
    /// Cases that ran and passed every check.
    pub passed: usize,
    /// Passed cases per suite (`None` for suite-less files).
    pub passed_by_suite: BTreeMap<Option<u16>, usize>,
    /// Cases that ran and failed.
    pub failed: Vec<Failure>,
    /// Cases skipped because the crypto provider lacks their suite, per suite.
    pub skipped_by_suite: BTreeMap<u16, usize>,
    /// Set when the whole file could not be loaded.
    pub load_error: Option<String>,
}

impl FileReport {
    /// Number of skipped cases.
    pub fn skipped(&self) -> usize {
        self.skipped_by_suite.values().sum()
    }

    /// Whether the file counts as a success: loaded, nothing failed, and at
    /// least one case actually ran.
    pub fn ok(&self) -> bool {
        self.load_error.is_none() && self.failed.is_empty() && self.passed > 0
    }

    /// One summary line: passed / failed / skipped by suite.
    pub fn summary_line(&self) -> String {
        if let Some(e) = &self.load_error {
            return format!("{} via {}: NOT LOADED: {e}", self.file, self.route.name());
        }
        let skipped = if self.skipped_by_suite.is_empty() {
            "none".to_string()
        } else {
            self.skipped_by_suite.iter().map(|(s, n)| format!("0x{s:04x}:{n}")).collect::<Vec<_>>().join(" ")
        };
        format!(
            "{} via {}: {} cases, passed {}, failed {}, skipped {} (by suite: {}){}",
            self.file,
            self.route.name(),
            self.total,
            self.passed,
            self.failed.len(),
            self.skipped(),
            skipped,
            if self.passed == 0 && self.failed.is_empty() { " -- every case skipped" } else { "" }
        )
    }
}

/// How one case of a file is checked.
pub trait CaseVerifier {
    /// The JSON shape of one case.
    type Case: DeserializeOwned;

    /// The case's `cipher_suite`, or `None` for suite-independent files.
    fn suite(case: &Self::Case) -> Option<u16>;

    /// Runs every check on a case whose suite (if any) the provider supports.
    fn verify(case: &Self::Case, suite: Option<Ciphersuite>) -> Result<(), Error>;
}

/// The suite for an RFC 9420 code point, or `None` when the crypto provider
/// (`RustCrypto`) does not implement it: the case is then skipped.
pub fn supported_suite(code: u16) -> Option<Ciphersuite> {
    let cs = Ciphersuite::try_from(code).ok()?;
    RustCrypto::default().supports(cs).ok()?;
    Some(cs)
}

/// Runs `V` on one case given as JSON (the negative tests alter cases this
/// way); an error if the case does not parse or its suite is not supported.
pub fn verify_json<V: CaseVerifier>(case: &serde_json::Value) -> Result<(), Error> {
    let case: V::Case = serde_json::from_value(case.clone()).map_err(|e| Error::decode(format!("case shape: {e}")))?;
    let suite = V::suite(&case)
        .map(|code| supported_suite(code).ok_or_else(|| Error::decode(format!("suite 0x{code:04x} not supported"))))
        .transpose()?;
    V::verify(&case, suite)
}

/// Loads `file` from `dir` and runs `V` on every case.
pub fn run_file<V: CaseVerifier>(dir: &Path, file: &str, route: Route) -> FileReport {
    let mut report = FileReport { file: file.to_string(), route, ..FileReport::default() };
    let path = dir.join(file);
    let cases: Vec<V::Case> = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(cases) => cases,
        Err(detail) => {
            report.load_error = Some(Error::Load { path: path.display().to_string(), detail }.to_string());
            return report;
        }
    };
    report.total = cases.len();
    for (index, case) in cases.iter().enumerate() {
        let code = V::suite(case);
        let suite = match code {
            None => None,
            Some(code) => match supported_suite(code) {
                Some(suite) => Some(suite),
                None => {
                    *report.skipped_by_suite.entry(code).or_default() += 1;
                    continue;
                }
            },
        };
        let result = catch_unwind(AssertUnwindSafe(|| V::verify(case, suite))).unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(Error::Panic(msg))
        });
        match result {
            Ok(()) => {
                report.passed += 1;
                *report.passed_by_suite.entry(code).or_default() += 1;
            }
            Err(e) => report.failed.push(Failure { index, suite: code, error: e.to_string() }),
        }
    }
    report
}

/// The vector folder for a test, or `None` (after printing `SKIPPED: ...`)
/// when it is missing. Under `CI=true` a missing folder is a failure: this
/// panics instead.
pub fn vectors_or_skip() -> Option<PathBuf> {
    let dir = vectors_dir();
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!("SKIPPED: MLS test vectors not found at {} (set {VECTORS_ENV})", dir.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; CI=true, so this is a failure");
    }
    println!("{msg}");
    None
}

/// The body of each `#[test]`: runs one file on one route, prints its
/// summary line and failures, and panics unless [`FileReport::ok`].
///
/// Without the vector folder it prints `SKIPPED: ...` and returns, unless the
/// environment has `CI=true`, where a missing folder is a failure.
pub fn test_file(file: &str, route: Route) {
    let Some(dir) = vectors_or_skip() else {
        return;
    };
    let report = crate::run_named(&dir, file, route)
        .unwrap_or_else(|| panic!("no {} verifier registered for {file}", route.name()));
    println!("{}", report.summary_line());
    for f in &report.failed {
        println!("  case {} (suite {}): {}", f.index, f.suite.map_or("-".into(), |s| format!("0x{s:04x}")), f.error);
    }
    assert!(report.ok(), "{}", report.summary_line());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_skipped_is_not_ok() {
        let mut r = FileReport { file: "x.json".into(), total: 2, ..FileReport::default() };
        r.skipped_by_suite.insert(4, 2);
        assert!(!r.ok());
        assert!(r.summary_line().contains("every case skipped"));
        r.passed = 1;
        assert!(r.ok());
        r.failed.push(Failure { index: 0, suite: Some(1), error: "boom".into() });
        assert!(!r.ok());
    }
}
