//! `grove resource ...` and `grove group create --history` through the real
//! binary against an in-process DS: put from a file and from stdin (also 0
//! bytes), list, get to a file and to stdout, versions, history, history
//! sharing with a member added later, policy, rm, and the error codes.

#[path = "../../client/tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};

use common::start_ds;
use serde_json::Value;
use support::{grove, ok, ok_in, run};

/// Fails with exit code 1 and this `code`.
fn fails(home: &Path, args: &[&str], code: &str) -> Value {
    let r = grove(home, args);
    assert!(!r.ok, "grove {args:?} should fail: {}", r.json);
    assert_eq!(r.json["code"], code, "grove {args:?}: {}", r.json);
    r.json
}

/// Human mode: succeeds; returns stdout and stderr.
fn human(home: &Path, args: &[&str], input: &[u8]) -> (Vec<u8>, String) {
    let out = run(home, args, input);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "grove {args:?} failed: {stderr}");
    (out.stdout, stderr)
}

/// Deterministic bytes that do not compress or repeat in short periods.
fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn blake3_hex(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

fn names(list: &Value) -> Vec<String> {
    list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_resources_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let root: PathBuf = dir.path().to_path_buf();
    // The binary blocks; run it off the runtime that serves the DS.
    tokio::task::spawn_blocking(move || scenario(&root, &url)).await.unwrap();
    ds.shutdown().await.unwrap();
}

fn scenario(root: &Path, url: &str) {
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    ok(&a, &["init", "--server", url, "--user", "alice"]);
    ok(&b, &["init", "--server", url, "--user", "bob"]);
    ok(&c, &["init", "--server", url, "--user", "carol"]);

    let created = ok(&a, &["group", "create", "docs", "--history", "share"]);
    assert_eq!(created["history"], "share");
    assert_eq!(created["name"], "docs");
    let plain = ok(&a, &["group", "create", "chat"]);
    assert_eq!(plain["history"], "none");
    let p = ok(&a, &["resource", "policy", "docs"]);
    assert_eq!((p["policy"].as_str(), p["set"].as_bool()), (Some("share"), Some(false)));
    assert_eq!(ok(&a, &["resource", "policy", "chat"])["policy"], "none");
    ok(&a, &["group", "add", "docs", "bob"]);
    ok(&b, &["sync"]);
    assert_eq!(ok(&b, &["resource", "list", "docs"])["resources"], serde_json::json!([]));

    // Put a file (a few KiB) and an empty resource from stdin.
    let v1 = content(5_000, 1);
    let file = root.join("notes-v1.bin");
    std::fs::write(&file, &v1).unwrap();
    let put = ok(&a, &["resource", "put", "docs", "notes.bin", s(&file)]);
    assert_eq!(put["group"], "docs");
    assert_eq!(put["name"], "notes.bin");
    assert_eq!(put["version"], 1);
    assert_eq!(put["size"], 5_000);
    assert_eq!(put["author"], "alice");
    assert_eq!(put["content_hash"], blake3_hex(&v1).as_str());
    assert!(put["blob_size"].as_u64().unwrap() > 5_000, "padded and encrypted: {put}");
    assert_eq!(put["id"].as_str().unwrap().len(), 32);
    assert!(put["seq"].as_u64().unwrap() > 0);
    assert!(put["shared_by"].is_null());
    let empty = ok_in(&a, &["resource", "put", "docs", "empty", "-"], b"");
    assert_eq!((empty["version"].as_u64(), empty["size"].as_u64()), (Some(1), Some(0)));
    assert_eq!(empty["content_hash"], blake3_hex(b"").as_str());

    // Bob lists (the command syncs first) and reads both.
    let list = ok(&b, &["resource", "list", "docs"]);
    assert_eq!(list["group"], "docs");
    assert_eq!(names(&list), ["empty", "notes.bin"]);
    let notes = &list["resources"][1];
    assert_eq!((notes["version"].as_u64(), notes["size"].as_u64()), (Some(1), Some(5_000)));
    assert_eq!(notes["author"], "alice");
    assert_eq!(notes["id"], put["id"]);
    assert_eq!(notes["blob_id"], put["blob_id"]);
    let out1 = root.join("bob-notes.bin");
    let got = ok(&b, &["resource", "get", "docs", "notes.bin", "-o", s(&out1)]);
    assert_eq!(got["path"], s(&out1));
    assert_eq!(got["version"], 1);
    assert_eq!(std::fs::read(&out1).unwrap(), v1);
    let out_empty = root.join("bob-empty");
    ok(&b, &["resource", "get", "docs", "empty", "-o", s(&out_empty)]);
    assert_eq!(std::fs::read(&out_empty).unwrap(), b"");

    // Version 2, from stdin without a FILE argument.
    let v2 = content(7_321, 2);
    let put2 = ok_in(&a, &["resource", "put", "docs", "notes.bin"], &v2);
    assert_eq!(put2["version"], 2);
    assert_eq!(put2["id"], put["id"], "same resource");
    assert_eq!(put2["size"], 7_321);
    let old = root.join("bob-v1.bin");
    let got = ok(&b, &["resource", "get", "docs", "notes.bin", "--version", "1", "-o", s(&old)]);
    assert_eq!(got["version"], 1);
    assert_eq!(std::fs::read(&old).unwrap(), v1);
    let latest = root.join("bob-latest.bin");
    let got = ok(&b, &["resource", "get", "docs", "notes.bin", "-o", s(&latest)]);
    assert_eq!(got["version"], 2);
    assert_eq!(std::fs::read(&latest).unwrap(), v2);
    // Without -o and --json: the content on stdout, nothing else.
    let (stdout, _) = human(&b, &["resource", "get", "docs", "notes.bin"], b"");
    assert_eq!(stdout, v2);
    let (stdout, _) = human(&b, &["resource", "get", "docs", "notes.bin", "--version", "1", "-o", "-"], b"");
    assert_eq!(stdout, v1);
    // With --json, stdout is the JSON object: -o is required.
    let e = fails(&b, &["resource", "get", "docs", "notes.bin"], "invalid_argument");
    assert!(e["error"].as_str().unwrap().contains("-o"), "{e}");
    let e = fails(&b, &["resource", "get", "docs", "notes.bin", "--version", "9", "-o", s(&old)], "unknown_resource");
    assert!(e["error"].as_str().unwrap().contains("version 9"), "{e}");
    assert_eq!(std::fs::read(&old).unwrap(), v1, "a failed get leaves the file alone");
    let list = ok(&b, &["resource", "list", "docs"]);
    assert_eq!(list["resources"][1]["version"], 2);

    // History: two versions, by alice, in order.
    let h = ok(&b, &["resource", "history", "docs", "notes.bin"]);
    assert_eq!(h["name"], "notes.bin");
    let hist = h["history"].as_array().unwrap();
    let versions: Vec<(&str, u64, u64)> = hist
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["version"].as_u64().unwrap(), e["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(versions, [("version", 1, 5_000), ("version", 2, 7_321)]);
    assert!(hist.iter().all(|e| e["by"] == "alice" && e["resource_id"] == put["id"]));
    assert!(hist[0]["seq"].as_u64() < hist[1]["seq"].as_u64());

    // Human output: one line per item.
    let (stdout, _) = human(&b, &["resource", "list", "docs"], b"");
    let text = String::from_utf8(stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("empty  v1  0 B  by alice"), "{text}");
    assert!(lines[1].starts_with("notes.bin  v2  7.15 KiB  by alice"), "{text}");
    let (stdout, _) = human(&b, &["resource", "history", "docs", "notes.bin"], b"");
    assert_eq!(String::from_utf8(stdout).unwrap().lines().count(), 2);

    // History sharing: carol, added now, gets the keys of the current versions.
    ok(&a, &["group", "add", "docs", "carol"]);
    ok(&c, &["sync"]);
    let list = ok(&c, &["resource", "list", "docs"]);
    assert_eq!(names(&list), ["empty", "notes.bin"]);
    assert_eq!(list["resources"][1]["version"], 2);
    assert_eq!(list["resources"][1]["shared_by"], "alice");
    let carol_out = root.join("carol-notes.bin");
    ok(&c, &["resource", "get", "docs", "notes.bin", "-o", s(&carol_out)]);
    assert_eq!(std::fs::read(&carol_out).unwrap(), v2);
    fails(&c, &["resource", "get", "docs", "notes.bin", "--version", "1", "-o", s(&carol_out)], "unknown_resource");
    let h = ok(&c, &["resource", "history", "docs", "notes.bin"]);
    let last = h["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "shared");
    assert_eq!(last["recipients"], serde_json::json!(["carol"]));
    assert_eq!(last["version"], 2);

    // Policy change, seen by the others.
    let set = ok(&a, &["resource", "policy", "docs", "none"]);
    assert_eq!((set["policy"].as_str(), set["set"].as_bool()), (Some("none"), Some(true)));
    assert_eq!(ok(&b, &["resource", "policy", "docs"])["policy"], "none");

    // Delete: gone from lists, get says deleted, history keeps the event.
    let rm = ok(&a, &["resource", "rm", "docs", "notes.bin"]);
    assert_eq!(rm["deleted"], true);
    assert_eq!(rm["name"], "notes.bin");
    assert_eq!(rm["version"], 2);
    assert_eq!(names(&ok(&b, &["resource", "list", "docs"])), ["empty"]);
    let gone = root.join("never-written.bin");
    let e = fails(&b, &["resource", "get", "docs", "notes.bin", "-o", s(&gone)], "resource_deleted");
    assert!(e["error"].as_str().unwrap().contains("alice"), "{e}");
    assert!(!gone.exists());
    let out = run(&b, &["resource", "get", "docs", "notes.bin"], b"");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deleted"));
    let h = ok(&b, &["resource", "history", "docs", "notes.bin"]);
    let kinds: Vec<&str> = h["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // Bob, a member when carol was added, saw the share too.
    assert_eq!(kinds, ["version", "version", "shared", "deleted"]);
    ok(&a, &["resource", "rm", "docs", "empty"]);
    let list = ok(&b, &["resource", "list", "docs"]);
    assert_eq!(list["resources"], serde_json::json!([]));
    let (stdout, _) = human(&b, &["resource", "list", "docs"], b"");
    assert_eq!(String::from_utf8(stdout).unwrap().trim(), "no resources in docs");
    fails(&b, &["resource", "get", "docs", "empty", "-o", s(&gone)], "resource_deleted");
    // rm again: nothing new is announced (it only retries deleting the blobs).
    let again = ok(&a, &["resource", "rm", "docs", "empty"]);
    assert_eq!((again["deleted"].as_bool(), again["name"].as_str()), (Some(true), Some("empty")));
    let h = ok(&b, &["resource", "history", "docs", "empty"]);
    let deletions = h["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "deleted").count();
    assert_eq!(deletions, 1);

    // Unknown names, groups and files.
    fails(&b, &["resource", "get", "docs", "nope", "-o", s(&gone)], "unknown_resource");
    fails(&b, &["resource", "history", "docs", "nope"], "unknown_resource");
    fails(&b, &["resource", "list", "nope"], "unknown_group");
    fails(&a, &["resource", "put", "docs", "x", s(&root.join("missing"))], "resource_io");
    fails(&a, &["resource", "put", "docs", "bad\nname", s(&file)], "invalid_argument");
}

/// More than 4 MiB, in human mode with stderr not a terminal: the progress
/// bar stays hidden (nothing on stderr), one line on stdout, and the content
/// round-trips through stdin and stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_resource_large_without_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let root: PathBuf = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let a = root.join("a");
        ok(&a, &["init", "--server", &url, "--user", "alice"]);
        ok(&a, &["group", "create", "big"]);
        let data = content(5 * 1024 * 1024 + 17, 3);
        let file = root.join("big.bin");
        std::fs::write(&file, &data).unwrap();
        let (stdout, stderr) = human(&a, &["resource", "put", "big", "file.bin", s(&file)], b"");
        assert_eq!(stderr, "");
        let line = String::from_utf8(stdout).unwrap();
        assert_eq!(line.lines().count(), 1);
        assert!(line.starts_with("stored file.bin version 1 (5.00 MiB) from "), "{line}");
        let (_, stderr) = human(&a, &["resource", "put", "big", "piped.bin"], &data);
        assert_eq!(stderr, "");
        let (stdout, stderr) = human(&a, &["resource", "get", "big", "piped.bin"], b"");
        assert_eq!(stderr, "");
        assert!(stdout == data, "stdout differs from what was put ({} bytes)", stdout.len());
        let got = root.join("got.bin");
        let j = ok(&a, &["resource", "get", "big", "file.bin", "-o", s(&got)]);
        assert_eq!(j["size"], data.len());
        assert!(std::fs::read(&got).unwrap() == data);
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}
