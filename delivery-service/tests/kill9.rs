//! kill -9 under load: the real `grove-ds` binary is killed (SIGKILL, no
//! shutdown, no flush) while several senders post application messages, and
//! restarted on the same data directory, a few times. Every message the DS
//! acknowledged (201 with a seq) must be in the log after the restart, at that
//! seq, with the same bytes. So must every entry a member following the log
//! was delivered before the kill (a delivered entry was durable: visibility
//! follows the fsync). Four kills, about 2 s of load each.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const SENDERS: usize = 4;
const KILLS: usize = 4;
/// Each round: senders post until this long after its start; the kill comes before.
const ROUND: Duration = Duration::from_millis(1_800);

/// The running `grove-ds`, killed when dropped (also when an assertion fails).
struct Ds(Child);

impl Drop for Ds {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &std::path::Path, port: u16) -> Ds {
    Ds(Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["--insecure-http", "--listen", &format!("127.0.0.1:{port}"), "--rate-limit-per-sec", "0"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grove-ds"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = spawn(&data, port);
    wait_healthy(&url).await;

    // One group of SENDERS members, each with a pool of pre-encrypted messages.
    let alice = Peer::join(&url, "alice", SUITES[0]).await;
    let (mut group, gid) = alice.create_group().await;
    let mut peers = Vec::new();
    for i in 1..SENDERS {
        let p = Peer::join(&url, &format!("p{i}"), SUITES[0]).await;
        assert_eq!(p.upload_key_packages(1, false).await.status, 201);
        peers.push(p);
    }
    let names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
    let r = alice.add(&mut group, &gid, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let mut groups = vec![group];
    for p in &peers {
        groups.push(p.accept_welcome(&gid).await);
    }
    peers.insert(0, alice);
    let mut pools: Vec<Vec<Vec<u8>>> = peers
        .iter()
        .zip(groups.iter_mut())
        .map(|(p, g)| (0..4_000).map(|n| p.app_bytes(g, format!("{} {n}", p.name).as_bytes())).collect())
        .collect();

    // seq -> bytes, for every 201.
    let acked: Arc<Mutex<BTreeMap<u64, Vec<u8>>>> = Arc::default();
    // seq -> bytes, for every entry delivered to a follower.
    let delivered: Arc<Mutex<BTreeMap<u64, Vec<u8>>>> = Arc::default();
    let mut failed_requests = 0usize;
    for round in 0..KILLS {
        let follower = tokio::spawn(follow(&peers[0], &gid, delivered.clone()));
        let start = Instant::now();
        let stop_at = start + ROUND;
        let tasks: Vec<_> = peers
            .iter_mut()
            .zip(pools.iter_mut())
            .map(|(p, pool)| {
                let (acked, gid) = (acked.clone(), gid.clone());
                let (http, base, token) = (p.http.clone(), p.base.clone(), p.token.clone());
                let mut pool = std::mem::take(pool);
                tokio::spawn(async move {
                    let mut failed = 0usize;
                    while let Some(bytes) = pool.pop() {
                        if Instant::now() > stop_at {
                            break;
                        }
                        let path = grove_ds::api::routes::messages(&gid_of(&gid));
                        let r = http
                            .post(format!("{base}{path}"))
                            .bearer_auth(&token)
                            .header("content-type", grove_ds::api::MEDIA_MLS)
                            .body(bytes.clone())
                            .timeout(Duration::from_secs(2))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().as_u16() == 201 => {
                                let v: serde_json::Value = r.json().await.unwrap();
                                acked.lock().unwrap().insert(v["seq"].as_u64().unwrap(), bytes);
                            }
                            // Killed mid-request, or not up yet: outcome unknown, never acknowledged.
                            _ => {
                                failed += 1;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    (pool, failed)
                })
            })
            .collect();
        // Kill at a moment within the load.
        tokio::time::sleep(Duration::from_millis(800 + (137 * round as u64) % 500)).await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        follower.await.unwrap();
        child = spawn(&data, port);
        wait_healthy(&url).await;
        for (t, pool) in tasks.into_iter().zip(pools.iter_mut()) {
            let (left, failed) = t.await.unwrap();
            *pool = left;
            failed_requests += failed;
        }
        for p in &mut peers {
            p.login().await; // tokens live in the killed process's memory
        }
    }

    // Every acknowledged message is in the log, at its seq, byte for byte.
    let acked = acked.lock().unwrap().clone();
    let mut stored = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = peers[0].fetch(&gid, after).await;
        assert_eq!(page.status, 200);
        let page = page.json();
        let msgs = page["messages"].as_array().unwrap().clone();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            after = m["seq"].as_u64().unwrap();
            stored.insert(after, unb64(m["message"].as_str().unwrap()));
        }
    }
    assert!(acked.len() > 100, "the load was real: {} acknowledged", acked.len());
    let lost: Vec<u64> = acked.iter().filter(|(seq, bytes)| stored.get(seq) != Some(bytes)).map(|(s, _)| *s).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged messages lost or changed: {lost:?}", lost.len(), acked.len());
    let delivered = delivered.lock().unwrap().clone();
    assert!(delivered.len() > 100, "the follower kept up: {} delivered", delivered.len());
    let lost: Vec<u64> =
        delivered.iter().filter(|(seq, bytes)| stored.get(seq) != Some(bytes)).map(|(s, _)| *s).collect();
    assert!(lost.is_empty(), "{} of {} delivered entries lost or changed: {lost:?}", lost.len(), delivered.len());
    eprintln!(
        "{KILLS} kills: {} acknowledged and {} delivered, all kept; {failed_requests} requests failed or were cut off",
        acked.len(),
        delivered.len()
    );
}

/// A member following the log with long polls until the DS goes away (the
/// kill): records every entry delivered to it.
fn follow(
    peer: &Peer,
    gid: &str,
    delivered: Arc<Mutex<BTreeMap<u64, Vec<u8>>>>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (http, base, token) = (peer.http.clone(), peer.base.clone(), peer.token.clone());
    let gid = gid_of(gid);
    async move {
        let mut after = delivered.lock().unwrap().keys().next_back().copied().unwrap_or(0);
        loop {
            let path = grove_ds::api::routes::fetch(&gid, after, 500, Some(1));
            let r = http.get(format!("{base}{path}")).bearer_auth(&token).timeout(Duration::from_secs(3)).send().await;
            let Ok(r) = r else { return };
            if r.status().as_u16() != 200 {
                return;
            }
            let Ok(page) = r.json::<serde_json::Value>().await else { return };
            for m in page["messages"].as_array().into_iter().flatten() {
                after = m["seq"].as_u64().unwrap();
                delivered.lock().unwrap().insert(after, unb64(m["message"].as_str().unwrap()));
            }
        }
    }
}
