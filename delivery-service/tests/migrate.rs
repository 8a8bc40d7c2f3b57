//! `grove-ds migrate --from-sled DIR --to URL`: a sled data directory with
//! real traffic, copied into PostgreSQL, serves the same clients as before:
//! their tokens work, the log has the same entries at the same seqs, the
//! sequence numbers continue, a waiting Welcome is still there. A second
//! migration into the now non-empty database is refused.

mod common;

use common::*;
use grove_ds::config::StoreKind;

fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["migrate", "--json", "--from-sled"])
        .arg(from)
        .args(["--to", to])
        .output()
        .expect("run grove-ds migrate")
}

async fn seqs(p: &Peer, gid: &str) -> Vec<(u64, String)> {
    let page = p.fetch(gid, 0).await;
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    page.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["message"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_data_dir_moves_to_postgres_and_clients_notice_nothing() {
    let Some(db) = grove_ds::testing::TestDb::create("migrate_from_sled").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", SUITES[0]).await;
    let mut bob = Peer::join(&url, "bob", SUITES[0]).await;
    let carol = Peer::join(&url, "carol", SUITES[0]).await;
    bob.upload_key_packages(3, true).await;
    carol.upload_key_packages(2, true).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.add(&mut ag, &gid, &["bob"]).await.status, 201);
    let mut bg = bob.accept_welcome(&gid).await;
    for i in 0..5 {
        assert_eq!(alice.send_text(&mut ag, &gid, &format!("before {i}")).await.status, 201);
    }
    let mut cursor = 0;
    assert_eq!(bob.sync(&mut bg, &gid, &mut cursor).await.len(), 5);
    // Carol is added but has not fetched her Welcome yet.
    assert_eq!(alice.add(&mut ag, &gid, &["carol"]).await.status, 201);
    let before = seqs(&alice, &gid).await;
    let blob = vec![42u8; (1 << 20) + 17];
    let up = send(
        alice
            .post(&format!("/v1/groups/{gid}/blobs"))
            .header("content-type", "application/octet-stream")
            .body(blob.clone()),
    )
    .await;
    assert_eq!(up.status, 201);
    let blob_id = up.json()["blob_id"].as_str().unwrap().to_string();
    ds.ds.kt().flush().await.unwrap();
    let kt_keys = ds.ds.kt().keys().clone();
    let kt_epoch = ds.ds.kt().latest_epoch();
    let kt_head = ds.ds.kt().head(None).await.unwrap();
    ds.shutdown().await.unwrap();

    let out = migrate(dir.path(), &db.url);
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["users"], 3);
    assert_eq!(report["groups"], 1);
    assert_eq!(report["log_entries"].as_u64().unwrap(), before.len() as u64);
    assert_eq!(report["welcomes"], 1, "carol's Welcome waits");
    assert_eq!(report["blobs"], 1);
    assert!(report["kt_records"].as_u64().unwrap() > 3, "{report}");

    let dir2 = tempfile::tempdir().unwrap();
    let ds = start_with(dir2.path(), |c| {
        c.store = StoreKind::Postgres;
        c.database_url = Some(db.url.clone());
    })
    .await;
    let url = ds.url();
    let mut alice = alice;
    alice.base = url.clone();
    bob.base = url.clone();
    let mut carol = carol;
    carol.base = url.clone();
    assert_eq!(seqs(&bob, &gid).await, before, "the same log, at the same seqs, with bob's old token");
    // The key directory moved with its keys (clients pinned them) and its epochs.
    assert_eq!(ds.ds.kt().keys(), &kt_keys);
    assert_eq!(ds.ds.kt().head(None).await.unwrap(), kt_head);
    assert_eq!(ds.ds.kt().latest_epoch(), kt_epoch);
    let down = send(bob.get(&format!("/v1/groups/{gid}/blobs/{blob_id}"))).await;
    assert_eq!(down.status, 200);
    assert!(down.body == blob, "the blob moved into PostgreSQL byte for byte");
    let mut cg = carol.accept_welcome(&gid).await;
    let r = alice.send_text(&mut ag, &gid, "after").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["seq"].as_u64().unwrap(), before.last().unwrap().0 + 1, "sequence numbers continue");
    assert!(bob.sync(&mut bg, &gid, &mut cursor).await.contains(&"after".to_string()));
    let mut c = before.last().unwrap().0;
    assert_eq!(carol.sync(&mut cg, &gid, &mut c).await, ["after"]);
    // Carol's KeyPackages: one of two was claimed, the last resort stays.
    let counts = carol.upload_key_packages(1, false).await;
    assert_eq!(counts.json()["one_time"], 2);
    ds.shutdown().await.unwrap();

    let again = migrate(dir.path(), &db.url);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"), "{}", String::from_utf8_lossy(&again.stderr));
}
