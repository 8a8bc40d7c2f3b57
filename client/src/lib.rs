//! `grove_client`: the library a Grove app embeds (identity, crash-safe MLS
//! state, resource groups, key pinning).
//!
//! The library never prints, never reads stdin and never exits; every
//! operation returns a typed [`Error`]. The `grove` CLI is a thin layer on it.
//!
//! # Layout
//! - [`storage`]: crash-safe local state on sled. openmls's `StorageProvider`
//!   plus the app's own records, written through one overlay and committed as
//!   one sled batch followed by an fsync; [`storage::GroveProvider`] is the
//!   `OpenMlsProvider` built on it.
//! - [`client`]: [`Client`], identity, groups, commits (merge only after the
//!   DS's 201, redo on 409), sync, key pinning and safety numbers.
//! - [`tls`]: how the DS's certificate is verified ([`TrustMode`]).
//! - [`error`]: the error type, [`Error`].
//! - `records` (private): the app records kept beside openmls's state.
//! - `http` (private): the DS HTTP API with automatic re-login.

pub mod client;
pub mod error;
mod http;
mod records;
pub mod storage;
pub mod tls;

pub use client::{
    safety_number, Client, ClientConfig, CommitOutcome, ContactInfo, Fault, GroupSummary, KeyStatus, MemberInfo,
    SafetyNumber, SyncReport, WhoAmI,
};
pub use error::{Error, Result};
pub use records::{GroupState, StoredMessage};
pub use tls::TrustMode;
