//! A foreign client over the real Delivery Service.
//!
//! `bob` is an mls-rs client that speaks the DS HTTP API on its own, written
//! from `docs/api.md` only: it builds every request body by hand (JSON with
//! standard base64, the §2.3 TLS bodies with their RFC 9420 varint prefixes)
//! and uses no Grove crate. `alice` is a raw openmls client on Grove's client
//! store (`grove_client::storage::GroveProvider`) using the DS wire types of
//! `grove-proto`, as `delivery-service/tests/common/mod.rs` does.
//!
//! Flow, for ciphersuites 0x0001, 0x0002 and 0x0003, on a fresh in-process DS each:
//! both register (proof of possession) and log in (challenge → token); bob
//! finds that a KeyPackage with mls-rs's default lifetime (a year) is refused
//! (the DS caps it at 100 days) and uploads one valid for 30 days; alice creates a group, claims bob's KeyPackage,
//! commits the Add and posts the bundle; bob finds the Welcome in his inbox,
//! joins, deletes it, fetches the group log, reads alice's message, acks, and
//! answers; then bob commits a self-update through the DS (which validates it
//! with its `PublicGroup`); alice fetches the log, reads the answer and
//! processes bob's commit; both agree on the epoch authenticator and an
//! exported secret; a message from alice in the new epoch reaches bob. Then
//! bob adds `carol` (openmls) through the DS: he claims her KeyPackage and
//! posts a commit bundle with his Welcome and the new epoch's GroupInfo,
//! which the DS checks with openmls and then serves; carol joins from her
//! inbox, alice processes bob's commit, all three agree, and bob's next
//! message reaches both. Last, bob posts an Update proposal (which the DS
//! checks and queues), alice commits it by reference through the DS, bob and
//! carol process the commit, and all three agree again.
//!
//! Then the other way round: `erin` (mls-rs, from docs/api.md alone) creates
//! a group on the DS (`GroupCreate` with mls-rs's GroupInfo and ratchet tree)
//! and adds `frank` (openmls), who joins from his inbox; they agree and talk
//! both ways.

use std::time::Duration;

use serde_json::Value;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const EXPORT_LABEL: &str = "grove foreign client";

/// An HTTP answer.
struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> TestResult<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    fn expect(self, what: &str, status: u16) -> TestResult<Self> {
        if self.status != status {
            return Err(format!(
                "{what}: HTTP {} (expected {status}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
            .into());
        }
        Ok(self)
    }
}

async fn send(rb: reqwest::RequestBuilder) -> TestResult<Resp> {
    let r = rb.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await?.to_vec();
    Ok(Resp { status, headers, body })
}

