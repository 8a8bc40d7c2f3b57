//! `--store-key-file`: a home encrypted at rest through the `grove` binary.
//! Every command needs the key; a missing or wrong key is refused with its
//! own code; a home in clear is encrypted when first used with a key.

#[path = "../../client/tests/common/mod.rs"]
mod common;
mod support;

use common::start_ds;
use support::{grove, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_store_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let key = dir.path().join("alice.key");
    let wrong = dir.path().join("wrong.key");
    let bad = dir.path().join("bad.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::write(&wrong, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::write(&bad, b"too short").unwrap();
    let (k, w, b) = (key.display().to_string(), wrong.display().to_string(), bad.display().to_string());
    tokio::task::spawn_blocking(move || {
        ok(&alice, &["--store-key-file", &k, "init", "--server", &url, "--user", "alice"]);
        ok(&bob, &["init", "--server", &url, "--user", "bob"]);
        ok(&alice, &["--store-key-file", &k, "group", "create", "ops"]);
        ok(&alice, &["--store-key-file", &k, "group", "add", "ops", "bob"]);
        ok(&alice, &["--store-key-file", &k, "send", "ops", "secret plans"]);

        let missing = grove(&alice, &["whoami"]);
        assert!(!missing.ok);
        assert_eq!(missing.json["code"], "store_key_required", "{}", missing.json);
        let refused = grove(&alice, &["--store-key-file", &w, "read", "ops"]);
        assert_eq!(refused.json["code"], "wrong_store_key", "{}", refused.json);
        let malformed = grove(&alice, &["--store-key-file", &b, "whoami"]);
        assert!(!malformed.ok);
        assert!(malformed.json["error"].as_str().unwrap().contains("32 bytes"), "{}", malformed.json);
        let read = ok(&alice, &["--store-key-file", &k, "read", "ops"]);
        assert_eq!(read["messages"][0]["text"], "secret plans");

        // Bob's home is in clear; the hex key file encrypts it on first use.
        ok(&bob, &["sync"]);
        ok(&bob, &["--store-key-file", &w, "sync"]);
        assert_eq!(grove(&bob, &["read", "ops"]).json["code"], "store_key_required");
        let read = ok(&bob, &["--store-key-file", &w, "read", "ops"]);
        assert_eq!(read["messages"][0]["text"], "secret plans");
    })
    .await
    .unwrap();
}
