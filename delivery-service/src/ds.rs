//! The domain layer: what the Delivery Service does with a request, independent
//! of HTTP. It validates every handshake message with an openmls `PublicGroup`,
//! orders each group's log, enforces one commit per epoch and membership, and
//! drives the store. It never holds a key that decrypts anything.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};
use tokio::sync::watch;

use crate::api;
use crate::auth::{self, AuthState};
use crate::config::Config;
use crate::error::DsError;
use crate::metrics::Metrics;
use crate::store::{
    EntryKind, GroupRecord, KeyPackageCounts, KeyPackageKind, LogEntry, RegisterOutcome, RemovedMember, Store,
    StoreError, UserRecord, WelcomeEntry,
};

/// Ciphersuites the DS accepts (those openmls_rust_crypto implements).
pub const SUPPORTED_SUITES: [u16; 3] = [0x0001, 0x0002, 0x0003];
/// Longest accepted group id, bytes.
pub const MAX_GROUP_ID_LEN: usize = 256;

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
            metrics_token: c.metrics_token.clone(),
            message_ttl_secs: c.message_ttl_secs,
        }
    }
}

/// Current unix time in seconds.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[derive(Debug, Clone)]
struct MemberInfo {
    leaf: u32,
    signature_key: Vec<u8>,
}

/// The fast-path view of a group, guarded by a std mutex held only for short,
/// non-async sections (sequence assignment and the store append).
struct GroupView {
    record: GroupRecord,
    next_seq: u64,
    members: HashMap<String, MemberInfo>,
    removed: HashMap<String, u64>,
}

/// openmls public state, mutated only under the group's commit lock.
struct PublicState {
    storage: MemoryStorage,
    group: PublicGroup,
}

/// Most recent log entries of a group, kept in memory so that the members
/// following the group (long-poll, WebSocket) are served without a storage scan.
/// It holds a contiguous run of the log's newest entries, at most
/// [`TAIL_ENTRIES`] entries and [`TAIL_BYTES`] bytes.
#[derive(Default)]
struct Tail {
    entries: std::collections::VecDeque<Arc<LogEntry>>,
    bytes: usize,
}

/// Entries kept per group in the in-memory tail.
const TAIL_ENTRIES: usize = 1024;
/// Bytes of messages kept per group in the in-memory tail.
const TAIL_BYTES: usize = 4 << 20;

impl Tail {
    fn push(&mut self, e: Arc<LogEntry>) {
        self.bytes += e.message.len();
        self.entries.push_back(e);
        while self.entries.len() > TAIL_ENTRIES || self.bytes > TAIL_BYTES {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.message.len(),
                None => break,
            }
        }
    }

    /// Entries with `after < seq <= up_to`, if the tail covers `after + 1`.
    fn range(&self, after: u64, up_to: u64, limit: usize) -> Option<Vec<Arc<LogEntry>>> {
        let first = self.entries.front()?.seq;
        if first > after.saturating_add(1) {
            return None;
        }
        let skip = (after + 1).saturating_sub(first) as usize;
        Some(self.entries.iter().skip(skip).take_while(|e| e.seq <= up_to).take(limit).cloned().collect())
    }
}

/// A page of a group's log as the domain layer returns it.
#[derive(Debug, Clone)]
pub struct LogPage {
    /// Entries with `seq > after`, in order.
    pub entries: Vec<Arc<LogEntry>>,
    /// The highest sequence number the caller may read now.
    pub last_seq: u64,
    /// Seq of the commit that removed the caller, if it was removed.
    pub removed_at: Option<u64>,
}

struct GroupRt {
    tail: Mutex<Tail>,
    internal_id: u64,
    group_id: Vec<u8>,
    commit_lock: tokio::sync::Mutex<PublicState>,
    view: Mutex<GroupView>,
    /// Highest durable (and so visible) sequence number.
    visible: watch::Sender<u64>,
}

impl GroupRt {
    /// Adds a just-stored entry to the tail. Called under the view lock, so
    /// entries arrive in sequence order.
    fn remember(&self, entry: LogEntry) {
        if let Ok(mut t) = self.tail.lock() {
            t.push(Arc::new(entry));
        }
    }

    /// Makes entries up to `seq` visible (after their fsync); never moves back.
    fn advance_visible(&self, seq: u64) {
        self.visible.send_if_modified(|v| {
            let changed = seq > *v;
            *v = (*v).max(seq);
            changed
        });
    }

    fn forget_tail(&self) {
        if let Ok(mut t) = self.tail.lock() {
            *t = Tail::default();
        }
    }

    fn view(&self) -> Result<std::sync::MutexGuard<'_, GroupView>, DsError> {
        self.view.lock().map_err(|_| DsError::Internal("group view lock poisoned".into()))
    }
}

/// The Delivery Service.
pub struct Ds {
    store: Arc<dyn Store>,
    blobs: crate::blobs::BlobStore,
    crypto: RustCrypto,
    limits: Limits,
    groups: Mutex<HashMap<Vec<u8>, Arc<GroupRt>>>,
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

// ---- serialization of the openmls public state -------------------------------

#[derive(Debug, tls_codec::TlsSerialize, tls_codec::TlsDeserialize, tls_codec::TlsSize)]
struct KvPair {
    key: VLBytes,
    value: VLBytes,
}

fn serialize_public_state(storage: &MemoryStorage) -> Result<Vec<u8>, DsError> {
    let values = storage.values.read().map_err(|_| DsError::Internal("public state lock poisoned".into()))?;
    let mut pairs: Vec<KvPair> =
        values.iter().map(|(k, v)| KvPair { key: k.clone().into(), value: v.clone().into() }).collect();
    pairs.sort_by(|a, b| a.key.as_slice().cmp(b.key.as_slice()));
    pairs.tls_serialize_detached().map_err(|e| DsError::Internal(format!("encoding public state: {e}")))
}

fn deserialize_public_state(bytes: &[u8]) -> Result<MemoryStorage, DsError> {
    let pairs = Vec::<KvPair>::tls_deserialize_exact(bytes)
        .map_err(|e| DsError::Storage(StoreError::Corrupt { what: "group public state", detail: e.to_string() }))?;
    let storage = MemoryStorage::default();
    {
        let mut values = storage.values.write().map_err(|_| DsError::Internal("public state lock poisoned".into()))?;
        for p in pairs {
            values.insert(p.key.into(), p.value.into());
        }
    }
    Ok(storage)
}

fn clone_storage(storage: &MemoryStorage) -> Result<MemoryStorage, DsError> {
    let values = storage.values.read().map_err(|_| DsError::Internal("public state lock poisoned".into()))?;
    Ok(MemoryStorage { values: std::sync::RwLock::new(values.clone()) })
}

fn identity_of(credential: &Credential) -> Option<String> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    String::from_utf8(basic.identity().to_vec()).ok()
}

