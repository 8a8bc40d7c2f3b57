//! Identity: creating and opening a client home (signature key, credential,
//! registration with the DS) and keeping KeyPackages on the DS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use grove_proto as proto;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use tls_codec::Serialize as _;

use super::{Client, ClientConfig, WhoAmI};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::http::DsHttp;
use crate::records::IdentityRecord;
use crate::repo::{self, Repo};
use crate::storage::{GroveProvider, StoreKey};
use crate::tls;

impl Client {
    /// Creates (or resumes creating) an identity in `home`: a new Ed25519 key
    /// and BasicCredential, registration with the DS (proof of possession),
    /// login, and KeyPackages. Running it again with the same user and server
    /// finishes an interrupted or failed registration (with the new
    /// `config.trust`, if it changed: a failed TLS handshake can be retried
    /// with the right pin); another user or server fails with
    /// [`Error::AlreadyInitialized`]. The key is stored before it is
    /// registered, so that a crash can never leave the DS holding a key this
    /// home lost.
    pub async fn create(home: impl AsRef<Path>, config: ClientConfig) -> Result<Client> {
        let home = home.as_ref().to_path_buf();
        let suite = check_config(&config)?;
        let provider = open_store(&home, config.store_key.as_ref())?;
        let existing = Repo::new(provider.storage()).meta().identity()?;
        let (signer, id) = match existing {
            Some(id) => {
                if id.user != config.user || id.server != config.server.trim_end_matches('/') {
                    return Err(Error::AlreadyInitialized {
                        home: home.display().to_string(),
                        user: id.user,
                        server: id.server,
                    });
                }
                let signer = Self::read_signer(&provider, &id, &home)?;
                // A retry with another way to trust the DS (say, the pin an
                // earlier attempt lacked) uses the new one.
                let id = if id.trust != config.trust {
                    let id = IdentityRecord { trust: config.trust.clone(), ..id };
                    provider.transaction(|p| Repo::of(p).meta().set_identity(&id))?;
                    id
                } else {
                    id
                };
                (signer, id)
            }
            None => Self::new_identity(&provider, &config, suite)?,
        };
        let client = Self::assemble(home, provider, Arc::new(signer), id, config.store_key.clone())?;
        let req = client.register_request(config.login_token.clone(), false)?;
        client.ds.register(&req).await?;
        client.ds.login().await?;
        client.ensure_key_packages().await?;
        Ok(client)
    }

    /// The registration of this home, signed (`reset`: an identity reset).
    fn register_request(&self, login_token: Option<String>, reset: bool) -> Result<proto::RegisterRequest> {
        let credential = self.credential().tls_serialize_detached().mls("encode the credential")?;
        let super::devices::Registration { key, proof, device_list } = self.registration()?;
        let scheme = if device_list.is_some() {
            grove_proto::identity::ED25519
        } else {
            self.suite().signature_algorithm() as u16
        };
        Ok(proto::RegisterRequest {
            key: proto::UserKey {
                user: self.id.user.clone(),
                credential,
                signature_key: key,
                signature_scheme: scheme,
            },
            proof,
            registration_token: None,
            login_token,
            device_list,
            reset,
        })
    }

    /// Replaces the registered identity of this home's user with this
    /// home's (`docs/identity.md`, "Reset"): for a user who lost every
    /// device and has no backup, in a home whose `create` failed because
    /// the name is taken (by the lost identity). Every device of the old
    /// identity is out at once; contacts see the identity change and must
    /// accept it; groups drop the old devices on their next sync. Fails when
    /// this home's identity is the registered one already (nothing to reset).
    pub async fn reset_identity(&self, login_token: Option<String>) -> Result<proto::RegisterResponse> {
        if self.id.identity_key.is_empty() || self.id.link.is_some() {
            return Err(Error::InvalidArgument(
                "this home has no identity key of its own to register (a home made before identity keys, or one \
                 waiting to be linked)"
                    .into(),
            ));
        }
        let req = self.register_request(login_token, true)?;
        let resp = self.ds.register(&req).await?;
        if !resp.created {
            return Err(Error::InvalidArgument(format!(
                "nothing to reset: this home's identity ({}) is the one registered for {}",
                resp.fingerprint, self.id.user
            )));
        }
        self.ds.login().await?;
        self.ensure_key_packages().await?;
        Ok(resp)
    }

