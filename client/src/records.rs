//! The app's own records in the local store (next to openmls's state) and the
//! plaintext envelope carried inside MLS application messages.

use serde::{Deserialize, Serialize};

use crate::tls::TrustMode;

/// App-record namespaces.
pub(crate) mod ns {
    /// `identity` → [`super::IdentityRecord`]; `last_resort` → KeyPackageRef bytes.
    pub(crate) const META: &str = "meta";
    /// group id → [`super::GroupRecord`].
    pub(crate) const GROUPS: &str = "groups";
    /// `len(gid) (be u32) gid local_id (be u64)` → [`super::StoredMessage`].
    pub(crate) const MESSAGES: &str = "messages";
    /// group id → [`super::PendingCommit`].
    pub(crate) const PENDING: &str = "pending";
    /// SHA-256 of an MLSMessage we sent → [`super::OutboxEntry`].
    pub(crate) const OUTBOX: &str = "outbox";
    /// user → [`super::Contact`].
    pub(crate) const CONTACTS: &str = "contacts";
}

/// Who this client is and where its DS is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdentityRecord {
    pub(crate) user: String,
    pub(crate) server: String,
    pub(crate) ciphersuite: u16,
    pub(crate) trust: TrustMode,
    pub(crate) signature_key: Vec<u8>,
    pub(crate) key_packages: u64,
}

/// Membership state of a group, as this client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// A current member.
    Active,
    /// Asked to leave; waiting for another member to commit the removal.
    Leaving,
    /// Removed or left. The history stays readable; nothing new arrives.
    Left,
}

impl GroupState {
    /// Stable lowercase name (`active`, `leaving`, `left`).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Active => "active",
            GroupState::Leaving => "leaving",
            GroupState::Left => "left",
        }
    }
}

/// Per-group bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    /// The group's name, learned from encrypted group data (None until known).
    pub(crate) name: Option<String>,
    /// Last log `seq` processed.
    pub(crate) cursor: u64,
    pub(crate) state: GroupState,
    /// The epoch this client joined at (entries of earlier epochs are unreadable).
    pub(crate) joined_epoch: u64,
    /// Next local message id.
    pub(crate) next_local: u64,
    /// This client added members in a commit it merged during a sync (crash
    /// recovery) and still owes the group its name.
    #[serde(default)]
    pub(crate) announce_name: bool,
}

/// A commit this client posted but has not merged yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingCommit {
    /// The MLSMessage bytes as posted.
    pub(crate) commit: Vec<u8>,
    /// The epoch it was created in.
    pub(crate) epoch: u64,
}

/// An MLSMessage this client sent (so its echo in the log is recognised).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboxEntry {
    pub(crate) group: Vec<u8>,
    /// Local id of the stored message, if it was a text message.
    pub(crate) local: Option<u64>,
    /// The MLSMessage bytes, kept to post them again if the first post's
    /// outcome was unknown (crash, network error) and the log lacks them.
    #[serde(default)]
    pub(crate) message: Vec<u8>,
}

/// A pinned contact key (trust on first use).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Contact {
    /// The pinned signature key.
    pub(crate) key: Vec<u8>,
    /// Confirmed out of band (safety number compared).
    pub(crate) verified: bool,
    /// A different key seen later, waiting for an explicit decision.
    pub(crate) pending: Option<Vec<u8>>,
}

/// One message of a group's history, as stored locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Log sequence number (None while an own message is not confirmed yet).
    pub seq: Option<u64>,
    /// Epoch it was sent in.
    pub epoch: u64,
    /// Sender's user name.
    pub sender: String,
    /// The text.
    pub text: String,
    /// Whether this client sent it.
    pub own: bool,
}

/// The plaintext inside an MLS application message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Envelope {
    /// A text message.
    Text {
        /// The text.
        text: String,
    },
    /// The group's name (sent by the creator and after every add, so that new
    /// members learn it; the DS never sees it).
    GroupName {
        /// The name.
        name: String,
    },
}

/// Key of a group's records in ordered namespaces: `len(gid) gid`.
pub(crate) fn group_prefix(gid: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(gid.len() + 4);
    // Group ids are 1 to 256 bytes (docs/api.md); a u32 length cannot overflow.
    k.extend_from_slice(&u32::try_from(gid.len()).unwrap_or(u32::MAX).to_be_bytes());
    k.extend_from_slice(gid);
    k
}

/// Key of one message record.
pub(crate) fn message_key(gid: &[u8], local: u64) -> Vec<u8> {
    let mut k = group_prefix(gid);
    k.extend_from_slice(&local.to_be_bytes());
    k
}
