//! Key transparency through the `grove` binary: `grove sync` reports a key
//! the DS published in the user's name (`key_transparency_alert`, text and
//! `--json`), and `grove audit` verifies the directory epoch by epoch,
//! resumes from its progress file, and exits non-zero naming the epoch the
//! DS rewrote.

#[path = "../../client/tests/common/mod.rs"]
mod common;
mod support;

use common::start_ds;
use support::{grove, ok, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reports_alerts_and_audit_catches_a_rewritten_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let progress = dir.path().join("audit.json");
    let (url2, a2, b2, p2) = (url.clone(), a.clone(), b.clone(), progress.clone());
    let audited_to = tokio::task::spawn_blocking(move || {
        ok(&a2, &["init", "--server", &url2, "--user", "alice"]);
        ok(&b2, &["init", "--server", &url2, "--user", "bob"]);
        let synced = ok(&a2, &["sync"]);
        assert_eq!(synced["key_transparency_alerts"], serde_json::json!([]), "{synced}");
        let p = p2.to_str().unwrap();
        let audited = ok(&a2, &["audit", "--server", &url2, "--progress", p]);
        assert_eq!(audited["from"], 0);
        assert!(audited["to"].as_u64().unwrap() >= 1, "{audited}");
        assert_eq!(audited["verified"], audited["to"]);
        // The next run resumes where the last one stopped.
        let again = ok(&a2, &["audit", "--server", &url2, "--progress", p]);
        assert_eq!(again["from"], audited["to"]);
        again["to"].as_u64().unwrap()
    })
    .await
    .unwrap();

    // The DS publishes keys of its own in alice's and bob's names.
    let kt = ds.ds.kt();
    let fake = [7u8; 32];
    kt.tamper.publish_key("alice", &fake);
    kt.tamper.publish_key("bob", &fake);
    kt.mark("alice");
    kt.mark("bob");
    kt.flush().await.unwrap();
    let epoch = kt.latest_epoch();
    // ...and rewrites epoch 1.
    kt.tamper.rewrite_root(1, &[0x42; 32]);

    let fresh = dir.path().join("fresh.json");
    tokio::task::spawn_blocking(move || {
        let synced = ok(&a, &["sync"]);
        let alerts = synced["key_transparency_alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{synced}");
        assert!(alerts[0].as_str().unwrap().contains(&format!("(epoch {epoch})")), "{synced}");
        // In text mode too.
        let text = run(&b, &["sync"], b"");
        assert!(text.status.success());
        let stdout = String::from_utf8_lossy(&text.stdout);
        let line = stdout.lines().find(|l| l.starts_with("key_transparency_alert: version ")).unwrap_or_default();
        assert!(line.contains(&format!("(epoch {epoch})")), "{stdout}");

        let failed = grove(&a, &["audit", "--server", &url, "--progress", fresh.to_str().unwrap()]);
        assert!(!failed.ok);
        assert_eq!(failed.json["code"], "audit_failed", "{}", failed.json);
        assert!(failed.json["error"].as_str().unwrap().contains("epoch 1:"), "{}", failed.json);
        let plain = run(&a, &["audit", "--server", &url, "--progress", fresh.to_str().unwrap()], b"");
        assert!(!plain.status.success());
        let stderr = String::from_utf8_lossy(&plain.stderr);
        assert!(stderr.contains("audit failed at directory epoch 1"), "{stderr}");
        // The progress file of the good run is untouched by a failed one.
        let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&progress).unwrap()).unwrap();
        assert_eq!(kept["epoch"].as_u64().unwrap(), audited_to);
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}
