//! Key transparency (`docs/identity.md`): the DS's key directory, checked.
//!
//! - **Lookups.** Before this client pins or uses another user's identity
//!   key and device list, it checks a lookup proof: the directory must hold
//!   exactly that key and that list as the user's latest value. A key the
//!   directory does not vouch for is refused ([`Error::KeyTransparency`]).
//!   The directory's keys are pinned on first use, and it may show this
//!   client only one root per epoch.
//! - **Self-monitoring.** On sync (at most once per directory epoch, and at
//!   most every [`SELF_CHECK_EVERY`] in a long-lived client) it checks the key
//!   history of its own user: a version holding an identity key that is
//!   not this user's, or a device list none of its devices signed, is a
//!   `key_transparency_alert`.
//! - **Members seen in a group.** A member first seen in a group's tree (a
//!   Welcome, a commit by another member) is pinned as the adder's client
//!   verified them, and checked against the directory by this client at the
//!   end of the same sync.
//! - **Gossip.** Every application message carries, after the fork tag, the
//!   directory epoch and root this client last verified. A member whose
//!   root for the same epoch differs has been shown another directory: a
//!   `split_view`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use grove_proto as proto;
use proto::identity::DeviceList;
use proto::kt::{DirectoryValue, KtKeys, SignedHead};

use super::{Client, SyncReport};
use crate::error::{Error, Result};
use crate::records::KtState;
use crate::repo::Repo;

/// How often a long-lived client re-checks its own key history.
pub(crate) const SELF_CHECK_EVERY: Duration = Duration::from_secs(60);
/// Verified roots kept for gossip checks.
const ROOTS_KEPT: usize = 256;
/// How often a lookup is retried while the directory has not published
/// the value the DS serves yet (a publish is at most a second away).
const LAGGING_TRIES: usize = 4;
/// Gossiped epochs this client looks up per sync, at most.
const GOSSIP_CHECKS: usize = 16;
/// Members pinned from a group that one sync checks, at most (the rest:
/// the next sync).
const PIN_CHECKS: usize = 64;

/// The gossip a message carries: the directory epoch and root this client
/// last verified (empty before its first check).
pub(super) fn gossip_of(state: Option<KtState>) -> Vec<u8> {
    match state {
        Some(s) if s.root.len() == 32 => {
            let mut root = [0u8; 32];
            root.copy_from_slice(&s.root);
            proto::kt::encode_gossip(s.epoch, &root)
        }
        _ => Vec::new(),
    }
}

/// What a client remembers of the directory between calls.
#[derive(Default)]
pub(crate) struct KtMemory {
    /// (user, encoded value) pairs verified against the directory.
    verified: HashMap<String, Vec<u8>>,
    /// When the own history was last checked.
    self_checked: Option<Instant>,
    /// Gossip of epochs this client has not verified: (sender, epoch, root).
    unverified: Vec<(String, u64, [u8; 32])>,
}

fn kt_error(user: &str, key: &[u8], epoch: u64, reason: impl Into<String>) -> Error {
    Error::KeyTransparency { user: user.to_owned(), key: proto::fingerprint(key), epoch, reason: reason.into() }
}

/// The value the directory must hold for a user the DS serves with `key`
/// and latest list `list`.
fn expected_value(user: &str, key: &[u8], list: Option<&[u8]>) -> Result<DirectoryValue> {
    let list = match list {
        Some(b) => {
            let l = DeviceList::decode(b)
                .map_err(|e| Error::DeviceListRejected { user: user.to_owned(), reason: e.to_string() })?;
            Some((l.version(), b))
        }
        None => None,
    };
    Ok(DirectoryValue::of(key, list))
}

impl Client {
    fn kt_state(&self) -> Result<KtState> {
        Ok(self.repo().meta().kt()?.unwrap_or_default())
    }

