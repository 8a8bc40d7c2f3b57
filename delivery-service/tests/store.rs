//! The storage suite, run against every store (sled on disk, in memory,
//! PostgreSQL when `GROVE_TEST_DATABASE_URL` is set), plus sled-only
//! durability checks and PostgreSQL-only races between two replicas.

use std::sync::Arc;

use grove_ds::store::*;

fn user(name: &str, key: u8) -> UserRecord {
    UserRecord {
        name: name.as_bytes().to_vec().into(),
        credential: vec![1, 2, key].into(),
        signature_key: vec![key; 32].into(),
        signature_scheme: 0x0807,
        registered_at: 1,
    }
}

async fn group(store: &dyn Store, gid: &[u8]) -> GroupRecord {
    GroupRecord {
        group_id: gid.to_vec().into(),
        internal_id: store.next_internal_id().await.unwrap(),
        epoch: 0,
        ciphersuite: 1,
        public_state: vec![9; 100].into(),
        group_info: Vec::new().into(),
        removed: Vec::new(),
        created_at: 1,
    }
}

fn entry(seq: u64, at: u64) -> LogEntry {
    LogEntry {
        seq,
        epoch: 0,
        kind: EntryKind::Application,
        received_at: at,
        message: format!("m{seq}").into_bytes().into(),
    }
}

fn welcome(gid: &[u8]) -> WelcomeEntry {
    WelcomeEntry { id: 0, group_id: gid.to_vec().into(), epoch: 1, received_at: 1, message: vec![7; 10].into() }
}

