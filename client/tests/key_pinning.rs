//! Key substitution: a proxy in front of the DS acts as a malicious DS and
//! serves another key (lookup, with the DS's key directory publishing it
//! too, so that the lookup proof passes) or a KeyPackage signed by another
//! key for a pinned user. `add` fails with the key-change error naming the user and both
//! fingerprints; after `trust_new_key` it succeeds. Safety numbers match.

mod common;

use common::{config, evil, new_client, start_ds, TestResult};
use grove_client::{Client, Error};

fn key_changed(r: Result<impl std::fmt::Debug, Error>) -> (String, String, String) {
    match r {
        Err(Error::KeyChanged { user, pinned, seen }) => (user, pinned, seen),
        other => panic!("expected a key change error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substituted_key_is_refused_until_trusted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (proxy_url, evil, fp_mallory) = evil::start(&url).await;

    let alice = Client::create(dir.path().join("alice"), config(&proxy_url, "alice", 1)).await?;
    let bob = new_client(dir.path(), &url, "bob", 1).await;
    let fp_bob = bob.whoami().fingerprint;

    // 1. Pinned key B; the DS now serves a KeyPackage signed by mallory's key.
    alice.lookup_user("bob").await?;
    alice.create_group("g").await?;
    evil.claim(true);
    let (user, pinned, seen) = key_changed(alice.add_members("g", &["bob"]).await);
    assert_eq!((user.as_str(), pinned.as_str(), seen.as_str()), ("bob", fp_bob.as_str(), fp_mallory.as_str()));
    let msg = alice.add_members("g", &["bob"]).await.unwrap_err().to_string();
    assert!(msg.contains("bob") && msg.contains(&fp_bob) && msg.contains(&fp_mallory), "{msg}");
    assert_eq!(alice.members("g")?.len(), 1, "nothing was committed");
    assert!(bob.sync().await?.joined.is_empty());

    // 2. The lookup is swapped too: same error, and it stays until a decision,
    //    even once the DS behaves again; verify is refused as well.
    evil.lookup_everywhere(&ds, true).await;
    key_changed(alice.add_members("g", &["bob"]).await);
    evil.lookup_everywhere(&ds, false).await;
    evil.claim(false);
    let (_, pinned, seen) = key_changed(alice.add_members("g", &["bob"]).await);
    assert_eq!((pinned, seen), (fp_bob.clone(), fp_mallory.clone()));
    key_changed(alice.verify("bob", false).await);

    // 3. A fresh client whose first sight of bob was the substituted key (TOFU
    //    pinned mallory's): the real KeyPackage is then refused; after checking
    //    out of band, trusting the new key makes the add succeed.
    let carol = Client::create(dir.path().join("carol"), config(&proxy_url, "carol", 1)).await?;
    evil.lookup_everywhere(&ds, true).await;
    assert_eq!(carol.lookup_user("bob").await?.fingerprint, fp_mallory);
    evil.lookup_everywhere(&ds, false).await;
    carol.create_group("c").await?;
    let (user, pinned, seen) = key_changed(carol.add_members("c", &["bob"]).await);
    assert_eq!((user.as_str(), pinned.as_str(), seen.as_str()), ("bob", fp_mallory.as_str(), fp_bob.as_str()));
    let info = carol.trust_new_key("bob").await?;
    assert_eq!(info.fingerprint, fp_bob);
    assert!(!info.verified);
    let out = carol.add_members("c", &["bob"]).await?;
    assert!(out.committed);
    assert_eq!(bob.sync().await?.joined.len(), 1);

    // 4. A joiner who pinned the substituted key sees bob's real key in the
    //    group: bob shows as changed and sending to the group is refused
    //    until the joiner decides.
    let erin = Client::create(dir.path().join("erin"), config(&proxy_url, "erin", 1)).await?;
    evil.lookup_everywhere(&ds, true).await;
    erin.lookup_user("bob").await?;
    evil.lookup_everywhere(&ds, false).await;
    carol.add_members("c", &["erin"]).await?;
    erin.sync().await?;
    let bob_status = erin.members("c")?.into_iter().find(|m| m.user == "bob").ok_or("bob")?.key;
    assert_eq!(bob_status, grove_client::KeyStatus::Changed);
    let (user, pinned, seen) = key_changed(erin.send("c", "hi").await);
    assert_eq!((user.as_str(), pinned.as_str(), seen.as_str()), ("bob", fp_mallory.as_str(), fp_bob.as_str()));
    erin.trust_new_key("bob").await?;
    erin.send("c", "hi").await?;

    // Safety numbers agree on both sides; --confirm marks verified.
    let s1 = carol.verify("bob", true).await?;
    let s2 = bob.verify("carol", false).await?;
    assert_eq!(s1.number, s2.number);
    assert!(s1.verified);
    assert_eq!(s1.number.split(' ').count(), 12);
    ds.shutdown().await?;
    Ok(())
}
