//! `grove_proto`: wire types of the Grove Delivery Service HTTP API v1 (see
//! `docs/api.md`): JSON bodies (binary fields in standard base64), the
//! TLS-encoded bodies that carry several MLS messages, media types, and the
//! signed byte strings of registration and authentication.
//!
//! It depends on nothing server-side, so the DS and every client share it.
//!
//! # Layout
//! - media types and headers (`MEDIA_*`, `HEADER_*`);
//! - [`b64`]: base64 serde helper; group-id and fingerprint helpers;
//! - JSON request and response structs;
//! - TLS bodies: [`GroupCreateBody`], [`CommitBundleBody`], [`KeyPackageUploadBody`];
//! - [`signed_bytes`] and its labels;
//! - [`ids`]: the validated identifiers [`GroupId`] and [`UserName`];
//! - [`identity`]: identity keys, device certificates and signed device lists;
//! - [`link`]: linking a new device (request, sealed approval);
//! - [`kt`]: key transparency (directory values, signed heads, proof checks);
//! - [`codes`]: error codes ([`ErrorCode`], [`ErrorBody`]) and [`EntryKind`];
//! - [`routes`]: every route template and path builder.

pub mod codes;
pub mod identity;
pub mod ids;
pub mod kt;
pub mod link;
pub mod routes;

pub use codes::{EntryKind, ErrorBody, ErrorCode};
pub use ids::{GroupId, IdError, UserName, MAX_GROUP_ID_LEN, MAX_USER_NAME_LEN};

use serde::{Deserialize, Serialize};
use tls_codec::{TlsDeserialize, TlsSerialize, TlsSize, VLBytes};

/// Media type of a single TLS-encoded MLSMessage.
pub const MEDIA_MLS: &str = "message/mls";
/// Media type of [`GroupCreateBody`].
pub const MEDIA_GROUP_CREATE: &str = "application/vnd.grove.group-create";
/// Media type of [`CommitBundleBody`].
pub const MEDIA_COMMIT_BUNDLE: &str = "application/vnd.grove.commit-bundle";
/// Media type of [`KeyPackageUploadBody`].
pub const MEDIA_KEY_PACKAGES: &str = "application/vnd.grove.key-packages";
/// Media type of [`MessagesPageBody`], the binary form of a fetch response
/// (ask for it with `Accept`).
pub const MEDIA_MESSAGES: &str = "application/vnd.grove.messages";
/// Response header of a KeyPackage claim: `one-time` or `last-resort`.
pub const HEADER_KEY_PACKAGE_KIND: &str = "grove-key-package-kind";

/// Standard base64 for `Vec<u8>` fields in JSON.
pub mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as standard base64.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    /// Deserializes standard base64 (padding required).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <&str>::deserialize(d).map_err(|_| serde::de::Error::custom("expected a base64 string"))?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Standard base64 for `Option<Vec<u8>>` fields in JSON (absent or null: `None`).
pub mod b64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes bytes as standard base64 (`None` as null).
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::b64::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes standard base64, or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        use base64::Engine as _;
        match Option::<&str>::deserialize(d).map_err(|_| serde::de::Error::custom("expected a base64 string"))? {
            Some(s) => base64::engine::general_purpose::STANDARD.decode(s).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Encodes a group id for a URL path segment (base64url, no padding).
pub fn group_id_to_path(id: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// Decodes a group id from a URL path segment.
pub fn group_id_from_path(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

/// Hex SHA-256 of a signature public key: the key's fingerprint.
pub fn fingerprint(key: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(key))
}

/// A user name bound to its credential and signature key: what registration
/// sends and what a lookup returns (flattened into both JSON bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKey {
    /// User name.
    pub user: String,
    /// TLS-encoded MLS Credential (a BasicCredential whose identity is `user`).
    #[serde(with = "b64")]
    pub credential: Vec<u8>,
    /// Raw signature public key.
    #[serde(with = "b64")]
    pub signature_key: Vec<u8>,
    /// SignatureScheme code point (0x0807 = 2055 for Ed25519).
    pub signature_scheme: u16,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Who registers, with which key.
    #[serde(flatten)]
    pub key: UserKey,
    /// Signature over `"grove-v1-register" 0x00 user 0x00 signature_key`.
    #[serde(with = "b64")]
    pub proof: Vec<u8>,
    /// Required when the server was started with a registration token.
    #[serde(default)]
    pub registration_token: Option<String>,
    /// The app's login for this user: a JWT whose `sub` is `user`, required
    /// when the server was started with `--auth-jwt-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_token: Option<String>,
    /// A user with an identity key (`docs/identity.md`): the first signed
    /// device list (version 1, TLS-encoded `DeviceList`). `signature_key` is
    /// then the identity key, `credential` the first device's credential
    /// (carrying its certificate), and `proof` is by the identity key.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub device_list: Option<Vec<u8>>,
    /// An identity reset: when the name is registered already, replace its
    /// identity with this one (every old device is out; contacts see the
    /// identity change). Needs `device_list`, and the app's login when the
    /// server requires one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// Response of `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// User name.
    pub user: String,
    /// Fingerprint of the registered key.
    pub fingerprint: String,
    /// `false` when the same user and key were already registered.
    pub created: bool,
}

/// `POST /v1/auth/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeRequest {
    /// User name.
    pub user: String,
}

