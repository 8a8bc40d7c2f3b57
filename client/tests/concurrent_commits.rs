//! Two members commit concurrently: the DS takes one, the other gets 409,
//! syncs and redoes its operation automatically; everyone ends in the same
//! epoch with the same epoch authenticator.

mod common;

use std::sync::Arc;

use common::{new_client, start_ds, texts, TestResult, SUITES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_one_wins_other_retries() -> TestResult {
    for suite in SUITES {
        let dir = tempfile::tempdir()?;
        let ds = start_ds(dir.path()).await;
        let url = ds.url();
        let alice = new_client(dir.path(), &url, "alice", suite).await;
        let bob = new_client(dir.path(), &url, "bob", suite).await;
        let carol = new_client(dir.path(), &url, "carol", suite).await;
        let dave = new_client(dir.path(), &url, "dave", suite).await;
        let gid = alice.create_group("g").await?;
        alice.add_members("g", &["bob", "carol"]).await?;
        bob.sync().await?;
        carol.sync().await?;
        let start = alice.epoch_authenticator("g")?.0;

        // Two tasks on the multi-threaded runtime, each building a commit on
        // the same epoch (neither has seen the other's).
        let (alice, bob) = (Arc::new(alice), Arc::new(bob));
        let (a2, b2) = (alice.clone(), bob.clone());
        let ta = tokio::spawn(async move { a2.self_update("g").await });
        let tb = tokio::spawn(async move { b2.add_members("g", &["dave"]).await });
        let (a, b) = (ta.await??, tb.await??);
        assert!(a.committed && b.committed);
        let attempts = [a.attempts, b.attempts];
        assert!(attempts.contains(&1), "one commit won at once: {attempts:?}");
        assert!(attempts.iter().any(|n| *n >= 2), "the other retried: {attempts:?}");

        for c in [&*alice, &*bob, &carol, &dave] {
            c.sync().await?;
        }
        let (epoch, auth) = alice.epoch_authenticator(&gid)?;
        assert_eq!(epoch, start + 2, "both operations landed");
        for c in [&*bob, &carol, &dave] {
            assert_eq!(c.epoch_authenticator(&gid)?, (epoch, auth.clone()), "{}", c.user());
        }
        assert_eq!(alice.members(&gid)?.len(), 4);
        assert_eq!(alice.server_view(&gid).await?.epoch, epoch);

        // Several rounds of racing updates from everyone converge too.
        for _ in 0..3 {
            let (r1, r2, r3) = tokio::join!(alice.self_update(&gid), bob.self_update(&gid), carol.self_update(&gid));
            r1?;
            r2?;
            r3?;
        }
        for c in [&*alice, &*bob, &carol, &dave] {
            c.sync().await?;
        }
        let (epoch, auth) = alice.epoch_authenticator(&gid)?;
        assert_eq!(epoch, start + 2 + 9);
        for c in [&*bob, &carol, &dave] {
            assert_eq!(c.epoch_authenticator(&gid)?, (epoch, auth.clone()));
        }
        // Operations of one client from several tasks are serialized.
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let a = alice.clone();
                let g = gid.clone();
                tokio::spawn(async move {
                    a.self_update(&g).await?;
                    a.send(&g, &format!("task {i}")).await
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        assert_eq!(alice.epoch_authenticator(&gid)?.0, epoch + 3);
        for c in [&*bob, &carol, &dave] {
            c.sync().await?;
        }
        assert_eq!(texts(&dave, &gid).len(), 3);

        dave.send(&gid, "in sync").await?;
        alice.sync().await?;
        assert_eq!(texts(&alice, &gid).last().map(String::as_str), Some("dave: in sync"));
        ds.shutdown().await?;
    }
    Ok(())
}

/// Eight members of one group each update their leaf at the same moment, ten
/// rounds in a row: with jittered backoff every operation lands (none fails
/// with `too_many_retries`), and all end in the same epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_way_races_all_complete() -> TestResult {
    const N: usize = 8;
    const ROUNDS: usize = 10;
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(Arc::new(new_client(dir.path(), &url, &format!("m{i}"), SUITES[0]).await));
    }
    let gid = clients[0].create_group("race").await?;
    let others: Vec<String> = (1..N).map(|i| format!("m{i}")).collect();
    clients[0].add_members(&gid, &others.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    for c in &clients[1..] {
        c.sync().await?;
    }
    let start = clients[0].epoch_authenticator(&gid)?.0;
    let mut most_attempts = 0;
    for round in 0..ROUNDS {
        let tasks: Vec<_> = clients
            .iter()
            .map(|c| {
                let (c, g) = (c.clone(), gid.clone());
                tokio::spawn(async move { c.self_update(&g).await })
            })
            .collect();
        for t in tasks {
            let outcome = t.await?.map_err(|e| format!("round {round}: {e}"))?;
            assert!(outcome.committed, "round {round}");
            most_attempts = most_attempts.max(outcome.attempts);
        }
    }
    for c in &clients {
        c.sync().await?;
    }
    let (epoch, auth) = clients[0].epoch_authenticator(&gid)?;
    assert_eq!(epoch, start + (N * ROUNDS) as u64, "every update landed");
    for c in &clients[1..] {
        assert_eq!(c.epoch_authenticator(&gid)?, (epoch, auth.clone()), "{}", c.user());
    }
    eprintln!("{N}-way races, {ROUNDS} rounds: at most {most_attempts} attempts for one operation");
    ds.shutdown().await?;
    Ok(())
}