/// Standard base64 with padding (docs/api.md §2.1).
fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn unb64(v: &Value) -> TestResult<Vec<u8>> {
    use base64::Engine as _;
    let s = v.as_str().ok_or("expected a base64 string")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

/// Base64url without padding: group ids in paths (docs/api.md §2.1).
fn b64url(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// `label 0x00 user 0x00 data` (docs/api.md §3.2).
fn signed_string(label: &str, user: &str, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(label.as_bytes());
    v.push(0);
    v.extend_from_slice(user.as_bytes());
    v.push(0);
    v.extend_from_slice(data);
    v
}

/// RFC 9420 §2.1.2 variable-length prefix, shortest form (docs/api.md §2.3).
fn varint(len: usize) -> Vec<u8> {
    match len {
        0..=63 => vec![len as u8],
        64..=16_383 => ((len as u16) | 0x4000).to_be_bytes().to_vec(),
        16_384..=0x3fff_ffff => ((len as u32) | 0x8000_0000).to_be_bytes().to_vec(),
        _ => panic!("too long for an MLS varint"),
    }
}

/// `opaque x<V>`.
fn opaque(v: &[u8]) -> Vec<u8> {
    let mut out = varint(v.len());
    out.extend_from_slice(v);
    out
}

// ------------------------------------------------------------------------
// bob: mls-rs, talking to the DS from docs/api.md alone.

mod bob {
    use std::time::Duration;

    use mls_rs::client_builder::MlsConfig;
    use mls_rs::group::ReceivedMessage;
    use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
    use mls_rs::identity::SigningIdentity;
    use mls_rs::mls_rs_codec::MlsEncode;
    use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};
    use mls_rs::{CipherSuite, CipherSuiteProvider, Client, CryptoProvider, ExtensionList, Group, MlsMessage};
    use mls_rs_crypto_rustcrypto::RustCryptoProvider;
    use serde_json::json;

    use super::{b64, b64url, opaque, send, signed_string, unb64, Resp, TestResult};

    /// KeyPackage lifetime: docs/api.md §5.7 refuses `not_after` beyond
    /// 100 days (mls-rs defaults to a year).
    const KEY_PACKAGE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

    pub(super) struct Bob<C: MlsConfig> {
        pub(super) name: String,
        suite: u16,
        base: String,
        http: reqwest::Client,
        token: String,
        client: Client<C>,
        secret: mls_rs::crypto::SignatureSecretKey,
        public: Vec<u8>,
        credential: Vec<u8>,
        pub(super) group: Option<Group<C>>,
        /// Group log cursor: the last `seq` processed.
        cursor: u64,
        /// Sequence numbers of our own application messages (skipped on fetch).
        own: Vec<u64>,
    }

    pub(super) fn new(base: &str, name: &str, suite: u16) -> TestResult<Bob<impl MlsConfig>> {
        let cs = CipherSuite::new(suite);
        let crypto = RustCryptoProvider::new();
        let csp = crypto.cipher_suite_provider(cs).ok_or("suite not in mls-rs RustCrypto")?;
        let (secret, public) = csp.signature_key_generate().map_err(|e| format!("{e:?}"))?;
        let credential = BasicCredential::new(name.as_bytes().to_vec()).into_credential();
        let credential_bytes = credential.mls_encode_to_vec()?;
        let identity = SigningIdentity::new(credential, public.clone());
        let client = Client::builder()
            .identity_provider(BasicIdentityProvider)
            .crypto_provider(crypto)
            .key_package_lifetime(KEY_PACKAGE_LIFETIME)
            // The ratchet tree goes in Welcomes (mls-rs's default; the DS
            // serves no tree, §5.14), and commits come with the new epoch's
            // GroupInfo for the commit bundle (§2.3).
            .mls_rules(DefaultMlsRules::new().with_commit_options(
                CommitOptions::new().with_ratchet_tree_extension(true).with_allow_external_commit(true),
            ))
            .signing_identity(identity, secret.clone(), cs)
            .build();
        Ok(Bob {
            name: name.into(),
            suite,
            base: base.into(),
            http: reqwest::Client::new(),
            token: String::new(),
            client,
            secret,
            public: public.as_bytes().to_vec(),
            credential: credential_bytes,
            group: None,
            cursor: 0,
            own: Vec::new(),
        })
    }

    impl<C: MlsConfig> Bob<C> {
        fn sign(&self, data: &[u8]) -> TestResult<Vec<u8>> {
            let csp = RustCryptoProvider::new()
                .cipher_suite_provider(CipherSuite::new(self.suite))
                .ok_or("suite not in mls-rs RustCrypto")?;
            csp.sign(&self.secret, data).map_err(|e| format!("{e:?}").into())
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        async fn get(&self, path: &str) -> TestResult<Resp> {
            send(self.http.get(self.url(path)).bearer_auth(&self.token)).await
        }

        async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> TestResult<Resp> {
            send(
                self.http.post(self.url(path)).bearer_auth(&self.token).header("content-type", content_type).body(body),
            )
            .await
        }

        /// §3.3 registration with proof of possession, §3.4 challenge → token.
        pub(super) async fn register_and_login(&mut self) -> TestResult {
            // §3.2: Ed25519 (2055) for suites 0x0001 and 0x0003; ECDSA
            // P-256 with SHA-256 (1027) for 0x0002.
            let scheme = if self.suite == 0x0002 { 1027 } else { 2055 };
            let proof = self.sign(&signed_string("grove-v1-register", &self.name, &self.public))?;
            let body = json!({
                "user": self.name,
                "credential": b64(&self.credential),
                "signature_key": b64(&self.public),
                "signature_scheme": scheme,
                "proof": b64(&proof),
            });
            let r = send(self.http.post(self.url("/v1/users")).json(&body)).await?.expect("register", 201)?;
            if r.json()?["created"] != json!(true) {
                return Err("registration: created is not true".into());
            }
            // The same request again is idempotent.
            let r = send(self.http.post(self.url("/v1/users")).json(&body)).await?.expect("register again", 200)?;
            if r.json()?["created"] != json!(false) {
                return Err("second registration: created is not false".into());
            }

            let r = send(self.http.post(self.url("/v1/auth/challenge")).json(&json!({"user": self.name})))
                .await?
                .expect("challenge", 200)?;
            let challenge = unb64(&r.json()?["challenge"])?;
            if challenge.len() != 32 {
                return Err(format!("challenge of {} bytes", challenge.len()).into());
            }
            let signature = self.sign(&signed_string("grove-v1-auth", &self.name, &challenge))?;
            let r = send(self.http.post(self.url("/v1/auth/token")).json(&json!({
                "user": self.name,
                "challenge": b64(&challenge),
                "signature": b64(&signature),
            })))
            .await?
            .expect("token", 200)?;
            self.token = r.json()?["token"].as_str().ok_or("no token")?.to_string();
            Ok(())
        }

        /// §5.7: one one-time KeyPackage in a `KeyPackageUpload`.
        pub(super) async fn upload_key_package(&mut self) -> TestResult {
            let kp =
                self.client.generate_key_package_message(ExtensionList::default(), ExtensionList::default(), None)?;
            let body = opaque(&opaque(&kp.to_bytes()?));
            let r = self
                .post("/v1/key-packages", "application/vnd.grove.key-packages", body)
                .await?
                .expect("key package upload", 201)?;
            let v = r.json()?;
            if v["accepted"] != json!(1) || v["one_time"] != json!(1) {
                return Err(format!("upload answer {v}").into());
            }
            let r = self.get(&format!("/v1/key-packages?ciphersuite={}", self.suite)).await?.expect("count", 200)?;
            if r.json()?["one_time"] != json!(1) {
                return Err("count after upload is not 1".into());
            }
            Ok(())
        }

        /// §5.7 item 6: a KeyPackage valid for more than 100 days is refused.
        /// mls-rs's default lifetime is a year, so a client that keeps the
        /// default gets `400 invalid_key_package` with `index` 0.
        pub(super) async fn default_lifetime_key_package_is_refused(&self) -> TestResult {
            let cs = CipherSuite::new(self.suite);
            let (identity, _) = self.client.signing_identity()?;
            let client = Client::builder()
                .identity_provider(BasicIdentityProvider)
                .crypto_provider(RustCryptoProvider::new())
                .signing_identity(identity.clone(), self.secret.clone(), cs)
                .build();
            let kp = client.generate_key_package_message(ExtensionList::default(), ExtensionList::default(), None)?;
            let body = opaque(&opaque(&kp.to_bytes()?));
            let r = self
                .post("/v1/key-packages", "application/vnd.grove.key-packages", body)
                .await?
                .expect("upload of a one-year KeyPackage", 400)?;
            let v = r.json()?;
            if v["code"] != json!("invalid_key_package") || v["index"] != json!(0) {
                return Err(format!("one-year KeyPackage refused with {v}").into());
            }
            Ok(())
        }

        /// §5.10: creates a one-member group with mls-rs and registers it on
        /// the DS with a `GroupCreate` (§2.3: the GroupInfo message, then the
        /// ratchet tree with its own `<V>` prefix inside the field's).
        /// Returns the group id (base64url).
        pub(super) async fn create_group(&mut self, group_id: &[u8]) -> TestResult<String> {
            let group = self.client.create_group_with_id(
                group_id.to_vec(),
                ExtensionList::default(),
                ExtensionList::default(),
                None,
            )?;
            let mut body = opaque(&group.group_info_message(false)?.to_bytes()?);
            body.extend(opaque(&group.export_tree().to_bytes()?));
            let gid = b64url(group_id);
            self.group = Some(group);
            let r = self.post("/v1/groups", "application/vnd.grove.group-create", body).await?.expect("create", 201)?;
            let v = r.json()?;
            if v["group_id"] != json!(gid) || v["epoch"] != json!(0) {
                return Err(format!("create answer {v}").into());
            }
            Ok(gid)
        }

        /// §5.18/5.19: waits for a Welcome, joins from it, deletes it.
        /// Returns the group id (base64url).
        pub(super) async fn accept_welcome(&mut self) -> TestResult<String> {
            let r = self.get("/v1/welcomes?wait=10").await?.expect("welcomes", 200)?;
            let page = r.json()?;
            let w = page["welcomes"].as_array().and_then(|l| l.first()).ok_or("no Welcome in the inbox")?.clone();
            let welcome = MlsMessage::from_bytes(&unb64(&w["message"])?)?;
            // The DS serves no ratchet tree: the Welcome carries it (§5.14).
            let (group, _) = self.client.join_group(None, &welcome, None)?;
            let gid = b64url(group.group_id());
            if w["group_id"] != json!(gid) {
                return Err(format!("Welcome listed for {} but joins {gid}", w["group_id"]).into());
            }
            if w["epoch"] != json!(group.current_epoch()) {
                return Err(format!("Welcome epoch {} but joined epoch {}", w["epoch"], group.current_epoch()).into());
            }
            self.group = Some(group);
            let id = w["id"].as_u64().ok_or("no Welcome id")?;
            send(self.http.delete(self.url(&format!("/v1/welcomes/{id}"))).bearer_auth(&self.token))
                .await?
                .expect("delete Welcome", 204)?;
            // The DS's view of the group lists both users.
            let r = self.get(&format!("/v1/groups/{gid}")).await?.expect("group view", 200)?;
            let members = r.json()?["members"].as_array().map(Vec::len).unwrap_or(0);
            if members != 2 {
                return Err(format!("the DS lists {members} members").into());
            }
            Ok(gid)
        }

        /// §5.16/5.17: fetches the log after the cursor, processes every entry
        /// (skipping those from before the join and our own), acks; returns the
        /// application messages read.
        pub(super) async fn sync(&mut self, gid: &str) -> TestResult<Vec<Vec<u8>>> {
            let mut read = Vec::new();
            loop {
                let r = self
                    .get(&format!("/v1/groups/{gid}/messages?after={}&limit=100", self.cursor))
                    .await?
                    .expect("fetch", 200)?;
                let page = r.json()?;
                let entries = page["messages"].as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    break;
                }
                for e in entries {
                    let seq = e["seq"].as_u64().ok_or("no seq")?;
                    self.cursor = seq;
                    let group = self.group.as_mut().ok_or("not in a group")?;
                    // §6.1: entries from before our epoch (the commit that
                    // added us, our own merged commits) are skipped.
                    if e["epoch"].as_u64().ok_or("no epoch")? < group.current_epoch() || self.own.contains(&seq) {
                        continue;
                    }
                    let msg = MlsMessage::from_bytes(&unb64(&e["message"])?)?;
                    match group.process_incoming_message(msg)? {
                        ReceivedMessage::ApplicationMessage(m) => read.push(m.data().to_vec()),
                        ReceivedMessage::Commit(_) | ReceivedMessage::Proposal(_) => {}
                        other => return Err(format!("unexpected log entry {other:?}").into()),
                    }
                }
            }
            let body = serde_json::to_vec(&json!({"seq": self.cursor}))?;
            self.post(&format!("/v1/groups/{gid}/ack"), "application/json", body).await?.expect("ack", 204)?;
            Ok(read)
        }

        /// §5.15: an Update proposal (PublicMessage) for a later commit.
        pub(super) async fn propose_update(&mut self, gid: &str) -> TestResult {
            let group = self.group.as_mut().ok_or("not in a group")?;
            let msg = group.propose_update(Vec::new())?.to_bytes()?;
            let r =
                self.post(&format!("/v1/groups/{gid}/messages"), "message/mls", msg).await?.expect("proposal", 201)?;
            self.own.push(r.json()?["seq"].as_u64().ok_or("no seq")?);
            Ok(())
        }

        /// §5.15: an application message (PrivateMessage).
        pub(super) async fn send_text(&mut self, gid: &str, text: &[u8]) -> TestResult {
            let group = self.group.as_mut().ok_or("not in a group")?;
            let msg = group.encrypt_application_message(text, Vec::new())?.to_bytes()?;
            let r = self.post(&format!("/v1/groups/{gid}/messages"), "message/mls", msg).await?.expect("post", 201)?;
            self.own.push(r.json()?["seq"].as_u64().ok_or("no seq")?);
            Ok(())
        }

        /// §5.14: a self-update commit (PublicMessage) in a `CommitBundle`
        /// with no Welcome and the new epoch's GroupInfo; merged only after
        /// the 201.
        pub(super) async fn self_update(&mut self, gid: &str) -> TestResult {
            let group = self.group.as_mut().ok_or("not in a group")?;
            let out = group.commit(Vec::new())?;
            let group_info = out.external_commit_group_info.as_ref().ok_or("no GroupInfo")?.to_bytes()?;
            let mut body = opaque(&out.commit_message.to_bytes()?);
            body.extend(opaque(&[]));
            body.extend(opaque(&group_info));
            let r =
                self.post(&format!("/v1/groups/{gid}/commits"), "application/vnd.grove.commit-bundle", body).await?;
            let group = self.group.as_mut().ok_or("not in a group")?;
            if r.status != 201 {
                group.clear_pending_commit();
                return Err(format!("commit: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)).into());
            }
            group.apply_pending_commit()?;
            if r.json()?["epoch"] != json!(group.current_epoch()) {
                return Err("the DS's new epoch differs from ours".into());
            }
            Ok(())
        }

        /// §5.9 then §5.14: claims `user`'s KeyPackage, commits the Add and
        /// posts the bundle with the Welcome and the new epoch's GroupInfo;
        /// merges only after the 201.
        pub(super) async fn add(&mut self, gid: &str, user: &str) -> TestResult {
            let r = send(
                self.http
                    .post(self.url(&format!("/v1/key-packages/{user}/claim?ciphersuite={}", self.suite)))
                    .bearer_auth(&self.token),
            )
            .await?
            .expect("claim", 200)?;
            let kind = r.headers.get("grove-key-package-kind").and_then(|v| v.to_str().ok());
            if kind != Some("one-time") {
                return Err(format!("claimed KeyPackage kind {kind:?}").into());
            }
            let kp = MlsMessage::from_bytes(&r.body)?;
            let group = self.group.as_mut().ok_or("not in a group")?;
            let out = group.commit_builder().add_member(kp)?.build()?;
            let welcome = out.welcome_messages.first().ok_or("no Welcome")?.to_bytes()?;
            let group_info = out.external_commit_group_info.as_ref().ok_or("no GroupInfo")?.to_bytes()?;
            let mut body = opaque(&out.commit_message.to_bytes()?);
            body.extend(opaque(&welcome));
            body.extend(opaque(&group_info));
            let r =
                self.post(&format!("/v1/groups/{gid}/commits"), "application/vnd.grove.commit-bundle", body).await?;
            let group = self.group.as_mut().ok_or("not in a group")?;
            if r.status != 201 {
                group.clear_pending_commit();
                return Err(format!("add commit: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)).into());
            }
            group.apply_pending_commit()?;
            // §5.12: the DS now serves the GroupInfo we sent, of our epoch.
            let r = self.get(&format!("/v1/groups/{gid}/group-info")).await?.expect("group-info", 200)?;
            if r.body != group_info {
                return Err("the DS serves another GroupInfo than the one in our bundle".into());
            }
            Ok(())
        }

        pub(super) fn epoch_authenticator(&self) -> TestResult<Vec<u8>> {
            Ok(self.group.as_ref().ok_or("no group")?.epoch_authenticator()?.as_bytes().to_vec())
        }

        pub(super) fn exported(&self) -> TestResult<Vec<u8>> {
            let g = self.group.as_ref().ok_or("no group")?;
            Ok(g.export_secret(super::EXPORT_LABEL.as_bytes(), b"", 32)?.as_bytes().to_vec())
        }
    }
}

// ------------------------------------------------------------------------
// alice: raw openmls on Grove's client store, with grove-proto's wire types.

mod alice {
    use grove_client::storage::GroveProvider;
    use grove_proto as api;
    use openmls::prelude::*;
    use openmls_basic_credential::SignatureKeyPair;
    use openmls_traits::signatures::Signer as _;
    use serde_json::json;
    use tls_codec::{Deserialize as _, Serialize as _};

    use super::{b64, send, unb64, Resp, TestResult};

    pub(super) struct Alice {
        name: String,
        cs: Ciphersuite,
        base: String,
        http: reqwest::Client,
        token: String,
        provider: GroveProvider,
        signer: SignatureKeyPair,
        cwk: CredentialWithKey,
        pub(super) group: Option<MlsGroup>,
        cursor: u64,
        own: Vec<u64>,
        _home: tempfile::TempDir,
    }

    impl Alice {
        pub(super) fn new(base: &str, name: &str, suite: u16) -> TestResult<Self> {
            let cs = Ciphersuite::try_from(suite)?;
            let home = tempfile::tempdir()?;
            let provider = GroveProvider::open(home.path().join("grove"))?;
            let signer = SignatureKeyPair::new(cs.signature_algorithm())?;
            signer.store(provider.storage())?;
            let cwk = CredentialWithKey {
                credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
                signature_key: signer.public().into(),
            };
            Ok(Alice {
                name: name.into(),
                cs,
                base: base.into(),
                http: reqwest::Client::new(),
                token: String::new(),
                provider,
                signer,
                cwk,
                group: None,
                cursor: 0,
                own: Vec::new(),
                _home: home,
            })
        }

        fn post(&self, path: &str) -> reqwest::RequestBuilder {
            self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token)
        }

        pub(super) async fn register_and_login(&mut self) -> TestResult {
            let key = self.signer.public().to_vec();
            let proof = self
                .signer
                .sign(&api::signed_bytes(api::REGISTER_LABEL, &self.name, &key))
                .map_err(|e| format!("{e:?}"))?;
            send(self.http.post(format!("{}/v1/users", self.base)).json(&json!({
                "user": self.name,
                "credential": b64(&self.cwk.credential.tls_serialize_detached()?),
                "signature_key": b64(&key),
                "signature_scheme": self.cs.signature_algorithm() as u16,
                "proof": b64(&proof),
            })))
            .await?
            .expect("alice register", 201)?;
            let r = send(self.http.post(format!("{}/v1/auth/challenge", self.base)).json(&json!({"user": self.name})))
                .await?
                .expect("alice challenge", 200)?;
            let challenge = unb64(&r.json()?["challenge"])?;
            let sig = self
                .signer
                .sign(&api::signed_bytes(api::AUTH_LABEL, &self.name, &challenge))
                .map_err(|e| format!("{e:?}"))?;
            let r = send(self.http.post(format!("{}/v1/auth/token", self.base)).json(&json!({
                "user": self.name, "challenge": b64(&challenge), "signature": b64(&sig),
            })))
            .await?
            .expect("alice token", 200)?;
            self.token = r.json()?["token"].as_str().ok_or("no token")?.to_string();
            Ok(())
        }

        /// Creates the group on the DS (ratchet tree in Welcomes: the DS
        /// serves no tree to joiners).
        pub(super) async fn create_group(&mut self) -> TestResult<String> {
            let config = MlsGroupCreateConfig::builder()
                .ciphersuite(self.cs)
                .use_ratchet_tree_extension(true)
                .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
                .build();
            let group = MlsGroup::new(&self.provider, &self.signer, &config, self.cwk.clone())?;
            let gi = group.export_group_info(self.provider.crypto(), &self.signer, false)?;
            let body = api::GroupCreateBody {
                group_info: gi.tls_serialize_detached()?.into(),
                ratchet_tree: group.export_ratchet_tree().tls_serialize_detached()?.into(),
            }
            .tls_serialize_detached()?;
            let r = send(self.post("/v1/groups").header("content-type", api::MEDIA_GROUP_CREATE).body(body))
                .await?
                .expect("create group", 201)?;
            let gid = api::group_id_to_path(group.group_id().as_slice());
            if r.json()?["group_id"] != json!(gid) {
                return Err("group id differs".into());
            }
            self.group = Some(group);
            Ok(gid)
        }

        /// Claims `user`'s KeyPackage, commits the Add, posts the bundle and
        /// merges on 201.
        pub(super) async fn add(&mut self, gid: &str, user: &str) -> TestResult {
            let r = send(self.post(&format!("/v1/key-packages/{user}/claim?ciphersuite={}", u16::from(self.cs))))
                .await?
                .expect("claim", 200)?;
            if r.headers.get(api::HEADER_KEY_PACKAGE_KIND).and_then(|v| v.to_str().ok()) != Some("one-time") {
                return Err("expected a one-time KeyPackage".into());
            }
            let kp = match MlsMessageIn::tls_deserialize_exact(&r.body)?.extract() {
                MlsMessageBodyIn::KeyPackage(kp) => kp.validate(self.provider.crypto(), ProtocolVersion::Mls10)?,
                _ => return Err("claim did not return a KeyPackage".into()),
            };
            let group = self.group.as_mut().ok_or("no group")?;
            let (commit, welcome, gi) = group.add_members(&self.provider, &self.signer, &[kp])?;
            let body = api::CommitBundleBody {
                commit: commit.tls_serialize_detached()?.into(),
                welcome: welcome.tls_serialize_detached()?.into(),
                group_info: gi
                    .map(MlsMessageOut::from)
                    .map(|g| g.tls_serialize_detached())
                    .transpose()?
                    .unwrap_or_default()
                    .into(),
            }
            .tls_serialize_detached()?;
            let r: Resp = send(
                self.post(&format!("/v1/groups/{gid}/commits"))
                    .header("content-type", api::MEDIA_COMMIT_BUNDLE)
                    .body(body),
            )
            .await?;
            let group = self.group.as_mut().ok_or("no group")?;
            if r.status != 201 {
                group.clear_pending_commit(self.provider.storage())?;
                return Err(format!("add commit: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)).into());
            }
            group.merge_pending_commit(&self.provider)?;
            Ok(())
        }

        /// Commits the proposals received from the log (by reference) and
        /// merges on 201.
        pub(super) async fn commit_pending(&mut self, gid: &str) -> TestResult {
            let group = self.group.as_mut().ok_or("no group")?;
            if group.pending_proposals().next().is_none() {
                return Err("no pending proposal".into());
            }
            let (commit, welcome, gi) = group.commit_to_pending_proposals(&self.provider, &self.signer)?;
            if welcome.is_some() {
                return Err("unexpected Welcome".into());
            }
            let gi = gi.ok_or("no GroupInfo")?;
            let body = api::CommitBundleBody {
                commit: commit.tls_serialize_detached()?.into(),
                welcome: Vec::new().into(),
                group_info: MlsMessageOut::from(gi).tls_serialize_detached()?.into(),
            }
            .tls_serialize_detached()?;
            let r = send(
                self.post(&format!("/v1/groups/{gid}/commits"))
                    .header("content-type", api::MEDIA_COMMIT_BUNDLE)
                    .body(body),
            )
            .await?;
            let group = self.group.as_mut().ok_or("no group")?;
            if r.status != 201 {
                group.clear_pending_commit(self.provider.storage())?;
                return Err(format!("commit: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)).into());
            }
            group.merge_pending_commit(&self.provider)?;
            Ok(())
        }

        pub(super) async fn send_text(&mut self, gid: &str, text: &[u8]) -> TestResult {
            let group = self.group.as_mut().ok_or("no group")?;
            let msg = group.create_message(&self.provider, &self.signer, text)?.tls_serialize_detached()?;
            let r =
                send(self.post(&format!("/v1/groups/{gid}/messages")).header("content-type", api::MEDIA_MLS).body(msg))
                    .await?
                    .expect("alice post", 201)?;
            self.own.push(r.json()?["seq"].as_u64().ok_or("no seq")?);
            Ok(())
        }

        /// Fetches and processes the log; returns the application messages.
        pub(super) async fn sync(&mut self, gid: &str) -> TestResult<Vec<Vec<u8>>> {
            let r = send(
                self.http
                    .get(format!("{}/v1/groups/{gid}/messages?after={}&limit=500", self.base, self.cursor))
                    .bearer_auth(&self.token),
            )
            .await?
            .expect("alice fetch", 200)?;
            let mut read = Vec::new();
            let group = self.group.as_mut().ok_or("no group")?;
            for e in r.json()?["messages"].as_array().cloned().unwrap_or_default() {
                let seq = e["seq"].as_u64().ok_or("no seq")?;
                self.cursor = seq;
                if e["epoch"].as_u64().ok_or("no epoch")? < group.epoch().as_u64() || self.own.contains(&seq) {
                    continue;
                }
                let pm = MlsMessageIn::tls_deserialize_exact(unb64(&e["message"])?)?.try_into_protocol_message()?;
                match group.process_message(&self.provider, pm)?.into_content() {
                    ProcessedMessageContent::ApplicationMessage(a) => read.push(a.into_bytes()),
                    ProcessedMessageContent::StagedCommitMessage(s) => group.merge_staged_commit(&self.provider, *s)?,
                    ProcessedMessageContent::ProposalMessage(p) => {
                        group.store_pending_proposal(self.provider.storage(), *p)?
                    }
                    _ => return Err("unexpected log entry".into()),
                }
            }
            Ok(read)
        }

        /// Uploads one one-time KeyPackage (§5.7).
        pub(super) async fn upload_key_package(&mut self) -> TestResult {
            let kp = KeyPackage::builder().build(self.cs, &self.provider, &self.signer, self.cwk.clone())?;
            let body = api::KeyPackageUploadBody {
                key_packages: vec![MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached()?.into()],
            }
            .tls_serialize_detached()?;
            send(self.post("/v1/key-packages").header("content-type", api::MEDIA_KEY_PACKAGES).body(body))
                .await?
                .expect("upload", 201)?;
            Ok(())
        }

        /// Joins from the Welcome in the inbox (tree in the Welcome) and
        /// deletes it (§5.18, §5.19).
        pub(super) async fn accept_welcome(&mut self, gid: &str) -> TestResult {
            let r = send(self.http.get(format!("{}/v1/welcomes?wait=10", self.base)).bearer_auth(&self.token))
                .await?
                .expect("welcomes", 200)?;
            let page = r.json()?;
            let w = page["welcomes"]
                .as_array()
                .and_then(|l| l.iter().find(|w| w["group_id"] == json!(gid)))
                .ok_or("no Welcome for the group")?
                .clone();
            let MlsMessageBodyIn::Welcome(welcome) =
                MlsMessageIn::tls_deserialize_exact(unb64(&w["message"])?)?.extract()
            else {
                return Err("not a Welcome".into());
            };
            let config = MlsGroupJoinConfig::builder()
                .use_ratchet_tree_extension(true)
                .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
                .build();
            let group =
                StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)?.into_group(&self.provider)?;
            self.group = Some(group);
            let id = w["id"].as_u64().ok_or("no id")?;
            send(self.http.delete(format!("{}/v1/welcomes/{id}", self.base)).bearer_auth(&self.token))
                .await?
                .expect("delete Welcome", 204)?;
            Ok(())
        }

        pub(super) fn epoch_authenticator(&self) -> TestResult<Vec<u8>> {
            Ok(self.group.as_ref().ok_or("no group")?.epoch_authenticator().as_slice().to_vec())
        }

        pub(super) fn exported(&self) -> TestResult<Vec<u8>> {
            let g = self.group.as_ref().ok_or("no group")?;
            Ok(g.export_secret(self.provider.crypto(), super::EXPORT_LABEL, b"", 32)?)
        }
    }
}

fn expect_texts(who: &str, got: &[Vec<u8>], want: &[&[u8]]) -> TestResult {
    if got != want {
        let got: Vec<_> = got.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect();
        return Err(format!("{who} read {got:?}").into());
    }
    Ok(())
}

async fn foreign_client_flow(suite: u16) -> TestResult {
    grove_ds::server::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let mut config = grove_ds::config::Config::for_tests(dir.path().to_path_buf());
    config.rate_limit_per_sec = 0;
    let server = grove_ds::testing::TestServer::start(config).await.map_err(|e| format!("{e:#}"))?;
    let base = server.url();

    let mut bob = bob::new(&base, "bob", suite)?;
    bob.register_and_login().await?;
    bob.default_lifetime_key_package_is_refused().await?;
    bob.upload_key_package().await?;

    let mut alice = alice::Alice::new(&base, "alice", suite)?;
    alice.register_and_login().await?;
    let gid = alice.create_group().await?;
    alice.add(&gid, "bob").await?;
    alice.send_text(&gid, b"hello bob, from openmls").await?;

    let joined = bob.accept_welcome().await?;
    if joined != gid {
        return Err(format!("bob joined {joined}, alice created {gid}").into());
    }
    if bob.epoch_authenticator()? != alice.epoch_authenticator()? {
        return Err("epoch authenticators differ after the join".into());
    }
    expect_texts("bob", &bob.sync(&gid).await?, &[b"hello bob, from openmls"])?;
    bob.send_text(&gid, b"hello alice, from mls-rs").await?;
    bob.self_update(&gid).await?;

    expect_texts("alice", &alice.sync(&gid).await?, &[b"hello alice, from mls-rs"])?;
    if alice.group.as_ref().map(|g| g.epoch().as_u64()) != bob.group.as_ref().map(|g| g.current_epoch()) {
        return Err("epochs differ after bob's commit".into());
    }
    if bob.epoch_authenticator()? != alice.epoch_authenticator()? {
        return Err("epoch authenticators differ after bob's commit".into());
    }
    if bob.exported()? != alice.exported()? {
        return Err("exported secrets differ after bob's commit".into());
    }

    alice.send_text(&gid, b"got it, new epoch").await?;
    expect_texts("bob", &bob.sync(&gid).await?, &[b"got it, new epoch"])?;

    // bob (mls-rs) adds carol (openmls) through the DS: the DS checks bob's
    // Add, his Welcome's recipients and his GroupInfo with openmls.
    let mut carol = alice::Alice::new(&base, "carol", suite)?;
    carol.register_and_login().await?;
    carol.upload_key_package().await?;
    bob.add(&gid, "carol").await?;
    carol.accept_welcome(&gid).await?;
    expect_texts("alice", &alice.sync(&gid).await?, &[])?;
    for (who, auth) in [("alice", alice.epoch_authenticator()?), ("carol", carol.epoch_authenticator()?)] {
        if auth != bob.epoch_authenticator()? {
            return Err(format!("{who} and bob disagree on the epoch authenticator after bob's Add").into());
        }
    }
    if carol.exported()? != bob.exported()? || alice.exported()? != bob.exported()? {
        return Err("exported secrets differ after bob's Add".into());
    }
    bob.send_text(&gid, b"welcome carol").await?;
    expect_texts("carol", &carol.sync(&gid).await?, &[b"welcome carol"])?;
    expect_texts("alice", &alice.sync(&gid).await?, &[b"welcome carol"])?;

    // bob posts an Update proposal (the DS checks it and queues it); alice
    // commits it by reference; bob and carol process the commit.
    bob.propose_update(&gid).await?;
    expect_texts("alice", &alice.sync(&gid).await?, &[])?;
    alice.commit_pending(&gid).await?;
    expect_texts("bob", &bob.sync(&gid).await?, &[])?;
    expect_texts("carol", &carol.sync(&gid).await?, &[])?;
    for (who, auth) in [("alice", alice.epoch_authenticator()?), ("carol", carol.epoch_authenticator()?)] {
        if auth != bob.epoch_authenticator()? {
            return Err(format!("{who} and bob disagree after alice committed bob's proposal").into());
        }
    }
    if carol.exported()? != bob.exported()? || alice.exported()? != bob.exported()? {
        return Err("exported secrets differ after alice committed bob's proposal".into());
    }
    bob.send_text(&gid, b"updated").await?;
    expect_texts("alice", &alice.sync(&gid).await?, &[b"updated"])?;

    // The other way round on the DS: erin (mls-rs) creates a group there and
    // adds frank (openmls); they talk both ways.
    let mut erin = bob::new(&base, "erin", suite)?;
    erin.register_and_login().await?;
    let gid = erin.create_group(b"a group created by mls-rs").await?;
    let mut frank = alice::Alice::new(&base, "frank", suite)?;
    frank.register_and_login().await?;
    frank.upload_key_package().await?;
    erin.add(&gid, "frank").await?;
    frank.accept_welcome(&gid).await?;
    if frank.epoch_authenticator()? != erin.epoch_authenticator()? || frank.exported()? != erin.exported()? {
        return Err("erin and frank disagree after the join".into());
    }
    erin.send_text(&gid, b"hello frank, from mls-rs").await?;
    expect_texts("frank", &frank.sync(&gid).await?, &[b"hello frank, from mls-rs"])?;
    frank.send_text(&gid, b"hello erin, from openmls").await?;
    expect_texts("erin", &erin.sync(&gid).await?, &[b"hello erin, from openmls"])?;

    tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await?.map_err(|e| format!("{e:#}"))?;
    Ok(())
}

#[tokio::test]
async fn mls_rs_client_over_the_ds_0x0001() -> TestResult {
    foreign_client_flow(0x0001).await
}

#[tokio::test]
async fn mls_rs_client_over_the_ds_0x0002() -> TestResult {
    foreign_client_flow(0x0002).await
}

#[tokio::test]
async fn mls_rs_client_over_the_ds_0x0003() -> TestResult {
    foreign_client_flow(0x0003).await
}
