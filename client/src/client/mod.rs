//! [`Client`]: one user's identity, groups and messages, on a crash-safe local
//! store, talking to one Delivery Service.
//!
//! Every MLS operation runs inside one storage transaction together with the
//! app's bookkeeping (cursor, message history, pending commit, outbox), so a
//! crash leaves either the state before or the state after the operation.
//! Network calls happen between transactions, never inside one.
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
//!   redone (at most [`MAX_ATTEMPTS`]). After a crash or an unknown outcome,
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
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tls_codec::{Deserialize as _, Serialize as _};

use crate::error::{Error, MlsResultExt as _, Result};
use crate::http::DsHttp;
use crate::records::{
    group_prefix, message_key, ns, Contact, Envelope, GroupRecord, GroupState, HistoryPolicy, IdentityRecord,
    OutboxEntry, PendingCommit, StoredMessage,
};

mod resources;
use crate::storage::{DefaultCodec, GroveProvider, TxnProvider, ValueCodec};
use crate::tls::{self, TrustMode};
pub use resources::{Progress, ResourceHistoryEntry, ResourceInfo};

/// How many times an operation is redone after losing a commit race (409).
pub const MAX_ATTEMPTS: u32 = 5;
/// Default number of one-time KeyPackages kept on the DS.
pub const DEFAULT_KEY_PACKAGES: u64 = 10;
/// Past epochs whose secrets are kept, to read application messages sent just
/// before a commit (the DS accepts them within its epoch window).
const MAX_PAST_EPOCHS: usize = 2;
const PAGE: u32 = 500;

/// Settings for [`Client::create`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// DS base URL (`https://...`, or `http://` to loopback only).
    pub server: String,
    /// User name (also the MLS BasicCredential identity).
    pub user: String,
    /// How the DS's TLS certificate is verified.
    pub trust: TrustMode,
    /// Ciphersuite code point: 0x0001 (default) or 0x0003.
    pub ciphersuite: u16,
    /// One-time KeyPackages to keep on the DS.
    pub key_packages: u64,
}

impl ClientConfig {
    /// Defaults: system roots, ciphersuite 0x0001, [`DEFAULT_KEY_PACKAGES`].
    pub fn new(server: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            user: user.into(),
            trust: TrustMode::SystemRoots,
            ciphersuite: 1,
            key_packages: DEFAULT_KEY_PACKAGES,
        }
    }
}

/// Faults a test can inject to simulate a crash at a precise point (cargo
/// feature `fault-injection`, which only this crate's tests turn on: without
/// it nothing can arm a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub enum Fault {
    /// Return right after the DS accepted a commit (201), before merging it:
    /// what a crash at that point leaves on disk.
    StopAfterCommitAccepted,
    /// Return right after an outgoing message was encrypted and stored, before
    /// it is posted: what a crash at that point leaves on disk.
    StopBeforeSend,
}

/// `whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User name.
    pub user: String,
    /// DS URL.
    pub server: String,
    /// Hex SHA-256 of the own signature key.
    pub fingerprint: String,
    /// Ciphersuite code point.
    pub ciphersuite: u16,
}

/// A group in [`Client::groups`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Group id (base64url, no padding).
    pub id: String,
    /// Local name, once learned from the encrypted group data.
    pub name: Option<String>,
    /// Current epoch.
    pub epoch: u64,
    /// `active`, `leaving` or `left`.
    pub state: GroupState,
    /// Number of members.
    pub members: usize,
    /// Last log sequence number processed.
    pub cursor: u64,
}

/// Pinning status of a user's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// This client itself.
    Own,
    /// Pinned on first use, not verified out of band.
    Pinned,
    /// Pinned and verified (safety number confirmed).
    Verified,
    /// The key differs from the pinned one.
    Changed,
}

/// A member in [`Client::members`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberInfo {
    /// User name.
    pub user: String,
    /// Leaf index.
    pub leaf_index: u32,
    /// Hex SHA-256 of the member's signature key.
    pub fingerprint: String,
    /// Pinning status.
    pub key: KeyStatus,
}

/// A contact's pinned key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactInfo {
    /// User name.
    pub user: String,
    /// Fingerprint of the pinned key.
    pub fingerprint: String,
    /// Verified out of band.
    pub verified: bool,
    /// Fingerprint of a different key seen later, if any.
    pub pending_fingerprint: Option<String>,
}

/// Safety number between this client and another user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SafetyNumber {
    /// The other user.
    pub user: String,
    /// 60 digits in 12 groups, identical on both sides.
    pub number: String,
    /// Whether the user is now marked verified.
    pub verified: bool,
}

/// What a [`Client::sync`] did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// Groups joined from Welcomes (ids).
    pub joined: Vec<String>,
    /// New messages stored.
    pub messages: usize,
    /// Groups this client was removed from (ids).
    pub left: Vec<String>,
    /// Commits made for pending proposals (e.g. someone's leave request).
    pub commits: usize,
    /// Log entries that could not be decrypted (e.g. sent before this client
    /// joined an epoch it has keys for) and were skipped.
    pub undecryptable: usize,
    /// Welcomes that could not be processed (e.g. for a KeyPackage this store
    /// no longer has) and were dropped.
    pub failed_welcomes: usize,
    /// Groups whose log could not be processed (for example a commit other
    /// members refuse too, such as one with a bad confirmation tag): `"<id>:
    /// <error>"`. Such a group stays at its cursor; the other groups went on.
    pub errors: Vec<String>,
}

/// What an [`Client::add_members`]/[`Client::remove_members`] style operation did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitOutcome {
    /// Group id.
    pub group: String,
    /// Epoch after the operation.
    pub epoch: u64,
    /// Whether a commit was made (false if nothing was left to do).
    pub committed: bool,
    /// How many attempts it took (more than 1 after losing commit races).
    pub attempts: u32,
}

enum CommitOp {
    Add(Vec<KeyPackage>),
    Remove(Vec<String>),
    Update,
    Pending,
}

fn b64url(id: &[u8]) -> String {
    proto::group_id_to_path(id)
}

fn hash(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

fn identity_of(credential: &Credential) -> String {
    BasicCredential::try_from(credential.clone())
        .map(|c| String::from_utf8_lossy(c.identity()).into_owned())
        .unwrap_or_else(|_| "<non-basic credential>".to_owned())
}

fn create_config(suite: Ciphersuite) -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(suite)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .build()
}

/// The safety number of two users: SHA-512 over both (user, key) pairs in
/// sorted order, shown as 12 groups of 5 digits. Both sides compute the same.
pub fn safety_number(a_user: &str, a_key: &[u8], b_user: &str, b_key: &[u8]) -> String {
    let mut parts = [(a_user.as_bytes(), a_key), (b_user.as_bytes(), b_key)];
    parts.sort();
    let mut h = sha2::Sha512::new();
    h.update(b"grove-safety-number-v1");
    for (u, k) in parts {
        h.update((u.len() as u64).to_be_bytes());
        h.update(u);
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
    }
    let d = h.finalize();
    d.chunks(5)
        .take(12)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One user's Grove client. See the [module docs](self).
pub struct Client {
    home: PathBuf,
    provider: GroveProvider,
    signer: Arc<SignatureKeyPair>,
    id: IdentityRecord,
    ds: DsHttp,
    fault: Mutex<Option<Fault>>,
    /// Serializes this client's state-changing operations (an operation
    /// spans several transactions and network calls; two at once on one group
    /// would race for its single pending commit).
    ops: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("home", &self.home).field("user", &self.id.user).finish_non_exhaustive()
    }
}

