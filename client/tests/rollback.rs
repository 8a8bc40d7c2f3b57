//! Server rollback: the DS is restored from an old copy of its data directory.
//! The client notices each sign (a log that ends below its cursor, an epoch
//! below its own, a pinned user the DS no longer knows), reports
//! `server_rollback`, and refuses to send into the group until the user
//! acknowledges it.

mod common;

use std::path::Path;

use common::{copy_dir, new_client, TestResult, SUITES};
use grove_client::Error;
use grove_ds::config::Config;
use grove_ds::testing::TestServer;

/// A DS on a fixed port over `data`, so that clients find it again after a restart.
async fn start_on(data: &Path, port: u16) -> TestServer {
    grove_ds::server::install_crypto_provider();
    let mut c = Config::for_tests(data.to_path_buf());
    c.rate_limit_per_sec = 0;
    c.listen = format!("127.0.0.1:{port}").parse().unwrap();
    TestServer::start(c).await.expect("start test DS")
}

fn is_rollback(r: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::ServerRollback { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_old_server_is_detected_and_sending_waits_for_the_user() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, backup) = (dir.path().join("ds"), dir.path().join("ds-backup"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let ds = start_on(&data, port).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", SUITES[0]).await;
    let gid = alice.create_group("g").await?;

    // The operator's backup: alice and her group at epoch 0, nothing else.
    ds.shutdown().await?;
    copy_dir(&data, &backup)?;
    let ds = start_on(&data, port).await;

    let bob = new_client(dir.path(), &url, "bob", SUITES[0]).await;
    alice.add_members(&gid, &["bob"]).await?;
    bob.sync().await?;
    for i in 0..3 {
        bob.send(&gid, &format!("m{i}")).await?;
    }
    let r = alice.sync().await?;
    assert!(r.rollbacks.is_empty(), "{r:?}");
    assert_eq!(alice.epoch_authenticator(&gid)?.0, 1);

    // The DS is restored from the backup.
    ds.shutdown().await?;
    std::fs::remove_dir_all(&data)?;
    copy_dir(&backup, &data)?;
    let ds = start_on(&data, port).await;

    // 1. The log ends below alice's cursor: reported by sync, and sending waits.
    let r = alice.sync().await?;
    assert_eq!(r.rollbacks.len(), 1, "{r:?}");
    assert!(r.rollbacks[0].contains("already processed it through seq"), "{r:?}");
    let send = alice.send(&gid, "into a rolled-back group").await;
    assert!(is_rollback(&send), "{send:?}");
    assert!(is_rollback(&alice.self_update(&gid).await), "commits wait too");
    assert_eq!(alice.sync().await?.rollbacks.len(), 1, "still reported until acknowledged");

    // 2. A pinned user the DS no longer knows.
    let lookup = alice.lookup_user("bob").await;
    assert!(matches!(&lookup, Err(Error::ServerRollback { detail, .. }) if detail.contains("bob")), "{lookup:?}");

    // 3. Once acknowledged, a send finds the DS's epoch (0) below alice's (1):
    //    flagged again, and nothing is sent.
    assert!(alice.acknowledge_rollback(&gid).await?);
    assert!(alice.sync().await?.rollbacks.is_empty());
    let send = alice.send(&gid, "at epoch 1").await;
    assert!(
        matches!(&send, Err(Error::ServerRollback { detail, .. }) if detail.contains("epoch 0") && detail.contains("epoch 1")),
        "{send:?}"
    );
    assert_eq!(alice.sync().await?.rollbacks.len(), 1);
    assert!(alice.acknowledge_rollback("g").await?);
    assert!(alice.sync().await?.rollbacks.is_empty());
    ds.shutdown().await?;
    Ok(())
}
