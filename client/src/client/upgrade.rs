//! Upgrading a single-key home of an earlier release into an identity with
//! its first device (`docs/identity.md`, "Single-key users, and upgrading
//! them"), in three steps, each safe to interrupt and redo:
//!
//! 1. **On open** (local, [`upgrade_local`]): the home's one key becomes the
//!    identity key (contacts pinned exactly that key, so nobody sees a
//!    change), a new device key is made and certified, and the first device
//!    list (version 1) is signed; the old key is kept as `legacy_key`.
//! 2. **On the first login** (`DsHttp`, `http.rs`): the DS still knows the
//!    user by the old key, so the device's login is refused as "no device
//!    list"; the client then logs in with the old key, publishes the list,
//!    and logs in as the device.
//! 3. **On sync** ([`Client::replace_legacy_leaves`]): in each group whose
//!    own leaf is still the old key's, the device joins with its own leaf
//!    (an external commit; until then it reads through the old leaf, which
//!    the DS allows for its user's devices) and then removes the old leaf.
//!    Once no group holds it, `legacy_key` is cleared.

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

use super::{b64url, Client, SyncReport};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{GroupState, IdentityRecord};
use crate::repo::Repo;
use crate::storage::GroveProvider;

/// The Ed25519 secret of a key pair (openmls keeps it private; its serde
/// form, the one it is stored in, carries it).
fn ed25519_secret(key: &SignatureKeyPair) -> Result<ed25519_dalek::SigningKey> {
    #[derive(serde::Deserialize)]
    struct Stored {
        private: Vec<u8>,
    }
    if key.signature_scheme() != SignatureScheme::ED25519 {
        return Err(Error::InvalidArgument("only an Ed25519 key can become an identity key".into()));
    }
    let mut json = serde_json::to_vec(key).map_err(|e| Error::Protocol(format!("reading the key: {e}")))?;
    let stored: std::result::Result<Stored, _> = serde_json::from_slice(&json);
    zeroize::Zeroize::zeroize(&mut json);
    let mut stored = stored.map_err(|e| Error::Protocol(format!("reading the key: {e}")))?;
    let seed: std::result::Result<[u8; 32], _> = stored.private.as_slice().try_into();
    zeroize::Zeroize::zeroize(&mut stored.private);
    let mut seed = seed.map_err(|_| Error::Protocol("the key's secret is not 32 bytes".into()))?;
    let identity = ed25519_dalek::SigningKey::from_bytes(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    if identity.verifying_key().to_bytes().as_slice() != key.public() {
        return Err(Error::Protocol("the key's secret does not match its public key".into()));
    }
    Ok(identity)
}

/// Step 1: makes a single-key home's key its identity key and a new
/// device key its first device, in one transaction. Returns the device
/// key and the new record.
pub(super) fn upgrade_local(
    provider: &GroveProvider,
    legacy: &SignatureKeyPair,
    mut id: IdentityRecord,
) -> Result<(SignatureKeyPair, IdentityRecord)> {
    let identity = ed25519_secret(legacy)?;
    let device = SignatureKeyPair::new(legacy.signature_scheme()).mls("generate the device key")?;
    let (cert, list) = super::devices::certify_first(&identity, &id.user, &device);
    super::devices::set_identity(&mut id, &identity, &cert, &list);
    id.legacy_key = legacy.public().to_vec();
    id.signature_key = device.public().to_vec();
    provider.transaction(|p| -> Result<()> {
        device.store(p.storage())?;
        Repo::of(p).meta().set_identity(&id)
    })?;
    tracing::info!(user = %id.user, "single-key home upgraded: its key is the identity key, a new device key signs");
    Ok((device, id))
}

impl Client {
    /// Step 3: gives this device its own leaf in every active group whose
    /// own leaf is still the old single key's, then removes that leaf.
    pub(super) async fn replace_legacy_leaves(&self, report: &mut SyncReport) -> Result<()> {
        let Some(id) = self.repo().meta().identity()? else { return Ok(()) };
        if id.legacy_key.is_empty() {
            return Ok(());
        }
        let legacy_id = grove_proto::identity::device_id(&id.legacy_key);
        let mut left = 0;
        for (gid, rec) in self.repo().groups().all()? {
            if rec.state != GroupState::Active || rec.rollback.is_some() || rec.fork.is_some() {
                continue;
            }
            let g = self.group(&gid)?;
            let own_is_legacy = g.own_leaf().is_some_and(|l| l.signature_key().as_slice() == id.legacy_key);
            let legacy_in_group = g.members().any(|m| m.signature_key == id.legacy_key);
            let step = async {
                if own_is_legacy {
                    let seq = self.external_join(&gid).await?;
                    let now = self.now_secs();
                    self.provider.transaction(|p| -> Result<()> {
                        let g = Self::load(p, &gid)?;
                        Repo::of(p).groups().update(&gid, |r| {
                            r.cursor = r.cursor.max(seq);
                            r.joined_epoch = g.epoch().as_u64();
                            r.leaf_since = now;
                            r.sent_since_update = 0;
                        })?;
                        self.pin_members(p, &g)
                    })?;
                }
                if own_is_legacy || legacy_in_group {
                    let op = super::commit::CommitOp::RemoveDevices(vec![legacy_id.clone()]);
                    self.commit(&gid, "remove the single-key leaf", op).await?;
                }
                Ok::<_, Error>(())
            };
            if let Err(e) = step.await {
                left += 1;
                if own_is_legacy && self.try_group(&gid)?.is_none() {
                    // The join failed after its state replaced the old one:
                    // the next sync rejoins (a resync, which the DS takes
                    // as this device's join).
                    let cursor = self.group_record(&gid)?.cursor;
                    self.provider.transaction(|p| Self::mark_resync(p, &gid, cursor, e.to_string()))?;
                }
                report.errors.push(format!("{}: replacing the single-key leaf: {e}", b64url(&gid)));
            }
        }
        if left == 0 {
            let scheme = self.suite().signature_algorithm();
            self.provider.transaction(|p| -> Result<()> {
                let repo = Repo::of(p);
                let mut id =
                    repo.meta().identity()?.ok_or_else(|| Error::Protocol("identity record missing".into()))?;
                SignatureKeyPair::delete(p.storage(), &id.legacy_key, scheme)?;
                id.legacy_key = Vec::new();
                repo.meta().set_identity(&id)
            })?;
        }
        Ok(())
    }
}
