//! Shared test harness: an in-process grove-ds and real `grove_client` clients
//! in temporary home directories.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod evil;

use std::path::Path;

use grove_client::{Client, ClientConfig};
use grove_ds::config::Config;
use grove_ds::testing::TestServer;

/// Ciphersuites every scenario runs with: 0x0001 and 0x0003.
pub const SUITES: [u16; 2] = [1, 3];

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub async fn start_ds(dir: &Path) -> TestServer {
    start_ds_with(dir, |_| {}).await
}

/// [`start_ds`] with the configuration changed by `f` first.
pub async fn start_ds_with(dir: &Path, f: impl FnOnce(&mut Config)) -> TestServer {
    grove_ds::server::install_crypto_provider();
    let mut c = Config::for_tests(dir.join("ds"));
    c.rate_limit_per_sec = 0;
    f(&mut c);
    TestServer::start(c).await.expect("start test DS")
}

pub fn config(url: &str, user: &str, suite: u16) -> ClientConfig {
    let mut c = ClientConfig::new(url, user);
    c.ciphersuite = suite;
    c.key_packages = 3;
    c
}

pub async fn new_client(dir: &Path, url: &str, user: &str, suite: u16) -> Client {
    Client::create(dir.join(user), config(url, user, suite)).await.unwrap_or_else(|e| panic!("create {user}: {e}"))
}

/// A DS, and alice and bob in a group named `group` that alice created and
/// bob joined.
pub async fn ds_with_pair(dir: &Path, suite: u16, group: &str) -> (TestServer, Client, Client) {
    let ds = start_ds(dir).await;
    let url = ds.url();
    let alice = new_client(dir, &url, "alice", suite).await;
    let bob = new_client(dir, &url, "bob", suite).await;
    alice.create_group(group).await.expect("alice creates the group");
    alice.add_members(group, &["bob"]).await.expect("alice adds bob");
    bob.sync().await.expect("bob joins");
    (ds, alice, bob)
}

pub fn texts(c: &Client, group: &str) -> Vec<String> {
    c.messages(group).expect("messages").into_iter().map(|m| format!("{}: {}", m.sender, m.text)).collect()
}

/// Every file under `dir` (recursively), concatenated: what is on disk.
pub fn disk_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(disk_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).expect("read file"));
        }
    }
    out
}

/// Copies a directory tree (a client's home, a DS's data dir), as a backup would.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