fn members_of(group: &PublicGroup) -> HashMap<String, MemberInfo> {
    group
        .members()
        .filter_map(|m| {
            identity_of(&m.credential)
                .map(|u| (u, MemberInfo { leaf: m.index.u32(), signature_key: m.signature_key.clone() }))
        })
        .collect()
}

fn parse_mls(bytes: &[u8]) -> Result<MlsMessageBodyIn, DsError> {
    if bytes.is_empty() {
        return Err(DsError::MalformedMessage("empty body: expected a TLS-encoded MLSMessage".into()));
    }
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map(|m| m.extract())
        .map_err(|e| DsError::MalformedMessage(format!("not a TLS-encoded MLSMessage: {e}")))
}

fn body_name(b: &MlsMessageBodyIn) -> &'static str {
    match b {
        MlsMessageBodyIn::PublicMessage(_) => "PublicMessage",
        MlsMessageBodyIn::PrivateMessage(_) => "PrivateMessage",
        MlsMessageBodyIn::Welcome(_) => "Welcome",
        MlsMessageBodyIn::GroupInfo(_) => "GroupInfo",
        MlsMessageBodyIn::KeyPackage(_) => "KeyPackage",
        #[allow(unreachable_patterns)]
        _ => "another message type",
    }
}

fn content_type_name(c: ContentType) -> &'static str {
    match c {
        ContentType::Application => "application",
        ContentType::Proposal => "proposal",
        ContentType::Commit => "commit",
    }
}

/// The outcome of access checks for reading a group's log.
struct ReadAccess {
    up_to: u64,
    removed_at: Option<u64>,
}

