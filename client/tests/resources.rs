//! Encrypted resources over a real in-process DS: put, list, get, update,
//! delete; removal; history policies; tampering; plaintext scan.

mod common;

use std::path::{Path, PathBuf};

use common::{new_client, start_ds, TestResult};
use grove_client::{Client, Error, HistoryPolicy};

const SUITE: u16 = 1;

/// Deterministic bytes that do not repeat with a short period.
fn data(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

async fn put(c: &Client, g: &str, name: &str, bytes: &[u8]) -> grove_client::ResourceInfo {
    c.put_resource(g, name, std::io::Cursor::new(bytes.to_vec()), None)
        .await
        .unwrap_or_else(|e| panic!("{} put {name}: {e}", c.user()))
}

async fn get(c: &Client, g: &str, name: &str, version: Option<u64>) -> Result<Vec<u8>, Error> {
    c.get_resource(g, name, version, Vec::new(), None).await.map(|(v, _)| v)
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

fn blob_file(ds_dir: &Path, blob_id: &str) -> PathBuf {
    files(ds_dir)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == blob_id))
        .unwrap_or_else(|| panic!("blob {blob_id} not in the DS data dir"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A group of alice and bob (and more), everyone synced.
async fn group_of(alice: &Client, others: &[&Client], policy: HistoryPolicy) -> String {
    let g = alice.create_group_with("records", policy).await.unwrap();
    let names: Vec<&str> = others.iter().map(|c| c.user()).collect();
    alice.add_members(&g, &names).await.unwrap();
    for c in others {
        c.sync().await.unwrap();
    }
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_list_get_update_delete() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice = new_client(dir.path(), &ds.url(), "alice", SUITE).await;
    let bob = new_client(dir.path(), &ds.url(), "bob", SUITE).await;
    let g = group_of(&alice, &[&bob], HistoryPolicy::None).await;

    let empty = put(&alice, &g, "empty.txt", b"").await;
    assert_eq!((empty.version, empty.size), (1, 0));
    let kib = data(1024, 1);
    let v1 = put(&alice, &g, "notes/patient-1.json", &kib).await;
    assert_eq!((v1.version, v1.size, v1.author.as_str()), (1, 1024, "alice"));
    assert!(v1.blob_size > 1024, "blob carries header and tag");

    bob.sync().await?;
    let list = bob.resources(&g)?;
    let names: Vec<(&str, u64)> = list.iter().map(|r| (r.name.as_str(), r.version)).collect();
    assert_eq!(names, [("empty.txt", 1), ("notes/patient-1.json", 1)]);
    assert_eq!(get(&bob, &g, "empty.txt", None).await?, b"");
    assert_eq!(get(&bob, &g, "notes/patient-1.json", None).await?, kib);

    // Bob updates; alice reads both versions.
    let kib2 = data(1500, 2);
    let v2 = put(&bob, &g, "notes/patient-1.json", &kib2).await;
    assert_eq!((v2.version, v2.id.as_str(), v2.author.as_str()), (2, v1.id.as_str(), "bob"));
    assert_ne!(v2.blob_id, v1.blob_id);
    alice.sync().await?;
    assert_eq!(get(&alice, &g, "notes/patient-1.json", None).await?, kib2);
    assert_eq!(get(&alice, &g, "notes/patient-1.json", Some(1)).await?, kib);
    assert!(matches!(
        get(&alice, &g, "notes/patient-1.json", Some(9)).await,
        Err(Error::UnknownResource { version: Some(9), .. })
    ));
    let versions: Vec<u64> = alice.resource_versions(&g, "notes/patient-1.json")?.iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2]);
    let hist = alice.resource_history(&g, "notes/patient-1.json")?;
    let kinds: Vec<(&str, &str, Option<u64>)> = hist.iter().map(|h| (h.kind, h.by.as_str(), h.version)).collect();
    assert_eq!(kinds, [("version", "alice", Some(1)), ("version", "bob", Some(2))]);

    // Into a file: written whole, or not at all.
    let out = dir.path().join("out.json");
    let got = bob.get_resource_to_file(&g, "notes/patient-1.json", Some(1), &out, None).await?;
    assert_eq!((got.version, std::fs::read(&out)?), (1, kib.clone()));

    // Delete: gone from every list, its blobs gone from the DS, the history keeps it.
    let gone = alice.delete_resource(&g, "notes/patient-1.json").await?;
    assert_eq!(gone.version, 2);
    bob.sync().await?;
    for c in [&alice, &bob] {
        let names: Vec<String> = c.resources(&g)?.into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["empty.txt"], "{}", c.user());
        match get(c, &g, "notes/patient-1.json", None).await {
            Err(Error::ResourceDeleted { by, .. }) => assert_eq!(by, "alice"),
            other => panic!("{}: expected a deleted resource, got {other:?}", c.user()),
        }
        let last = c.resource_history(&g, "notes/patient-1.json")?.pop().unwrap();
        assert_eq!((last.kind, last.by.as_str()), ("deleted", "alice"));
    }
    for blob in [&v1.blob_id, &v2.blob_id] {
        match bob.download_blob_for_test(&g, blob).await {
            Err(Error::Server { status: 404, code, .. }) => assert_eq!(code, "unknown_blob"),
            other => panic!("deleted blob still served: {:?}", other.map(|b| b.len())),
        }
    }
    // Deleting again sends nothing new and succeeds (it retries the blob deletions).
    let before = bob.group_resource_history(&g)?.len();
    assert_eq!(bob.delete_resource(&g, "notes/patient-1.json").await?.version, 2);
    alice.sync().await?;
    assert_eq!(alice.group_resource_history(&g)?.len(), before);

    // The name can be used again: a new resource.
    let again = put(&bob, &g, "notes/patient-1.json", b"new").await;
    assert_eq!(again.version, 1);
    assert_ne!(again.id, v1.id);

    // Bad input.
    assert!(matches!(get(&bob, &g, "nope", None).await, Err(Error::UnknownResource { .. })));
    assert!(matches!(bob.put_resource(&g, "", std::io::empty(), None).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(bob.put_resource(&g, "a\nb", std::io::empty(), None).await, Err(Error::InvalidArgument(_))));
    Ok(())
}

/// A source that fails half way: nothing is published, the error names the resource.
struct FailingReader(usize);

impl std::io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_publishes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice = new_client(dir.path(), &ds.url(), "alice", SUITE).await;
    let g = alice.create_group("solo").await?;
    match alice.put_resource(&g, "broken", FailingReader(3 << 20), None).await {
        Err(Error::ResourceIo { name, reason }) => {
            assert_eq!(name, "broken");
            assert!(reason.contains("disk on fire"), "{reason}");
        }
        other => panic!("expected a resource I/O error, got {other:?}"),
    }
    assert!(alice.resources(&g)?.is_empty());
    // No blob (complete or partial) is left in the DS data dir. The DS drops
    // the partial file when it sees the aborted body, which may be a moment
    // after the client returned.
    let leftovers = || -> Vec<PathBuf> {
        files(&dir.path().join("ds"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 32 || n.to_string_lossy().starts_with(".tmp-")))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !leftovers().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_gets_no_new_key_and_no_blob() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice = new_client(dir.path(), &ds.url(), "alice", SUITE).await;
    let bob = new_client(dir.path(), &ds.url(), "bob", SUITE).await;
    let carol = new_client(dir.path(), &ds.url(), "carol", SUITE).await;
    let g = group_of(&alice, &[&bob, &carol], HistoryPolicy::None).await;

    let old = data(4096, 3);
    let v1 = put(&alice, &g, "plan.md", &old).await;
    carol.sync().await?;
    assert_eq!(get(&carol, &g, "plan.md", None).await?, old);

    alice.remove_members(&g, &["carol"]).await?;
    let new = data(4096, 4);
    let v2 = put(&alice, &g, "plan.md", &new).await;
    assert_eq!(v2.version, 2);

    // Carol learns she was removed; she never gets the manifest of version 2.
    carol.sync().await?;
    assert_eq!(carol.group_state(&g)?.0, grove_client::GroupState::Left);
    let hers: Vec<u64> = carol.resource_versions(&g, "plan.md")?.iter().map(|v| v.version).collect();
    assert_eq!(hers, [1]);
    assert!(matches!(get(&carol, &g, "plan.md", Some(2)).await, Err(Error::UnknownResource { version: Some(2), .. })));
    // Not even the new blob's id or hash is anywhere in her local state.
    for f in files(carol.home()) {
        let bytes = std::fs::read(&f)?;
        assert!(!contains(&bytes, v2.blob_id.as_bytes()), "{} holds the new blob id", f.display());
        assert!(!contains(&bytes, v2.content_hash.as_bytes()), "{} holds the new hash", f.display());
    }
    // The DS refuses her the new blob, and the old one too.
    for blob in [&v2.blob_id, &v1.blob_id] {
        match carol.download_blob_for_test(&g, blob).await {
            Err(Error::Server { status: 403, code, .. }) => assert_eq!(code, "not_a_member"),
            other => panic!("a removed member fetched a blob: {:?}", other.map(|b| b.len())),
        }
    }
    match get(&carol, &g, "plan.md", Some(1)).await {
        Err(Error::Server { status: 403, .. }) => {}
        other => panic!("expected 403, got {other:?}"),
    }
    // Bob reads the new version.
    bob.sync().await?;
    assert_eq!(get(&bob, &g, "plan.md", None).await?, new);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_policy_none_and_share() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice = new_client(dir.path(), &ds.url(), "alice", SUITE).await;
    let bob = new_client(dir.path(), &ds.url(), "bob", SUITE).await;
    let dave = new_client(dir.path(), &ds.url(), "dave", SUITE).await;
    let erin = new_client(dir.path(), &ds.url(), "erin", SUITE).await;

    // Policy none: dave, added later, cannot read what was written before.
    let g = group_of(&alice, &[&bob], HistoryPolicy::None).await;
    let secret = data(2000, 5);
    put(&alice, &g, "before.bin", &secret).await;
    alice.add_members(&g, &["dave"]).await?;
    dave.sync().await?;
    assert_eq!(dave.history_policy(&g)?, HistoryPolicy::None);
    assert!(dave.resources(&g)?.is_empty());
    assert!(matches!(get(&dave, &g, "before.bin", None).await, Err(Error::UnknownResource { .. })));
    // What is written after he joined, he reads.
    put(&bob, &g, "after.bin", b"hello dave").await;
    dave.sync().await?;
    assert_eq!(get(&dave, &g, "after.bin", None).await?, b"hello dave");
    assert!(alice.group_resource_history(&g)?.iter().all(|h| h.kind != "shared"));

    // Bob switches the group to share: a message everyone sees.
    bob.set_history_policy(&g, HistoryPolicy::Share).await?;
    alice.sync().await?;
    dave.sync().await?;
    for c in [&alice, &bob, &dave] {
        assert_eq!(c.history_policy(&g)?, HistoryPolicy::Share, "{}", c.user());
        let last = c.group_resource_history(&g)?.pop().unwrap();
        assert_eq!((last.kind, last.by.as_str(), last.policy), ("policy", "bob", Some(HistoryPolicy::Share)));
    }
    // Alice updates before.bin, then adds erin: erin gets the current versions.
    let current = data(3000, 6);
    put(&alice, &g, "before.bin", &current).await;
    alice.add_members(&g, &["erin"]).await?;
    erin.sync().await?;
    assert_eq!(erin.history_policy(&g)?, HistoryPolicy::Share);
    let names: Vec<(String, u64)> = erin.resources(&g)?.into_iter().map(|r| (r.name, r.version)).collect();
    assert_eq!(names, [("after.bin".to_owned(), 1), ("before.bin".to_owned(), 2)]);
    assert_eq!(get(&erin, &g, "before.bin", None).await?, current);
    // Only the current version is shared, not the whole history.
    assert!(matches!(get(&erin, &g, "before.bin", Some(1)).await, Err(Error::UnknownResource { .. })));
    let info = erin.resource_versions(&g, "before.bin")?;
    assert_eq!(info[0].shared_by.as_deref(), Some("alice"));
    // The share is in everyone's history, naming the sharer and the recipient.
    for c in [&alice, &bob, &dave, &erin] {
        c.sync().await?;
        let shares: Vec<_> = c.resource_history(&g, "before.bin")?.into_iter().filter(|h| h.kind == "shared").collect();
        assert_eq!(shares.len(), 1, "{}", c.user());
        assert_eq!((shares[0].by.as_str(), shares[0].recipients.clone()), ("alice", vec!["erin".to_owned()]));
        assert_eq!((shares[0].version, shares[0].shared_resources), (Some(2), Some(2)));
    }
    // Dave (under policy none when he joined) still cannot read version 1.
    assert!(matches!(get(&dave, &g, "before.bin", Some(1)).await, Err(Error::UnknownResource { .. })));
    assert_eq!(get(&dave, &g, "before.bin", None).await?, current);

    // A group created with share: a member added later reads the earlier resources.
    let g2 = alice.create_group_with("shared-from-start", HistoryPolicy::Share).await?;
    put(&alice, &g2, "welcome.txt", b"read me").await;
    alice.add_members(&g2, &["dave"]).await?;
    dave.sync().await?;
    assert_eq!(get(&dave, &g2, "welcome.txt", None).await?, b"read me");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_and_names_the_resource() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice = new_client(dir.path(), &ds.url(), "alice", SUITE).await;
    let bob = new_client(dir.path(), &ds.url(), "bob", SUITE).await;
    let g = group_of(&alice, &[&bob], HistoryPolicy::None).await;
    let content = data(3 * (1 << 20) + 5000, 7); // four chunks
    let v = put(&alice, &g, "ledger.csv", &content).await;
    bob.sync().await?;
    let path = blob_file(&dir.path().join("ds"), &v.blob_id);
    let original = std::fs::read(&path)?;
    let chunk = (1 << 20) + 16;

    let expect_corrupt = |r: Result<Vec<u8>, Error>, what: &str| match r {
        Err(Error::ResourceCorrupt { name, version, reason }) => {
            assert_eq!((name.as_str(), version), ("ledger.csv", 1), "{what}");
            reason
        }
        other => panic!("{what}: expected a corrupt-resource error, got {:?}", other.map(|b| b.len())),
    };

    // A flipped bit.
    let mut b = original.clone();
    b[8 + chunk + 1234] ^= 0x10;
    std::fs::write(&path, &b)?;
    let reason = expect_corrupt(get(&bob, &g, "ledger.csv", None).await, "bit flip");
    assert!(reason.contains("chunk 1"), "{reason}");
    // The error message names the resource.
    let msg = get(&bob, &g, "ledger.csv", None).await.unwrap_err().to_string();
    assert!(msg.contains("ledger.csv"), "{msg}");

    // Two chunks swapped.
    let mut b = original.clone();
    let (c0, c1) = (original[8..8 + chunk].to_vec(), original[8 + chunk..8 + 2 * chunk].to_vec());
    b[8..8 + chunk].copy_from_slice(&c1);
    b[8 + chunk..8 + 2 * chunk].copy_from_slice(&c0);
    std::fs::write(&path, &b)?;
    expect_corrupt(get(&bob, &g, "ledger.csv", None).await, "swapped chunks");

    // Truncated: at a chunk boundary, and inside a chunk.
    for cut in [8 + 3 * chunk, original.len() - 100] {
        std::fs::write(&path, &original[..cut])?;
        expect_corrupt(get(&bob, &g, "ledger.csv", None).await, "truncated");
    }

    // A failed read into a file leaves the destination untouched.
    let out = dir.path().join("ledger-copy.csv");
    std::fs::write(&out, b"previous contents")?;
    assert!(bob.get_resource_to_file(&g, "ledger.csv", None, &out, None).await.is_err());
    assert_eq!(std::fs::read(&out)?, b"previous contents");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".grove-get-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Restored: reads again.
    std::fs::write(&path, &original)?;
    assert_eq!(get(&bob, &g, "ledger.csv", None).await?, content);

    // A manifest pointing to another resource's blob (and key).
    put(&alice, &g, "other.csv", &data(5000, 8)).await;
    alice.send_misdirected_manifest_for_test(&g, "ledger.csv", "other.csv").await?;
    bob.sync().await?;
    match get(&bob, &g, "ledger.csv", None).await {
        Err(Error::ResourceCorrupt { name, version, .. }) => assert_eq!((name.as_str(), version), ("ledger.csv", 2)),
        other => panic!("misdirected manifest: expected a corrupt-resource error, got {:?}", other.map(|b| b.len())),
    }
    // The earlier version is still fine.
    assert_eq!(get(&bob, &g, "ledger.csv", Some(1)).await?, content);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ds_data_dir_holds_no_names_and_no_contents() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice = new_client(dir.path(), &ds.url(), "alice", SUITE).await;
    let bob = new_client(dir.path(), &ds.url(), "bob", SUITE).await;
    let g = group_of(&alice, &[&bob], HistoryPolicy::Share).await;

    let name = "diagnosis-of-zebulon-quartermaine.txt";
    let text = b"Zebulon Quartermaine: confidential diagnosis, do not disclose. ".repeat(40);
    let big_name = "tax-return-xylophone-2026.pdf";
    let big = data(2 * (1 << 20) + 77, 9);
    put(&alice, &g, name, &text).await;
    put(&alice, &g, big_name, &big).await;
    bob.sync().await?;
    assert_eq!(get(&bob, &g, name, None).await?, text);
    assert_eq!(get(&bob, &g, big_name, None).await?, big);
    let carol = new_client(dir.path(), &ds.url(), "carol", SUITE).await;
    alice.add_members(&g, &["carol"]).await?; // a key bundle goes through the DS too
    carol.sync().await?;
    assert_eq!(get(&carol, &g, name, None).await?, text);

    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("name", name.as_bytes().to_vec()),
        ("big name", big_name.as_bytes().to_vec()),
        ("contents", b"Zebulon Quartermaine".to_vec()),
        ("big contents", big[1_000_000..1_000_064].to_vec()),
    ];
    let ds_files = files(&dir.path().join("ds"));
    assert!(ds_files.len() > 2, "the DS wrote files");
    for f in &ds_files {
        let bytes = std::fs::read(f)?;
        for (what, needle) in &needles {
            assert!(!contains(&bytes, needle), "the {what} appears in {}", f.display());
        }
    }
    // The clients' own stores do hold them (the scan would find them).
    let bob_has = files(bob.home()).iter().any(|f| contains(&std::fs::read(f).unwrap_or_default(), name.as_bytes()));
    assert!(bob_has, "the scan cannot find the name even where it is stored");
    Ok(())
}
