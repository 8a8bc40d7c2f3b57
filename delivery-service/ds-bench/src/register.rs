//! `ds-bench --registrations N`: registration throughput (what the key
//! directory costs the DS: every registration is a directory update).
//!
//! The N registration bodies (key, credential, proof of possession) are
//! made before the timed phase; then `--senders` tasks post them as fast as
//! the DS answers. Reports registrations/s and the server's CPU seconds per
//! 1,000 registrations, and then how long the directory took to hold the
//! last one (its lookup answers 200).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use grove_proto as api;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::Signer as _;
use tls_codec::Serialize as _;

use crate::{b64, cpu_ticks, ok_json, Args};

fn body(name: &str) -> anyhow::Result<serde_json::Value> {
    let signer = SignatureKeyPair::new(SignatureScheme::ED25519)?;
    let credential: Credential = BasicCredential::new(name.as_bytes().to_vec()).into();
    let key = signer.public().to_vec();
    let proof =
        signer.sign(&api::signed_bytes(api::REGISTER_LABEL, name, &key)).map_err(|e| anyhow::anyhow!("sign: {e:?}"))?;
    Ok(serde_json::json!({"user": name, "credential": b64(&credential.tls_serialize_detached()?),
        "signature_key": b64(&key), "signature_scheme": 0x0807, "proof": b64(&proof)}))
}

/// Runs the registration benchmark against `bases` (round-robin).
pub(crate) async fn run(args: &Args, n: usize, bases: &[String], pids: &[u32]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let prefix = format!("r{}", std::process::id());
    let bodies: Vec<serde_json::Value> =
        (0..n).map(|i| body(&format!("{prefix}u{i}"))).collect::<anyhow::Result<_>>()?;
    let bodies = Arc::new(bodies);
    let watcher = crate::new_client(&http, &bases[0], format!("{prefix}watcher")).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let ticks = cpu_ticks(pids)?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.senders.max(1) {
        let (http, bodies, next, bases) = (http.clone(), Arc::clone(&bodies), Arc::clone(&next), bases.to_vec());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = bodies.get(i) else { return Ok::<_, anyhow::Error>(()) };
                let base = &bases[i % bases.len()];
                ok_json(http.post(format!("{base}{}", api::routes::USERS)).json(b).send().await?, "register").await?;
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pids)? - ticks) as f64 / 100.0;
    // How long until the directory holds the last registration: its
    // lookup answers 404 `not_in_directory` until the batch is published.
    // (Not waited for when publishing is deferred past the run.)
    let published_after = if args.kt_epoch_ms.is_some_and(|ms| ms >= 60_000) {
        None
    } else {
        Some(caught_up(&http, &bases[0], &watcher.token, &format!("{prefix}u{}", n - 1)).await?)
    };
    // Including the directory's catch-up: what the registrations cost in all.
    let cpu_all = (cpu_ticks(pids)? - ticks) as f64 / 100.0;
    let out = serde_json::json!({
        "registrations": n, "concurrency": args.senders, "seconds": elapsed,
        "registrations_per_s": n as f64 / elapsed, "server_cpu_s_per_1000": cpu * 1000.0 / n as f64,
        "directory_caught_up_after_s": published_after,
        "server_cpu_s_per_1000_with_catch_up": cpu_all * 1000.0 / n as f64,
    });
    if args.json {
        println!("{out}");
    } else {
        let caught_up = published_after.map_or_else(
            || "publishing deferred".to_owned(),
            |s| format!("the directory held the last one {s:.2} s after the last answer"),
        );
        println!(
            "{n} registrations, {} concurrent: {:.0}/s, server CPU {:.3} s per 1,000 ({:.3} s with the \
             directory's catch-up); {caught_up}",
            args.senders,
            n as f64 / elapsed,
            cpu * 1000.0 / n as f64,
            cpu_all * 1000.0 / n as f64,
        );
    }
    Ok(())
}

/// Seconds until the key directory's lookup of `user` answers 200.
async fn caught_up(http: &reqwest::Client, base: &str, token: &str, user: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        let r = http
            .get(format!("{base}{}", api::routes::kt_lookup(&api::UserName::parse(user)?)))
            .bearer_auth(token)
            .send()
            .await?;
        if r.status().is_success() {
            return Ok(started.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            bail!("the key directory did not publish {user} within 120 s ({})", r.status());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