async fn suite(store: Arc<dyn Store>) {
    // Users: a name binds once; the same key again is idempotent.
    assert_eq!(store.register_user(&user("alice", 1)).await.unwrap(), RegisterOutcome::Created);
    assert_eq!(store.register_user(&user("alice", 1)).await.unwrap(), RegisterOutcome::AlreadyRegistered);
    assert_eq!(store.register_user(&user("alice", 2)).await.unwrap(), RegisterOutcome::NameTaken);
    assert_eq!(store.user("alice").await.unwrap().unwrap().signature_key.as_slice(), &[1; 32]);
    assert!(store.user("bob").await.unwrap().is_none());

    // Key packages: cap is all-or-nothing; claims are FIFO; last resort stays.
    let kps: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 8]).collect();
    let c = store.add_key_packages("alice", 1, &kps, Some(&[99; 8]), 6).await.unwrap();
    assert_eq!(c, KeyPackageCounts { one_time: 5, last_resort: true });
    assert!(matches!(store.add_key_packages("alice", 1, &kps[..2], None, 6).await, Err(StoreError::Quota(_))));
    assert_eq!(store.key_package_counts("alice", 1).await.unwrap().one_time, 5, "a refused batch writes nothing");
    assert_eq!(store.key_package_counts("alice", 3).await.unwrap(), KeyPackageCounts::default(), "suites are separate");
    assert_eq!(store.claim_key_package("alice", 1).await.unwrap(), Some((vec![0; 8], KeyPackageKind::OneTime)));
    // Concurrent claims: each one-time package at most once.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.claim_key_package("alice", 1).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for h in handles {
        got.push(h.await.unwrap().unwrap());
    }
    let one_time: std::collections::HashSet<_> =
        got.iter().filter(|(_, k)| *k == KeyPackageKind::OneTime).map(|(b, _)| b.clone()).collect();
    assert_eq!(one_time.len(), 4);
    assert_eq!(got.iter().filter(|(_, k)| *k == KeyPackageKind::OneTime).count(), 4, "no package twice");
    assert_eq!(got.iter().filter(|(_, k)| *k == KeyPackageKind::LastResort).count(), 4);
    assert_eq!(store.claim_key_package("bob", 1).await.unwrap(), None);

    // Groups: unique ids; ids never reused.
    let g = group(&*store, b"g1").await;
    assert!(store.create_group(&g).await.unwrap());
    assert!(!store.create_group(&group(&*store, b"g1").await).await.unwrap());
    let (loaded, next) = store.load_group(b"g1").await.unwrap().unwrap();
    assert_eq!(loaded, g);
    assert_eq!(next, 1);
    assert!(store.load_group(b"nope").await.unwrap().is_none());
    let g2 = group(&*store, b"g2").await;
    assert_ne!(g2.internal_id, g.internal_id);

    // Log: appends, conflicts, ranges.
    for seq in 1..=5 {
        store.append_message(g.internal_id, &entry(seq, 100 + seq), None).await.unwrap();
    }
    assert!(matches!(store.append_message(g.internal_id, &entry(3, 1), None).await, Err(StoreError::Conflict(_))));
    assert!(
        matches!(store.append_message(g.internal_id, &entry(7, 1), None).await, Err(StoreError::Conflict(_))),
        "a gap is refused like a taken seq: the writer is behind"
    );
    let page = store.fetch_after(g.internal_id, 1, 4, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(page[0], entry(2, 102));
    assert_eq!(store.fetch_after(g.internal_id, 0, 5, 2).await.unwrap().len(), 2);
    assert!(store.fetch_after(g.internal_id, 5, 5, 10).await.unwrap().is_empty());
    assert!(store.fetch_after(g2.internal_id, 0, 5, 10).await.unwrap().is_empty(), "groups do not mix");
    assert_eq!(store.load_group(b"g1").await.unwrap().unwrap().1, 6);

    // Commit: log + state + welcomes together; a taken seq writes nothing.
    let mut g_next = g.clone();
    g_next.epoch = 1;
    let (seq, ids) = store
        .append_commit(&g_next, &entry(6, 106), &[("bob".into(), welcome(b"g1")), ("carol".into(), welcome(b"g1"))])
        .await
        .unwrap();
    assert_eq!(seq, 6);
    assert_eq!(ids.len(), 2);
    let mut g_later = g_next.clone();
    g_later.epoch = 2;
    assert!(
        matches!(store.append_commit(&g_later, &entry(7, 1), &[]).await, Err(StoreError::Conflict(_))),
        "a second commit for epoch 0 is refused even at the next seq: one commit per epoch"
    );
    assert_eq!(store.load_group(b"g1").await.unwrap().unwrap().0.epoch, 1);
    let mut g_bad = g.clone();
    g_bad.epoch = 7;
    assert!(matches!(
        store.append_commit(&g_bad, &entry(6, 1), &[("dave".into(), welcome(b"g1"))]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.load_group(b"g1").await.unwrap().unwrap().0.epoch, 1, "a refused commit changes no state");
    assert!(store.inbox_after("dave", 0, 10).await.unwrap().is_empty(), "a refused commit delivers no welcome");

    // Inbox: per user, ordered, acknowledged one by one.
    let bob_inbox = store.inbox_after("bob", 0, 10).await.unwrap();
    assert_eq!(bob_inbox.len(), 1);
    assert_eq!(bob_inbox[0].id, ids[0]);
    assert!(store.inbox_ack("bob", ids[0]).await.unwrap());
    assert!(!store.inbox_ack("bob", ids[0]).await.unwrap());
    assert!(store.inbox_after("bob", 0, 10).await.unwrap().is_empty());
    assert_eq!(store.inbox_after("carol", 0, 10).await.unwrap().len(), 1);

    // Cursors only move forward.
    assert_eq!(store.set_cursor(g.internal_id, "alice", 4).await.unwrap(), 4);
    assert_eq!(store.set_cursor(g.internal_id, "alice", 2).await.unwrap(), 4);
    store.set_cursor(g.internal_id, "bob", 6).await.unwrap();
    let mut cursors = store.cursors(g.internal_id).await.unwrap();
    cursors.sort();
    assert_eq!(cursors, [("alice".to_string(), 4), ("bob".to_string(), 6)]);

    // Commit reports: one per reporter and commit.
    assert_eq!(store.add_commit_report(g.internal_id, 2, "bob", b"r1").await.unwrap(), 1);
    assert_eq!(store.add_commit_report(g.internal_id, 2, "bob", b"r2").await.unwrap(), 1, "bob's again replaces his");
    assert_eq!(store.add_commit_report(g.internal_id, 2, "carol", b"r").await.unwrap(), 2);
    assert_eq!(store.add_commit_report(g.internal_id, 5, "bob", b"r").await.unwrap(), 1, "another commit");
    assert_eq!(store.add_commit_report(g2.internal_id, 2, "bob", b"r").await.unwrap(), 1, "groups do not mix");

    // Retention: prune through 3 and by age; sequence numbers keep counting.
    let before = store.message_count().await.unwrap();
    assert_eq!(store.prune_log(g.internal_id, 3, 0).await.unwrap(), 3);
    assert_eq!(
        store.add_commit_report(g.internal_id, 2, "dave", b"r").await.unwrap(),
        1,
        "reports of pruned commits go"
    );
    assert_eq!(store.add_commit_report(g.internal_id, 5, "carol", b"r").await.unwrap(), 2, "later ones stay");
    assert_eq!(store.add_commit_report(g2.internal_id, 2, "carol", b"r").await.unwrap(), 2, "other groups' stay");
    assert_eq!(store.message_count().await.unwrap(), before - 3);
    assert_eq!(store.fetch_after(g.internal_id, 0, 10, 10).await.unwrap()[0].seq, 4);
    assert_eq!(store.prune_log(g.internal_id, 0, 106).await.unwrap(), 2, "entries received before 106 go");
    assert_eq!(store.prune_log(g.internal_id, 6, 0).await.unwrap(), 1);
    assert!(store.fetch_after(g.internal_id, 0, 10, 10).await.unwrap().is_empty());
    assert_eq!(store.load_group(b"g1").await.unwrap().unwrap().1, 7, "an emptied log still continues at 7");
    let mut ids = store.group_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, [b"g1".to_vec()]);

    auth(&*store).await;
}

/// Challenges are taken once; tokens are found by hash; expired ones are pruned.
async fn auth(store: &dyn Store) {
    let c = [7u8; 32];
    store.put_challenge(&c, "alice", 100).await.unwrap();
    let taken = store.take_challenge(&c).await.unwrap().unwrap();
    assert_eq!(taken, TokenRecord { user: "alice".into(), expires_at: 100, device: None });
    assert!(store.take_challenge(&c).await.unwrap().is_none(), "a challenge is taken once");
    let (t1, t2) = ([1u8; 32], [2u8; 32]);
    store.put_token(&t1, &TokenRecord { user: "alice".into(), expires_at: 50, device: None }).await.unwrap();
    let bob =
        TokenRecord { user: "bob".into(), expires_at: 500, device: Some("0123456789abcdef0123456789abcdef".into()) };
    store.put_token(&t2, &bob).await.unwrap();
    store.put_challenge(&[3; 32], "bob", 60).await.unwrap();
    assert_eq!(store.token(&t1).await.unwrap().unwrap().user, "alice");
    assert!(store.token(&[9; 32]).await.unwrap().is_none());
    assert_eq!(store.prune_auth(100).await.unwrap(), 2, "the expired token and challenge go");
    assert!(store.token(&t1).await.unwrap().is_none());
    assert_eq!(store.token(&t2).await.unwrap().unwrap(), bob, "a device's token keeps its device");
    assert!(store.take_challenge(&[3; 32]).await.unwrap().is_none());
    device_lists(store).await;
    links(store).await;
    key_directory(store).await;
}

/// Key-directory records: batches land whole (the last value of a key
/// wins), a prefix scan returns its keys in order and no others, and a key
/// put "if absent" keeps its first value.
async fn key_directory(store: &dyn Store) {
    assert_eq!(store.kt_get(&[b"a1".to_vec()]).await.unwrap(), [None]);
    let batch = [
        (b"s\x00\x03bob\x00\x02".to_vec(), b"v2".to_vec()),
        (b"s\x00\x03bob\x00\x01".to_vec(), b"v1".to_vec()),
        (b"s\x00\x03bobby".to_vec(), b"other".to_vec()),
        (b"a1".to_vec(), b"first".to_vec()),
        (b"a1".to_vec(), b"node".to_vec()),
        (b"\xff\xff".to_vec(), b"top".to_vec()),
    ];
    store.kt_put(&batch).await.unwrap();
    assert_eq!(
        store.kt_get(&[b"a1".to_vec(), b"a2".to_vec()]).await.unwrap(),
        [Some(b"node".to_vec()), None],
        "the last value of a key in a batch wins"
    );
    let scan = store.kt_scan(b"s\x00\x03bob\x00").await.unwrap();
    assert_eq!(
        scan,
        [(b"s\x00\x03bob\x00\x01".to_vec(), b"v1".to_vec()), (b"s\x00\x03bob\x00\x02".to_vec(), b"v2".to_vec())]
    );
    assert_eq!(store.kt_scan(b"\xff").await.unwrap(), [(b"\xff\xff".to_vec(), b"top".to_vec())]);
    assert_eq!(store.kt_scan(b"zz").await.unwrap(), []);
    assert_eq!(store.kt_put_absent(b"k:vrf", b"one").await.unwrap(), b"one");
    assert_eq!(store.kt_put_absent(b"k:vrf", b"two").await.unwrap(), b"one", "the first value stays");
    store.kt_put(&[(b"a1".to_vec(), b"node2".to_vec())]).await.unwrap();
    assert_eq!(store.kt_get(&[b"a1".to_vec()]).await.unwrap(), [Some(b"node2".to_vec())], "a put overwrites");
    let names = store.user_names().await.unwrap();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "names in order: {names:?}");
    assert!(names.contains(&"alice".to_string()) && names.contains(&"carol".to_string()), "{names:?}");
}