    /// A new signature key and identity record, stored together.
    fn new_identity(
        provider: &GroveProvider,
        config: &ClientConfig,
        suite: Ciphersuite,
    ) -> Result<(SignatureKeyPair, IdentityRecord)> {
        let signer = SignatureKeyPair::new(suite.signature_algorithm()).mls("generate the signature key")?;
        let mut id = IdentityRecord::for_device(config, signer.public());
        // A new home gets an identity key, and this device is its first.
        let (identity, cert, list) = super::devices::first_device(&config.user, &signer);
        super::devices::set_identity(&mut id, &identity, &cert, &list);
        provider.transaction(|p| -> Result<()> {
            signer.store(p.storage())?;
            Repo::of(p).meta().set_identity(&id)
        })?;
        Ok((signer, id))
    }

    /// Opens the identity in `home` (no network access). A home encrypted
    /// at rest needs [`open_with_key`](Self::open_with_key).
    pub fn open(home: impl AsRef<Path>) -> Result<Client> {
        Self::open_with_key(home, None)
    }

    /// Opens the identity in `home`, encrypted at rest under `store_key`
    /// (see `storage/seal.rs`). A home in clear opened with a key is
    /// encrypted on the way; a sealed home fails without its key
    /// (`store_key_required`) or with another (`wrong_store_key`), and then
    /// nothing is changed.
    pub fn open_with_key(home: impl AsRef<Path>, store_key: Option<StoreKey>) -> Result<Client> {
        let home = home.as_ref().to_path_buf();
        let db = crate::storage::SledStorage::db_path(&home);
        if !db.exists() && !crate::storage::seal::sealing_path(&home).exists() {
            return Err(Error::NotInitialized(home.display().to_string()));
        }
        let provider = open_store(&home, store_key.as_ref())?;
        let id = Repo::new(provider.storage())
            .meta()
            .identity()?
            .ok_or_else(|| Error::NotInitialized(home.display().to_string()))?;
        let signer = Self::read_signer(&provider, &id, &home)?;
        // A single-key home of an earlier release: its key becomes the
        // identity key, and a new device key signs from now on.
        let (signer, id) = if id.identity_key.is_empty() && id.link.is_none() {
            super::upgrade::upgrade_local(&provider, &signer, id)?
        } else {
            (signer, id)
        };
        Self::assemble(home, provider, Arc::new(signer), id, store_key)
    }

    pub(super) fn read_signer(provider: &GroveProvider, id: &IdentityRecord, home: &Path) -> Result<SignatureKeyPair> {
        let suite = Self::suite_of(id)?;
        SignatureKeyPair::read(provider.storage(), &id.signature_key, suite.signature_algorithm())
            .ok_or_else(|| repo::corrupt(&format!("signature key in {}", home.display()), "missing"))
    }

    pub(super) fn suite_of(id: &IdentityRecord) -> Result<Ciphersuite> {
        Ciphersuite::try_from(id.ciphersuite)
            .map_err(|_| Error::InvalidArgument(format!("unknown ciphersuite {}", id.ciphersuite)))
    }

    pub(super) fn assemble(
        home: PathBuf,
        provider: GroveProvider,
        signer: Arc<SignatureKeyPair>,
        id: IdentityRecord,
        store_key: Option<StoreKey>,
    ) -> Result<Client> {
        let http = tls::http_client(&id.server, &id.trust)?;
        let mut ds = DsHttp::new(http, &id.server, &id.user, signer.clone(), !id.identity_key.is_empty());
        if let Some(link) = &id.link {
            ds = ds.pending_link(&link.code);
        }
        if !id.legacy_key.is_empty() {
            // Upgraded from a single key: the first login publishes the list.
            let scheme = Self::suite_of(&id)?.signature_algorithm();
            if let Some(legacy) = SignatureKeyPair::read(provider.storage(), &id.legacy_key, scheme) {
                ds = ds.upgrading(Arc::new(legacy), id.device_list.clone());
            }
        }
        let retry_budget_ms = std::sync::atomic::AtomicU64::new(super::DEFAULT_RETRY_BUDGET.as_millis() as u64);
        Ok(Client {
            home,
            provider,
            signer,
            id,
            ds,
            fault: Mutex::new(None),
            retry_budget_ms,
            clock_offset_secs: std::sync::atomic::AtomicU64::new(0),
            ops: tokio::sync::Mutex::new(()),
            lists_checked: Mutex::new(std::collections::HashMap::new()),
            store_key,
            pin_keys: Mutex::new(std::collections::HashMap::new()),
            kt: Mutex::new(super::kt::KtMemory::default()),
        })
    }