    fn kt_memory(&self) -> std::sync::MutexGuard<'_, KtMemory> {
        self.kt.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory's keys: pinned on first use; a DS that presents other
    /// keys later is refused.
    async fn kt_keys(&self) -> Result<KtKeys> {
        let state = self.kt_state()?;
        if !state.head_key.is_empty() {
            return Ok(KtKeys { vrf_public_key: state.vrf_public_key, head_key: state.head_key });
        }
        let keys = self.ds.kt_keys().await?;
        self.provider.transaction(|p| -> Result<()> {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            if s.head_key.is_empty() {
                s.vrf_public_key = keys.vrf_public_key.clone();
                s.head_key = keys.head_key.clone();
                meta.set_kt(&s)?;
            }
            Ok(())
        })?;
        tracing::info!(fingerprint = %keys.fingerprint(), "pinned the key directory's keys");
        Ok(keys)
    }

    /// Records a verified head. One epoch has one root: a DS that shows
    /// this client two is caught (a split view, recorded) and the answer
    /// refused. (An answer of an older epoch than the latest seen is not an
    /// error: it may have been computed first.)
    fn kt_record_head(&self, head: &SignedHead, root: [u8; 32]) -> Result<()> {
        let conflict = self.provider.transaction(|p| -> Result<Option<Vec<u8>>> {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            if let Some((_, r)) = s.roots.iter().find(|(e, _)| *e == head.epoch) {
                return Ok((r.as_slice() != root).then(|| r.clone()));
            }
            if head.epoch >= s.epoch {
                s.epoch = head.epoch;
                s.root = root.to_vec();
            }
            s.roots.push((head.epoch, root.to_vec()));
            s.roots.sort();
            if s.roots.len() > ROOTS_KEPT {
                s.roots.remove(0);
            }
            meta.set_kt(&s)?;
            Ok(None)
        })?;
        let Some(ours) = conflict else { return Ok(()) };
        self.record_split_view(None, head.epoch, &ours, &root)?;
        Err(kt_error(
            "-",
            &root,
            head.epoch,
            "the key directory showed this client two different roots for this epoch (a split view)",
        ))
    }

