//! The PostgreSQL server stops and starts again while members send through a
//! `grove-ds` replica: during the outage every request fails fast with `503
//! storage_unavailable` (never a hang, a crash or a 500), the replica
//! reconnects by itself afterwards, and every acknowledged message is in the
//! log. Its own test binary: it restarts the machine's PostgreSQL server, so
//! no other test may use the server meanwhile (cargo runs test binaries one
//! at a time). Needs `GROVE_TEST_DATABASE_URL` and a local cluster that
//! `pg_ctlcluster` controls; skipped (with `SKIPPED`) otherwise, except under
//! CI.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `pg_ctlcluster VERSION main ACTION`, for the one cluster in /etc/postgresql.
fn cluster(action: &str) -> Result<(), String> {
    let version = std::fs::read_dir("/etc/postgresql")
        .map_err(|e| format!("/etc/postgresql: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or("no cluster in /etc/postgresql")?;
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", &version, "main", action]);
    if action == "stop" {
        cmd.args(["-m", "fast"]);
    }
    let out = cmd.output().map_err(|e| format!("pg_ctlcluster: {e}"))?;
    if !out.status.success() {
        return Err(format!("pg_ctlcluster {action}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// Starts the server again whatever happens to the test.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = cluster("start");
        for _ in 0..100 {
            if Command::new("pg_isready").args(["-h", "127.0.0.1", "-q"]).status().is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct Ds(Child);

impl Drop for Ds {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_fails_fast_and_recovers() {
    let Some(db) = grove_ds::testing::TestDb::create("postgres_restart").await else { return };
    if let Err(why) = cluster("status") {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot control the PostgreSQL cluster: {why}");
        eprintln!("SKIPPED postgres_restart: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut ds = Ds(Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["--insecure-http", "--listen", &format!("127.0.0.1:{port}"), "--rate-limit-per-sec", "0"])
        .args(["--store", "postgres"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("GROVE_DS_DATABASE_URL", &db.url)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grove-ds"));
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url).await;
    let alice = Peer::join(&url, "alice", SUITES[0]).await;
    let (mut group, gid) = alice.create_group().await;
    let pool: Vec<Vec<u8>> = (0..8_000).map(|n| alice.app_bytes(&mut group, format!("m{n}").as_bytes())).collect();

    let restart = Restart;
    let start = Instant::now();
    let load = async {
        let mut acked = Vec::new();
        let (mut unavailable, mut slowest, mut ok_after_restart) = (0, Duration::ZERO, 0);
        for bytes in &pool {
            if start.elapsed() > Duration::from_millis(10_000) {
                break;
            }
            let t = Instant::now();
            let r = alice.post_raw(&gid, bytes.clone()).await;
            slowest = slowest.max(t.elapsed());
            match r.status {
                201 => {
                    acked.push((r.json()["seq"].as_u64().unwrap(), bytes.clone()));
                    if start.elapsed() > Duration::from_millis(6_500) {
                        ok_after_restart += 1;
                    }
                }
                503 => {
                    assert_eq!(r.code(), "storage_unavailable", "{}", String::from_utf8_lossy(&r.body));
                    assert!(r.headers.contains_key("retry-after"), "a 503 says when to retry");
                    unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                s => panic!("during the outage a request got {s}: {}", String::from_utf8_lossy(&r.body)),
            }
        }
        (acked, unavailable, slowest, ok_after_restart)
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tokio::task::spawn_blocking(|| cluster("stop")).await.unwrap().expect("stop PostgreSQL");
        // Longer than the pool's 3 s wait for a connection: requests must fail, not wait it out.
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        tokio::task::spawn_blocking(|| cluster("start")).await.unwrap().expect("start PostgreSQL");
    };
    let ((acked, unavailable, slowest, ok_after_restart), ()) = tokio::join!(load, outage);
    drop(restart);
    eprintln!(
        "{} acknowledged, {unavailable} refused with 503 during the outage, slowest request {slowest:?}, \
         {ok_after_restart} accepted after the restart",
        acked.len()
    );
    assert!(unavailable > 0, "requests during the outage were refused");
    assert!(slowest < Duration::from_secs(5), "no request hung: the slowest took {slowest:?}");
    assert!(ok_after_restart > 0, "the replica reconnected by itself");
    assert!(ds.0.try_wait().unwrap().is_none(), "grove-ds is still running");
    let stored = alice.whole_log(&gid).await;
    for (seq, bytes) in &acked {
        assert_eq!(stored.get(seq), Some(bytes), "acknowledged seq {seq} survived the restart");
    }
}
