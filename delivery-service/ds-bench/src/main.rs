//! `ds-bench`: load generator for grove-ds.
//!
//! Starts `grove-ds` (the binary next to this one) as a separate process on a
//! loopback port with a fresh data dir (durable mode: sled + group-commit
//! fsync), or with `--store postgres` as `--replicas N` processes on a fresh
//! PostgreSQL database (members spread round-robin over them), registers clients, forms groups of G members with real openmls
//! groups, and has C concurrent senders post S-byte application messages for a
//! fixed duration while every member long-polls the log. Reports accepted
//! messages/s, deliveries/s, p50/p99 send latency, p50/p99 send-to-receive
//! latency, the server's CPU seconds per 1,000 deliveries (from
//! `/proc/<pid>/stat`) and losses (deliveries missing against accepted × G,
//! after a drain of up to 5 s). A warm-up under the same load comes first and
//! is not counted. Application messages are encrypted before the timed phase
//! (the DS never decrypts them); a sender that exhausts its pool reposts it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::Parser;
use grove_proto as api;
use hdrhistogram::Histogram;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::Signer as _;
use tls_codec::{Deserialize as _, Serialize as _};

mod register;

/// Options.
#[derive(Debug, Parser)]
struct Args {
    /// Members per group (G).
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// Concurrent senders (C), spread over ceil(C/G) groups.
    #[arg(long, default_value_t = 16)]
    senders: usize,
    /// Application message payload size in bytes (S).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Timed phase, seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up under the same load before the timed phase, seconds (not counted).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Messages pre-encrypted per sender.
    #[arg(long, default_value_t = 1000)]
    pool: usize,
    /// How members receive: `ws` (WebSocket stream, binary frames) or `poll`
    /// (long-poll GET with the binary page format).
    #[arg(long, default_value = "ws")]
    receive: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The DS's store: `sled` (one process, its own data dir) or `postgres`.
    #[arg(long, default_value = "sled")]
    store: String,
    /// With `--store postgres`: a PostgreSQL URL whose user may create
    /// databases. Each run creates a fresh database there (with `psql`) and
    /// drops it afterwards.
    #[arg(long, env = "GROVE_BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// grove-ds processes on the one database (`--store postgres`); members
    /// are spread over them round-robin, as behind a load balancer.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Instead of the message benchmark: register this many users, with
    /// `--senders` concurrent requests, and report registrations/s.
    #[arg(long, default_value_t = 0)]
    registrations: usize,
    /// Passed to grove-ds: at most one key-directory epoch per this many
    /// milliseconds (`3600000` defers publishing past the run: the
    /// directory's cost, nearly off).
    #[arg(long)]
    kt_epoch_ms: Option<u64>,
}

