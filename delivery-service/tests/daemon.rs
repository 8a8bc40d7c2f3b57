//! The real `grove-ds` binary: flags and environment, refusal to serve without
//! TLS unless told, SIGTERM drains and flushes, and a restart keeps the data.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["--insecure-http", "--listen", &format!("127.0.0.1:{port}")])
        .env("GROVE_DS_DATA_DIR", dir) // from the environment, not a flag
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grove-ds")
}

fn sigterm_and_wait(mut child: Child) -> std::process::ExitStatus {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "grove-ds did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_and_a_restart_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = spawn(dir.path(), port);
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    let url = format!("http://127.0.0.1:{port}");
    let alice = Peer::join(&url, "alice", SUITES[0]).await;
    let (_g, gid) = alice.create_group().await;
    let status = sigterm_and_wait(child);
    assert!(status.success(), "graceful exit, got {status:?}");

    let port = free_port();
    let child = spawn(dir.path(), port);
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    let mut alice = alice;
    alice.base = format!("http://127.0.0.1:{port}");
    assert_eq!(alice.register().await.status, 200, "alice is still registered (same key: 200, created false)");
    alice.login().await;
    assert_eq!(send(alice.get(&format!("/v1/groups/{gid}"))).await.status, 200, "the group survived");
    assert!(sigterm_and_wait(child).success());
}

#[test]
fn refuses_to_serve_plain_http_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no TLS configured"), "{err}");
}

/// A log written to a file (or a pipe) carries no ANSI colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_to_a_file_is_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("grove-ds.log");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_grove-ds"))
        .args(["--insecure-http", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start grove-ds");
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    assert!(sigterm_and_wait(child).success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("serving plain HTTP"), "the log has the startup warning: {log}");
    assert!(!log.contains('\u{1b}'), "no escape sequences in a log file: {log:?}");
}
