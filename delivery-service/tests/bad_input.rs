//! Bad input: every case gets a 4xx with its stable error code, never a 5xx or
//! a panic, and the server keeps serving.

mod common;

use common::*;
use grove_ds::api;
use openmls::prelude::*;
use openmls_traits::signatures::Signer as _;
use tls_codec::Serialize as _;

struct Cases {
    n: usize,
}

impl Cases {
    fn check(&mut self, what: &str, r: &Resp, status: u16, code: &str) {
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "case {what:?}: body {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(!r.json()["message"].as_str().unwrap_or("").is_empty(), "case {what:?} has no message");
        self.n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_and_server_keeps_serving() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start_with(dir.path(), |c| {
        c.max_body_bytes = 64 * 1024;
        c.metrics_token = Some("scrape-secret".into());
    })
    .await;
    let url = ds.url();
    let mut cases = Cases { n: 0 };
    let alice = Peer::join(&url, "alice", suite).await;
    let bob = Peer::join(&url, "bob", suite).await;
    let eve = Peer::join(&url, "eve", suite).await;
    bob.upload_key_packages(3, false).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.add(&mut ag, &gid, &["bob"]).await.status, 201);
    let mut bg = bob.accept_welcome(&gid).await;
    let good_app = alice.app_bytes(&mut ag, b"hello");

    // --- MLS bytes --------------------------------------------------------------
    let r = alice.post_raw(&gid, good_app[..good_app.len() / 2].to_vec()).await;
    cases.check("truncated MLS message", &r, 400, "malformed_message");
    let r = alice.post_raw(&gid, b"\xde\xad\xbe\xef garbage garbage".to_vec()).await;
    cases.check("garbage bytes", &r, 400, "malformed_message");
    let r = alice.post_raw(&gid, Vec::new()).await;
    cases.check("empty body", &r, 400, "malformed_message");
    let mut trailing = good_app.clone();
    trailing.push(0);
    let r = alice.post_raw(&gid, trailing).await;
    cases.check("trailing byte after the message", &r, 400, "malformed_message");
    let kp = MlsMessageOut::from(alice.key_package(false)).tls_serialize_detached().unwrap();
    let r = alice.post_raw(&gid, kp.clone()).await;
    cases.check("KeyPackage posted as a group message", &r, 400, "wrong_message_type");

    // A proposal as PublicMessage is fine; a commit posted to /messages is not.
    let (commit, _, _) = ag.remove_members(&alice.provider, &alice.signer, &[Peer::leaf_of(&ag, "bob")]).unwrap();
    let commit_bytes = commit.tls_serialize_detached().unwrap();
    let r = alice.post_raw(&gid, commit_bytes.clone()).await;
    cases.check("commit posted to /messages", &r, 400, "wrong_message_type");
    // An application message (PrivateMessage) where a commit bundle is expected.
    let bundle = |commit: Vec<u8>, welcome: Vec<u8>| {
        api::CommitBundleBody { commit: commit.into(), welcome: welcome.into(), group_info: Vec::new().into() }
            .tls_serialize_detached()
            .unwrap()
    };
    let post_bundle = |who: &Peer, body: Vec<u8>| {
        send(who.post(&format!("/v1/groups/{gid}/commits")).header("content-type", api::MEDIA_COMMIT_BUNDLE).body(body))
    };
    let r = post_bundle(&alice, bundle(good_app.clone(), vec![])).await;
    cases.check("PrivateMessage as a commit", &r, 400, "wrong_wire_format");
    // Forged signature: flip a byte inside the signature. The commit ends with
    // signature<V> (64 B), confirmation_tag<V> (32 B) and optional membership_tag
    // (1 + 1 + 32 B). (The DS cannot check the two MACs: it holds no group key.)
    let mut forged = commit_bytes.clone();
    let at = forged.len() - (1 + 32) - (1 + 1 + 32) - 10;
    forged[at] ^= 0x01;
    let r = post_bundle(&alice, bundle(forged, vec![])).await;
    cases.check("forged commit (bad signature)", &r, 400, "invalid_commit");
    // Another member's commit, posted by bob.
    let r = post_bundle(&bob, bundle(commit_bytes.clone(), vec![])).await;
    cases.check("commit posted by someone else than its sender", &r, 403, "sender_mismatch");
    // A commit with a Welcome although it adds nobody.
    let r = post_bundle(&alice, bundle(commit_bytes.clone(), good_app.clone())).await;
    cases.check("welcome with a commit that adds nobody", &r, 400, "welcome_mismatch");
    ag.clear_pending_commit(openmls_traits::OpenMlsProvider::storage(&alice.provider)).unwrap();

