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
