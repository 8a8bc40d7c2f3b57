//! `grove_client`: the library a Grove app embeds (identity, crash-safe MLS
//! state, resource groups, key pinning).
//!
//! The library never prints, never reads stdin and never exits; every
//! operation returns a typed [`Error`]. The `grove` CLI is a thin layer on it.
//!
//! # Layout
//! - [`storage`]: crash-safe local state on sled. openmls's `StorageProvider`
//!   plus the app's own records, written through one overlay and committed as
//!   one checksummed journal record followed by an fdatasync (applied to sled
//!   at checkpoints); [`storage::GroveProvider`] is the
//!   `OpenMlsProvider` built on it.
//!   - `storage/app.rs`: app records (`namespace`, key) beside openmls's values.
//!   - `storage/codec.rs` ([`storage::codec`]): the value codec (MessagePack).
//!   - `storage/error.rs`: [`storage::StorageError`].
//!   - `storage/fs.rs`: opening sled (lock retries) and the owner-only home directory.
//!   - `storage/journal.rs`: the commit journal and its crash recovery.
//!   - `storage/mls.rs`: openmls's `StorageProvider` on the store.
//!   - `storage/provider.rs`: [`storage::GroveProvider`] and [`storage::TxnProvider`].
//!   - `storage/transaction.rs`: [`storage::Transaction`], the write overlay.
//! - `repo` (private): the typed repository over the app records (meta,
//!   groups with their name index, contacts, messages, pending commits,
//!   outbox with its group index, resources) and the migrations of their
//!   schema; the only module that knows namespaces and keys.
//!   - `repo/groups.rs`: group records and the name index; name-or-id lookup.
//!   - `repo/outbox.rs`: unconfirmed own messages, indexed by group.
//!   - `repo/resources.rs`: resource records, versions and resource history.
//! - [`client`]: [`Client`], in modules by job (each adds methods to `Client`):
//!   - `client/types.rs`: the public value types ([`ClientConfig`],
//!     [`SyncReport`], [`CommitOutcome`], ...).
//!   - `client/identity.rs`: create and open a home, register, KeyPackages.
//!   - `client/devices.rs`: the identity key a new home makes, this device's
//!     certificate and the first device list, verified device lists of
//!     contacts ([`Client::devices`]), and the key a member is pinned by.
//!   - `client/link.rs`: linking a new device (the request, its approval
//!     on another device, and the new device joining the user's groups).
//!   - `client/upgrade.rs`: a single-key home of an earlier release becomes
//!     an identity with its first device (its key is the identity key).
//!   - `client/restore.rs`: a new device of the identity in a backup, with
//!     no other device needed.
//!   - `client/backup.rs`: identity backups under a passphrase
//!     ([`Client::identity_backup`], [`open_identity_backup`]).
//!   - `client/contacts.rs`: key pinning, key changes, safety numbers,
//!     contact codes ([`Client::import_contact`]).
//!   - `client/groups.rs`: finding and creating groups; add, remove, update, leave.
//!   - `client/commit.rs`: the commit machinery (pending commit, merge only
//!     after the DS's 201, redo on 409); `client/retry.rs`: the jittered
//!     backoff between redos.
//!   - `client/rollback.rs`: detecting a server rollback, and its acknowledgement.
//!   - `client/fork.rs`: fork detection (a tag of the epoch authenticator in
//!     every application message, compared by receivers).
//!   - `client/kt.rs`: key transparency: lookup proofs checked before a key
//!     or device list is pinned or used, the own key history watched, and
//!     directory roots gossiped in messages (split views).
//!   - `client/self_update.rs`: the self-update policy (update the own leaf
//!     after a time or a number of messages, on the next send or sync).
//!   - `client/outbox.rs`: sending messages, confirming and re-posting them.
//!   - `client/resync.rs`: rejoining a group whose log this client cannot
//!     follow, by an external commit replacing its own leaf.
//!   - `client/successor.rs`: successor groups, created and linked.
//!   - `client/sync.rs`: Welcomes and group logs, each entry decoded, then
//!     applied (own echo, commit, proposal, application message).
//!   - `client/queries.rs`: groups, members, messages, epochs, raw views.
//!   - `client/resources/`: encrypted resources ([`Client::put_resource`]):
//!     queries in `mod.rs`, content upload and download in `transfer.rs`,
//!     deletion, policy, history shares and applying resource messages in
//!     `changes.rs`.
//! - [`audit`]: the key directory's auditor (`grove audit`): append-only
//!   proofs verified epoch by epoch, progress kept in a file.
//! - [`tls`]: how the DS's certificate is verified ([`TrustMode`]).
//! - [`resource_crypto`]: chunked, padded AES-256-GCM encryption of resource
//!   versions (the blobs the DS stores), bound to group, resource and version.
//! - [`error`]: the error type, [`Error`].
//! - `records` (private): the app records kept beside openmls's state, and
//!   the envelope inside MLS application messages.
//! - `http` (private): the DS HTTP API with automatic re-login.
//! - `fuzzing` (cargo feature `fuzzing`): entry points for the fuzz targets.
//!
//! # Example
//!
//! ```no_run
//! use grove_client::{Client, ClientConfig, TrustMode};
//! # async fn demo() -> grove_client::Result<()> {
//! let mut config = ClientConfig::new("https://ds.example:8443", "alice");
//! config.trust = TrustMode::pinned_hex("<sha-256 of the DS certificate>")?;
//! let alice = Client::create("/home/alice/.grove", config).await?; // register, log in, KeyPackages
//! let group = alice.create_group("ops").await?;
//! alice.add_members(&group, &["bob"]).await?; // checks bob's KeyPackage against his pinned key
//! alice.send(&group, "deploy at noon").await?;
//! let report = alice.sync().await?; // Welcomes, new messages, commits of others
//! for m in alice.messages(&group)? {
//!     println!("{}: {}", m.sender, m.text);
//! }
//! # let _ = report; Ok(()) }
//! ```

pub mod audit;
pub mod client;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod http;
mod records;
mod repo;
pub mod resource_crypto;
pub mod storage;
pub mod tls;

#[cfg(feature = "fault-injection")]
pub use client::Fault;
pub use client::LIST_RECHECK_SECS;
pub use client::{
    comparison_code, contact_code, open_identity_backup, parse_contact_code, safety_number, BackupGroup, Client,
    ClientConfig, CommitOutcome, ContactInfo, DeviceInfo, ForkInfo, GroupSummary, IdentityBackup, KeyStatus,
    LinkApprovalInfo, LinkCodes, LinkFinished, MemberInfo, Progress, ResourceHistoryEntry, ResourceInfo, ResyncInfo,
    RevokeOutcome, SafetyNumber, SuccessorInfo, SyncReport, UpdateStatus, WhoAmI,
};
pub use error::{Error, Result};
pub use records::{GroupState, HistoryPolicy, StoredMessage, UpdatePolicy};
pub use storage::StoreKey;
pub use tls::TrustMode;
