//! Identity keys and devices (`docs/identity.md`): users' signed device
//! lists (stored, served, and extended only with the identity key's
//! signature), the check that a leaf is a current device of its user, and
//! sessions bound to a device.
//!
//! A user registered before devices existed ("legacy") has no list: its
//! registered key signs its leaves, as before. Once it publishes a list
//! (version 1, signed by that same key, which becomes its identity key), its
//! new leaves must carry device certificates; leaves already in trees stay
//! until they are replaced.

use grove_proto::identity::{self as id, CredentialIdentity, DeviceList};
use openmls::prelude::*;

use super::{now_secs, Ds};
use crate::api;
use crate::error::DsError;
use crate::store::UserRecord;

/// How long a replica trusts a device list it has read before reading it
/// again (bounds how late another replica's revocation takes effect here).
const LIST_CACHE_SECS: u64 = 30;
/// Most users whose lists are cached (the cache is emptied when full).
const LIST_CACHE: usize = 100_000;

/// An authenticated caller: the user, and the device of a user with devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The device id (`grove_proto::identity::device_id`), for a user with a device list.
    pub device: Option<String>,
}

impl Session {
    /// The session's mailbox (`grove_proto::identity::mailbox`).
    pub fn mailbox(&self) -> String {
        id::mailbox(&self.user, self.device.as_deref())
    }
}

/// How a user's leaves are checked.
pub(super) enum Binding {
    /// No device list: the registered credential and key.
    Legacy(UserRecord),
    /// The identity key and the latest device list.
    Devices(UserRecord, Box<DeviceList>),
}

impl Binding {
    /// Checks that a leaf (credential, signature key) is one of this user's:
    /// its registered binding, or a certified device in the latest list.
    pub(super) fn check_leaf(&self, user: &str, credential: &Credential, key: &[u8]) -> Result<(), String> {
        let identity = credential_identity(credential)?;
        match (self, identity) {
            (Binding::Legacy(rec), CredentialIdentity::Legacy(_)) => {
                let bytes = tls_codec::Serialize::tls_serialize_detached(credential).map_err(|e| e.to_string())?;
                if bytes == rec.credential.as_slice() && key == rec.signature_key.as_slice() {
                    Ok(())
                } else {
                    Err(format!("{user} is not registered with this credential and signature key"))
                }
            }
            (Binding::Legacy(_), CredentialIdentity::Device(_)) => {
                Err(format!("{user} has no device list, so a device certificate cannot be checked"))
            }
            (Binding::Devices(..), CredentialIdentity::Legacy(_)) => {
                Err(format!("{user} has devices: a credential without a device certificate is not accepted"))
            }
            (Binding::Devices(rec, list), CredentialIdentity::Device(cert)) => {
                cert.verify_for(user, rec.signature_key.as_slice(), key).map_err(|e| e.to_string())?;
                if list.contains(key) {
                    Ok(())
                } else {
                    Err(format!("device {} is not in {user}'s device list", cert.device_id()))
                }
            }
        }
    }
}

/// What a BasicCredential's identity says (a certificate or a bare name).
pub(super) fn credential_identity(credential: &Credential) -> Result<CredentialIdentity, String> {
    let basic = BasicCredential::try_from(credential.clone()).map_err(|_| "not a BasicCredential".to_string())?;
    id::device_credential_identity(basic.identity()).map_err(|e| e.to_string())
}

impl Ds {
    /// The latest device list of `user` (verified when it was stored), from
    /// this replica's cache or the store.
    pub(super) async fn latest_device_list(&self, user: &str) -> Result<Option<DeviceList>, DsError> {
        let now = now_secs();
        if let Some((list, at)) = self.device_lists.lock().ok().and_then(|m| m.get(user).cloned()) {
            if at + LIST_CACHE_SECS > now {
                return Ok(list);
            }
        }
        let list = match self.store.latest_device_list(user).await? {
            Some(bytes) => Some(DeviceList::decode(&bytes).map_err(|e| DsError::Internal(format!("stored {e}")))?),
            None => None,
        };
        self.cache_list(user, list.clone());
        Ok(list)
    }

