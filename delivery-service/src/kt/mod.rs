//! Key transparency: an [akd](https://github.com/facebook/akd) directory of
//! every user's identity key and latest device list (`docs/identity.md`).
//!
//! - Registering, publishing a device list (linking, revoking, restoring)
//!   and an identity reset mark the user dirty ([`KeyDirectory::mark`]).
//!   The publisher ([`KeyDirectory::run`]) reads the user's current value
//!   from the store and publishes every dirty user in one directory epoch,
//!   at most one epoch per [`KeyDirectory::interval`]. At start it publishes
//!   every registered user whose value differs from the directory's (an
//!   upgraded data dir, or a crash between a write and its publish).
//! - The VRF key and the head key are generated at first start and kept in
//!   the store (so in the data dir, and shared by every replica of one
//!   PostgreSQL database); [`KeyDirectory::keys`] has their public halves.
//! - Every epoch's root hash is kept (`h` records); heads are signed on demand.
//! - Several replicas on one PostgreSQL database each publish what they
//!   marked, one publish at a time ([`Store::kt_publish_lock`], an advisory
//!   lock): akd reads the latest epoch from the store at each publish, so
//!   their epochs interleave into one directory. Heads and audits of epochs
//!   another replica published read the latest epoch from the store.
//!
//! # Layout
//! - this module: [`KeyDirectory`] (open, publish, proofs);
//! - `db`: akd's storage on the DS's [`Store`];
//! - `tamper` (feature `testing`): a DS that lies, for the tests that show
//!   clients and auditors catch it.

mod db;
#[cfg(feature = "testing")]
pub mod tamper;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akd::append_only_zks::AzksParallelismConfig;
use akd::ecvrf::{VRFKeyStorage, VrfError};
use akd::storage::StorageManager;
use akd::{AkdLabel, AkdValue};
use ed25519_dalek::Signer as _;
use grove_proto::kt::{self as api_kt, DirectoryValue, KtConfig, KtKeys, SignedHead};
use rand::RngCore as _;
use tokio::sync::{watch, Notify};

use crate::error::DsError;
use crate::store::Store;

/// The akd directory Grove keeps.
type Dir = akd::Directory<KtConfig, db::StoreDb, VrfKey>;

/// Store keys of the directory's secret keys.
const VRF_KEY: &[u8] = b"k:vrf";
const HEAD_KEY: &[u8] = b"k:head";
/// Most users one backfill epoch publishes.
const BACKFILL_CHUNK: usize = 10_000;
/// How long a lookup of a user whose update is being published waits for it.
const PENDING_WAIT: Duration = Duration::from_secs(3);

/// The VRF secret key, held for the life of the process.
#[derive(Clone)]
struct VrfKey(Arc<Vec<u8>>);

#[async_trait::async_trait]
impl VRFKeyStorage for VrfKey {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.0.as_ref().clone())
    }
}

fn kt_err(e: impl std::fmt::Display) -> DsError {
    DsError::Internal(format!("key directory: {e}"))
}

fn head_record_key(epoch: u64) -> Vec<u8> {
    let mut k = b"h".to_vec();
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// The DS's key directory.
pub struct KeyDirectory {
    dir: Dir,
    store: Arc<dyn Store>,
    head_key: ed25519_dalek::SigningKey,
    keys: KtKeys,
    interval: Duration,
    /// Users whose value changed since the last publish.
    dirty: Mutex<BTreeSet<String>>,
    /// Users in the publish under way.
    in_flight: Mutex<BTreeSet<String>>,
    wake: Notify,
    /// The latest published epoch (lookups of pending users wait on it).
    epoch: watch::Sender<u64>,
    /// One publish at a time in this process.
    publishing: tokio::sync::Mutex<()>,
    /// Epochs published by this process.
    published: AtomicU64,
    /// Switches of a lying DS, for tests.
    #[cfg(feature = "testing")]
    pub tamper: tamper::Tamper,
}

impl std::fmt::Debug for KeyDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDirectory").field("keys", &self.keys.fingerprint()).finish_non_exhaustive()
    }
}

/// A fresh random 32-byte secret.
fn secret() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