/// Response of `POST /v1/auth/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// 32 random bytes to sign.
    #[serde(with = "b64")]
    pub challenge: Vec<u8>,
    /// Seconds the challenge stays valid.
    pub expires_in: u64,
}

/// `POST /v1/auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    /// User name.
    pub user: String,
    /// The challenge, as received.
    #[serde(with = "b64")]
    pub challenge: Vec<u8>,
    /// Signature over `"grove-v1-auth" 0x00 user 0x00 challenge`.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    /// The signing device's key, for a user with a device list (the
    /// signature is then by that key, which must be in the latest list).
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub device_key: Option<Vec<u8>>,
}

/// Response of `POST /v1/auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// Bearer token for the `Authorization` header.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Response of `GET /v1/users/{user}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserResponse {
    /// The registered binding.
    #[serde(flatten)]
    pub key: UserKey,
    /// Hex SHA-256 of the signature key.
    pub fingerprint: String,
    /// The latest signed device list (TLS-encoded `DeviceList`), for a user
    /// with an identity key; `signature_key` is then that identity key.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub device_list: Option<Vec<u8>>,
}

/// `POST /v1/users/{user}/devices`: the next version of the caller's device list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceListRequest {
    /// The TLS-encoded, signed `DeviceList`.
    #[serde(with = "b64")]
    pub device_list: Vec<u8>,
}

/// Response of `POST /v1/users/{user}/devices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceListPublished {
    /// The version now current.
    pub version: u64,
}

/// Response of `GET /v1/users/{user}/devices?after=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceListsResponse {
    /// The TLS-encoded signed lists with a version above `after`, oldest first.
    pub lists: Vec<DeviceListBytes>,
}

/// One base64 device list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceListBytes(#[serde(with = "b64")] pub Vec<u8>);

/// One claimed KeyPackage of one device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimedKeyPackage {
    /// The device it belongs to (absent for a user without devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Whether it is the device's last-resort package (handed out again
    /// until replaced).
    pub last_resort: bool,
    /// The KeyPackage, a TLS-encoded MLSMessage.
    #[serde(with = "b64")]
    pub key_package: Vec<u8>,
}

/// Response of `POST /v1/key-packages/{user}/claim-devices`: one package
/// per current device of the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceKeyPackagesResponse {
    /// The claimed packages, in the order of the user's device list.
    pub key_packages: Vec<ClaimedKeyPackage>,
    /// Devices in the list that had no package to hand out.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// `POST /v1/users/{user}/devices/restore`: the next device list, published
/// without a token by a device restored from a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceListRestoreRequest {
    /// TLS-encoded `DeviceList`, signed by the identity key.
    #[serde(with = "b64")]
    pub device_list: Vec<u8>,
    /// The app's login for this user, required when the server was started
    /// with `--auth-jwt-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_token: Option<String>,
}

/// `POST /v1/users/{user}/links`: a new device asks to be linked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkCreateRequest {
    /// TLS-encoded [`link::LinkRequest`].
    #[serde(with = "b64")]
    pub request: Vec<u8>,
    /// Signature by the request's device key over
    /// `LINK_PROOF_LABEL || 0x00 || request`.
    #[serde(with = "b64")]
    pub proof: Vec<u8>,
    /// The app's login for this user, required when the server was started
    /// with `--auth-jwt-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_token: Option<String>,
}

/// Response of `POST /v1/users/{user}/links`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkCreated {
    /// The request's id (base64url, no padding), named in the link code.
    pub id: String,
    /// Seconds the request waits for its approval.
    pub expires_in: u64,
}

