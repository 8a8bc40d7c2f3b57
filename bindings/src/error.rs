//! The one error type every binding call fails with.

/// What a call failed with. Kotlin sees `GroveException.Failed`, Swift
/// `GroveError.Failed`, Python `GroveError.Failed`; each carries the same
/// fields.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum GroveError {
    /// Every failure: `code` is the stable code of the CLI's `--json`
    /// errors (`key_changed`, `network`, `server`, `unknown_group`, ...; see
    /// `docs/mobile.md`), `message` says what is wrong and what to do.
    #[error("{code}: {message}")]
    Failed {
        /// The stable machine-readable code.
        code: String,
        /// One line for a person: what is wrong and what to do.
        message: String,
        /// The DS's own code (`docs/api.md` §7) when the DS refused.
        server_code: Option<String>,
        /// Whether the same call may succeed if simply retried later (a
        /// network failure or timeout, a DS that is overloaded or down).
        retryable: bool,
    },
}

impl GroveError {
    /// An error of this binding's own (not from `grove_client`).
    pub(crate) fn new(code: &str, message: impl Into<String>, retryable: bool) -> Self {
        GroveError::Failed { code: code.to_owned(), message: message.into(), server_code: None, retryable }
    }

    /// `invalid_argument`: the caller passed something unusable.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_argument", message, false)
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            GroveError::Failed { code, .. } => code,
        }
    }
}

impl From<grove_client::Error> for GroveError {
    fn from(e: grove_client::Error) -> Self {
        GroveError::Failed {
            code: e.code().to_owned(),
            message: e.to_string(),
            server_code: e.server_code().map(str::to_owned),
            retryable: e.is_retryable(),
        }
    }
}

/// What every binding call returns.
pub type Result<T, E = GroveError> = std::result::Result<T, E>;
