//! `grove-ds`: the Grove Delivery Service.
//!
//! It stores and routes MLS messages for resource groups and never holds a key
//! that decrypts anything. Handshake messages arrive as PublicMessage, so the DS
//! validates every commit and proposal with an openmls `PublicGroup` (signature,
//! epoch, membership) and enforces exactly one commit per epoch; application
//! messages are PrivateMessage and stay opaque. See `docs/architecture.md` and
//! `docs/api.md`.
//!
//! # Layout
//! - [`config`]: the daemon's configuration (flags and environment).
//! - [`api`]: wire types of HTTP API v1 (re-export of `grove_proto`).
//! - [`auth`]: proof of possession, challenges, tokens, rate limits.
//! - [`login`]: binding registration to the app's login (JWT from its auth server).
//! - [`ds`]: the domain layer (validation, ordering, membership), one module
//!   per job (see its docs).
//! - [`kt`]: key transparency: the akd directory of identity keys and device
//!   lists, its publisher and proofs.
//! - [`blobs`]: the encrypted blob store (files fsynced before 2xx, or chunks in PostgreSQL).
//! - [`store`]: storage behind a domain trait, sled and in-memory.
//! - [`http`]: the axum router, one module per route group.
//! - [`server`]: `run(listener, ...)` with TLS, timeouts and graceful shutdown.
//! - [`conn`]: caps on open connections and streams, in all and per peer IP.
//! - [`metrics`]: Prometheus metrics.
//! - [`error`]: the domain error and its stable codes (the HTTP mapping is
//!   [`http::error`]).
//! - [`daemon`]: production wiring: open the store, build the router, and an
//!   in-process server ([`daemon::InProcess`]) for `grove demo` and tests.
//! - `testing` (feature `testing`): shorthands for this crate's tests.
//! - `fuzzing` (feature `fuzzing`): entry points for the fuzz targets in `fuzz/`.

/// Wire types of HTTP API v1 (the `grove-proto` crate, shared with clients).
pub use grove_proto as api;
pub mod auth;
pub mod blobs;
pub mod config;
pub mod conn;
pub mod daemon;
pub mod ds;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod kt;
pub mod login;
pub mod metrics;
pub mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
