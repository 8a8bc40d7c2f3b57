//! The domain error of the Delivery Service. Each variant has a stable
//! machine-readable [`ErrorCode`] (`docs/api.md` has the table); the HTTP
//! mapping (status, JSON body) lives in `http::error`, so the domain does not
//! know about HTTP.

use crate::api::{ErrorCode, IdError};
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
    /// A group id in a URL is not valid.
    #[error("invalid request: {0}")]
    InvalidGroupId(IdError),
    /// Registration names a signature scheme the DS does not support.
    #[error("invalid request: signature_scheme 0x{0:04x} is not supported (use 0x0807 Ed25519 or 0x0403 ECDSA P-256)")]
    UnsupportedSignatureScheme(u16),
    /// Registration carries a credential that is not a usable BasicCredential.
    #[error("invalid request: {0}")]
    InvalidCredential(String),
    /// Registration carries a signature key of an impossible length.
    #[error("invalid request: signature_key has an impossible length")]
    InvalidSignatureKey,
    /// A KeyPackage upload holds no KeyPackage.
    #[error("invalid request: the upload holds no KeyPackage")]
    EmptyUpload,
    /// A page limit of 0.
    #[error("invalid request: limit must be at least 1")]
    ZeroLimit,
    /// A long-poll longer than the server allows.
    #[error("invalid request: wait is above the maximum of {max_secs} s")]
    WaitTooLong {
        /// The server's maximum, seconds.
        max_secs: u64,
    },
    /// An acknowledgement beyond what the caller may read.
    #[error("invalid request: seq {seq} is beyond the last readable entry {last}")]
    AckBeyondLog {
        /// The seq acknowledged.
        seq: u64,
        /// The last readable seq.
        last: u64,
    },
    /// A `format` parameter other than `json` or `binary`.
    #[error("invalid request: format must be json or binary, not {0:?}")]
    UnknownFormat(String),
    /// An audit range the key directory does not serve.
    #[error("invalid request: {0}")]
    InvalidAuditRange(String),
    /// A commit report that names no stored commit or is too long.
    #[error("invalid request: {0}")]
    InvalidReport(String),
    /// A blob id that is not 32 lowercase hex characters.
    #[error("invalid request: a blob id is 32 lowercase hex characters")]
    InvalidBlobId,
    /// The upload body ended with an error before it was complete.
    #[error("invalid request: the upload was interrupted: {0}")]
    UploadInterrupted(String),
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
    /// The device is not in its user's latest device list.
    #[error("this device is not in {user}'s device list (it was revoked, or never added): link it again from another device of {user}")]
    DeviceRevoked {
        /// The user.
        user: String,
    },
    /// A device list or certificate does not verify.
    #[error("invalid device list: {0}")]
    DeviceListInvalid(String),
    /// A device list is not the successor of the latest stored one.
    #[error("device list conflict: {0}; fetch the user's device lists, then publish the next version")]
    DeviceListConflict(String),
    /// No link request with this id, or it expired.
    #[error("no link request with this id (it expired, or never existed): make a new one on the new device (`grove init --link`)")]
    UnknownLink,
    /// The link request was approved already.
    #[error("this link request was approved already: a link code works once; make a new one on the new device")]
    LinkUsed,
    /// A link request or approval was refused.
    #[error("link refused: {0}")]
    LinkInvalid(String),
    /// The registration's login token was refused (see [`LoginRefusal`](crate::login::LoginRefusal)).
    #[error("{0}")]
    Login(#[from] crate::login::LoginRefusal),
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
    /// The key directory has no such epoch.
    #[error("the key directory has no epoch {asked} (its latest is {latest})")]
    UnknownEpoch {
        /// The epoch asked for.
        asked: u64,
        /// The latest epoch.
        latest: u64,
    },
    /// The user is not in the key directory (not registered, or not yet published).
    #[error("{0:?} is not in the key directory yet: retry in a second")]
    NotInDirectory(String),
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
    /// The peer address holds its maximum of WebSocket streams.
    #[error("this address holds its maximum of {0} open streams: close one, or poll with GET .../messages?wait=")]
    TooManyStreams(usize),
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
    /// Another replica kept appending to the group while this one retried;
    /// nothing was written (details in the server log).
    #[error("the group is too busy on other replicas right now: retry shortly")]
    Stale(String),
    /// A bug or an unexpected library failure; details are in the server log.
    #[error("internal error")]
    Internal(String),
}

