//! Key substitution: a proxy in front of the DS acts as a malicious DS and
//! serves another key (lookup) or a KeyPackage signed by another key for a
//! pinned user. `add` fails with the key-change error naming the user and both
//! fingerprints; after `trust_new_key` it succeeds. Safety numbers match.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{config, new_client, start_ds, TestResult};
use grove_client::{Client, Error};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use tls_codec::Serialize as _;

/// The malicious DS: forwards everything, except (when switched on) the
/// lookup of `bob` and claims of bob's KeyPackages, answered with mallory's key.
struct Evil {
    upstream: String,
    http: reqwest::Client,
    fake_lookup: AtomicBool,
    fake_claim: AtomicBool,
    fake_key: Vec<u8>,
    fake_credential: Vec<u8>,
    fake_kp: Vec<u8>,
}

async fn proxy(State(st): State<Arc<Evil>>, req: Request) -> Response {
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    if st.fake_lookup.load(Ordering::SeqCst) && req.method() == "GET" && path == "/v1/users/bob" {
        let body = serde_json::to_vec(&grove_proto::UserResponse {
            user: "bob".into(),
            credential: st.fake_credential.clone(),
            signature_key: st.fake_key.clone(),
            signature_scheme: 0x0807,
            fingerprint: grove_proto::fingerprint(&st.fake_key),
        })
        .unwrap();
        return ([("content-type", "application/json")], body).into_response();
    }
    if st.fake_claim.load(Ordering::SeqCst) && req.method() == "POST" && path.starts_with("/v1/key-packages/bob/claim")
    {
        return ([("content-type", grove_proto::MEDIA_MLS)], st.fake_kp.clone()).into_response();
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
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    if let Some(ct) = ct {
        resp.headers_mut().insert("content-type", HeaderValue::from_bytes(&ct).unwrap());
    }
    resp
}

fn key_changed(r: Result<impl std::fmt::Debug, Error>) -> (String, String, String) {
    match r {
        Err(Error::KeyChanged { user, pinned, seen }) => (user, pinned, seen),
        other => panic!("expected a key change error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substituted_key_is_refused_until_trusted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let suite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

    // Mallory's key and a KeyPackage that claims to be bob's, signed by it.
    let mallory = SignatureKeyPair::new(SignatureScheme::ED25519)?;
    let cred: Credential = BasicCredential::new(b"bob".to_vec()).into();
    let kp = KeyPackage::builder().build(
        suite,
        &OpenMlsRustCrypto::default(),
        &mallory,
        CredentialWithKey { credential: cred.clone(), signature_key: mallory.public().into() },
    )?;
    let evil = Arc::new(Evil {
        upstream: url.clone(),
        http: reqwest::Client::new(),
        fake_lookup: AtomicBool::new(false),
        fake_claim: AtomicBool::new(false),
        fake_key: mallory.public().to_vec(),
        fake_credential: cred.tls_serialize_detached()?,
        fake_kp: MlsMessageOut::from(kp.key_package().clone()).tls_serialize_detached()?,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy_url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(proxy).with_state(evil.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let alice = Client::create(dir.path().join("alice"), config(&proxy_url, "alice", 1)).await?;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let fp_bob = bob.whoami().fingerprint;
    let fp_mallory = grove_proto::fingerprint(mallory.public());

    // 1. Pinned key B; the DS now serves a KeyPackage signed by mallory's key.
    alice.lookup_user("bob").await?;
    alice.create_group("g").await?;
    evil.fake_claim.store(true, Ordering::SeqCst);
    let (user, pinned, seen) = key_changed(alice.add_members("g", &["bob"]).await);
    assert_eq!((user.as_str(), pinned.as_str(), seen.as_str()), ("bob", fp_bob.as_str(), fp_mallory.as_str()));
    let msg = alice.add_members("g", &["bob"]).await.unwrap_err().to_string();
    assert!(msg.contains("bob") && msg.contains(&fp_bob) && msg.contains(&fp_mallory), "{msg}");
    assert_eq!(alice.members("g")?.len(), 1, "nothing was committed");
    assert!(bob.sync().await?.joined.is_empty());

    // 2. The lookup is swapped too: same error, and it stays until a decision,
    //    even once the DS behaves again; verify is refused as well.
    evil.fake_lookup.store(true, Ordering::SeqCst);
    key_changed(alice.add_members("g", &["bob"]).await);
    evil.fake_lookup.store(false, Ordering::SeqCst);
    evil.fake_claim.store(false, Ordering::SeqCst);
    let (_, pinned, seen) = key_changed(alice.add_members("g", &["bob"]).await);
    assert_eq!((pinned, seen), (fp_bob.clone(), fp_mallory.clone()));
    key_changed(alice.verify("bob", false).await);

    // 3. A fresh client whose first sight of bob was the substituted key (TOFU
    //    pinned mallory's): the real KeyPackage is then refused; after checking
    //    out of band, trusting the new key makes the add succeed.
    let carol = Client::create(dir.path().join("carol"), config(&proxy_url, "carol", 1)).await?;
    evil.fake_lookup.store(true, Ordering::SeqCst);
    assert_eq!(carol.lookup_user("bob").await?.fingerprint, fp_mallory);
    evil.fake_lookup.store(false, Ordering::SeqCst);
    carol.create_group("c").await?;
    let (user, pinned, seen) = key_changed(carol.add_members("c", &["bob"]).await);
    assert_eq!((user.as_str(), pinned.as_str(), seen.as_str()), ("bob", fp_mallory.as_str(), fp_bob.as_str()));
    let info = carol.trust_new_key("bob").await?;
    assert_eq!(info.fingerprint, fp_bob);
    assert!(!info.verified);
    let out = carol.add_members("c", &["bob"]).await?;
    assert!(out.committed);
    assert_eq!(bob.sync().await?.joined.len(), 1);

    // 4. A joiner who pinned the substituted key sees bob's real key in the
    //    group: bob shows as changed and sending to the group is refused
    //    until the joiner decides.
    let erin = Client::create(dir.path().join("erin"), config(&proxy_url, "erin", 1)).await?;
    evil.fake_lookup.store(true, Ordering::SeqCst);
    erin.lookup_user("bob").await?;
    evil.fake_lookup.store(false, Ordering::SeqCst);
    carol.add_members("c", &["erin"]).await?;
    erin.sync().await?;
    let bob_status = erin.members("c")?.into_iter().find(|m| m.user == "bob").ok_or("bob")?.key;
    assert_eq!(bob_status, grove_client::KeyStatus::Changed);
    let (user, pinned, seen) = key_changed(erin.send("c", "hi").await);
    assert_eq!((user.as_str(), pinned.as_str(), seen.as_str()), ("bob", fp_mallory.as_str(), fp_bob.as_str()));
    erin.trust_new_key("bob").await?;
    erin.send("c", "hi").await?;

    // Safety numbers agree on both sides; --confirm marks verified.
    let s1 = carol.verify("bob", true).await?;
    let s2 = bob.verify("carol", false).await?;
    assert_eq!(s1.number, s2.number);
    assert!(s1.verified);
    assert_eq!(s1.number.split(' ').count(), 12);
    ds.shutdown().await?;
    Ok(())
}
