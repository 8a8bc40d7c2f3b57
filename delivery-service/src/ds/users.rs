//! Users and authentication: registration with proof of possession, one-time
//! challenges, bearer tokens, the user directory, and the check that a leaf in
//! a tree, commit or KeyPackage is a registered binding.

use openmls::prelude::*;
use tls_codec::Deserialize as _;

use super::runtime::identity_of;
use super::{now_secs, Ds};
use crate::api;
use crate::api::UserName;
use crate::auth;
use crate::error::DsError;
use crate::store::{RegisterOutcome, UserRecord};

/// How long a replica trusts a user record it has read.
const USER_CACHE_SECS: u64 = 30;

impl Ds {
    /// Registers a user after checking the proof of possession.
    pub async fn register(&self, req: api::RegisterRequest) -> Result<api::RegisterResponse, DsError> {
        let api::RegisterRequest { key: k, proof, registration_token, login_token, device_list, reset } = req;
        UserName::parse(&k.user)?;
        if let Some(login) = &self.limits.login {
            login.verify(login_token.as_deref(), &k.user)?;
        }
        if let Some(expected) = &self.limits.registration_token {
            use sha2::Digest as _;
            let given = registration_token.as_deref().unwrap_or("");
            // Compare digests so the comparison time does not depend on the token.
            if sha2::Sha256::digest(given.as_bytes()) != sha2::Sha256::digest(expected.as_bytes()) {
                return Err(DsError::RegistrationClosed);
            }
        }
        let scheme =
            auth::scheme_from_u16(k.signature_scheme).ok_or(DsError::UnsupportedSignatureScheme(k.signature_scheme))?;
        let credential = Credential::tls_deserialize_exact(&k.credential)
            .map_err(|e| DsError::InvalidCredential(format!("credential is not a TLS-encoded MLS Credential: {e}")))?;
        let first_list = match &device_list {
            Some(list) => {
                if k.signature_scheme != grove_proto::identity::ED25519 {
                    return Err(DsError::DeviceListInvalid("an identity key is Ed25519 (scheme 0x0807)".into()));
                }
                Some(self.check_first_list(&k.user, &k.signature_key, &credential, list)?)
            }
            None => None,
        };
        match identity_of(&credential) {
            Some(id) if id == k.user => {}
            Some(id) => {
                return Err(DsError::InvalidCredential(format!(
                    "the credential's identity {id:?} is not the user name {:?}",
                    k.user
                )))
            }
            None => {
                return Err(DsError::InvalidCredential(
                    "the credential must be a BasicCredential with a UTF-8 identity".into(),
                ))
            }
        }
        if k.signature_key.is_empty() || k.signature_key.len() > 133 {
            return Err(DsError::InvalidSignatureKey);
        }
        auth::verify(
            &self.crypto,
            scheme,
            &auth::signed_bytes(auth::REGISTER_LABEL, &k.user, &k.signature_key),
            &k.signature_key,
            &proof,
        )?;
        let record = UserRecord {
            name: k.user.as_bytes().to_vec().into(),
            credential: k.credential.clone().into(),
            signature_key: k.signature_key.clone().into(),
            signature_scheme: k.signature_scheme,
            registered_at: now_secs(),
        };
        let outcome = self.store.register_user(&record).await?;
        if outcome == RegisterOutcome::NameTaken {
            return match (reset, &device_list) {
                (true, Some(list)) => self.reset_identity(&record, list).await,
                (true, None) => Err(DsError::DeviceListInvalid("an identity reset carries the new device list".into())),
                (false, _) => Err(DsError::UserExists(k.user)),
            };
        }
        if let (Some(list), Some(bytes)) = (&first_list, &device_list) {
            // A retried registration finds version 1 stored already: the
            // same one is fine, another is a conflict.
            if !self.store.append_device_list(&k.user, 1, bytes).await? {
                let stored = self.store.device_lists(&k.user, 0).await?;
                if stored.first() != Some(bytes) {
                    return Err(DsError::UserExists(k.user));
                }
            }
            self.cache_list(&k.user, Some(list.clone()));
        }
        self.persist().await?;
        self.kt.mark(&k.user);
        tracing::info!(user = %k.user, created = (outcome == RegisterOutcome::Created), "registration");
        Ok(api::RegisterResponse {
            user: k.user,
            fingerprint: api::fingerprint(&k.signature_key),
            created: outcome == RegisterOutcome::Created,
        })
    }

