//! The one error type of the verifiers.

/// Why a vector case failed (or could not be run).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A computed or decoded value differs from the vector.
    #[error("mismatch in `{field}`: expected {expected}, got {got}")]
    Mismatch {
        /// The vector field (or derived value) that differs.
        field: String,
        /// The vector's value, hex where binary.
        expected: String,
        /// Our value, hex where binary.
        got: String,
    },
    /// Bytes that do not decode as the structure they should be.
    #[error("decode error: {0}")]
    Decode(String),
    /// A cryptographic operation failed (bad signature, AEAD tag, HPKE open).
    #[error("crypto failure in {what}: {detail}")]
    Crypto {
        /// What was being done.
        what: String,
        /// The provider's error.
        detail: String,
    },
    /// openmls refused or failed an operation on vector data.
    #[error("openmls rejected {what}: {detail}")]
    Openmls {
        /// What was being done.
        what: String,
        /// openmls's error, formatted.
        detail: String,
    },
    /// The client store (Grove's sled storage) failed to open, commit or load.
    #[error("client store failed in {what}: {detail}")]
    Store {
        /// What was being done.
        what: String,
        /// The store's error, formatted.
        detail: String,
    },
    /// A check that should have failed succeeded (a negative test).
    #[error("expected a refusal: {0}")]
    NotRefused(String),
    /// The vector file could not be read or parsed as JSON.
    #[error("cannot load {path}: {detail}")]
    Load {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Several independent checks of one case failed.
    #[error("{}", .0.join("; "))]
    Several(Vec<String>),
    /// A verifier panicked (a bug, in our code or in a library).
    #[error("panic: {0}")]
    Panic(String),
}

impl Error {
    /// A decode error.
    pub fn decode(msg: impl Into<String>) -> Self {
        Error::Decode(msg.into())
    }

    /// A crypto error for `what`.
    pub fn crypto(what: impl Into<String>, detail: impl std::fmt::Debug) -> Self {
        Error::Crypto { what: what.into(), detail: format!("{detail:?}") }
    }

    /// A client-store error for `what`.
    pub fn store(what: impl Into<String>, detail: impl std::fmt::Debug) -> Self {
        Error::Store { what: what.into(), detail: format!("{detail:?}") }
    }

    /// An openmls error for `what`.
    pub fn openmls(what: impl Into<String>, detail: impl std::fmt::Debug) -> Self {
        Error::Openmls { what: what.into(), detail: format!("{detail:?}") }
    }
}

/// Compares binary values; the error names `field` and shows both in hex.
pub fn expect_bytes(field: impl Into<String>, expected: &[u8], got: &[u8]) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Mismatch { field: field.into(), expected: hex::encode(expected), got: hex::encode(got) })
    }
}

/// Compares any two values; the error names `field` and shows both with `Debug`.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(field: impl Into<String>, expected: T, got: T) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Mismatch { field: field.into(), expected: format!("{expected:?}"), got: format!("{got:?}") })
    }
}
