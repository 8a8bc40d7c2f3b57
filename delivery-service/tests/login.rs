//! Registration bound to the app's login (`--auth-jwt-key`): real JWTs,
//! signed by real Ed25519 and P-256 keys, good and bad, against a real DS.
//! Every refusal is a 401 whose code names the cause.

mod common;

use common::{send, start_with, Peer};
use grove_ds::api;
use grove_ds::config::Config;
use grove_ds::login::{LoginRefusal, LoginVerifier};
use grove_ds::testing::{AuthServer, TEST_AUDIENCE, TEST_ISSUER};
use openmls::prelude::Ciphersuite;
use serde_json::{json, Value};

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

async fn register(base: &str, name: &str, token: Option<&str>) -> common::Resp {
    let p = Peer::new(base, name, SUITE);
    let mut body = p.register_body();
    if let Some(t) = token {
        body["login_token"] = json!(t);
    }
    send(p.http.post(format!("{base}{}", api::routes::USERS)).json(&body)).await
}

fn refused(r: &common::Resp, code: &str) {
    assert_eq!((r.status, r.code().as_str()), (401, code), "{}", String::from_utf8_lossy(&r.body));
    assert!(!r.json()["message"].as_str().unwrap_or("").is_empty(), "the refusal says what to do");
}

fn with(claims: Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims;
    f(c.as_object_mut().unwrap());
    c
}

#[tokio::test]
async fn registration_needs_a_valid_login_of_that_user() {
    let dir = tempfile::tempdir().unwrap();
    let app = AuthServer::ed25519();
    let other = AuthServer::ed25519();
    let ds = start_with(dir.path(), |c| app.configure(c, dir.path())).await;
    let base = ds.url();
    let now = grove_ds::ds::now_secs() as i64;

    let r = register(&base, "alice", Some(&app.login("alice"))).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    refused(&register(&base, "bob", None).await, "login_token_required");
    refused(&register(&base, "bob", Some("")).await, "login_token_required");
    refused(&register(&base, "bob", Some("not.a.jwt")).await, "login_token_malformed");
    refused(&register(&base, "bob", Some(&app.login("alice"))).await, "login_token_subject_mismatch");
    refused(&register(&base, "bob", Some(&other.login("bob"))).await, "login_token_bad_signature");
    let claims = AuthServer::claims("bob");
    let expired = with(claims.clone(), |c| {
        c.insert("exp".into(), json!(now - 120));
    });
    refused(&register(&base, "bob", Some(&app.sign(&expired))).await, "login_token_expired");
    let early = with(claims.clone(), |c| {
        c.insert("nbf".into(), json!(now + 600));
    });
    refused(&register(&base, "bob", Some(&app.sign(&early))).await, "login_token_expired");
    let iss = with(claims.clone(), |c| {
        c.insert("iss".into(), json!("https://evil.example"));
    });
    refused(&register(&base, "bob", Some(&app.sign(&iss))).await, "login_token_wrong_issuer");
    let aud = with(claims.clone(), |c| {
        c.insert("aud".into(), json!("another-service"));
    });
    refused(&register(&base, "bob", Some(&app.sign(&aud))).await, "login_token_wrong_audience");
    for missing in ["exp", "iss", "aud", "sub"] {
        let c = with(claims.clone(), |c| {
            c.remove(missing);
        });
        refused(&register(&base, "bob", Some(&app.sign(&c))).await, "login_token_malformed");
    }
    // A signature byte flipped.
    let good = app.login("bob");
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut sig = sig.to_string().into_bytes();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(sig).unwrap());
    refused(&register(&base, "bob", Some(&forged)).await, "login_token_bad_signature");

    // Nothing refused left a trace: bob is still free, and a good login takes it.
    let r = register(&base, "bob", Some(&good)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    ds.shutdown().await.unwrap();
}

/// The classic JWT attacks: `alg: none`, and an HMAC token keyed with the
/// server's public key (algorithm confusion).
#[tokio::test]
async fn unsigned_and_hmac_tokens_are_refused() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let app = AuthServer::ed25519();
    let ds = start_with(dir.path(), |c| app.configure(c, dir.path())).await;
    let base = ds.url();
    let enc = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = AuthServer::claims("mallory");
    let none = format!("{}.{}.", enc(&json!({"alg": "none", "typ": "JWT"})), enc(&claims));
    let r = register(&base, "mallory", Some(&none)).await;
    assert_eq!(r.status, 401);
    assert!(r.code().starts_with("login_token_"), "{}", r.code());
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(app.public_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    refused(&register(&base, "mallory", Some(&hs)).await, "login_token_bad_signature");
    ds.shutdown().await.unwrap();
}

