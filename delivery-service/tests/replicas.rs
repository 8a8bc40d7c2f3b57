//! Three `grove-ds` replicas (the real binary, `--store postgres`) on one
//! PostgreSQL database: an 8-way commit race spread over the replicas has
//! exactly one winner and every member converges; a message accepted on one
//! replica wakes a long-poll on another; a client moves between replicas
//! with the token it got from the first; a blob uploaded through one replica
//! downloads through another; kill -9 of one replica under load
//! loses no acknowledged message while the others keep serving.
//! Skipped (with `SKIPPED`) without `GROVE_TEST_DATABASE_URL`, except under CI.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use openmls::prelude::*;

struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn replica(db: &str, dir: &std::path::Path) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["--insecure-http", "--listen", &format!("127.0.0.1:{port}"), "--rate-limit-per-sec", "0"])
        .args(["--store", "postgres", "--database-pool", "8"])
        .arg("--data-dir")
        .arg(dir)
        .env("GROVE_DS_DATABASE_URL", db)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grove-ds");
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url).await;
    Replica { child, url }
}

async fn three(db: &str, dir: &std::path::Path) -> Vec<Replica> {
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(replica(db, &dir.join(format!("r{i}"))).await);
    }
    out
}

/// A group of `n` members created through replica 0, each member then
/// talking to replica `i % 3` with the token it got from replica 0.
async fn group_over(replicas: &[Replica], n: usize) -> (Vec<Peer>, Vec<MlsGroup>, String) {
    let url0 = &replicas[0].url;
    let alice = Peer::join(url0, "alice", SUITES[0]).await;
    let (group, gid) = alice.create_group().await;
    let mut peers = vec![alice];
    let mut groups = vec![group];
    for i in 1..n {
        let p = Peer::join(url0, &format!("m{i}"), SUITES[0]).await;
        assert_eq!(p.upload_key_packages(1, false).await.status, 201);
        peers.push(p);
    }
    let names: Vec<String> = peers[1..].iter().map(|p| p.name.clone()).collect();
    let r = peers[0].add(&mut groups[0], &gid, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    for (i, p) in peers.iter_mut().enumerate() {
        // (c) the same token on another replica.
        p.base = replicas[i % replicas.len()].url.clone();
    }
    for p in &peers[1..] {
        groups.push(p.accept_welcome(&gid).await);
    }
    (peers, groups, gid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_race_push_and_moving_clients_across_three_replicas() {
    let Some(db) = grove_ds::testing::TestDb::create("three_replicas").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let replicas = three(&db.url, dir.path()).await;
    let (peers, mut groups, gid) = group_over(&replicas, 8).await;

    // (a) Every member commits at the same epoch, each through its replica.
    let epoch = groups[0].epoch();
    let bundles: Vec<CommitMessageBundle> = peers
        .iter()
        .zip(groups.iter_mut())
        .map(|(p, g)| g.self_update(&p.provider, &p.signer, LeafNodeParameters::default()).unwrap())
        .collect();
    let posts = peers.iter().zip(&bundles).map(|(p, b)| p.post_commit_bundle(&gid, b));
    let results = futures_util::future::join_all(posts).await;
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.status == 201).map(|(i, _)| i).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one commit per epoch across replicas: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for (i, r) in results.iter().enumerate() {
        if r.status != 201 {
            assert_eq!(r.code(), "stale_epoch", "member {i} lost the race: {}", String::from_utf8_lossy(&r.body));
        }
    }
    let w = winners[0];
    for (i, (p, g)) in peers.iter().zip(groups.iter_mut()).enumerate() {
        if i == w {
            g.merge_pending_commit(&p.provider).unwrap();
        } else {
            g.clear_pending_commit(p.provider.storage()).unwrap();
        }
    }
    // Every member converges, reading from its own replica.
    let mut cursors = vec![0u64; peers.len()];
    for (i, (p, g)) in peers.iter().zip(groups.iter_mut()).enumerate() {
        p.sync(g, &gid, &mut cursors[i]).await;
        assert_eq!(g.epoch().as_u64(), epoch.as_u64() + 1, "{} converged", p.name);
    }
    let auth = groups[0].epoch_authenticator().as_slice().to_vec();
    assert!(groups.iter().all(|g| g.epoch_authenticator().as_slice() == auth), "one epoch secret for all");

    // (b) Push across replicas: m1 long-polls on replica 1, alice posts on
    // replica 0 (m3 also on replica 0, m2 on replica 2).
    let m1 = &peers[1];
    assert_ne!(m1.base, peers[0].base);
    let mut waits = Vec::new();
    for round in 0..10 {
        let after = cursors[1];
        let poll = send(m1.get(&grove_ds::api::routes::fetch(&gid_of(&gid), after, 100, Some(10))));
        let post = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let t = Instant::now();
            let text = format!("round {round}");
            let r = {
                let (p, g) = (&peers[2], &mut groups[2]);
                p.send_text(g, &gid, &text).await
            };
            assert_eq!(r.status, 201);
            t
        };
        let (page, sent_at) = tokio::join!(poll, post);
        let waited = sent_at.elapsed();
        assert_eq!(page.status, 200);
        let msgs = page.json()["messages"].as_array().cloned().unwrap_or_default();
        assert!(!msgs.is_empty(), "the long-poll on replica 1 woke with the message posted on replica 2");
        cursors[1] = msgs.last().unwrap()["seq"].as_u64().unwrap();
        waits.push(waited);
    }
    waits.sort();
    eprintln!("cross-replica wake-up after the post returned: median {:?}, max {:?}", waits[5], waits[9]);
    assert!(waits[9] < Duration::from_secs(2), "a long-poll of 10 s woke in {:?}: pushed, not timed out", waits[9]);

    // (c) m1's token works on every replica, and every replica serves the
    // same log.
    let mut logs = Vec::new();
    for r in &replicas {
        let got = send(
            m1.http
                .get(format!("{}{}", r.url, grove_ds::api::routes::fetch(&gid_of(&gid), 0, 500, None)))
                .bearer_auth(&m1.token),
        )
        .await;
        assert_eq!(got.status, 200, "{}: {}", r.url, String::from_utf8_lossy(&got.body));
        let seqs: Vec<u64> =
            got.json()["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        logs.push(seqs);
    }
    assert!(logs.iter().all(|l| *l == logs[0]), "every replica serves the same log: {logs:?}");
    assert_eq!(logs[0], (1..=logs[0].len() as u64).collect::<Vec<_>>(), "no gap, no duplicate");

    // A blob uploaded through replica 0 downloads through replica 1.
    let blob: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    let up = send(
        peers[0]
            .post(&format!("/v1/groups/{gid}/blobs"))
            .header("content-type", "application/octet-stream")
            .body(blob.clone()),
    )
    .await;
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    let id = up.json()["blob_id"].as_str().unwrap().to_string();
    let down = send(m1.get(&format!("/v1/groups/{gid}/blobs/{id}"))).await;
    assert_eq!(down.status, 200);
    assert!(down.body == blob, "the blob read through another replica differs");
}

/// (d) kill -9 of one replica while members send through all three: every
/// acknowledged message is in the log afterwards, at its seq, with its bytes,
/// and the other two replicas kept accepting messages after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_replica_loses_nothing_and_the_others_keep_serving() {
    let Some(db) = grove_ds::testing::TestDb::create("replica_kill_9").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = three(&db.url, dir.path()).await;
    let (peers, mut groups, gid) = group_over(&replicas, 6).await;
    let pools: Vec<Vec<Vec<u8>>> = peers
        .iter()
        .zip(groups.iter_mut())
        .map(|(p, g)| (0..400).map(|n| p.app_bytes(g, format!("{} {n}", p.name).as_bytes())).collect())
        .collect();
    let killed_url = replicas[1].url.clone();
    let start = Instant::now();
    let kill_at = start + Duration::from_millis(700);
    let stop_at = start + Duration::from_millis(1_600);
    let (gid_ref, killed) = (&gid, &killed_url);
    let senders = peers.iter().zip(pools).map(|(p, pool)| async move {
        let mut acked = Vec::new();
        let mut after_kill_ok = 0;
        for bytes in pool {
            if Instant::now() >= stop_at {
                break;
            }
            let r = p.http.post(format!("{}{}", p.base, grove_ds::api::routes::messages(&gid_of(gid_ref))));
            let r = r.bearer_auth(&p.token).header("content-type", grove_ds::api::MEDIA_MLS).body(bytes.clone());
            match r.send().await {
                Ok(resp) if resp.status().as_u16() == 201 => {
                    let seq = resp.json::<serde_json::Value>().await.unwrap()["seq"].as_u64().unwrap();
                    acked.push((seq, bytes));
                    if Instant::now() > kill_at + Duration::from_millis(100) {
                        after_kill_ok += 1;
                    }
                }
                // The killed replica: connection refused or reset; stop sending there.
                Ok(resp) => panic!("{} got {} from {}", p.name, resp.status(), p.base),
                Err(_) if p.base == *killed => break,
                Err(e) => panic!("{} lost a surviving replica: {e}", p.name),
            }
        }
        (p.base.clone(), acked, after_kill_ok)
    });
    let killer = async {
        tokio::time::sleep_until(kill_at.into()).await;
        replicas[1].child.kill().unwrap(); // SIGKILL
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(senders), killer);
    let _ = replicas[1].child.wait();

    let reader = &peers[0];
    let stored = reader.whole_log(&gid).await;
    let mut total = 0;
    for (base, acked, after_kill_ok) in &results {
        total += acked.len();
        for (seq, bytes) in acked {
            assert_eq!(stored.get(seq), Some(bytes), "acknowledged seq {seq} (via {base}) is in the log");
        }
        if *base != killed_url {
            assert!(*after_kill_ok > 0, "{base} kept accepting messages after the kill");
        }
    }
    eprintln!("{total} messages acknowledged across the kill, all in the log");
    assert!(total > 50, "the load was real: {total} messages");
}

/// The key directory on three replicas of one database: registrations made
/// concurrently through all three land in one directory (publishes take
/// turns), every replica proves every user and serves the same heads, and
/// the whole history audits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_directory_across_three_replicas() {
    let Some(db) = grove_ds::testing::TestDb::create("kt_replicas").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let replicas = three(&db.url, dir.path()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let url = replicas[i % 3].url.clone();
        tasks.spawn(async move {
            let p = Peer::new(&url, &format!("u{i:02}"), SUITES[0]);
            let r = p.register().await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let mut watchers = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        let mut w = Peer::join(&r.url, &format!("watcher{i}"), SUITES[0]).await;
        w.login().await;
        watchers.push(w);
    }
    let keys = kt_keys(&watchers[0]).await;
    for w in &watchers[1..] {
        assert_eq!(kt_keys(w).await, keys, "one directory, one set of keys");
    }
    // Each user, proven through a replica other than the one that took the
    // registration (it may take the other replica's publish a moment).
    for i in 0..30 {
        let w = &watchers[(i + 1) % 3];
        let user = format!("u{i:02}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = kt_lookup(w, &user).await;
            if r.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{user} never reached the directory: {}", r.code());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(kt_verified(w, &user).await.version, 1);
    }
    // The same signed head of every epoch on every replica, and the
    // history from epoch 0 audits.
    let head = |w: &Peer, epoch: Option<u64>| {
        let path = epoch.map_or_else(|| grove_ds::api::routes::KT_HEAD.to_owned(), grove_ds::api::routes::kt_head_at);
        let req = w.http.get(format!("{}{path}", w.base));
        async move {
            let r = send(req).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            serde_json::from_slice::<grove_proto::kt::HeadResponse>(&r.body).unwrap().head
        }
    };
    let latest = head(&watchers[2], None).await.epoch;
    assert!(latest >= 2, "{latest}");
    for e in 1..=latest {
        let h = head(&watchers[0], Some(e)).await;
        assert_eq!(head(&watchers[1], Some(e)).await, h);
        assert_eq!(head(&watchers[2], Some(e)).await, h);
    }
    let mut from = 0;
    while from < latest {
        let to = (from + grove_proto::kt::MAX_AUDIT_SPAN).min(latest);
        kt_audit(&watchers[(from as usize) % 3], from, to).await.unwrap();
        from = to;
    }
}
