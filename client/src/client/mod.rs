//! [`Client`]: one user's identity, groups and messages, on a crash-safe local
//! store, talking to one Delivery Service.
//!
//! Every MLS operation runs inside one storage transaction together with the
//! app's bookkeeping (cursor, message history, pending commit, outbox), so a
//! crash leaves either the state before or the state after the operation.
//! Network calls happen between transactions, never inside one. The app's
//! records are read and written through the typed repository
//! (`crate::repo`, private), never by namespace and key.
//!
//! # Modules
//!
//! `Client` is one struct; its methods live in the module of their job:
//! `types` (the public value types), `identity` (home, registration,
//! KeyPackages), `devices` (identity key, device certificate and list, the
//! key a member is pinned by), `link` (linking a new device), `restore`
//! (a new device from a backup), `upgrade` (a single-key home becomes an
//! identity with its first device), `backup` (the identity key and pins sealed
//! under a passphrase), `contacts` (pinning, safety numbers), `kt` (key transparency: lookups
//! checked against the key directory, self-monitoring, gossip of its root), `groups` (lookup,
//! creation, membership operations), `commit` (the commit machinery),
//! `outbox` (sending and re-posting messages), `sync` (Welcomes and logs),
//! `resync` (rejoining by an external commit), `successor` (replacing a
//! group that cannot be used),
//! `queries` and `resources`.
//!
//! # Concurrency and blocking
//!
//! A `Client` is `Send + Sync` and its futures are `Send`: several tasks may
//! share one (`Arc<Client>`). Its state-changing operations (create, add,
//! remove, update, leave, send, sync) run one at a time; queries do not wait.
//! Each transaction ends with one fsync of the local store, done on the
//! calling thread (about 2 ms on the reference machine): use a multi-threaded
//! runtime, as the CLI does.
//!
//! # Recovery rules
//!
//! - Own commit: stored as pending (bytes and epoch) before it is posted;
//!   merged after the DS's 201; discarded on any definitive 4xx; on `409
//!   stale_epoch` discarded, then the log is processed and the operation
//!   redone after a jittered backoff, within [`DEFAULT_RETRY_BUDGET`] (see
//!   [`Client::set_retry_budget`]). After a crash or an unknown outcome,
//!   the next sync merges it if the log holds exactly those bytes at that
//!   epoch, and discards it otherwise.
//! - Own message: stored with its ciphertext before it is posted; confirmed by
//!   the 201 or by its echo in the log; posted again unchanged by the next sync
//!   if the log lacks it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use grove_proto as proto;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use sha2::Digest as _;

use crate::http::DsHttp;
use crate::records::IdentityRecord;
use crate::repo::Repo;
use crate::storage::{GroveProvider, SledStorage};

mod backup;
mod commit;
mod contacts;
mod devices;
mod fork;
mod groups;
mod identity;
mod kt;
mod link;
mod outbox;
mod queries;
mod resources;
mod restore;
#[cfg(feature = "fuzzing")]
pub(crate) use resources::fuzz_envelope;
mod resync;
mod retry;
mod rollback;
mod self_update;
mod successor;
mod sync;
#[cfg(test)]
mod tests;
mod types;
mod upgrade;

pub use backup::{open_identity_backup, BackupGroup, IdentityBackup, BACKUP_FORMAT, MIN_PASSPHRASE_CHARS};
pub use contacts::{contact_code, parse_contact_code, safety_number, CONTACT_CODE_PREFIX};
pub use devices::{DeviceInfo, RevokeOutcome, LIST_RECHECK_SECS};
pub use fork::ForkInfo;
pub use link::{comparison_code, LinkApprovalInfo, LinkCodes, LinkFinished};
pub use resources::{Progress, ResourceHistoryEntry, ResourceInfo};
pub use resync::ResyncInfo;
pub use retry::DEFAULT_RETRY_BUDGET;
pub use self_update::UpdateStatus;
pub use successor::SuccessorInfo;
pub use types::{
    ClientConfig, CommitOutcome, ContactInfo, Fault, GroupSummary, KeyStatus, MemberInfo, SafetyNumber, SyncReport,
    WhoAmI,
};

