//! A client reopened from disk continues exactly where it was: same epoch,
//! cursor, messages, name and pins; and it keeps working (send, receive, commit).

mod common;

use common::{new_client, start_ds, texts, TestResult, SUITES};
use grove_client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_continues_exactly() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let ds = start_ds(dir.path()).await;
        let url = ds.url();
        let alice = new_client(dir.path(), &url, "alice", suite).await;
        let bob = new_client(dir.path(), &url, "bob", suite).await;
        alice.create_group("g").await?;
        alice.add_members("g", &["bob"]).await?;
        bob.sync().await?;
        bob.send("g", "one").await?;
        alice.sync().await?;
        alice.send("g", "two").await?;
        bob.sync().await?;
        alice.self_update("g").await?;
        bob.sync().await?;

        let before =
            (bob.epoch_authenticator("g")?, bob.group_state("g")?, texts(&bob, "g"), bob.groups()?[0].name.clone());
        let bob_members = bob.members("g")?.into_iter().map(|m| (m.user, m.key)).collect::<Vec<_>>();
        drop(bob);

        let bob = Client::open(dir.path().join("bob"))?;
        let after =
            (bob.epoch_authenticator("g")?, bob.group_state("g")?, texts(&bob, "g"), bob.groups()?[0].name.clone());
        assert_eq!(before, after);
        assert_eq!(bob.members("g")?.into_iter().map(|m| (m.user, m.key)).collect::<Vec<_>>(), bob_members);
        assert_eq!(bob.whoami().user, "bob");

        // A sync with nothing new changes nothing.
        let r = bob.sync().await?;
        assert_eq!(r.messages, 0);
        assert_eq!(bob.group_state("g")?, after.1);

        // And it keeps going: send after reopen, receive, commit.
        bob.send("g", "three").await?;
        alice.sync().await?;
        assert_eq!(texts(&alice, "g"), ["bob: one", "alice: two", "bob: three"]);
        bob.self_update("g").await?;
        alice.sync().await?;
        assert_eq!(alice.epoch_authenticator("g")?, bob.epoch_authenticator("g")?);

        // Reopening alice too (after the DS restarted its tokens: re-login is automatic).
        drop(alice);
        let alice = Client::open(dir.path().join("alice"))?;
        alice.send("g", "four").await?;
        bob.sync().await?;
        assert_eq!(texts(&bob, "g").last().map(String::as_str), Some("alice: four"));
        ds.shutdown().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relogin_after_ds_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let addr = ds.addr;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await;
    alice.create_group("g").await?;
    ds.shutdown().await?;
    // Same data dir and port: every token is gone (401 token_invalid).
    grove_ds::server::install_crypto_provider();
    let mut c = grove_ds::config::Config::for_tests(dir.path().join("ds"));
    c.listen = addr;
    c.rate_limit_per_sec = 0;
    let ds = grove_ds::testing::TestServer::start(c).await?;
    alice.send("g", "after restart").await?;
    assert_eq!(alice.messages("g")?.last().and_then(|m| m.seq), Some(2));
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_is_resumable_and_bound_to_one_identity() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let home = dir.path().join("alice");
    assert!(matches!(Client::open(&home), Err(grove_client::Error::NotInitialized(_))));
    let first = Client::create(&home, common::config(&url, "alice", 1)).await?.whoami();
    // Again with the same user and server: same key, registration is idempotent.
    let again = Client::create(&home, common::config(&url, "alice", 1)).await?.whoami();
    assert_eq!(first.fingerprint, again.fingerprint);
    // Another user in the same home is refused.
    let r = Client::create(&home, common::config(&url, "mallory", 1)).await;
    assert!(matches!(r, Err(grove_client::Error::AlreadyInitialized { .. })), "{r:?}");
    // The name is bound to alice's key on the DS: another home cannot take it.
    let r = Client::create(dir.path().join("other"), common::config(&url, "alice", 1)).await;
    assert_eq!(r.err().and_then(|e| e.server_code().map(str::to_owned)).as_deref(), Some("user_exists"));
    ds.shutdown().await?;
    Ok(())
}