    pub(super) fn suite(&self) -> Ciphersuite {
        // invariant: the identity record's suite was checked by `create`.
        Ciphersuite::try_from(self.id.ciphersuite).unwrap_or(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
    }

    /// This device's credential: its certificate, or (a home made before
    /// identity keys) the bare user name.
    pub(super) fn credential(&self) -> Credential {
        if self.id.device_credential.is_empty() {
            BasicCredential::new(self.id.user.as_bytes().to_vec()).into()
        } else {
            BasicCredential::new(self.id.device_credential.clone()).into()
        }
    }

    pub(super) fn cwk(&self) -> CredentialWithKey {
        CredentialWithKey { credential: self.credential(), signature_key: self.signer.public().into() }
    }

    /// User, server and own fingerprint.
    pub fn whoami(&self) -> WhoAmI {
        WhoAmI {
            user: self.id.user.clone(),
            server: self.id.server.clone(),
            fingerprint: proto::fingerprint(self.identity_public()),
            ciphersuite: self.id.ciphersuite,
        }
    }

    /// Tops up KeyPackages on the DS: the configured number of one-time
    /// packages plus one last-resort package (replaced after it was used).
    /// Returns the counts now stored.
    pub async fn ensure_key_packages(&self) -> Result<proto::KeyPackageCountResponse> {
        let counts = self.ds.key_package_count(self.id.ciphersuite).await?;
        let lr_used = self.repo().meta().last_resort_used()?;
        let need = self.id.key_packages.saturating_sub(counts.one_time);
        let need_lr = !counts.last_resort || lr_used;
        if need == 0 && !need_lr {
            return Ok(counts);
        }
        let messages = self.build_key_packages(need, need_lr)?;
        let body = proto::KeyPackageUploadBody { key_packages: messages.into_iter().map(Into::into).collect() }
            .tls_serialize_detached()
            .mls("encode the upload")?;
        self.ds.upload_key_packages(body).await
    }

    /// Builds `one_time` KeyPackages (and a last-resort one if asked), their
    /// private parts stored before the packages leave the device.
    fn build_key_packages(&self, one_time: u64, last_resort: bool) -> Result<Vec<Vec<u8>>> {
        let suite = self.suite();
        let cwk = self.cwk();
        self.provider.transaction(|p| -> Result<Vec<Vec<u8>>> {
            let mut out = Vec::new();
            for _ in 0..one_time {
                let kp = KeyPackage::builder()
                    .build(suite, p, self.signer.as_ref(), cwk.clone())
                    .mls("build a key package")?;
                out.push(MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached().mls("encode")?);
            }
            if last_resort {
                let kp = KeyPackage::builder()
                    .mark_as_last_resort()
                    .leaf_node_capabilities(Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build())
                    .build(suite, p, self.signer.as_ref(), cwk.clone())
                    .mls("build the last-resort key package")?;
                let r = kp.key_package().hash_ref(p.crypto()).mls("hash the key package")?;
                Repo::of(p).meta().set_last_resort(r.as_slice())?;
                out.push(MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached().mls("encode")?);
            }
            Ok(out)
        })
    }
}

/// Checks a configuration's server URL and ciphersuite; returns the suite.
pub(super) fn check_config(config: &ClientConfig) -> Result<Ciphersuite> {
    tls::check_url(&config.server)?;
    let suite = Ciphersuite::try_from(config.ciphersuite)
        .map_err(|_| Error::InvalidArgument(format!("unknown ciphersuite {}", config.ciphersuite)))?;
    if !matches!(config.ciphersuite, 1 | 3) {
        return Err(Error::InvalidArgument(format!(
            "ciphersuite {} is not supported by this client (use 1 or 3)",
            config.ciphersuite
        )));
    }
    Ok(suite)
}

/// Opens the store of `home` and brings its app records up to date.
pub(super) fn open_store(home: &Path, store_key: Option<&StoreKey>) -> Result<GroveProvider> {
    let provider = GroveProvider::open_keyed(home, store_key)?;
    repo::migrate(&provider)?;
    Ok(provider)
}
