//! The app's own records in the local store (next to openmls's state; kept
//! by [`crate::repo`], which knows their keys) and the plaintext envelope
//! carried inside MLS application messages.

use serde::{Deserialize, Serialize};

use crate::tls::TrustMode;

/// Who this client is and where its DS is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdentityRecord {
    pub(crate) user: String,
    pub(crate) server: String,
    pub(crate) ciphersuite: u16,
    pub(crate) trust: TrustMode,
    /// This device's MLS signature key (public).
    pub(crate) signature_key: Vec<u8>,
    pub(crate) key_packages: u64,
    /// The user's identity key (Ed25519, public; `docs/identity.md`).
    /// Empty for a home made before identity keys, whose one signature key
    /// is its identity.
    #[serde(default)]
    pub(crate) identity_key: Vec<u8>,
    /// The identity key's secret (32 bytes); empty when `identity_key` is.
    #[serde(default)]
    pub(crate) identity_secret: IdentitySecret,
    /// The user's latest device list this device has published or verified
    /// (TLS-encoded `DeviceList`); empty when `identity_key` is.
    #[serde(default)]
    pub(crate) device_list: Vec<u8>,
    /// This device's credential identity (`grove-device-v1:` and its
    /// certificate); empty when `identity_key` is.
    #[serde(default)]
    pub(crate) device_credential: Vec<u8>,
    /// A home made by `grove init --link` that waits for its approval
    /// (`client/link.rs`); `None` once linked, and for every other home.
    #[serde(default)]
    pub(crate) link: Option<PendingLink>,
    /// A home upgraded from a single key (`client/upgrade.rs`): that key
    /// (now the identity key), kept while its leaves in groups are being
    /// replaced by this device's; empty once done, and for other homes.
    #[serde(default)]
    pub(crate) legacy_key: Vec<u8>,
}

/// A new device's link request, waiting for its approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingLink {
    /// The link code shown to the user.
    pub(crate) code: String,
    /// The request's id at the DS.
    pub(crate) id: String,
    /// The secret the code carries (16 bytes).
    pub(crate) secret: IdentitySecret,
    /// The private HPKE key the approval is sealed to.
    pub(crate) hpke_secret: IdentitySecret,
    /// When the request expires, unix seconds.
    pub(crate) expires_at: u64,
}

impl IdentityRecord {
    /// The record of a new device home for `config`, signing with
    /// `device_key`; its identity fields are filled in by the caller.
    pub(crate) fn for_device(config: &crate::ClientConfig, device_key: &[u8]) -> Self {
        IdentityRecord {
            user: config.user.clone(),
            server: config.server.trim_end_matches('/').to_owned(),
            ciphersuite: config.ciphersuite,
            trust: config.trust.clone(),
            signature_key: device_key.to_vec(),
            key_packages: config.key_packages,
            identity_key: Vec::new(),
            identity_secret: IdentitySecret::default(),
            device_list: Vec::new(),
            device_credential: Vec::new(),
            link: None,
            legacy_key: Vec::new(),
        }
    }
}

/// The identity key's secret: zeroed when dropped, never printed.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct IdentitySecret(pub(crate) Vec<u8>);

impl Drop for IdentitySecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "IdentitySecret(none)" } else { "IdentitySecret(<redacted>)" })
    }
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
    /// Whether new members get the keys of the current resource versions.
    #[serde(default)]
    pub(crate) history: HistoryPolicy,
    /// A server rollback seen in this group and not yet acknowledged.
    #[serde(default)]
    pub(crate) rollback: Option<Rollback>,
    /// When this client updates its own leaf (post-compromise security).
    #[serde(default)]
    pub(crate) update_policy: UpdatePolicy,
    /// When the own leaf was last fresh (created, joined or updated), Unix
    /// seconds; 0 for groups of releases before the policy (due at once).
    #[serde(default)]
    pub(crate) leaf_since: u64,
    /// Own application messages sent since then.
    #[serde(default)]
    pub(crate) sent_since_update: u64,
    /// A fork seen in this group and not yet acknowledged.
    #[serde(default)]
    pub(crate) fork: Option<ForkRecord>,
    /// The epoch of the last fork the user acknowledged: not reported again.
    #[serde(default)]
    pub(crate) fork_acknowledged_epoch: Option<u64>,
    /// This client cannot follow the group's log any more and must rejoin it
    /// by an external commit that replaces its own leaf (see `client/resync.rs`).
    #[serde(default)]
    pub(crate) resync: Option<ResyncRecord>,
    /// The group that replaced this one (see `client/successor.rs`), by id.
    #[serde(default)]
    pub(crate) successor: Option<String>,
    /// Who announced that successor; `None` when this client created it
    /// (only then is the old group closed for sending and its name moved).
    #[serde(default)]
    pub(crate) successor_by: Option<String>,
}