/// Default number of one-time KeyPackages kept on the DS.
pub const DEFAULT_KEY_PACKAGES: u64 = 10;
/// Past epochs whose secrets are kept, to read application messages sent just
/// before a commit (the DS accepts them within its epoch window).
const MAX_PAST_EPOCHS: usize = 2;
const PAGE: u32 = 500;

fn b64url(id: &[u8]) -> String {
    proto::group_id_to_path(id)
}

fn hash(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

/// The user a credential names: a device certificate's user, or the bare
/// user name of a single-key user's credential.
fn identity_of(credential: &Credential) -> String {
    match BasicCredential::try_from(credential.clone()) {
        Ok(c) => match grove_proto::identity::device_credential_identity(c.identity()) {
            Ok(i) => i.user(),
            Err(_) => String::from_utf8_lossy(c.identity()).into_owned(),
        },
        Err(_) => "<non-basic credential>".to_owned(),
    }
}

/// One user's Grove client. See the [module docs](self).
pub struct Client {
    home: PathBuf,
    provider: GroveProvider,
    signer: Arc<SignatureKeyPair>,
    id: IdentityRecord,
    ds: DsHttp,
    fault: Mutex<Option<Fault>>,
    /// How long an operation is redone after 409s (milliseconds).
    retry_budget_ms: std::sync::atomic::AtomicU64,
    /// Added to the system clock ([`Client::advance_clock`], tests only).
    clock_offset_secs: std::sync::atomic::AtomicU64,
    /// Serializes this client's state-changing operations (an operation
    /// spans several transactions and network calls; two at once on one group
    /// would race for its single pending commit).
    ops: tokio::sync::Mutex<()>,
    /// When this client last fetched and verified each user's device list
    /// (`devices::check_members`), to refresh them at most every few minutes.
    lists_checked: Mutex<std::collections::HashMap<String, u64>>,
    /// The key the home is encrypted under, if it is (to reopen it).
    store_key: Option<crate::storage::StoreKey>,
    /// Members' pin keys by (user, credential, leaf key), as
    /// `devices::pin_key_of` found them (see `Client::pin_key`).
    pin_keys: Mutex<std::collections::HashMap<Vec<u8>, Vec<u8>>>,
    /// What this process remembers of the key directory (`kt`).
    kt: Mutex<kt::KtMemory>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("home", &self.home).field("user", &self.id.user).finish_non_exhaustive()
    }
}

impl Client {
    /// Arms (or clears) a fault; see [`Fault`]. For crash tests.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fault;
    }

    /// Sets how long an operation that keeps losing the commit race (409) is
    /// redone, with jittered exponential backoff, before it fails with
    /// [`Error::TooManyRetries`](crate::Error::TooManyRetries). Default
    /// [`DEFAULT_RETRY_BUDGET`].
    pub fn set_retry_budget(&self, budget: std::time::Duration) {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        self.retry_budget_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn backoff(&self) -> retry::Backoff {
        let ms = self.retry_budget_ms.load(std::sync::atomic::Ordering::Relaxed);
        retry::Backoff::new(std::time::Duration::from_millis(ms))
    }

    /// Moves this client's clock forward by `secs` (a mock clock for tests of
    /// time-based policies, such as the self-update policy).
    #[cfg(feature = "fault-injection")]
    pub fn advance_clock(&self, secs: u64) {
        self.clock_offset_secs.fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Now, Unix seconds, by this client's clock.
    pub(super) fn now_secs(&self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        now.saturating_add(self.clock_offset_secs.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn fault(&self) -> Option<Fault> {
        *self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long each request to the DS may take, from connecting to the last
    /// byte of the answer, before the call fails with a (retryable)
    /// [`Error::Network`](crate::Error::Network): 60 s by default. A
    /// mobile app in the foreground may want less. Blob transfers of
    /// resources keep their own 60 s limit.
    pub fn set_request_timeout(&self, timeout: std::time::Duration) {
        self.ds.set_timeout(timeout);
    }

    /// The key this home is encrypted under at rest, if it is.
    pub fn store_key(&self) -> Option<&crate::storage::StoreKey> {
        self.store_key.as_ref()
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.id.user
    }

    /// The app records, as committed.
    fn repo(&self) -> Repo<'_, SledStorage> {
        Repo::new(self.provider.storage())
    }
}