/// Link requests: stored once per id, approved once, gone at expiry.
async fn links(store: &dyn Store) {
    let rec = LinkRecord { user: "carol".into(), expires_at: 1_000, request: b"req".to_vec(), approval: None };
    let id = [5u8; 16];
    assert!(store.link(&id).await.unwrap().is_none());
    assert!(!store.approve_link(&id, b"a").await.unwrap(), "no approval of an unknown request");
    assert!(store.put_link(&id, &rec).await.unwrap());
    assert!(!store.put_link(&id, &LinkRecord { user: "mallory".into(), ..rec.clone() }).await.unwrap());
    assert_eq!(store.link(&id).await.unwrap().unwrap(), rec, "an id is never re-bound");
    assert!(store.approve_link(&id, b"sealed").await.unwrap());
    assert!(!store.approve_link(&id, b"other").await.unwrap(), "approved once");
    assert_eq!(store.link(&id).await.unwrap().unwrap().approval.as_deref(), Some(&b"sealed"[..]));
    let old = [6u8; 16];
    assert!(store.put_link(&old, &LinkRecord { expires_at: 10, ..rec }).await.unwrap());
    assert_eq!(store.prune_auth(500).await.unwrap(), 1, "the expired request goes");
    assert!(store.link(&old).await.unwrap().is_none());
    assert!(store.link(&id).await.unwrap().is_some());
}

