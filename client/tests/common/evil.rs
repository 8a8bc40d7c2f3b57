//! A malicious DS for tests: a proxy in front of the real one that forwards
//! everything, except (when switched on) the lookup of `bob` and claims of
//! bob's KeyPackages, answered with mallory's key, and commits, answered
//! with a 201 without reaching the DS (so the committer moves to an epoch
//! nobody else sees: a fork), and commits in log pages, left out (so the
//! reader stays behind at an old epoch: a fork by withholding), and a
//! GroupInfo it made up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use tls_codec::Serialize as _;

/// The malicious DS: forwards everything, except (when switched on) the
/// lookup of `bob` and claims of bob's KeyPackages, answered with mallory's key.
pub struct Evil {
    pub upstream: String,
    pub http: reqwest::Client,
    pub fake_lookup: AtomicBool,
    pub fake_claim: AtomicBool,
    pub fake_commit: AtomicBool,
    pub hide_commits: AtomicBool,
    /// A GroupInfo served instead of the group's (one the DS made up).
    pub fake_group_info: std::sync::Mutex<Option<Vec<u8>>>,
    /// bob's device list as served instead of the real one: `Some(None)`
    /// serves none (a rollback to a single key), `Some(Some(list))` that
    /// list, as the latest and as the whole history.
    pub fake_bob_list: std::sync::Mutex<Option<Option<Vec<u8>>>>,
    pub fake_key: Vec<u8>,
    pub fake_credential: Vec<u8>,
    pub fake_kp: Vec<u8>,
}

async fn proxy(State(st): State<Arc<Evil>>, req: Request) -> Response {
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    if st.fake_lookup.load(Ordering::SeqCst) && req.method() == "GET" && path == "/v1/users/bob" {
        let body = serde_json::to_vec(&grove_proto::UserResponse {
            key: grove_proto::UserKey {
                user: "bob".into(),
                credential: st.fake_credential.clone(),
                signature_key: st.fake_key.clone(),
                signature_scheme: 0x0807,
            },
            fingerprint: grove_proto::fingerprint(&st.fake_key),
            device_list: None,
        })
        .unwrap();
        return ([("content-type", "application/json")], body).into_response();
    }
    if st.fake_claim.load(Ordering::SeqCst) && req.method() == "POST" && path.starts_with("/v1/key-packages/bob/claim")
    {
        if path.starts_with("/v1/key-packages/bob/claim-devices") {
            let claimed = grove_proto::DeviceKeyPackagesResponse {
                key_packages: vec![grove_proto::ClaimedKeyPackage {
                    device: Some(grove_proto::identity::device_id(&st.fake_key)),
                    last_resort: false,
                    key_package: st.fake_kp.clone(),
                }],
                missing: Vec::new(),
            };
            return ([("content-type", "application/json")], serde_json::to_vec(&claimed).unwrap()).into_response();
        }
        return ([("content-type", grove_proto::MEDIA_MLS)], st.fake_kp.clone()).into_response();
    }
    if st.fake_commit.load(Ordering::SeqCst) && req.method() == "POST" && path.ends_with("/commits") {
        let posted = grove_proto::PostedResponse { seq: u64::MAX, epoch: u64::MAX };
        return (StatusCode::CREATED, [("content-type", "application/json")], serde_json::to_vec(&posted).unwrap())
            .into_response();
    }
    let fake_list = st.fake_bob_list.lock().unwrap().clone();
    if let (Some(list), true) = (fake_list, req.method() == "GET") {
        if path.starts_with("/v1/users/bob/devices") {
            let lists: Vec<String> = list.iter().map(|l| b64(l)).collect();
            return ([("content-type", "application/json")], serde_json::json!({ "lists": lists }).to_string())
                .into_response();
        }
        if path == "/v1/users/bob" {
            let r = st.http.get(format!("{}{}", st.upstream, path));
            let r = r.header("authorization", req.headers().get("authorization").unwrap().as_bytes());
            let mut j: serde_json::Value = r.send().await.unwrap().json().await.unwrap();
            j["device_list"] = list.map_or(serde_json::Value::Null, |l| b64(&l).into());
            return ([("content-type", "application/json")], j.to_string()).into_response();
        }
    }
    if req.method() == "GET" && path.ends_with("/group-info") {
        if let Some(gi) = st.fake_group_info.lock().unwrap().clone() {
            return ([("content-type", grove_proto::MEDIA_MLS)], gi).into_response();
        }
    }
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut rb = st.http.request(method, format!("{}{}", st.upstream, path));
    for h in ["authorization", "content-type"] {
        if let Some(v) = req.headers().get(h) {
            rb = rb.header(h, v.as_bytes());
        }
    }
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 24).await.unwrap();
    let r = rb.body(body.to_vec()).send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let ct = r.headers().get("content-type").map(|v| v.as_bytes().to_vec());
    let bytes = r.bytes().await.unwrap();
    let hide = st.hide_commits.load(Ordering::SeqCst) && path.contains("/messages?");
    let bytes = if hide && status == StatusCode::OK { without_commits(&bytes) } else { bytes.to_vec() };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    if let Some(ct) = ct {
        resp.headers_mut().insert("content-type", HeaderValue::from_bytes(&ct).unwrap());
    }
    resp
}

