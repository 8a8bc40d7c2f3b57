//! Recovery from a commit members cannot process (issue 14): mallory, a
//! member running her own openmls code, posts a self-update whose
//! confirmation tag is corrupted. The DS cannot check that tag (it needs the
//! epoch's secrets), but it checks that the GroupInfo of the bundle carries
//! the same tag: a commit whose GroupInfo disagrees is refused outright. So
//! mallory corrupts both and signs the GroupInfo again; the DS accepts it.
//! Alice and bob then cannot process the commit: each reports it to the DS
//! (signed), skips it, and resyncs by an external commit. The group works
//! again, and alice can remove mallory. (The DS also refuses a GroupInfo
//! no one could resync from: one whose `external_pub` key is unusable.)

mod common;
#[path = "common/peer.rs"]
mod peer;

use common::{config, start_ds, texts, TestResult};
use grove_client::Client;
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use peer::{gid_path, send, Peer, SUITE};
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

/// Flips the last byte of the confirmation tag of a commit (a PublicMessage
/// from a member ends with the confirmation tag, then the membership tag,
/// each a 1-byte length and 32 bytes with SHA-256).
fn corrupt_commit_tag(commit: &mut [u8]) {
    let n = commit.len();
    assert_eq!((commit[n - 66], commit[n - 33]), (32, 32), "tag layout");
    commit[n - 34] ^= 0x01;
}

/// Where a GroupInfo MLSMessage's confirmation tag starts, and where its
/// to-be-signed part ends (the tag, then the signer's leaf index).
fn group_info_layout(gi: &[u8]) -> (VerifiableGroupInfo, usize, usize) {
    let vgi = VerifiableGroupInfo::tls_deserialize_exact(&gi[4..]).unwrap();
    let tag = 4 + vgi.group_context().tls_serialized_len() + vgi.extensions().tls_serialized_len();
    assert_eq!(gi[tag], 32, "tag length");
    (vgi, tag, tag + 33 + 4)
}

/// Signs a changed GroupInfo again with `signer` (SignWithLabel
/// "GroupInfoTBS", RFC 9420 §5.1.2), as its malicious committer can.
fn resign(gi: &[u8], tbs_end: usize, signer: &impl openmls_traits::signatures::Signer) -> Vec<u8> {
    let mut out = gi[..tbs_end].to_vec();
    let label = VLBytes::new(b"MLS 1.0 GroupInfoTBS".to_vec()).tls_serialize_detached().unwrap();
    let content = VLBytes::new(out[4..].to_vec()).tls_serialize_detached().unwrap();
    let sig = signer.sign(&[label, content].concat()).unwrap();
    out.extend(VLBytes::new(sig).tls_serialize_detached().unwrap());
    out
}

/// The GroupInfo with the same corrupted confirmation tag, signed again.
fn corrupt_group_info_tag(gi: &[u8], signer: &impl openmls_traits::signatures::Signer) -> Vec<u8> {
    let (_, tag, end) = group_info_layout(gi);
    let mut gi = gi.to_vec();
    gi[tag + 32] ^= 0x01;
    resign(&gi, end, signer)
}

/// The GroupInfo with its `external_pub` key zeroed (not a usable X25519
/// key: no one could resync from it), signed again.
fn zero_external_pub(gi: &[u8], signer: &impl openmls_traits::signatures::Signer) -> Vec<u8> {
    let (vgi, _, end) = group_info_layout(gi);
    let key = vgi.extensions().external_pub().expect("external_pub").external_pub().as_slice().to_vec();
    let at = gi.windows(key.len()).position(|w| w == key.as_slice()).expect("the key's bytes");
    let mut gi = gi.to_vec();
    gi[at..at + key.len()].fill(0);
    resign(&gi, end, signer)
}

