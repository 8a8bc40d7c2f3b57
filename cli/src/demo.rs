//! `grove demo`: a Delivery Service in-process on an ephemeral port with a
//! temporary data directory, and alice (with a phone and, for a while, a
//! laptop), bob and carol in temporary homes.

use anyhow::Context as _;
use grove_client::{Client, ClientConfig, TrustMode};
use grove_ds::config::Config;
use grove_ds::daemon::InProcess;
use serde_json::{json, Value};

use crate::Out;

struct Log {
    lines: Vec<String>,
    steps: Vec<Value>,
}

impl Log {
    fn step(&mut self, what: impl Into<String>, detail: Value) {
        let what = what.into();
        self.lines.push(format!("* {what}"));
        self.steps.push(json!({ "step": what, "detail": detail }));
    }
    fn note(&mut self, line: impl Into<String>) {
        self.lines.push(format!("    {}", line.into()));
    }
}

async fn user(tmp: &std::path::Path, url: &str, name: &str) -> anyhow::Result<Client> {
    let mut cfg = ClientConfig::new(url, name);
    cfg.trust = TrustMode::SystemRoots; // unused: plain http to loopback
    cfg.key_packages = 3;
    Client::create(tmp.join(name), cfg).await.with_context(|| format!("creating {name}"))
}

pub(crate) async fn run(_json: bool) -> anyhow::Result<Out> {
    grove_ds::server::install_crypto_provider();
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let server = InProcess::start(Config::loopback(tmp.path().join("ds"))).await?;
    let url = server.url();
    let mut log = Log { lines: Vec::new(), steps: Vec::new() };
    log.step(format!("Delivery Service running at {url} (data in a temporary directory)"), json!({ "url": url }));

    let alice = user(tmp.path(), &url, "alice").await?;
    let bob = user(tmp.path(), &url, "bob").await?;
    let carol = user(tmp.path(), &url, "carol").await?;
    log.step("alice, bob and carol created identities, registered and uploaded KeyPackages", json!({}));
    for c in [&alice, &bob, &carol] {
        log.note(format!("{}: fingerprint {}", c.user(), c.whoami().fingerprint));
    }
    let gid = converse(&mut log, &alice, &bob, &carol).await?;
    let laptop = second_device(&mut log, tmp.path(), &url, &alice, &bob, &gid).await?;
    let secret = "the launch code is 0000 (carol must not see this)";
    let (carol_has, carol_decrypt) = remove_carol(&mut log, &alice, &bob, &carol, &gid, secret).await?;
    let entries = show_ds_log(&mut log, &alice, &gid).await?;

    server.shutdown().await?;
    // Everything the DS wrote to disk, searched for the plaintexts.
    let needles: [&[u8]; 5] =
        [secret.as_bytes(), b"hello bob and carol", b"hi all, carol here", b"project-x", LAPTOP_SECRET.as_bytes()];
    let (files, hits) = scan_dir(&tmp.path().join("ds"), &needles)?;
    log.step(
        format!("the DS data directory after shutdown: {files} files, plaintext found in {hits}"),
        json!({ "files": files, "files_with_plaintext": hits }),
    );
    Ok(Out {
        text: log.lines.join("\n"),
        json: json!({
            "steps": log.steps,
            "ds_log": entries,
            "carol_has_message": carol_has,
            "carol_can_decrypt": carol_decrypt,
            "laptop": laptop,
            "ds_files": files,
            "ds_files_with_plaintext": hits,
        }),
    })
}

/// Counts the files under `dir` and those containing any of `needles`.
fn scan_dir(dir: &std::path::Path, needles: &[&[u8]]) -> anyhow::Result<(usize, usize)> {
    let (mut files, mut hits) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            if needles.iter().any(|n| data.windows(n.len()).any(|w| w == *n)) {
                hits += 1;
            }
        }
    }
    Ok((files, hits))
}

