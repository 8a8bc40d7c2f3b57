//! Store integrity: a damaged, truncated or rolled-back sled store is refused at
//! open and reported by `grove-ds check`; a store written by the format-1
//! release is migrated without losing a record.

use std::path::{Path, PathBuf};
use std::process::Command;

use grove_ds::store::*;

const USERS: usize = 5;
const ENTRIES: u64 = 305;

fn message(group: &str, seq: u64, len: usize) -> Vec<u8> {
    // Incompressible-looking bytes, so the file is mostly log entries.
    let mut m = format!("{group}-m{seq}-").into_bytes();
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while m.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.push(x as u8);
    }
    m
}

async fn group(store: &dyn Store, gid: &str) -> GroupRecord {
    GroupRecord {
        group_id: gid.as_bytes().to_vec().into(),
        internal_id: store.next_internal_id().await.unwrap(),
        epoch: 0,
        ciphersuite: 1,
        public_state: vec![9; 200].into(),
        group_info: Vec::new().into(),
        removed: Vec::new(),
        created_at: 1,
    }
}

fn entry(gid: &str, seq: u64) -> LogEntry {
    LogEntry {
        seq,
        epoch: 0,
        kind: EntryKind::Application,
        received_at: 1000 + seq,
        message: message(gid, seq, 1024).into(),
    }
}

/// A store in `dir` with users, and two groups whose logs hold `entries`
/// 1 KiB messages each; closed cleanly (as the probes' DS was stopped).
async fn populate(dir: &Path, entries: u64) -> u64 {
    let store = SledStore::open(dir, None).unwrap();
    for i in 0..USERS {
        let u = UserRecord {
            name: format!("user{i}").into_bytes().into(),
            credential: vec![1, i as u8].into(),
            signature_key: vec![i as u8; 32].into(),
            signature_scheme: 0x0807,
            registered_at: 1,
        };
        store.register_user(&u).await.unwrap();
    }
    let mut ids = Vec::new();
    for gid in ["g-a", "g-b"] {
        let g = group(&store, gid).await;
        assert!(store.create_group(&g).await.unwrap());
        for seq in 1..=entries {
            store.append_message(g.internal_id, &entry(gid, seq), None).await.unwrap();
        }
        ids.push(g.internal_id);
    }
    store.close().unwrap();
    ids[0]
}

fn reopen(dir: &Path) -> SledStore {
    grove_ds::testing::retry_sled_lock(|| SledStore::open(dir, None)).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// Asserts that opening refuses the store, naming it and what to do.
fn assert_refused(dir: &Path, what: &str) -> String {
    let err = grove_ds::testing::retry_sled_lock(|| SledStore::open(dir, None).map(|_| ())).unwrap_err().to_string();
    assert!(err.contains(&dir.display().to_string()), "{what}: the error names the store: {err}");
    assert!(err.contains("backup"), "{what}: the error says to restore from a backup: {err}");
    err
}

/// Asserts that the full check does not call the store healthy.
fn assert_check_fails(dir: &Path, what: &str) {
    match grove_ds::testing::retry_sled_lock(|| SledStore::check(dir)) {
        Ok(report) => assert!(!report.ok(), "{what}: check must report problems: {report:?}"),
        Err(e) => assert!(e.to_string().contains("backup"), "{what}: {e}"),
    }
}

#[tokio::test]
async fn healthy_store_opens_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 20).await;
    let report = grove_ds::testing::retry_sled_lock(|| SledStore::check(dir.path())).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.users, report.groups, report.log_entries), (USERS as u64, 2, 40));
    assert_eq!(report.format, 2);
    assert!(report.watermark_written_at.is_some());
    let store = reopen(dir.path());
    assert_eq!(store.load_group(b"g-a").await.unwrap().unwrap().1, 21);
}