async fn post_bundle(mallory: &Peer, gid: &[u8], commit: Vec<u8>, gi: Vec<u8>) -> (u16, String) {
    let body =
        grove_proto::CommitBundleBody { commit: commit.into(), welcome: Vec::new().into(), group_info: gi.into() };
    let r = send(
        mallory
            .post(&format!("/v1/groups/{}/commits", gid_path(gid)))
            .header("content-type", grove_proto::MEDIA_COMMIT_BUNDLE)
            .body(body.tls_serialize_detached().unwrap()),
    )
    .await;
    let code = if r.status >= 400 { r.json()["code"].as_str().unwrap_or_default().to_owned() } else { String::new() };
    (r.status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_recover_from_a_commit_with_a_corrupted_confirmation_tag() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let suite = u16::from(SUITE);
    let alice = Client::create(dir.path().join("alice"), config(&url, "alice", suite)).await?;
    let bob = Client::create(dir.path().join("bob"), config(&url, "bob", suite)).await?;
    let mut mallory = Peer::join(&url, "mallory").await;
    mallory.upload(&[mallory.key_package(false, false)]).await.expect(201);
    alice.create_group("g").await?;
    alice.add_members("g", &["bob", "mallory"]).await?;
    bob.sync().await?;
    let gid = alice.resolve_group("g")?;
    let mut group = mallory.accept_welcome(&gid).await;
    mallory.sync(&mut group).await;
    alice.send("g", "hello").await?;
    bob.sync().await?;
    mallory.sync(&mut group).await;
    let epoch = group.epoch().as_u64();

    // Mallory's self-update, its confirmation tag corrupted.
    let bundle = group.self_update(&mallory.provider, &mallory.signer, LeafNodeParameters::default())?;
    let mut commit = bundle.commit().tls_serialize_detached()?;
    let gi = MlsMessageOut::from(bundle.group_info().expect("a GroupInfo").clone()).tls_serialize_detached()?;
    corrupt_commit_tag(&mut commit);
    // With the GroupInfo left as it was, the DS sees the disagreement.
    assert_eq!(post_bundle(&mallory, &gid, commit.clone(), gi.clone()).await, (400, "invalid_group_info".into()));
    // Nor a GroupInfo no one could resync from.
    let unusable = zero_external_pub(&gi, &mallory.signer);
    let good_commit = bundle.commit().tls_serialize_detached()?;
    assert_eq!(post_bundle(&mallory, &gid, good_commit, unusable).await, (400, "invalid_group_info".into()));
    // With both corrupted alike (and the GroupInfo signed again), it cannot.
    let bad_gi = corrupt_group_info_tag(&gi, &mallory.signer);
    assert_eq!(post_bundle(&mallory, &gid, commit, bad_gi).await, (201, String::new()));

    // Alice and bob each report it, skip it, and resync.
    let a = alice.sync().await?;
    assert_eq!(a.bad_commits.len(), 1, "{a:?}");
    assert!(a.bad_commits[0].contains("by mallory"), "{a:?}");
    assert_eq!(a.resynced.len(), 1, "{a:?}");
    assert!(a.errors.is_empty(), "{a:?}");
    let b = bob.sync().await?;
    assert_eq!((b.bad_commits.len(), b.resynced.len()), (1, 1), "{b:?}");
    let gid_text = alice.groups()?[0].id.clone();
    assert!(b.bad_commits[0].starts_with(&format!("{gid_text}: seq ")), "{b:?}");
    assert!(bob.epoch(&gid)? >= epoch + 3, "mallory's commit, alice's and bob's resyncs");

    // The group works again: alice and bob read each other.
    alice.sync().await?;
    alice.send("g", "we are back").await?;
    bob.sync().await?;
    assert_eq!(texts(&bob, "g").last().map(String::as_str), Some("alice: we are back"));
    bob.send("g", "indeed").await?;
    alice.sync().await?;
    assert_eq!(texts(&alice, "g").last().map(String::as_str), Some("bob: indeed"));
    // The user confirms, and mallory is removed.
    assert!(alice.remove_members("g", &["mallory"]).await?.committed);
    bob.sync().await?;
    assert_eq!(bob.members("g")?.len(), 2);
    alice.send("g", "without mallory").await?;
    bob.sync().await?;
    assert_eq!(texts(&bob, "g").last().map(String::as_str), Some("alice: without mallory"));
    Ok(())
}