impl DsError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        use DsError::*;
        match self {
            MalformedMessage(_) => ErrorCode::MalformedMessage,
            WrongWireFormat(_) => ErrorCode::WrongWireFormat,
            WrongMessageType(_) => ErrorCode::WrongMessageType,
            InvalidCommit(_) => ErrorCode::InvalidCommit,
            InvalidProposal(_) => ErrorCode::InvalidProposal,
            InvalidKeyPackage { .. } => ErrorCode::InvalidKeyPackage,
            InvalidGroupInfo(_) => ErrorCode::InvalidGroupInfo,
            UnsupportedCiphersuite(_) => ErrorCode::UnsupportedCiphersuite,
            InvalidName(_) => ErrorCode::InvalidName,
            InvalidGroupId(_)
            | UnsupportedSignatureScheme(_)
            | InvalidCredential(_)
            | InvalidSignatureKey
            | EmptyUpload
            | ZeroLimit
            | WaitTooLong { .. }
            | AckBeyondLog { .. }
            | UnknownFormat(_)
            | InvalidBlobId
            | UploadInterrupted(_)
            | InvalidAuditRange(_)
            | InvalidReport(_) => ErrorCode::InvalidRequest,
            UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            PageTooLarge { .. } => ErrorCode::PageTooLarge,
            GroupIdMismatch => ErrorCode::GroupIdMismatch,
            WelcomeMismatch(_) => ErrorCode::WelcomeMismatch,
            UnregisteredMember { .. } => ErrorCode::UnregisteredMember,
            WrongEpoch { .. } => ErrorCode::WrongEpoch,
            StaleEpoch { .. } => ErrorCode::StaleEpoch,
            AuthRequired => ErrorCode::AuthRequired,
            TokenInvalid => ErrorCode::TokenInvalid,
            TokenExpired => ErrorCode::TokenExpired,
            ChallengeInvalid => ErrorCode::ChallengeInvalid,
            BadSignature => ErrorCode::BadSignature,
            RegistrationClosed => ErrorCode::RegistrationClosed,
            DeviceRevoked { .. } => ErrorCode::DeviceRevoked,
            DeviceListInvalid(_) => ErrorCode::DeviceListInvalid,
            DeviceListConflict(_) => ErrorCode::DeviceListConflict,
            UnknownLink => ErrorCode::UnknownLink,
            LinkUsed => ErrorCode::LinkUsed,
            LinkInvalid(_) => ErrorCode::LinkInvalid,
            Login(r) => {
                use crate::login::LoginRefusal as L;
                match r {
                    L::Required => ErrorCode::LoginTokenRequired,
                    L::Malformed => ErrorCode::LoginTokenMalformed,
                    L::Expired => ErrorCode::LoginTokenExpired,
                    L::WrongIssuer => ErrorCode::LoginTokenWrongIssuer,
                    L::WrongAudience => ErrorCode::LoginTokenWrongAudience,
                    L::BadSignature => ErrorCode::LoginTokenBadSignature,
                    L::SubjectMismatch => ErrorCode::LoginTokenSubjectMismatch,
                }
            }
            NotAMember => ErrorCode::NotAMember,
            MetricsDisabled => ErrorCode::MetricsDisabled,
            SenderMismatch => ErrorCode::SenderMismatch,
            UnknownUser(_) => ErrorCode::UnknownUser,
            UnknownEpoch { .. } => ErrorCode::UnknownEpoch,
            NotInDirectory(_) => ErrorCode::NotInDirectory,
            UnknownGroup => ErrorCode::UnknownGroup,
            NoKeyPackage(_) => ErrorCode::NoKeyPackage,
            UnknownWelcome => ErrorCode::UnknownWelcome,
            UserExists(_) => ErrorCode::UserExists,
            GroupExists => ErrorCode::GroupExists,
            KeyPackageQuota(_) => ErrorCode::KeyPackageQuota,
            RateLimited { .. } => ErrorCode::RateLimited,
            TooManyStreams(_) => ErrorCode::TooManyStreams,
            BlobTooLarge { .. } => ErrorCode::PayloadTooLarge,
            UnknownBlob => ErrorCode::UnknownBlob,
            ShuttingDown => ErrorCode::ShuttingDown,
            Storage(StoreError::Unavailable(_)) | Stale(_) => ErrorCode::StorageUnavailable,
            Storage(_) => ErrorCode::StorageError,
            Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<IdError> for DsError {
    fn from(e: IdError) -> Self {
        match e {
            IdError::UserName(_) => DsError::InvalidName(e.to_string()),
            IdError::GroupId(_) => DsError::InvalidGroupId(e),
        }
    }
}