/// Every damage the probes tried on a cleanly stopped DS's `db/db` (or `conf`)
/// is refused at open and reported by `check`; before, four of them started a
/// server that silently served part of the log, or nothing.
#[tokio::test]
async fn damaged_database_file_is_refused() {
    let golden = tempfile::tempdir().unwrap();
    populate(golden.path(), ENTRIES).await;
    let db_len = std::fs::metadata(golden.path().join("db")).unwrap().len();
    assert!(db_len > 600 * 1024, "the file holds the ~600 KiB of entries ({db_len} bytes)");
    type Damage = (&'static str, fn(&Path, u64));
    let damages: [Damage; 6] = [
        ("truncate to half", |d, len| truncate(&d.join("db"), len / 2)),
        ("flip 64 bytes", |d, len| patch(&d.join("db"), len / 3, |b| *b ^= 0xA5)),
        ("cut the last 4 KiB", |d, len| truncate(&d.join("db"), len - 4096)),
        ("zero a 4 KiB block", |d, len| patch_n(&d.join("db"), len / 2, 4096, |b| *b = 0)),
        ("truncate to 0", |d, _| truncate(&d.join("db"), 0)),
        ("garbage conf", |d, _| std::fs::write(d.join("conf"), b"\x00garbage\xff\xfe not a sled config").unwrap()),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(golden.path(), dir.path());
        damage(dir.path(), db_len);
        let err = assert_refused(dir.path(), what);
        eprintln!("{what}: refused: {}", err.lines().nth(1).unwrap_or_default());
        assert_check_fails(dir.path(), what);
        // Refusing changed nothing: it is still refused (the watermark was not
        // rewritten to match the damaged database).
        assert_refused(dir.path(), what);
    }
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn patch(path: &Path, at: u64, f: fn(&mut u8)) {
    patch_n(path, at, 64, f)
}

fn patch_n(path: &Path, at: u64, n: usize, f: fn(&mut u8)) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at as usize;
    bytes[at..at + n].iter_mut().for_each(f);
    std::fs::write(path, bytes).unwrap();
}

/// A database restored from an older copy while the watermark stayed is
/// refused; the operator can accept it on purpose, and then it serves again.
#[tokio::test]
async fn rolled_back_database_is_refused_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let id = populate(dir.path(), 10).await;
    copy_dir(dir.path(), old.path());
    {
        let store = reopen(dir.path());
        for seq in 11..=15 {
            store.append_message(id, &entry("g-a", seq), None).await.unwrap();
        }
        store.close().unwrap();
    }
    // Put the old database back, keeping the newer watermark.
    let mark = std::fs::read(dir.path().join(watermark::FILE_NAME)).unwrap();
    let restored = tempfile::tempdir().unwrap();
    copy_dir(old.path(), restored.path());
    std::fs::write(restored.path().join(watermark::FILE_NAME), mark).unwrap();
    let err = assert_refused(restored.path(), "rollback");
    assert!(err.contains("ends at seq 10") && err.contains("recorded seq 15"), "{err}");
    assert_check_fails(restored.path(), "rollback");

    let report = grove_ds::testing::retry_sled_lock(|| SledStore::accept_current_state(restored.path())).unwrap();
    assert!(report.ok(), "{report:?}");
    let store = reopen(restored.path());
    assert_eq!(store.load_group(b"g-a").await.unwrap().unwrap().1, 11);
}

/// An entry whose bytes changed but still decode is found by the hash chain.
#[tokio::test]
async fn changed_entry_bytes_fail_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let id = populate(dir.path(), 10).await;
    {
        let db = grove_ds::testing::retry_sled_lock(|| sled::open(dir.path())).unwrap();
        let log = db.open_tree("log_v2").unwrap();
        let mut key = id.to_be_bytes().to_vec();
        key.extend_from_slice(&5u64.to_be_bytes());
        let mut v = log.get(&key).unwrap().unwrap().to_vec();
        let at = v.len() - 40; // inside the message, before the chain value
        v[at] ^= 1;
        log.insert(&key, v).unwrap();
        db.flush().unwrap();
    }
    let report = grove_ds::testing::retry_sled_lock(|| SledStore::check(dir.path())).unwrap();
    assert!(report.problems.iter().any(|p| p.contains("entry 5") && p.contains("hash chain")), "{:?}", report.problems);
}

/// A missing or damaged watermark is refused for a store that holds data.
#[tokio::test]
async fn missing_or_damaged_watermark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3).await;
    let path = dir.path().join(watermark::FILE_NAME);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    bad[12] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let err = assert_refused(dir.path(), "damaged watermark");
    assert!(err.contains("checksum"), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = assert_refused(dir.path(), "missing watermark");
    assert!(err.contains("is missing"), "{err}");
    std::fs::write(&path, &good).unwrap();
    reopen(dir.path());
}

/// The watermark keeps up with acknowledged writes while the store runs, and a
/// crash (no close) leaves a store that opens: the database may be ahead of
/// the watermark, never behind.
#[tokio::test]
async fn watermark_follows_persist_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), None).unwrap();
    let g = group(&store, "g-live").await;
    store.create_group(&g).await.unwrap();
    for seq in 1..=3 {
        store.append_message(g.internal_id, &entry("g-live", seq), None).await.unwrap();
    }
    store.persist().await.unwrap();
    // The next flush after the interval writes the watermark.
    tokio::time::sleep(WATERMARK_INTERVAL + std::time::Duration::from_millis(300)).await;
    store.append_message(g.internal_id, &entry("g-live", 4), None).await.unwrap();
    store.persist().await.unwrap();
    let w = wait_for_mark(dir.path(), g.internal_id, 3).await;
    assert!(w >= 3);
    // Crash: no close. Copy the files as they are and open the copy.
    std::mem::forget(store);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let store = SledStore::open(copy.path(), None).unwrap();
    assert_eq!(store.load_group(b"g-live").await.unwrap().unwrap().1, 5, "acknowledged entries are kept");
}