    pub(super) fn cache_list(&self, user: &str, list: Option<DeviceList>) {
        if let Ok(mut m) = self.device_lists.lock() {
            if m.len() >= LIST_CACHE {
                m.clear();
            }
            m.insert(user.to_string(), (list, now_secs()));
        }
    }

    /// How `user`'s leaves are checked.
    pub(super) async fn binding(&self, user: &str) -> Result<Binding, DsError> {
        let rec = self.registered(user).await?;
        Ok(match self.latest_device_list(user).await? {
            Some(list) => Binding::Devices(rec, Box::new(list)),
            None => Binding::Legacy(rec),
        })
    }

    /// The session of a bearer token; a device's token stops working once
    /// its device is no longer in the list (within 30 s, the list cache, on
    /// other replicas).
    pub async fn check_token(&self, token: &str) -> Result<Session, DsError> {
        let t = self.auth.check_token(&*self.store, token).await?;
        if let Some(device) = &t.device {
            let current = self.latest_device_list(&t.user).await?;
            if current.is_none_or(|l| l.device(device).is_none()) {
                return Err(DsError::DeviceRevoked { user: t.user });
            }
        }
        Ok(Session { user: t.user, device: t.device })
    }

    /// The key that signs `user`'s login: the registered key without a
    /// device list, else `device_key`, which must be in the latest list.
    /// Returns the key, its scheme, and the device id.
    pub(super) async fn login_key(
        &self,
        user: &str,
        device_key: Option<&[u8]>,
    ) -> Result<(Vec<u8>, u16, Option<String>), DsError> {
        match (self.binding(user).await?, device_key) {
            (Binding::Legacy(rec), None) => Ok((rec.signature_key.into(), rec.signature_scheme, None)),
            (Binding::Legacy(_), Some(_)) => Err(DsError::DeviceListInvalid(format!(
                "{user} has no device list: log in with the registered key, without device_key"
            ))),
            (Binding::Devices(..), None) => Err(DsError::DeviceRevoked { user: user.to_string() }),
            (Binding::Devices(_, list), Some(key)) => {
                let entry = list
                    .tbs
                    .devices
                    .iter()
                    .find(|d| d.device_key.as_slice() == key)
                    .ok_or_else(|| DsError::DeviceRevoked { user: user.to_string() })?;
                Ok((key.to_vec(), entry.signature_scheme, Some(entry.id())))
            }
        }
    }

    /// The signature key of `user`'s `device` (from its latest list), or the
    /// registered key of a user without devices, with its scheme.
    pub(super) async fn signing_key(&self, user: &str, device: Option<&str>) -> Result<(Vec<u8>, u16), DsError> {
        match (self.binding(user).await?, device) {
            (Binding::Legacy(rec), None) => Ok((rec.signature_key.into(), rec.signature_scheme)),
            (Binding::Devices(_, list), Some(d)) => list
                .device(d)
                .map(|e| (e.device_key.as_slice().to_vec(), e.signature_scheme))
                .ok_or_else(|| DsError::DeviceRevoked { user: user.to_owned() }),
            _ => Err(DsError::DeviceRevoked { user: user.to_owned() }),
        }
    }

    /// Checks the first device list and certificate of a registration with
    /// an identity key: version 1, signed by `identity_key`, holding the
    /// device whose certificate `credential` carries.
    pub(super) fn check_first_list(
        &self,
        user: &str,
        identity_key: &[u8],
        credential: &Credential,
        list: &[u8],
    ) -> Result<DeviceList, DsError> {
        let invalid = |e: String| DsError::DeviceListInvalid(e);
        let list = DeviceList::decode(list).map_err(|e| invalid(e.to_string()))?;
        list.verify(user, identity_key).map_err(|e| invalid(e.to_string()))?;
        if list.version() != 1 {
            return Err(invalid(format!("a registration carries version 1, not {}", list.version())));
        }
        let cert = match credential_identity(credential).map_err(invalid)? {
            CredentialIdentity::Device(c) => c,
            CredentialIdentity::Legacy(_) => {
                return Err(invalid("with a device list, the credential must carry a device certificate".into()))
            }
        };
        let device_key = cert.tbs.device_key.as_slice().to_vec();
        cert.verify_for(user, identity_key, &device_key).map_err(|e| invalid(e.to_string()))?;
        if !list.contains(&device_key) {
            return Err(invalid("the credential's device is not in the device list".into()));
        }
        Ok(list)
    }

