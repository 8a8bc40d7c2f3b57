//! The domain layer: what the Delivery Service does with a request, independent
//! of HTTP. It validates every handshake message with an openmls `PublicGroup`,
//! orders each group's log, enforces one commit per epoch and membership, and
//! drives the store. It never holds a key that decrypts anything.
//!
//! # Layout
//! - this module: [`Ds`], its [`Limits`], shutdown, and the shared helpers
//!   (durability, page parameters);
//! - `users`: registration, challenges and tokens, the user directory;
//! - `devices`: identity keys and signed device lists, the check that a leaf
//!   is a current device of its user, device-bound sessions ([`Session`]);
//! - `key_packages`: KeyPackage upload, claim (one, or one per device) and counts;
//! - `links`: linking a new device (its request, and the approval by another
//!   device of its user);
//! - `runtime`: the per-group runtime (cached public state and its codec, the
//!   roster, the in-memory tail of the log);
//! - `validate`: decoding and validating handshake messages (a commit bundle in,
//!   a `ValidatedCommit` out);
//! - `groups`: group creation, commits, the roster and GroupInfo;
//! - `log`: the one append path (commits, proposals, application messages),
//!   page fetch, long-poll, cursors;
//! - `blobs`: access control in front of the encrypted blob store;
//! - `welcomes`: the Welcome inbox;
//! - `reports`: members' signed reports of commits they cannot process;
//! - `replicas`: following other replicas' appends on a shared store;
//! - `retention`: pruning of acknowledged and expired log entries.

mod blobs;
mod devices;
mod groups;
mod key_packages;
mod links;
mod log;
mod replicas;
mod reports;
mod retention;
mod runtime;
mod users;
mod validate;
mod welcomes;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openmls_rust_crypto::RustCrypto;
use tokio::sync::watch;

use crate::auth::AuthState;
use crate::config::Config;
use crate::error::DsError;
use crate::metrics::Metrics;
use crate::store::Store;

pub use devices::Session;
pub use log::LogPage;
use runtime::GroupRt;

/// Ciphersuites the DS accepts (those openmls_rust_crypto implements).
pub const SUPPORTED_SUITES: [u16; 3] = [0x0001, 0x0002, 0x0003];
/// Longest accepted group id, bytes.
pub const MAX_GROUP_ID_LEN: usize = 256;
/// Registered users kept in memory (the cache is emptied when full).
const USER_CACHE: usize = 100_000;

/// Limits and policies of the domain layer (from [`Config`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest fetch page.
    pub max_page: usize,
    /// Longest long-poll.
    pub max_wait: Duration,
    /// Past epochs application messages may use.
    pub app_epoch_window: u64,
    /// One-time KeyPackages per client and suite.
    pub key_package_cap: u64,
    /// Longest KeyPackage lifetime, seconds.
    pub key_package_max_secs: u64,
    /// Registration token, if sign-up is closed.
    pub registration_token: Option<String>,
    /// The app-login check of registrations (`--auth-jwt-key`), if any.
    pub login: Option<Arc<crate::login::LoginVerifier>>,
    /// Bearer token of `GET /metrics`; `None` refuses every scrape.
    pub metrics_token: Option<String>,
    /// Message TTL, seconds.
    pub message_ttl_secs: u64,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(c: &Config) -> Self {
        Limits {
            max_page: c.max_page,
            max_wait: Duration::from_secs(c.max_wait_secs),
            app_epoch_window: c.app_epoch_window,
            key_package_cap: c.key_package_cap,
            key_package_max_secs: c.key_package_max_days.saturating_mul(86_400),
            registration_token: c.registration_token.clone(),
            login: None,
            metrics_token: c.metrics_token.clone(),
            message_ttl_secs: c.message_ttl_secs,
        }
    }
}

/// Current unix time in seconds.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The Delivery Service.
pub struct Ds {
    store: Arc<dyn Store>,
    blobs: crate::blobs::BlobStore,
    crypto: RustCrypto,
    limits: Limits,
    groups: Mutex<HashMap<Vec<u8>, Arc<GroupRt>>>,
    /// Registered users, and when each was read (`users`).
    users: Mutex<HashMap<String, (crate::store::UserRecord, u64)>>,
    /// Latest device list per user, and when it was read (`devices`).
    device_lists: Mutex<HashMap<String, (Option<grove_proto::identity::DeviceList>, u64)>>,
    /// The key-transparency directory.
    kt: Arc<crate::kt::KeyDirectory>,
    /// Authentication state (challenges, tokens, rate limits).
    pub auth: AuthState,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
    welcomes: watch::Sender<u64>,
    pending_welcomes: Mutex<HashSet<u64>>,
}

impl std::fmt::Debug for Ds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ds").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Ds {
    /// A Delivery Service over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: crate::blobs::BlobStore,
        limits: Limits,
        auth: AuthState,
        metrics: Arc<Metrics>,
        kt: Arc<crate::kt::KeyDirectory>,
    ) -> Result<Self, DsError> {
        let ds = Ds {
            store,
            kt,
            blobs,
            crypto: RustCrypto::default(),
            limits,
            groups: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            device_lists: Mutex::new(HashMap::new()),
            auth,
            metrics,
            shutdown: watch::channel(false).0,
            welcomes: watch::channel(0).0,
            pending_welcomes: Mutex::new(HashSet::new()),
        };
        Ok(ds)
    }

    /// Sets the stored-messages and groups gauges from the store (at start).
    pub async fn load_gauges(&self) -> Result<(), DsError> {
        self.metrics.stored_messages.set(self.store.message_count().await? as i64);
        self.metrics.groups.set(self.store.group_ids().await?.len() as i64);
        Ok(())
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The largest blob an upload may store, in bytes.
    pub fn max_blob_bytes(&self) -> u64 {
        self.blobs.max_bytes()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key-transparency directory.
    pub fn kt(&self) -> &Arc<crate::kt::KeyDirectory> {
        &self.kt
    }

    /// Starts shutting down: long-polls and streams return at once, new
    /// long-polls do not wait.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that changes when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Makes every write so far durable.
    async fn persist(&self) -> Result<(), DsError> {
        self.store.persist().await.map_err(DsError::Storage)
    }

    /// Checks the page parameters of a fetch or a Welcome poll; returns the limit.
    fn page_params(&self, limit: Option<usize>, wait: Duration) -> Result<usize, DsError> {
        let limit = limit.unwrap_or(100);
        if limit == 0 {
            return Err(DsError::ZeroLimit);
        }
        if limit > self.limits.max_page {
            return Err(DsError::PageTooLarge { asked: limit, max: self.limits.max_page });
        }
        if wait > self.limits.max_wait {
            return Err(DsError::WaitTooLong { max_secs: self.limits.max_wait.as_secs() });
        }
        Ok(limit)
    }
}
