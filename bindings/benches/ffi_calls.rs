//! Send and receive at N = 64 through `grove_client`'s Rust API and through
//! the binding's Rust side (`GroveClient`): the baseline for the same calls
//! made across the binding from Python (`bindings/tests/python/bench_calls.py`).
//!
//! - `send/*`: one 100-byte message from a member of a 64-member group
//!   (encrypt, store, post, DS acknowledgement).
//! - `receive/*`: a member's `sync` that fetches and applies one message.
//!
//! The DS is `GROVE_BENCH_DS_URL` (an `http://127.0.0.1:...` `grove-ds`,
//! as `bindings/bench-calls` starts one) or, without it, one in this process.
//!
//! `cargo bench -p grove-ffi --bench ffi_calls`
// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use grove_client::{Client, ClientConfig};
use grove_ffi::GroveClient;

const N: usize = 64;

struct Setup {
    _ds: Option<grove_ds::testing::TestServer>,
    _dir: tempfile::TempDir,
    sender: Arc<GroveClient>,
    receiver: Arc<GroveClient>,
    group: String,
}

/// A group of `N` users, made through the Rust API; the sender and one
/// receiver wrapped as the binding wraps them.
fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (ds, url) = match std::env::var("GROVE_BENCH_DS_URL") {
            Ok(url) => (None, url),
            Err(_) => {
                grove_ds::server::install_crypto_provider();
                let mut config = grove_ds::config::Config::for_tests(dir.path().join("ds"));
                config.rate_limit_per_sec = 0;
                let ds = grove_ds::testing::TestServer::start(config).await.unwrap();
                let url = ds.url();
                (Some(ds), url)
            }
        };
        let run = rand_tag();
        let mut users = Vec::new();
        for i in 0..N {
            let user = format!("r{run}-{i}");
            let mut config = ClientConfig::new(url.clone(), user.clone());
            config.key_packages = 1;
            users.push((user.clone(), Client::create(dir.path().join(&user), config).await.unwrap()));
        }
        let (sender, receiver) = (&users[0].1, &users[1].1);
        let group = sender.create_group("bench").await.unwrap();
        let others: Vec<&str> = users[1..].iter().map(|(u, _)| u.as_str()).collect();
        sender.add_members(&group, &others).await.unwrap();
        receiver.sync().await.unwrap();
        let (sender_home, receiver_home) = (sender.home().to_path_buf(), receiver.home().to_path_buf());
        drop(users);
        let open = |home: &std::path::Path| grove_ffi::open_client(home.display().to_string(), None).unwrap();
        Setup { _ds: ds, sender: open(&sender_home), receiver: open(&receiver_home), group, _dir: dir }
    })
}

fn rand_tag() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

/// `iters` rounds of an untimed `send` and a timed `receive` (which must
/// bring exactly one message); the total time of the receives.
fn timed_receives<T, E: std::fmt::Debug>(
    iters: u64,
    send: impl Fn() -> Result<T, E>,
    receive: impl Fn() -> u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        send().unwrap();
        let t = Instant::now();
        let got = receive();
        total += t.elapsed();
        assert_eq!(got, 1);
    }
    total
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = setup(&rt);
    let mut g = c.benchmark_group("n64");
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    let text = "x".repeat(100);
    let rust_sender = s.sender.client().unwrap();
    let rust_receiver = s.receiver.client().unwrap();
    g.bench_function("send/rust_api", |b| {
        b.iter(|| rt.block_on(rust_sender.send(&s.group, &text)).unwrap());
    });
    g.bench_function("send/binding_rust_side", |b| {
        b.iter(|| rt.block_on(s.sender.send(s.group.clone(), text.clone())).unwrap());
    });
    // Catch the receiver up with the sends above before timing receives.
    rt.block_on(rust_receiver.sync()).unwrap();
    g.bench_function("receive/rust_api", |b| {
        b.iter_custom(|iters| {
            timed_receives(
                iters,
                || rt.block_on(rust_sender.send(&s.group, &text)),
                || rt.block_on(rust_receiver.sync()).unwrap().messages as u64,
            )
        })
    });
    g.bench_function("receive/binding_rust_side", |b| {
        b.iter_custom(|iters| {
            timed_receives(
                iters,
                || rt.block_on(rust_sender.send(&s.group, &text)),
                || rt.block_on(s.receiver.sync()).unwrap().messages,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);