/// Why and from where a group must be resynced, and the external commit
/// posted for it whose outcome is not known yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResyncRecord {
    /// What made the log unprocessable, for the user.
    pub(crate) reason: String,
    /// The cursor before the first log entry this client could not process.
    pub(crate) from_cursor: u64,
    /// The external commit posted (with the epoch it was made in), if the DS's
    /// answer was lost; the next sync looks for it in the log.
    pub(crate) posted: Option<PendingCommit>,
}

/// A fork one client detected in one group (see `client/fork.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForkRecord {
    /// The epoch whose authenticators differ.
    pub(crate) epoch: u64,
    /// The log entry that showed it.
    pub(crate) seq: u64,
    /// The sender of that entry, if it could be decrypted.
    pub(crate) members: Vec<String>,
}

impl GroupRecord {
    /// A record for a group this client has just created or joined.
    pub(crate) fn fresh(name: Option<String>, joined_epoch: u64, history: HistoryPolicy, now: u64) -> Self {
        GroupRecord {
            name,
            cursor: 0,
            state: GroupState::Active,
            joined_epoch,
            next_local: 0,
            announce_name: false,
            history,
            rollback: None,
            update_policy: UpdatePolicy::default(),
            leaf_since: now,
            sent_since_update: 0,
            fork: None,
            fork_acknowledged_epoch: None,
            resync: None,
            successor: None,
            successor_by: None,
        }
    }

    /// Whether the own leaf is due for an update at `now` under the policy.
    pub(crate) fn update_due(&self, now: u64) -> bool {
        let p = self.update_policy;
        (p.max_age_secs > 0 && now.saturating_sub(self.leaf_since) >= p.max_age_secs)
            || (p.max_messages > 0 && self.sent_since_update >= p.max_messages)
    }
}

/// When a member updates its own leaf, for post-compromise security: after
/// `max_age_secs` or after `max_messages` own messages, whichever comes
/// first. The update rides on the member's next send or sync (there is no
/// background timer). 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePolicy {
    /// Longest age of the own leaf, seconds (default 7 days).
    pub max_age_secs: u64,
    /// Most own messages on one leaf key (default 1,000).
    pub max_messages: u64,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy { max_age_secs: 7 * 24 * 3600, max_messages: 1_000 }
    }
}

/// A server rollback a client detected in one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Rollback {
    /// What was seen, in words.
    pub(crate) detail: String,
    /// The DS's last log seq when it was seen: the cursor restarts there once
    /// the user acknowledges, so that what the DS logs from then on is read.
    pub(crate) server_last_seq: Option<u64>,
}

/// What a member added to a group can read of the resources written before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryPolicy {
    /// New members read only resource versions written after they joined.
    #[default]
    None,
    /// When members are added, the adding client sends them, in the new epoch,
    /// a key bundle with the manifests of the current version of every resource.
    Share,
}

impl HistoryPolicy {
    /// Stable lowercase name (`none`, `share`).
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryPolicy::None => "none",
            HistoryPolicy::Share => "share",
        }
    }
}

impl std::str::FromStr for HistoryPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(HistoryPolicy::None),
            "share" => Ok(HistoryPolicy::Share),
            other => Err(format!("unknown history policy {other:?} (expected none or share)")),
        }
    }
}

/// A resource version's manifest: everything needed to find, decrypt and
/// check it. It travels only inside MLS application messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Random resource id, 32 lowercase hex characters.
    pub(crate) resource_id: String,
    /// The resource's name (private to members).
    pub(crate) name: String,
    /// Version number, from 1.
    pub(crate) version: u64,
    /// The DS blob id of the ciphertext.
    pub(crate) blob_id: String,
    /// The version's AES-256-GCM key, 64 hex characters.
    pub(crate) key: String,
    /// BLAKE3 hash of the plaintext (without padding), 64 hex characters.
    pub(crate) content_hash: String,
    /// Plaintext size in bytes (before padding).
    pub(crate) size: u64,
    /// Blob size in bytes (what the DS stores).
    pub(crate) blob_size: u64,
    /// The user who wrote this version (checked against the MLS sender).
    pub(crate) author: String,
    /// When it was written, Unix seconds (the author's clock).
    pub(crate) time: u64,
}

/// A resource this client knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResourceRecord {
    /// Current name.
    pub(crate) name: String,
    /// Log sequence number of its first version this client learned.
    pub(crate) first_seq: u64,
    /// Set when the resource was deleted: (who, when).
    pub(crate) deleted: Option<(String, u64)>,
}