    /// Checks that the directory holds `key` and `list` as `user`'s latest
    /// value. Retries a little while the directory lags the DS (an update
    /// is published within a second); fails with
    /// [`Error::KeyTransparency`] when the directory holds something else.
    pub(super) async fn kt_check(&self, user: &str, key: &[u8], list: Option<&[u8]>) -> Result<()> {
        let expected = expected_value(user, key, list)?;
        let encoded = expected.encode();
        if self.kt_memory().verified.get(user) == Some(&encoded) {
            return Ok(());
        }
        let keys = self.kt_keys().await?;
        let mut last = None;
        for attempt in 0..LAGGING_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(3))).await;
            }
            let l = match self.ds.kt_lookup(user).await {
                Ok(l) => l,
                Err(Error::Server { code: proto::ErrorCode::NotInDirectory, .. }) => {
                    last = Some(kt_error(user, key, 0, "the key directory does not hold this user"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let v = proto::kt::verify_lookup(&keys, &l.head, user, &l.proof)
                .map_err(|e| kt_error(user, key, l.head.epoch, e.to_string()))?;
            let root = l.head.verify(&keys.head_key).map_err(|e| kt_error(user, key, l.head.epoch, e.0))?;
            self.kt_record_head(&l.head, root)?;
            if v.value == expected {
                self.kt_memory().verified.insert(user.to_owned(), encoded);
                return Ok(());
            }
            let lagging = v.value.identity_key == expected.identity_key && v.value.list_version < expected.list_version;
            let (served, held) = (expected.list_version, v.value.list_version);
            let reason = if v.value.identity_key != expected.identity_key {
                format!(
                    "the key directory holds another identity key for this user (its version {}, published at epoch {})",
                    v.version, v.epoch
                )
            } else if served < held {
                format!(
                    "the DS served device list version {served} where the key directory holds version {held} \
                     (published at epoch {}): a rollback",
                    v.epoch
                )
            } else if served > held {
                format!("the key directory does not hold device list version {served} (it holds version {held})")
            } else {
                format!(
                    "the key directory holds another device list version {held} for this user (published at epoch \
                     {}): a fork",
                    v.epoch
                )
            };
            last = Some(kt_error(user, key, l.head.epoch, reason));
            if !lagging {
                break;
            }
        }
        Err(last.unwrap_or_else(|| kt_error(user, key, 0, "no lookup was made")))
    }

    /// Notes gossip received from `sender` (the message's authenticated
    /// data after the fork tag); [`Client::kt_finish_sync`] compares it with
    /// the roots this client verified, outside the processing transaction.
    pub(super) fn kt_note_gossip(&self, sender: &str, gossip: &[u8]) {
        let Some((epoch, root)) = proto::kt::decode_gossip(gossip) else { return };
        let mut m = self.kt_memory();
        if m.unverified.len() < 1024 && !m.unverified.iter().any(|(s, e, r)| s == sender && *e == epoch && *r == root) {
            m.unverified.push((sender.to_owned(), epoch, root));
        }
    }

    /// Records a split view: `sender` (a member, or `None`: the DS itself,
    /// in a later answer) vouches for root `theirs` of `epoch`, where this
    /// client verified `ours`.
    fn record_split_view(&self, sender: Option<&str>, epoch: u64, ours: &[u8], theirs: &[u8; 32]) -> Result<()> {
        let (theirs, ours) = (hex::encode(&theirs[..8]), hex::encode(&ours[..ours.len().min(8)]));
        let what = match sender {
            Some(sender) => format!(
                "epoch {epoch}: {sender} was shown root {theirs} where this client was shown {ours}: the DS shows \
                 members different key directories"
            ),
            None => format!(
                "epoch {epoch}: the DS now serves root {theirs} where it showed this client {ours}: the DS shows \
                 different key directories"
            ),
        };
        tracing::error!(%what, "split view of the key directory");
        self.provider.transaction(|p| -> Result<()> {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            if !s.split_views.contains(&what) {
                s.split_views.push(what.clone());
                s.new_split_views.push(what.clone());
            }
            meta.set_kt(&s)
        })
    }

    /// After a sync: checks gossip of epochs this client has not verified
    /// against the DS's head of that epoch, checks its own key history when
    /// due, and reports new split views and alerts. Never fails the sync (its
    /// messages are already processed): a DS that cannot be asked is logged
    /// and asked again next time; a proof that does not verify is an alert.
    pub(super) async fn kt_finish_sync(&self, report: &mut SyncReport) {
        if let Err(e) = self.kt_sync_checks(report).await {
            match e {
                Error::KeyTransparency { epoch, reason, .. } => {
                    if let Err(e) = self.record_alert(format!("epoch {epoch}: {reason}")) {
                        tracing::warn!(error = %e, "could not record a key transparency alert");
                    }
                }
                e => tracing::warn!(error = %e, "could not check the key directory; will retry on the next sync"),
            }
        }
        let drained = self.provider.transaction(|p| -> Result<(Vec<String>, Vec<String>)> {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            let out = (std::mem::take(&mut s.new_split_views), std::mem::take(&mut s.new_alerts));
            if !out.0.is_empty() || !out.1.is_empty() {
                meta.set_kt(&s)?;
            }
            Ok(out)
        });
        match drained {
            Ok((views, alerts)) => {
                report.split_views.extend(views);
                report.key_transparency_alerts.extend(alerts);
            }
            Err(e) => tracing::warn!(error = %e, "could not read the key transparency state"),
        }
    }

    async fn kt_sync_checks(&self, report: &mut SyncReport) -> Result<()> {
        let pending = std::mem::take(&mut self.kt_memory().unverified);
        let mut asked: HashMap<u64, Option<[u8; 32]>> = HashMap::new();
        let mut later = Vec::new();
        for (sender, epoch, root) in pending {
            if !asked.contains_key(&epoch) && asked.len() >= GOSSIP_CHECKS {
                later.push((sender, epoch, root));
                continue;
            }
            let ours = match asked.get(&epoch) {
                Some(r) => *r,
                None => {
                    let r = self.verified_head(epoch).await;
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => {
                            later.push((sender, epoch, root));
                            self.kt_memory().unverified.extend(later);
                            return Err(e);
                        }
                    };
                    asked.insert(epoch, r);
                    r
                }
            };
            match ours {
                Some(ours) if ours != root => self.record_split_view(Some(&sender), epoch, &ours, &root)?,
                Some(_) => {}
                // An epoch the DS has not published yet (to everyone): ask again later.
                None => later.push((sender, epoch, root)),
            }
        }
        self.kt_memory().unverified.extend(later);
        self.kt_check_group_pins().await?;
        self.kt_self_check(report, false).await
    }

    /// Checks members pinned from a group's tree against the key directory
    /// (at most [`PIN_CHECKS`] a sync). A key the directory does not hold,
    /// or a DS that serves another key than the group's, is an alert (the
    /// latter also shows the member as changed, and sending to them is
    /// refused until the user decides). A DS that cannot be asked: next sync.
    async fn kt_check_group_pins(&self) -> Result<()> {
        let queued = self.kt_state()?.unchecked_pins;
        for user in queued.into_iter().take(PIN_CHECKS) {
            match self.pinned_key(&user).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => self.record_alert(format!("{user}, pinned from a group this client joined: {e}"))?,
            }
            self.provider.transaction(|p| -> Result<()> {
                let meta = Repo::of(p).meta();
                let mut s = meta.kt()?.unwrap_or_default();
                s.unchecked_pins.retain(|u| *u != user);
                meta.set_kt(&s)
            })?;
        }
        Ok(())
    }

    /// Records an alert (kept, and reported by the next sync).
    fn record_alert(&self, what: String) -> Result<()> {
        tracing::error!(alert = %what, "key transparency alert");
        self.provider.transaction(|p| -> Result<()> {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            if !s.alerts.contains(&what) {
                s.alerts.push(what.clone());
                s.new_alerts.push(what.clone());
            }
            meta.set_kt(&s)
        })
    }

    /// The root of `epoch` as the DS's signed head says (verified and
    /// recorded); `None` if the DS has no such epoch.
    async fn verified_head(&self, epoch: u64) -> Result<Option<[u8; 32]>> {
        if let Some((_, r)) = self.kt_state()?.roots.iter().find(|(e, _)| *e == epoch) {
            return Ok(r.as_slice().try_into().ok());
        }
        let keys = self.kt_keys().await?;
        let head = match self.ds.kt_head(Some(epoch)).await {
            Ok(h) => h.head,
            Err(Error::Server { code: proto::ErrorCode::UnknownEpoch, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let root = head.verify(&keys.head_key).map_err(|e| kt_error("-", &[], epoch, e.0))?;
        if head.epoch != epoch {
            return Err(kt_error("-", &[], epoch, format!("asked for epoch {epoch}, got {}", head.epoch)));
        }
        self.kt_record_head(&head, root)?;
        Ok(Some(root))
    }

    /// Checks this user's own key history (at most once per directory
    /// epoch; with `force`, now, else at most every [`SELF_CHECK_EVERY`]).
    /// New alerts go into the state and the report.
    pub(super) async fn kt_self_check(&self, report: &mut SyncReport, force: bool) -> Result<()> {
        let due = force || self.kt_memory().self_checked.is_none_or(|t| t.elapsed() >= SELF_CHECK_EVERY);
        if !due {
            return Ok(());
        }
        let keys = self.kt_keys().await?;
        let head = self.ds.kt_head(None).await?.head;
        let root = head.verify(&keys.head_key).map_err(|e| kt_error("-", &[], head.epoch, e.0))?;
        self.kt_record_head(&head, root)?;
        self.kt_memory().self_checked = Some(Instant::now());
        if head.epoch <= self.kt_state()?.self_checked && !force {
            return Ok(());
        }
        let user = self.id.user.clone();
        let h = match self.ds.kt_history(&user).await {
            Ok(h) => h,
            // Not published yet (a registration under a second old).
            Err(Error::Server { code: proto::ErrorCode::NotInDirectory, .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let alerts = match proto::kt::verify_history(&keys, &h.head, &user, &h.proof) {
            Ok(versions) => {
                let root = h.head.verify(&keys.head_key).map_err(|e| kt_error(&user, &[], h.head.epoch, e.0))?;
                self.kt_record_head(&h.head, root)?;
                self.foreign_versions(&versions).await?
            }
            Err(e) => vec![format!(
                "epoch {}: the key history of {user} does not verify, so a version may be hidden: {e}",
                h.head.epoch
            )],
        };
        let new = self.provider.transaction(|p| -> Result<Vec<String>> {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            s.self_checked = s.self_checked.max(h.head.epoch);
            let new: Vec<String> = alerts.iter().filter(|a| !s.alerts.contains(a)).cloned().collect();
            s.alerts.extend(new.iter().cloned());
            meta.set_kt(&s)?;
            Ok(new)
        })?;
        for a in &new {
            tracing::error!(alert = %a, "key transparency alert");
        }
        report.key_transparency_alerts.extend(new);
        Ok(())
    }

    /// The versions of this user's history that none of its devices made:
    /// an identity key that is not this user's after its own first version,
    /// or a device list whose hash is not one of the lists signed by its
    /// identity key.
    async fn foreign_versions(&self, versions: &[proto::kt::VerifiedValue]) -> Result<Vec<String>> {
        let own_key = self.identity_public().to_vec();
        let user = self.id.user.clone();
        let lists = self.ds.device_lists(&user, 0).await?.lists;
        let mut signed = HashMap::new();
        for l in &lists {
            if let Ok(list) = DeviceList::decode(&l.0) {
                if list.verify(&user, &own_key).is_ok() {
                    signed.insert(list.version(), proto::kt::list_hash(&l.0));
                }
            }
        }
        let mut alerts = Vec::new();
        // Oldest first: versions before this identity's first one belong
        // to an identity this user replaced (a reset), not to an attacker.
        let first_own = versions.iter().rev().position(|v| v.value.identity_key == own_key);
        for (i, v) in versions.iter().rev().enumerate() {
            let Some(first) = first_own else {
                alerts.push(format!(
                    "version {} (epoch {}): the directory never held this device's identity key for {user}",
                    v.version, v.epoch
                ));
                break;
            };
            if i < first {
                continue;
            }
            if v.value.identity_key != own_key {
                alerts.push(format!(
                    "version {} (epoch {}): identity key {} is not this user's; none of its devices published it",
                    v.version,
                    v.epoch,
                    proto::fingerprint(&v.value.identity_key)
                ));
            } else if v.value.list_version > 0 && signed.get(&v.value.list_version) != Some(&v.value.list_hash) {
                alerts.push(format!(
                    "version {} (epoch {}): device list version {} is not one this user's identity key signed",
                    v.version, v.epoch, v.value.list_version
                ));
            }
        }
        Ok(alerts)
    }

    /// Checks this user's own key history now; returns the alerts not
    /// reported before (also kept: [`Client::key_transparency_alerts`]).
    pub async fn check_key_history(&self) -> Result<Vec<String>> {
        let mut report = SyncReport::default();
        self.kt_self_check(&mut report, true).await?;
        Ok(report.key_transparency_alerts)
    }

    /// Every key-transparency alert and split view this client has seen.
    pub fn key_transparency_alerts(&self) -> Result<(Vec<String>, Vec<String>)> {
        let s = self.kt_state()?;
        Ok((s.alerts, s.split_views))
    }

    /// The directory epoch and root this client last verified (`None`: none yet).
    pub fn verified_directory_head(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let s = self.kt_state()?;
        Ok((!s.root.is_empty()).then_some((s.epoch, s.root)))
    }
}