/// Device lists: version 1 first, then each next version once; never a gap,
/// never an overwrite; read back in order.
async fn device_lists(store: &dyn Store) {
    assert_eq!(store.latest_device_list("carol").await.unwrap(), None);
    assert!(!store.append_device_list("carol", 2, b"v2").await.unwrap(), "no version 2 before version 1");
    assert!(!store.append_device_list("carol", 0, b"v0").await.unwrap());
    assert!(store.append_device_list("carol", 1, b"v1").await.unwrap());
    assert!(!store.append_device_list("carol", 1, b"other v1").await.unwrap(), "a stored version is never replaced");
    assert!(!store.append_device_list("carol", 3, b"v3").await.unwrap(), "no gap");
    assert!(store.append_device_list("carol", 2, b"v2").await.unwrap());
    assert!(store.append_device_list("dave", 1, b"d1").await.unwrap());
    assert_eq!(store.latest_device_list("carol").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(store.device_lists("carol", 0).await.unwrap(), [b"v1".to_vec(), b"v2".to_vec()]);
    assert_eq!(store.device_lists("carol", 1).await.unwrap(), [b"v2".to_vec()]);
    assert!(store.device_lists("carol", 2).await.unwrap().is_empty());
    assert_eq!(store.device_lists("dave", 0).await.unwrap(), [b"d1".to_vec()]);
    assert!(store.device_lists("nobody", 0).await.unwrap().is_empty());

    // An identity reset: a new record, and the lists start again at 1.
    assert!(!store.reset_user(&user("carol", 8), b"n1").await.unwrap(), "carol is not registered yet");
    store.register_user(&user("carol", 7)).await.unwrap();
    assert!(store.reset_user(&user("carol", 8), b"n1").await.unwrap());
    assert_eq!(store.user("carol").await.unwrap().unwrap().signature_key.as_slice(), [8u8; 32]);
    assert_eq!(store.device_lists("carol", 0).await.unwrap(), [b"n1".to_vec()]);
    assert_eq!(store.latest_device_list("carol").await.unwrap().as_deref(), Some(&b"n1"[..]));
    assert!(store.append_device_list("carol", 2, b"n2").await.unwrap(), "the new chain goes on from 1");
    assert_eq!(store.device_lists("dave", 0).await.unwrap(), [b"d1".to_vec()], "other users untouched");
}

#[tokio::test]
async fn memory_store_suite() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn sled_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(SledStore::open(dir.path(), None).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_suite() {
    let Some(db) = grove_ds::testing::TestDb::create("postgres_store_suite").await else { return };
    let store = Arc::new(PgStore::open(&db.url, 4).await.unwrap());
    suite(store.clone()).await;
    // Reopening migrates nothing twice and keeps everything.
    let again = PgStore::open(&db.url, 4).await.unwrap();
    assert_eq!(again.load_group(b"g1").await.unwrap().unwrap().1, 7);
    assert!(again.user("alice").await.unwrap().is_some());
}

/// Two writers on one PostgreSQL database (two replicas): at every epoch
/// both commit, and both send an application message, at once. Exactly one
/// commit per epoch lands; application messages land (or see Conflict once
/// the epoch they were checked at has gone); no seq is taken twice or
/// skipped; the other store hears every append by notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_appends_race_across_stores() {
    let Some(db) = grove_ds::testing::TestDb::create("postgres_appends_race_across_stores").await else { return };
    let a: Arc<dyn Store> = Arc::new(PgStore::open(&db.url, 4).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::open(&db.url, 4).await.unwrap());
    let g = group(&*a, b"race").await;
    assert!(a.create_group(&g).await.unwrap());
    let mut events = b.take_events().expect("a shared store reports changes");
    assert_eq!(events.recv().await, Some(StoreEvent::Missed), "listening starts by reporting a possible gap");
    let mut by_a = 0;
    for epoch in 0..10u64 {
        let next = a.load_group(b"race").await.unwrap().unwrap().1;
        let mut rec = g.clone();
        rec.epoch = epoch + 1;
        let commit = LogEntry { kind: EntryKind::Commit, epoch, ..entry(next, 1) };
        let app = LogEntry { epoch, ..entry(next, 2) };
        let (ca, cb, xa, xb) = tokio::join!(
            a.append_commit(&rec, &commit, &[]),
            b.append_commit(&rec, &commit, &[]),
            a.append_application(g.internal_id, &app, epoch),
            b.append_application(g.internal_id, &app, epoch),
        );
        match (&ca, &cb) {
            (Ok(_), Err(StoreError::Conflict(_))) => by_a += 1,
            (Err(StoreError::Conflict(_)), Ok(_)) => {}
            other => panic!("epoch {epoch}: exactly one commit must land, got {other:?}"),
        }
        for x in [&xa, &xb] {
            assert!(matches!(x, Ok(_) | Err(StoreError::Conflict(_))), "epoch {epoch}: {x:?}");
        }
        by_a += usize::from(xa.is_ok());
    }
    let log = a.fetch_after(g.internal_id, 0, 1000, 1000).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=log.len() as u64).collect::<Vec<_>>());
    let commits: Vec<u64> = log.iter().filter(|e| e.kind == EntryKind::Commit).map(|e| e.epoch).collect();
    assert_eq!(commits, (0..10).collect::<Vec<_>>(), "one commit per epoch, in order");
    let (stored, next) = b.load_group(b"race").await.unwrap().unwrap();
    assert_eq!((stored.epoch, next), (10, log.len() as u64 + 1));
    let mut heard = 0;
    while heard < by_a {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await.expect("a notification");
        match ev {
            Some(StoreEvent::Appended { group_id, .. }) => {
                assert_eq!(group_id, b"race");
                heard += 1;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    // Proposals: the stored state is their ticket. Both replicas propose on
    // the same state, after an application message from b: exactly one lands.
    let (base, next) = a.load_group(b"race").await.unwrap().unwrap();
    let app = LogEntry { epoch: 10, ..entry(next, 3) };
    let taken = b.append_application(g.internal_id, &app, 10).await.unwrap();
    assert_eq!(taken, next);
    let proposal = LogEntry { kind: EntryKind::Proposal, epoch: 10, ..entry(next, 4) };
    let (mut pa, mut pb) = (base.clone(), base.clone());
    pa.public_state = b"state with a's proposal".to_vec().into();
    pb.public_state = b"state with b's proposal".to_vec().into();
    let (ra, rb) = tokio::join!(a.append_proposal(&base, &pa, &proposal), b.append_proposal(&base, &pb, &proposal));
    let stored = a.load_group(b"race").await.unwrap().unwrap().0;
    let a_won = match (ra, rb) {
        (Ok(s), Err(StoreError::Conflict(_))) => {
            assert_eq!((s, &stored), (next + 1, &pa), "a's proposal took the seq after b's message");
            true
        }
        (Err(StoreError::Conflict(_)), Ok(s)) => {
            assert_eq!((s, &stored), (next + 1, &pb));
            false
        }
        other => panic!("exactly one proposal on one state must land, got {other:?}"),
    };
    if a_won {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await.expect("a notification");
        assert!(matches!(ev, Some(StoreEvent::Appended { kind: EntryKind::Proposal, .. })), "{ev:?}");
    }
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), events.recv()).await;
    assert!(quiet.is_err(), "only the other store's appends are reported, not b's own: {quiet:?}");
}