/// alice creates "project-x", adds bob and carol, they compare a safety number
/// and exchange messages. Returns the group id.
async fn converse(log: &mut Log, alice: &Client, bob: &Client, carol: &Client) -> anyhow::Result<String> {
    let gid = alice.create_group("project-x").await?;
    log.step(format!("alice created group \"project-x\" (id {gid}), epoch 0"), json!({ "group": gid, "epoch": 0 }));

    let o = alice.add_members(&gid, &["bob", "carol"]).await?;
    log.step(format!("alice added bob and carol: epoch {}", o.epoch), json!({ "epoch": o.epoch }));
    bob.sync().await?;
    carol.sync().await?;
    let sn_a = alice.verify("bob", false).await?;
    let sn_b = bob.verify("alice", false).await?;
    log.note(format!(
        "safety number alice<->bob: {} (same on both sides: {})",
        sn_a.number,
        sn_a.number == sn_b.number
    ));

    alice.send(&gid, "hello bob and carol").await?;
    bob.sync().await?;
    bob.send(&gid, "hi alice").await?;
    carol.send(&gid, "hi all, carol here").await?;
    alice.sync().await?;
    bob.sync().await?;
    carol.sync().await?;
    log.step("messages exchanged", json!({}));
    for c in [alice, bob, carol] {
        let msgs: Vec<String> = c.messages(&gid)?.iter().map(|m| format!("{}: {}", m.sender, m.text)).collect();
        log.note(format!("{} reads: {}", c.user(), msgs.join(" | ")));
    }
    Ok(gid)
}

/// What bob sends after alice revoked her laptop.
const LAPTOP_SECRET: &str = "sent after the laptop was revoked";

/// alice links a laptop (the link code, the approval on her phone after the
/// codes match, the laptop's sync joining the group), bob writes to both
/// devices, then alice revokes the laptop from her phone and bob writes
/// again: the laptop is refused and never gets it. Returns what happened.
async fn second_device(
    log: &mut Log,
    tmp: &std::path::Path,
    url: &str,
    alice: &Client,
    bob: &Client,
    gid: &str,
) -> anyhow::Result<Value> {
    let mut cfg = ClientConfig::new(url, "alice");
    cfg.key_packages = 3;
    let (_, codes) = Client::request_link(tmp.join("alice-laptop"), cfg, "laptop").await?;
    log.step("alice's laptop asked to be linked", json!({ "compare": codes.compare }));
    log.note(format!("link code {} and comparison code {}", codes.link_code, codes.compare));
    let shown = alice.approve_link(&codes.link_code, false).await?;
    log.note(format!(
        "alice's phone shows comparison code {} (same: {})",
        shown.compare,
        shown.compare == codes.compare
    ));
    alice.approve_link(&codes.link_code, true).await?;
    let (laptop, done) = Client::open(tmp.join("alice-laptop"))?.finish_link().await?;
    let joined = done.map_or(0, |d| d.joined.len());
    alice.sync().await?;
    bob.sync().await?;
    let devices = alice.devices().await?.len();
    log.step(
        format!(
            "the phone approved; the laptop synced: alice has {devices} devices, the laptop joined {joined} group(s)"
        ),
        json!({ "devices": devices }),
    );

    bob.send(gid, "for both of alice's devices").await?;
    let read = |c: &Client| -> anyhow::Result<bool> {
        Ok(c.messages(gid)?.iter().any(|m| m.text == "for both of alice's devices"))
    };
    alice.sync().await?;
    laptop.sync().await?;
    let (phone_read, laptop_read) = (read(alice)?, read(&laptop)?);
    log.step("bob wrote to the group", json!({ "phone_read": phone_read, "laptop_read": laptop_read }));
    log.note(format!("read on the phone: {phone_read}, on the laptop: {laptop_read}"));

    let laptop_id = laptop.devices().await?.into_iter().find(|d| d.this_device).map(|d| d.id).unwrap_or_default();
    let r = alice.revoke_device(&laptop_id).await?;
    bob.sync().await?;
    bob.send(gid, LAPTOP_SECRET).await?;
    alice.sync().await?;
    let refused = match laptop.sync().await {
        Ok(_) => "the DS still served it".to_owned(),
        Err(e) => e.to_string(),
    };
    let laptop_has = laptop.messages(gid)?.iter().any(|m| m.text == LAPTOP_SECRET);
    let phone_has = alice.messages(gid)?.iter().any(|m| m.text == LAPTOP_SECRET);
    log.step(
        format!(
            "alice revoked the laptop from her phone (removed from {} group(s)); bob wrote again",
            r.removed_from.len()
        ),
        json!({ "phone_has": phone_has, "laptop_has": laptop_has }),
    );
    log.note(format!("the phone reads it: {phone_has}; the laptop has it: {laptop_has}; the laptop's sync: {refused}"));
    Ok(
        json!({ "phone_read": phone_read, "laptop_read": laptop_read, "phone_has_after_revoke": phone_has, "laptop_has_after_revoke": laptop_has }),
    )
}