struct Client {
    signer: SignatureKeyPair,
    cwk: CredentialWithKey,
    provider: OpenMlsRustCrypto,
    token: String,
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

async fn ok_json(r: reqwest::Response, what: &str) -> anyhow::Result<serde_json::Value> {
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
    }
    if body.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn new_client(http: &reqwest::Client, base: &str, name: String) -> anyhow::Result<Client> {
    let suite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    let signer = SignatureKeyPair::new(suite.signature_algorithm())?;
    let credential: Credential = BasicCredential::new(name.as_bytes().to_vec()).into();
    let cwk = CredentialWithKey { credential: credential.clone(), signature_key: signer.public().into() };
    let key = signer.public().to_vec();
    let proof = signer
        .sign(&api::signed_bytes(api::REGISTER_LABEL, &name, &key))
        .map_err(|e| anyhow::anyhow!("sign: {e:?}"))?;
    ok_json(
        http.post(format!("{base}{}", api::routes::USERS))
            .json(&serde_json::json!({"user": name, "credential": b64(&credential.tls_serialize_detached()?),
                "signature_key": b64(&key), "signature_scheme": 0x0807, "proof": b64(&proof)}))
            .send()
            .await?,
        "register",
    )
    .await?;
    let c = ok_json(
        http.post(format!("{base}{}", api::routes::AUTH_CHALLENGE))
            .json(&serde_json::json!({"user": name}))
            .send()
            .await?,
        "challenge",
    )
    .await?;
    let challenge = base64::engine::general_purpose::STANDARD.decode(c["challenge"].as_str().unwrap_or_default())?;
    let sig = signer
        .sign(&api::signed_bytes(api::AUTH_LABEL, &name, &challenge))
        .map_err(|e| anyhow::anyhow!("sign: {e:?}"))?;
    let t = ok_json(
        http.post(format!("{base}{}", api::routes::AUTH_TOKEN))
            .json(&serde_json::json!({"user": name, "challenge": b64(&challenge), "signature": b64(&sig)}))
            .send()
            .await?,
        "token",
    )
    .await?;
    let token = t["token"].as_str().unwrap_or_default().to_string();
    Ok(Client { signer, cwk, provider: OpenMlsRustCrypto::default(), token })
}

/// User and system CPU ticks of the DS processes, summed (PostgreSQL's own
/// processes are not counted).
fn cpu_ticks(pids: &[u32]) -> anyhow::Result<u64> {
    let mut total = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let after = stat.rsplit_once(')').context("odd /proc stat")?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        total += f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    }
    Ok(total)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = match args.store.as_str() {
        "sled" if args.replicas == 1 => None,
        "sled" => bail!("sled serves one process: --replicas needs --store postgres"),
        "postgres" => {
            let url = args.database_url.as_deref().context("--store postgres needs --database-url")?;
            Some(BenchDb::create(url)?)
        }
        other => bail!("unknown store {other:?}: sled or postgres"),
    };
    let exe = std::env::current_exe()?.with_file_name("grove-ds");
    let data = tempfile_dir()?;
    let mut children = Vec::new();
    let mut bases = Vec::new();
    for r in 0..args.replicas.max(1) {
        let port = free_port()?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--insecure-http", "--listen", &format!("127.0.0.1:{port}"), "--rate-limit-per-sec", "0"])
            .args(["--metrics-token", "ds-bench"])
            .arg("--data-dir")
            .arg(data.join(format!("r{r}")))
            .env("RUST_LOG", "warn");
        if let Some(db) = &db {
            cmd.args(["--store", "postgres"]).env("GROVE_DS_DATABASE_URL", &db.url);
        }
        if let Some(ms) = args.kt_epoch_ms {
            cmd.args(["--kt-epoch-ms", &ms.to_string()]);
        }
        children.push(cmd.spawn().with_context(|| {
            format!("starting {} (build it with: cargo build --release -p delivery-service -p ds-bench)", exe.display())
        })?);
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let result = if args.registrations > 0 {
        match wait_up(&bases).await {
            Ok(()) => register::run(&args, args.registrations, &bases, &pids).await,
            Err(e) => Err(e),
        }
    } else {
        run(&args, &bases, &pids).await
    };
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&data);
    drop(db);
    result
}