    /// Publishes the next version of the caller's device list. It must be
    /// signed by the user's identity key (the registered key) and follow the
    /// latest stored version (or be version 1, for a user upgrading from a
    /// single key). A revoked device cannot publish.
    pub async fn publish_device_list(
        &self,
        caller: &Session,
        user: &str,
        bytes: &[u8],
    ) -> Result<api::DeviceListPublished, DsError> {
        if caller.user != user {
            return Err(DsError::NotAMember);
        }
        self.publish_list(user, bytes).await
    }

    /// Publishes the next version of `user`'s device list without a token:
    /// for a device restored from a backup, which has the identity key but
    /// no listed device yet. The identity key's signature on the list (the
    /// successor of the stored one) is the authentication, and the app's
    /// login vouches for the user when the DS requires one.
    pub async fn restore_device_list(
        &self,
        user: &str,
        req: &api::DeviceListRestoreRequest,
    ) -> Result<api::DeviceListPublished, DsError> {
        api::UserName::parse(user)?;
        if let Some(login) = &self.limits.login {
            login.verify(req.login_token.as_deref(), user)?;
        }
        self.publish_list(user, &req.device_list).await
    }

    /// Stores `bytes` as `user`'s next device list if the identity key
    /// signed it and it follows the stored one.
    async fn publish_list(&self, user: &str, bytes: &[u8]) -> Result<api::DeviceListPublished, DsError> {
        let rec = self.registered(user).await?;
        let invalid = |e: id::IdentityError| DsError::DeviceListInvalid(e.to_string());
        let next = DeviceList::decode(bytes).map_err(invalid)?;
        next.verify(user, rec.signature_key.as_slice()).map_err(invalid)?;
        // Read the store, not the cache: the check must see every replica's writes.
        let latest = match self.store.latest_device_list(user).await? {
            Some(b) => Some(DeviceList::decode(&b).map_err(|e| DsError::Internal(format!("stored {e}")))?),
            None => None,
        };
        match &latest {
            Some(l) => l.check_successor(&next).map_err(|e| DsError::DeviceListConflict(e.to_string()))?,
            None if next.version() != 1 => {
                return Err(DsError::DeviceListConflict(format!(
                    "{user} has no device list yet; the first is version 1, not {}",
                    next.version()
                )))
            }
            None => {}
        }
        if latest.as_ref().is_some_and(|l| l.version() == next.version()) {
            return Ok(api::DeviceListPublished { version: next.version() });
        }
        if !self.store.append_device_list(user, next.version(), bytes).await? {
            return Err(DsError::DeviceListConflict(format!("version {} was published meanwhile", next.version())));
        }
        self.persist().await?;
        self.kt.mark(user);
        tracing::info!(user, version = next.version(), devices = next.tbs.devices.len(), "device list published");
        self.cache_list(user, Some(next.clone()));
        Ok(api::DeviceListPublished { version: next.version() })
    }

    /// The device lists of `user` with a version above `after`.
    pub async fn device_lists_of(&self, user: &str, after: u64) -> Result<api::DeviceListsResponse, DsError> {
        api::UserName::parse(user)?;
        self.registered(user).await?;
        let lists = self.store.device_lists(user, after).await?;
        Ok(api::DeviceListsResponse { lists: lists.into_iter().map(api::DeviceListBytes).collect() })
    }
}
