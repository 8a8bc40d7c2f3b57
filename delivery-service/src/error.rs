//! The domain error of the Delivery Service and its HTTP mapping.
//!
//! Every error becomes a JSON body `{"code": "...", "message": "..."}` (plus a
//! few variant-specific fields) with a stable machine-readable `code`; see
//! `docs/api.md` for the full table. Internal causes (storage failures) are
//! logged, never sent to the caller.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum DsError {
    /// The body is not a well-formed TLS-encoded MLS message (or Grove structure).
    #[error("malformed message: {0}")]
    MalformedMessage(String),
    /// Handshake messages must be PublicMessage, application messages PrivateMessage.
    #[error("wrong wire format: {0}")]
    WrongWireFormat(String),
    /// The MLS message is of a type this endpoint does not take.
    #[error("wrong message type: {0}")]
    WrongMessageType(String),
    /// A commit failed validation against the group's public state.
    #[error("invalid commit: {0}")]
    InvalidCommit(String),
    /// A proposal failed validation against the group's public state.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// A KeyPackage failed validation.
    #[error("invalid key package #{index}: {reason}")]
    InvalidKeyPackage {
        /// Position in the uploaded batch, from 0.
        index: usize,
        /// Why it was refused.
        reason: String,
    },
    /// A GroupInfo or ratchet tree failed validation.
    #[error("invalid group info: {0}")]
    InvalidGroupInfo(String),
    /// The ciphersuite is not one the DS supports.
    #[error("unsupported ciphersuite 0x{0:04x}")]
    UnsupportedCiphersuite(u16),
    /// A user name is not acceptable.
    #[error("invalid user name: {0}")]
    InvalidName(String),
    /// The request's Content-Type is not the one the route takes.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// A request field or parameter is invalid.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The page size asked for is above the server's maximum.
    #[error("page size {asked} is above the maximum of {max}")]
    PageTooLarge {
        /// The limit asked for.
        asked: usize,
        /// The server's maximum.
        max: usize,
    },
    /// The message names another group than the URL.
    #[error("the message is for another group than the one in the URL")]
    GroupIdMismatch,
    /// The Welcome does not match the members the commit adds.
    #[error("welcome does not match the commit: {0}")]
    WelcomeMismatch(String),
    /// A member in a tree, commit or KeyPackage is not registered with that key.
    #[error("member {user:?} is not registered with this signature key")]
    UnregisteredMember {
        /// The identity found in the credential.
        user: String,
    },
    /// The message's epoch is in the future.
    #[error("message is for epoch {got} but the group is at epoch {current}")]
    WrongEpoch {
        /// The group's epoch.
        current: u64,
        /// The message's epoch.
        got: u64,
    },
    /// The message's epoch is in the past: another commit won. Sync and retry.
    #[error("stale epoch {got}: the group is at epoch {current}; fetch the log, then retry on the new epoch")]
    StaleEpoch {
        /// The group's epoch.
        current: u64,
        /// The message's epoch.
        got: u64,
    },
    /// No or malformed `Authorization` header.
    #[error(
        "authentication required: send 'Authorization: Bearer <token>' (POST /v1/auth/challenge, then /v1/auth/token)"
    )]
    AuthRequired,
    /// The token is unknown (for example issued before a server restart).
    #[error("unknown token: get a new one from /v1/auth/token")]
    TokenInvalid,
    /// The token has expired.
    #[error("token expired: get a new one from /v1/auth/token")]
    TokenExpired,
    /// The challenge is unknown, already used, expired, or for another user.
    #[error("challenge unknown, used or expired: request a new one")]
    ChallengeInvalid,
    /// A signature did not verify.
    #[error("signature does not verify with the registered key")]
    BadSignature,
    /// Registration needs a valid registration token on this server.
    #[error("registration is closed: a valid registration token is required")]
    RegistrationClosed,
    /// `/metrics` needs `--metrics-token` on the server.
    #[error("metrics are disabled: start grove-ds with --metrics-token and scrape with that bearer token")]
    MetricsDisabled,
    /// The authenticated client is not a current member of the group.
    #[error("not a member of this group")]
    NotAMember,
    /// The authenticated client is not the sender of the MLS message.
    #[error("the message's sender is not the authenticated client")]
    SenderMismatch,
    /// Unknown user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// Unknown group.
    #[error("unknown group")]
    UnknownGroup,
    /// The user has no KeyPackage left for this ciphersuite.
    #[error("user {0:?} has no KeyPackage for this ciphersuite")]
    NoKeyPackage(String),
    /// No such Welcome in the inbox.
    #[error("no such welcome in your inbox")]
    UnknownWelcome,
    /// The user name is registered with another key.
    #[error("user name {0:?} is already registered with another key")]
    UserExists(String),
    /// A group with this id exists.
    #[error("a group with this id already exists")]
    GroupExists,
    /// The client's KeyPackage quota is full.
    #[error("key package quota: {0}")]
    KeyPackageQuota(String),
    /// Too many requests.
    #[error("rate limit exceeded: retry after {retry_after_ms} ms")]
    RateLimited {
        /// When to retry.
        retry_after_ms: u64,
    },
    /// A blob upload is larger than the server accepts.
    #[error("the blob is larger than the maximum of {max} bytes")]
    BlobTooLarge {
        /// The limit.
        max: u64,
    },
    /// No such blob in this group.
    #[error("no such blob in this group")]
    UnknownBlob,
    /// The server is shutting down.
    #[error("the server is shutting down: retry shortly")]
    ShuttingDown,
    /// Storage failed; details are in the server log.
    #[error("storage failure")]
    Storage(#[from] StoreError),
    /// A bug or an unexpected library failure; details are in the server log.
    #[error("internal error")]
    Internal(String),
}

