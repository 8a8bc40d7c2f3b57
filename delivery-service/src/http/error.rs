//! The HTTP mapping of domain errors: each [`ErrorCode`] has one status, and
//! every error becomes an [`ErrorBody`] (`{"code", "message"}` plus the
//! variant's fields). Internal causes (storage failures, bugs) are logged,
//! never sent to the caller.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, ErrorCode};
use crate::error::DsError;

/// The HTTP status of an error code.
pub fn status_of(code: &ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StaleEpoch | UserExists | GroupExists | KeyPackageQuota | DeviceListConflict | LinkUsed => StatusCode::CONFLICT,
        AuthRequired
        | TokenInvalid
        | TokenExpired
        | ChallengeInvalid
        | BadSignature
        | LoginTokenRequired
        | LoginTokenMalformed
        | LoginTokenExpired
        | LoginTokenWrongIssuer
        | LoginTokenWrongAudience
        | LoginTokenBadSignature
        | LoginTokenSubjectMismatch
        | DeviceRevoked => StatusCode::UNAUTHORIZED,
        RegistrationClosed | NotAMember | MetricsDisabled | SenderMismatch => StatusCode::FORBIDDEN,
        UnknownUser | UnknownGroup | NoKeyPackage | UnknownWelcome | UnknownBlob | UnknownLink | NotFound
        | UnknownEpoch | NotInDirectory => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        RateLimited | TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ShuttingDown | StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        StorageError | InternalError | Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
        MalformedMessage
        | WrongWireFormat
        | WrongMessageType
        | InvalidCommit
        | InvalidProposal
        | InvalidKeyPackage
        | InvalidGroupInfo
        | UnsupportedCiphersuite
        | InvalidName
        | InvalidRequest
        | PageTooLarge
        | GroupIdMismatch
        | WelcomeMismatch
        | UnregisteredMember
        | WrongEpoch
        | DeviceListInvalid
        | LinkInvalid => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for DsError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = status_of(&code);
        let mut body = ErrorBody::new(code, self.to_string());
        match &self {
            DsError::StaleEpoch { current, .. } | DsError::WrongEpoch { current, .. } => {
                body.current_epoch = Some(*current)
            }
            DsError::RateLimited { retry_after_ms } => body.retry_after_ms = Some(*retry_after_ms),
            DsError::InvalidKeyPackage { index, .. } => body.index = Some(*index),
            DsError::Storage(e @ crate::store::StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, "storage unavailable");
                body.retry_after_ms = Some(1000);
            }
            DsError::Storage(e) => tracing::error!(error = %e, "storage failure"),
            DsError::Stale(e) => {
                tracing::warn!(error = %e, "group busy on other replicas");
                body.retry_after_ms = Some(100);
            }
            DsError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
        let retry_after_ms = body.retry_after_ms;
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(ms) = retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_documented_status() {
        // docs/api.md, "Errors": the status of each code.
        let expect = |c: &ErrorCode| match c.as_str() {
            "unsupported_media_type" => 415,
            "stale_epoch"
            | "user_exists"
            | "group_exists"
            | "key_package_quota"
            | "device_list_conflict"
            | "link_used" => 409,
            "auth_required" | "token_invalid" | "token_expired" | "challenge_invalid" | "bad_signature" => 401,
            c if c.starts_with("login_token_") || c == "device_revoked" => 401,
            "registration_closed" | "not_a_member" | "metrics_disabled" | "sender_mismatch" => 403,
            "unknown_user" | "unknown_group" | "no_key_package" | "unknown_welcome" | "unknown_blob"
            | "unknown_link" | "not_found" | "unknown_epoch" | "not_in_directory" => 404,
            "method_not_allowed" => 405,
            "rate_limited" | "too_many_streams" => 429,
            "payload_too_large" => 413,
            "shutting_down" | "storage_unavailable" => 503,
            "storage_error" | "internal_error" => 500,
            _ => 400,
        };
        for c in ErrorCode::ALL {
            assert_eq!(status_of(c).as_u16(), expect(c), "{c}");
        }
    }
}