    /// An identity reset: `record` (a new identity key, its proof checked)
    /// replaces the user's registration, and its device lists start again
    /// at `list` (version 1, checked). Every device of the old identity is
    /// out at once (its token names a device the new list does not hold).
    /// With `--auth-jwt-key`, the caller's login token was checked like a
    /// registration's; without it, anyone can reset any name, as anyone can
    /// take a free one (the DS warns at startup that registration is open).
    async fn reset_identity(&self, record: &UserRecord, list: &[u8]) -> Result<api::RegisterResponse, DsError> {
        let user = record.name_str();
        if !self.store.reset_user(record, list).await? {
            return Err(DsError::UnknownUser(user));
        }
        self.persist().await?;
        self.kt.mark(&user);
        if let Ok(mut m) = self.users.lock() {
            m.remove(&user);
        }
        let first = grove_proto::identity::DeviceList::decode(list).map_err(|e| DsError::Internal(e.to_string()))?;
        self.cache_list(&user, Some(first));
        tracing::warn!(user = %user, fingerprint = %api::fingerprint(record.signature_key.as_slice()), "identity reset");
        Ok(api::RegisterResponse {
            user,
            fingerprint: api::fingerprint(record.signature_key.as_slice()),
            created: true,
        })
    }

    /// A registered user, from the cache or the store. A name is re-bound
    /// only by an identity reset, so a cached record is trusted for
    /// [`USER_CACHE_SECS`] (how late another replica's reset takes effect here).
    pub(super) async fn registered(&self, user: &str) -> Result<UserRecord, DsError> {
        let now = now_secs();
        if let Some((u, at)) = self.users.lock().ok().and_then(|m| m.get(user).cloned()) {
            if at + USER_CACHE_SECS > now {
                return Ok(u);
            }
        }
        let rec = self.store.user(user).await?.ok_or_else(|| DsError::UnknownUser(user.to_string()))?;
        if let Ok(mut m) = self.users.lock() {
            if m.len() >= super::USER_CACHE {
                m.clear();
            }
            m.insert(user.to_string(), (rec.clone(), now));
        }
        Ok(rec)
    }

    /// Checks a scraper's bearer token against `--metrics-token`.
    pub fn check_metrics_token(&self, given: Option<&str>) -> Result<(), DsError> {
        use sha2::Digest as _;
        let Some(expected) = &self.limits.metrics_token else {
            return Err(DsError::MetricsDisabled);
        };
        let given = given.ok_or(DsError::AuthRequired)?;
        if sha2::Sha256::digest(given.as_bytes()) == sha2::Sha256::digest(expected.as_bytes()) {
            Ok(())
        } else {
            Err(DsError::TokenInvalid)
        }
    }

    /// Issues a one-time challenge for a registered user.
    pub async fn challenge(&self, user: &str) -> Result<api::ChallengeResponse, DsError> {
        UserName::parse(user)?;
        self.registered(user).await?;
        let c = self.auth.new_challenge(&*self.store, user).await?;
        Ok(api::ChallengeResponse { challenge: c.to_vec(), expires_in: auth::CHALLENGE_TTL.as_secs() })
    }

    /// Exchanges a signed challenge for a bearer token.
    pub async fn token(&self, req: &api::TokenRequest) -> Result<api::TokenResponse, DsError> {
        UserName::parse(&req.user)?;
        let (key, scheme, device) = self.login_key(&req.user, req.device_key.as_deref()).await?;
        self.auth.take_challenge(&*self.store, &req.user, &req.challenge).await?;
        let scheme = auth::scheme_from_u16(scheme)
            .ok_or_else(|| DsError::Internal("stored signature scheme unsupported".into()))?;
        auth::verify(
            &self.crypto,
            scheme,
            &auth::signed_bytes(auth::AUTH_LABEL, &req.user, &req.challenge),
            &key,
            &req.signature,
        )?;
        let token = self.auth.issue_token(&*self.store, &req.user, device).await?;
        self.persist().await?;
        Ok(api::TokenResponse { token, expires_in: self.auth.token_ttl().as_secs() })
    }

    /// A user's registered credential and key.
    pub async fn lookup_user(&self, user: &str) -> Result<api::UserResponse, DsError> {
        let name = UserName::parse(user)?;
        let u = self.registered(user).await?;
        let device_list = self.store.latest_device_list(user).await?;
        Ok(api::UserResponse {
            device_list,
            fingerprint: api::fingerprint(u.signature_key.as_slice()),
            key: api::UserKey {
                user: name.as_str().to_owned(),
                credential: u.credential.as_slice().to_vec(),
                signature_key: u.signature_key.into(),
                signature_scheme: u.signature_scheme,
            },
        })
    }

    /// Checks that a leaf (credential, signature key) is a registered
    /// binding: a legacy user's registered credential and key, or a current
    /// certified device of a user with a device list. Returns the leaf's
    /// mailbox (`grove_proto::identity::mailbox`).
    pub(super) async fn check_registered_member(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<String, DsError> {
        let identity = super::devices::credential_identity(credential)
            .map_err(|_| DsError::UnregisteredMember { user: "<not a Grove credential>".into() })?;
        let user = identity.user();
        let Ok(binding) = self.binding(&user).await else { return Err(DsError::UnregisteredMember { user }) };
        match binding.check_leaf(&user, credential, signature_key) {
            Ok(()) => Ok(identity.mailbox()),
            Err(why) => {
                tracing::debug!(user, why, "leaf refused");
                Err(DsError::UnregisteredMember { user })
            }
        }
    }
}
