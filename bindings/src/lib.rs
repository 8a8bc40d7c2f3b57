//! `grove-ffi`: [`grove_client`] for apps in Kotlin (Android), Swift (iOS)
//! and Python, through UniFFI (proc-macros, no UDL). The generated sources
//! come from `uniffi-bindgen` (this workspace's `bindings/uniffi-bindgen`)
//! run on the built library; `docs/mobile.md` shows how.
//!
//! # Layout
//! - `client.rs`: [`GroveClient`] (one client home) with its identity,
//!   device, group, message and contact calls, and the constructors
//!   [`create_client`], [`open_client`], [`request_link`], and
//!   [`new_store_key`].
//! - `resources.rs`: the resource calls on [`GroveClient`].
//! - `health.rs`: acknowledging a server rollback or a fork, a key
//!   refresh, and successor groups.
//! - `recovery.rs`: identity backups and [`restore_client`] (a new device
//!   from a backup, when every other device is lost).
//! - `events.rs`: [`SyncReport`], [`Event`] and the app's [`EventListener`].
//! - `types.rs`: the records calls take and return ([`ClientOptions`], ...).
//! - `error.rs`: [`GroveError`], the one error of every call, with the
//!   CLI's codes.
//!
//! Async calls run on Tokio (`async_runtime = "tokio"`); the calls that are
//! not async only read the local store.

mod client;
mod error;
mod events;
mod health;
mod recovery;
mod resources;
mod types;

pub use client::{create_client, new_store_key, open_client, request_link, GroveClient};
pub use error::{GroveError, Result};
pub use events::{Event, EventListener, SyncReport};
pub use health::Successor;
pub use recovery::{restore_client, Restored};
pub use types::{
    ClientOptions, CommitOutcome, Contact, Device, Group, LinkApproval, LinkCodes, Member, Message, Resource,
    ResourceEvent, RevokeOutcome, SafetyNumber, WhoAmI,
};

uniffi::setup_scaffolding!();