impl KeyDirectory {
    /// Opens the directory in `store`, creating it and its keys at first
    /// start; publishes at most one epoch per `interval`.
    pub async fn open(store: Arc<dyn Store>, interval: Duration) -> Result<Arc<Self>, DsError> {
        let vrf = store.kt_put_absent(VRF_KEY, &secret()).await?;
        let head = store.kt_put_absent(HEAD_KEY, &secret()).await?;
        let head: [u8; 32] = head.as_slice().try_into().map_err(|_| kt_err("the stored head key is not 32 bytes"))?;
        let head_key = ed25519_dalek::SigningKey::from_bytes(&head);
        let vrf = VrfKey(Arc::new(vrf));
        let vrf_public = vrf.get_vrf_public_key().await.map_err(kt_err)?;
        let manager = StorageManager::new_no_cache(db::StoreDb::new(Arc::clone(&store)));
        let dir = Dir::new(manager, vrf, AzksParallelismConfig::default()).await.map_err(kt_err)?;
        let keys = KtKeys {
            vrf_public_key: vrf_public.as_bytes().to_vec(),
            head_key: head_key.verifying_key().to_bytes().to_vec(),
        };
        let kd = KeyDirectory {
            dir,
            store,
            head_key,
            keys,
            interval,
            dirty: Mutex::new(BTreeSet::new()),
            in_flight: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
            epoch: watch::channel(0).0,
            publishing: tokio::sync::Mutex::new(()),
            published: AtomicU64::new(0),
            #[cfg(feature = "testing")]
            tamper: tamper::Tamper::default(),
        };
        let akd::EpochHash(epoch, root) = kd.dir.get_epoch_hash().await.map_err(kt_err)?;
        kd.record_root(epoch, &root).await?;
        kd.store.persist().await?;
        kd.epoch.send_replace(epoch);
        Ok(Arc::new(kd))
    }

    /// The directory's public keys.
    pub fn keys(&self) -> &KtKeys {
        &self.keys
    }

