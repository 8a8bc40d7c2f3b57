//! The records a binding call takes or returns, converted from
//! `grove_client`'s types. Ids are base64url strings, times Unix seconds.

use grove_client as gc;

/// How to reach the DS and who this client is, for [`create_client`](crate::create_client)
/// and [`request_link`](crate::request_link).
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientOptions {
    /// DS base URL (`https://...`; `http://` only to loopback, for tests).
    pub server: String,
    /// User name: the app's user id, as the app's login token names it.
    pub user: String,
    /// Pin the DS certificate: the SHA-256 of its DER as hex (the 64 digits
    /// `grove-ds` prints). `None` (and no `ca_pem`): the system's roots.
    #[uniffi(default = None)]
    pub pinned_cert_sha256: Option<String>,
    /// Trust only these CA certificates (PEM text) instead of the system's.
    #[uniffi(default = None)]
    pub ca_pem: Option<String>,
    /// The app's login for this user (a JWT from the app's auth server),
    /// when the DS binds users to the app's login. Used once, never stored.
    #[uniffi(default = None)]
    pub login_token: Option<String>,
    /// Encrypt the home at rest under this 32-byte key, which the app keeps
    /// in the iOS Keychain or the Android Keystore. Every later
    /// [`open_client`](crate::open_client) needs the same key.
    #[uniffi(default = None)]
    pub store_key: Option<Vec<u8>>,
}

/// The history policy: `share` (new members get the current resources'
/// keys) or `none`.
pub(crate) fn history_policy(share_history: bool) -> gc::HistoryPolicy {
    if share_history {
        gc::HistoryPolicy::Share
    } else {
        gc::HistoryPolicy::None
    }
}

/// A store key from the app's bytes.
pub(crate) fn store_key(bytes: Option<&[u8]>) -> crate::Result<Option<gc::StoreKey>> {
    bytes
        .map(|b| {
            gc::StoreKey::from_bytes(b).map_err(|_| {
                crate::GroveError::invalid(format!(
                    "a store key has 32 bytes, got {}; generate one with new_store_key",
                    b.len()
                ))
            })
        })
        .transpose()
}

impl ClientOptions {
    /// The library's configuration.
    pub(crate) fn config(&self) -> crate::Result<gc::ClientConfig> {
        let mut config = gc::ClientConfig::new(self.server.clone(), self.user.clone());
        config.login_token = self.login_token.clone();
        config.store_key = store_key(self.store_key.as_deref())?;
        config.trust = match (&self.pinned_cert_sha256, &self.ca_pem) {
            (Some(_), Some(_)) => {
                return Err(crate::GroveError::invalid("give pinned_cert_sha256 or ca_pem, not both"));
            }
            (Some(fp), None) => gc::TrustMode::pinned_hex(fp)?,
            (None, Some(pem)) => gc::TrustMode::CaPem(pem.clone()),
            (None, None) => gc::TrustMode::SystemRoots,
        };
        Ok(config)
    }
}

/// Who this client is.
#[derive(Debug, Clone, uniffi::Record)]
pub struct WhoAmI {
    /// User name.
    pub user: String,
    /// DS URL.
    pub server: String,
    /// Hex SHA-256 of the identity key: what contacts pin.
    pub fingerprint: String,
    /// MLS ciphersuite code point.
    pub ciphersuite: u16,
}

impl From<gc::WhoAmI> for WhoAmI {
    fn from(w: gc::WhoAmI) -> Self {
        Self { user: w.user, server: w.server, fingerprint: w.fingerprint, ciphersuite: w.ciphersuite }
    }
}

/// A group this client is or was in.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Its name, once learned from the encrypted group data.
    pub name: Option<String>,
    /// Current epoch.
    pub epoch: u64,
    /// `active`, `leaving` or `left`.
    pub state: String,
    /// Number of members (leaves).
    pub members: u64,
    /// The group that replaced this one, if any.
    pub successor: Option<String>,
}

impl From<gc::GroupSummary> for Group {
    fn from(g: gc::GroupSummary) -> Self {
        Self {
            id: g.id,
            name: g.name,
            epoch: g.epoch,
            state: g.state.as_str().to_owned(),
            members: g.members as u64,
            successor: g.successor,
        }
    }
}

/// A member of a group (a user, with all of its devices).
#[derive(Debug, Clone, uniffi::Record)]
pub struct Member {
    /// User name.
    pub user: String,
    /// Hex SHA-256 of the user's identity key.
    pub fingerprint: String,
    /// `own`, `pinned`, `verified` or `changed`.
    pub key: String,
    /// How many devices (leaves) the user has in the group.
    pub devices: u32,
}

impl From<gc::MemberInfo> for Member {
    fn from(m: gc::MemberInfo) -> Self {
        let key = match m.key {
            gc::KeyStatus::Own => "own",
            gc::KeyStatus::Pinned => "pinned",
            gc::KeyStatus::Verified => "verified",
            gc::KeyStatus::Changed => "changed",
        };
        Self { user: m.user, fingerprint: m.fingerprint, key: key.to_owned(), devices: m.devices }
    }
}

/// A message of a group, as stored on this device.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Message {
    /// Log sequence number (`None` while an own message is unconfirmed).
    pub seq: Option<u64>,
    /// Epoch it was sent in.
    pub epoch: u64,
    /// The sender's user name.
    pub sender: String,
    /// The text.
    pub text: String,
    /// Whether this user sent it (from any of its devices).
    pub own: bool,
}

