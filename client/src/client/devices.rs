//! Identity key and devices on the client (`docs/identity.md`): the identity
//! key a new home creates, this device's certificate (carried in its MLS
//! credential) and the first device list, and the key that stands for a
//! member when it is pinned (a verified certificate's identity key, or the
//! leaf key of a single-key user).

use grove_proto::identity::{
    self as id, CredentialIdentity, DeviceCertificate, DeviceCertificateTbs, DeviceEntry, DeviceList, DeviceListTbs,
};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

use super::Client;
use crate::error::{Error, Result};
use crate::records::{IdentityRecord, IdentitySecret};

/// A new identity key, from the operating system's randomness.
pub(super) fn new_identity_key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    key
}

pub(super) fn signer(key: &ed25519_dalek::SigningKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    use ed25519_dalek::Signer as _;
    move |m| key.sign(m).to_bytes().to_vec()
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The identity parts of a new home: the identity key, the certificate of
/// `device` and the first device list holding it.
pub(super) fn first_device(
    user: &str,
    device: &SignatureKeyPair,
) -> (ed25519_dalek::SigningKey, DeviceCertificate, DeviceList) {
    let identity = new_identity_key();
    let (cert, list) = certify_first(&identity, user, device);
    (identity, cert, list)
}

/// The certificate of `device` by `identity`, and the first device list
/// (version 1) holding it.
pub(super) fn certify_first(
    identity: &ed25519_dalek::SigningKey,
    user: &str,
    device: &SignatureKeyPair,
) -> (DeviceCertificate, DeviceList) {
    let identity_key = identity.verifying_key().to_bytes().to_vec();
    let scheme = device.signature_scheme() as u16;
    let at = now();
    let cert = DeviceCertificate::new(
        DeviceCertificateTbs {
            user: user.as_bytes().to_vec().into(),
            identity_key: identity_key.clone().into(),
            device_key: device.public().to_vec().into(),
            signature_scheme: scheme,
            created_at: at,
        },
        signer(identity),
    );
    let list = DeviceList::new(
        DeviceListTbs {
            user: user.as_bytes().to_vec().into(),
            identity_key: identity_key.into(),
            version: 1,
            previous: Vec::new().into(),
            devices: vec![DeviceEntry {
                device_key: device.public().to_vec().into(),
                signature_scheme: scheme,
                added_at: at,
                label: Vec::new().into(),
            }],
            issued_at: at,
        },
        signer(identity),
    );
    (cert, list)
}

/// Fills the identity fields of a new home's record.
pub(super) fn set_identity(
    id: &mut IdentityRecord,
    identity: &ed25519_dalek::SigningKey,
    cert: &DeviceCertificate,
    list: &DeviceList,
) {
    id.identity_key = identity.verifying_key().to_bytes().to_vec();
    id.identity_secret = IdentitySecret(identity.to_bytes().to_vec());
    id.device_list = list.encode();
    id.device_credential = cert.to_credential_identity();
}

/// The key a member is pinned by: for a device credential, the identity
/// key of its certificate, once the certificate verifies for this user and
/// this leaf key; for a single-key user's credential, the leaf key itself.
/// A certificate that does not verify yields the leaf key, which never
/// matches an identity pin (so the member shows as changed, never as known).
pub(crate) fn pin_key_of(user: &str, credential: &Credential, leaf_key: &[u8]) -> Vec<u8> {
    let Ok(basic) = BasicCredential::try_from(credential.clone()) else { return leaf_key.to_vec() };
    match id::device_credential_identity(basic.identity()) {
        Ok(CredentialIdentity::Device(cert)) => {
            let ik = cert.tbs.identity_key.as_slice().to_vec();
            if cert.verify_for(user, &ik, leaf_key).is_ok() {
                ik
            } else {
                leaf_key.to_vec()
            }
        }
        _ => leaf_key.to_vec(),
    }
}

/// What a registration signs: the registered key, its proof of possession,
/// and (with an identity key) the first device list.
pub(super) struct Registration {
    pub(super) key: Vec<u8>,
    pub(super) proof: Vec<u8>,
    pub(super) device_list: Option<Vec<u8>>,
}

/// How many members' pin keys [`Client::pin_key`] remembers (then it starts over).
const PIN_KEY_CACHE: usize = 4096;

impl Client {
    /// [`pin_key_of`], remembered. A certificate verifies the same way every
    /// time, and every send and every sync asks for every member's pin key:
    /// without this, one Ed25519 verification per member each time.
    pub(super) fn pin_key(&self, user: &str, credential: &Credential, leaf_key: &[u8]) -> Vec<u8> {
        use tls_codec::Serialize as _;
        let Ok(cred) = credential.tls_serialize_detached() else { return pin_key_of(user, credential, leaf_key) };
        let mut k = Vec::with_capacity(12 + user.len() + cred.len() + leaf_key.len());
        for part in [user.as_bytes(), &cred, leaf_key] {
            k.extend_from_slice(&(part.len() as u32).to_be_bytes());
            k.extend_from_slice(part);
        }
        if let Some(found) = self.pin_keys.lock().ok().and_then(|m| m.get(&k).cloned()) {
            return found;
        }
        let key = pin_key_of(user, credential, leaf_key);
        if let Ok(mut m) = self.pin_keys.lock() {
            if m.len() >= PIN_KEY_CACHE {
                m.clear();
            }
            m.insert(k, key.clone());
        }
        key
    }

    /// This user's identity key: the identity key of a home that has one,
    /// else (a home made before identity keys) its one signature key.
    pub(super) fn identity_public(&self) -> &[u8] {
        if self.id.identity_key.is_empty() {
            self.signer.public()
        } else {
            &self.id.identity_key
        }
    }

    /// The identity signing key, if this home has one.
    pub(super) fn identity_signer(&self) -> Result<Option<ed25519_dalek::SigningKey>> {
        if self.id.identity_key.is_empty() {
            return Ok(None);
        }
        let secret: [u8; 32] =
            self.id.identity_secret.0.as_slice().try_into().map_err(|_| {
                crate::repo::corrupt(&format!("identity key in {}", self.home.display()), "not 32 bytes")
            })?;
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        if key.verifying_key().to_bytes().as_slice() != self.id.identity_key.as_slice() {
            return Err(crate::repo::corrupt(
                &format!("identity key in {}", self.home.display()),
                "its secret and public halves do not match",
            ));
        }
        Ok(Some(key))
    }

    /// The signed registration of this home. With an identity key: the
    /// identity key, its proof, and the device list; without: the device key
    /// and its proof.
    pub(super) fn registration(&self) -> Result<Registration> {
        match self.identity_signer()? {
            Some(identity) => {
                let key = self.id.identity_key.clone();
                let proof =
                    signer(&identity)(&grove_proto::signed_bytes(grove_proto::REGISTER_LABEL, &self.id.user, &key));
                Ok(Registration { key, proof, device_list: Some(self.id.device_list.clone()) })
            }
            None => {
                let key = self.signer.public().to_vec();
                let proof = openmls_traits::signatures::Signer::sign(
                    self.signer.as_ref(),
                    &grove_proto::signed_bytes(grove_proto::REGISTER_LABEL, &self.id.user, &key),
                )
                .map_err(|e| Error::mls_because("sign the registration", format!("{e:?}")))?;
                Ok(Registration { key, proof, device_list: None })
            }
        }
    }
}

/// Checks what the DS serves of `user`'s device lists (`latest`, and the
/// versions after the one verified before, `history`) against `stored`, the
/// list this client verified before: every list signed by `identity_key`,
/// each the successor of the one before, ending at `latest`. A lower
/// version than `stored` is a rollback, another list of its version a fork.
/// Returns the list now verified; the error is the reason for refusing.
pub(crate) fn advance_list(
    user: &str,
    identity_key: &[u8],
    stored: Option<&DeviceList>,
    latest: Option<&[u8]>,
    history: &[Vec<u8>],
) -> std::result::Result<Option<DeviceList>, String> {
    let Some(latest) = latest else {
        return match stored {
            Some(s) => Err(format!("it serves no list, after version {} was verified (a rollback)", s.version())),
            None => Ok(None),
        };
    };
    let latest = DeviceList::decode(latest).map_err(|e| e.to_string())?;
    latest.verify(user, identity_key).map_err(|e| e.to_string())?;
    if let Some(s) = stored {
        if latest.version() <= s.version() {
            return s.check_successor(&latest).map(|()| Some(s.clone())).map_err(|e| e.to_string());
        }
    }
    let mut prev = stored.cloned();
    for bytes in history {
        let next = DeviceList::decode(bytes).map_err(|e| e.to_string())?;
        next.verify(user, identity_key).map_err(|e| e.to_string())?;
        match &prev {
            Some(p) => p.check_successor(&next).map_err(|e| e.to_string())?,
            None if next.version() != 1 => return Err(format!("its history starts at version {}", next.version())),
            None => {}
        }
        prev = Some(next);
    }
    match prev {
        Some(p) if p == latest => Ok(Some(latest)),
        _ => Err(format!("its history does not lead to its latest list (version {})", latest.version())),
    }
}

/// How long a device list this client verified is trusted before sending
/// into a group makes it fetch and verify the list again.
pub const LIST_RECHECK_SECS: u64 = 300;

/// One device of this user, for [`Client::devices`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// The device id (32 hex characters).
    pub id: String,
    /// Whether it is the device this client runs on.
    pub this_device: bool,
    /// When it was added, unix seconds.
    pub added_at: u64,
    /// The name it was given, if any.
    pub label: String,
}

