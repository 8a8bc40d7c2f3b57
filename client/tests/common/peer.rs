//! An openmls member that speaks the DS API itself (docs/api.md §3, §5),
//! independent of `grove_client`: the protocol-spec peer, and a member that
//! misbehaves in ways the client never would. Not part of `common` (the
//! CLI's tests share that, without these dependencies): include it with
//! `#[path = "common/peer.rs"] mod peer;`.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;

use base64::Engine as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::Signer as _;
use serde_json::Value;
use tls_codec::{Deserialize as _, Serialize as _};

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
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "HTTP {}: {}", self.status, String::from_utf8_lossy(&self.body));
        self
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    Resp { status, headers, body }
}

pub fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

pub fn unb64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64 string")).expect("base64")
}

pub fn gid_path(gid: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(gid)
}

/// An openmls member that speaks the DS API itself (docs/api.md §3, §5).
pub struct Peer {
    pub name: String,
    pub base: String,
    pub http: reqwest::Client,
    pub signer: SignatureKeyPair,
    pub cwk: CredentialWithKey,
    pub provider: OpenMlsRustCrypto,
    pub token: String,
    /// Log entries this peer posted (it cannot decrypt its own messages).
    pub own: HashSet<u64>,
    pub cursor: u64,
}

pub const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

impl Peer {
    pub async fn join(base: &str, name: &str) -> Peer {
        let signer = SignatureKeyPair::new(SUITE.signature_algorithm()).unwrap();
        let credential: Credential = BasicCredential::new(name.as_bytes().to_vec()).into();
        let cwk = CredentialWithKey { credential, signature_key: signer.public().into() };
        let mut p = Peer {
            name: name.into(),
            base: base.into(),
            http: reqwest::Client::new(),
            signer,
            cwk,
            provider: OpenMlsRustCrypto::default(),
            token: String::new(),
            own: HashSet::new(),
            cursor: 0,
        };
        let key = p.signer.public().to_vec();
        let proof = p.signer.sign(&grove_proto::signed_bytes(grove_proto::REGISTER_LABEL, name, &key)).unwrap();
        let body = serde_json::json!({
            "user": name,
            "credential": b64(&p.cwk.credential.tls_serialize_detached().unwrap()),
            "signature_key": b64(&key),
            "signature_scheme": 0x0807,
            "proof": b64(&proof),
        });
        send(p.http.post(format!("{base}/v1/users")).json(&body)).await.expect(201);
        let c = send(p.http.post(format!("{base}/v1/auth/challenge")).json(&serde_json::json!({"user": name})))
            .await
            .expect(200);
        let challenge = unb64(&c.json()["challenge"]);
        let sig = p.signer.sign(&grove_proto::signed_bytes(grove_proto::AUTH_LABEL, name, &challenge)).unwrap();
        let t = send(p.http.post(format!("{base}/v1/auth/token")).json(&serde_json::json!({
            "user": name, "challenge": b64(&challenge), "signature": b64(&sig)
        })))
        .await
        .expect(200);
        p.token = t.json()["token"].as_str().unwrap().to_owned();
        p
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    pub fn key_package(&self, last_resort: bool, capability: bool) -> KeyPackage {
        let mut b = KeyPackage::builder();
        if last_resort {
            b = b.mark_as_last_resort();
        }
        if capability {
            b = b.leaf_node_capabilities(Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build());
        }
        b.build(SUITE, &self.provider, &self.signer, self.cwk.clone()).unwrap().key_package().clone()
    }

    pub async fn upload(&self, kps: &[KeyPackage]) -> Resp {
        let body = grove_proto::KeyPackageUploadBody {
            key_packages: kps
                .iter()
                .map(|kp| MlsMessageOut::from(kp.clone()).tls_serialize_detached().unwrap().into())
                .collect(),
        };
        send(
            self.post("/v1/key-packages")
                .header("content-type", grove_proto::MEDIA_KEY_PACKAGES)
                .body(body.tls_serialize_detached().unwrap()),
        )
        .await
    }

    /// Claims a KeyPackage of `user`: the package and the kind header.
    pub async fn claim(&self, user: &str) -> (KeyPackage, String) {
        let r = send(self.post(&format!("/v1/key-packages/{user}/claim?ciphersuite=1"))).await.expect(200);
        let kind = r.headers[grove_proto::HEADER_KEY_PACKAGE_KIND].to_str().unwrap().to_owned();
        let MlsMessageBodyIn::KeyPackage(kp) = MlsMessageIn::tls_deserialize_exact(&r.body).unwrap().extract() else {
            panic!("not a KeyPackage")
        };
        (kp.validate(self.provider.crypto(), ProtocolVersion::Mls10).unwrap(), kind)
    }

    pub fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    /// Creates a group on the DS (GroupCreate, docs/api.md §5.10).
    pub async fn create_group(&self) -> MlsGroup {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(SUITE)
            .use_ratchet_tree_extension(true)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build();
        let group = MlsGroup::new(&self.provider, &self.signer, &config, self.cwk.clone()).unwrap();
        let gi = group.export_group_info(self.provider.crypto(), &self.signer, false).unwrap();
        let body = grove_proto::GroupCreateBody {
            group_info: gi.tls_serialize_detached().unwrap().into(),
            ratchet_tree: group.export_ratchet_tree().tls_serialize_detached().unwrap().into(),
        };
        send(
            self.post("/v1/groups")
                .header("content-type", grove_proto::MEDIA_GROUP_CREATE)
                .body(body.tls_serialize_detached().unwrap()),
        )
        .await
        .expect(201);
        group
    }

    /// Adds the owners of `kps`, posts the bundle, merges.
    pub async fn add(&self, group: &mut MlsGroup, kps: &[KeyPackage]) {
        let (commit, welcome, gi) = group.add_members(&self.provider, &self.signer, kps).unwrap();
        let body = grove_proto::CommitBundleBody {
            commit: commit.tls_serialize_detached().unwrap().into(),
            welcome: welcome.tls_serialize_detached().unwrap().into(),
            group_info: gi.map(|g| MlsMessageOut::from(g).tls_serialize_detached().unwrap()).unwrap_or_default().into(),
        };
        let path = format!("/v1/groups/{}/commits", gid_path(group.group_id().as_slice()));
        send(
            self.post(&path)
                .header("content-type", grove_proto::MEDIA_COMMIT_BUNDLE)
                .body(body.tls_serialize_detached().unwrap()),
        )
        .await
        .expect(201);
        group.merge_pending_commit(&self.provider).unwrap();
    }

    /// Joins from the Welcome for `gid`, with no ratchet tree given out of
    /// band: the Welcome's GroupInfo must carry it.
    pub async fn accept_welcome(&self, gid: &[u8]) -> MlsGroup {
        let r = send(self.get("/v1/welcomes")).await.expect(200);
        let list = r.json()["welcomes"].as_array().cloned().unwrap_or_default();
        let w = list.iter().find(|w| w["group_id"] == gid_path(gid)).expect("a Welcome for the group");
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(unb64(&w["message"])).unwrap().extract()
        else {
            panic!("not a Welcome")
        };
        let group = StagedWelcome::new_from_welcome(&self.provider, &Self::join_config(), welcome, None)
            .expect("join without an out-of-band ratchet tree")
            .into_group(&self.provider)
            .unwrap();
        let id = w["id"].as_u64().unwrap();
        send(self.http.delete(format!("{}/v1/welcomes/{id}", self.base)).bearer_auth(&self.token)).await.expect(204);
        group
    }

    /// Sends `payload` as an application message; returns its seq.
    pub async fn send_app(&mut self, group: &mut MlsGroup, payload: &[u8]) -> u64 {
        let bytes = self.seal_app(group, payload);
        self.post_app(group, bytes).await
    }

    pub fn seal_app(&mut self, group: &mut MlsGroup, payload: &[u8]) -> Vec<u8> {
        group.create_message(&self.provider, &self.signer, payload).unwrap().tls_serialize_detached().unwrap()
    }

    pub async fn post_app(&mut self, group: &MlsGroup, bytes: Vec<u8>) -> u64 {
        let path = format!("/v1/groups/{}/messages", gid_path(group.group_id().as_slice()));
        let r = send(self.post(&path).header("content-type", grove_proto::MEDIA_MLS).body(bytes)).await.expect(201);
        let seq = r.json()["seq"].as_u64().unwrap();
        self.own.insert(seq);
        seq
    }

    /// Processes the log after the cursor; returns the application payloads
    /// (checking their MLS authenticated_data against docs/api.md §10.1).
    pub async fn sync(&mut self, group: &mut MlsGroup) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let path = format!(
                "/v1/groups/{}/messages?after={}&limit=500",
                gid_path(group.group_id().as_slice()),
                self.cursor
            );
            let page = send(self.get(&path)).await.expect(200).json();
            let msgs = page["messages"].as_array().cloned().unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                self.cursor = m["seq"].as_u64().unwrap();
                let pm = MlsMessageIn::tls_deserialize_exact(unb64(&m["message"]))
                    .unwrap()
                    .try_into_protocol_message()
                    .unwrap();
                if self.own.contains(&self.cursor) || pm.epoch() < group.epoch() {
                    continue;
                }
                let processed = group
                    .process_message(&self.provider, pm)
                    .unwrap_or_else(|e| panic!("{} processing seq {}: {e:?}", self.name, self.cursor));
                // docs/api.md §10.1: application messages carry the fork tag
                // (of the epoch authenticator this peer computed itself), then
                // the sender's key-directory gossip (empty, or `GKT1`, epoch,
                // root: 44 bytes); handshake messages no authenticated_data.
                let want = match processed.content() {
                    ProcessedMessageContent::ApplicationMessage(_) => fork_tag(group),
                    _ => Vec::new(),
                };
                let aad = processed.aad().to_vec();
                let (tag, gossip) = aad.split_at(want.len().min(aad.len()));
                assert_eq!(
                    hex::encode(tag),
                    hex::encode(&want),
                    "{}: authenticated_data of seq {}",
                    self.name,
                    self.cursor
                );
                let gossip_ok = if want.is_empty() {
                    gossip.is_empty()
                } else {
                    gossip.is_empty() || (gossip.len() == 44 && gossip.starts_with(b"GKT1"))
                };
                assert!(
                    gossip_ok,
                    "{}: authenticated_data of seq {} after the fork tag: {}",
                    self.name,
                    self.cursor,
                    hex::encode(gossip)
                );
                match processed.into_content() {
                    ProcessedMessageContent::ApplicationMessage(a) => out.push(a.into_bytes()),
                    ProcessedMessageContent::StagedCommitMessage(s) => {
                        group.merge_staged_commit(&self.provider, *s).unwrap()
                    }
                    ProcessedMessageContent::ProposalMessage(p) => {
                        group.store_pending_proposal(self.provider.storage(), *p).unwrap()
                    }
                    _ => {}
                }
            }
        }
    }

    pub async fn upload_blob(&self, gid: &[u8], blob: Vec<u8>) -> String {
        let r = send(self.post(&format!("/v1/groups/{}/blobs", gid_path(gid))).body(blob)).await.expect(201);
        r.json()["blob_id"].as_str().unwrap().to_owned()
    }

    pub async fn download_blob(&self, gid: &[u8], id: &str) -> Vec<u8> {
        send(self.get(&format!("/v1/groups/{}/blobs/{id}", gid_path(gid)))).await.expect(200).body
    }
}

/// The fork tag of docs/api.md §10.1, computed from `group`'s epoch
/// authenticator: `GRV1` and 16 bytes of SHA-256("grove epoch authenticator" || it).
pub fn fork_tag(group: &MlsGroup) -> Vec<u8> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"grove epoch authenticator");
    h.update(group.epoch_authenticator().as_slice());
    [&b"GRV1"[..], &h.finalize()[..16]].concat()
}