impl From<gc::StoredMessage> for Message {
    fn from(m: gc::StoredMessage) -> Self {
        Self { seq: m.seq, epoch: m.epoch, sender: m.sender, text: m.text, own: m.own }
    }
}

/// What adding or removing members did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CommitOutcome {
    /// Group id.
    pub group: String,
    /// Epoch after the operation.
    pub epoch: u64,
    /// Whether a commit was made (false: nothing was left to do).
    pub committed: bool,
    /// Attempts it took (more than 1 after losing races to other members).
    pub attempts: u32,
}

impl From<gc::CommitOutcome> for CommitOutcome {
    fn from(c: gc::CommitOutcome) -> Self {
        Self { group: c.group, epoch: c.epoch, committed: c.committed, attempts: c.attempts }
    }
}

/// A contact's pinned key.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Contact {
    /// User name.
    pub user: String,
    /// Fingerprint of the pinned identity key.
    pub fingerprint: String,
    /// Verified out of band (safety number or contact code).
    pub verified: bool,
    /// A different key seen since, waiting for the user's decision.
    pub pending_fingerprint: Option<String>,
}

impl From<gc::ContactInfo> for Contact {
    fn from(c: gc::ContactInfo) -> Self {
        Self {
            user: c.user,
            fingerprint: c.fingerprint,
            verified: c.verified,
            pending_fingerprint: c.pending_fingerprint,
        }
    }
}

/// The safety number between this user and another.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SafetyNumber {
    /// The other user.
    pub user: String,
    /// 60 digits in 12 groups, identical on both sides.
    pub number: String,
    /// Whether the other user is now marked verified.
    pub verified: bool,
}

impl From<gc::SafetyNumber> for SafetyNumber {
    fn from(s: gc::SafetyNumber) -> Self {
        Self { user: s.user, number: s.number, verified: s.verified }
    }
}

/// One of this user's devices, from the verified device list.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Whether it is the device this client runs on.
    pub this_device: bool,
    /// When it was added.
    pub added_at: u64,
    /// Its label (`phone`, `laptop`, ...).
    pub label: String,
}

impl From<gc::DeviceInfo> for Device {
    fn from(d: gc::DeviceInfo) -> Self {
        Self { id: d.id, this_device: d.this_device, added_at: d.added_at, label: d.label }
    }
}

/// What a new device shows while it waits to be linked.
#[derive(Debug, Clone, uniffi::Record)]
pub struct LinkCodes {
    /// The one-line code to enter (or scan) on a device already linked.
    pub link_code: String,
    /// Six digits both devices show; the user compares them.
    pub compare: String,
}

impl From<gc::LinkCodes> for LinkCodes {
    fn from(l: gc::LinkCodes) -> Self {
        Self { link_code: l.link_code, compare: l.compare }
    }
}

/// What approving a link did (or would do, before confirmation).
#[derive(Debug, Clone, uniffi::Record)]
pub struct LinkApproval {
    /// The new device's id.
    pub device: String,
    /// Its label.
    pub label: String,
    /// The six digits to compare with the new device's screen.
    pub compare: String,
    /// Whether it was approved (false: shown for comparison only).
    pub approved: bool,
}

impl From<gc::LinkApprovalInfo> for LinkApproval {
    fn from(l: gc::LinkApprovalInfo) -> Self {
        Self { device: l.device, label: l.label, compare: l.compare, approved: l.approved }
    }
}

/// What revoking a device did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RevokeOutcome {
    /// The revoked device.
    pub device: String,
    /// The device list version published without it.
    pub list_version: Option<u64>,
    /// Groups it was removed from.
    pub removed_from: Vec<String>,
    /// Groups where removing it failed (`"<id>: <error>"`); retry with sync.
    pub failed: Vec<String>,
}

impl From<gc::RevokeOutcome> for RevokeOutcome {
    fn from(r: gc::RevokeOutcome) -> Self {
        Self { device: r.device, list_version: r.list_version, removed_from: r.removed_from, failed: r.failed }
    }
}

/// A version of a resource.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Resource {
    /// Resource id.
    pub id: String,
    /// Its name in the group.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Plaintext size in bytes.
    pub size: u64,
    /// BLAKE3 of the content (hex).
    pub content_hash: String,
    /// Who wrote this version.
    pub author: String,
    /// When (the author's clock).
    pub time: u64,
    /// Log sequence number of the message that announced it.
    pub seq: u64,
}

impl From<gc::ResourceInfo> for Resource {
    fn from(r: gc::ResourceInfo) -> Self {
        Self {
            id: r.id,
            name: r.name,
            version: r.version,
            size: r.size,
            content_hash: r.content_hash,
            author: r.author,
            time: r.time,
            seq: r.seq,
        }
    }
}

/// One event of a resource's history.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ResourceEvent {
    /// Log sequence number of the group message.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// The member who sent it.
    pub by: String,
    /// When (the sender's clock).
    pub time: u64,
    /// `version`, `deleted`, `policy` or `shared`.
    pub kind: String,
    /// The version (for `version`).
    pub version: Option<u64>,
    /// Content size (for `version`).
    pub size: Option<u64>,
}

impl From<gc::ResourceHistoryEntry> for ResourceEvent {
    fn from(e: gc::ResourceHistoryEntry) -> Self {
        Self {
            seq: e.seq,
            epoch: e.epoch,
            by: e.by,
            time: e.time,
            kind: e.kind.to_owned(),
            version: e.version,
            size: e.size,
        }
    }
}