async fn wait_for_mark(dir: &Path, id: u64, at_least: u64) -> u64 {
    for _ in 0..50 {
        if let Some(w) = watermark::read(dir).unwrap() {
            if let Some(h) = w.groups.iter().find(|h| h.internal_id == id) {
                if h.seq >= at_least {
                    return h.seq;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the watermark never recorded seq {at_least} of group {id}");
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ds-v1/db")
}

fn fixture_message(group: &str, seq: u64) -> Vec<u8> {
    let mut m = format!("{group}-m{seq}-").into_bytes();
    while m.len() < 200 {
        m.push(b'a' + (m.len() % 26) as u8);
    }
    m
}

/// A data directory written by the last format-1 release (checked-in
/// fixture) opens with this build: migrated to format 2, every record kept.
#[tokio::test]
async fn store_migration_from_format_1_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    std::fs::create_dir_all(dir.path().join("blobs")).unwrap();
    for round in 0..2 {
        let store = reopen(dir.path());
        for name in ["alice", "bob", "carol"] {
            assert!(store.user(name).await.unwrap().is_some(), "round {round}: user {name}");
        }
        assert_eq!(
            store.key_package_counts("alice", 1).await.unwrap(),
            KeyPackageCounts { one_time: 3, last_resort: true }
        );
        let (g1, next) = store.load_group(b"fixture-g1").await.unwrap().unwrap();
        assert_eq!((g1.epoch, next), (2, 151 + round));
        let entries = store.fetch_after(g1.internal_id, 0, 150, 1000).await.unwrap();
        assert_eq!(entries.len(), 150);
        for e in &entries {
            assert_eq!(e.message, fixture_message("fixture-g1", e.seq), "round {round}: g1 entry {}", e.seq);
            assert_eq!(e.received_at, 1_700_000_000 + e.seq);
        }
        assert_eq!(entries[0].kind, EntryKind::Commit);
        assert_eq!(entries[101].kind, EntryKind::Commit);
        assert_eq!(store.cursors(g1.internal_id).await.unwrap(), vec![("bob".to_string(), 50)]);
        assert_eq!(store.inbox_after("carol", 0, 10).await.unwrap().len(), 1);
        let (g2, next) = store.load_group(b"fixture-g2").await.unwrap().unwrap();
        assert_eq!(next, 51);
        let kept = store.fetch_after(g2.internal_id, 0, 50, 1000).await.unwrap();
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), (21..=50).collect::<Vec<_>>());
        assert_eq!(kept[0].message, fixture_message("fixture-g2", 21));
        assert_eq!(store.load_group(b"fixture-g3").await.unwrap().unwrap().1, 1);
        // It keeps working: appends continue the migrated chain.
        let seq = 151 + round;
        store.append_message(g1.internal_id, &entry("fixture-g1", seq), None).await.unwrap();
        store.close().unwrap();
    }
    let report = grove_ds::testing::retry_sled_lock(|| SledStore::check(dir.path())).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.format, report.users, report.groups, report.log_entries), (2, 3, 3, 152 + 30));
}

fn grove_ds(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_grove-ds")).args(args).output().unwrap()
}

/// `grove-ds check` on a healthy, a damaged and a missing data directory, and
/// `grove-ds` itself refusing to serve the damaged one.
#[tokio::test]
async fn check_command_and_refusal_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let store_dir = data.path().join("db");
    populate(&store_dir, 5).await;
    let d = data.path().to_str().unwrap();

    let ok = grove_ds(&["check", "--data-dir", d]);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.contains("OK:") && out.contains("log entries 10"), "{out}");
    let json = grove_ds(&["check", "--data-dir", d, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["users"], USERS);
    assert_eq!(v["problems"], serde_json::json!([]));

    truncate(&store_dir.join("db"), 0);
    let bad = grove_ds(&["check", "--data-dir", d]);
    let out = String::from_utf8_lossy(&bad.stdout);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("DAMAGED") || err.contains("damaged"), "{out}{err}");

    let serve = grove_ds(&["--data-dir", d, "--insecure-http", "--listen", "127.0.0.1:0"]);
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success(), "grove-ds must not serve a damaged store");
    assert!(err.contains("refuses to serve") && err.contains("grove-ds check"), "{err}");

    let missing = grove_ds(&["check", "--data-dir", data.path().join("nope").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no grove-ds database"));
}
