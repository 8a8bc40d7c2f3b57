//! KeyPackages: N one-time plus one last-resort package are uploaded at
//! creation, a joiner whose one-time packages ran out joins with the
//! last-resort one (several times), and the next sync tops up and rotates it.
//! A member removed and added again rejoins with its old history kept.

mod common;

use common::{new_client, start_ds, texts, TestResult};
use grove_client::GroupState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_up_and_last_resort() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 1).await; // 3 one-time packages
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let counts = bob.ensure_key_packages().await?;
    assert_eq!((counts.one_time, counts.last_resort), (3, true));

    // Five adds: three one-time packages, then the last-resort one twice.
    let mut groups = Vec::new();
    for i in 0..5 {
        let name = format!("g{i}");
        alice.create_group(&name).await?;
        alice.add_members(&name, &["bob"]).await?;
        groups.push(name);
    }
    // White-box, on the DS: what a claim hands out now is the last-resort package.
    let (lr_before, kind) = ds.ds.claim_key_package("bob", 1).await?;
    assert_eq!(format!("{kind:?}").to_lowercase().replace(['-', '_'], ""), "lastresort");
    let r = bob.sync().await?;
    assert_eq!(r.joined.len(), 5);
    assert_eq!(r.failed_welcomes, 0);
    for g in &groups {
        alice.send(g, &format!("hello in {g}")).await?;
    }
    bob.sync().await?;
    for g in &groups {
        assert_eq!(texts(&bob, g), [format!("alice: hello in {g}")]);
    }
    // The sync topped up the one-time packages and replaced the used last-resort one.
    let counts = bob.ensure_key_packages().await?;
    assert_eq!((counts.one_time, counts.last_resort), (3, true));
    for _ in 0..3 {
        let (_, kind) = ds.ds.claim_key_package("bob", 1).await?;
        assert_eq!(format!("{kind:?}").to_lowercase().replace(['-', '_'], ""), "onetime");
    }
    let (lr_after, _) = ds.ds.claim_key_package("bob", 1).await?;
    assert_ne!(lr_before, lr_after, "the used last-resort package was replaced");
    ds.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_then_added_again() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = new_client(dir.path(), &url, "alice", 3).await;
    let bob = new_client(dir.path(), &url, "bob", 3).await;
    let gid = alice.create_group("g").await?;
    alice.add_members("g", &["bob"]).await?;
    bob.sync().await?;
    alice.send("g", "first").await?;
    bob.sync().await?;
    alice.remove_members("g", &["bob"]).await?;
    bob.sync().await?;
    assert_eq!(bob.group_state(&gid)?.0, GroupState::Left);
    alice.send("g", "while bob was out").await?;
    alice.add_members("g", &["bob"]).await?;
    alice.send("g", "welcome back").await?;
    let r = bob.sync().await?;
    assert_eq!(r.joined, vec![gid.clone()]);
    assert_eq!(bob.group_state("g")?.0, GroupState::Active);
    assert_eq!(texts(&bob, "g"), ["alice: first", "alice: welcome back"]);
    assert_eq!(alice.epoch_authenticator("g")?, bob.epoch_authenticator("g")?);
    ds.shutdown().await?;
    Ok(())
}
