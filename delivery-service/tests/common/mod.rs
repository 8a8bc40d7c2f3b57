//! Test harness: an in-process grove-ds and real openmls clients speaking its
//! HTTP API (the client library does not exist yet, so tests use openmls
//! directly, as the DS issue allows).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;

use base64::Engine as _;
use grove_ds::api;
use grove_ds::config::Config;
use grove_ds::testing::TestServer;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::Signer as _;
use serde_json::Value;
use tls_codec::{Deserialize as _, Serialize as _};

pub const SUITES: [Ciphersuite; 2] = [
    Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
];

pub fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

pub fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64 from the server")
}

pub async fn start(dir: &Path) -> TestServer {
    start_with(dir, |_| {}).await
}

pub async fn start_with(dir: &Path, f: impl FnOnce(&mut Config)) -> TestServer {
    grove_ds::server::install_crypto_provider();
    let mut c = Config::for_tests(dir.to_path_buf());
    c.rate_limit_per_sec = 0;
    f(&mut c);
    TestServer::start(c).await.expect("start test DS")
}

/// Polls `{url}/v1/health` until it answers 2xx (a spawned `grove-ds` is up);
/// panics after 20 s.
pub async fn wait_healthy(url: &str) {
    let http = http();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/v1/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("grove-ds at {url} did not become healthy");
}

pub fn http() -> reqwest::Client {
    grove_ds::server::install_crypto_provider();
    reqwest::Client::builder().build().expect("http client")
}

/// A test member: identity, openmls provider and an HTTP session.
pub struct Peer {
    pub name: String,
    pub base: String,
    pub http: reqwest::Client,
    pub signer: SignatureKeyPair,
    pub cwk: CredentialWithKey,
    pub provider: OpenMlsRustCrypto,
    pub token: String,
    pub suite: Ciphersuite,
    /// The identity key of a user with devices (`None`: a legacy user, whose
    /// one key signs leaves and logins).
    pub identity: Option<ed25519_dalek::SigningKey>,
    /// The latest device list this peer signed.
    pub devices: Option<grove_proto::identity::DeviceList>,
}

/// Signs with an identity key (raw Ed25519).
pub fn id_sign(k: &ed25519_dalek::SigningKey) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
    use ed25519_dalek::Signer as _;
    move |m| k.sign(m).to_bytes().to_vec()
}

/// A device certificate by `identity` for `device_key`, as a credential.
pub fn device_credential(identity: &ed25519_dalek::SigningKey, user: &str, device_key: &[u8]) -> Credential {
    use grove_proto::identity::{DeviceCertificate, DeviceCertificateTbs, ED25519};
    let tbs = DeviceCertificateTbs {
        user: user.as_bytes().to_vec().into(),
        identity_key: identity.verifying_key().to_bytes().to_vec().into(),
        device_key: device_key.to_vec().into(),
        signature_scheme: ED25519,
        created_at: 1,
    };
    BasicCredential::new(DeviceCertificate::new(tbs, id_sign(identity)).to_credential_identity()).into()
}

/// A device list signed by `identity`, following `prev` (version 1 without).
pub fn device_list(
    identity: &ed25519_dalek::SigningKey,
    user: &str,
    prev: Option<&grove_proto::identity::DeviceList>,
    devices: &[&[u8]],
) -> grove_proto::identity::DeviceList {
    use grove_proto::identity::{DeviceEntry, DeviceList, DeviceListTbs, ED25519};
    let tbs = DeviceListTbs {
        user: user.as_bytes().to_vec().into(),
        identity_key: identity.verifying_key().to_bytes().to_vec().into(),
        version: prev.map_or(1, |p| p.version() + 1),
        previous: prev.map(|p| p.hash()).unwrap_or_default().into(),
        devices: devices
            .iter()
            .map(|d| DeviceEntry {
                device_key: d.to_vec().into(),
                signature_scheme: ED25519,
                added_at: 1,
                label: vec![].into(),
            })
            .collect(),
        issued_at: 1,
    };
    DeviceList::new(tbs, id_sign(identity))
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    Resp { status, headers, body }
}

