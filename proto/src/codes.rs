//! The closed vocabularies of the API: error codes ([`ErrorCode`], in every
//! error body, [`ErrorBody`]) and log entry kinds ([`EntryKind`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// The machine-readable `code` of an error body. Clients match on it;
        /// `docs/api.md` lists what each means and what to do.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version does not know (a newer server).
            Other(String),
        }

        impl ErrorCode {
            /// Every code this version knows.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Other(s) => s,
                }
            }

            /// The code of a wire string (unknown strings become [`ErrorCode::Other`]).
            pub fn parse(s: &str) -> Self {
                match s {
                    $($code => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

error_codes! {
    /// The body is not a well-formed TLS-encoded MLS message or Grove body.
    MalformedMessage = "malformed_message",
    /// Handshake messages must be PublicMessage, application messages PrivateMessage.
    WrongWireFormat = "wrong_wire_format",
    /// The MLS message is of a type this route does not take.
    WrongMessageType = "wrong_message_type",
    /// A commit failed validation.
    InvalidCommit = "invalid_commit",
    /// A proposal failed validation.
    InvalidProposal = "invalid_proposal",
    /// A KeyPackage failed validation (`index` says which).
    InvalidKeyPackage = "invalid_key_package",
    /// A GroupInfo or ratchet tree failed validation.
    InvalidGroupInfo = "invalid_group_info",
    /// The ciphersuite is not supported.
    UnsupportedCiphersuite = "unsupported_ciphersuite",
    /// A user name is not acceptable.
    InvalidName = "invalid_name",
    /// A request field or parameter is invalid.
    InvalidRequest = "invalid_request",
    /// The Content-Type is not the one the route takes.
    UnsupportedMediaType = "unsupported_media_type",
    /// The page size asked for is above the maximum.
    PageTooLarge = "page_too_large",
    /// The message names another group than the URL.
    GroupIdMismatch = "group_id_mismatch",
    /// The Welcome does not match the commit.
    WelcomeMismatch = "welcome_mismatch",
    /// A member is not registered with that key.
    UnregisteredMember = "unregistered_member",
    /// The message's epoch is in the future.
    WrongEpoch = "wrong_epoch",
    /// Another commit won the epoch: fetch, then retry.
    StaleEpoch = "stale_epoch",
    /// No or malformed `Authorization` header.
    AuthRequired = "auth_required",
    /// The token is unknown.
    TokenInvalid = "token_invalid",
    /// The token has expired.
    TokenExpired = "token_expired",
    /// The challenge is unknown, used or expired.
    ChallengeInvalid = "challenge_invalid",
    /// A signature did not verify.
    BadSignature = "bad_signature",
    /// Registration needs a registration token.
    RegistrationClosed = "registration_closed",
    /// This server binds users to the app's login: send a login token (a JWT
    /// from the app's auth server) with the registration.
    LoginTokenRequired = "login_token_required",
    /// The login token is not a well-formed JWT, or lacks a required claim
    /// (`sub`, `exp`, `iss`, `aud`).
    LoginTokenMalformed = "login_token_malformed",
    /// The login token has expired (or is not valid yet): log in to the app again.
    LoginTokenExpired = "login_token_expired",
    /// The login token was issued by another issuer than the server expects.
    LoginTokenWrongIssuer = "login_token_wrong_issuer",
    /// The login token is for another audience than the server expects.
    LoginTokenWrongAudience = "login_token_wrong_audience",
    /// The login token's signature does not verify with any configured key
    /// (or it uses an algorithm the server does not accept).
    LoginTokenBadSignature = "login_token_bad_signature",
    /// The login token's `sub` is another user than the one registering.
    LoginTokenSubjectMismatch = "login_token_subject_mismatch",
    /// The token's (or the signing) device is not in the user's latest
    /// device list: it was revoked, or never added.
    DeviceRevoked = "device_revoked",
    /// A device list or device certificate does not verify (signature,
    /// shape, user, identity key, or chain).
    DeviceListInvalid = "device_list_invalid",
    /// A device list is not the successor of the latest stored one (another
    /// version won, or it goes back, or forks): fetch the lists and redo.
    DeviceListConflict = "device_list_conflict",
    /// No link request with that id (never made, or expired): make a new
    /// one on the new device.
    UnknownLink = "unknown_link",
    /// The link request was approved already (a link code works once).
    LinkUsed = "link_used",
    /// A link request or approval was refused (see the message).
    LinkInvalid = "link_invalid",
    /// Not a current member of the group.
    NotAMember = "not_a_member",
    /// `/metrics` is disabled.
    MetricsDisabled = "metrics_disabled",
    /// The message's sender is not the authenticated client.
    SenderMismatch = "sender_mismatch",
    /// Unknown user.
    UnknownUser = "unknown_user",
    /// The key directory has no such epoch (yet): ask for one at or below
    /// the latest head (`GET /v1/kt/head`).
    UnknownEpoch = "unknown_epoch",
    /// The user is not in the key directory yet (a registration is published
    /// within about a second): retry shortly.
    NotInDirectory = "not_in_directory",
    /// Unknown group.
    UnknownGroup = "unknown_group",
    /// No KeyPackage left for the ciphersuite.
    NoKeyPackage = "no_key_package",
    /// No such Welcome in the inbox.
    UnknownWelcome = "unknown_welcome",
    /// The user name is registered with another key.
    UserExists = "user_exists",
    /// A group with this id exists.
    GroupExists = "group_exists",
    /// The KeyPackage quota is full.
    KeyPackageQuota = "key_package_quota",
    /// Too many requests (`retry_after_ms` says when to retry).
    RateLimited = "rate_limited",
    /// This address holds its maximum of open WebSocket streams.
    TooManyStreams = "too_many_streams",
    /// The body is larger than the server accepts.
    PayloadTooLarge = "payload_too_large",
    /// No such blob in the group.
    UnknownBlob = "unknown_blob",
    /// No such route.
    NotFound = "not_found",
    /// The route does not take this method.
    MethodNotAllowed = "method_not_allowed",
    /// The server is shutting down.
    ShuttingDown = "shutting_down",
    /// Storage failed (details in the server log).
    StorageError = "storage_error",
    /// The database is unreachable or too busy right now; retry shortly
    /// (`retry_after_ms` says when).
    StorageUnavailable = "storage_unavailable",
    /// A server bug (details in the server log).
    InternalError = "internal_error",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::parse(&<std::borrow::Cow<'de, str>>::deserialize(d)?))
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// The group's epoch, with `stale_epoch` and `wrong_epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// When to retry, with `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Which KeyPackage of an upload, with `invalid_key_package`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl ErrorBody {
    /// A body with just a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { code, message: message.into(), current_epoch: None, retry_after_ms: None, index: None }
    }
}

/// The kind of a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum EntryKind {
    /// A Commit (PublicMessage).
    Commit = 1,
    /// A Proposal (PublicMessage).
    Proposal = 2,
    /// An application message (PrivateMessage).
    Application = 3,
}

impl EntryKind {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Commit => "commit",
            EntryKind::Proposal => "proposal",
            EntryKind::Application => "application",
        }
    }

    /// The one-byte code used in binary bodies and the DS store.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// The kind of a one-byte code.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(EntryKind::Commit),
            2 => Some(EntryKind::Proposal),
            3 => Some(EntryKind::Application),
            _ => None,
        }
    }

    /// Whether the entry is a handshake message (commit or proposal).
    pub fn is_handshake(self) -> bool {
        self != EntryKind::Application
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for EntryKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_keep_unknown_ones() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(&serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }
        assert_eq!(ErrorCode::parse("from_the_future"), ErrorCode::Other("from_the_future".into()));
        let body: ErrorBody =
            serde_json::from_str(r#"{"code":"stale_epoch","message":"m","current_epoch":7}"#).unwrap();
        assert_eq!((body.code, body.current_epoch), (ErrorCode::StaleEpoch, Some(7)));
    }

    #[test]
    fn entry_kinds_have_stable_names_and_codes() {
        for (k, name, code) in [
            (EntryKind::Commit, "commit", 1),
            (EntryKind::Proposal, "proposal", 2),
            (EntryKind::Application, "application", 3),
        ] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{name}\""));
            assert_eq!((k.as_str(), k.to_u8(), EntryKind::from_u8(code)), (name, code, Some(k)));
        }
        assert_eq!(EntryKind::from_u8(0), None);
    }
}