/// Two keys while the auth server rotates: tokens of both are accepted; an
/// ES256 key works like an Ed25519 one.
#[tokio::test]
async fn several_keys_for_rotation_and_es256() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (AuthServer::ed25519(), AuthServer::es256());
    let ds = start_with(dir.path(), |c| {
        old.configure(c, dir.path());
        new.configure(c, dir.path());
    })
    .await;
    let base = ds.url();
    assert_eq!(register(&base, "alice", Some(&old.login("alice"))).await.status, 201);
    assert_eq!(register(&base, "bob", Some(&new.login("bob"))).await.status, 201);
    refused(&register(&base, "carol", Some(&AuthServer::es256().login("carol"))).await, "login_token_bad_signature");
    ds.shutdown().await.unwrap();
}

#[test]
fn bad_key_configurations_are_refused_at_startup() {
    use clap::Parser as _;
    let dir = tempfile::tempdir().unwrap();
    let key = AuthServer::ed25519().write_public(dir.path(), "k.pem");
    let k = key.to_str().unwrap();
    // Issuer and audience are required with a key.
    assert!(Config::try_parse_from(["grove-ds", "--auth-jwt-key", k]).is_err());
    assert!(Config::try_parse_from(["grove-ds", "--auth-jwt-key", k, "--auth-issuer", "i"]).is_err());
    let c = Config::try_parse_from(["grove-ds", "--auth-jwt-key", k, "--auth-issuer", "i", "--auth-audience", "a"])
        .unwrap();
    assert!(LoginVerifier::from_config(&c).unwrap().is_some());
    // Without a key, registration is not bound (and the DS warns at startup).
    assert!(LoginVerifier::from_config(&Config::try_parse_from(["grove-ds"]).unwrap()).unwrap().is_none());

    let p384 = AuthServer::p384_public_pem();
    let err = LoginVerifier::from_pems(&[("p384".into(), p384.into_bytes())], "i", "a").unwrap_err();
    assert!(format!("{err:#}").contains("P-256"), "{err:#}");
    let err = LoginVerifier::from_pems(&[("junk".into(), b"hello".to_vec())], "i", "a").unwrap_err();
    assert!(format!("{err:#}").contains("PEM public key"), "{err:#}");
    let private = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n".to_vec();
    assert!(LoginVerifier::from_pems(&[("private".into(), private)], "i", "a").is_err());
    let missing = dir.path().join("absent.pem");
    let err = LoginVerifier::from_files(&[missing], "i", "a").unwrap_err();
    assert!(format!("{err:#}").contains("absent.pem"), "{err:#}");
    let err = LoginVerifier::from_files(std::slice::from_ref(&key), "", "a").unwrap_err();
    assert!(format!("{err:#}").contains("--auth-issuer"), "{err:#}");
}

#[test]
fn the_verifier_names_each_cause() {
    let app = AuthServer::es256();
    let v = LoginVerifier::from_pems(&[("k".into(), app.public_pem.clone().into_bytes())], TEST_ISSUER, TEST_AUDIENCE)
        .unwrap();
    assert_eq!(v.verify(Some(&app.login("dana")), "dana"), Ok(()));
    assert_eq!(v.verify(Some(&app.login("dana")), "erin"), Err(LoginRefusal::SubjectMismatch));
    // An audience list that contains ours is accepted.
    let list = with(AuthServer::claims("dana"), |c| {
        c.insert("aud".into(), json!(["other", TEST_AUDIENCE]));
    });
    assert_eq!(v.verify(Some(&app.sign(&list)), "dana"), Ok(()));
    // Within the leeway of clock skew an expired token still passes; beyond it, not.
    let now = grove_ds::ds::now_secs() as i64;
    let skew = with(AuthServer::claims("dana"), |c| {
        c.insert("exp".into(), json!(now - 5));
    });
    assert_eq!(v.verify(Some(&app.sign(&skew)), "dana"), Ok(()));
    let late = with(AuthServer::claims("dana"), |c| {
        c.insert("exp".into(), json!(now - grove_ds::login::LEEWAY_SECS as i64 - 60));
    });
    assert_eq!(v.verify(Some(&app.sign(&late)), "dana"), Err(LoginRefusal::Expired));
}