impl Peer {
    pub fn new(base: &str, name: &str, suite: Ciphersuite) -> Self {
        let signer = SignatureKeyPair::new(suite.signature_algorithm()).expect("keygen");
        let credential = BasicCredential::new(name.as_bytes().to_vec()).into();
        let cwk = CredentialWithKey { credential, signature_key: signer.public().into() };
        Peer {
            name: name.into(),
            base: base.into(),
            http: http(),
            signer,
            cwk,
            provider: OpenMlsRustCrypto::default(),
            token: String::new(),
            suite,
            identity: None,
            devices: None,
        }
    }

    /// A user with an identity key and this peer as its one device.
    pub fn with_identity(base: &str, name: &str, suite: Ciphersuite) -> Self {
        let identity = ed25519_dalek::SigningKey::from_bytes(&rand_bytes());
        Self::device_of(base, name, suite, identity)
    }

    /// A new device (own signature key, certified by `identity`) of `name`.
    pub fn device_of(base: &str, name: &str, suite: Ciphersuite, identity: ed25519_dalek::SigningKey) -> Self {
        let mut p = Self::new(base, name, suite);
        p.cwk.credential = device_credential(&identity, name, p.signer.public());
        p.devices = Some(device_list(&identity, name, None, &[p.signer.public()]));
        p.identity = Some(identity);
        p
    }

    /// Publishes `list` as the next device list; returns the response.
    pub async fn publish_devices(&self, list: &grove_proto::identity::DeviceList) -> Resp {
        let path = format!("/v1/users/{}/devices", self.name);
        send(self.post(&path).json(&serde_json::json!({ "device_list": b64(&list.encode()) }))).await
    }

