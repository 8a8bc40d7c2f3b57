//! Resource put and get throughput over loopback, beside the machine's raw
//! AES-256-GCM throughput measured in the same run (issue 4's benchmark).
//!
//! - `raw-aes256gcm`: the `aes-gcm` crate encrypting (and decrypting) the same
//!   bytes in place in 1 MiB chunks: the cipher alone, no hashing, no I/O.
//! - `put`: `Client::put_resource` from memory: read, SHA-256, pad, encrypt,
//!   stream to an in-process `grove-ds` over loopback HTTP, which writes the
//!   blob to disk and fsyncs it before answering; then the manifest is sent
//!   as an MLS application message (one local fsync, one DS post).
//! - `get`: `Client::get_resource` into a sink: download, authenticate every
//!   chunk, check size, padding and SHA-256.
//!
//! The DS data dir and the client homes are on the target directory's disk
//! (real fsyncs). Sizes: 1 MiB and 100 MiB.
//!
//! `cargo bench -p client --bench resources`
// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use grove_client::{Client, ClientConfig, HistoryPolicy};
use grove_ds::config::Config;
use grove_ds::testing::TestServer;

const MIB: usize = 1 << 20;

fn content(n: usize) -> Bytes {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// A DS in this process, alice and bob registered, and a group of both.
fn setup(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> (TestServer, Client, Client, String) {
    rt.block_on(async {
        grove_ds::server::install_crypto_provider();
        let mut config = Config::for_tests(dir.join("ds"));
        config.rate_limit_per_sec = 0;
        let ds = TestServer::start(config).await.unwrap();
        let mk = |user: &str| {
            let mut c = ClientConfig::new(ds.url(), user);
            c.key_packages = 2;
            c
        };
        let alice = Client::create(dir.join("alice"), mk("alice")).await.unwrap();
        let bob = Client::create(dir.join("bob"), mk("bob")).await.unwrap();
        let group = alice.create_group_with("bench", HistoryPolicy::None).await.unwrap();
        alice.add_members(&group, &["bob"]).await.unwrap();
        bob.sync().await.unwrap();
        (ds, alice, bob, group)
    })
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn nonce(i: usize) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&(i as u64).to_be_bytes());
    n
}

/// The floor: AES-256-GCM over the same bytes in 1 MiB chunks, nothing else.
fn raw_aes(g: &mut Group<'_>, label: &str, data: &[u8]) {
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
    let mut scratch = vec![0u8; MIB];
    g.bench_function(BenchmarkId::new("raw-aes256gcm-encrypt", label), |b| {
        b.iter(|| {
            for (i, chunk) in data.chunks(MIB).enumerate() {
                let buf = &mut scratch[..chunk.len()];
                buf.copy_from_slice(chunk);
                let tag = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce(i)), b"ad", buf).unwrap();
                std::hint::black_box(tag);
            }
        })
    });
    let sealed: Vec<(Vec<u8>, _)> = data
        .chunks(MIB)
        .enumerate()
        .map(|(i, chunk)| {
            let mut buf = chunk.to_vec();
            let tag = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce(i)), b"ad", &mut buf).unwrap();
            (buf, tag)
        })
        .collect();
    g.bench_function(BenchmarkId::new("raw-aes256gcm-decrypt", label), |b| {
        b.iter(|| {
            for (i, (ct, tag)) in sealed.iter().enumerate() {
                let buf = &mut scratch[..ct.len()];
                buf.copy_from_slice(ct);
                cipher.decrypt_in_place_detached(Nonce::from_slice(&nonce(i)), b"ad", buf, tag).unwrap();
            }
        })
    });
}

/// The client's own CPU work, without the network and the DS.
fn client_crypto(g: &mut Group<'_>, label: &str, data: &[u8]) {
    let ctx = grove_client::resource_crypto::BlobContext { group_id: b"bench", resource_id: [1; 16], version: 1 };
    let key = grove_client::resource_crypto::ContentKey::generate();
    g.bench_function(BenchmarkId::new("seal-to-memory", label), |b| {
        b.iter(|| grove_client::resource_crypto::seal(&key, &ctx, data, std::io::sink()).unwrap())
    });
    let mut blob = Vec::new();
    let s = grove_client::resource_crypto::seal(&key, &ctx, data, &mut blob).unwrap();
    let expected = grove_client::resource_crypto::Expected { size: s.size, content_hash: s.content_hash };
    g.bench_function(BenchmarkId::new("open-to-memory", label), |b| {
        b.iter(|| grove_client::resource_crypto::open(&key, &ctx, &blob[..], std::io::sink(), &expected).unwrap())
    });
}

/// Put and get through the DS in this process.
fn over_the_ds(
    g: &mut Group<'_>,
    rt: &tokio::runtime::Runtime,
    label: &str,
    data: &Bytes,
    clients: &(Client, Client, String),
) {
    let (alice, bob, group) = clients;
    let size = data.len() as u64;
    let name = format!("bench-{label}");
    g.bench_function(BenchmarkId::new("put", label), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let v = alice.put_resource(group, &name, std::io::Cursor::new(data.clone()), None).await.unwrap();
                    total += t.elapsed();
                    assert_eq!(v.size, size);
                    // Untimed: free the disk for the next round.
                    alice.delete_resource(group, &name).await.unwrap();
                }
                total
            })
        })
    });
    rt.block_on(async {
        alice.put_resource(group, &name, std::io::Cursor::new(data.clone()), None).await.unwrap();
        bob.sync().await.unwrap();
    });
    g.bench_function(BenchmarkId::new("get", label), |b| {
        b.iter(|| {
            rt.block_on(async {
                let (_, v) = bob.get_resource(group, &name, None, std::io::sink(), None).await.unwrap();
                assert_eq!(v.size, size);
            })
        })
    });
    rt.block_on(async { alice.delete_resource(group, &name).await.unwrap() });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (ds, alice, bob, group) = setup(&rt, dir.path());
    let clients = (alice, bob, group);
    let mut g = c.benchmark_group("resource");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    for size in [MIB, 100 * MIB] {
        let label = format!("{}MiB", size / MIB);
        let data = content(size);
        g.throughput(Throughput::Bytes(size as u64));
        raw_aes(&mut g, &label, &data);
        client_crypto(&mut g, &label, &data);
        over_the_ds(&mut g, &rt, &label, &data, &clients);
    }
    g.finish();
    drop(clients);
    rt.block_on(async { ds.shutdown().await.unwrap() });
}

criterion_group!(benches, bench);
criterion_main!(benches);