/// A JSON log page without its commit entries.
fn without_commits(page: &[u8]) -> Vec<u8> {
    let mut page: serde_json::Value = serde_json::from_slice(page).unwrap();
    if let Some(msgs) = page["messages"].as_array_mut() {
        msgs.retain(|m| m["kind"] != "commit");
    }
    serde_json::to_vec(&page).unwrap()
}

/// Starts the proxy in front of `upstream`; returns its URL, its switches and
/// mallory's fingerprint.
pub async fn start(upstream: &str) -> (String, Arc<Evil>, String) {
    let suite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    // Mallory's key and a KeyPackage that claims to be bob's, signed by it.
    let mallory = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
    let cred: Credential = BasicCredential::new(b"bob".to_vec()).into();
    let kp = KeyPackage::builder()
        .build(
            suite,
            &OpenMlsRustCrypto::default(),
            &mallory,
            CredentialWithKey { credential: cred.clone(), signature_key: mallory.public().into() },
        )
        .unwrap();
    let evil = Arc::new(Evil {
        upstream: upstream.to_owned(),
        http: reqwest::Client::new(),
        fake_lookup: AtomicBool::new(false),
        fake_claim: AtomicBool::new(false),
        fake_commit: AtomicBool::new(false),
        hide_commits: AtomicBool::new(false),
        fake_group_info: std::sync::Mutex::new(None),
        fake_bob_list: std::sync::Mutex::new(None),
        fake_key: mallory.public().to_vec(),
        fake_credential: cred.tls_serialize_detached().unwrap(),
        fake_kp: MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached().unwrap(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(proxy).with_state(evil.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, evil, grove_proto::fingerprint(mallory.public()))
}

impl Evil {
    /// Switches the substituted lookup on or off.
    pub fn lookup(&self, on: bool) {
        self.fake_lookup.store(on, Ordering::SeqCst);
    }
    /// [`Evil::lookup`], with the DS's key directory lying the same way: it
    /// publishes mallory's key as bob's (or, off, bob's own again). A DS
    /// that lies consistently passes the lookup proof; bob's own client
    /// would raise an alert, but until then only pinning and verification
    /// codes stop it, which is what the tests that use this check.
    pub async fn lookup_everywhere(&self, ds: &grove_ds::testing::TestServer, on: bool) {
        let kt = ds.ds.kt();
        if on {
            kt.tamper.publish_value("bob", grove_proto::kt::DirectoryValue::of(&self.fake_key, None));
        } else {
            kt.tamper.clear();
        }
        kt.mark("bob");
        kt.flush().await.expect("the directory publishes");
        self.lookup(on);
    }
    /// Switches on or off hiding commits from the log pages it serves.
    pub fn hide_commits(&self, on: bool) {
        self.hide_commits.store(on, Ordering::SeqCst);
    }
    /// Switches the swallowed commits on or off.
    pub fn swallow_commits(&self, on: bool) {
        self.fake_commit.store(on, Ordering::SeqCst);
    }
    /// Serves `gi` as every group's GroupInfo (`None`: the real one).
    pub fn serve_group_info(&self, gi: Option<Vec<u8>>) {
        *self.fake_group_info.lock().unwrap() = gi;
    }
    /// Switches the substituted KeyPackage claim on or off.
    pub fn claim(&self, on: bool) {
        self.fake_claim.store(on, Ordering::SeqCst);
    }
}

fn b64(v: &[u8]) -> String {
    // grove_proto's base64 (standard, padded), through its serde form.
    serde_json::to_value(grove_proto::DeviceListBytes(v.to_vec())).unwrap().as_str().unwrap().to_owned()
}
