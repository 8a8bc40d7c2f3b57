//! MLS operations on Grove's sled store against raw openmls with its in-memory
//! store (the baseline a developer would otherwise pick), in the same run.
//!
//! - send and receive of a 100-byte application message at N = 2 and 64;
//! - add-one-member commit, create and process, at N = 10, 100, 1,000, on a
//!   healthy tree (the committer's copath filled by members' updates);
//! - join from a Welcome at N = 1,000 and 10,000;
//! - resync by an external commit at N = 100 and 1,000: building it (on the
//!   GroupInfo with its ratchet tree, as the DS serves it), and processing it
//!   by another member; the bytes fetched and posted are printed.
//!
//! Each sled operation runs in one storage transaction (what the client does:
//! one batch + flush per operation). The sled store lives on tmpfs
//! (`/dev/shm`) so the numbers are CPU without fsync, as the targets ask; the
//! fsync cost of the machine is measured beside them (`fsync/4KiB`).
//!
//! - a user with 3 devices: adding all 3 (one commit, 3 KeyPackages) to a
//!   group of 100 users with 3 devices each (300 leaves), create and
//!   process, beside adding a single-device user; and a new device of a
//!   member joining by an external commit at 300 leaves, build and process.
//!
//! `cargo bench -p client --bench mls_ops`; `GROVE_BENCH_QUICK=1` skips N = 10,000.
// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use grove_client::storage::{GroveProvider, SledStorage};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider;

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

struct Id {
    signer: SignatureKeyPair,
    cwk: CredentialWithKey,
}

fn id(name: &str) -> Id {
    let signer = SignatureKeyPair::new(SUITE.signature_algorithm()).unwrap();
    let cwk = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.public().into(),
    };
    Id { signer, cwk }
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(SUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(0)
        .build()
}

/// The two stores under test.
enum Store {
    // The directory lives as long as the store.
    Sled(GroveProvider, #[allow(dead_code)] tempfile::TempDir),
    Memory(OpenMlsRustCrypto),
}

impl Store {
    fn sled() -> Self {
        let dir = tempfile::Builder::new().prefix("grove-bench").tempdir_in("/dev/shm").unwrap();
        Store::Sled(GroveProvider::new(SledStorage::open(dir.path()).unwrap()), dir)
    }