impl Ds {
    /// A Delivery Service over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: crate::blobs::BlobStore,
        limits: Limits,
        auth: AuthState,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DsError> {
        let ds = Ds {
            store,
            blobs,
            crypto: RustCrypto::default(),
            limits,
            groups: Mutex::new(HashMap::new()),
            auth,
            metrics,
            shutdown: watch::channel(false).0,
            welcomes: watch::channel(0).0,
            pending_welcomes: Mutex::new(HashSet::new()),
        };
        ds.metrics.stored_messages.set(ds.store.message_count()? as i64);
        ds.metrics.groups.set(ds.store.group_ids()?.len() as i64);
        Ok(ds)
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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

    async fn persist(&self) -> Result<(), DsError> {
        self.store.persist().await.map_err(DsError::Storage)
    }

    // ---- users and authentication ------------------------------------------

    /// Registers a user after checking the proof of possession.
    pub async fn register(&self, req: api::RegisterRequest) -> Result<api::RegisterResponse, DsError> {
        auth::validate_name(&req.user)?;
        if let Some(expected) = &self.limits.registration_token {
            use sha2::Digest as _;
            let given = req.registration_token.as_deref().unwrap_or("");
            // Compare digests so the comparison time does not depend on the token.
            if sha2::Sha256::digest(given.as_bytes()) != sha2::Sha256::digest(expected.as_bytes()) {
                return Err(DsError::RegistrationClosed);
            }
        }
        let scheme = auth::scheme_from_u16(req.signature_scheme).ok_or_else(|| {
            DsError::InvalidRequest(format!(
                "signature_scheme 0x{:04x} is not supported (use 0x0807 Ed25519 or 0x0403 ECDSA P-256)",
                req.signature_scheme
            ))
        })?;
        let credential = Credential::tls_deserialize_exact(&req.credential)
            .map_err(|e| DsError::InvalidRequest(format!("credential is not a TLS-encoded MLS Credential: {e}")))?;
        match identity_of(&credential) {
            Some(id) if id == req.user => {}
            Some(id) => {
                return Err(DsError::InvalidRequest(format!(
                    "the credential's identity {id:?} is not the user name {:?}",
                    req.user
                )))
            }
            None => {
                return Err(DsError::InvalidRequest(
                    "the credential must be a BasicCredential with a UTF-8 identity".into(),
                ))
            }
        }
        if req.signature_key.is_empty() || req.signature_key.len() > 133 {
            return Err(DsError::InvalidRequest("signature_key has an impossible length".into()));
        }
        auth::verify(
            &self.crypto,
            scheme,
            &auth::signed_bytes(auth::REGISTER_LABEL, &req.user, &req.signature_key),
            &req.signature_key,
            &req.proof,
        )?;
        let record = UserRecord {
            name: req.user.as_bytes().to_vec().into(),
            credential: req.credential.clone().into(),
            signature_key: req.signature_key.clone().into(),
            signature_scheme: req.signature_scheme,
            registered_at: now_secs(),
        };
        let outcome = self.store.register_user(&record)?;
        if outcome == RegisterOutcome::NameTaken {
            return Err(DsError::UserExists(req.user));
        }
        self.persist().await?;
        tracing::info!(user = %req.user, created = (outcome == RegisterOutcome::Created), "registration");
        Ok(api::RegisterResponse {
            user: req.user,
            fingerprint: api::fingerprint(&req.signature_key),
            created: outcome == RegisterOutcome::Created,
        })
    }

    fn registered(&self, user: &str) -> Result<UserRecord, DsError> {
        self.store.user(user)?.ok_or_else(|| DsError::UnknownUser(user.to_string()))
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
    pub fn challenge(&self, user: &str) -> Result<api::ChallengeResponse, DsError> {
        auth::validate_name(user)?;
        self.registered(user)?;
        let c = self.auth.new_challenge(user)?;
        Ok(api::ChallengeResponse { challenge: c.to_vec(), expires_in: auth::CHALLENGE_TTL.as_secs() })
    }

    /// Exchanges a signed challenge for a bearer token.
    pub fn token(&self, req: &api::TokenRequest) -> Result<api::TokenResponse, DsError> {
        auth::validate_name(&req.user)?;
        let user = self.registered(&req.user)?;
        self.auth.take_challenge(&req.user, &req.challenge)?;
        let scheme = auth::scheme_from_u16(user.signature_scheme)
            .ok_or_else(|| DsError::Internal("stored signature scheme unsupported".into()))?;
        auth::verify(
            &self.crypto,
            scheme,
            &auth::signed_bytes(auth::AUTH_LABEL, &req.user, &req.challenge),
            user.signature_key.as_slice(),
            &req.signature,
        )?;
        let token = self.auth.issue_token(&req.user)?;
        Ok(api::TokenResponse { token, expires_in: self.auth.token_ttl().as_secs() })
    }

    /// A user's registered credential and key.
    pub fn lookup_user(&self, user: &str) -> Result<api::UserResponse, DsError> {
        auth::validate_name(user)?;
        let u = self.registered(user)?;
        Ok(api::UserResponse {
            user: user.to_string(),
            credential: u.credential.as_slice().to_vec(),
            fingerprint: api::fingerprint(u.signature_key.as_slice()),
            signature_key: u.signature_key.into(),
            signature_scheme: u.signature_scheme,
        })
    }

    /// Checks that `identity` with `signature_key` is a registered binding.
    fn check_registered_member(&self, credential: &Credential, signature_key: &[u8]) -> Result<String, DsError> {
        let user = identity_of(credential)
            .ok_or_else(|| DsError::UnregisteredMember { user: "<not a UTF-8 BasicCredential>".into() })?;
        match self.store.user(&user)? {
            Some(rec)
                if rec.signature_key.as_slice() == signature_key
                    && rec.credential.as_slice()
                        == credential
                            .tls_serialize_detached()
                            .map_err(|e| DsError::Internal(e.to_string()))?
                            .as_slice() =>
            {
                Ok(user)
            }
            _ => Err(DsError::UnregisteredMember { user }),
        }
    }

    // ---- key packages ---------------------------------------------------------

    /// Validates and stores a batch of KeyPackages of `user`.
    pub async fn upload_key_packages(&self, user: &str, body: &[u8]) -> Result<api::KeyPackageCountResponse, DsError> {
        let reg = self.registered(user)?;
        let upload = api::KeyPackageUploadBody::tls_deserialize_exact(body)
            .map_err(|e| DsError::MalformedMessage(format!("not a Grove key-package upload: {e}")))?;
        if upload.key_packages.is_empty() {
            return Err(DsError::InvalidRequest("the upload holds no KeyPackage".into()));
        }
        let now = now_secs();
        let mut suite = None;
        let mut one_time = Vec::new();
        let mut last_resort: Option<Vec<u8>> = None;
        let mut seen = HashSet::new();
        for (index, raw) in upload.key_packages.iter().enumerate() {
            let bad = |reason: String| DsError::InvalidKeyPackage { index, reason };
            let kp_in = match parse_mls(raw.as_slice()).map_err(|e| bad(e.to_string()))? {
                MlsMessageBodyIn::KeyPackage(kp) => kp,
                other => return Err(bad(format!("expected a KeyPackage, got a {}", body_name(&other)))),
            };
            let kp = kp_in.validate(&self.crypto, ProtocolVersion::Mls10).map_err(|e| bad(e.to_string()))?;
            let cs = u16::from(kp.ciphersuite());
            if !SUPPORTED_SUITES.contains(&cs) {
                return Err(bad(format!("ciphersuite 0x{cs:04x} is not supported")));
            }
            if *suite.get_or_insert(cs) != cs {
                return Err(bad("all KeyPackages of one upload must have the same ciphersuite".into()));
            }
            let leaf = kp.leaf_node();
            let cred = leaf.credential().tls_serialize_detached().map_err(|e| bad(e.to_string()))?;
            if cred != reg.credential.as_slice() || leaf.signature_key().as_slice() != reg.signature_key.as_slice() {
                return Err(bad("its credential or signature key is not the one registered for you".into()));
            }
            let not_after = kp.life_time().not_after();
            if not_after > now.saturating_add(self.limits.key_package_max_secs) {
                return Err(bad(format!(
                    "its lifetime ends more than {} days from now",
                    self.limits.key_package_max_secs / 86_400
                )));
            }
            let bytes = MlsMessageOut::from(kp.clone()).tls_serialize_detached().map_err(|e| bad(e.to_string()))?;
            if !seen.insert(bytes.clone()) {
                return Err(bad("the same KeyPackage appears twice in the upload".into()));
            }
            if kp.last_resort() {
                if last_resort.is_some() {
                    return Err(bad("more than one last-resort KeyPackage in one upload".into()));
                }
                last_resort = Some(bytes);
            } else {
                one_time.push(bytes);
            }
        }
        let suite = suite.unwrap_or(1);
        let counts = self
            .store
            .add_key_packages(user, suite, &one_time, last_resort.as_deref(), self.limits.key_package_cap)
            .map_err(|e| match e {
                StoreError::Quota(q) => DsError::KeyPackageQuota(q),
                e => DsError::Storage(e),
            })?;
        self.persist().await?;
        Ok(api::KeyPackageCountResponse {
            accepted: upload.key_packages.len(),
            one_time: counts.one_time,
            last_resort: counts.last_resort,
        })
    }

    /// Claims one KeyPackage of `target` for `suite`.
    pub async fn claim_key_package(&self, target: &str, suite: u16) -> Result<(Vec<u8>, KeyPackageKind), DsError> {
        auth::validate_name(target)?;
        if !SUPPORTED_SUITES.contains(&suite) {
            return Err(DsError::UnsupportedCiphersuite(suite));
        }
        self.registered(target)?;
        loop {
            let claimed = self.store.claim_key_package(target, suite)?;
            let Some((kp, kind)) = claimed else { return Err(DsError::NoKeyPackage(target.to_string())) };
            // Packages were validated on upload; this re-check catches the ones
            // whose lifetime has run out since. An expired one-time package was
            // just removed by the claim (purged); an expired last-resort package
            // stays until its owner replaces it, and is never handed out.
            if !self.still_valid(&kp) {
                tracing::info!(user = %target, last_resort = (kind == KeyPackageKind::LastResort), "expired KeyPackage skipped");
                if kind == KeyPackageKind::LastResort {
                    self.persist().await?;
                    return Err(DsError::NoKeyPackage(target.to_string()));
                }
                continue;
            }
            // The removal must be durable before the package leaves: a one-time
            // package is handed out at most once, even across a crash.
            self.persist().await?;
            return Ok((kp, kind));
        }
    }

    fn still_valid(&self, kp: &[u8]) -> bool {
        match parse_mls(kp) {
            Ok(MlsMessageBodyIn::KeyPackage(kp)) => kp.validate(&self.crypto, ProtocolVersion::Mls10).is_ok(),
            _ => false,
        }
    }

    /// How many KeyPackages `user` has left.
    pub fn key_package_counts(&self, user: &str, suite: u16) -> Result<KeyPackageCounts, DsError> {
        if !SUPPORTED_SUITES.contains(&suite) {
            return Err(DsError::UnsupportedCiphersuite(suite));
        }
        Ok(self.store.key_package_counts(user, suite)?)
    }

    // ---- groups ----------------------------------------------------------------

    fn cached_group(&self, gid: &[u8]) -> Result<Option<Arc<GroupRt>>, DsError> {
        let map = self.groups.lock().map_err(|_| DsError::Internal("group map poisoned".into()))?;
        Ok(map.get(gid).cloned())
    }

    fn group(&self, gid: &[u8]) -> Result<Arc<GroupRt>, DsError> {
        if let Some(rt) = self.cached_group(gid)? {
            return Ok(rt);
        }
        if gid.is_empty() || gid.len() > MAX_GROUP_ID_LEN {
            return Err(DsError::UnknownGroup);
        }
        let Some((record, next_seq)) = self.store.load_group(gid)? else { return Err(DsError::UnknownGroup) };
        let storage = deserialize_public_state(record.public_state.as_slice())?;
        let group = PublicGroup::load(&storage, &GroupId::from_slice(gid))
            .map_err(|e| DsError::Storage(StoreError::Corrupt { what: "group public state", detail: e.to_string() }))?
            .ok_or_else(|| {
                DsError::Storage(StoreError::Corrupt { what: "group public state", detail: "incomplete".into() })
            })?;
        let rt = Arc::new(self.make_rt(record, next_seq, storage, group));
        let mut map = self.groups.lock().map_err(|_| DsError::Internal("group map poisoned".into()))?;
        Ok(map.entry(gid.to_vec()).or_insert(rt).clone())
    }

    fn make_rt(&self, record: GroupRecord, next_seq: u64, storage: MemoryStorage, group: PublicGroup) -> GroupRt {
        let members = members_of(&group);
        let removed =
            record.removed.iter().map(|r| (String::from_utf8_lossy(r.user.as_slice()).into_owned(), r.seq)).collect();
        GroupRt {
            tail: Mutex::new(Tail::default()),
            internal_id: record.internal_id,
            group_id: record.group_id.as_slice().to_vec(),
            commit_lock: tokio::sync::Mutex::new(PublicState { storage, group }),
            visible: watch::channel(next_seq - 1).0,
            view: Mutex::new(GroupView { record, next_seq, members, removed }),
        }
    }

    /// Creates a group from its GroupInfo and ratchet tree.
    pub async fn create_group(&self, user: &str, body: &[u8]) -> Result<api::GroupCreatedResponse, DsError> {
        let req = api::GroupCreateBody::tls_deserialize_exact(body)
            .map_err(|e| DsError::MalformedMessage(format!("not a Grove group-create body: {e}")))?;
        let vgi = match parse_mls(req.group_info.as_slice())? {
            MlsMessageBodyIn::GroupInfo(gi) => gi,
            other => {
                return Err(DsError::WrongMessageType(format!(
                    "group_info must be a GroupInfo, got a {}",
                    body_name(&other)
                )))
            }
        };
        let tree = RatchetTreeIn::tls_deserialize_exact(req.ratchet_tree.as_slice())
            .map_err(|e| DsError::MalformedMessage(format!("ratchet_tree is not a TLS-encoded ratchet tree: {e}")))?;
        let gid = vgi.group_id().as_slice().to_vec();
        if gid.is_empty() || gid.len() > MAX_GROUP_ID_LEN {
            return Err(DsError::InvalidGroupInfo(format!("group id must be 1 to {MAX_GROUP_ID_LEN} bytes")));
        }
        let suite = u16::from(vgi.ciphersuite());
        if !SUPPORTED_SUITES.contains(&suite) {
            return Err(DsError::UnsupportedCiphersuite(suite));
        }
        if self.cached_group(&gid)?.is_some() || self.store.load_group(&gid)?.is_some() {
            return Err(DsError::GroupExists);
        }
        let storage = MemoryStorage::default();
        let (group, _gi) = PublicGroup::from_external(&self.crypto, &storage, tree, vgi, ProposalStore::new())
            .map_err(|e| DsError::InvalidGroupInfo(e.to_string()))?;
        let mut creator_found = false;
        for m in group.members() {
            let who = self.check_registered_member(&m.credential, &m.signature_key)?;
            creator_found |= who == user;
        }
        if !creator_found {
            return Err(DsError::InvalidGroupInfo("the creator must be a member of the group".into()));
        }
        let epoch = group.group_context().epoch().as_u64();
        let record = GroupRecord {
            group_id: gid.clone().into(),
            internal_id: self.store.next_internal_id()?,
            epoch,
            ciphersuite: suite,
            public_state: serialize_public_state(&storage)?.into(),
            group_info: req.group_info.clone(),
            removed: Vec::new(),
            created_at: now_secs(),
        };
        if !self.store.create_group(&record)? {
            return Err(DsError::GroupExists);
        }
        // Cache before awaiting the fsync, so a concurrent request for this group
        // cannot load a second runtime (two commit locks) from the store.
        let rt = Arc::new(self.make_rt(record, 1, storage, group));
        self.groups.lock().map_err(|_| DsError::Internal("group map poisoned".into()))?.insert(gid.clone(), rt);
        self.persist().await?;
        self.metrics.groups.inc();
        tracing::info!(group = %api::group_id_to_path(&gid), epoch, "group created");
        Ok(api::GroupCreatedResponse { group_id: api::group_id_to_path(&gid), epoch })
    }

    fn check_sender(&self, user: &str, group: &PublicGroup, sender: &Sender) -> Result<(), DsError> {
        let Sender::Member(leaf) = sender else {
            return Err(DsError::WrongMessageType(
                "only members may send handshake messages (no external senders)".into(),
            ));
        };
        let node = group.leaf(*leaf).ok_or(DsError::SenderMismatch)?;
        let reg = self.registered(user)?;
        if identity_of(node.credential()).as_deref() != Some(user)
            || node.signature_key().as_slice() != reg.signature_key.as_slice()
        {
            return Err(DsError::SenderMismatch);
        }
        Ok(())
    }

    /// Validates and applies a commit bundle; the log entry, the new public
    /// state and the Welcomes land atomically, and durably before this returns.
    pub async fn post_commit(&self, user: &str, gid: &[u8], body: &[u8]) -> Result<api::PostedResponse, DsError> {
        let bundle = api::CommitBundleBody::tls_deserialize_exact(body)
            .map_err(|e| DsError::MalformedMessage(format!("not a Grove commit bundle: {e}")))?;
        let commit_bytes = bundle.commit.as_slice().to_vec();
        let pm = match parse_mls(&commit_bytes)? {
            MlsMessageBodyIn::PublicMessage(pm) => pm,
            MlsMessageBodyIn::PrivateMessage(_) => {
                return Err(DsError::WrongWireFormat(
                    "commits must be sent as PublicMessage so the DS can validate them".into(),
                ))
            }
            other => return Err(DsError::WrongMessageType(format!("expected a Commit, got a {}", body_name(&other)))),
        };
        let protocol: ProtocolMessage = pm.into();
        if protocol.content_type() != ContentType::Commit {
            return Err(DsError::WrongMessageType(format!(
                "expected a commit, got a {} (post it to /messages)",
                content_type_name(protocol.content_type())
            )));
        }
        if protocol.group_id().as_slice() != gid {
            return Err(DsError::GroupIdMismatch);
        }
        let rt = self.group(gid)?;
        let mut public = rt.commit_lock.lock().await;
        let current = Self::check_handshake(user, &rt, &public, &protocol)?;
        let processed =
            public.group.process_message(&self.crypto, protocol).map_err(|e| DsError::InvalidCommit(e.to_string()))?;
        self.check_sender(user, &public.group, processed.sender())?;
        let committer = match processed.sender() {
            Sender::Member(leaf) => *leaf,
            _ => return Err(DsError::WrongMessageType("only members may commit".into())),
        };
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(s) => *s,
            _ => return Err(DsError::InvalidCommit("the message is not a commit".into())),
        };
        // Every member the commit brings in, or whose leaf it changes, must be a
        // registered user with its registered key: a member cannot slip in a
        // key the server's registry does not vouch for.
        let mut added = Vec::new();
        let mut added_refs = HashSet::new();
        for add in staged.add_proposals() {
            let kp = add.add_proposal().key_package();
            let leaf = kp.leaf_node();
            let who = self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice())?;
            let r = kp.hash_ref(&self.crypto).map_err(|e| DsError::Internal(e.to_string()))?;
            added_refs.insert(r.as_slice().to_vec());
            added.push(who);
        }
        for upd in staged.update_proposals() {
            let leaf = upd.update_proposal().leaf_node();
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice())?;
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice())?;
        }
        let welcome_bytes = bundle.welcome.as_slice();
        match (added.is_empty(), welcome_bytes.is_empty()) {
            (true, false) => {
                return Err(DsError::WelcomeMismatch("a Welcome was sent but the commit adds nobody".into()))
            }
            (false, true) => {
                return Err(DsError::WelcomeMismatch("the commit adds members but no Welcome was sent".into()))
            }
            (false, false) => {
                let welcome = match parse_mls(welcome_bytes)? {
                    MlsMessageBodyIn::Welcome(w) => w,
                    other => {
                        return Err(DsError::WrongMessageType(format!(
                            "welcome must be a Welcome, got a {}",
                            body_name(&other)
                        )))
                    }
                };
                let refs: HashSet<Vec<u8>> =
                    welcome.secrets().iter().map(|s| s.new_member().as_slice().to_vec()).collect();
                if refs != added_refs {
                    return Err(DsError::WelcomeMismatch(
                        "the Welcome's recipients are not exactly the KeyPackages the commit adds".into(),
                    ));
                }
            }
            (true, true) => {}
        }
        let new_epoch = current + 1;
        let mut new_group_info = None;
        if !bundle.group_info.as_slice().is_empty() {
            match parse_mls(bundle.group_info.as_slice())? {
                MlsMessageBodyIn::GroupInfo(gi)
                    if gi.group_id().as_slice() == gid && gi.epoch().as_u64() == new_epoch =>
                {
                    new_group_info = Some(gi)
                }
                MlsMessageBodyIn::GroupInfo(_) => {
                    return Err(DsError::InvalidGroupInfo("the GroupInfo is not for this group's new epoch".into()))
                }
                other => {
                    return Err(DsError::WrongMessageType(format!(
                        "group_info must be a GroupInfo, got a {}",
                        body_name(&other)
                    )))
                }
            }
        }

        // Apply on a copy of the state; the cached state changes only after the
        // store accepted the new state.
        let new_storage = clone_storage(&public.storage)?;
        let old_members = rt.view()?.members.clone();
        if let Err(e) = public.group.merge_commit(&new_storage, staged) {
            self.reload_public(&mut public, gid)?;
            return Err(DsError::Internal(format!("merging a validated commit failed: {e}")));
        }
        // The GroupInfo of the new epoch must describe exactly the state the DS
        // computed, signed by the committer's (possibly updated) leaf key.
        if let Some(gi) = new_group_info {
            if let Err(e) = self.verify_group_info(&public.group, committer, gi) {
                self.reload_public(&mut public, gid)?;
                return Err(e);
            }
        }
        let new_members = members_of(&public.group);
        let removed_now: Vec<String> = old_members.keys().filter(|u| !new_members.contains_key(*u)).cloned().collect();
        let state_bytes = serialize_public_state(&new_storage)?;
        let now = now_secs();

        let result = {
            let mut view = rt.view()?;
            let seq = view.next_seq;
            let mut record = view.record.clone();
            record.epoch = new_epoch;
            record.public_state = state_bytes.into();
            if !bundle.group_info.as_slice().is_empty() {
                record.group_info = bundle.group_info.clone();
            }
            let mut removed = view.removed.clone();
            for u in &removed_now {
                removed.insert(u.clone(), seq);
            }
            for u in new_members.keys() {
                removed.remove(u);
            }
            record.removed =
                removed.iter().map(|(u, s)| RemovedMember { user: u.as_bytes().to_vec().into(), seq: *s }).collect();
            let entry =
                LogEntry { seq, epoch: current, kind: EntryKind::Commit, received_at: now, message: commit_bytes };
            let welcomes: Vec<(String, WelcomeEntry)> = added
                .iter()
                .map(|u| {
                    (
                        u.clone(),
                        WelcomeEntry {
                            id: 0,
                            group_id: gid.to_vec().into(),
                            epoch: new_epoch,
                            received_at: now,
                            message: welcome_bytes.to_vec().into(),
                        },
                    )
                })
                .collect();
            match self.store.append_commit(&record, &entry, &welcomes) {
                Ok(ids) => {
                    rt.remember(entry);
                    view.next_seq += 1;
                    view.record = record;
                    view.members = new_members;
                    view.removed = removed;
                    Ok((seq, ids))
                }
                Err(e) => Err(e),
            }
        };
        let (seq, welcome_ids) = match result {
            Ok(v) => v,
            Err(e) => {
                self.reload_public(&mut public, gid)?;
                return Err(DsError::Storage(e));
            }
        };
        public.storage = new_storage;
        if let Ok(mut p) = self.pending_welcomes.lock() {
            p.extend(welcome_ids.iter().copied());
        }
        // New members start reading after the commit that added them.
        for u in &added {
            self.store.set_cursor(rt.internal_id, u, seq)?;
        }
        let persisted = self.persist().await;
        if let Ok(mut p) = self.pending_welcomes.lock() {
            for id in &welcome_ids {
                p.remove(id);
            }
        }
        persisted?;
        drop(public);
        rt.advance_visible(seq);
        if !welcome_ids.is_empty() {
            self.welcomes.send_modify(|v| *v += 1);
        }
        self.metrics.stored_messages.inc();
        self.metrics.count_accepted("commit");
        tracing::info!(group = %api::group_id_to_path(gid), seq, epoch = new_epoch, added = added.len(), removed = removed_now.len(), "commit accepted");
        Ok(api::PostedResponse { seq, epoch: new_epoch })
    }

    /// Membership, then epoch, of a handshake message, under the commit lock.
    /// Membership comes first, so a non-member learns nothing about the epoch.
    fn check_handshake(
        user: &str,
        rt: &GroupRt,
        public: &PublicState,
        protocol: &ProtocolMessage,
    ) -> Result<u64, DsError> {
        if !rt.view()?.members.contains_key(user) {
            return Err(DsError::NotAMember);
        }
        let current = public.group.group_context().epoch().as_u64();
        let got = protocol.epoch().as_u64();
        if got < current {
            return Err(DsError::StaleEpoch { current, got });
        }
        if got > current {
            return Err(DsError::WrongEpoch { current, got });
        }
        Ok(current)
    }

    fn verify_group_info(
        &self,
        group: &PublicGroup,
        signer: LeafNodeIndex,
        gi: openmls::messages::group_info::VerifiableGroupInfo,
    ) -> Result<(), DsError> {
        let ctx = |c: &GroupContext| c.tls_serialize_detached().map_err(|e| DsError::Internal(e.to_string()));
        if ctx(gi.group_context())? != ctx(group.group_context())? {
            return Err(DsError::InvalidGroupInfo("the GroupInfo's group context is not the new epoch's".into()));
        }
        let leaf =
            group.leaf(signer).ok_or_else(|| DsError::InvalidGroupInfo("the committer left the group".into()))?;
        let key = OpenMlsSignaturePublicKey::new(
            leaf.signature_key().as_slice().to_vec().into(),
            group.ciphersuite().signature_algorithm(),
        )
        .map_err(|e| DsError::InvalidGroupInfo(format!("committer key: {e:?}")))?;
        gi.verify(&self.crypto, &key).map(|_| ()).map_err(|_| {
            DsError::InvalidGroupInfo("the GroupInfo's signature does not verify with the committer's key".into())
        })
    }

    fn reload_public(&self, public: &mut PublicState, gid: &[u8]) -> Result<(), DsError> {
        let group = PublicGroup::load(&public.storage, &GroupId::from_slice(gid))
            .map_err(|e| DsError::Internal(format!("reloading public group: {e}")))?
            .ok_or_else(|| DsError::Internal("public group vanished".into()))?;
        public.group = group;
        Ok(())
    }

    /// Accepts a proposal (PublicMessage) or an application message
    /// (PrivateMessage) into a group's log.
    pub async fn post_message(&self, user: &str, gid: &[u8], body: &[u8]) -> Result<api::PostedResponse, DsError> {
        match parse_mls(body)? {
            MlsMessageBodyIn::PrivateMessage(pm) => {
                let protocol: ProtocolMessage = pm.into();
                if protocol.content_type() != ContentType::Application {
                    return Err(DsError::WrongWireFormat(format!(
                        "a {} must be sent as PublicMessage so the DS can validate it",
                        content_type_name(protocol.content_type())
                    )));
                }
                if protocol.group_id().as_slice() != gid {
                    return Err(DsError::GroupIdMismatch);
                }
                let rt = self.group(gid)?;
                self.append_application(user, &rt, protocol.epoch().as_u64(), body.to_vec()).await
            }
            MlsMessageBodyIn::PublicMessage(pm) => {
                let protocol: ProtocolMessage = pm.into();
                match protocol.content_type() {
                    ContentType::Application => {
                        Err(DsError::WrongWireFormat("application messages must be PrivateMessage".into()))
                    }
                    ContentType::Commit => Err(DsError::WrongMessageType(
                        "commits go to POST /v1/groups/{id}/commits as a commit bundle".into(),
                    )),
                    ContentType::Proposal => {
                        if protocol.group_id().as_slice() != gid {
                            return Err(DsError::GroupIdMismatch);
                        }
                        let rt = self.group(gid)?;
                        self.append_proposal(user, &rt, protocol, body.to_vec()).await
                    }
                }
            }
            other => Err(DsError::WrongMessageType(format!(
                "expected a PublicMessage proposal or a PrivateMessage, got a {}",
                body_name(&other)
            ))),
        }
    }

    async fn append_application(
        &self,
        user: &str,
        rt: &GroupRt,
        epoch: u64,
        message: Vec<u8>,
    ) -> Result<api::PostedResponse, DsError> {
        let seq = {
            let mut view = rt.view()?;
            if !view.members.contains_key(user) {
                return Err(DsError::NotAMember);
            }
            let current = view.record.epoch;
            if epoch > current {
                return Err(DsError::WrongEpoch { current, got: epoch });
            }
            if epoch + self.limits.app_epoch_window < current {
                return Err(DsError::StaleEpoch { current, got: epoch });
            }
            let seq = view.next_seq;
            let entry = LogEntry { seq, epoch, kind: EntryKind::Application, received_at: now_secs(), message };
            self.store.append_message(rt.internal_id, &entry, None)?;
            rt.remember(entry);
            view.next_seq += 1;
            seq
        };
        self.persist().await?;
        rt.advance_visible(seq);
        self.metrics.stored_messages.inc();
        self.metrics.count_accepted("application");
        Ok(api::PostedResponse { seq, epoch })
    }

    async fn append_proposal(
        &self,
        user: &str,
        rt: &GroupRt,
        protocol: ProtocolMessage,
        message: Vec<u8>,
    ) -> Result<api::PostedResponse, DsError> {
        let gid = rt.group_id.clone();
        let mut public = rt.commit_lock.lock().await;
        let current = Self::check_handshake(user, rt, &public, &protocol)?;
        let processed = public
            .group
            .process_message(&self.crypto, protocol)
            .map_err(|e| DsError::InvalidProposal(e.to_string()))?;
        self.check_sender(user, &public.group, processed.sender())?;
        let queued = match processed.into_content() {
            ProcessedMessageContent::ProposalMessage(q) => *q,
            _ => return Err(DsError::InvalidProposal("the message is not a proposal".into())),
        };
        if let Proposal::Add(add) = queued.proposal() {
            let leaf = add.key_package().leaf_node();
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice())?;
        }
        if let Proposal::Update(upd) = queued.proposal() {
            let leaf = upd.leaf_node();
            self.check_registered_member(leaf.credential(), leaf.signature_key().as_slice())?;
        }
        let new_storage = clone_storage(&public.storage)?;
        if let Err(e) = public.group.add_proposal(&new_storage, queued) {
            self.reload_public(&mut public, &gid)?;
            return Err(DsError::Internal(format!("queueing proposal: {e}")));
        }
        let state_bytes = serialize_public_state(&new_storage)?;
        let result = {
            let mut view = rt.view()?;
            let seq = view.next_seq;
            let mut record = view.record.clone();
            record.public_state = state_bytes.into();
            let entry = LogEntry { seq, epoch: current, kind: EntryKind::Proposal, received_at: now_secs(), message };
            match self.store.append_message(rt.internal_id, &entry, Some(&record)) {
                Ok(()) => {
                    rt.remember(entry);
                    view.next_seq += 1;
                    view.record = record;
                    Ok(seq)
                }
                Err(e) => Err(e),
            }
        };
        let seq = match result {
            Ok(s) => s,
            Err(e) => {
                self.reload_public(&mut public, &gid)?;
                return Err(DsError::Storage(e));
            }
        };
        public.storage = new_storage;
        self.persist().await?;
        drop(public);
        rt.advance_visible(seq);
        self.metrics.stored_messages.inc();
        self.metrics.count_accepted("proposal");
        Ok(api::PostedResponse { seq, epoch: current })
    }

    fn read_access(&self, user: &str, rt: &GroupRt) -> Result<ReadAccess, DsError> {
        let visible = *rt.visible.borrow();
        let view = rt.view()?;
        if view.members.contains_key(user) {
            return Ok(ReadAccess { up_to: visible, removed_at: None });
        }
        match view.removed.get(user) {
            Some(&at) => Ok(ReadAccess { up_to: visible.min(at), removed_at: Some(at) }),
            None => Err(DsError::NotAMember),
        }
    }

    /// Log entries after `after`, waiting up to `wait` for new ones (JSON form).
    pub async fn fetch(
        &self,
        user: &str,
        gid: &[u8],
        after: u64,
        limit: Option<usize>,
        wait: Duration,
    ) -> Result<api::MessagesPage, DsError> {
        let page = self.fetch_page(user, gid, after, limit, wait).await?;
        Ok(api::MessagesPage {
            messages: page
                .entries
                .iter()
                .map(|e| api::MessageOut {
                    seq: e.seq,
                    epoch: e.epoch,
                    kind: e.kind.as_str().into(),
                    message: e.message.clone(),
                })
                .collect(),
            last_seq: page.last_seq,
            removed_at: page.removed_at,
        })
    }

    /// Log entries after `after`, waiting up to `wait` for new ones. Recent
    /// entries come from the group's in-memory tail, older ones from the store.
    pub async fn fetch_page(
        &self,
        user: &str,
        gid: &[u8],
        after: u64,
        limit: Option<usize>,
        wait: Duration,
    ) -> Result<LogPage, DsError> {
        let limit = limit.unwrap_or(100);
        if limit == 0 {
            return Err(DsError::InvalidRequest("limit must be at least 1".into()));
        }
        if limit > self.limits.max_page {
            return Err(DsError::PageTooLarge { asked: limit, max: self.limits.max_page });
        }
        if wait > self.limits.max_wait {
            return Err(DsError::InvalidRequest(format!(
                "wait is above the maximum of {} s",
                self.limits.max_wait.as_secs()
            )));
        }
        let rt = self.group(gid)?;
        let mut visible_rx = rt.visible.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let access = self.read_access(user, &rt)?;
            visible_rx.borrow_and_update();
            let cached = rt.tail.lock().ok().and_then(|t| t.range(after, access.up_to, limit));
            let entries = match cached {
                Some(e) => e,
                None => self
                    .store
                    .fetch_after(rt.internal_id, after, access.up_to, limit)?
                    .into_iter()
                    .map(Arc::new)
                    .collect(),
            };
            let done = !entries.is_empty()
                || wait.is_zero()
                || access.removed_at.is_some_and(|at| after >= at)
                || *shutdown.borrow();
            if done {
                return Ok(LogPage { entries, last_seq: access.up_to, removed_at: access.removed_at });
            }
            tokio::select! {
                r = visible_rx.changed() => { if r.is_err() { return Err(DsError::ShuttingDown); } }
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(LogPage { entries: Vec::new(), last_seq: access.up_to, removed_at: access.removed_at });
                }
            }
        }
    }

    /// A receiver that changes when the group's log grows (for streams).
    pub fn subscribe(&self, user: &str, gid: &[u8]) -> Result<watch::Receiver<u64>, DsError> {
        let rt = self.group(gid)?;
        self.read_access(user, &rt)?;
        Ok(rt.visible.subscribe())
    }

    /// The internal id of a group `user` is a current member of (removed
    /// members are refused: blobs hold current data).
    fn member_group(&self, user: &str, gid: &[u8]) -> Result<u64, DsError> {
        let rt = self.group(gid)?;
        if !rt.view()?.members.contains_key(user) {
            return Err(DsError::NotAMember);
        }
        Ok(rt.internal_id)
    }

    /// Streams an encrypted blob into the group's blob store.
    pub async fn put_blob<S, E>(&self, user: &str, gid: &[u8], body: S) -> Result<api::BlobCreatedResponse, DsError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let internal = self.member_group(user, gid)?;
        let (blob_id, size) = self.blobs.put(internal, body).await?;
        tracing::info!(group = %api::group_id_to_path(gid), %blob_id, size, "blob stored");
        Ok(api::BlobCreatedResponse { blob_id, size })
    }

    /// Opens a blob of the group for a current member.
    pub async fn get_blob(&self, user: &str, gid: &[u8], id: &str) -> Result<(tokio::fs::File, u64), DsError> {
        let internal = self.member_group(user, gid)?;
        self.blobs.open_blob(internal, id).await?.ok_or(DsError::UnknownBlob)
    }

    /// Deletes a blob of the group (current members).
    pub async fn delete_blob(&self, user: &str, gid: &[u8], id: &str) -> Result<(), DsError> {
        let internal = self.member_group(user, gid)?;
        if self.blobs.delete(internal, id).await? {
            Ok(())
        } else {
            Err(DsError::UnknownBlob)
        }
    }

    /// Records that `user` has processed the log through `seq`.
    pub async fn ack(&self, user: &str, gid: &[u8], seq: u64) -> Result<u64, DsError> {
        let rt = self.group(gid)?;
        let access = self.read_access(user, &rt)?;
        if seq > access.up_to {
            return Err(DsError::InvalidRequest(format!(
                "seq {seq} is beyond the last readable entry {}",
                access.up_to
            )));
        }
        let c = self.store.set_cursor(rt.internal_id, user, seq)?;
        self.persist().await?;
        Ok(c)
    }

    /// The group's roster as the DS sees it (members only).
    pub fn group_info(&self, user: &str, gid: &[u8]) -> Result<api::GroupResponse, DsError> {
        let rt = self.group(gid)?;
        let visible = *rt.visible.borrow();
        let view = rt.view()?;
        if !view.members.contains_key(user) {
            return Err(DsError::NotAMember);
        }
        let mut members: Vec<api::MemberOut> = view
            .members
            .iter()
            .map(|(u, m)| api::MemberOut {
                user: u.clone(),
                leaf_index: m.leaf,
                fingerprint: api::fingerprint(&m.signature_key),
            })
            .collect();
        members.sort_by_key(|m| m.leaf_index);
        Ok(api::GroupResponse {
            group_id: api::group_id_to_path(gid),
            epoch: view.record.epoch,
            ciphersuite: view.record.ciphersuite,
            members,
            last_seq: visible,
        })
    }

    /// The latest GroupInfo of the group (members only), or empty.
    pub fn latest_group_info(&self, user: &str, gid: &[u8]) -> Result<Vec<u8>, DsError> {
        let rt = self.group(gid)?;
        let view = rt.view()?;
        if !view.members.contains_key(user) {
            return Err(DsError::NotAMember);
        }
        Ok(view.record.group_info.as_slice().to_vec())
    }

    // ---- welcomes ----------------------------------------------------------------

    /// Pending Welcomes of `user`, waiting up to `wait` for one.
    pub async fn welcomes(
        &self,
        user: &str,
        after: u64,
        limit: Option<usize>,
        wait: Duration,
    ) -> Result<api::WelcomesPage, DsError> {
        let limit = limit.unwrap_or(100);
        if limit == 0 {
            return Err(DsError::InvalidRequest("limit must be at least 1".into()));
        }
        if limit > self.limits.max_page {
            return Err(DsError::PageTooLarge { asked: limit, max: self.limits.max_page });
        }
        if wait > self.limits.max_wait {
            return Err(DsError::InvalidRequest(format!(
                "wait is above the maximum of {} s",
                self.limits.max_wait.as_secs()
            )));
        }
        let mut rx = self.welcomes.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            rx.borrow_and_update();
            let pending = self.pending_welcomes.lock().map(|p| p.clone()).unwrap_or_default();
            let list: Vec<api::WelcomeOut> = self
                .store
                .inbox_after(user, after, limit)?
                .into_iter()
                .filter(|w| !pending.contains(&w.id))
                .map(|w| api::WelcomeOut {
                    id: w.id,
                    group_id: api::group_id_to_path(w.group_id.as_slice()),
                    epoch: w.epoch,
                    message: w.message.into(),
                })
                .collect();
            if !list.is_empty() || wait.is_zero() || *shutdown.borrow() {
                return Ok(api::WelcomesPage { welcomes: list });
            }
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return Err(DsError::ShuttingDown); } }
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(api::WelcomesPage { welcomes: Vec::new() }),
            }
        }
    }

    /// Acknowledges (deletes) one Welcome.
    pub async fn ack_welcome(&self, user: &str, id: u64) -> Result<(), DsError> {
        if !self.store.inbox_ack(user, id)? {
            return Err(DsError::UnknownWelcome);
        }
        self.persist().await
    }

    // ---- retention ---------------------------------------------------------------

    /// Deletes log entries every current member has acknowledged, and entries
    /// older than the TTL. Returns how many were deleted.
    pub async fn run_retention(&self) -> Result<u64, DsError> {
        let cutoff = now_secs().saturating_sub(self.limits.message_ttl_secs);
        let mut total = 0;
        for gid in self.store.group_ids()? {
            let rt = self.group(&gid)?;
            let (members, removed): (Vec<String>, HashMap<String, u64>) = {
                let view = rt.view()?;
                (view.members.keys().cloned().collect(), view.removed.clone())
            };
            let cursors: HashMap<String, u64> = self.store.cursors(rt.internal_id)?.into_iter().collect();
            let cursor = |u: &str| cursors.get(u).copied().unwrap_or(0);
            let mut through = members.iter().map(|m| cursor(m)).min().unwrap_or(0);
            // A removed member still needs the log up to the commit that removed
            // it (that is how it learns of the removal): keep that range until it
            // acknowledged it, or until the TTL.
            for (user, at) in &removed {
                if cursor(user) < *at {
                    through = through.min(cursor(user));
                }
            }
            let n = self.store.prune_log(rt.internal_id, through, cutoff)?;
            if n > 0 {
                rt.forget_tail();
            }
            total += n;
        }
        if total > 0 {
            self.persist().await?;
            self.metrics.stored_messages.set(self.store.message_count()? as i64);
        }
        Ok(total)
    }
}
