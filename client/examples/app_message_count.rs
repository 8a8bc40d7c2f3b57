//! Instruction-count driver for the client's message path: alice sends, bob
//! syncs, `ROUNDS` times, through the real `Client` against a running DS.
//!
//! Meant for `valgrind --tool=callgrind`, whose instruction counts repeat on a
//! noisy machine where timings do not. Only [`measured`] is counted (with
//! `--toggle-collect`), so setup (keys, registration, the group) is left out.
//! It uses only `Client`'s public API of before the issue-10 split, so the same
//! file builds against both sides of a comparison. How it is run:
//! `docs/benchmarks.md`, "Client message path in instructions".
//!
//! `app_message_count <DS URL, http:// on loopback> <home dir> [ROUNDS]`
#![allow(missing_docs)]

use std::path::Path;

use grove_client::{Client, ClientConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(home)) = (args.next(), args.next()) else {
        eprintln!("usage: app_message_count <DS URL> <home dir> [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().map_or(100, |r| r.parse().expect("ROUNDS is a number"));
    let home = Path::new(&home);
    // One thread: the count does not depend on how work lands on workers.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // Unique names, so a DS can serve several runs.
    let tag = std::process::id();
    let (alice, bob, group) = rt
        .block_on(async {
            let alice = Client::create(home.join("alice"), ClientConfig::new(&url, format!("alice{tag}"))).await?;
            let bob = Client::create(home.join("bob"), ClientConfig::new(&url, format!("bob{tag}"))).await?;
            let group = alice.create_group("bench").await?;
            alice.add_members(&group, &[&format!("bob{tag}")]).await?;
            bob.sync().await?;
            // One exchange outside the count: first-use costs (connections, caches).
            alice.send(&group, "warm-up").await?;
            bob.sync().await?;
            Ok::<_, grove_client::Error>((alice, bob, group))
        })
        .expect("setup");
    let received = measured(&rt, &alice, &bob, &group, rounds);
    assert_eq!(received, rounds, "bob received every message");
    println!("rounds={rounds} received={received}");
}

/// The counted part: `rounds` times, alice sends a 100-byte message and bob
/// syncs it in. Returns how many messages bob's syncs reported.
#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, alice: &Client, bob: &Client, group: &str, rounds: usize) -> usize {
    let text = "x".repeat(100);
    rt.block_on(async {
        let mut received = 0;
        for _ in 0..rounds {
            alice.send(group, &text).await.expect("send");
            received += bob.sync().await.expect("sync").messages;
        }
        received
    })
}