#[tokio::test]
async fn sled_store_is_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let gid = b"durable".to_vec();
    let internal;
    {
        let store = SledStore::open(dir.path(), None).unwrap();
        store.register_user(&user("alice", 1)).await.unwrap();
        let g = group(&store, &gid).await;
        internal = g.internal_id;
        store.create_group(&g).await.unwrap();
        for seq in 1..=10 {
            store.append_message(internal, &entry(seq, 1), None).await.unwrap();
        }
        store.prune_log(internal, 10, 0).await.unwrap();
        // The durability mark of these writes: not durable until a flush
        // that began after them completes (the DS's batch visibility).
        let mark = store.durability_mark().expect("sled counts its flushes");
        assert!(!store.is_durable(mark), "nothing has been flushed since the writes");
        store.persist().await.unwrap();
        assert!(store.is_durable(mark), "the persist flushed them");
        assert!(!store.is_durable(store.durability_mark().unwrap()), "a later mark waits for the next flush");
        // No close(): the state must already be on disk after persist.
        std::mem::forget(store);
    }
    // sled holds a file lock until the process ends, so reopen a copy of the files.
    let copy = tempfile::tempdir().unwrap();
    for e in walk(dir.path()) {
        let rel = e.strip_prefix(dir.path()).unwrap();
        let to = copy.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&e, &to).unwrap();
    }
    let store = SledStore::open(copy.path(), None).unwrap();
    assert!(store.user("alice").await.unwrap().is_some());
    let (_, next) = store.load_group(&gid).await.unwrap().unwrap();
    assert_eq!(next, 11, "sequence numbers continue after a fully pruned log");
    assert!(store.next_internal_id().await.unwrap() > internal, "internal ids are never reused");
}

#[test]
fn sled_store_refuses_unknown_format_and_corrupt_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = grove_ds::testing::retry_sled_lock(|| sled::open(dir.path())).unwrap();
        db.open_tree("meta").unwrap().insert("format", &99u32.to_be_bytes()).unwrap();
        db.open_tree("groups").unwrap().insert(b"g", b"\xff\xff garbage").unwrap();
        db.flush().unwrap();
    }
    let err = open_retrying(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Version { found: 99, supported: 2 }), "{err}");
    {
        let db = grove_ds::testing::retry_sled_lock(|| sled::open(dir.path())).unwrap();
        db.open_tree("meta").unwrap().insert("format", &1u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    // A record that does not decode is found when the store opens, not when a
    // request first touches it.
    let err = open_retrying(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { what: "group", .. }), "{err}");
}

fn open_retrying(dir: &std::path::Path) -> Result<SledStore, StoreError> {
    grove_ds::testing::retry_sled_lock(|| SledStore::open(dir, None))
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
