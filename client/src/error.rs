//! The client's error type.

use crate::storage::StorageError;

/// Everything a [`Client`](crate::Client) operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local store failed.
    #[error("local store: {0}")]
    Storage(#[from] StorageError),
    /// The home directory holds no Grove identity yet (run `init`).
    #[error("no Grove identity in {0} (run `grove init` first)")]
    NotInitialized(String),
    /// The home directory already holds an identity for another user or server.
    #[error("{home} already holds the identity {user}@{server}")]
    AlreadyInitialized {
        /// The home directory.
        home: String,
        /// Its user.
        user: String,
        /// Its server.
        server: String,
    },
    /// A connection-level failure (DNS, TCP, TLS, timeout). The outcome of a
    /// write is unknown; the next sync resolves it.
    #[error("network: {0}")]
    Network(String),
    /// The DS answered with an error (`code` is the stable code of docs/api.md §7).
    #[error("server: {status} {code}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Machine-readable code, e.g. `stale_epoch` (compares with `&str`).
        code: grove_proto::ErrorCode,
        /// Human-readable message.
        message: String,
        /// `current_epoch`, for `stale_epoch` and `wrong_epoch`.
        current_epoch: Option<u64>,
    },
    /// The DS sent something that is not what the API promises.
    #[error("protocol: {0}")]
    Protocol(String),
    /// TLS configuration (CA file, fingerprint) or an insecure URL.
    #[error("tls: {0}")]
    Tls(String),
    /// A user's key is not the one pinned for them: a server may be trying to
    /// substitute a key. Every operation involving that user fails until
    /// [`Client::trust_new_key`](crate::Client::trust_new_key).
    #[error("the key of {user} changed: pinned {pinned}, now seen {seen}; verify it out of band, then run `grove trust {user} --accept-new-key`")]
    KeyChanged {
        /// The user.
        user: String,
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the key now presented.
        seen: String,
    },
    /// The DS's key directory does not vouch for a key (or the directory
    /// itself misbehaves: its keys changed, its epoch went back, or it
    /// showed two roots for one epoch). The key is not pinned or used.
    #[error("key transparency: the key directory does not vouch for {user}'s key {key} (directory epoch {epoch}): {reason}. The server may be substituting keys: do not trust this key; compare safety numbers out of band")]
    KeyTransparency {
        /// The user (`-` for the directory itself).
        user: String,
        /// Fingerprint of the key in question.
        key: String,
        /// The directory epoch of the check.
        epoch: u64,
        /// What did not match.
        reason: String,
    },
    /// The key directory's audit failed: an append-only proof (or the head
    /// of an epoch) does not verify, so the DS changed its directory's
    /// history (`grove audit`).
    #[error("audit failed at directory epoch {epoch}: {reason}. The DS rewrote or forked its key directory; keep the audit progress file as evidence and tell the operator and your users")]
    AuditFailed {
        /// The first epoch whose proof or head does not verify.
        epoch: u64,
        /// What did not verify.
        reason: String,
    },
    /// The auditor's progress file cannot be read or written.
    #[error("audit progress file {path}: {reason}")]
    AuditProgress {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A KeyPackage does not verify or does not belong to the user it was claimed for.
    #[error("invalid key package for {user}: {reason}")]
    BadKeyPackage {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// No group with this name or id.
    #[error("no group named {0}")]
    UnknownGroup(String),
    /// Several groups carry this name: use the group id.
    #[error("several groups are named {name}; use one of the ids: {}", ids.join(", "))]
    AmbiguousGroup {
        /// The name.
        name: String,
        /// The ids (base64url).
        ids: Vec<String>,
    },
    /// The group was left (or this user was removed); its history stays readable.
    #[error("group {0} was left; its history is still readable")]
    GroupLeft(String),
    /// The DS shows less than this client has already seen: it lost data
    /// (restored from an old backup, a damaged disk) or is lying. Sending into
    /// the group is refused until the user acknowledges it.
    #[error("server rollback in {group}: {detail}; nothing more is sent into this group until you acknowledge it (`grove group ack-rollback {group}`), and the DS operator should be told")]
    ServerRollback {
        /// The group (or `-` for a directory rollback, such as a lost user).
        group: String,
        /// What was seen.
        detail: String,
    },
    /// Two members' epoch authenticators differ for the same epoch: the DS
    /// showed them different commits (a fork). Sending into the group is
    /// refused until the user acknowledges it.
    #[error("fork detected in {group}: another member's epoch authenticator for epoch {epoch} differs from this client's (log entry {seq}); the DS showed members different histories. Nothing more is sent into this group until you acknowledge it (`grove group ack-fork {group}`); members on the other branch cannot read this client, so recreate the group or have them rejoin, and tell the DS operator")]
    ForkDetected {
        /// The group.
        group: String,
        /// The epoch whose authenticators differ.
        epoch: u64,
        /// The log entry that showed it.
        seq: u64,
    },
    /// This client cannot follow the group's log (it was offline past the
    /// DS's retention, its home was restored from an old copy, or a commit
    /// could not be processed) and has not yet rejoined it by an external
    /// commit. Nothing is sent into the group until it has.
    #[error("{group} must be resynced before it can be used: {reason}. `grove sync` rejoins it by an external commit of this member; if that keeps failing, replace the group (`grove group successor`) or ask a member to remove and re-add you")]
    ResyncNeeded {
        /// The group.
        group: String,
        /// Why, and what the last attempt returned.
        reason: String,
    },
    /// The group was replaced by a successor group; send there.
    #[error("{group} was replaced by {successor}: use that group (this one stays readable)")]
    GroupReplaced {
        /// The old group.
        group: String,
        /// Its successor's id.
        successor: String,
    },
    /// The user is not a member of the group.
    #[error("{user} is not a member of {group}")]
    NotInGroup {
        /// The user.
        user: String,
        /// The group.
        group: String,
    },
    /// Nothing is pinned or pending for this user.
    #[error("no key known for {0}")]
    UnknownContact(String),
    /// A verified contact's key changed: accepting it needs a new
    /// verification, not just a trust decision.
    #[error("{user} was verified, and their key changed (pinned {pinned}, now seen {seen}); verify again: import {user}'s new contact code (`grove contact import CODE`)")]
    VerificationRequired {
        /// The user.
        user: String,
        /// Fingerprint of the pinned (verified) key.
        pinned: String,
        /// Fingerprint of the key now presented.
        seen: String,
    },
    /// The DS served a device list that does not follow the one this client
    /// verified before (a rollback, a fork, a broken chain) or that the
    /// user's identity key did not sign. Nothing was changed.
    #[error("the DS serves a device list of {user} that this client refuses: {reason}. The DS may be attacking, or {user}'s identity changed; nothing was changed")]
    DeviceListRejected {
        /// The user.
        user: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A contact code names another key than the DS serves for that user.
    #[error("the contact code of {user} says key {expected}, but the DS serves {served}: the code is outdated or the DS is not honest; ask {user} for a fresh code. Nothing was pinned")]
    ContactCodeMismatch {
        /// The user.
        user: String,
        /// Fingerprint in the code.
        expected: String,
        /// Fingerprint the DS serves.
        served: String,
    },
    /// A member's leaf is a device that its user's device list, as this
    /// client verified it, does not hold: a revoked device not removed yet,
    /// or one that the user never certified. Nothing was sent.
    #[error("{user}'s device {device} is in group {group} but not in {user}'s verified device list (revoked, or never added by {user}): nothing was sent; remove that device from the group (`grove device revoke {device}` if it is yours) and retry")]
    UnlistedDevice {
        /// The user.
        user: String,
        /// The device id.
        device: String,
        /// The group (base64url id).
        group: String,
    },
    /// This home waits for its link to be approved on another device.
    #[error("this device is waiting to be linked: on another device of the same user run `grove device approve {code}`, compare the codes, then run `grove sync` here")]
    LinkPending {
        /// The link code to approve.
        code: String,
    },
    /// A link code, request or approval was refused: it is malformed,
    /// expired, or does not match (the DS, or someone, changed it).
    #[error("link refused: {0}")]
    LinkRefused(String),
    /// An MLS operation failed: what was being done, why, and what to do.
    #[error("{op} failed: {cause}; {remedy}")]
    Mls {
        /// What was being done.
        op: &'static str,
        /// Why it failed (openmls's message, not its internals).
        cause: String,
        /// What to do about it.
        remedy: &'static str,
    },
    /// The operation kept losing the commit race (409) for its whole retry
    /// budget: the group is very busy. Nothing was half-done; run it again.
    #[error("{op}: other members' commits won the race {attempts} times in {budget_ms} ms; nothing was changed, run it again (or raise the retry budget)")]
    TooManyRetries {
        /// The operation.
        op: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The retry budget that was spent, in milliseconds.
        budget_ms: u64,
    },
    /// A fault injected by a test (see `Client::inject_fault`, cargo feature `fault-injection`).
    #[error("injected fault: {0}")]
    InjectedFault(&'static str),
    /// No live resource with this name (or no such version) in the group.
    #[error("no resource {name}{} in group {group} (see `grove resource list {group}`)", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    UnknownResource {
        /// The group, as given.
        group: String,
        /// The resource name.
        name: String,
        /// The version asked for, if any.
        version: Option<u64>,
    },
    /// The resource was deleted.
    #[error("resource {name} in group {group} was deleted by {by}")]
    ResourceDeleted {
        /// The group, as given.
        group: String,
        /// The resource name.
        name: String,
        /// Who deleted it.
        by: String,
    },
    /// A resource version failed its integrity checks: the blob was altered,
    /// truncated, or is not the one its manifest describes. Nothing of it was
    /// kept.
    #[error("resource {name} version {version} is corrupt: {reason}")]
    ResourceCorrupt {
        /// The resource name.
        name: String,
        /// The version.
        version: u64,
        /// What check failed.
        reason: String,
    },
    /// Reading the content to store, or writing the content read, failed.
    #[error("resource {name}: {reason}")]
    ResourceIo {
        /// The resource name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// Bad input from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The DS error code, if this is a DS error.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Error::Server { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }

    /// A stable machine-readable code for this error: what the CLI's
    /// `--json` errors and the mobile bindings carry (`key_changed`,
    /// `network`, `server`, ...; `error` for the rest).
    pub fn code(&self) -> &'static str {
        match self {
            Error::KeyChanged { .. } => "key_changed",
            Error::KeyTransparency { .. } => "key_transparency",
            Error::AuditFailed { .. } => "audit_failed",
            Error::AuditProgress { .. } => "audit_progress",
            Error::NotInitialized(_) => "not_initialized",
            Error::AlreadyInitialized { .. } => "already_initialized",
            Error::Network(_) => "network",
            Error::Server { .. } => "server",
            Error::UnknownGroup(_) => "unknown_group",
            Error::AmbiguousGroup { .. } => "ambiguous_group",
            Error::GroupLeft(_) => "group_left",
            Error::ServerRollback { .. } => "server_rollback",
            Error::ForkDetected { .. } => "fork_detected",
            Error::ResyncNeeded { .. } => "resync_needed",
            Error::GroupReplaced { .. } => "group_replaced",
            Error::NotInGroup { .. } => "not_in_group",
            Error::Tls(_) => "tls",
            Error::BadKeyPackage { .. } => "bad_key_package",
            Error::TooManyRetries { .. } => "too_many_retries",
            Error::UnknownResource { .. } => "unknown_resource",
            Error::ResourceDeleted { .. } => "resource_deleted",
            Error::ResourceCorrupt { .. } => "resource_corrupt",
            Error::ResourceIo { .. } => "resource_io",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::VerificationRequired { .. } => "verification_required",
            Error::ContactCodeMismatch { .. } => "contact_code_mismatch",
            Error::DeviceListRejected { .. } => "device_list_rejected",
            Error::LinkPending { .. } => "link_pending",
            Error::UnlistedDevice { .. } => "unlisted_device",
            Error::LinkRefused(_) => "link_refused",
            Error::UnknownContact(_) => "unknown_contact",
            Error::Storage(crate::storage::StorageError::StoreKeyRequired) => "store_key_required",
            Error::Storage(crate::storage::StorageError::WrongStoreKey) => "wrong_store_key",
            Error::Storage(crate::storage::StorageError::BadStoreKey { .. }) => "invalid_argument",
            Error::Storage(crate::storage::StorageError::Locked { .. }) => "store_locked",
            Error::Storage(_) => "storage",
            Error::Protocol(_) => "protocol",
            Error::Mls { .. } => "mls",
            Error::InjectedFault(_) => "injected_fault",
        }
    }

    /// Whether the same call may succeed if simply tried again later: a
    /// network failure (the outcome of a write is then unknown, and the next
    /// sync resolves it), a DS that is overloaded, rate-limiting or failing
    /// (429, 5xx), a commit that lost too many races, or a home another
    /// process has open.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network(_)
            | Error::TooManyRetries { .. }
            | Error::Storage(crate::storage::StorageError::Locked { .. }) => true,
            Error::Server { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn mls(op: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> Error {
        move |e| Error::mls_because(op, e.to_string())
    }

    /// An [`Error::Mls`] with the remedy that fits `op`.
    pub(crate) fn mls_because(op: &'static str, cause: String) -> Error {
        Error::Mls { op, cause, remedy: mls_remedy(op) }
    }
}

/// What to do when the MLS operation `op` fails. Processing what others sent
/// fails on a damaged message or a group state that no longer matches (a
/// fork); our own operations fail on a damaged home or a bug.
fn mls_remedy(op: &str) -> &'static str {
    const INCOMING: [&str; 6] = ["process", "decode", "decrypt", "join", "Welcome", "merge a commit"];
    if INCOMING.iter().any(|w| op.contains(w)) {
        "the message is damaged or does not fit this group's state; if it repeats, ask a member to remove and re-add you"
    } else {
        "retry; if it repeats, the home directory may be damaged (restore it from a backup) or this is a bug to report with this message"
    }
}

/// Maps any openmls error into [`Error::Mls`].
pub(crate) trait MlsResultExt<T> {
    /// Tags the error with the operation name.
    fn mls(self, op: &'static str) -> Result<T, Error>;
}

impl<T, E: std::fmt::Display> MlsResultExt<T> for Result<T, E> {
    fn mls(self, op: &'static str) -> Result<T, Error> {
        self.map_err(|e| Error::mls(op)(&e))
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
