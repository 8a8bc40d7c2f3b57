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
//! - [`client`]: [`Client`], identity, groups, commits (merge only after the
//!   DS's 201, redo on 409), sync, key pinning and safety numbers.
//! - [`tls`]: how the DS's certificate is verified ([`TrustMode`]).
//! - [`resource_crypto`]: chunked, padded AES-256-GCM encryption of resource
//!   versions (the blobs the DS stores), bound to group, resource and version.
//!   The resource layer on top of it (put/get/list/delete, manifests sent as
//!   MLS messages, history policy and key bundles) is part of [`Client`]; see
//!   [`Client::put_resource`].
//! - [`error`]: the error type, [`Error`].
//! - `records` (private): the app records kept beside openmls's state.
//! - `http` (private): the DS HTTP API with automatic re-login.
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

pub mod client;
pub mod error;
mod http;
mod records;
pub mod resource_crypto;
pub mod storage;
pub mod tls;

pub use client::{
    safety_number, Client, ClientConfig, CommitOutcome, ContactInfo, GroupSummary, KeyStatus, MemberInfo,
    Progress, ResourceHistoryEntry, ResourceInfo, SafetyNumber, SyncReport, WhoAmI,
};
#[cfg(feature = "fault-injection")]
pub use client::Fault;
pub use error::{Error, Result};
pub use records::{GroupState, HistoryPolicy, StoredMessage};
pub use tls::TrustMode;