impl Client {
    /// The latest device list of `user` (this user too), verified against
    /// the pinned identity key and the list verified before, and remembered.
    /// `None`: a single-key user.
    pub(crate) async fn device_list_of(&self, user: &str) -> Result<Option<DeviceList>> {
        let own = user == self.id.user;
        let (identity_key, stored) = if own {
            (self.identity_public().to_vec(), self.id.device_list.clone())
        } else {
            let key = self.pinned_key(user).await?;
            (key, self.contact(user)?.map(|c| c.device_list).unwrap_or_default())
        };
        let stored = if stored.is_empty() {
            None
        } else {
            Some(DeviceList::decode(&stored).map_err(|e| crate::repo::corrupt("stored device list", e.to_string()))?)
        };
        let latest = self.ds.get_user(user).await?.device_list;
        if !own {
            // The list this client uses is the one the key directory holds.
            self.kt_check(user, &identity_key, latest.as_deref()).await?;
        }
        let behind = match (&stored, &latest) {
            (_, None) => None,
            (Some(s), Some(l)) if DeviceList::decode(l).is_ok_and(|l| l.version() <= s.version()) => None,
            (s, Some(_)) => Some(s.as_ref().map_or(0, DeviceList::version)),
        };
        let history = match behind {
            Some(after) => self.ds.device_lists(user, after).await?.lists.into_iter().map(|l| l.0).collect(),
            None => Vec::new(),
        };
        let verified = advance_list(user, &identity_key, stored.as_ref(), latest.as_deref(), &history)
            .map_err(|reason| Error::DeviceListRejected { user: user.to_owned(), reason })?;
        if let Some(v) = &verified {
            if stored.as_ref() != Some(v) {
                let bytes = v.encode();
                self.provider.transaction(|p| -> Result<()> {
                    let repo = crate::repo::Repo::of(p);
                    if !own {
                        return repo.contacts().update(user, |c| c.device_list = bytes).map(|_| ());
                    }
                    // Own list: the latest this device verified (it may
                    // have moved on since this client was opened).
                    let mut id =
                        repo.meta().identity()?.ok_or_else(|| Error::Protocol("identity record missing".into()))?;
                    if DeviceList::decode(&id.device_list).is_ok_and(|l| l.version() < v.version()) {
                        id.device_list = bytes;
                        repo.meta().set_identity(&id)?;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(verified)
    }

    /// The verified device list this client holds for `user` (this user
    /// too), without asking the DS.
    fn stored_list(&self, user: &str) -> Result<Option<DeviceList>> {
        let bytes = if user == self.id.user {
            crate::repo::Repo::new(self.provider.storage())
                .meta()
                .identity()?
                .map(|i| i.device_list)
                .unwrap_or_default()
        } else {
            self.contact(user)?.map(|c| c.device_list).unwrap_or_default()
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        DeviceList::decode(&bytes).map(Some).map_err(|e| crate::repo::corrupt("stored device list", e.to_string()))
    }

    /// The group's device leaves (a certified device key): (user, leaf
    /// key, whether the user's stored verified list holds it).
    fn device_leaves(&self, gid: &[u8]) -> Result<Vec<(String, Vec<u8>, bool)>> {
        let mut out = Vec::new();
        for m in self.group(gid)?.members() {
            let Ok(basic) = BasicCredential::try_from(m.credential.clone()) else { continue };
            if !matches!(id::device_credential_identity(basic.identity()), Ok(CredentialIdentity::Device(_))) {
                continue;
            }
            let user = super::identity_of(&m.credential);
            let listed = self.stored_list(&user)?.is_some_and(|l| l.contains(&m.signature_key));
            out.push((user, m.signature_key, listed));
        }
        Ok(out)
    }

    /// Before sending: every member's key matches its pin, and every
    /// member's device is in its user's latest verified device list. The
    /// lists of the group's users are fetched and verified again when this
    /// client has not done so for [`LIST_RECHECK_SECS`] (a device revoked since),
    /// or when a leaf is a device its list does not hold (one added since).
    /// Fails with [`Error::UnlistedDevice`] on a device the lists do not
    /// hold: revoked, or never certified.
    pub(super) async fn check_members(&self, gid: &[u8]) -> Result<()> {
        self.check_member_keys(gid)?;
        let leaves = self.device_leaves(gid)?;
        let mut users: Vec<&String> = Vec::new();
        for (user, _, listed) in &leaves {
            let now = self.now_secs();
            let stale = self
                .lists_checked
                .lock()
                .map_or(true, |m| m.get(user).is_none_or(|t| now.saturating_sub(*t) > LIST_RECHECK_SECS));
            if (!listed || stale) && !users.contains(&user) {
                users.push(user);
            }
        }
        if users.is_empty() {
            return Ok(());
        }
        for user in users {
            match self.device_list_of(user).await {
                Ok(_) => {
                    if let Ok(mut m) = self.lists_checked.lock() {
                        m.insert(user.clone(), self.now_secs());
                    }
                }
                // A list that does not verify is an attack on this user: stop.
                Err(e @ Error::DeviceListRejected { .. }) => return Err(e),
                // The DS is down or misbehaves otherwise: judge on the lists
                // verified before (the send itself reports what is wrong).
                Err(e) => tracing::warn!(user, error = %e, "could not refresh a device list"),
            }
        }
        match self.device_leaves(gid)?.into_iter().find(|(_, _, listed)| !listed) {
            None => Ok(()),
            Some((user, key, _)) => {
                Err(Error::UnlistedDevice { user, device: id::device_id(&key), group: super::b64url(gid) })
            }
        }
    }

    /// This user's devices, from the latest device list (verified against
    /// the identity key and the list this device knows). Empty for a
    /// single-key home.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        let Some(list) = self.device_list_of(&self.id.user.clone()).await? else { return Ok(Vec::new()) };
        Ok(list
            .tbs
            .devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.id(),
                this_device: d.device_key.as_slice() == self.signer.public(),
                added_at: d.added_at,
                label: String::from_utf8_lossy(d.label.as_slice()).into_owned(),
            })
            .collect())
    }
}

impl Client {
    /// Removes from an active group the leaves of identities their users
    /// replaced (an identity reset this client accepted with
    /// [`Client::trust_new_key`] or a contact code): the old identity's
    /// devices go the next time a member syncs. Returns whether it committed.
    pub(super) async fn remove_replaced_devices(&self, gid: &[u8]) -> Result<bool> {
        if self.group_record(gid)?.state != crate::records::GroupState::Active {
            return Ok(false);
        }
        let mut ids = Vec::new();
        for m in self.group(gid)?.members() {
            let user = super::identity_of(&m.credential);
            if user == self.id.user {
                continue;
            }
            if let Some(c) = self.contact(&user)? {
                if c.replaced.contains(&self.pin_key(&user, &m.credential, &m.signature_key)) {
                    ids.push(id::device_id(&m.signature_key));
                }
            }
        }
        if ids.is_empty() {
            return Ok(false);
        }
        let op = super::commit::CommitOp::RemoveDevices(ids);
        Ok(self.commit(gid, "remove an old identity's devices", op).await?.committed)
    }
}

/// What [`Client::revoke_device`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RevokeOutcome {
    /// The revoked device's id.
    pub device: String,
    /// The version of the device list without it (`None`: it was not in
    /// the list any more, a retry that only removed leaves).
    pub list_version: Option<u64>,
    /// Groups whose leaves of the device were removed (base64url ids).
    pub removed_from: Vec<String>,
    /// Groups where the removal failed, with why (run it again).
    pub failed: Vec<String>,
}

impl Client {
    /// Revokes one of this user's other devices: publishes the device list
    /// without it (the DS stops accepting its token at once) and commits,
    /// in every group, the removal of its leaves, so it cannot read what is
    /// sent afterwards. Run again after a failure, it finishes the removals.
    pub async fn revoke_device(&self, device: &str) -> Result<RevokeOutcome> {
        let _op = self.ops.lock().await;
        let identity = self.identity_signer()?.ok_or_else(|| {
            Error::InvalidArgument("this home has a single key and no devices (it was made before devices)".into())
        })?;
        if device == id::device_id(self.signer.public()) {
            return Err(Error::InvalidArgument(
                "that is this device: revoke it from another of your devices (or reset the identity when none is left)"
                    .into(),
            ));
        }
        let user = self.id.user.clone();
        let current = self
            .device_list_of(&user)
            .await?
            .ok_or_else(|| Error::InvalidArgument("the DS has no device list of this user".into()))?;
        let mut out = RevokeOutcome { device: device.to_owned(), ..Default::default() };
        if current.device(device).is_some() {
            let devices = current.tbs.devices.iter().filter(|d| d.id() != device).cloned().collect();
            let next = super::link::signed_list(&identity, &current, devices)?;
            self.publish_own_list(&next).await?;
            out.list_version = Some(next.version());
        }
        for gid in self.repo().groups().ids()? {
            if self.group_record(&gid)?.state != crate::records::GroupState::Active {
                continue;
            }
            let has_leaf = self.group(&gid)?.members().any(|m| id::device_id(&m.signature_key) == device);
            if !has_leaf {
                continue;
            }
            let op = super::commit::CommitOp::RemoveDevices(vec![device.to_owned()]);
            match self.commit(&gid, "remove a revoked device", op).await {
                Ok(_) => out.removed_from.push(super::b64url(&gid)),
                Err(e) => out.failed.push(format!("{}: {e}", super::b64url(&gid))),
            }
        }
        if out.list_version.is_none() && out.removed_from.is_empty() && out.failed.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no device {device} in your device list or your groups (see `grove device list`)"
            )));
        }
        tracing::info!(device, groups = out.removed_from.len(), "device revoked");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn list(id: &ed25519_dalek::SigningKey, prev: Option<&DeviceList>, devices: &[&[u8]]) -> DeviceList {
        DeviceList::new(
            DeviceListTbs {
                user: b"bob".to_vec().into(),
                identity_key: id.verifying_key().to_bytes().to_vec().into(),
                version: prev.map_or(1, |p| p.version() + 1),
                previous: prev.map(DeviceList::hash).unwrap_or_default().into(),
                devices: devices
                    .iter()
                    .map(|d| DeviceEntry {
                        device_key: d.to_vec().into(),
                        signature_scheme: 0x0807,
                        added_at: 1,
                        label: Vec::new().into(),
                    })
                    .collect(),
                issued_at: 1,
            },
            signer(id),
        )
    }

    #[test]
    fn the_client_follows_the_chain_and_refuses_rollbacks_forks_and_forgeries() {
        let id = key(1);
        let ik = id.verifying_key().to_bytes();
        let v1 = list(&id, None, &[b"phone"]);
        let v2 = list(&id, Some(&v1), &[b"phone", b"laptop"]);
        let v3 = list(&id, Some(&v2), &[b"phone"]);
        let enc = |l: &DeviceList| l.encode();
        // First sight: the whole history from version 1.
        let got = advance_list("bob", &ik, None, Some(&enc(&v2)), &[enc(&v1), enc(&v2)]).unwrap();
        assert_eq!(got.as_ref(), Some(&v2));
        // Later: only what follows the stored version.
        assert_eq!(advance_list("bob", &ik, Some(&v2), Some(&enc(&v3)), &[enc(&v3)]).unwrap(), Some(v3.clone()));
        assert_eq!(advance_list("bob", &ik, Some(&v3), Some(&enc(&v3)), &[]).unwrap(), Some(v3.clone()));
        // A rollback, to an older list or to none.
        let e = advance_list("bob", &ik, Some(&v3), Some(&enc(&v2)), &[]).unwrap_err();
        assert!(e.contains("older"), "{e}");
        assert!(advance_list("bob", &ik, Some(&v3), None, &[]).unwrap_err().contains("rollback"));
        // A fork: another version 3.
        let other_v3 = list(&id, Some(&v2), &[b"phone", b"tablet"]);
        assert!(advance_list("bob", &ik, Some(&v3), Some(&enc(&other_v3)), &[]).unwrap_err().contains("forked"));
        // A history that skips a version, or ends elsewhere than the latest.
        assert!(advance_list("bob", &ik, Some(&v1), Some(&enc(&v3)), &[enc(&v3)]).is_err());
        assert!(advance_list("bob", &ik, None, Some(&enc(&v3)), &[enc(&v1), enc(&v2)]).is_err());
        assert!(advance_list("bob", &ik, None, Some(&enc(&v2)), &[enc(&v2)]).is_err());
        // A list signed by another key than the pinned identity key (the DS
        // adding a device of its own).
        let forged = list(&key(2), Some(&v3), &[b"phone", b"server"]);
        assert!(advance_list("bob", &ik, Some(&v3), Some(&enc(&forged)), &[enc(&forged)]).is_err());
        // A single-key user stays one.
        assert_eq!(advance_list("bob", &ik, None, None, &[]).unwrap(), None);
    }
}