    /// The longest time between an update and its epoch under load.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Epochs this process has published.
    pub fn epochs_published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// `user`'s value changed (it is stored and durable): publish it.
    pub fn mark(&self, user: &str) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(user.to_owned());
        }
        self.wake.notify_one();
    }

    /// Publishes every dirty user, then keeps publishing, at most one epoch
    /// per interval, until `shutdown` turns true. A failed publish is
    /// logged and retried at the next interval; nothing is lost (the store
    /// holds every value, and the next start compares them all).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.backfill().await {
            tracing::error!(error = %e, "key directory: publishing users missing from it failed; retried at next start");
        }
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.publish_pending().await {
                tracing::error!(error = %e, "key directory: publish failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Publishes the dirty users now, in one epoch. Returns the epoch, or
    /// `None` when no value changed.
    pub async fn publish_pending(&self) -> Result<Option<u64>, DsError> {
        let users: Vec<String> = match self.dirty.lock() {
            Ok(mut d) => std::mem::take(&mut *d).into_iter().collect(),
            Err(_) => return Err(kt_err("dirty set lock poisoned")),
        };
        if users.is_empty() {
            return Ok(None);
        }
        if let Ok(mut f) = self.in_flight.lock() {
            f.extend(users.iter().cloned());
        }
        let r = self.publish_users(&users).await;
        if let Ok(mut f) = self.in_flight.lock() {
            for u in &users {
                f.remove(u);
            }
        }
        if r.is_err() {
            if let Ok(mut d) = self.dirty.lock() {
                d.extend(users);
            }
            self.wake.notify_one();
        }
        r
    }

    /// Publishes every update marked so far, and waits for a publish under
    /// way: what was marked before the call is in the directory after it
    /// (for tests and tools; the publisher does this on its own).
    pub async fn flush(&self) -> Result<(), DsError> {
        loop {
            self.publish_pending().await?;
            let idle = {
                let _wait = self.publishing.lock().await;
                let empty = |m: &Mutex<BTreeSet<String>>| m.lock().map(|s| s.is_empty()).unwrap_or(true);
                empty(&self.dirty) && empty(&self.in_flight)
            };
            if idle {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Publishes every registered user whose stored value is not the
    /// directory's latest, in epochs of at most 10,000 users.
    /// Returns how many were published.
    pub async fn backfill(&self) -> Result<usize, DsError> {
        let names = self.store.user_names().await?;
        let mut n = 0;
        for chunk in names.chunks(BACKFILL_CHUNK) {
            let mut changed = Vec::new();
            for u in chunk {
                if self.current_value(u).await?.map(|v| v.encode()) != self.published_value(u).await? {
                    changed.push(u.clone());
                }
            }
            n += changed.len();
            self.publish_users(&changed).await?;
        }
        if n > 0 {
            tracing::info!(users = n, "key directory: published users it did not hold");
        }
        Ok(n)
    }

    /// The value the store holds for `user` now (`None`: not registered).
    async fn current_value(&self, user: &str) -> Result<Option<DirectoryValue>, DsError> {
        let Some(rec) = self.store.user(user).await? else { return Ok(None) };
        let list = self.store.latest_device_list(user).await?;
        let version = match &list {
            Some(b) => Some(
                grove_proto::identity::DeviceList::decode(b)
                    .map_err(|e| DsError::Internal(format!("stored device list of {user}: {e}")))?
                    .version(),
            ),
            None => None,
        };
        let list = version.zip(list.as_deref());
        #[allow(unused_mut)]
        let mut value = DirectoryValue::of(rec.signature_key.as_slice(), list);
        #[cfg(feature = "testing")]
        self.tamper.apply_published(user, &mut value);
        Ok(Some(value))
    }

    /// The latest value the directory holds for `user`, encoded.
    async fn published_value(&self, user: &str) -> Result<Option<Vec<u8>>, DsError> {
        let states = self.store.kt_scan(&db::states_prefix(user.as_bytes())).await?;
        let Some((_, last)) = states.last() else { return Ok(None) };
        let rec: akd::storage::types::DbRecord =
            rmp_serde::from_slice(last).map_err(|e| kt_err(format!("a stored value state does not decode: {e}")))?;
        match rec {
            akd::storage::types::DbRecord::ValueState(s) => Ok(Some(s.value.0)),
            _ => Err(kt_err("a value-state key holds another record")),
        }
    }

    /// Publishes the current values of `users` that differ from the
    /// directory's, in one epoch; makes it durable and records its root.
    async fn publish_users(&self, users: &[String]) -> Result<Option<u64>, DsError> {
        let _one = self.publishing.lock().await;
        // Other replicas on this store publish too: one at a time, and each
        // compares with what the others published.
        let _all = self.store.kt_publish_lock().await?;
        let mut updates = Vec::with_capacity(users.len());
        for u in users {
            let Some(v) = self.current_value(u).await? else { continue };
            let v = v.encode();
            if self.published_value(u).await?.as_ref() != Some(&v) {
                updates.push((AkdLabel::from(u.as_str()), AkdValue(v)));
            }
        }
        if updates.is_empty() {
            return Ok(None);
        }
        let n = updates.len();
        let started = std::time::Instant::now();
        let akd::EpochHash(epoch, root) = self.dir.publish(updates).await.map_err(kt_err)?;
        self.record_root(epoch, &root).await?;
        self.store.persist().await?;
        self.published.fetch_add(1, Ordering::Relaxed);
        self.epoch.send_replace(epoch);
        tracing::debug!(epoch, updates = n, ms = started.elapsed().as_millis() as u64, "key directory epoch published");
        Ok(Some(epoch))
    }

    async fn record_root(&self, epoch: u64, root: &[u8; 32]) -> Result<(), DsError> {
        self.store.kt_put(&[(head_record_key(epoch), root.to_vec())]).await?;
        Ok(())
    }

    fn sign(&self, epoch: u64, root: &[u8]) -> SignedHead {
        let signature = self.head_key.sign(&api_kt::head_signed_bytes(epoch, root)).to_bytes().to_vec();
        SignedHead { epoch, root_hash: root.to_vec(), signature }
    }

    /// The latest published epoch.
    pub fn latest_epoch(&self) -> u64 {
        *self.epoch.borrow()
    }

    /// The latest epoch as the store says (another replica on the same
    /// database may have published since this one last did).
    async fn refresh_latest(&self) -> Result<u64, DsError> {
        if !self.store.shared() {
            return Ok(self.latest_epoch());
        }
        let akd::EpochHash(epoch, _) = self.dir.get_epoch_hash().await.map_err(kt_err)?;
        self.epoch.send_if_modified(|e| {
            let newer = epoch > *e;
            *e = (*e).max(epoch);
            newer
        });
        Ok(self.latest_epoch())
    }

    /// The signed head of `epoch` (`None`: the latest).
    pub async fn head(&self, epoch: Option<u64>) -> Result<SignedHead, DsError> {
        let latest = match epoch {
            Some(e) if e <= self.latest_epoch() => self.latest_epoch(),
            _ => self.refresh_latest().await?,
        };
        let epoch = epoch.unwrap_or(latest);
        let root = self.store.kt_get(&[head_record_key(epoch)]).await?.pop().flatten();
        let Some(root) = root.filter(|_| epoch <= latest) else {
            return Err(DsError::UnknownEpoch { asked: epoch, latest });
        };
        #[allow(unused_mut)]
        let mut head = self.sign(epoch, &root);
        #[cfg(feature = "testing")]
        self.tamper.head(self, &mut head);
        Ok(head)
    }

    /// Waits (a little) while `user` has an update not yet published.
    async fn settle(&self, user: &str) {
        let pending = |kd: &Self| {
            kd.dirty.lock().map(|d| d.contains(user)).unwrap_or(false)
                || kd.in_flight.lock().map(|d| d.contains(user)).unwrap_or(false)
        };
        let mut rx = self.epoch.subscribe();
        let deadline = tokio::time::Instant::now() + PENDING_WAIT;
        while pending(self) {
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return;
            }
        }
    }

    /// A proof of `user`'s latest value (after its pending update, if any,
    /// is published).
    pub async fn lookup(&self, user: &str, asker: Option<&str>) -> Result<api_kt::LookupResponse, DsError> {
        grove_proto::UserName::parse(user)?;
        self.settle(user).await;
        #[cfg(feature = "testing")]
        if let Some(forged) = self.tamper.lookup(user, asker).await {
            return forged;
        }
        let _ = asker;
        self.lookup_proof(user).await
    }

    /// [`KeyDirectory::lookup`]'s proof, from this directory.
    async fn lookup_proof(&self, user: &str) -> Result<api_kt::LookupResponse, DsError> {
        let (proof, akd::EpochHash(epoch, root)) = match self.dir.lookup(AkdLabel::from(user)).await {
            Ok(r) => r,
            Err(akd::errors::AkdError::Storage(akd::errors::StorageError::NotFound(_))) => {
                return Err(DsError::NotInDirectory(user.to_owned()))
            }
            Err(e) => return Err(kt_err(e)),
        };
        let proof = api_kt::encode_proof::<_, akd::proto::specs::types::LookupProof>(&proof).map_err(kt_err)?;
        Ok(api_kt::LookupResponse { head: self.sign(epoch, &root), proof })
    }

    /// A proof of `user`'s complete key history.
    pub async fn history(&self, user: &str) -> Result<api_kt::HistoryResponse, DsError> {
        grove_proto::UserName::parse(user)?;
        self.settle(user).await;
        let params = akd::HistoryParams::Complete;
        #[allow(unused_mut)]
        let (mut proof, akd::EpochHash(epoch, root)) = match self.dir.key_history(&AkdLabel::from(user), params).await {
            Ok(r) => r,
            Err(akd::errors::AkdError::Storage(akd::errors::StorageError::NotFound(_))) => {
                return Err(DsError::NotInDirectory(user.to_owned()))
            }
            Err(e) => return Err(kt_err(e)),
        };
        #[cfg(feature = "testing")]
        self.tamper.history(user, &mut proof);
        let proof = api_kt::encode_proof::<_, akd::proto::specs::types::HistoryProof>(&proof).map_err(kt_err)?;
        Ok(api_kt::HistoryResponse { head: self.sign(epoch, &root), proof })
    }

    /// A proof that the directory only grew from epoch `from` to `to`, with
    /// the heads of `from..=to`.
    pub async fn audit(&self, from: u64, to: u64) -> Result<api_kt::AuditResponse, DsError> {
        if from >= to || to - from > api_kt::MAX_AUDIT_SPAN {
            return Err(DsError::InvalidAuditRange(format!(
                "an audit spans from < to, at most {} epochs (asked {from} to {to})",
                api_kt::MAX_AUDIT_SPAN
            )));
        }
        let latest = if to > self.latest_epoch() { self.refresh_latest().await? } else { self.latest_epoch() };
        if to > latest {
            return Err(DsError::UnknownEpoch { asked: to, latest });
        }
        let proof = self.dir.audit(from, to).await.map_err(kt_err)?;
        let proof = api_kt::encode_proof::<_, akd::proto::specs::types::AppendOnlyProof>(&proof).map_err(kt_err)?;
        let mut heads = Vec::with_capacity((to - from + 1) as usize);
        for e in from..=to {
            heads.push(self.head(Some(e)).await?);
        }
        Ok(api_kt::AuditResponse { heads, proof })
    }
}
