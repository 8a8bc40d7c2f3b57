//! What the key directory costs (issue 16): publish time per epoch for 1,
//! 100 and 10,000 updates on a directory of N users, lookup and history
//! proof generation and verification, proof sizes, and the directory's
//! storage for N users. A load-generator binary (not criterion: building a
//! 100,000-user directory once is the expensive part, and each figure is
//! one measured operation repeated).
//!
//! ```sh
//! cargo bench -p delivery-service --bench kt_cost -- --users 100000
//! ```
//!
//! The directory is a real one on a sled store in a temporary directory,
//! as `grove-ds` keeps it; users are registered straight into the store
//! (single-key users, whose directory value has the same size as one with a
//! device list).

use std::sync::Arc;
use std::time::{Duration, Instant};

use grove_ds::kt::KeyDirectory;
use grove_ds::store::{SledStore, Store, UserRecord};
use grove_proto::kt;
use rand::RngCore as _;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn user(name: &str) -> UserRecord {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    UserRecord {
        name: name.as_bytes().to_vec().into(),
        credential: name.as_bytes().to_vec().into(),
        signature_key: key.to_vec().into(),
        signature_scheme: 0x0807,
        registered_at: 0,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            total += if p.is_dir() { dir_size(&p) } else { e.metadata().map(|m| m.len()).unwrap_or(0) };
        }
    }
    total
}

async fn register(store: &Arc<dyn Store>, names: &[String]) {
    for n in names {
        store.register_user(&user(n)).await.expect("register");
    }
}

/// Registers `m` new users and publishes them as one epoch; the publish time.
async fn publish_epoch(store: &Arc<dyn Store>, kd: &KeyDirectory, tag: &str, m: usize) -> Duration {
    let names: Vec<String> = (0..m).map(|i| format!("{tag}n{i}")).collect();
    register(store, &names).await;
    for n in &names {
        kd.mark(n);
    }
    let t = Instant::now();
    kd.publish_pending().await.expect("publish").expect("an epoch");
    t.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = arg("--users", 100_000);
    let samples = arg("--samples", 200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(tmp.path(), None).expect("sled"));
    let names: Vec<String> = (0..n).map(|i| format!("u{i:07}")).collect();
    let t = Instant::now();
    register(&store, &names).await;
    store.persist().await.expect("persist");
    let registered = t.elapsed();
    let size_without = dir_size(tmp.path());

    // An hour between epochs: nothing publishes unless this binary says so.
    let kd = KeyDirectory::open(Arc::clone(&store), Duration::from_secs(3600)).await.expect("open");
    let t = Instant::now();
    let published = kd.backfill().await.expect("backfill");
    store.persist().await.expect("persist");
    let backfill = t.elapsed();
    let records = store.kt_scan(&[]).await.expect("scan");
    let logical: usize = records.iter().map(|(k, v)| k.len() + v.len()).sum();
    let size_with = dir_size(tmp.path());
    println!("## key directory of {n} users (sled, {} epochs)\n", kd.latest_epoch());
    println!("| what | figure |\n| --- | ---: |");
    println!("| registering {n} users in the store (no directory) | {:.1} s |", registered.as_secs_f64());
    println!(
        "| publishing all {published} at start (backfill, epochs of 10,000) | {:.1} s ({:.0} users/s) |",
        backfill.as_secs_f64(),
        published as f64 / backfill.as_secs_f64()
    );
    println!(
        "| directory records | {} ({:.1} MB of keys and values, {:.0} bytes per user) |",
        records.len(),
        logical as f64 / 1e6,
        logical as f64 / n as f64
    );
    println!(
        "| data dir on disk, without → with the directory | {:.1} MB → {:.1} MB |",
        size_without as f64 / 1e6,
        size_with as f64 / 1e6
    );

    for (m, reps) in [(1usize, 9usize), (100, 5), (10_000, 3)] {
        let mut times = Vec::new();
        for r in 0..reps {
            times.push(publish_epoch(&store, &kd, &format!("p{m}r{r}"), m).await);
        }
        println!(
            "| publish an epoch of {m} new users (median of {reps}) | {} ({:.3} ms per update) |",
            ms(median(times.clone())),
            median(times).as_secs_f64() * 1000.0 / m as f64
        );
    }

    let keys = kd.keys().clone();
    let mut gen = Vec::new();
    let mut verify = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..samples {
        let u = &names[(i * 7919) % n];
        let t = Instant::now();
        let l = kd.lookup(u, None).await.expect("lookup");
        gen.push(t.elapsed());
        sizes.push(l.proof.len());
        let t = Instant::now();
        let v = kt::verify_lookup(&keys, &l.head, u, &l.proof).expect("verifies");
        l.head.verify(&keys.head_key).expect("head");
        verify.push(t.elapsed());
        assert_eq!(v.version, 1);
    }
    sizes.sort_unstable();
    println!("| lookup proof: generate (median / p99 of {samples}) | {} / {} |", ms(median(gen.clone())), ms(p99(gen)));
    println!(
        "| lookup proof: verify, with the head signature (median / p99) | {} / {} |",
        ms(median(verify.clone())),
        ms(p99(verify))
    );
    println!(
        "| lookup proof size (median / max; +~110 bytes of signed head, base64 adds a third) | {} / {} bytes |",
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );

    let mut gen = Vec::new();
    let mut verify = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..samples.min(50) {
        let u = &names[(i * 104_729) % n];
        let t = Instant::now();
        let h = kd.history(u).await.expect("history");
        gen.push(t.elapsed());
        sizes.push(h.proof.len());
        let t = Instant::now();
        kt::verify_history(&keys, &h.head, u, &h.proof).expect("verifies");
        verify.push(t.elapsed());
    }
    sizes.sort_unstable();
    println!(
        "| history proof of a one-version user: generate / verify (median of {}) | {} / {} |",
        gen.len(),
        ms(median(gen)),
        ms(median(verify))
    );
    println!("| history proof size (median) | {} bytes |", sizes[sizes.len() / 2]);

    let latest = kd.latest_epoch();
    let t = Instant::now();
    let a = kd.audit(latest - 1, latest).await.expect("audit");
    let gen = t.elapsed();
    let roots: Vec<[u8; 32]> = a.heads.iter().map(|h| h.verify(&keys.head_key).expect("head")).collect();
    let proof = kt::decode_audit_proof(&a.proof).expect("decodes");
    let t = Instant::now();
    akd::auditor::audit_verify::<kt::KtConfig>(roots, proof).await.expect("audits");
    println!(
        "| audit proof of the last epoch (10,000 inserts): generate / verify / size | {} / {} / {:.0} KB |",
        ms(gen),
        ms(t.elapsed()),
        a.proof.len() as f64 / 1e3
    );
}