    /// The sled store encrypted at rest (every key hashed, every value sealed).
    fn sealed() -> Self {
        let dir = tempfile::Builder::new().prefix("grove-bench").tempdir_in("/dev/shm").unwrap();
        let key = grove_client::StoreKey::generate();
        Store::Sled(GroveProvider::new(SledStorage::open_keyed(dir.path(), Some(&key)).unwrap()), dir)
    }
}

fn memory() -> Store {
    Store::Memory(OpenMlsRustCrypto::default())
}

/// Makes a fresh store.
type MakeStore = fn() -> Store;

/// The stores compared, with their benchmark names.
const STORES: [(&str, MakeStore); 2] = [("grove-sled", Store::sled), ("openmls-memory", memory)];

macro_rules! with_provider {
    ($store:expr, |$p:ident| $body:expr) => {
        match $store {
            Store::Sled(provider, _) => {
                provider.transaction(|$p| -> Result<_, grove_client::storage::StorageError> { Ok($body) }).unwrap()
            }
            Store::Memory(provider) => {
                let $p = provider;
                $body
            }
        }
    };
}

/// A member: identity, store and group.
struct Member {
    id: Id,
    store: Store,
    group: Option<MlsGroup>,
}

/// Crosses the wire: TLS-encode and decode.
fn to_in(m: MlsMessageOut) -> MlsMessageIn {
    use tls_codec::{Deserialize as _, Serialize as _};
    MlsMessageIn::tls_deserialize_exact(m.tls_serialize_detached().unwrap()).unwrap()
}

fn kp(id: &Id, p: &impl OpenMlsProvider) -> KeyPackage {
    KeyPackage::builder().build(SUITE, p, &id.signer, id.cwk.clone()).unwrap().key_package().clone()
}

/// Builds a group of `n` members. The committer (`members[0]`) and the members
/// listed in `joined` get real group state; the copath of the committer is
/// filled by self-updates of members in each copath subtree.
fn build_group(n: usize, committer_store: Store, joiner_store: fn() -> Store) -> (Member, Vec<Member>) {
    let mem = OpenMlsRustCrypto::default();
    let creator = id("m0");
    let mut committer = Member { id: creator, store: committer_store, group: None };
    let group = with_provider!(&committer.store, |p| MlsGroup::new(
        p,
        &committer.id.signer,
        &create_config(),
        committer.id.cwk.clone()
    )
    .unwrap());
    committer.group = Some(group);
    // Leaves that must update so the committer's copath is non-blank: one leaf
    // in each sibling subtree of leaf 0 (leaf 2^k for 2^k < n).
    let mut updaters: Vec<usize> = (0..).map(|k| 1usize << k).take_while(|&l| l < n).collect();
    updaters.push(n - 1); // also the member that receives in the process benchmarks
    updaters.dedup();
    let ids: Vec<Id> = (1..n).map(|i| id(&format!("m{i}"))).collect();
    // Key packages of the members that will join for real live in their stores.
    let mut joined: Vec<Member> = Vec::new();
    let mut kps = Vec::with_capacity(n - 1);
    for (i, mid) in ids.into_iter().enumerate() {
        let leaf = i + 1;
        if updaters.contains(&leaf) {
            let store = joiner_store();
            let k = with_provider!(&store, |p| kp(&mid, p));
            kps.push(k);
            joined.push(Member { id: mid, store, group: None });
        } else {
            kps.push(kp(&mid, &mem));
        }
    }
    let g = committer.group.as_mut().unwrap();
    let welcome = with_provider!(&committer.store, |p| {
        let (_c, w, _gi) = g.add_members(p, &committer.id.signer, &kps).unwrap();
        g.merge_pending_commit(p).unwrap();
        w
    });
    let welcome = match to_in(welcome).extract() {
        MlsMessageBodyIn::Welcome(w) => w,
        _ => unreachable!(),
    };
    for m in &mut joined {
        let w = welcome.clone();
        let grp = with_provider!(&m.store, |p| StagedWelcome::new_from_welcome(p, &join_config(), w, None)
            .unwrap()
            .into_group(p)
            .unwrap());
        m.group = Some(grp);
    }
    // Each updater commits a self-update that everyone else with state applies.
    for u in 0..joined.len() {
        let commit = {
            let m = &mut joined[u];
            let g = m.group.as_mut().unwrap();
            with_provider!(&m.store, |p| {
                let b = g.self_update(p, &m.id.signer, LeafNodeParameters::default()).unwrap();
                g.merge_pending_commit(p).unwrap();
                b.into_commit()
            })
        };
        let msg = to_in(commit).try_into_protocol_message().unwrap();
        let apply = |m: &mut Member| {
            let g = m.group.as_mut().unwrap();
            with_provider!(&m.store, |p| {
                let pm = g.process_message(p, msg.clone()).unwrap();
                if let ProcessedMessageContent::StagedCommitMessage(s) = pm.into_content() {
                    g.merge_staged_commit(p, *s).unwrap();
                }
            });
        };
        apply(&mut committer);
        for (j, m) in joined.iter_mut().enumerate() {
            if j != u {
                apply(m);
            }
        }
    }
    (committer, joined)
}

fn fsync_cost(c: &mut Criterion) {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("f")).unwrap();
    c.bench_function("fsync/4KiB (data dir's disk)", |b| {
        b.iter(|| {
            f.write_all(&[0u8; 4096]).unwrap();
            f.sync_data().unwrap();
        })
    });
}

fn send_receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("app_message");
    g.sample_size(30).measurement_time(Duration::from_secs(3));
    for n in [2usize, 64] {
        for (name, make) in STORES {
            bench_send_receive(&mut g, n, name, make);
        }
    }
    g.finish();
}

