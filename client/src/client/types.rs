//! The public value types of [`Client`](super::Client): its settings, what
//! its queries return, and what its operations report.

use serde::{Deserialize, Serialize};

use super::DEFAULT_KEY_PACKAGES;
use crate::records::GroupState;
use crate::storage::StoreKey;
use crate::tls::TrustMode;

/// Settings for [`Client::create`](super::Client::create).
#[derive(Clone)]
pub struct ClientConfig {
    /// DS base URL (`https://...`, or `http://` to loopback only).
    pub server: String,
    /// User name (also the MLS BasicCredential identity).
    pub user: String,
    /// How the DS's TLS certificate is verified.
    pub trust: TrustMode,
    /// Ciphersuite code point: 0x0001 (default) or 0x0003.
    pub ciphersuite: u16,
    /// One-time KeyPackages to keep on the DS.
    pub key_packages: u64,
    /// The app's login for this user (a JWT from the app's auth server),
    /// sent with the registration when the DS binds users to the app's login.
    /// Used once and never stored.
    pub login_token: Option<String>,
    /// Encrypts the home at rest under this key (the app keeps it in the
    /// iOS Keychain or the Android Keystore; see `storage/seal.rs`). Every
    /// later [`Client::open_with_key`](super::Client::open_with_key) needs it.
    pub store_key: Option<StoreKey>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("trust", &self.trust)
            .field("ciphersuite", &self.ciphersuite)
            .field("key_packages", &self.key_packages)
            .field("login_token", &self.login_token.as_ref().map(|_| "<redacted>"))
            .field("store_key", &self.store_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ClientConfig {
    /// Defaults: system roots, ciphersuite 0x0001, [`DEFAULT_KEY_PACKAGES`].
    pub fn new(server: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            user: user.into(),
            trust: TrustMode::SystemRoots,
            ciphersuite: 1,
            key_packages: DEFAULT_KEY_PACKAGES,
            login_token: None,
            store_key: None,
        }
    }
}

/// Faults a test can inject to simulate a crash at a precise point (cargo
/// feature `fault-injection`, which only this crate's tests turn on: without
/// it nothing can arm a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub enum Fault {
    /// Return right after the DS accepted a commit (201), before merging it:
    /// what a crash at that point leaves on disk.
    StopAfterCommitAccepted,
    /// Return right after an outgoing message was encrypted and stored, before
    /// it is posted: what a crash at that point leaves on disk.
    StopBeforeSend,
    /// Return right after the DS accepted an outgoing message (201), before
    /// the client recorded it: what a lost response or a crash leaves on disk.
    StopAfterSendAccepted,
}

/// `whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User name.
    pub user: String,
    /// DS URL.
    pub server: String,
    /// Hex SHA-256 of the own identity key (of the one signature key, for a
    /// home made before identity keys): what contacts pin.
    pub fingerprint: String,
    /// Ciphersuite code point.
    pub ciphersuite: u16,
}

/// A group in [`Client::groups`](super::Client::groups).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Group id (base64url, no padding).
    pub id: String,
    /// Local name, once learned from the encrypted group data.
    pub name: Option<String>,
    /// Current epoch.
    pub epoch: u64,
    /// `active`, `leaving` or `left`.
    pub state: GroupState,
    /// Number of members.
    pub members: usize,
    /// Last log sequence number processed.
    pub cursor: u64,
    /// The group that replaced this one, if any (its id).
    #[serde(default)]
    pub successor: Option<String>,
    /// Who announced that successor (`None`: this client created it).
    #[serde(default)]
    pub successor_by: Option<String>,
}

/// Pinning status of a user's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// This client itself.
    Own,
    /// Pinned on first use, not verified out of band.
    Pinned,
    /// Pinned and verified (safety number confirmed).
    Verified,
    /// The key differs from the pinned one.
    Changed,
}

/// A member in [`Client::members`](super::Client::members).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberInfo {
    /// User name.
    pub user: String,
    /// Leaf index.
    pub leaf_index: u32,
    /// Hex SHA-256 of the member's identity key (from its verified device
    /// certificate; a single-key user's leaf key).
    pub fingerprint: String,
    /// Pinning status.
    pub key: KeyStatus,
    /// How many leaves (devices) the user has in the group.
    pub devices: u32,
}