impl Client {
    /// Creates (or resumes creating) an identity in `home`: a new Ed25519 key
    /// and BasicCredential, registration with the DS (proof of possession),
    /// login, and KeyPackages. Running it again with the same user and server
    /// finishes an interrupted registration; another user or server fails with
    /// [`Error::AlreadyInitialized`].
    pub async fn create(home: impl AsRef<Path>, config: ClientConfig) -> Result<Client> {
        let home = home.as_ref().to_path_buf();
        tls::check_url(&config.server)?;
        let suite = Ciphersuite::try_from(config.ciphersuite)
            .map_err(|_| Error::InvalidArgument(format!("unknown ciphersuite {}", config.ciphersuite)))?;
        if !matches!(config.ciphersuite, 1 | 3) {
            return Err(Error::InvalidArgument(format!(
                "ciphersuite {} is not supported by this client (use 1 or 3)",
                config.ciphersuite
            )));
        }
        let provider = GroveProvider::open(&home)?;
        let existing: Option<IdentityRecord> = provider.storage().get_app_value(ns::META, b"identity")?;
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
                (signer, id)
            }
            None => {
                let signer = SignatureKeyPair::new(suite.signature_algorithm()).mls("generate the signature key")?;
                let id = IdentityRecord {
                    user: config.user.clone(),
                    server: config.server.trim_end_matches('/').to_owned(),
                    ciphersuite: config.ciphersuite,
                    trust: config.trust.clone(),
                    signature_key: signer.public().to_vec(),
                    key_packages: config.key_packages,
                };
                provider.transaction(|p| -> Result<()> {
                    signer.store(p.storage())?;
                    p.storage().put_app_value(ns::META, b"identity", &id)?;
                    Ok(())
                })?;
                (signer, id)
            }
        };
        let client = Self::assemble(home, provider, signer, id)?;
        let credential = client.credential().tls_serialize_detached().mls("encode the credential")?;
        client.ds.register(credential, suite.signature_algorithm() as u16).await?;
        client.ds.login().await?;
        client.ensure_key_packages().await?;
        Ok(client)
    }

    /// Opens the identity in `home` (no network access).
    pub fn open(home: impl AsRef<Path>) -> Result<Client> {
        let home = home.as_ref().to_path_buf();
        if !crate::storage::SledStorage::db_path(&home).exists() {
            return Err(Error::NotInitialized(home.display().to_string()));
        }
        let provider = GroveProvider::open(&home)?;
        let id: IdentityRecord = provider
            .storage()
            .get_app_value(ns::META, b"identity")?
            .ok_or_else(|| Error::NotInitialized(home.display().to_string()))?;
        let signer = Self::read_signer(&provider, &id, &home)?;
        Self::assemble(home, provider, signer, id)
    }

    fn read_signer(provider: &GroveProvider, id: &IdentityRecord, home: &Path) -> Result<SignatureKeyPair> {
        let suite = Self::suite_of(id)?;
        SignatureKeyPair::read(provider.storage(), &id.signature_key, suite.signature_algorithm()).ok_or_else(|| {
            Error::Storage(crate::storage::StorageError::Corrupt {
                what: format!("signature key in {}", home.display()),
                reason: "missing".into(),
            })
        })
    }

    fn suite_of(id: &IdentityRecord) -> Result<Ciphersuite> {
        Ciphersuite::try_from(id.ciphersuite)
            .map_err(|_| Error::InvalidArgument(format!("unknown ciphersuite {}", id.ciphersuite)))
    }

    fn assemble(
        home: PathBuf,
        provider: GroveProvider,
        signer: SignatureKeyPair,
        id: IdentityRecord,
    ) -> Result<Client> {
        let http = tls::http_client(&id.server, &id.trust)?;
        let signer = Arc::new(signer);
        let ds = DsHttp::new(http, &id.server, &id.user, signer.clone());
        Ok(Client { home, provider, signer, id, ds, fault: Mutex::new(None), ops: tokio::sync::Mutex::new(()) })
    }

    /// Arms (or clears) a fault; see [`Fault`]. For crash tests.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fault;
    }

    fn fault(&self) -> Option<Fault> {
        *self.fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.id.user
    }

    fn suite(&self) -> Ciphersuite {
        // invariant: the identity record's suite was checked by `create`.
        Ciphersuite::try_from(self.id.ciphersuite).unwrap_or(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
    }

    fn credential(&self) -> Credential {
        BasicCredential::new(self.id.user.as_bytes().to_vec()).into()
    }

    fn cwk(&self) -> CredentialWithKey {
        CredentialWithKey { credential: self.credential(), signature_key: self.signer.public().into() }
    }

    /// User, server and own fingerprint.
    pub fn whoami(&self) -> WhoAmI {
        WhoAmI {
            user: self.id.user.clone(),
            server: self.id.server.clone(),
            fingerprint: proto::fingerprint(self.signer.public()),
            ciphersuite: self.id.ciphersuite,
        }
    }

    // ---------------------------------------------------------------- key packages

    /// Tops up KeyPackages on the DS: the configured number of one-time
    /// packages plus one last-resort package (replaced after it was used).
    /// Returns the counts now stored.
    pub async fn ensure_key_packages(&self) -> Result<proto::KeyPackageCountResponse> {
        let suite = self.suite();
        let counts = self.ds.key_package_count(self.id.ciphersuite).await?;
        let lr_used: bool = self.provider.storage().get_app_value(ns::META, b"last_resort_used")?.unwrap_or(false);
        let need = self.id.key_packages.saturating_sub(counts.one_time);
        let need_lr = !counts.last_resort || lr_used;
        if need == 0 && !need_lr {
            return Ok(counts);
        }
        let cwk = self.cwk();
        // The private parts are stored before the packages leave the device.
        let messages = self.provider.transaction(|p| -> Result<Vec<Vec<u8>>> {
            let mut out = Vec::new();
            for _ in 0..need {
                let kp = KeyPackage::builder()
                    .build(suite, p, self.signer.as_ref(), cwk.clone())
                    .mls("build a key package")?;
                out.push(MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached().mls("encode")?);
            }
            if need_lr {
                let kp = KeyPackage::builder()
                    .mark_as_last_resort()
                    .leaf_node_capabilities(Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build())
                    .build(suite, p, self.signer.as_ref(), cwk.clone())
                    .mls("build the last-resort key package")?;
                let r = kp.key_package().hash_ref(p.crypto()).mls("hash the key package")?;
                p.storage().put_app(ns::META, b"last_resort", r.as_slice())?;
                p.storage().put_app_value(ns::META, b"last_resort_used", &false)?;
                out.push(MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached().mls("encode")?);
            }
            Ok(out)
        })?;
        let body = proto::KeyPackageUploadBody { key_packages: messages.into_iter().map(Into::into).collect() }
            .tls_serialize_detached()
            .mls("encode the upload")?;
        self.ds.upload_key_packages(body).await
    }

    // ---------------------------------------------------------------- contacts and pinning

    fn contact(&self, user: &str) -> Result<Option<Contact>> {
        Ok(self.provider.storage().get_app_value(ns::CONTACTS, user.as_bytes())?)
    }

    /// Looks `user` up on the DS and checks the key against the pin (pinning
    /// it on first sight). Returns the pinned key.
    pub async fn lookup_user(&self, user: &str) -> Result<ContactInfo> {
        self.pinned_key(user).await?;
        self.contact_info(user)
    }

    /// The pinned key of `user`, checked against what the DS says now.
    async fn pinned_key(&self, user: &str) -> Result<Vec<u8>> {
        let r = self.ds.get_user(user).await?;
        let cred = Credential::tls_deserialize_exact(&r.credential)
            .map_err(|e| Error::Protocol(format!("credential of {user}: {e}")))?;
        if r.user != user || identity_of(&cred) != user {
            return Err(Error::Protocol(format!("the DS answered a lookup of {user} with {}", r.user)));
        }
        self.check_key(user, &r.signature_key)
    }

    /// Checks `seen` against the pinned key of `user`; pins it if nothing is
    /// pinned. On a mismatch, remembers `seen` as pending and fails.
    fn check_key(&self, user: &str, seen: &[u8]) -> Result<Vec<u8>> {
        self.provider.transaction(|p| -> Result<Result<Vec<u8>>> {
            let s = p.storage();
            match s.get_app_value::<Contact>(ns::CONTACTS, user.as_bytes())? {
                None => {
                    s.put_app_value(
                        ns::CONTACTS,
                        user.as_bytes(),
                        &Contact { key: seen.to_vec(), verified: false, pending: None },
                    )?;
                    Ok(Ok(seen.to_vec()))
                }
                Some(c) if c.key == seen => match c.pending {
                    None => Ok(Ok(c.key)),
                    // A different key was seen earlier and not decided on yet:
                    // the warning stays until trust_new_key.
                    Some(pending) => Ok(Err(Error::KeyChanged {
                        user: user.to_owned(),
                        pinned: proto::fingerprint(&c.key),
                        seen: proto::fingerprint(&pending),
                    })),
                },
                Some(mut c) => {
                    let err = Error::KeyChanged {
                        user: user.to_owned(),
                        pinned: proto::fingerprint(&c.key),
                        seen: proto::fingerprint(seen),
                    };
                    c.pending = Some(seen.to_vec());
                    s.put_app_value(ns::CONTACTS, user.as_bytes(), &c)?;
                    Ok(Err(err))
                }
            }
        })?
    }

    /// Pins the keys of group members seen for the first time; marks a
    /// differing key as pending (the user then shows as [`KeyStatus::Changed`]).
    fn pin_members(&self, p: &TxnProvider<'_>, group: &MlsGroup) -> Result<()> {
        for m in group.members() {
            let user = identity_of(&m.credential);
            if user == self.id.user {
                continue;
            }
            let s = p.storage();
            match s.get_app_value::<Contact>(ns::CONTACTS, user.as_bytes())? {
                None => s.put_app_value(
                    ns::CONTACTS,
                    user.as_bytes(),
                    &Contact { key: m.signature_key.clone(), verified: false, pending: None },
                )?,
                Some(c) if c.key == m.signature_key => {}
                Some(mut c) => {
                    c.pending = Some(m.signature_key.clone());
                    s.put_app_value(ns::CONTACTS, user.as_bytes(), &c)?;
                }
            }
        }
        Ok(())
    }

    /// Fails if any member's key differs from its pin (or a different key
    /// seen earlier is still undecided).
    fn check_member_keys(&self, gid: &[u8]) -> Result<()> {
        let g = MlsGroup::load(self.provider.storage(), &GroupId::from_slice(gid))?
            .ok_or_else(|| Error::UnknownGroup(b64url(gid)))?;
        for m in g.members() {
            let user = identity_of(&m.credential);
            if user == self.id.user {
                continue;
            }
            if let Some(c) = self.contact(&user)? {
                let seen = if c.key != m.signature_key { Some(m.signature_key.clone()) } else { c.pending.clone() };
                if let Some(seen) = seen {
                    return Err(Error::KeyChanged {
                        user,
                        pinned: proto::fingerprint(&c.key),
                        seen: proto::fingerprint(&seen),
                    });
                }
            }
        }
        Ok(())
    }

    fn contact_info(&self, user: &str) -> Result<ContactInfo> {
        let c = self.contact(user)?.ok_or_else(|| Error::UnknownContact(user.to_owned()))?;
        Ok(ContactInfo {
            user: user.to_owned(),
            fingerprint: proto::fingerprint(&c.key),
            verified: c.verified,
            pending_fingerprint: c.pending.as_deref().map(proto::fingerprint),
        })
    }

    /// Accepts the new key of `user` (after checking it out of band): the key
    /// seen most recently (or the DS's current key) replaces the pin, and the
    /// user is no longer verified.
    pub async fn trust_new_key(&self, user: &str) -> Result<ContactInfo> {
        let pending = match self.contact(user)?.and_then(|c| c.pending) {
            Some(k) => k,
            None => self.ds.get_user(user).await?.signature_key,
        };
        self.provider.transaction(|p| -> Result<()> {
            p.storage().put_app_value(
                ns::CONTACTS,
                user.as_bytes(),
                &Contact { key: pending.clone(), verified: false, pending: None },
            )?;
            Ok(())
        })?;
        self.contact_info(user)
    }

    /// The safety number with `user` (their key must match the pin); with
    /// `confirm`, marks the user verified.
    pub async fn verify(&self, user: &str, confirm: bool) -> Result<SafetyNumber> {
        let key = self.pinned_key(user).await?;
        let number = safety_number(&self.id.user, self.signer.public(), user, &key);
        if confirm {
            self.provider.transaction(|p| -> Result<()> {
                let mut c: Contact = p
                    .storage()
                    .get_app_value(ns::CONTACTS, user.as_bytes())?
                    .ok_or_else(|| Error::UnknownContact(user.to_owned()))?;
                c.verified = true;
                p.storage().put_app_value(ns::CONTACTS, user.as_bytes(), &c)?;
                Ok(())
            })?;
        }
        let verified = self.contact(user)?.is_some_and(|c| c.verified);
        Ok(SafetyNumber { user: user.to_owned(), number, verified })
    }

    // ---------------------------------------------------------------- groups

    fn group_record(&self, gid: &[u8]) -> Result<GroupRecord> {
        self.provider.storage().get_app_value(ns::GROUPS, gid)?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))
    }

    fn load(p: &TxnProvider<'_>, gid: &[u8]) -> Result<MlsGroup> {
        MlsGroup::load(p.storage(), &GroupId::from_slice(gid))?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))
    }

    /// Resolves a group name or id (base64url) to the group id. A name shared
    /// by several groups fails with [`Error::AmbiguousGroup`].
    pub fn resolve_group(&self, name_or_id: &str) -> Result<Vec<u8>> {
        let all = self.provider.storage().scan_prefix_app(ns::GROUPS, b"")?;
        let mut by_name = Vec::new();
        for (gid, _) in &all {
            if b64url(gid) == name_or_id {
                return Ok(gid.clone());
            }
        }
        for (gid, _) in all {
            let rec = self.group_record(&gid)?;
            if rec.name.as_deref() == Some(name_or_id) {
                by_name.push(gid);
            }
        }
        match by_name.len() {
            0 => Err(Error::UnknownGroup(name_or_id.to_owned())),
            1 => Ok(by_name.remove(0)),
            _ => Err(Error::AmbiguousGroup {
                name: name_or_id.to_owned(),
                ids: by_name.iter().map(|g| b64url(g)).collect(),
            }),
        }
    }

    /// Creates a group named `name` (the name travels only inside MLS
    /// application data) and registers it with the DS, with history policy
    /// [`HistoryPolicy::None`]. Returns its id.
    pub async fn create_group(&self, name: &str) -> Result<String> {
        self.create_group_with(name, HistoryPolicy::None).await
    }

    /// Creates a group named `name` with the given resource history policy
    /// (see [`HistoryPolicy`]). Returns its id.
    pub async fn create_group_with(&self, name: &str, history: HistoryPolicy) -> Result<String> {
        let _op = self.ops.lock().await;
        let suite = self.suite();
        let cwk = self.cwk();
        let (gid, body) = self.provider.transaction(|p| -> Result<(Vec<u8>, Vec<u8>)> {
            let group =
                MlsGroup::new(p, self.signer.as_ref(), &create_config(suite), cwk.clone()).mls("create the group")?;
            let gid = group.group_id().as_slice().to_vec();
            let gi = group.export_group_info(p.crypto(), self.signer.as_ref(), false).mls("export the group info")?;
            let body = proto::GroupCreateBody {
                group_info: gi.tls_serialize_detached().mls("encode")?.into(),
                ratchet_tree: group.export_ratchet_tree().tls_serialize_detached().mls("encode")?.into(),
            }
            .tls_serialize_detached()
            .mls("encode")?;
            let rec = GroupRecord {
                name: Some(name.to_owned()),
                cursor: 0,
                state: GroupState::Active,
                joined_epoch: 0,
                next_local: 0,
                announce_name: false,
                history,
            };
            p.storage().put_app_value(ns::GROUPS, &gid, &rec)?;
            Ok((gid, body))
        })?;
        if let Err(e) = self.ds.create_group(body).await {
            // The DS does not know the group: forget it locally.
            self.provider.transaction(|p| -> Result<()> {
                if let Some(mut g) = MlsGroup::load(p.storage(), &GroupId::from_slice(&gid))? {
                    g.delete(p.storage())?;
                }
                p.storage().remove_app(ns::GROUPS, &gid)?;
                Ok(())
            })?;
            return Err(e);
        }
        self.send_payload(&gid, &Envelope::GroupName { name: name.to_owned(), history: Some(history) }, None).await?;
        Ok(b64url(&gid))
    }

    /// Adds `users` to the group: claims one KeyPackage per user, checks each
    /// package's signature and that its credential and key are the pinned key
    /// of that user, commits, and posts the commit with the Welcome.
    pub async fn add_members(&self, group: &str, users: &[&str]) -> Result<CommitOutcome> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        let suite = self.suite();
        let mut kps = Vec::new();
        for user in users {
            let pinned = self.pinned_key(user).await?;
            let bytes = self.ds.claim(user, self.id.ciphersuite).await?;
            let kp = self.check_key_package(user, &bytes, suite)?;
            let seen = kp.leaf_node().signature_key().as_slice().to_vec();
            if seen != pinned {
                self.check_key(user, &seen)?;
            }
            kps.push(kp);
        }
        let outcome = self.commit(&gid, "add", CommitOp::Add(kps)).await?;
        if outcome.committed {
            let added: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
            self.announce_to_new_members(&gid, &added).await?;
        }
        Ok(outcome)
    }

    fn check_key_package(&self, user: &str, bytes: &[u8], suite: Ciphersuite) -> Result<KeyPackage> {
        let bad = |reason: String| Error::BadKeyPackage { user: user.to_owned(), reason };
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| bad(format!("not an MLSMessage: {e}")))?;
        let MlsMessageBodyIn::KeyPackage(kp_in) = msg.extract() else {
            return Err(bad("not a KeyPackage".into()));
        };
        let kp = kp_in
            .validate(self.provider.crypto(), ProtocolVersion::Mls10)
            .map_err(|e| bad(format!("does not verify: {e:?}")))?;
        if kp.ciphersuite() != suite {
            return Err(bad(format!("ciphersuite {:?}, expected {suite:?}", kp.ciphersuite())));
        }
        let who = identity_of(kp.leaf_node().credential());
        if who != user {
            return Err(bad(format!("its credential names {who}")));
        }
        Ok(kp)
    }

    /// Removes `users` from the group (one commit).
    pub async fn remove_members(&self, group: &str, users: &[&str]) -> Result<CommitOutcome> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        let members = self.members(group)?;
        for u in users {
            if !members.iter().any(|m| m.user == *u) {
                return Err(Error::NotInGroup { user: (*u).to_owned(), group: group.to_owned() });
            }
        }
        self.commit(&gid, "remove", CommitOp::Remove(users.iter().map(|u| (*u).to_owned()).collect())).await
    }

    /// Updates the own leaf (fresh HPKE key: post-compromise security).
    pub async fn self_update(&self, group: &str) -> Result<CommitOutcome> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.commit(&gid, "update", CommitOp::Update).await
    }

    /// Asks to leave: posts a remove proposal for the own leaf. The next member
    /// who syncs commits it; until then the group is `leaving`.
    pub async fn leave(&self, group: &str) -> Result<()> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        for _ in 0..MAX_ATTEMPTS {
            let bytes = self.provider.transaction(|p| -> Result<Vec<u8>> {
                let mut g = Self::load(p, &gid)?;
                let msg = g.leave_group(p, self.signer.as_ref()).mls("leave")?;
                let bytes = msg.tls_serialize_detached().mls("encode")?;
                p.storage().put_app_value(
                    ns::OUTBOX,
                    &hash(&bytes),
                    &OutboxEntry { group: gid.clone(), local: None, message: Vec::new(), envelope: None },
                )?;
                Ok(bytes)
            })?;
            match self.ds.post_message(&b64url(&gid), bytes.clone()).await {
                Ok(_) => {
                    self.provider.transaction(|p| -> Result<()> {
                        let mut rec: GroupRecord = p
                            .storage()
                            .get_app_value(ns::GROUPS, &gid)?
                            .ok_or_else(|| Error::UnknownGroup(b64url(&gid)))?;
                        rec.state = GroupState::Leaving;
                        p.storage().put_app_value(ns::GROUPS, &gid, &rec)?;
                        Ok(())
                    })?;
                    return Ok(());
                }
                Err(Error::Server { status: 409, .. }) => {
                    self.provider.transaction(|p| -> Result<()> {
                        let mut g = Self::load(p, &gid)?;
                        g.clear_pending_proposals(p.storage())?;
                        p.storage().remove_app(ns::OUTBOX, &hash(&bytes))?;
                        Ok(())
                    })?;
                    self.sync_group(&gid, &mut SyncReport::default()).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::TooManyRetries { op: "leave", attempts: MAX_ATTEMPTS })
    }

    fn require_active(&self, gid: &[u8]) -> Result<()> {
        match self.group_record(gid)?.state {
            GroupState::Left => Err(Error::GroupLeft(b64url(gid))),
            _ => Ok(()),
        }
    }

    /// Builds, posts and (after the DS's 201) merges one commit; on `409
    /// stale_epoch` clears it, syncs and redoes the operation, at most
    /// [`MAX_ATTEMPTS`] times.
    async fn commit(&self, gid: &[u8], op_name: &'static str, op: CommitOp) -> Result<CommitOutcome> {
        // A pending commit left by a crash or an unknown outcome is resolved first.
        if self.provider.storage().get_app(ns::PENDING, gid)?.is_some() {
            self.sync_group(gid, &mut SyncReport::default()).await?;
        }
        let gpath = b64url(gid);
        for attempt in 1..=MAX_ATTEMPTS {
            let built = self.provider.transaction(|p| -> Result<Option<Vec<u8>>> {
                let mut g = Self::load(p, gid)?;
                if !g.is_active() {
                    return Err(Error::GroupLeft(b64url(gid)));
                }
                let (commit, welcome, gi) = match &op {
                    CommitOp::Add(kps) => {
                        let present: Vec<String> = g.members().map(|m| identity_of(&m.credential)).collect();
                        let todo: Vec<KeyPackage> = kps
                            .iter()
                            .filter(|kp| !present.contains(&identity_of(kp.leaf_node().credential())))
                            .cloned()
                            .collect();
                        if todo.is_empty() {
                            return Ok(None);
                        }
                        let (c, w, gi) = g.add_members(p, self.signer.as_ref(), &todo).mls("add members")?;
                        (c, Some(w), gi)
                    }
                    CommitOp::Remove(users) => {
                        let leaves: Vec<LeafNodeIndex> = g
                            .members()
                            .filter(|m| users.contains(&identity_of(&m.credential)))
                            .map(|m| m.index)
                            .collect();
                        if leaves.is_empty() {
                            return Ok(None);
                        }
                        g.remove_members(p, self.signer.as_ref(), &leaves).mls("remove members")?
                    }
                    CommitOp::Update => {
                        let b =
                            g.self_update(p, self.signer.as_ref(), LeafNodeParameters::default()).mls("self update")?;
                        (b.commit().clone(), b.to_welcome_msg(), b.group_info().cloned())
                    }
                    CommitOp::Pending => {
                        if g.pending_proposals().next().is_none() {
                            return Ok(None);
                        }
                        g.commit_to_pending_proposals(p, self.signer.as_ref()).mls("commit pending proposals")?
                    }
                };
                let commit_bytes = commit.tls_serialize_detached().mls("encode")?;
                let body = proto::CommitBundleBody {
                    commit: commit_bytes.clone().into(),
                    welcome: welcome
                        .map(|w| w.tls_serialize_detached())
                        .transpose()
                        .mls("encode")?
                        .unwrap_or_default()
                        .into(),
                    group_info: gi
                        .map(|gi| MlsMessageOut::from(gi).tls_serialize_detached())
                        .transpose()
                        .mls("encode")?
                        .unwrap_or_default()
                        .into(),
                }
                .tls_serialize_detached()
                .mls("encode")?;
                p.storage().put_app_value(
                    ns::PENDING,
                    gid,
                    &PendingCommit { commit: commit_bytes, epoch: g.epoch().as_u64() },
                )?;
                Ok(Some(body))
            })?;
            let Some(body) = built else {
                return Ok(CommitOutcome {
                    group: gpath,
                    epoch: self.epoch(gid)?,
                    committed: false,
                    attempts: attempt,
                });
            };
            match self.ds.post_commit(&gpath, body).await {
                Ok(_posted) => {
                    if self.fault() == Some(Fault::StopAfterCommitAccepted) {
                        return Err(Error::InjectedFault("stopped after the DS accepted the commit"));
                    }
                    self.provider.transaction(|p| -> Result<()> {
                        let mut g = Self::load(p, gid)?;
                        g.merge_pending_commit(p).mls("merge the own commit")?;
                        p.storage().remove_app(ns::PENDING, gid)?;
                        self.pin_members(p, &g)?;
                        Ok(())
                    })?;
                    return Ok(CommitOutcome {
                        group: gpath,
                        epoch: self.epoch(gid)?,
                        committed: true,
                        attempts: attempt,
                    });
                }
                Err(Error::Server { status: 409, ref code, .. }) if code == "stale_epoch" => {
                    tracing::debug!(group = %gpath, attempt, "commit lost the race; syncing and redoing");
                    self.discard_pending_commit(gid)?;
                    self.sync_group(gid, &mut SyncReport::default()).await?;
                }
                Err(e @ Error::Server { status: 400..=499, .. }) => {
                    // Refused for good: never merge a commit the DS did not accept.
                    self.discard_pending_commit(gid)?;
                    return Err(e);
                }
                // Unknown outcome (network, 5xx): keep the pending commit; the
                // next sync finds it in the log or discards it.
                Err(e) => return Err(e),
            }
        }
        Err(Error::TooManyRetries { op: op_name, attempts: MAX_ATTEMPTS })
    }

    fn discard_pending_commit(&self, gid: &[u8]) -> Result<()> {
        self.provider.transaction(|p| -> Result<()> {
            let mut g = Self::load(p, gid)?;
            g.clear_pending_commit(p.storage())?;
            p.storage().remove_app(ns::PENDING, gid)?;
            Ok(())
        })
    }

    // ---------------------------------------------------------------- messages

    /// Sends a text message. The group state (sender ratchet advanced) and the
    /// message are on disk before the message leaves the device. Returns the
    /// message's log sequence number.
    ///
    /// Fails with [`Error::KeyChanged`] while a member's key differs from the
    /// key pinned for that user (until [`trust_new_key`](Self::trust_new_key)).
    pub async fn send(&self, group: &str, text: &str) -> Result<u64> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.check_member_keys(&gid)?;
        self.send_payload(&gid, &Envelope::Text { text: text.to_owned() }, Some(text)).await
    }

    async fn send_payload(&self, gid: &[u8], env: &Envelope, text: Option<&str>) -> Result<u64> {
        let payload = serde_json::to_vec(env).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        for _ in 0..MAX_ATTEMPTS {
            let (bytes, local) = self.provider.transaction(|p| -> Result<(Vec<u8>, Option<u64>)> {
                let s = p.storage();
                let mut rec: GroupRecord =
                    s.get_app_value(ns::GROUPS, gid)?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))?;
                let mut g = Self::load(p, gid)?;
                let msg = g.create_message(p, self.signer.as_ref(), &payload).mls("encrypt")?;
                let bytes = msg.tls_serialize_detached().mls("encode")?;
                let local = match text {
                    Some(t) => {
                        let local = rec.next_local;
                        rec.next_local += 1;
                        let m = StoredMessage {
                            seq: None,
                            epoch: g.epoch().as_u64(),
                            sender: self.id.user.clone(),
                            text: t.to_owned(),
                            own: true,
                        };
                        s.put_app_value(ns::MESSAGES, &message_key(gid, local), &m)?;
                        s.put_app_value(ns::GROUPS, gid, &rec)?;
                        Some(local)
                    }
                    None => None,
                };
                let envelope = env.is_resource().then(|| payload.clone());
                s.put_app_value(
                    ns::OUTBOX,
                    &hash(&bytes),
                    &OutboxEntry { group: gid.to_vec(), local, message: bytes.clone(), envelope },
                )?;
                Ok((bytes, local))
            })?;
            if self.fault() == Some(Fault::StopBeforeSend) {
                return Err(Error::InjectedFault("stopped before posting the message"));
            }
            match self.ds.post_message(&b64url(gid), bytes.clone()).await {
                Ok(posted) => {
                    self.provider.transaction(|p| -> Result<()> {
                        if let Some(local) = local {
                            Self::confirm_own(p, gid, local, posted.seq)?;
                        }
                        if env.is_resource() {
                            let epoch = Self::load(p, gid)?.epoch().as_u64();
                            self.apply_resource_envelope(p, gid, env, &self.id.user, posted.seq, epoch)?;
                        }
                        Ok(())
                    })?;
                    return Ok(posted.seq);
                }
                Err(Error::Server { status: 409, ref code, .. }) if code == "stale_epoch" => {
                    // Refused for good: drop this ciphertext, catch up, re-encrypt.
                    self.provider.transaction(|p| -> Result<()> {
                        p.storage().remove_app(ns::OUTBOX, &hash(&bytes))?;
                        if let Some(local) = local {
                            p.storage().remove_app(ns::MESSAGES, &message_key(gid, local))?;
                        }
                        Ok(())
                    })?;
                    self.sync_group(gid, &mut SyncReport::default()).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::TooManyRetries { op: "send", attempts: MAX_ATTEMPTS })
    }

    fn confirm_own(p: &TxnProvider<'_>, gid: &[u8], local: u64, seq: u64) -> Result<()> {
        let key = message_key(gid, local);
        if let Some(mut m) = p.storage().get_app_value::<StoredMessage>(ns::MESSAGES, &key)? {
            m.seq = Some(seq);
            p.storage().put_app_value(ns::MESSAGES, &key, &m)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- sync

    /// Fetches Welcomes (joins), then each group's log from its cursor:
    /// processes entries in order, merges commits, stores messages, acks.
    /// Commits pending proposals (such as a member's leave request). Tops up
    /// KeyPackages after joining.
    pub async fn sync(&self) -> Result<SyncReport> {
        let _op = self.ops.lock().await;
        let mut report = SyncReport::default();
        self.sync_welcomes(&mut report).await?;
        let groups = self.provider.storage().scan_prefix_app(ns::GROUPS, b"")?;
        for (gid, _) in groups {
            if self.group_record(&gid)?.state == GroupState::Left {
                continue;
            }
            match self.sync_group(&gid, &mut report).await {
                Ok(()) => {}
                Err(e @ Error::Mls { .. }) => {
                    tracing::warn!(group = %b64url(&gid), error = %e, "group log cannot be processed");
                    report.errors.push(format!("{}: {e}", b64url(&gid)));
                    continue;
                }
                Err(e) => return Err(e),
            }
            let rec = self.group_record(&gid)?;
            if rec.state == GroupState::Active {
                let has_pending = self.provider.transaction(|p| -> Result<bool> {
                    Ok(Self::load(p, &gid)?.pending_proposals().next().is_some())
                })?;
                if has_pending {
                    let out = self.commit(&gid, "commit pending proposals", CommitOp::Pending).await?;
                    if out.committed {
                        report.commits += 1;
                    }
                }
            }
        }
        if !report.joined.is_empty() {
            self.ensure_key_packages().await?;
        }
        Ok(report)
    }

    async fn sync_welcomes(&self, report: &mut SyncReport) -> Result<()> {
        let page = self.ds.welcomes(0).await?;
        for w in page.welcomes {
            match self.join_from_welcome(&w) {
                Ok(Some(gid)) => report.joined.push(b64url(&gid)),
                Ok(None) => {}
                Err(Error::Mls { op, reason }) => {
                    tracing::warn!(welcome = w.id, op, reason, "dropping a Welcome that cannot be processed");
                    report.failed_welcomes += 1;
                }
                Err(e) => return Err(e),
            }
            self.ds.delete_welcome(w.id).await?;
        }
        Ok(())
    }

    fn join_from_welcome(&self, w: &proto::WelcomeOut) -> Result<Option<Vec<u8>>> {
        let gid = proto::group_id_from_path(&w.group_id)
            .ok_or_else(|| Error::Protocol(format!("bad group id {}", w.group_id)))?;
        self.provider.transaction(|p| -> Result<Option<Vec<u8>>> {
            let s = p.storage();
            let existing: Option<GroupRecord> = s.get_app_value(ns::GROUPS, &gid)?;
            if existing.as_ref().is_some_and(|r| r.state != GroupState::Left) {
                return Ok(None);
            }
            let msg = MlsMessageIn::tls_deserialize_exact(&w.message).mls("decode the Welcome")?;
            let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
                return Err(Error::Mls { op: "join", reason: "not a Welcome".into() });
            };
            if let Some(lr) = s.get_app(ns::META, b"last_resort")? {
                if welcome.secrets().iter().any(|sec| sec.new_member().as_slice() == lr.as_slice()) {
                    s.put_app_value(ns::META, b"last_resort_used", &true)?;
                }
            }
            if let Some(mut old) = MlsGroup::load(s, &GroupId::from_slice(&gid))? {
                old.delete(s)?; // re-added after a removal: start over, keep the history records
            }
            let group = StagedWelcome::new_from_welcome(p, &join_config(), welcome, None)
                .mls("process the Welcome")?
                .into_group(p)
                .mls("join")?;
            if group.group_id().as_slice() != gid.as_slice() {
                return Err(Error::Protocol("Welcome for another group id than announced".into()));
            }
            let rec = GroupRecord {
                name: existing.as_ref().and_then(|r| r.name.clone()),
                cursor: existing.as_ref().map_or(0, |r| r.cursor),
                state: GroupState::Active,
                joined_epoch: group.epoch().as_u64(),
                next_local: existing.as_ref().map_or(0, |r| r.next_local),
                announce_name: false,
                history: existing.as_ref().map_or(HistoryPolicy::None, |r| r.history),
            };
            s.put_app_value(ns::GROUPS, &gid, &rec)?;
            self.pin_members(p, &group)?;
            Ok(Some(gid.clone()))
        })
    }

    /// Processes one group's log from its cursor to the end.
    async fn sync_group(&self, gid: &[u8], report: &mut SyncReport) -> Result<()> {
        let gpath = b64url(gid);
        loop {
            let rec = self.group_record(gid)?;
            if rec.state == GroupState::Left {
                break;
            }
            let page = match self.ds.fetch(&gpath, rec.cursor, PAGE).await {
                Ok(p) => p,
                Err(Error::Server { status: 403, ref code, .. }) if code == "not_a_member" => {
                    self.mark_left(gid)?;
                    report.left.push(gpath.clone());
                    break;
                }
                Err(e) => return Err(e),
            };
            let Some(last) = page.messages.last().map(|m| m.seq) else { break };
            for m in &page.messages {
                let left_now = self.process_entry(gid, m, report)?;
                if left_now {
                    report.left.push(gpath.clone());
                    break;
                }
            }
            let cursor = self.group_record(gid)?.cursor;
            self.ds.ack(&gpath, cursor).await?;
            if last >= page.last_seq || self.group_record(gid)?.state == GroupState::Left {
                break;
            }
        }
        let rec = self.group_record(gid)?;
        if rec.announce_name && rec.state == GroupState::Active {
            // Boxed: sending may sync again (on a lost race), which may land here.
            // The added users are not known here (the add was recovered from the log).
            Box::pin(self.announce_to_new_members(gid, &[])).await?;
            self.provider.transaction(|p| -> Result<()> {
                if let Some(mut r) = p.storage().get_app_value::<GroupRecord>(ns::GROUPS, gid)? {
                    r.announce_name = false;
                    p.storage().put_app_value(ns::GROUPS, gid, &r)?;
                }
                Ok(())
            })?;
        }
        self.resend_unconfirmed(gid).await?;
        // A pending commit that is not in the log after a full fetch was not
        // accepted: discard it so the group can move on.
        if self.provider.storage().get_app(ns::PENDING, gid)?.is_some()
            && self.group_record(gid)?.state != GroupState::Left
        {
            self.discard_pending_commit(gid)?;
        }
        Ok(())
    }

    /// Posts again the own text messages whose first post had an unknown
    /// outcome (a crash before or during it, a network error) and that the
    /// log, fetched to its end, does not hold. The bytes are the ones stored
    /// before the first attempt: no new encryption, so no key or nonce reuse.
    /// A message the DS now refuses for good (too old an epoch) stays in the
    /// history as unsent.
    async fn resend_unconfirmed(&self, gid: &[u8]) -> Result<()> {
        if self.group_record(gid)?.state == GroupState::Left {
            return Ok(());
        }
        let mut todo = Vec::new();
        for (key, value) in self.provider.storage().scan_prefix_app(ns::OUTBOX, b"")? {
            let entry: OutboxEntry = <DefaultCodec as ValueCodec>::decode(&value).map_err(|reason| {
                Error::Storage(crate::storage::StorageError::Corrupt { what: "outbox entry".into(), reason })
            })?;
            if entry.group == gid && (entry.local.is_some() || entry.envelope.is_some()) && !entry.message.is_empty() {
                todo.push((key, entry));
            }
        }
        for (key, entry) in todo {
            let result = self.ds.post_message(&b64url(gid), entry.message.clone()).await;
            let seq = match result {
                Ok(posted) => Some(posted.seq),
                Err(Error::Server { status: 400..=499, .. }) => None,
                Err(e) => return Err(e),
            };
            self.provider.transaction(|p| -> Result<()> {
                if let (Some(local), Some(seq)) = (entry.local, seq) {
                    Self::confirm_own(p, gid, local, seq)?;
                }
                if let (Some(env), Some(seq)) = (&entry.envelope, seq) {
                    self.apply_own_envelope(p, gid, env, seq)?;
                }
                p.storage().remove_app(ns::OUTBOX, &key)?;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn mark_left(&self, gid: &[u8]) -> Result<()> {
        self.provider.transaction(|p| -> Result<()> {
            let mut rec: GroupRecord =
                p.storage().get_app_value(ns::GROUPS, gid)?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))?;
            rec.state = GroupState::Left;
            p.storage().put_app_value(ns::GROUPS, gid, &rec)?;
            Ok(())
        })
    }

    /// Processes one log entry in one transaction (state, history and cursor
    /// together). Returns whether this client learned it was removed.
    fn process_entry(&self, gid: &[u8], m: &proto::MessageOut, report: &mut SyncReport) -> Result<bool> {
        self.provider.transaction(|p| -> Result<bool> {
            let s = p.storage();
            let mut rec: GroupRecord =
                s.get_app_value(ns::GROUPS, gid)?.ok_or_else(|| Error::UnknownGroup(b64url(gid)))?;
            if m.seq <= rec.cursor {
                return Ok(false);
            }
            rec.cursor = m.seq;
            let mut left = false;
            let h = hash(&m.message);
            if let Some(ob) = s.get_app_value::<OutboxEntry>(ns::OUTBOX, &h)? {
                // Our own message or proposal echoed back.
                if let Some(local) = ob.local {
                    Self::confirm_own(p, gid, local, m.seq)?;
                }
                if let Some(env) = &ob.envelope {
                    self.apply_own_envelope(p, gid, env, m.seq)?;
                }
                s.remove_app(ns::OUTBOX, &h)?;
                s.put_app_value(ns::GROUPS, gid, &rec)?;
                return Ok(false);
            }
            let mut g = Self::load(p, gid)?;
            let pending: Option<PendingCommit> = s.get_app_value(ns::PENDING, gid)?;
            if let Some(pc) = pending {
                if m.kind == "commit" && pc.epoch == m.epoch {
                    if pc.commit == m.message {
                        // Our commit was accepted before a crash: merge it now.
                        if g.pending_commit().is_some_and(|c| c.add_proposals().next().is_some()) {
                            rec.announce_name = true;
                        }
                        g.merge_pending_commit(p).mls("merge the own commit")?;
                        s.remove_app(ns::PENDING, gid)?;
                        self.pin_members(p, &g)?;
                        s.put_app_value(ns::GROUPS, gid, &rec)?;
                        return Ok(false);
                    }
                    g.clear_pending_commit(s)?;
                    s.remove_app(ns::PENDING, gid)?;
                }
            }
            let current = g.epoch().as_u64();
            let skip = match m.kind.as_str() {
                "commit" | "proposal" => m.epoch < current,
                _ => m.epoch < rec.joined_epoch,
            };
            if !skip {
                let parsed = MlsMessageIn::tls_deserialize_exact(&m.message)
                    .ok()
                    .and_then(|msg| msg.try_into_protocol_message().ok());
                match parsed.map(|pm| g.process_message(p, pm)) {
                    Some(Ok(processed)) => {
                        let sender = identity_of(processed.credential());
                        match processed.into_content() {
                            ProcessedMessageContent::ApplicationMessage(a) => {
                                match serde_json::from_slice::<Envelope>(&a.into_bytes()) {
                                    Ok(Envelope::Text { text }) => {
                                        let local = rec.next_local;
                                        rec.next_local += 1;
                                        let sm = StoredMessage {
                                            seq: Some(m.seq),
                                            epoch: m.epoch,
                                            sender,
                                            text,
                                            own: false,
                                        };
                                        s.put_app_value(ns::MESSAGES, &message_key(gid, local), &sm)?;
                                        report.messages += 1;
                                    }
                                    Ok(Envelope::GroupName { name, history }) => {
                                        rec.name = Some(name);
                                        if let Some(h) = history {
                                            rec.history = h;
                                        }
                                    }
                                    Ok(env) => {
                                        // Resource records; a policy change also updates `rec`.
                                        if let Envelope::HistoryPolicy { policy, .. } = &env {
                                            rec.history = *policy;
                                        }
                                        s.put_app_value(ns::GROUPS, gid, &rec)?;
                                        if let Err(e) =
                                            self.apply_resource_envelope(p, gid, &env, &sender, m.seq, m.epoch)
                                        {
                                            match e {
                                                Error::Protocol(reason) => {
                                                    tracing::warn!(
                                                        seq = m.seq,
                                                        reason,
                                                        "ignoring a bad resource message"
                                                    );
                                                    report.undecryptable += 1;
                                                }
                                                other => return Err(other),
                                            }
                                        }
                                    }
                                    Err(_) => report.undecryptable += 1,
                                }
                            }
                            ProcessedMessageContent::ProposalMessage(q) => {
                                g.store_pending_proposal(s, *q)?;
                            }
                            ProcessedMessageContent::StagedCommitMessage(sc) => {
                                g.merge_staged_commit(p, *sc).mls("merge a commit")?;
                                if g.is_active() {
                                    self.pin_members(p, &g)?;
                                } else {
                                    rec.state = GroupState::Left;
                                    left = true;
                                }
                            }
                            ProcessedMessageContent::OwnPendingCommit => {
                                g.merge_pending_commit(p).mls("merge the own commit")?;
                                s.remove_app(ns::PENDING, gid)?;
                            }
                            ProcessedMessageContent::OwnPrivateMessage
                            | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {}
                        }
                    }
                    Some(Err(e)) if m.kind == "application" => {
                        tracing::debug!(seq = m.seq, error = ?e, "skipping an undecryptable application message");
                        report.undecryptable += 1;
                    }
                    Some(Err(e)) => {
                        return Err(Error::Mls {
                            op: "process a handshake message",
                            reason: format!("seq {}: {e:?}", m.seq),
                        })
                    }
                    None => {
                        tracing::warn!(seq = m.seq, "skipping a log entry that is not an MLS protocol message");
                        report.undecryptable += 1;
                    }
                }
            }
            s.put_app_value(ns::GROUPS, gid, &rec)?;
            Ok(left)
        })
    }

    // ---------------------------------------------------------------- queries

    /// Every group this client knows, including ones it left.
    pub fn groups(&self) -> Result<Vec<GroupSummary>> {
        let mut out = Vec::new();
        for (gid, _) in self.provider.storage().scan_prefix_app(ns::GROUPS, b"")? {
            let rec = self.group_record(&gid)?;
            let g = MlsGroup::load(self.provider.storage(), &GroupId::from_slice(&gid))?;
            out.push(GroupSummary {
                id: b64url(&gid),
                name: rec.name,
                epoch: g.as_ref().map_or(0, |g| g.epoch().as_u64()),
                state: rec.state,
                members: g.as_ref().map_or(0, |g| g.members().count()),
                cursor: rec.cursor,
            });
        }
        Ok(out)
    }

    /// The group's members as this client's MLS state sees them.
    pub fn members(&self, group: &str) -> Result<Vec<MemberInfo>> {
        let gid = self.resolve_group(group)?;
        let g = MlsGroup::load(self.provider.storage(), &GroupId::from_slice(&gid))?
            .ok_or_else(|| Error::UnknownGroup(group.to_owned()))?;
        let mut out = Vec::new();
        for m in g.members() {
            let user = identity_of(&m.credential);
            let key = if user == self.id.user {
                KeyStatus::Own
            } else {
                match self.contact(&user)? {
                    Some(c) if c.key != m.signature_key || c.pending.is_some() => KeyStatus::Changed,
                    Some(c) if c.verified => KeyStatus::Verified,
                    _ => KeyStatus::Pinned,
                }
            };
            out.push(MemberInfo {
                user,
                leaf_index: m.index.u32(),
                fingerprint: proto::fingerprint(&m.signature_key),
                key,
            });
        }
        Ok(out)
    }

    /// The group's stored message history, in the order it was received.
    pub fn messages(&self, group: &str) -> Result<Vec<StoredMessage>> {
        let gid = self.resolve_group(group)?;
        let mut out = Vec::new();
        for (_, v) in self.provider.storage().scan_prefix_app(ns::MESSAGES, &group_prefix(&gid))? {
            out.push(<DefaultCodec as ValueCodec>::decode(&v).map_err(|reason| {
                Error::Storage(crate::storage::StorageError::Corrupt { what: "stored message".into(), reason })
            })?);
        }
        Ok(out)
    }

    /// The group's current epoch.
    pub fn epoch(&self, gid: &[u8]) -> Result<u64> {
        Ok(MlsGroup::load(self.provider.storage(), &GroupId::from_slice(gid))?
            .ok_or_else(|| Error::UnknownGroup(b64url(gid)))?
            .epoch()
            .as_u64())
    }

    /// The group's epoch and epoch authenticator (equal across members in the
    /// same epoch unless the group forked).
    pub fn epoch_authenticator(&self, group: &str) -> Result<(u64, Vec<u8>)> {
        let gid = self.resolve_group(group)?;
        let g = MlsGroup::load(self.provider.storage(), &GroupId::from_slice(&gid))?
            .ok_or_else(|| Error::UnknownGroup(group.to_owned()))?;
        Ok((g.epoch().as_u64(), g.epoch_authenticator().as_slice().to_vec()))
    }

    /// The group's state (`active`, `leaving`, `left`) and cursor.
    pub fn group_state(&self, group: &str) -> Result<(GroupState, u64)> {
        let rec = self.group_record(&self.resolve_group(group)?)?;
        Ok((rec.state, rec.cursor))
    }

    /// Fetches raw log entries as the DS serves them to this user (what the
    /// DS stores: ciphertext for application data).
    pub async fn fetch_log(&self, group: &str, after: u64) -> Result<proto::MessagesPage> {
        let gid = self.resolve_group(group)?;
        self.ds.fetch(&b64url(&gid), after, PAGE).await
    }

    /// The DS's public view of the group (roster, epoch, last seq).
    pub async fn server_view(&self, group: &str) -> Result<proto::GroupResponse> {
        let gid = self.resolve_group(group)?;
        self.ds.group(&b64url(&gid)).await
    }

    /// Tries to decrypt a raw MLSMessage with the group's current state,
    /// without keeping any change. Fails if this client has no key for it.
    pub fn try_decrypt(&self, group: &str, message: &[u8]) -> Result<Vec<u8>> {
        let gid = self.resolve_group(group)?;
        let p = self.provider.begin();
        let mut g = Self::load(&p, &gid)?;
        let pm =
            MlsMessageIn::tls_deserialize_exact(message).mls("decode")?.try_into_protocol_message().mls("decode")?;
        let processed = g.process_message(&p, pm).mls("decrypt")?;
        p.rollback();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(a) => Ok(a.into_bytes()),
            _ => Err(Error::Mls { op: "decrypt", reason: "not an application message".into() }),
        }
    }
}