/// alice removes carol and sends `secret`; shows that carol neither has it
/// nor can decrypt its ciphertext. Returns (carol has it, carol can decrypt).
async fn remove_carol(
    log: &mut Log,
    alice: &Client,
    bob: &Client,
    carol: &Client,
    gid: &str,
    secret: &str,
) -> anyhow::Result<(bool, bool)> {
    let o = alice.remove_members(gid, &["carol"]).await?;
    log.step(format!("alice removed carol: epoch {}", o.epoch), json!({ "epoch": o.epoch }));
    let r = carol.sync().await?;
    log.note(format!("carol synced and learned she was removed: {:?}", carol.group_state(gid)?.0.as_str()));
    debug_assert!(!r.left.is_empty());

    let seq = alice.send(gid, secret).await?;
    bob.sync().await?;
    log.step(format!("alice sent a new message (seq {seq}); bob reads it"), json!({ "seq": seq }));
    let bob_last = bob.messages(gid)?.last().map(|m| m.text.clone()).unwrap_or_default();
    log.note(format!("bob: {bob_last}"));

    carol.sync().await?;
    let carol_has = carol.messages(gid)?.iter().any(|m| m.text == secret);
    let carol_fetch = match carol.fetch_log(gid, 0).await {
        Ok(page) => format!(
            "the DS serves her entries only up to the removing commit (removed_at {:?}, newest {:?})",
            page.removed_at,
            page.messages.last().map(|m| m.seq)
        ),
        Err(e) => format!("the DS refuses: {e}"),
    };
    let bob_page = bob.fetch_log(gid, seq - 1).await?;
    let ciphertext = bob_page.messages.first().map(|m| m.message.clone()).unwrap_or_default();
    let carol_decrypt = carol.try_decrypt(gid, &ciphertext).is_ok();
    log.step(
        "carol cannot read what was sent after her removal",
        json!({ "carol_has_message": carol_has, "carol_can_decrypt": carol_decrypt }),
    );
    log.note(format!("in carol's history: {carol_has}; {carol_fetch}; decrypting the ciphertext with her old state works: {carol_decrypt}"));
    Ok((carol_has, carol_decrypt))
}

/// Lists what the DS stored for the group, with whether any plaintext shows.
async fn show_ds_log(log: &mut Log, alice: &Client, gid: &str) -> anyhow::Result<Vec<Value>> {
    let stored = alice.fetch_log(gid, 0).await?;
    log.step("what the DS stored for this group (the whole log):", json!({ "entries": stored.messages.len() }));
    let mut entries = Vec::new();
    for m in &stored.messages {
        let visible = String::from_utf8_lossy(&m.message);
        let leaks = visible.contains("launch code") || visible.contains("hello bob") || visible.contains("project-x");
        log.note(format!(
            "seq {:>2} epoch {} {:<11} {} bytes  {}…  plaintext visible: {}",
            m.seq,
            m.epoch,
            m.kind,
            m.message.len(),
            hex::encode(m.message.get(..24).unwrap_or(&m.message)),
            leaks
        ));
        entries.push(json!({ "seq": m.seq, "epoch": m.epoch, "kind": m.kind, "bytes": m.message.len(), "plaintext_visible": leaks }));
    }
    log.note("application messages are MLS PrivateMessages; commits are PublicMessages the DS validates, carrying no message text or group name");

    Ok(entries)
}