/// A database of its own for one run, made and dropped with `psql`.
struct BenchDb {
    admin: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(admin: &str) -> anyhow::Result<Self> {
        let name = format!("ds_bench_{}", std::process::id());
        psql(admin, &format!("CREATE DATABASE {name}"))?;
        let (base, query) = admin.split_once('?').map_or((admin, String::new()), |(b, q)| (b, format!("?{q}")));
        let host_end = base.rfind('/').filter(|&i| i > base.find("://").map_or(0, |j| j + 2)).unwrap_or(base.len());
        let url = format!("{}/{name}{query}", &base[..host_end]);
        Ok(BenchDb { admin: admin.to_string(), name, url })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Err(e) = psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("warning: could not drop {}: {e:#}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql (install the PostgreSQL client)")?;
    if !out.status.success() {
        bail!("psql: {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d =
        std::env::temp_dir().join(format!("ds-bench-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// One group of the benchmark: its id, its members and its senders' pools of
/// pre-encrypted messages (token, messages).
struct BenchGroup {
    gid: api::GroupId,
    members: Vec<Client>,
    pools: Vec<(String, Vec<bytes::Bytes>)>,
}

/// Counters the timed phase shares between its tasks.
#[derive(Clone)]
struct Shared {
    /// Senders stop.
    stop: Arc<AtomicBool>,
    /// Receivers stop (after the drain that follows `stop`).
    stop_receivers: Arc<AtomicBool>,
    sent_at: Arc<Mutex<HashMap<(usize, u64), Instant>>>,
    accepted: Arc<AtomicU64>,
    deliveries: Arc<AtomicU64>,
    send_hist: Arc<Mutex<Histogram<u64>>>,
}

/// Waits (up to 10 s each) until every DS answers its health check.
async fn wait_up(bases: &[String]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for b in bases {
        for _ in 0..200 {
            if http.get(format!("{b}{}", api::routes::HEALTH)).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn run(args: &Args, bases: &[String], pids: &[u32]) -> anyhow::Result<()> {
    let base = bases[0].clone();
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    wait_up(bases).await?;
    let g = args.group_size.max(2);
    let n_groups = args.senders.div_ceil(g).max(1);
    let mut groups = Vec::new();
    let mut senders_left = args.senders;
    for gi in 0..n_groups {
        let n_send = senders_left.min(g);
        senders_left -= n_send;
        groups.push(form_group(args, &http, &base, gi, g, n_send).await?);
    }

    // Timed phase.
    let shared = Shared {
        stop: Arc::new(AtomicBool::new(false)),
        stop_receivers: Arc::new(AtomicBool::new(false)),
        sent_at: Arc::new(Mutex::new(HashMap::new())),
        accepted: Arc::new(AtomicU64::new(0)),
        deliveries: Arc::new(AtomicU64::new(0)),
        send_hist: Arc::new(Mutex::new(Histogram::<u64>::new(3)?)),
    };
    let (tasks, receivers) = spawn_load(args, &http, bases, &groups, &shared);
    // Warm-up: the same load, then every counter starts from here.
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let (accepted0, deliveries0) = (shared.accepted.load(Ordering::Relaxed), shared.deliveries.load(Ordering::Relaxed));
    if let Ok(mut h) = shared.send_hist.lock() {
        h.reset();
    }
    let cpu_before = cpu_ticks(pids)?;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_secs = (cpu_ticks(pids)? - cpu_before) as f64 / 100.0; // USER_HZ on Linux
    let accepted = shared.accepted.load(Ordering::Relaxed) - accepted0;
    let deliveries = shared.deliveries.load(Ordering::Relaxed) - deliveries0;
    for t in tasks {
        let _ = t.await;
    }
    // Drain: up to 5 s for every accepted message to reach every member.
    let expected = shared.sent_at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.len() as u64 * g as u64;
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.deliveries.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop_receivers.store(true, Ordering::Relaxed);
    let mut e2e = Histogram::<u64>::new(3)?;
    let sent_at = shared.sent_at.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let mut got: HashMap<(usize, u64), u64> = HashMap::new();
    for r in receivers {
        let (gidx, seen) = r.await?;
        for (seq, at) in seen {
            *got.entry((gidx, seq)).or_default() += 1;
            if let Some(t0) = sent_at.get(&(gidx, seq)).filter(|t0| **t0 >= start) {
                let _ = e2e.record(at.saturating_duration_since(*t0).as_micros() as u64);
            }
        }
    }
    // Losses: deliveries missing against accepted × G, over the whole run.
    let lost: u64 = sent_at.keys().map(|k| (g as u64).saturating_sub(got.get(k).copied().unwrap_or(0))).sum();
    let metrics =
        http.get(format!("{base}{}", api::routes::METRICS)).bearer_auth("ds-bench").send().await?.text().await?;
    let sh = shared.send_hist.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let run = Run {
        g,
        n_groups,
        elapsed,
        cpu_secs,
        accepted: accepted as f64,
        deliveries: deliveries as f64,
        lost,
        accepted_all: sent_at.len() as u64,
    };
    report(args, &run, &sh, &e2e, &metrics);
    Ok(())
}

/// Registers `g` clients, creates a group, adds everyone, and pre-encrypts the
/// pools of its first `n_send` members.
async fn form_group(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    gi: usize,
    g: usize,
    n_send: usize,
) -> anyhow::Result<BenchGroup> {
    let mut members = Vec::new();
    for mi in 0..g {
        members.push(new_client(http, base, format!("g{gi}m{mi}")).await?);
    }
    // Everyone but the creator uploads one KeyPackage; the creator adds all.
    let suite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    let mut kps = Vec::new();
    for m in &members[1..] {
        kps.push(KeyPackage::builder().build(suite, &m.provider, &m.signer, m.cwk.clone())?.key_package().clone());
    }
    let cfg = MlsGroupCreateConfig::builder()
        .ciphersuite(suite)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build();
    let creator = &members[0];
    let mut group = MlsGroup::new(&creator.provider, &creator.signer, &cfg, creator.cwk.clone())?;
    let gi_msg = group.export_group_info(creator.provider.crypto(), &creator.signer, false)?;
    let body = api::GroupCreateBody {
        group_info: gi_msg.tls_serialize_detached()?.into(),
        ratchet_tree: group.export_ratchet_tree().tls_serialize_detached()?.into(),
    };
    let post = |path: String, media: &'static str, body: Vec<u8>| {
        http.post(format!("{base}{path}")).bearer_auth(&creator.token).header("content-type", media).body(body).send()
    };
    let created = post(api::routes::GROUPS.into(), api::MEDIA_GROUP_CREATE, body.tls_serialize_detached()?).await?;
    ok_json(created, "create group").await?;
    let gid = api::GroupId::from_bytes(group.group_id().as_slice())?;
    let (commit, welcome, gi) = group.add_members(&creator.provider, &creator.signer, &kps)?;
    let gi = gi.context("the add commit made no GroupInfo")?;
    let bundle = api::CommitBundleBody {
        commit: commit.tls_serialize_detached()?.into(),
        welcome: welcome.tls_serialize_detached()?.into(),
        group_info: MlsMessageOut::from(gi).tls_serialize_detached()?.into(),
    };
    let added = post(api::routes::commits(&gid), api::MEDIA_COMMIT_BUNDLE, bundle.tls_serialize_detached()?).await?;
    ok_json(added, "add members").await?;
    group.merge_pending_commit(&creator.provider)?;
    let welcome_in = MlsMessageIn::tls_deserialize_exact(welcome.tls_serialize_detached()?)?;
    let MlsMessageBodyIn::Welcome(welcome_in) = welcome_in.extract() else { bail!("not a welcome") };
    let payload = vec![0x5a; args.size];
    let mut pools = Vec::new();
    for (i, m) in members.iter().take(n_send).enumerate() {
        let mut mg = if i == 0 {
            MlsGroup::load(m.provider.storage(), group.group_id())?.context("creator group")?
        } else {
            let join = MlsGroupJoinConfig::builder()
                .use_ratchet_tree_extension(true)
                .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
                .build();
            StagedWelcome::new_from_welcome(&m.provider, &join, welcome_in.clone(), None)?.into_group(&m.provider)?
        };
        let mut pool = Vec::with_capacity(args.pool);
        for _ in 0..args.pool {
            pool.push(bytes::Bytes::from(
                mg.create_message(&m.provider, &m.signer, &payload)?.tls_serialize_detached()?,
            ));
        }
        pools.push((m.token.clone(), pool));
    }
    Ok(BenchGroup { gid, members, pools })
}

type Receiver = tokio::task::JoinHandle<(usize, Vec<(u64, Instant)>)>;

/// Starts every member's receiver and every sender's loop.
fn spawn_load(
    args: &Args,
    http: &reqwest::Client,
    bases: &[String],
    groups: &[BenchGroup],
    shared: &Shared,
) -> (Vec<tokio::task::JoinHandle<()>>, Vec<Receiver>) {
    let mut tasks = Vec::new();
    let mut receivers = Vec::new();
    // Round-robin over the replicas, as behind a load balancer.
    let mut next = 0usize;
    let mut pick = || {
        next += 1;
        bases[next % bases.len()].clone()
    };
    for (gidx, group) in groups.iter().enumerate() {
        for m in &group.members {
            let (http, base, gid, token) = (http.clone(), pick(), group.gid.clone(), m.token.clone());
            let (shared, use_ws) = (shared.clone(), args.receive == "ws");
            receivers.push(tokio::spawn(async move {
                let seen = if use_ws {
                    receive_ws(&base, &gid, &token, &shared).await
                } else {
                    receive_poll(&http, &base, &gid, &token, &shared).await
                };
                (gidx, seen)
            }));
        }
        for (token, pool) in &group.pools {
            let (token, pool) = (token.clone(), pool.clone());
            let (http, base, gid, shared) = (http.clone(), pick(), group.gid.clone(), shared.clone());
            tasks.push(tokio::spawn(async move { send_loop(&http, &base, &gid, &token, &pool, gidx, &shared).await }));
        }
    }
    (tasks, receivers)
}

/// A member following the group's WebSocket stream (binary frames): when each
/// seq arrived.
async fn receive_ws(base: &str, gid: &api::GroupId, token: &str, shared: &Shared) -> Vec<(u64, Instant)> {
    use futures_util::StreamExt as _;
    let mut seen = Vec::new();
    // after = 1: skip the add commit.
    let ws_url = format!("{}{}&format=binary", base.replacen("http", "ws", 1), api::routes::stream(gid, 1));
    let Ok(mut req) = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url) else {
        return seen;
    };
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.headers_mut().insert("authorization", v);
    }
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(req).await else { return seen };
    while !shared.stop_receivers.load(Ordering::Relaxed) {
        let next = tokio::time::timeout(Duration::from_millis(200), socket.next()).await;
        let Ok(Some(Ok(frame))) = next else { continue };
        let tokio_tungstenite::tungstenite::Message::Binary(bytes) = frame else { continue };
        let Ok(page) = api::MessagesPageBody::tls_deserialize_exact(&bytes) else { continue };
        let now = Instant::now();
        seen.extend(page.messages.iter().map(|m| (m.seq, now)));
        shared.deliveries.fetch_add(page.messages.len() as u64, Ordering::Relaxed);
    }
    seen
}

/// A member long-polling the group's log (binary pages): when each seq arrived.
async fn receive_poll(
    http: &reqwest::Client,
    base: &str,
    gid: &api::GroupId,
    token: &str,
    shared: &Shared,
) -> Vec<(u64, Instant)> {
    let mut seen = Vec::new();
    let mut after = 1u64; // skip the add commit
    while !shared.stop_receivers.load(Ordering::Relaxed) {
        let r = http
            .get(format!("{base}{}", api::routes::fetch(gid, after, 500, Some(1))))
            .bearer_auth(token)
            .header("accept", api::MEDIA_MESSAGES)
            .send()
            .await;
        let Ok(r) = r else { continue };
        let Ok(bytes) = r.bytes().await else { continue };
        let Ok(page) = api::MessagesPageBody::tls_deserialize_exact(&bytes) else { continue };
        let now = Instant::now();
        for msg in &page.messages {
            after = msg.seq;
            seen.push((msg.seq, now));
        }
        shared.deliveries.fetch_add(page.messages.len() as u64, Ordering::Relaxed);
    }
    seen
}

/// A sender posting its pool in a closed loop until told to stop.
async fn send_loop(
    http: &reqwest::Client,
    base: &str,
    gid: &api::GroupId,
    token: &str,
    pool: &[bytes::Bytes],
    gidx: usize,
    shared: &Shared,
) {
    let url = format!("{base}{}", api::routes::messages(gid));
    let mut i = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let body = pool[i % pool.len()].clone();
        let r = http.post(&url).bearer_auth(token).header("content-type", api::MEDIA_MLS).body(body).send().await;
        i += 1;
        let Ok(r) = r else { continue };
        if r.status().as_u16() != 201 {
            continue;
        }
        let Ok(p) = r.json::<api::PostedResponse>().await else { continue };
        let dt = t0.elapsed();
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = shared.send_hist.lock() {
            let _ = h.record(dt.as_micros() as u64);
        }
        if let Ok(mut m) = shared.sent_at.lock() {
            m.insert((gidx, p.seq), t0);
        }
    }
}

/// Totals of a timed phase.
struct Run {
    g: usize,
    n_groups: usize,
    elapsed: f64,
    cpu_secs: f64,
    accepted: f64,
    deliveries: f64,
    /// Deliveries missing after the drain, against accepted × G (warm-up included).
    lost: u64,
    /// Messages accepted over the whole run (warm-up included).
    accepted_all: u64,
}

/// Prints the run as text or JSON, with group commit as the server saw it
/// (fsyncs and waiters per fsync, from `/metrics`).
fn report(args: &Args, run: &Run, sh: &Histogram<u64>, e2e: &Histogram<u64>, metrics: &str) {
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let fsyncs = metric("grove_ds_fsync_batch_size_count");
    let waiters = metric("grove_ds_fsync_batch_size_sum");
    let fsync_secs = metric("grove_ds_fsync_duration_seconds_sum");
    let Run { g, n_groups, elapsed, cpu_secs, accepted: acc, deliveries: del, lost, accepted_all } = *run;
    let out = serde_json::json!({
        "store": args.store, "replicas": args.replicas,
        "group_size": g, "senders": args.senders, "groups": n_groups, "size": args.size, "duration_s": elapsed,
        "accepted_per_s": acc / elapsed, "deliveries_per_s": del / elapsed,
        "send_p50_ms": sh.value_at_quantile(0.5) as f64 / 1000.0, "send_p99_ms": sh.value_at_quantile(0.99) as f64 / 1000.0,
        "e2e_p50_ms": e2e.value_at_quantile(0.5) as f64 / 1000.0, "e2e_p99_ms": e2e.value_at_quantile(0.99) as f64 / 1000.0,
        "server_cpu_s_per_1000_deliveries": if del > 0.0 { cpu_secs / del * 1000.0 } else { 0.0 },
        "server_cpu_s": cpu_secs,
        "warmup_s": args.warmup,
        "lost": lost,
        "accepted_total": accepted_all,
        "fsyncs_total": fsyncs,
        "mean_fsync_batch": if fsyncs > 0.0 { waiters / fsyncs } else { 0.0 },
        "mean_fsync_ms": if fsyncs > 0.0 { fsync_secs / fsyncs * 1000.0 } else { 0.0 },
    });
    if args.json {
        println!("{out}");
        return;
    }
    let f = |k: &str| out[k].as_f64().unwrap_or(0.0);
    println!(
        "{} x{} G={g} C={} S={} groups={n_groups}: accepted {:.0} msg/s, deliveries {:.0}/s, send p50 {:.2} ms p99 {:.2} ms, send-to-receive p50 {:.2} ms p99 {:.2} ms, server CPU {:.3} s per 1000 deliveries; lost {lost} of {} deliveries; {:.0} fsyncs (whole run), mean batch {:.1}, mean fsync {:.2} ms",
        args.store, args.replicas, args.senders, args.size, acc / elapsed, del / elapsed,
        f("send_p50_ms"), f("send_p99_ms"), f("e2e_p50_ms"), f("e2e_p99_ms"),
        f("server_cpu_s_per_1000_deliveries"), accepted_all * g as u64, fsyncs, f("mean_fsync_batch"), f("mean_fsync_ms")
    );
}