    // A GroupInfo whose signature was tampered with is refused with the commit;
    // the same bundle with the genuine GroupInfo is then accepted.
    let (c, _, gi) =
        ag.self_update(&alice.provider, &alice.signer, LeafNodeParameters::default()).unwrap().into_messages();
    let gi = gi.expect("openmls returns the new epoch's GroupInfo");
    let mut bad_gi = gi.tls_serialize_detached().unwrap();
    *bad_gi.last_mut().unwrap() ^= 0x01;
    let body = api::CommitBundleBody {
        commit: c.tls_serialize_detached().unwrap().into(),
        welcome: Vec::new().into(),
        group_info: bad_gi.into(),
    };
    let r = post_bundle(&alice, body.tls_serialize_detached().unwrap()).await;
    cases.check("GroupInfo with a bad signature", &r, 400, "invalid_group_info");
    let r = alice.post_bundle(&gid, &c, None, Some(&gi)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    ag.merge_pending_commit(&alice.provider).unwrap();
    let stored = send(alice.get(&format!("/v1/groups/{gid}/group-info"))).await;
    assert_eq!(stored.body, gi.tls_serialize_detached().unwrap(), "the DS keeps the verified GroupInfo");

    // A commit without the new epoch's GroupInfo: members could not resync.
    let b = ag.self_update(&alice.provider, &alice.signer, LeafNodeParameters::default()).unwrap();
    let r = alice.post_bundle(&gid, b.commit(), None, None).await;
    cases.check("commit without a GroupInfo", &r, 400, "invalid_group_info");
    // Wrong epoch: a commit replayed after the epoch moved on.
    assert_eq!(alice.post_commit_bundle(&gid, &b).await.status, 201);
    ag.merge_pending_commit(&alice.provider).unwrap();
    let r = alice.post_commit_bundle(&gid, &b).await;
    cases.check("replayed commit for a past epoch", &r, 409, "stale_epoch");
    assert_eq!(r.json()["current_epoch"], 3);
    // An application message two epochs old (window is one epoch).
    let b = ag.self_update(&alice.provider, &alice.signer, LeafNodeParameters::default()).unwrap();
    assert_eq!(alice.post_commit_bundle(&gid, &b).await.status, 201);
    ag.merge_pending_commit(&alice.provider).unwrap();
    let r = alice.post_raw(&gid, good_app.clone()).await;
    cases.check("application message from an old epoch", &r, 409, "stale_epoch");
    let mut cursor = 1;
    bob.sync(&mut bg, &gid, &mut cursor).await;

    // Non-member sender.
    let r = eve.post_raw(&gid, alice.app_bytes(&mut ag, b"x")).await;
    cases.check("non-member posts", &r, 403, "not_a_member");
    let r = eve.fetch(&gid, 0).await;
    cases.check("non-member fetches", &r, 403, "not_a_member");

    // Group id in the URL.
    let r = alice.fetch(&api::group_id_to_path(b"no-such-group"), 0).await;
    cases.check("unknown group", &r, 404, "unknown_group");
    let r = send(alice.get("/v1/groups/!!notbase64!!/messages")).await;
    cases.check("group id that is not base64url", &r, 400, "invalid_request");
    let (mut other, other_gid) = alice.create_group().await;
    let r = alice.post_raw(&other_gid, alice.app_bytes(&mut ag, b"wrong group")).await;
    cases.check("message for another group than the URL", &r, 400, "group_id_mismatch");
    let _ = &mut other;
    let r = send(
        alice.post("/v1/groups").header("content-type", api::MEDIA_GROUP_CREATE).body(alice.group_create_body(&other)),
    )
    .await;
    cases.check("group that already exists", &r, 409, "group_exists");

    // --- authentication ---------------------------------------------------------
    let r = send(alice.http.get(format!("{url}/v1/groups/{gid}/messages"))).await;
    cases.check("missing auth", &r, 401, "auth_required");
    let r = send(alice.http.get(format!("{url}/v1/groups/{gid}/messages")).bearer_auth("not-a-token")).await;
    cases.check("unknown token", &r, 401, "token_invalid");
    let r =
        send(alice.http.get(format!("{url}/v1/groups/{gid}/messages")).header("authorization", "Basic YWxpY2U6eA=="))
            .await;
    cases.check("wrong auth scheme", &r, 401, "auth_required");
    let c = send(alice.http.post(format!("{url}/v1/auth/challenge")).json(&serde_json::json!({"user": "alice"}))).await;
    let challenge = unb64(c.json()["challenge"].as_str().unwrap());
    let sig =
        alice.signer.sign(&grove_ds::auth::signed_bytes(grove_ds::auth::AUTH_LABEL, "alice", &challenge)).unwrap();
    let tok = |sig: &[u8]| serde_json::json!({"user": "alice", "challenge": b64(&challenge), "signature": b64(sig)});
    let bad_sig =
        bob.signer.sign(&grove_ds::auth::signed_bytes(grove_ds::auth::AUTH_LABEL, "alice", &challenge)).unwrap();
    let r = send(alice.http.post(format!("{url}/v1/auth/token")).json(&tok(&bad_sig))).await;
    cases.check("token request signed with another key", &r, 401, "bad_signature");
    let r = send(alice.http.post(format!("{url}/v1/auth/token")).json(&tok(&sig))).await;
    cases.check("replayed challenge (consumed by the failed attempt)", &r, 401, "challenge_invalid");
    let r =
        send(alice.http.post(format!("{url}/v1/auth/challenge")).json(&serde_json::json!({"user": "nobody"}))).await;
    cases.check("challenge for an unknown user", &r, 404, "unknown_user");

    // --- registration -----------------------------------------------------------
    let mut body = Peer::new(&url, "mallory", suite).register_body();
    body["proof"] = serde_json::json!(b64(&[0u8; 64]));
    let r = send(alice.http.post(format!("{url}/v1/users")).json(&body)).await;
    cases.check("registration with a bad proof", &r, 401, "bad_signature");
    let r = Peer::new(&url, "alice", suite).register().await;
    cases.check("name registered with another key", &r, 409, "user_exists");
    let r = Peer::new(&url, "al ice", suite).register().await;
    cases.check("invalid characters in a name", &r, 400, "invalid_name");
    let mut raw = serde_json::to_vec(&Peer::new(&url, "zed", suite).register_body()).unwrap();
    let pos = raw.windows(3).position(|w| w == b"zed").unwrap();
    raw[pos] = 0xff; // invalid UTF-8 inside the JSON string
    let r = send(alice.http.post(format!("{url}/v1/users")).header("content-type", "application/json").body(raw)).await;
    cases.check("invalid UTF-8 in a name", &r, 400, "invalid_request");
    let r =
        send(alice.http.post(format!("{url}/v1/users")).header("content-type", "application/json").body("{not json"))
            .await;
    cases.check("malformed JSON", &r, 400, "invalid_request");

    // --- content type, sizes, pages -----------------------------------------------
    let r = send(
        alice
            .post(&format!("/v1/groups/{gid}/messages"))
            .header("content-type", "application/json")
            .body(good_app.clone()),
    )
    .await;
    cases.check("wrong content type", &r, 415, "unsupported_media_type");
    // Its own connection: the server closes a connection whose body it refused
    // to read, and a pooled connection must not carry that into the next case.
    let r = send(
        http()
            .post(format!("{url}/v1/groups/{gid}/messages"))
            .bearer_auth(&alice.token)
            .header("content-type", api::MEDIA_MLS)
            .body(vec![0u8; 200 * 1024]),
    )
    .await;
    cases.check("oversized body", &r, 413, "payload_too_large");
    let r = send(alice.get(&format!("/v1/groups/{gid}/messages?after=0&limit=1000000"))).await;
    cases.check("huge page size", &r, 400, "page_too_large");
    let r = send(alice.get(&format!("/v1/groups/{gid}/messages?after=-1"))).await;
    cases.check("negative cursor", &r, 400, "invalid_request");
    // The largest cursor is a valid, empty page (it used to overflow `after + 1`).
    for path in [format!("/v1/groups/{gid}/messages?after={}", u64::MAX), format!("/v1/welcomes?after={}", u64::MAX)] {
        let r = send(alice.get(&path)).await;
        assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
        let page = r.json();
        let list = page.get("messages").or_else(|| page.get("welcomes")).and_then(|v| v.as_array()).cloned();
        assert_eq!(list, Some(vec![]), "{path}: {page}");
    }
    let r = send(alice.get(&format!("/v1/groups/{gid}/messages?wait=100000"))).await;
    cases.check("long-poll above the maximum", &r, 400, "invalid_request");
    let r = send(alice.post(&format!("/v1/groups/{gid}/ack")).json(&serde_json::json!({"seq": 99999}))).await;
    cases.check("ack beyond the log", &r, 400, "invalid_request");

    // --- key packages and inbox ---------------------------------------------------
    let r =
        send(alice.post("/v1/key-packages").header("content-type", api::MEDIA_KEY_PACKAGES).body(vec![1, 2, 3])).await;
    cases.check("garbage key-package upload", &r, 400, "malformed_message");
    let r = send(
        alice
            .post("/v1/key-packages")
            .header("content-type", api::MEDIA_KEY_PACKAGES)
            .body(Peer::kp_upload_body(&[bob.key_package(false)])),
    )
    .await;
    cases.check("uploading someone else's KeyPackage", &r, 400, "invalid_key_package");
    let dup = alice.key_package(false);
    let r = send(
        alice
            .post("/v1/key-packages")
            .header("content-type", api::MEDIA_KEY_PACKAGES)
            .body(Peer::kp_upload_body(&[dup.clone(), dup])),
    )
    .await;
    cases.check("the same KeyPackage twice in one upload", &r, 400, "invalid_key_package");
    let r = send(alice.post("/v1/key-packages/eve/claim?ciphersuite=1")).await;
    cases.check("claim with none left", &r, 404, "no_key_package");
    let r = send(alice.post("/v1/key-packages/bob/claim?ciphersuite=7")).await;
    cases.check("unsupported ciphersuite", &r, 400, "unsupported_ciphersuite");
    let r = send(alice.http.delete(format!("{url}/v1/welcomes/424242")).bearer_auth(&alice.token)).await;
    cases.check("ack of an unknown welcome", &r, 404, "unknown_welcome");
    let r = send(alice.get("/v1/no-such-route")).await;
    cases.check("unknown route", &r, 404, "not_found");

    // Expired tokens (last: it invalidates every session).
    ds.ds.auth.expire_all_tokens_for_tests();
    let r = alice.fetch(&gid, 0).await;
    cases.check("expired token", &r, 401, "token_expired");

    assert!(cases.n >= 25, "only {} cases", cases.n);
    eprintln!("bad-input cases checked: {}", cases.n);

    // The server keeps serving, and never answered 5xx.
    let h = send(alice.http.get(format!("{url}/v1/health"))).await;
    assert_eq!(h.status, 200);
    let r = send(alice.http.get(format!("{url}/metrics"))).await;
    assert_eq!((r.status, r.code().as_str()), (401, "auth_required"), "metrics need the scrape token");
    let r = send(alice.http.get(format!("{url}/metrics")).bearer_auth(&alice.token)).await;
    assert_eq!((r.status, r.code().as_str()), (401, "token_invalid"), "a client token is not the scrape token");
    let metrics =
        String::from_utf8(send(alice.http.get(format!("{url}/metrics")).bearer_auth("scrape-secret")).await.body)
            .unwrap();
    assert!(metrics.contains("grove_ds_http_requests_total"), "{metrics}");
    assert!(!metrics.contains("status=\"5"), "a 5xx was served:\n{metrics}");
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start_with(dir.path(), |c| {
        c.rate_limit_per_sec = 5;
        c.rate_limit_burst = 5;
    })
    .await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await; // 3 requests from this IP
    let mut limited = None;
    for _ in 0..20 {
        let r = send(alice.get("/v1/users/alice")).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200);
    }
    let r = limited.expect("20 requests at once must hit a limit of 5/s");
    assert_eq!(r.code(), "rate_limited");
    assert!(r.json()["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(r.headers.get("retry-after").is_some());
    // It recovers once the bucket refills.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(send(alice.get("/v1/users/alice")).await.status, 200);
    ds.shutdown().await.unwrap();
}