/// A contact's pinned key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactInfo {
    /// User name.
    pub user: String,
    /// Fingerprint of the pinned key.
    pub fingerprint: String,
    /// Verified out of band.
    pub verified: bool,
    /// Fingerprint of a different key seen later, if any.
    pub pending_fingerprint: Option<String>,
}

/// Safety number between this client and another user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SafetyNumber {
    /// The other user.
    pub user: String,
    /// 60 digits in 12 groups, identical on both sides.
    pub number: String,
    /// Whether the user is now marked verified.
    pub verified: bool,
}

/// What a [`Client::sync`](super::Client::sync) did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// Groups joined from Welcomes (ids).
    pub joined: Vec<String>,
    /// New messages stored.
    pub messages: usize,
    /// Groups this client was removed from (ids).
    pub left: Vec<String>,
    /// Commits this client made to apply other members' pending proposals
    /// (such as a leave request).
    pub proposals_committed: usize,
    /// Log entries that could not be decrypted (e.g. sent before this client
    /// joined an epoch it has keys for) and were skipped.
    pub undecryptable: usize,
    /// Messages that decrypted but are not a Grove envelope this version
    /// knows, or are a malformed resource envelope; skipped.
    pub unknown_format: usize,
    /// Welcomes that could not be processed (e.g. for a KeyPackage this store
    /// no longer has) and were dropped.
    pub failed_welcomes: usize,
    /// Unacknowledged server rollbacks (`"<id>: <what was seen>"`): the DS
    /// shows less than this client saw. See `Client::acknowledge_rollback`.
    pub rollbacks: Vec<String>,
    /// Groups whose log could not be processed (for example a commit other
    /// members refuse too, such as one with a bad confirmation tag): `"<id>:
    /// <error>"`. Such a group stays at its cursor; the other groups went on.
    pub errors: Vec<String>,
    /// Groups in which this client updated its own leaf because the
    /// self-update policy said so (ids; see `Client::update_policy`).
    #[serde(default)]
    pub self_updated: Vec<String>,
    /// Unacknowledged forks (`"<id>: epoch N (seen at seq S)"`): members were
    /// shown different commits for one epoch. See `Client::fork`.
    #[serde(default)]
    pub forks: Vec<String>,
    /// Groups this client rejoined by an external commit because it could
    /// not follow their log (see [`ResyncInfo`](super::ResyncInfo)).
    #[serde(default)]
    pub resynced: Vec<super::ResyncInfo>,
    /// Commits this client could not process on a check only members can
    /// make (a bad confirmation or membership tag, a bad path), reported to
    /// the DS: `"<id>: seq S by <committer>: <reason>"`. The committer may be
    /// malicious or broken; consider removing them.
    #[serde(default)]
    pub bad_commits: Vec<String>,
    /// Groups replaced by a successor a member created (`"<old id>: replaced
    /// by <new id> (created by <user>)"`); see `Client::create_successor`.
    #[serde(default)]
    pub successors: Vec<String>,
    /// Groups this client removed an old identity's devices from (a user
    /// whose identity reset it accepted): base64url ids.
    #[serde(default)]
    pub old_devices_removed: Vec<String>,
    /// Versions of this user's own entry in the key directory that none of
    /// its devices made (`"version V (epoch E): ..."`): someone, or the DS,
    /// published a key or device list in this user's name. See
    /// `Client::key_transparency_alerts`.
    #[serde(default)]
    pub key_transparency_alerts: Vec<String>,
    /// Split views of the key directory (`"epoch E: <member> was shown root
    /// R ..."`): a member's messages carry another root for an epoch this
    /// client verified: the DS shows members different directories.
    #[serde(default)]
    pub split_views: Vec<String>,
}

/// What an [`add_members`](super::Client::add_members)/[`remove_members`](super::Client::remove_members)
/// style operation did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitOutcome {
    /// Group id.
    pub group: String,
    /// Epoch after the operation.
    pub epoch: u64,
    /// Whether a commit was made (false if nothing was left to do).
    pub committed: bool,
    /// How many attempts it took (more than 1 after losing commit races).
    pub attempts: u32,
}