impl DsError {
    /// The HTTP status and the stable error code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use DsError::*;
        match self {
            MalformedMessage(_) => (StatusCode::BAD_REQUEST, "malformed_message"),
            WrongWireFormat(_) => (StatusCode::BAD_REQUEST, "wrong_wire_format"),
            WrongMessageType(_) => (StatusCode::BAD_REQUEST, "wrong_message_type"),
            InvalidCommit(_) => (StatusCode::BAD_REQUEST, "invalid_commit"),
            InvalidProposal(_) => (StatusCode::BAD_REQUEST, "invalid_proposal"),
            InvalidKeyPackage { .. } => (StatusCode::BAD_REQUEST, "invalid_key_package"),
            InvalidGroupInfo(_) => (StatusCode::BAD_REQUEST, "invalid_group_info"),
            UnsupportedCiphersuite(_) => (StatusCode::BAD_REQUEST, "unsupported_ciphersuite"),
            InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            PageTooLarge { .. } => (StatusCode::BAD_REQUEST, "page_too_large"),
            GroupIdMismatch => (StatusCode::BAD_REQUEST, "group_id_mismatch"),
            WelcomeMismatch(_) => (StatusCode::BAD_REQUEST, "welcome_mismatch"),
            UnregisteredMember { .. } => (StatusCode::BAD_REQUEST, "unregistered_member"),
            WrongEpoch { .. } => (StatusCode::BAD_REQUEST, "wrong_epoch"),
            StaleEpoch { .. } => (StatusCode::CONFLICT, "stale_epoch"),
            AuthRequired => (StatusCode::UNAUTHORIZED, "auth_required"),
            TokenInvalid => (StatusCode::UNAUTHORIZED, "token_invalid"),
            TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
            ChallengeInvalid => (StatusCode::UNAUTHORIZED, "challenge_invalid"),
            BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
            RegistrationClosed => (StatusCode::FORBIDDEN, "registration_closed"),
            NotAMember => (StatusCode::FORBIDDEN, "not_a_member"),
            MetricsDisabled => (StatusCode::FORBIDDEN, "metrics_disabled"),
            SenderMismatch => (StatusCode::FORBIDDEN, "sender_mismatch"),
            UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
            UnknownGroup => (StatusCode::NOT_FOUND, "unknown_group"),
            NoKeyPackage(_) => (StatusCode::NOT_FOUND, "no_key_package"),
            UnknownWelcome => (StatusCode::NOT_FOUND, "unknown_welcome"),
            UserExists(_) => (StatusCode::CONFLICT, "user_exists"),
            GroupExists => (StatusCode::CONFLICT, "group_exists"),
            KeyPackageQuota(_) => (StatusCode::CONFLICT, "key_package_quota"),
            RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            BlobTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            UnknownBlob => (StatusCode::NOT_FOUND, "unknown_blob"),
            ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for DsError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = json!({ "code": code, "message": self.to_string() });
        match &self {
            DsError::StaleEpoch { current, .. } | DsError::WrongEpoch { current, .. } => {
                body["current_epoch"] = json!(current);
            }
            DsError::RateLimited { retry_after_ms } => body["retry_after_ms"] = json!(retry_after_ms),
            DsError::InvalidKeyPackage { index, .. } => body["index"] = json!(index),
            DsError::Storage(e) => tracing::error!(error = %e, "storage failure"),
            DsError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let DsError::RateLimited { retry_after_ms } = self {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
