//! The encrypted blob store: streamed upload and download for current members
//! only, limits, deletion, durability across a restart, nothing in plaintext.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_for_members_only_and_survive_restart() {
    round_trip(None).await;
}

/// The same on PostgreSQL: blobs live in the database (chunks), so a
/// restarted replica with a new, empty data directory still serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_blobs_round_trip_for_members_only_and_survive_restart() {
    let Some(db) = grove_ds::testing::TestDb::create("postgres_blobs").await else { return };
    round_trip(Some(db.url.clone())).await;
}

async fn round_trip(database_url: Option<String>) {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let configure = |c: &mut grove_ds::config::Config| {
        c.max_blob_bytes = 8 << 20;
        if let Some(url) = &database_url {
            c.store = grove_ds::config::StoreKind::Postgres;
            c.database_url = Some(url.clone());
        }
    };
    let ds = start_with(dir.path(), configure).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let bob = Peer::join(&url, "bob", suite).await;
    let eve = Peer::join(&url, "eve", suite).await;
    bob.upload_key_packages(1, false).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.add(&mut ag, &gid, &["bob"]).await.status, 201);

    // 5 MiB of "ciphertext" (the DS never looks inside).
    let data: Vec<u8> = (0..5u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let up = |p: &Peer, body: Vec<u8>| {
        send(p.post(&format!("/v1/groups/{gid}/blobs")).header("content-type", "application/octet-stream").body(body))
    };
    let r = up(&alice, data.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["blob_id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["size"], data.len());
    assert_eq!(id.len(), 32);

    // A member downloads it byte for byte; a stranger can do neither.
    let r = send(bob.get(&format!("/v1/groups/{gid}/blobs/{id}"))).await;
    assert_eq!(r.status, 200);
    assert!(r.body == data, "download differs from upload");
    let r = send(eve.get(&format!("/v1/groups/{gid}/blobs/{id}"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "not_a_member"));
    let r = up(&eve, vec![1, 2, 3]).await;
    assert_eq!((r.status, r.code().as_str()), (403, "not_a_member"));

    // Limits and bad ids.
    // Its own connection: the server stops reading an oversized upload.
    let r = send(
        http()
            .post(format!("{url}/v1/groups/{gid}/blobs"))
            .bearer_auth(&alice.token)
            .header("content-type", "application/octet-stream")
            .body(vec![0u8; 9 << 20]),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"));
    let r = send(alice.get(&format!("/v1/groups/{gid}/blobs/{}", "0".repeat(32)))).await;
    assert_eq!((r.status, r.code().as_str()), (404, "unknown_blob"));
    let r = send(alice.get(&format!("/v1/groups/{gid}/blobs/..%2F..%2Fdb"))).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_request"));

    // After a restart the acknowledged blob is still there.
    ds.shutdown().await.unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let restarted_in = if database_url.is_some() { dir2.path() } else { dir.path() };
    let ds = start_with(restarted_in, configure).await;
    let mut bob = bob;
    bob.base = ds.url();
    bob.login().await;
    let r = send(bob.get(&format!("/v1/groups/{gid}/blobs/{id}"))).await;
    assert_eq!(r.status, 200);
    assert!(r.body == data);

    // Removed members lose access; deletion works once.
    let mut alice = alice;
    alice.base = ds.url();
    alice.login().await;
    assert_eq!(alice.remove(&mut ag, &gid, &["bob"]).await.status, 201);
    let r = send(bob.get(&format!("/v1/groups/{gid}/blobs/{id}"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "not_a_member"));
    let del = |p: &Peer| send(p.http.delete(format!("{}/v1/groups/{gid}/blobs/{id}", p.base)).bearer_auth(&p.token));
    assert_eq!(del(&alice).await.status, 204);
    assert_eq!(del(&alice).await.code(), "unknown_blob");
    ds.shutdown().await.unwrap();
    // No temporary files are left behind.
    if database_url.is_none() {
        let leftovers: Vec<_> =
            walk(&dir.path().join("blobs")).into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