    /// Registers and logs in; panics on failure.
    pub async fn join(base: &str, name: &str, suite: Ciphersuite) -> Self {
        let mut m = Self::new(base, name, suite);
        let r = m.register().await;
        assert!(
            r.status == 201 || r.status == 200,
            "register {name}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        m.login().await;
        m
    }

    pub fn register_body(&self) -> Value {
        let credential = b64(&self.cwk.credential.tls_serialize_detached().unwrap());
        if let Some(identity) = &self.identity {
            let key = identity.verifying_key().to_bytes().to_vec();
            let proof =
                id_sign(identity)(&grove_ds::auth::signed_bytes(grove_ds::auth::REGISTER_LABEL, &self.name, &key));
            let list = self.devices.as_ref().expect("a device list").encode();
            return serde_json::json!({
                "user": self.name, "credential": credential, "signature_key": b64(&key),
                "signature_scheme": 0x0807, "proof": b64(&proof), "device_list": b64(&list),
            });
        }
        let key = self.signer.public().to_vec();
        let proof = self
            .signer
            .sign(&grove_ds::auth::signed_bytes(grove_ds::auth::REGISTER_LABEL, &self.name, &key))
            .expect("sign");
        serde_json::json!({
            "user": self.name,
            "credential": credential,
            "signature_key": b64(&key),
            "signature_scheme": 0x0807,
            "proof": b64(&proof),
        })
    }

    pub async fn register(&self) -> Resp {
        send(self.http.post(format!("{}{}", self.base, api::routes::USERS)).json(&self.register_body())).await
    }

    pub async fn login(&mut self) {
        let t = self.try_login().await;
        assert_eq!(t.status, 200, "token: {}", String::from_utf8_lossy(&t.body));
        self.token = t.json()["token"].as_str().unwrap().to_string();
    }

    /// Challenge, then token (with the device key for a user with devices).
    pub async fn try_login(&self) -> Resp {
        let c = send(
            self.http
                .post(format!("{}{}", self.base, api::routes::AUTH_CHALLENGE))
                .json(&serde_json::json!({"user": self.name})),
        )
        .await;
        assert_eq!(c.status, 200, "challenge: {}", String::from_utf8_lossy(&c.body));
        let challenge = unb64(c.json()["challenge"].as_str().unwrap());
        let sig = self
            .signer
            .sign(&grove_ds::auth::signed_bytes(grove_ds::auth::AUTH_LABEL, &self.name, &challenge))
            .unwrap();
        let mut body = serde_json::json!({
            "user": self.name, "challenge": b64(&challenge), "signature": b64(&sig)
        });
        if self.identity.is_some() {
            body["device_key"] = serde_json::json!(b64(self.signer.public()));
        }
        send(self.http.post(format!("{}{}", self.base, api::routes::AUTH_TOKEN)).json(&body)).await
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{}", self.base, path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{}", self.base, path)).bearer_auth(&self.token)
    }

    pub fn key_package(&self, last_resort: bool) -> KeyPackage {
        let mut b = KeyPackage::builder();
        if last_resort {
            b = b
                .mark_as_last_resort()
                .leaf_node_capabilities(Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build());
        }
        b.build(self.suite, &self.provider, &self.signer, self.cwk.clone()).expect("kp").key_package().clone()
    }

    pub fn kp_upload_body(kps: &[KeyPackage]) -> Vec<u8> {
        api::KeyPackageUploadBody {
            key_packages: kps
                .iter()
                .map(|kp| MlsMessageOut::from(kp.clone()).tls_serialize_detached().unwrap().into())
                .collect(),
        }
        .tls_serialize_detached()
        .unwrap()
    }

    pub async fn upload_key_packages(&self, n: usize, last_resort: bool) -> Resp {
        let mut kps: Vec<KeyPackage> = (0..n).map(|_| self.key_package(false)).collect();
        if last_resort {
            kps.push(self.key_package(true));
        }
        send(
            self.post(api::routes::KEY_PACKAGES)
                .header("content-type", api::MEDIA_KEY_PACKAGES)
                .body(Self::kp_upload_body(&kps)),
        )
        .await
    }

    pub fn suite_u16(&self) -> u16 {
        u16::from(self.suite)
    }

    pub async fn claim(&self, user: &str) -> KeyPackage {
        let r = send(self.post(&api::routes::key_package_claim(&user_name(user), self.suite_u16()))).await;
        assert_eq!(r.status, 200, "claim {user}: {}", String::from_utf8_lossy(&r.body));
        let msg = MlsMessageIn::tls_deserialize_exact(&r.body).unwrap();
        match msg.extract() {
            MlsMessageBodyIn::KeyPackage(kp) => kp.validate(self.provider.crypto(), ProtocolVersion::Mls10).unwrap(),
            _ => panic!("not a key package"),
        }
    }

    pub fn create_config(&self) -> MlsGroupCreateConfig {
        MlsGroupCreateConfig::builder()
            .ciphersuite(self.suite)
            .use_ratchet_tree_extension(true)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    pub fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    pub fn group_create_body(&self, group: &MlsGroup) -> Vec<u8> {
        let gi = group.export_group_info(self.provider.crypto(), &self.signer, false).unwrap();
        api::GroupCreateBody {
            group_info: gi.tls_serialize_detached().unwrap().into(),
            ratchet_tree: group.export_ratchet_tree().tls_serialize_detached().unwrap().into(),
        }
        .tls_serialize_detached()
        .unwrap()
    }

    /// Creates a group locally and on the DS.
    pub async fn create_group(&self) -> (MlsGroup, String) {
        let group = MlsGroup::new(&self.provider, &self.signer, &self.create_config(), self.cwk.clone()).unwrap();
        let r = send(
            self.post(api::routes::GROUPS)
                .header("content-type", api::MEDIA_GROUP_CREATE)
                .body(self.group_create_body(&group)),
        )
        .await;
        assert_eq!(r.status, 201, "create group: {}", String::from_utf8_lossy(&r.body));
        let gid = api::GroupId::from_bytes(group.group_id().as_slice()).expect("a valid group id").to_path();
        assert_eq!(r.json()["group_id"], gid);
        (group, gid)
    }

    pub async fn post_bundle(
        &self,
        gid: &str,
        commit: &MlsMessageOut,
        welcome: Option<&MlsMessageOut>,
        gi: Option<&MlsMessageOut>,
    ) -> Resp {
        let body = api::CommitBundleBody {
            commit: commit.tls_serialize_detached().unwrap().into(),
            welcome: welcome.map(|w| w.tls_serialize_detached().unwrap()).unwrap_or_default().into(),
            group_info: gi.map(|g| g.tls_serialize_detached().unwrap()).unwrap_or_default().into(),
        };
        send(
            self.post(&api::routes::commits(&gid_of(gid)))
                .header("content-type", api::MEDIA_COMMIT_BUNDLE)
                .body(body.tls_serialize_detached().unwrap()),
        )
        .await
    }

    /// Posts an openmls commit bundle as it is: commit, Welcome if any, and
    /// the new epoch's GroupInfo (which the DS requires).
    pub async fn post_commit_bundle(&self, gid: &str, b: &CommitMessageBundle) -> Resp {
        let gi = b.group_info().cloned().map(MlsMessageOut::from);
        self.post_bundle(gid, b.commit(), b.to_welcome_msg().as_ref(), gi.as_ref()).await
    }

    /// Adds members (claims their key packages), posts the bundle, merges on 201.
    pub async fn add(&self, group: &mut MlsGroup, gid: &str, users: &[&str]) -> Resp {
        let mut kps = Vec::new();
        for u in users {
            kps.push(self.claim(u).await);
        }
        let (commit, welcome, gi) = group.add_members(&self.provider, &self.signer, &kps).unwrap();
        let gi = gi.map(MlsMessageOut::from);
        let r = self.post_bundle(gid, &commit, Some(&welcome), gi.as_ref()).await;
        if r.status == 201 {
            group.merge_pending_commit(&self.provider).unwrap();
        } else {
            group.clear_pending_commit(self.provider.storage()).unwrap();
        }
        r
    }

    pub fn leaf_of(group: &MlsGroup, user: &str) -> LeafNodeIndex {
        group
            .members()
            .find(|m| BasicCredential::try_from(m.credential.clone()).unwrap().identity() == user.as_bytes())
            .map(|m| m.index)
            .unwrap_or_else(|| panic!("{user} not in group"))
    }

    /// The leaf whose signature key is `key`.
    pub fn leaf_of_key(group: &MlsGroup, key: &[u8]) -> LeafNodeIndex {
        group.members().find(|m| m.signature_key == key).map(|m| m.index).expect("no leaf with that key")
    }

    pub async fn remove(&self, group: &mut MlsGroup, gid: &str, users: &[&str]) -> Resp {
        let leaves: Vec<LeafNodeIndex> = users.iter().map(|u| Self::leaf_of(group, u)).collect();
        let (commit, welcome, gi) = group.remove_members(&self.provider, &self.signer, &leaves).unwrap();
        assert!(welcome.is_none());
        let gi = gi.map(MlsMessageOut::from);
        let r = self.post_bundle(gid, &commit, None, gi.as_ref()).await;
        if r.status == 201 {
            group.merge_pending_commit(&self.provider).unwrap();
        } else {
            group.clear_pending_commit(self.provider.storage()).unwrap();
        }
        r
    }

    pub fn app_bytes(&self, group: &mut MlsGroup, text: &[u8]) -> Vec<u8> {
        group.create_message(&self.provider, &self.signer, text).unwrap().tls_serialize_detached().unwrap()
    }

    pub async fn post_raw(&self, gid: &str, bytes: Vec<u8>) -> Resp {
        send(self.post(&api::routes::messages(&gid_of(gid))).header("content-type", api::MEDIA_MLS).body(bytes)).await
    }

    pub async fn send_text(&self, group: &mut MlsGroup, gid: &str, text: &str) -> Resp {
        let bytes = self.app_bytes(group, text.as_bytes());
        self.post_raw(gid, bytes).await
    }

    pub async fn fetch(&self, gid: &str, after: u64) -> Resp {
        send(self.get(&api::routes::fetch(&gid_of(gid), after, 500, None))).await
    }

    /// Every stored log entry of the group, page by page: seq -> bytes.
    pub async fn whole_log(&self, gid: &str) -> std::collections::BTreeMap<u64, Vec<u8>> {
        let mut stored = std::collections::BTreeMap::new();
        let mut after = 0;
        loop {
            let page = self.fetch(gid, after).await;
            assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
            let msgs = page.json()["messages"].as_array().cloned().unwrap_or_default();
            if msgs.is_empty() {
                return stored;
            }
            for m in msgs {
                after = m["seq"].as_u64().unwrap();
                stored.insert(after, unb64(m["message"].as_str().unwrap()));
            }
        }
    }

    /// Joins from the first pending Welcome for `gid`; acknowledges it.
    pub async fn accept_welcome(&self, gid: &str) -> MlsGroup {
        let r = send(self.get(api::routes::WELCOMES)).await;
        assert_eq!(r.status, 200, "welcomes: {}", String::from_utf8_lossy(&r.body));
        let list = r.json()["welcomes"].as_array().cloned().unwrap_or_default();
        let w = list
            .iter()
            .find(|w| w["group_id"] == gid)
            .unwrap_or_else(|| panic!("{} has no welcome for {gid}: {list:?}", self.name));
        let msg = MlsMessageIn::tls_deserialize_exact(unb64(w["message"].as_str().unwrap())).unwrap();
        let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else { panic!("not a welcome") };
        let group = StagedWelcome::new_from_welcome(&self.provider, &Self::join_config(), welcome, None)
            .unwrap()
            .into_group(&self.provider)
            .unwrap();
        let id = w["id"].as_u64().unwrap();
        let a =
            send(self.http.delete(format!("{}{}", self.base, api::routes::welcome(id))).bearer_auth(&self.token)).await;
        assert_eq!(a.status, 204);
        group
    }

    /// Fetches the log after `*cursor` and processes every entry; returns the
    /// application messages decrypted. Own commits are skipped (already merged).
    pub async fn sync(&self, group: &mut MlsGroup, gid: &str, cursor: &mut u64) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let r = self.fetch(gid, *cursor).await;
            assert_eq!(r.status, 200, "{} fetch: {}", self.name, String::from_utf8_lossy(&r.body));
            let page = r.json();
            let msgs = page["messages"].as_array().cloned().unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                *cursor = m["seq"].as_u64().unwrap();
                let msg = MlsMessageIn::tls_deserialize_exact(unb64(m["message"].as_str().unwrap())).unwrap();
                let pm = msg.try_into_protocol_message().unwrap();
                if pm.epoch() < group.epoch() {
                    continue; // our own commit, or something from before we joined
                }
                match group.process_message(&self.provider, pm) {
                    Ok(processed) => match processed.into_content() {
                        ProcessedMessageContent::ApplicationMessage(a) => {
                            out.push(String::from_utf8(a.into_bytes()).unwrap())
                        }
                        ProcessedMessageContent::StagedCommitMessage(s) => {
                            group.merge_staged_commit(&self.provider, *s).unwrap()
                        }
                        ProcessedMessageContent::ProposalMessage(p) => {
                            group.store_pending_proposal(self.provider.storage(), *p).unwrap()
                        }
                        _ => {}
                    },
                    Err(e) => panic!("{} processing seq {}: {e:?}", self.name, cursor),
                }
            }
        }
    }
}

pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap();
                if data.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

/// A group id from its URL form (the helpers take the form tests print).
pub fn gid_of(path: &str) -> api::GroupId {
    api::GroupId::from_path(path).expect("a valid group id")
}

/// A user name (tests use valid ones).
pub fn user_name(user: &str) -> api::UserName {
    api::UserName::parse(user).expect("a valid user name")
}

pub fn rand_bytes() -> [u8; 32] {
    use rand::RngCore as _;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

// Key transparency: the directory's keys, lookups and audits, verified.

pub async fn kt_keys(p: &Peer) -> grove_proto::kt::KtKeys {
    let r = send(p.get(api::routes::KT_KEYS)).await;
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}

pub async fn kt_lookup(p: &Peer, user: &str) -> Resp {
    send(p.get(&api::routes::kt_lookup(&user_name(user)))).await
}

/// `user`'s verified directory value, looked up by `p`.
pub async fn kt_verified(p: &Peer, user: &str) -> grove_proto::kt::VerifiedValue {
    let r = kt_lookup(p, user).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let l: grove_proto::kt::LookupResponse = serde_json::from_slice(&r.body).unwrap();
    grove_proto::kt::verify_lookup(&kt_keys(p).await, &l.head, user, &l.proof).unwrap()
}

pub async fn kt_audit(p: &Peer, from: u64, to: u64) -> Result<(), String> {
    let r = send(p.http.get(format!("{}{}", p.base, api::routes::kt_audit(from, to)))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let a: grove_proto::kt::AuditResponse = serde_json::from_slice(&r.body).unwrap();
    let keys = kt_keys(p).await;
    let mut roots = Vec::new();
    for h in &a.heads {
        roots.push(h.verify(&keys.head_key).map_err(|e| e.to_string())?);
    }
    let proof = grove_proto::kt::decode_audit_proof(&a.proof).map_err(|e| e.to_string())?;
    akd::auditor::audit_verify::<grove_proto::kt::KtConfig>(roots, proof).await.map_err(|e| e.to_string())
}