/// Response of `GET /v1/links/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkResponse {
    /// The user the request is for.
    pub user: String,
    /// TLS-encoded [`link::LinkRequest`].
    #[serde(with = "b64")]
    pub request: Vec<u8>,
    /// TLS-encoded [`link::SealedApproval`], once approved.
    #[serde(default, with = "b64_opt", skip_serializing_if = "Option::is_none")]
    pub approval: Option<Vec<u8>>,
    /// Seconds until the request expires.
    pub expires_in: u64,
}

/// `POST /v1/links/{id}/approval`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkApproveRequest {
    /// TLS-encoded [`link::SealedApproval`].
    #[serde(with = "b64")]
    pub approval: Vec<u8>,
}

/// Response of a KeyPackage upload or count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPackageCountResponse {
    /// How many packages the upload accepted (0 for a count).
    pub accepted: usize,
    /// One-time packages stored for the ciphersuite.
    pub one_time: u64,
    /// Whether a last-resort package is stored.
    pub last_resort: bool,
}

/// Response of `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupCreatedResponse {
    /// Group id, base64url without padding (the form used in URLs).
    pub group_id: GroupId,
    /// The group's epoch.
    pub epoch: u64,
}

/// Response of `POST /v1/groups/{id}/blobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobCreatedResponse {
    /// Opaque blob id (32 lowercase hex characters), chosen by the DS.
    pub blob_id: String,
    /// Stored size in bytes.
    pub size: u64,
}

/// Response of a commit or message post.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostedResponse {
    /// Sequence number the message got in the group's log.
    pub seq: u64,
    /// The group's epoch after the message (new epoch after a commit).
    pub epoch: u64,
}

/// One log entry in a fetch response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageOut {
    /// Sequence number.
    pub seq: u64,
    /// Epoch of the message.
    pub epoch: u64,
    /// `commit`, `proposal` or `application`.
    pub kind: EntryKind,
    /// The TLS-encoded MLSMessage.
    #[serde(with = "b64")]
    pub message: Vec<u8>,
}

/// Response of `GET /v1/groups/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagesPage {
    /// Entries with `seq > after`, in order.
    pub messages: Vec<MessageOut>,
    /// The highest sequence number the caller may read now.
    pub last_seq: u64,
    /// Set when the caller was removed: the seq of the removing commit (the
    /// last entry it may fetch).
    pub removed_at: Option<u64>,
}

/// `POST /v1/groups/{id}/ack`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckRequest {
    /// The caller has processed the log through this sequence number.
    pub seq: u64,
}

/// `POST /v1/groups/{id}/reports`: a member's signed report of a commit it
/// cannot process on a check only members can make (its confirmation or
/// membership tag, its update path), so the operator has evidence of who
/// broke the group. The signature, with the reporter's registered key, is
/// over [`CommitReportRequest::signed_data`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitReportRequest {
    /// The log entry of the commit.
    pub seq: u64,
    /// The epoch the commit was made in.
    pub epoch: u64,
    /// The committer, as the reporter's group state names it.
    pub committer: String,
    /// What failed (at most 1,024 bytes).
    pub reason: String,
    /// The reporter's signature.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

impl CommitReportRequest {
    /// What `reporter` signs: [`signed_bytes`] with [`COMMIT_REPORT_LABEL`]
    /// over `group-id 0x00 seq 0x00 epoch 0x00 committer 0x00 reason`
    /// (the group id in its URL form, numbers in decimal).
    pub fn signed_data(&self, reporter: &str, gid: &GroupId) -> Vec<u8> {
        let data = format!("{gid}\0{}\0{}\0{}\0{}", self.seq, self.epoch, self.committer, self.reason);
        signed_bytes(COMMIT_REPORT_LABEL, reporter, data.as_bytes())
    }
}

/// Answer to a commit report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitReportResponse {
    /// How many members have reported this commit so far.
    pub reporters: u64,
}

/// One Welcome in the inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WelcomeOut {
    /// Inbox id (acknowledge with `DELETE /v1/welcomes/{id}`).
    pub id: u64,
    /// Group id, base64url without padding.
    pub group_id: GroupId,
    /// Epoch the Welcome joins.
    pub epoch: u64,
    /// The TLS-encoded MLSMessage carrying the Welcome.
    #[serde(with = "b64")]
    pub message: Vec<u8>,
}

