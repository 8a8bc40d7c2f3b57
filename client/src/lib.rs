//! `grove_client`: the library a Grove app embeds (identity, crash-safe MLS
//! state, resource groups, key pinning).
//!
//! # Layout
//! - [`storage`]: crash-safe local state on sled. openmls's `StorageProvider`
//!   plus the app's own records, written through one overlay and committed as
//!   one sled batch followed by an fsync; [`storage::GroveProvider`] is the
//!   `OpenMlsProvider` built on it.

pub mod storage;
