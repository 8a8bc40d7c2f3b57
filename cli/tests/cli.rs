//! The `grove` binary in temporary home directories against an in-process DS,
//! with `--json` output parsed: init, whoami, group create/add/members/list,
//! send, sync, read, verify, the key-change error, remove, leave, errors.

#[path = "../../client/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;

use common::start_ds;
use serde_json::Value;
use support::{grove, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_scenario_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let url2 = url.clone();
    let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
    // The binary blocks; run it off the runtime that serves the DS.
    tokio::task::spawn_blocking(move || {
        let (url, a, b, c) = (url2, a2, b2, c2);
        let init = ok(&a, &["init", "--server", &url, "--user", "alice"]);
        assert_eq!(init["user"], "alice");
        assert_eq!(init["fingerprint"].as_str().unwrap().len(), 64);
        ok(&b, &["init", "--server", &url, "--user", "bob", "--ciphersuite", "1"]);
        ok(&c, &["init", "--server", &url, "--user", "carol"]);
        let who = ok(&a, &["whoami"]);
        assert_eq!(who["server"], url.as_str());
        assert_eq!(who["fingerprint"], init["fingerprint"]);

        let created = ok(&a, &["group", "create", "ops"]);
        let gid = created["id"].as_str().unwrap().to_owned();
        let added = ok(&a, &["group", "add", "ops", "bob", "carol"]);
        assert_eq!(added["epoch"], 1);
        assert_eq!(added["committed"], true);
        let synced = ok(&b, &["sync"]);
        assert_eq!(synced["joined"][0], gid.as_str());
        ok(&c, &["sync"]);

        // The self-update policy: shown with its defaults, then set.
        let p = ok(&b, &["group", "policy", "ops"]);
        assert_eq!(
            (p["update_after_secs"].as_u64(), p["update_after_messages"].as_u64()),
            (Some(7 * 86_400), Some(1_000))
        );
        assert_eq!((p["due"].as_bool(), p["set"].as_bool()), (Some(false), Some(false)));
        let p = ok(&b, &["group", "policy", "ops", "--update-days", "2", "--update-messages", "50"]);
        assert_eq!(
            (p["update_after_secs"].as_u64(), p["update_after_messages"].as_u64()),
            (Some(2 * 86_400), Some(50))
        );
        assert_eq!(ok(&b, &["group", "policy", "ops"])["update_after_messages"], 50, "kept in bob's home");

        let members = ok(&b, &["group", "members", "ops"]);
        let names: Vec<&str> =
            members["members"].as_array().unwrap().iter().map(|m| m["user"].as_str().unwrap()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert_eq!(members["members"][1]["key"], "own");

        let sent = ok(&a, &["send", "ops", "deploy at noon"]);
        assert!(sent["seq"].as_u64().unwrap() > 0);
        let msg_file = dir_file(&b, "reply.txt", "ack from bob");
        ok(&b, &["sync"]);
        ok(&b, &["send", "ops", "--file", msg_file.to_str().unwrap()]);
        ok(&c, &["sync"]);
        let read = ok(&c, &["read", "ops"]);
        assert_eq!(read.get("fork_detected"), Some(&Value::Null), "no fork: {read}");
        let texts: Vec<String> = read["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}: {}", m["sender"].as_str().unwrap(), m["text"].as_str().unwrap()))
            .collect();
        assert_eq!(texts, ["alice: deploy at noon", "bob: ack from bob"]);
        assert!(read["messages"][0]["seq"].as_u64().is_some());

        // Safety numbers match on both sides; --confirm marks verified.
        let v1 = ok(&a, &["verify", "bob", "--confirm"]);
        let v2 = ok(&b, &["verify", "alice"]);
        assert_eq!(v1["number"], v2["number"]);
        assert_eq!(v1["verified"], true);
        assert_eq!(v2["verified"], false);

        let removed = ok(&a, &["group", "remove", "ops", "carol"]);
        assert_eq!(removed["epoch"], 2);
        let s = ok(&c, &["sync"]);
        assert_eq!(s["left"][0], gid.as_str());
        ok(&a, &["send", "ops", "carol must not see this"]);
        ok(&c, &["sync"]);
        let read = ok(&c, &["read", &gid]);
        assert!(!read["messages"].to_string().contains("carol must not see this"));
        let list = ok(&c, &["group", "list"]);
        assert_eq!(list["groups"][0]["state"], "left");
        let send_left = grove(&c, &["send", &gid, "x"]);
        assert!(!send_left.ok);
        assert_eq!(send_left.json["code"], "group_left");

        // Leave: bob asks, alice's next sync commits it.
        ok(&b, &["sync"]);
        let l = ok(&b, &["group", "leave", "ops"]);
        assert_eq!(l["state"], "leaving");
        let s = ok(&a, &["sync"]);
        assert_eq!(s["proposals_committed"], 1);
        ok(&b, &["sync"]);
        let list = ok(&b, &["group", "list"]);
        assert_eq!(list["groups"][0]["state"], "left");

        // Errors: one JSON object with a code, non-zero exit.
        let e = grove(&a, &["group", "members", "nope"]);
        assert!(!e.ok);
        assert_eq!(e.json["code"], "unknown_group");
        let e = grove(&dir_path(&a, "fresh"), &["whoami"]);
        assert!(!e.ok);
        assert_eq!(e.json["code"], "not_initialized");
        let e = grove(&a, &["trust", "nobody", "--accept-new-key"]);
        assert!(!e.ok);
        // Two groups with the same name: the CLI asks for the id.
        ok(&a, &["group", "create", "ops"]);
        let e = grove(&a, &["send", "ops", "hi"]);
        assert_eq!(e.json["code"], "ambiguous_group");
        assert!(e.json["error"].as_str().unwrap().contains(&gid));
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}

fn dir_file(home: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let p = home.parent().unwrap().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn dir_path(home: &Path, name: &str) -> std::path::PathBuf {
    home.parent().unwrap().join(name)
}

#[test]
fn demo_shows_ciphertext_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = ok(dir.path(), &["demo"]);
    assert_eq!(d["carol_has_message"], false);
    assert_eq!(d["carol_can_decrypt"], false);
    // alice's laptop read while linked, and nothing after it was revoked.
    let laptop = &d["laptop"];
    assert_eq!((laptop["phone_read"].as_bool(), laptop["laptop_read"].as_bool()), (Some(true), Some(true)), "{laptop}");
    assert_eq!(laptop["phone_has_after_revoke"], true);
    assert_eq!(laptop["laptop_has_after_revoke"], false);
    assert!(d["ds_files"].as_u64().unwrap() > 0);
    assert_eq!(d["ds_files_with_plaintext"], 0);
    let log = d["ds_log"].as_array().unwrap();
    assert!(log.iter().any(|e| e["kind"] == "commit"));
    assert!(log.iter().all(|e| e["plaintext_visible"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_key_change_and_trust() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (proxy_url, evil, fp_mallory) = common::evil::start(&url).await;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let init_b = {
        let (b, url) = (b.clone(), url.clone());
        tokio::task::spawn_blocking(move || ok(&b, &["init", "--server", &url, "--user", "bob"])).await.unwrap()
    };
    let fp_bob = init_b["fingerprint"].as_str().unwrap().to_owned();
    {
        let a = a.clone();
        let proxy_url = proxy_url.clone();
        tokio::task::spawn_blocking(move || {
            ok(&a, &["init", "--server", &proxy_url, "--user", "alice"]);
            ok(&a, &["group", "create", "ops"]);
        })
        .await
        .unwrap();
    }
    // The malicious DS answers alice's first lookup of bob with mallory's key.
    evil.lookup_everywhere(&ds, true).await;
    let a2 = a.clone();
    let v = tokio::task::spawn_blocking(move || ok(&a2, &["verify", "bob"])).await.unwrap();
    evil.lookup_everywhere(&ds, false).await;
    let b2 = b.clone();
    let v_bob = tokio::task::spawn_blocking(move || ok(&b2, &["verify", "alice"])).await.unwrap();
    assert_ne!(v["number"], v_bob["number"], "safety numbers expose the substitution");

    let a2 = a.clone();
    let (fp_b, fp_m) = (fp_bob.clone(), fp_mallory.clone());
    tokio::task::spawn_blocking(move || {
        // The real KeyPackage carries a key other than the pinned one.
        let e = grove(&a2, &["group", "add", "ops", "bob"]);
        assert!(!e.ok);
        assert_eq!(e.json["code"], "key_changed");
        let msg = e.json["error"].as_str().unwrap();
        assert!(msg.contains("bob") && msg.contains(&fp_b) && msg.contains(&fp_m), "{msg}");
        // Without --accept-new-key, trust is refused by the CLI itself.
        assert!(!Command::new(env!("CARGO_BIN_EXE_grove"))
            .arg("--home")
            .arg(&a2)
            .args(["trust", "bob"])
            .output()
            .unwrap()
            .status
            .success());
        let t = ok(&a2, &["trust", "bob", "--accept-new-key"]);
        assert_eq!(t["fingerprint"], fp_b.as_str());
        let added = ok(&a2, &["group", "add", "ops", "bob"]);
        assert_eq!(added["committed"], true);
        let v = ok(&a2, &["verify", "bob"]);
        assert_eq!(v["verified"], false);
    })
    .await
    .unwrap();
    let v_bob = tokio::task::spawn_blocking(move || ok(&b, &["verify", "alice"])).await.unwrap();
    let v = tokio::task::spawn_blocking(move || ok(&a, &["verify", "bob", "--confirm"])).await.unwrap();
    assert_eq!(v["number"], v_bob["number"]);
    assert_eq!(v["verified"], true);
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_successor_group() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    tokio::task::spawn_blocking(move || {
        ok(&a, &["init", "--server", &url, "--user", "alice"]);
        ok(&b, &["init", "--server", &url, "--user", "bob"]);
        let old = ok(&a, &["group", "create", "team"])["id"].as_str().unwrap().to_owned();
        ok(&a, &["group", "add", "team", "bob"]);
        ok(&b, &["sync"]);
        // Without a terminal, it needs --yes; nothing is created.
        let e = grove(&a, &["group", "successor", "team"]);
        assert!(!e.ok && e.json["error"].as_str().unwrap().contains("--yes"), "{}", e.json);
        assert_eq!(ok(&a, &["group", "list"])["groups"].as_array().unwrap().len(), 1);
        let s = ok(&a, &["group", "successor", "team", "--yes"]);
        assert_eq!((s["predecessor"].as_str(), s["members"].clone()), (Some(old.as_str()), serde_json::json!(["bob"])));
        let new = s["group"].as_str().unwrap().to_owned();
        let synced = ok(&b, &["sync"]);
        assert_eq!(synced["joined"][0], new.as_str());
        assert!(synced["successors"][0].as_str().unwrap().starts_with(&format!("{old}: replaced by {new}")));
        let e = grove(&a, &["send", &old, "into the old one"]);
        assert_eq!(e.json["code"], "group_replaced");
        ok(&a, &["send", "team", "for alice the name means the new group"]);
        ok(&b, &["sync"]);
        let read = ok(&b, &["read", &new]);
        assert_eq!(
            read["messages"].as_array().unwrap().last().unwrap()["text"],
            "for alice the name means the new group"
        );
        ok(&b, &["send", &new, "the name means the new group"]);
        ok(&a, &["sync"]);
        let read = ok(&a, &["read", &new]);
        assert_eq!(read["messages"].as_array().unwrap().last().unwrap()["text"], "the name means the new group");
        let list = ok(&a, &["group", "list"]);
        let old_entry = list["groups"].as_array().unwrap().iter().find(|g| g["id"] == old.as_str()).unwrap().clone();
        assert_eq!(old_entry["successor"], new.as_str());
        let list = ok(&b, &["group", "list"]);
        let old_entry = list["groups"].as_array().unwrap().iter().find(|g| g["id"] == old.as_str()).unwrap().clone();
        assert_eq!(
            (old_entry["successor"].as_str(), old_entry["successor_by"].as_str()),
            (Some(new.as_str()), Some("alice"))
        );
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}

/// `grove init --login-token` (or `GROVE_LOGIN_TOKEN`) against a DS that
/// binds users to the app's login: refused without a token, with the DS's
/// code in `--json`; accepted with a real JWT for that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_init_with_a_login_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = grove_ds::testing::AuthServer::ed25519();
    let key_dir = dir.path().to_path_buf();
    let ds = common::start_ds_with(dir.path(), |c| app.configure(c, &key_dir)).await;
    let url = ds.url();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (alice_jwt, bob_jwt) = (app.login("alice"), app.login("bob"));
    tokio::task::spawn_blocking(move || {
        let r = grove(&a, &["init", "--server", &url, "--user", "alice"]);
        assert!(!r.ok);
        assert_eq!(r.json["server_code"], "login_token_required", "{}", r.json);
        let r = grove(&a, &["init", "--server", &url, "--user", "alice", "--login-token", &bob_jwt]);
        assert_eq!(r.json["server_code"], "login_token_subject_mismatch", "{}", r.json);
        // The failed attempts left a resumable home: the right token finishes it.
        let init = ok(&a, &["init", "--server", &url, "--user", "alice", "--login-token", &alice_jwt]);
        assert_eq!(init["user"], "alice");
        // One device: this one.
        let d = ok(&a, &["device", "list"]);
        let devices = d["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 1, "{d}");
        assert_eq!(
            (devices[0]["this_device"].as_bool(), devices[0]["id"].as_str().map(str::len)),
            (Some(true), Some(32))
        );
        // A backup of the identity, to an owner-only file.
        let pass = a.with_extension("pass");
        std::fs::write(&pass, "a long enough passphrase\n").unwrap();
        let out = a.with_extension("backup");
        let args = ["identity", "backup", "--out", out.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()];
        assert_eq!(ok(&a, &args)["fingerprint"], init["fingerprint"]);
        let opened = grove_client::open_identity_backup(&std::fs::read(&out).unwrap(), "a long enough passphrase");
        assert_eq!(opened.unwrap().user, "alice");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&pass, "short\n").unwrap();
        assert_eq!(grove(&a, &args).json["code"], "invalid_argument");
        // The environment variable works the same way.
        let out = Command::new(env!("CARGO_BIN_EXE_grove"))
            .args(["--json", "--home"])
            .arg(&b)
            .args(["init", "--server", &url, "--user", "bob"])
            .env("GROVE_LOGIN_TOKEN", &bob_jwt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}

/// `grove contact export` / `import`: the code pins and verifies the key the
/// DS serves only if it is the one in the code; a verified contact's changed
/// key is refused by `trust` until a new code is imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_contact_codes() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (proxy_url, evil, fp_mallory) = common::evil::start(&url).await;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (b2, url2) = (b.clone(), url.clone());
    let (code, fp_bob) = tokio::task::spawn_blocking(move || {
        let init = ok(&b2, &["init", "--server", &url2, "--user", "bob"]);
        let out = Command::new(env!("CARGO_BIN_EXE_grove")).arg("--home").arg(&b2).args(["contact", "export"]).output();
        let out = out.unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let first = text.lines().next().unwrap().to_owned();
        assert_eq!(text.lines().count(), 1, "no QR code when stdout is not a terminal: {text}");
        let j = ok(&b2, &["contact", "export"]);
        assert_eq!(j["code"], first.as_str());
        assert!(first.starts_with("grove-contact-v1:bob:"), "{first}");
        (first, init["fingerprint"].as_str().unwrap().to_owned())
    })
    .await
    .unwrap();
    let a2 = a.clone();
    tokio::task::spawn_blocking(move || ok(&a2, &["init", "--server", &proxy_url, "--user", "alice"])).await.unwrap();

    // The DS serves mallory's key: the import is refused and pins nothing.
    evil.lookup_everywhere(&ds, true).await;
    let (a2, c2, m) = (a.clone(), code.clone(), fp_mallory.clone());
    tokio::task::spawn_blocking(move || {
        let r = grove(&a2, &["contact", "import", &c2]);
        assert!(!r.ok);
        assert_eq!(r.json["code"], "contact_code_mismatch", "{}", r.json);
        assert!(r.json["error"].as_str().unwrap().contains(&m));
        for bad in ["grove-contact-v1:bob:1234", "hello", "grove-contact-v1::abc"] {
            assert_eq!(grove(&a2, &["contact", "import", bad]).json["code"], "invalid_argument", "{bad}");
        }
    })
    .await
    .unwrap();
    evil.lookup_everywhere(&ds, false).await;
    let (a2, c2, fb) = (a.clone(), code.clone(), fp_bob.clone());
    tokio::task::spawn_blocking(move || {
        let i = ok(&a2, &["contact", "import", &c2]);
        assert_eq!((i["fingerprint"].as_str().unwrap(), &i["verified"]), (fb.as_str(), &Value::Bool(true)));
        assert_eq!(ok(&a2, &["verify", "bob"])["verified"], true);
    })
    .await
    .unwrap();

    // Now bob's key "changes" (the DS serves mallory's): the verified contact
    // cannot be re-trusted with --accept-new-key, only re-verified.
    evil.lookup_everywhere(&ds, true).await;
    let a2 = a.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(grove(&a2, &["verify", "bob"]).json["code"], "key_changed");
        let t = grove(&a2, &["trust", "bob", "--accept-new-key"]);
        assert_eq!(t.json["code"], "verification_required", "{}", t.json);
    })
    .await
    .unwrap();
    evil.lookup_everywhere(&ds, false).await;
    let (a2, c2, fb) = (a.clone(), code.clone(), fp_bob.clone());
    tokio::task::spawn_blocking(move || {
        // Importing bob's real code clears the pending key: back to verified.
        let i = ok(&a2, &["contact", "import", &c2]);
        assert_eq!(i["fingerprint"], fb.as_str());
        assert_eq!(i["verified"], true);
        assert!(i["pending_fingerprint"].is_null(), "{i}");
        assert_eq!(ok(&a2, &["verify", "bob"])["verified"], true);
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}