/// A version whose key this client holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    pub(crate) manifest: Manifest,
    /// Log sequence number of the message that carried it.
    pub(crate) seq: u64,
    /// Epoch of that message.
    pub(crate) epoch: u64,
    /// Received in a key bundle from this user (history sharing), not from the author.
    pub(crate) shared_by: Option<String>,
}

/// One event of a group's resource history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResourceEventRecord {
    pub(crate) seq: u64,
    pub(crate) epoch: u64,
    /// The member who sent the message.
    pub(crate) by: String,
    pub(crate) time: u64,
    pub(crate) event: ResourceEvent,
}

/// What happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ResourceEvent {
    Version { resource_id: String, name: String, version: u64, size: u64 },
    Deleted { resource_id: String, name: String },
    Policy { policy: HistoryPolicy },
    Shared { recipients: Vec<String>, resources: Vec<(String, String, u64)> },
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
    /// The plaintext envelope, for resource messages: applied to the local
    /// records once the DS accepted the message (by its 201 or its echo).
    #[serde(default)]
    pub(crate) envelope: Option<Vec<u8>>,
    /// The MLSMessage bytes, kept to post them again if the first post's
    /// outcome was unknown (crash, network error) and the log lacks them.
    #[serde(default)]
    pub(crate) message: Vec<u8>,
}

/// What this client knows of the DS's key directory (`client/kt.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct KtState {
    /// The directory's VRF public key, pinned on first use.
    pub(crate) vrf_public_key: Vec<u8>,
    /// The key that signs the directory's heads, pinned on first use.
    pub(crate) head_key: Vec<u8>,
    /// The latest epoch verified, and its root.
    pub(crate) epoch: u64,
    pub(crate) root: Vec<u8>,
    /// Recently verified (epoch, root) pairs, oldest first.
    pub(crate) roots: Vec<(u64, Vec<u8>)>,
    /// The epoch of the last check of this user's own key history.
    pub(crate) self_checked: u64,
    /// Every alert of the own key history seen.
    pub(crate) alerts: Vec<String>,
    /// Alerts not reported by a sync yet.
    pub(crate) new_alerts: Vec<String>,
    /// Every split view seen.
    pub(crate) split_views: Vec<String>,
    /// Split views not reported by a sync yet.
    pub(crate) new_split_views: Vec<String>,
    /// Users pinned from a group's tree (a Welcome, a commit) whose key the
    /// key directory has not vouched for to this client yet: checked at the
    /// end of the sync that pinned them.
    #[serde(default)]
    pub(crate) unchecked_pins: Vec<String>,
}

/// A pinned contact key (trust on first use).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Contact {
    /// The pinned key: the identity key (a single-key user's one key).
    pub(crate) key: Vec<u8>,
    /// Confirmed out of band (safety number compared).
    pub(crate) verified: bool,
    /// A different key seen later, waiting for an explicit decision.
    pub(crate) pending: Option<Vec<u8>>,
    /// The latest device list of this contact this client verified
    /// (TLS-encoded, signed by the pinned identity key); empty for none yet,
    /// and emptied whenever the pin changes.
    #[serde(default)]
    pub(crate) device_list: Vec<u8>,
    /// Keys this contact was pinned by before the user accepted a new one
    /// (an identity reset): leaves still carrying one are the old
    /// identity's devices, removed from groups on the next sync, not a new
    /// key change.
    #[serde(default)]
    pub(crate) replaced: Vec<Vec<u8>>,
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
        /// The group's history policy, so new members learn it too.
        #[serde(default)]
        history: Option<HistoryPolicy>,
    },
    /// A new version of a resource.
    ResourceVersion {
        /// Its manifest.
        manifest: Manifest,
    },
    /// A resource was deleted (its blobs are deleted from the DS next).
    ResourceDeleted {
        /// The resource id.
        resource_id: String,
        /// Its name.
        name: String,
        /// When, Unix seconds.
        time: u64,
    },
    /// The group's history policy changed.
    HistoryPolicy {
        /// The new policy.
        policy: HistoryPolicy,
        /// When, Unix seconds.
        time: u64,
    },
    /// This group replaces another one (a successor group): sent once, by its
    /// creator, right after the members are added.
    Successor {
        /// The old group's id (base64url).
        predecessor: String,
    },
    /// History sharing: the manifests of the current versions, for members
    /// just added (everyone in the epoch reads it; it is recorded in history).
    KeyBundle {
        /// The users it is meant for.
        recipients: Vec<String>,
        /// The manifests.
        manifests: Vec<Manifest>,
        /// When, Unix seconds.
        time: u64,
    },
}

impl Envelope {
    /// Resource envelopes are applied to local records once accepted by the DS.
    pub(crate) fn is_resource(&self) -> bool {
        !matches!(self, Envelope::Text { .. } | Envelope::GroupName { .. } | Envelope::Successor { .. })
    }
}