/// `receive/{name}/{n}` and `send/{name}/{n}`: one 100-byte application
/// message in a group of `n`, every member on stores made by `make`.
fn bench_send_receive(g: &mut BenchmarkGroup<'_, WallTime>, n: usize, name: &str, make: MakeStore) {
    // Built on first use, so a filtered run skips groups it does not measure.
    let mut built: Option<(Member, Vec<Member>)> = None;
    // Receive first: the send benchmark then moves the sender's ratchet
    // far ahead of the receiver, which only matters to receive.
    g.bench_function(BenchmarkId::new(format!("receive/{name}"), n), |b| {
        let (sender, others) = built.get_or_insert_with(|| build_group(n, make(), make));
        let receiver = others.last_mut().unwrap();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let sg = sender.group.as_mut().unwrap();
                let m =
                    with_provider!(&sender.store, |p| sg.create_message(p, &sender.id.signer, &[7u8; 100]).unwrap());
                let pm = to_in(m).try_into_protocol_message().unwrap();
                let rg = receiver.group.as_mut().unwrap();
                let t = Instant::now();
                with_provider!(&receiver.store, |p| rg.process_message(p, pm).unwrap());
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function(BenchmarkId::new(format!("send/{name}"), n), |b| {
        let (sender, _) = built.get_or_insert_with(|| build_group(n, make(), make));
        let grp = sender.group.as_mut().unwrap();
        b.iter(|| with_provider!(&sender.store, |p| grp.create_message(p, &sender.id.signer, &[7u8; 100]).unwrap()))
    });
}

/// The cost of encrypting the store at rest: the same operations on the sled
/// store in clear and sealed under a store key (both on tmpfs, so that the
/// disk does not hide the CPU cost).
fn at_rest(c: &mut Criterion) {
    const AT_REST: [(&str, MakeStore); 2] = [("clear", Store::sled), ("sealed", Store::sealed)];
    let mut g = c.benchmark_group("at_rest");
    g.sample_size(30).measurement_time(Duration::from_secs(3));
    for (name, make) in AT_REST {
        bench_send_receive(&mut g, 64, name, make);
    }
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let mut committer: Option<Member> = None;
    for (name, make) in AT_REST {
        bench_join(&mut g, &mut committer, 1000, name, make);
    }
    g.finish();
}

fn add_member(c: &mut Criterion) {
    let mut g = c.benchmark_group("add_one_member");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let fresh = OpenMlsRustCrypto::default();
    for n in [10usize, 100, 1000] {
        for (name, make) in STORES {
            // Built on first use, so a filtered run skips groups it does not measure.
            let mut built: Option<(Member, Vec<Member>)> = None;
            // Every iteration adds a fresh member and then drops the pending
            // commit, so the group stays at N members with a healthy tree.
            let next_commit = |committer: &mut Member, i: u64| {
                let newbie = id(&format!("new{i}"));
                let k = kp(&newbie, &fresh);
                let cg = committer.group.as_mut().unwrap();
                let t = Instant::now();
                let commit =
                    with_provider!(&committer.store, |p| cg.add_members(p, &committer.id.signer, &[k]).unwrap().0);
                let dt = t.elapsed();
                with_provider!(&committer.store, |p| cg.clear_pending_commit(p.storage()).unwrap());
                (commit, dt)
            };
            g.bench_function(BenchmarkId::new(format!("create/{name}"), n), |b| {
                let (committer, _) = built.get_or_insert_with(|| build_group(n, make(), make));
                b.iter_custom(|iters| (0..iters).map(|i| next_commit(committer, i).1).sum())
            });
            // The receiver stages the commit (process_message) without merging
            // it, so it stays in step with the committer, which dropped it.
            g.bench_function(BenchmarkId::new(format!("process/{name}"), n), |b| {
                let (committer, others) = built.get_or_insert_with(|| build_group(n, make(), make));
                let receiver = others.last_mut().unwrap();
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let (commit, _) = next_commit(committer, 1_000_000 + i);
                        let pm = to_in(commit).try_into_protocol_message().unwrap();
                        let rg = receiver.group.as_mut().unwrap();
                        let t = Instant::now();
                        let out = with_provider!(&receiver.store, |p| rg.process_message(p, pm).unwrap());
                        total += t.elapsed();
                        assert!(matches!(out.into_content(), ProcessedMessageContent::StagedCommitMessage(_)));
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

fn join(c: &mut Criterion) {
    let mut g = c.benchmark_group("join_from_welcome");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let sizes: &[usize] = if std::env::var_os("GROVE_BENCH_QUICK").is_some() { &[1000] } else { &[1000, 10_000] };
    for &n in sizes {
        // The committer (in-memory) is built on first use and shared by both stores.
        let mut built: Option<Member> = None;
        for (name, make) in STORES {
            bench_join(&mut g, &mut built, n, name, make);
        }
    }
    g.finish();
}

/// `{name}/{n}`: joining a group of `n` from a Welcome onto a store made by
/// `make`. The committer (in memory) is built in `committer` on first use.
fn bench_join(
    g: &mut BenchmarkGroup<'_, WallTime>,
    committer: &mut Option<Member>,
    n: usize,
    name: &str,
    make: MakeStore,
) {
    g.bench_function(BenchmarkId::new(name, n), |b| {
        let committer = committer.get_or_insert_with(|| build_group(n, memory(), memory).0);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let newbie = id(&format!("joiner{i}"));
                let store = make();
                let k = with_provider!(&store, |p| kp(&newbie, p));
                let cg = committer.group.as_mut().unwrap();
                let w = with_provider!(&committer.store, |p| {
                    let (_c, w, _gi) = cg.add_members(p, &committer.id.signer, &[k]).unwrap();
                    cg.clear_pending_commit(p.storage()).unwrap();
                    w
                });
                let MlsMessageBodyIn::Welcome(w) = to_in(w).extract() else { unreachable!() };
                let t = Instant::now();
                let _g = with_provider!(&store, |p| StagedWelcome::new_from_welcome(p, &join_config(), w, None)
                    .unwrap()
                    .into_group(p)
                    .unwrap());
                total += t.elapsed();
            }
            total
        })
    });
}

/// A member (`joined.last()`, whose state is lost) rejoins by an external
/// commit that replaces its own leaf, as `grove sync` does (`client/resync.rs`).
fn resync(c: &mut Criterion) {
    use tls_codec::{Deserialize as _, Serialize as _};
    let mut g = c.benchmark_group("resync");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for n in [100, 1000] {
        let (mut committer, joined) = build_group(n, memory(), memory);
        let me = &joined.last().expect("a member to resync").id;
        let cg = committer.group.as_mut().unwrap();
        let gi = with_provider!(&committer.store, |p| cg.export_group_info(p.crypto(), &committer.id.signer, true))
            .unwrap()
            .tls_serialize_detached()
            .unwrap();
        let vgi = || match MlsMessageIn::tls_deserialize_exact(&gi).unwrap().extract() {
            MlsMessageBodyIn::GroupInfo(v) => v,
            _ => unreachable!(),
        };
        let build = |p: &OpenMlsRustCrypto| {
            MlsGroup::external_commit_builder()
                .with_config(join_config())
                .skip_lifetime_validation()
                .build_group(p, vgi(), me.cwk.clone())
                .unwrap()
                .load_psks(p.storage())
                .unwrap()
                .build(p.rand(), p.crypto(), &me.signer, |_| true)
                .unwrap()
                .finalize(p)
                .unwrap()
                .1
        };
        let bundle = build(&OpenMlsRustCrypto::default());
        let commit = bundle.commit().tls_serialize_detached().unwrap();
        let new_gi = bundle.group_info().map(|gi| MlsMessageOut::from(gi.clone()).tls_serialize_detached().unwrap());
        eprintln!(
            "resync at N = {n}: GroupInfo fetched {} bytes; posted: commit {} bytes + GroupInfo {} bytes",
            gi.len(),
            commit.len(),
            new_gi.map_or(0, |b| b.len())
        );
        g.bench_function(BenchmarkId::new("external_commit", n), |b| {
            b.iter_batched(OpenMlsRustCrypto::default, |p| build(&p), criterion::BatchSize::PerIteration)
        });
        let msg = MlsMessageIn::tls_deserialize_exact(&commit).unwrap().try_into_protocol_message().unwrap();
        g.bench_function(BenchmarkId::new("process_by_member", n), |b| {
            b.iter(|| {
                let cg = committer.group.as_mut().unwrap();
                with_provider!(&committer.store, |p| cg.process_message(p, msg.clone()).unwrap())
            })
        });
    }
    g.finish();
}

/// Issue 11's cost of devices: a group of 100 users with 3 devices each is
/// 300 leaves. Adding a user means adding its 3 devices in one commit (3
/// KeyPackages); a user's new device joins by an external commit.
fn devices(c: &mut Criterion) {
    use tls_codec::{Deserialize as _, Serialize as _};
    const LEAVES: usize = 300;
    let mut g = c.benchmark_group("devices_300_leaves");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let fresh = OpenMlsRustCrypto::default();
    for (name, make) in STORES {
        let (mut committer, mut others) = build_group(LEAVES, make(), make);
        for devices in [1usize, 3] {
            let next_commit = |committer: &mut Member, i: u64| {
                let kps: Vec<KeyPackage> =
                    (0..devices).map(|d| kp(&id(&format!("user{i}/device{d}")), &fresh)).collect();
                let cg = committer.group.as_mut().unwrap();
                let t = Instant::now();
                let commit =
                    with_provider!(&committer.store, |p| cg.add_members(p, &committer.id.signer, &kps).unwrap().0);
                let dt = t.elapsed();
                with_provider!(&committer.store, |p| cg.clear_pending_commit(p.storage()).unwrap());
                (commit, dt)
            };
            g.bench_function(BenchmarkId::new(format!("add_user_create/{name}"), devices), |b| {
                b.iter_custom(|iters| (0..iters).map(|i| next_commit(&mut committer, i).1).sum())
            });
            let receiver = others.last_mut().unwrap();
            g.bench_function(BenchmarkId::new(format!("add_user_process/{name}"), devices), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let (commit, _) = next_commit(&mut committer, 1_000_000 + i);
                        let pm = to_in(commit).try_into_protocol_message().unwrap();
                        let rg = receiver.group.as_mut().unwrap();
                        let t = Instant::now();
                        let out = with_provider!(&receiver.store, |p| rg.process_message(p, pm).unwrap());
                        total += t.elapsed();
                        assert!(matches!(out.into_content(), ProcessedMessageContent::StagedCommitMessage(_)));
                    }
                    total
                })
            });
        }
        // A new device joins from the GroupInfo (with its ratchet tree, as
        // the DS serves it); a member processes the external commit.
        let cg = committer.group.as_mut().unwrap();
        let gi = with_provider!(&committer.store, |p| cg.export_group_info(p.crypto(), &committer.id.signer, true))
            .unwrap()
            .tls_serialize_detached()
            .unwrap();
        let newcomer = id("alice/new-device");
        let build = |p: &OpenMlsRustCrypto| {
            let MlsMessageBodyIn::GroupInfo(vgi) = MlsMessageIn::tls_deserialize_exact(&gi).unwrap().extract() else {
                unreachable!()
            };
            MlsGroup::external_commit_builder()
                .with_config(join_config())
                .skip_lifetime_validation()
                .build_group(p, vgi, newcomer.cwk.clone())
                .unwrap()
                .load_psks(p.storage())
                .unwrap()
                .build(p.rand(), p.crypto(), &newcomer.signer, |_| true)
                .unwrap()
                .finalize(p)
                .unwrap()
                .1
        };
        // Building runs on a fresh in-memory store (the new device has no
        // state yet), so it is measured once.
        if name == STORES[0].0 {
            g.bench_function("device_join_build", |b| {
                b.iter_batched(OpenMlsRustCrypto::default, |p| build(&p), criterion::BatchSize::PerIteration)
            });
        }
        let commit = build(&OpenMlsRustCrypto::default()).commit().tls_serialize_detached().unwrap();
        let msg = MlsMessageIn::tls_deserialize_exact(&commit).unwrap().try_into_protocol_message().unwrap();
        g.bench_function(BenchmarkId::new("device_join_process", name), |b| {
            b.iter(|| {
                let cg = committer.group.as_mut().unwrap();
                with_provider!(&committer.store, |p| cg.process_message(p, msg.clone()).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fsync_cost, send_receive, add_member, join, resync, devices, at_rest);
criterion_main!(benches);