/// Response of `GET /v1/welcomes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WelcomesPage {
    /// Pending Welcomes, in id order.
    pub welcomes: Vec<WelcomeOut>,
}

/// A member in [`GroupResponse`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberOut {
    /// User name (the BasicCredential identity, or its device certificate's user).
    pub user: UserName,
    /// The device id of a leaf with a device certificate (absent for a
    /// single-key user's leaf). A user has one entry per device in the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Leaf index in the ratchet tree.
    pub leaf_index: u32,
    /// Fingerprint of the member's signature key.
    pub fingerprint: String,
}

/// Response of `GET /v1/groups/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupResponse {
    /// Group id, base64url without padding.
    pub group_id: GroupId,
    /// Current epoch.
    pub epoch: u64,
    /// Ciphersuite code point.
    pub ciphersuite: u16,
    /// Current members.
    pub members: Vec<MemberOut>,
    /// Highest sequence number in the log.
    pub last_seq: u64,
}

/// Body of `POST /v1/groups` (`application/vnd.grove.group-create`):
/// `struct { opaque group_info<V>; opaque ratchet_tree<V>; }` where `group_info`
/// is an MLSMessage carrying a GroupInfo and `ratchet_tree` a TLS-encoded
/// ratchet tree (RFC 9420 §12.4.3.3).
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct GroupCreateBody {
    /// MLSMessage(GroupInfo).
    pub group_info: VLBytes,
    /// RatchetTree.
    pub ratchet_tree: VLBytes,
}

/// Body of `POST /v1/groups/{id}/commits` (`application/vnd.grove.commit-bundle`):
/// `struct { opaque commit<V>; opaque welcome<V>; opaque group_info<V>; }`, each an
/// MLSMessage; `welcome` and `group_info` are empty when absent.
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct CommitBundleBody {
    /// MLSMessage(PublicMessage carrying a Commit).
    pub commit: VLBytes,
    /// MLSMessage(Welcome), required iff the commit adds members.
    pub welcome: VLBytes,
    /// MLSMessage(GroupInfo) of the new epoch, optional.
    pub group_info: VLBytes,
}

/// One log entry in [`MessagesPageBody`].
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct MessageEntryBody {
    /// Sequence number.
    pub seq: u64,
    /// Epoch of the message.
    pub epoch: u64,
    /// 1 commit, 2 proposal, 3 application.
    pub kind: u8,
    /// The TLS-encoded MLSMessage.
    pub message: VLBytes,
}

/// Binary fetch response (`application/vnd.grove.messages`), the same content as
/// [`MessagesPage`] without JSON and base64:
/// `struct { uint64 last_seq; uint64 removed_at; MessageEntry messages<V>; }`
/// where `removed_at` is 0 when the caller was not removed.
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct MessagesPageBody {
    /// The highest sequence number the caller may read now.
    pub last_seq: u64,
    /// Seq of the commit that removed the caller, or 0.
    pub removed_at: u64,
    /// Entries with `seq > after`, in order.
    pub messages: Vec<MessageEntryBody>,
}

/// Body of `POST /v1/key-packages` (`application/vnd.grove.key-packages`):
/// `struct { opaque key_packages<V><V>; }`, each element an MLSMessage carrying a
/// KeyPackage, all of one ciphersuite.
#[derive(Debug, Clone, TlsSerialize, TlsDeserialize, TlsSize)]
pub struct KeyPackageUploadBody {
    /// MLSMessage(KeyPackage) each.
    pub key_packages: Vec<VLBytes>,
}

/// Label of the registration proof.
pub const REGISTER_LABEL: &[u8] = b"grove-v1-register";
/// Label of a commit report's signature.
pub const COMMIT_REPORT_LABEL: &[u8] = b"grove-v1-commit-report";
/// Label of the token request signature.
pub const AUTH_LABEL: &[u8] = b"grove-v1-auth";

/// Whether `id` is a well-formed blob id: 32 lowercase hex characters
/// (docs/api.md §5.20). The DS checks request paths with it, clients check
/// the ids in manifests.
pub fn valid_blob_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The bytes a client signs: `label 0x00 user 0x00 data`.
pub fn signed_bytes(label: &[u8], user: &str, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(label.len() + user.len() + data.len() + 2);
    v.extend_from_slice(label);
    v.push(0);
    v.extend_from_slice(user.as_bytes());
    v.push(0);
    v.extend_from_slice(data);
    v
}
