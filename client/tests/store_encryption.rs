//! A client home encrypted at rest under the app's store key, over a real
//! DS: nothing the user wrote, no group name or id, no user name and no key
//! is on disk in clear; a wrong or missing key is refused and changes
//! nothing; a home in clear is encrypted when first opened with a key.

mod common;

use std::path::Path;

use common::{config, start_ds, texts, TestResult};
use grove_client::{open_identity_backup, Client, StoreKey};

const ALICE: &str = "alicia-marsh";
const BOB: &str = "roberta-quill";
const GROUP: &str = "project-nightingale";
const FROM_BOB: &str = "the launch code is 4242";
const FROM_ALICE: &str = "meet at the north gate";
const RECORD: &[u8] = b"blood type AB negative, allergic to penicillin";

/// The needles of `alice`'s home that are on disk in clear.
fn in_clear(home: &Path, needles: &[(&str, Vec<u8>)]) -> Vec<String> {
    let bytes = common::disk_bytes(home);
    needles
        .iter()
        .filter(|(_, n)| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|(what, _)| what.to_string())
        .collect()
}

/// What must never be on disk in clear in alice's home: group name and id,
/// both user names, the messages, the resource, alice's identity key.
fn secrets(alice: &Client, group_id: &str) -> Vec<(&'static str, Vec<u8>)> {
    let backup = alice.identity_backup("correct horse battery staple").unwrap();
    let identity = open_identity_backup(&backup, "correct horse battery staple").unwrap();
    vec![
        ("group name", GROUP.as_bytes().to_vec()),
        ("group id", grove_proto::group_id_from_path(group_id).unwrap()),
        ("group id (base64url)", group_id.as_bytes().to_vec()),
        ("alice's name", ALICE.as_bytes().to_vec()),
        ("bob's name", BOB.as_bytes().to_vec()),
        ("bob's message", FROM_BOB.as_bytes().to_vec()),
        ("alice's message", FROM_ALICE.as_bytes().to_vec()),
        ("resource content", RECORD.to_vec()),
        ("resource name", b"patient-record.txt".to_vec()),
        ("identity key", identity.identity_key.clone()),
    ]
}

/// Alice (home `alice_home`, key `key`) and bob in a group; messages both
/// ways and a resource. Returns the group id.
async fn converse(alice: &Client, bob: &Client) -> TestResult<String> {
    let gid = alice.create_group(GROUP).await?;
    alice.add_members(GROUP, &[BOB]).await?;
    bob.sync().await?;
    bob.send(GROUP, FROM_BOB).await?;
    alice.sync().await?;
    alice.send(GROUP, FROM_ALICE).await?;
    alice.put_resource(GROUP, "patient-record.txt", std::io::Cursor::new(RECORD.to_vec()), None).await?;
    bob.sync().await?;
    Ok(gid)
}

#[tokio::test]
async fn an_encrypted_home_holds_nothing_in_clear_and_needs_its_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let key = StoreKey::generate();
    let alice_home = dir.path().join("alice");
    let mut cfg = config(&ds.url(), ALICE, 1);
    cfg.store_key = Some(key.clone());
    let alice = Client::create(&alice_home, cfg).await?;
    let bob = Client::create(dir.path().join("bob"), config(&ds.url(), BOB, 1)).await?;
    let gid = converse(&alice, &bob).await?;
    let needles = secrets(&alice, &gid);

    // While it runs (the journal holds the last commits) and after it closes.
    assert_eq!(in_clear(&alice_home, &needles), Vec::<String>::new());
    drop(alice);
    assert_eq!(in_clear(&alice_home, &needles), Vec::<String>::new());
    // The check itself finds them in bob's home, which is in clear.
    let bob_clear = in_clear(&dir.path().join("bob"), &needles[..8]);
    assert!(bob_clear.contains(&"bob's message".to_string()), "{bob_clear:?}");

    let err = Client::open(&alice_home).unwrap_err();
    assert_eq!(err.code(), "store_key_required", "{err}");
    let err = Client::open_with_key(&alice_home, Some(StoreKey::generate())).unwrap_err();
    assert_eq!(err.code(), "wrong_store_key", "{err}");
    assert!(!err.is_retryable());

    let alice = Client::open_with_key(&alice_home, Some(key))?;
    let expected = vec![format!("{BOB}: {FROM_BOB}"), format!("{ALICE}: {FROM_ALICE}")];
    assert_eq!(texts(&alice, GROUP), expected, "nothing was lost or changed by the refused opens");
    let mut content = Vec::new();
    (content, _) = alice.get_resource(GROUP, "patient-record.txt", None, content, None).await?;
    assert_eq!(content, RECORD);
    alice.send(GROUP, "still here").await?;
    bob.sync().await?;
    assert_eq!(texts(&bob, GROUP).last().map(String::as_str), Some(format!("{ALICE}: still here").as_str()));
    Ok(())
}

#[tokio::test]
async fn a_home_in_clear_is_encrypted_when_opened_with_a_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let alice_home = dir.path().join("alice");
    let alice = Client::create(&alice_home, config(&ds.url(), ALICE, 1)).await?;
    let bob = Client::create(dir.path().join("bob"), config(&ds.url(), BOB, 1)).await?;
    let gid = converse(&alice, &bob).await?;
    let needles = secrets(&alice, &gid);
    drop(alice);
    let before = in_clear(&alice_home, &needles);
    assert!(before.contains(&"bob's message".to_string()), "starts in clear: {before:?}");

    let key = StoreKey::generate();
    let alice = Client::open_with_key(&alice_home, Some(key.clone()))?;
    assert_eq!(texts(&alice, GROUP), vec![format!("{BOB}: {FROM_BOB}"), format!("{ALICE}: {FROM_ALICE}")]);
    alice.send(GROUP, "after the switch").await?;
    bob.sync().await?;
    drop(alice);
    assert_eq!(in_clear(&alice_home, &needles), Vec::<String>::new());
    assert_eq!(Client::open(&alice_home).unwrap_err().code(), "store_key_required");
    let alice = Client::open_with_key(&alice_home, Some(key))?;
    bob.send(GROUP, "welcome back").await?;
    alice.sync().await?;
    assert_eq!(texts(&alice, GROUP).last().map(String::as_str), Some(format!("{BOB}: welcome back").as_str()));
    Ok(())
}
