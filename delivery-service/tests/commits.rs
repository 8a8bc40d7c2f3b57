//! One commit per epoch: racing commits, exactly one wins, everyone converges.

mod common;

use common::*;
use grove_ds::api;
use openmls::prelude::*;
use tls_codec::Deserialize as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_racing_commits_one_wins_all_converge() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let names: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    let mut peers = Vec::new();
    for n in &names {
        let p = Peer::join(&url, n, suite).await;
        assert_eq!(p.upload_key_packages(1, false).await.status, 201);
        peers.push(p);
    }
    let (mut g0, gid) = peers[0].create_group().await;
    let others: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    assert_eq!(peers[0].add(&mut g0, &gid, &others).await.status, 201);
    let mut groups = vec![g0];
    for p in &peers[1..] {
        groups.push(p.accept_welcome(&gid).await);
    }
    let epoch = groups[0].epoch().as_u64();

    // Every member builds a self-update commit for the same epoch ...
    let mut bundles = Vec::new();
    for (p, g) in peers.iter().zip(groups.iter_mut()) {
        let b = g.self_update(&p.provider, &p.signer, LeafNodeParameters::default()).unwrap();
        bundles.push(b);
    }
    // ... and they all post at once.
    let mut tasks = Vec::new();
    for (p, b) in peers.iter().zip(bundles.iter()) {
        tasks.push(p.post_commit_bundle(&gid, b));
    }
    let results = futures_util::future::join_all(tasks).await;
    let won: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.status == 201).map(|(i, _)| i).collect();
    let lost: Vec<&Resp> = results.iter().filter(|r| r.status == 409).collect();
    assert_eq!(won.len(), 1, "exactly one commit wins: {:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(lost.len(), 7);
    for r in &lost {
        assert_eq!(r.code(), "stale_epoch");
        assert_eq!(r.json()["current_epoch"], epoch + 1);
    }

    // The winner merges; the losers drop their commit and process the log.
    for (i, (p, g)) in peers.iter().zip(groups.iter_mut()).enumerate() {
        if i == won[0] {
            g.merge_pending_commit(&p.provider).unwrap();
        } else {
            g.clear_pending_commit(openmls_traits::OpenMlsProvider::storage(&p.provider)).unwrap();
            let mut cursor = 1;
            p.sync(g, &gid, &mut cursor).await;
        }
    }
    let auth0 = groups[0].epoch_authenticator().as_slice().to_vec();
    for g in &groups {
        assert_eq!(g.epoch().as_u64(), epoch + 1);
        assert_eq!(g.epoch_authenticator().as_slice(), auth0.as_slice(), "all members agree on the epoch");
    }

    // A loser retries on the new epoch and succeeds.
    let loser = (0..8).find(|i| *i != won[0]).unwrap();
    let retry =
        groups[loser].self_update(&peers[loser].provider, &peers[loser].signer, LeafNodeParameters::default()).unwrap();
    let r = peers[loser].post_commit_bundle(&gid, &retry).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_hand_out_a_package_twice() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let bob = Peer::join(&url, "bob", suite).await;
    assert_eq!(bob.upload_key_packages(40, true).await.status, 201);
    let mut claimers = Vec::new();
    for i in 0..4 {
        claimers.push(Peer::join(&url, &format!("claimer{i}"), suite).await);
    }
    let mut tasks = Vec::new();
    for i in 0..60 {
        let c = &claimers[i % 4];
        tasks.push(send(c.post("/v1/key-packages/bob/claim?ciphersuite=1")));
    }
    let results = futures_util::future::join_all(tasks).await;
    let mut one_time = std::collections::HashSet::new();
    let mut last_resort = 0;
    for r in &results {
        assert_eq!(r.status, 200);
        match r.headers.get("grove-key-package-kind").unwrap().to_str().unwrap() {
            "one-time" => assert!(one_time.insert(r.body.clone()), "a one-time package was handed out twice"),
            "last-resort" => last_resort += 1,
            k => panic!("unknown kind {k}"),
        }
    }
    assert_eq!(one_time.len(), 40);
    assert_eq!(last_resort, 20);
    let count = send(bob.get("/v1/key-packages?ciphersuite=1")).await.json();
    assert_eq!(count["one_time"], 0);
    assert_eq!(count["last_resort"], true);
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_key_packages_are_never_handed_out() {
    use openmls::prelude::*;
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let bob = Peer::join(&url, "bob", suite).await;
    let alice = Peer::join(&url, "alice", suite).await;
    let short = KeyPackage::builder()
        .key_package_lifetime(Lifetime::new(1))
        .build(suite, &bob.provider, &bob.signer, bob.cwk.clone())
        .unwrap()
        .key_package()
        .clone();
    let long = bob.key_package(false);
    let body = Peer::kp_upload_body(&[short, long.clone()]);
    let r =
        send(bob.post("/v1/key-packages").header("content-type", grove_ds::api::MEDIA_KEY_PACKAGES).body(body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // The short-lived package (uploaded first) has expired: it is skipped and purged.
    let claimed = alice.claim("bob").await;
    assert_eq!(claimed, long);
    let r = send(alice.post("/v1/key-packages/bob/claim?ciphersuite=1")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "no_key_package"));
    assert_eq!(send(bob.get("/v1/key-packages?ciphersuite=1")).await.json()["one_time"], 0);
    ds.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_are_validated_logged_and_committed_by_reference() {
    use openmls::prelude::*;
    use tls_codec::Serialize as _;
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let bob = Peer::join(&url, "bob", suite).await;
    bob.upload_key_packages(1, false).await;
    let (mut ag, gid) = alice.create_group().await;
    assert_eq!(alice.add(&mut ag, &gid, &["bob"]).await.status, 201);
    let mut bg = bob.accept_welcome(&gid).await;

    // Bob leaves: a self-remove proposal, as PublicMessage.
    let leave = bg.leave_group(&bob.provider, &bob.signer).unwrap().tls_serialize_detached().unwrap();
    let r = bob.post_raw(&gid, leave.clone()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let proposal_seq = r.json()["seq"].as_u64().unwrap();
    // A tampered proposal is refused.
    let mut forged = leave.clone();
    let at = forged.len() - (1 + 1 + 32) - 10; // inside the signature, before the membership tag
    forged[at] ^= 1;
    let r = bob.post_raw(&gid, forged).await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_proposal"));
    // Alice receives it from the log and commits it by reference; the DS
    // accepts the commit because it queued the proposal itself.
    let mut ac = 1;
    alice.sync(&mut ag, &gid, &mut ac).await;
    assert_eq!(ac, proposal_seq);
    let fetched = alice.fetch(&gid, 1).await.json();
    assert_eq!(fetched["messages"][0]["kind"], "proposal");
    let (commit, welcome, gi) = ag.commit_to_pending_proposals(&alice.provider, &alice.signer).unwrap();
    assert!(welcome.is_none());
    let r = alice.post_bundle(&gid, &commit, None, gi.map(MlsMessageOut::from).as_ref()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    ag.merge_pending_commit(&alice.provider).unwrap();
    let roster = send(alice.get(&format!("/v1/groups/{gid}"))).await.json();
    assert_eq!(roster["members"].as_array().unwrap().len(), 1, "bob is gone");
    let page = bob.fetch(&gid, 0).await.json();
    assert_eq!(page["removed_at"], r.json()["seq"]);
    ds.shutdown().await.unwrap();
}

/// An external commit of `peer` (with a fresh provider: its state is lost)
/// on the GroupInfo `gi`: the group it would have, and the commit's bundle.
fn external_commit(peer: &Peer, gi: &[u8]) -> (MlsGroup, MlsMessageOut, Option<MlsMessageOut>) {
    let MlsMessageBodyIn::GroupInfo(vgi) = MlsMessageIn::tls_deserialize_exact(gi).unwrap().extract() else {
        panic!("not a GroupInfo")
    };
    let (group, bundle) = MlsGroup::external_commit_builder()
        .with_config(Peer::join_config())
        .build_group(&peer.provider, vgi, peer.cwk.clone())
        .unwrap()
        .load_psks(peer.provider.storage())
        .unwrap()
        .build(peer.provider.rand(), peer.provider.crypto(), &peer.signer, |_| true)
        .unwrap()
        .finalize(&peer.provider)
        .unwrap();
    let gi = bundle.group_info().cloned().map(MlsMessageOut::from);
    (group, bundle.commit().clone(), gi)
}

/// External commits are resyncs only (docs/api.md §5.14): a current member
/// replacing its own leaf is accepted and the others follow it; a removed
/// member and a user who never was a member are refused, even holding a
/// current GroupInfo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_commits_resync_members_and_refuse_everyone_else() {
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let bob = Peer::join(&url, "bob", suite).await;
    let carol = Peer::join(&url, "carol", suite).await;
    let dave = Peer::join(&url, "dave", suite).await;
    for p in [&bob, &carol] {
        assert_eq!(p.upload_key_packages(1, false).await.status, 201);
    }
    let (mut ga, gid) = alice.create_group().await;
    assert_eq!(alice.add(&mut ga, &gid, &["bob", "carol"]).await.status, 201);
    let _lost = bob.accept_welcome(&gid).await;
    let _gc = carol.accept_welcome(&gid).await;
    let group_info = |p: &Peer| {
        let r = p.get(&api::routes::group_info(&gid_of(&gid)));
        async move { send(r).await }
    };

    // Bob lost his state: he rejoins from the GroupInfo the DS serves him.
    let r = group_info(&bob).await;
    assert_eq!(r.status, 200);
    let fresh = Peer { provider: openmls_rust_crypto::OpenMlsRustCrypto::default(), ..bob };
    let (mut gb2, commit, gi) = external_commit(&fresh, &r.body);
    let r = fresh.post_bundle(&gid, &commit, None, gi.as_ref()).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let mut cb = r.json()["seq"].as_u64().unwrap();
    let mut ca = 0;
    alice.sync(&mut ga, &gid, &mut ca).await;
    assert_eq!(ga.epoch(), gb2.epoch(), "alice follows bob's external commit");
    assert_eq!(ga.members().count(), 3, "bob's old leaf is replaced, not added to");
    assert_eq!(alice.send_text(&mut ga, &gid, "hi bob").await.status, 201);
    assert_eq!(fresh.sync(&mut gb2, &gid, &mut cb).await, vec!["hi bob".to_string()]);

    // Carol is removed; she cannot rejoin, not even with a leaked GroupInfo.
    assert_eq!(alice.remove(&mut ga, &gid, &["carol"]).await.status, 201);
    assert_eq!(group_info(&carol).await.status, 403, "the GroupInfo is for members only");
    let leaked = group_info(&alice).await.body;
    let (_, commit, gi) = external_commit(&carol, &leaked);
    let r = carol.post_bundle(&gid, &commit, None, gi.as_ref()).await;
    assert_eq!((r.status, r.code()), (403, "not_a_member".to_string()));
    // Nor can dave, who never was a member.
    let (_, commit, gi) = external_commit(&dave, &leaked);
    let r = dave.post_bundle(&gid, &commit, None, gi.as_ref()).await;
    assert_eq!((r.status, r.code()), (403, "not_a_member".to_string()));
    assert_eq!(alice.sync(&mut ga, &gid, &mut ca).await, Vec::<String>::new());
    assert_eq!(ga.members().count(), 2);
}

/// Commit reports (docs/api.md §5.23): signed by a member, about a stored
/// commit; counted per member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_reports_are_signed_by_members_about_stored_commits() {
    use openmls_traits::signatures::Signer as _;
    let suite = SUITES[0];
    let dir = tempfile::tempdir().unwrap();
    let ds = start(dir.path()).await;
    let url = ds.url();
    let alice = Peer::join(&url, "alice", suite).await;
    let bob = Peer::join(&url, "bob", suite).await;
    let eve = Peer::join(&url, "eve", suite).await;
    assert_eq!(bob.upload_key_packages(1, false).await.status, 201);
    let (mut ga, gid) = alice.create_group().await;
    let add = alice.add(&mut ga, &gid, &["bob"]).await;
    let commit_seq = add.json()["seq"].as_u64().unwrap();
    let _gb = bob.accept_welcome(&gid).await;
    let app_seq = alice.send_text(&mut ga, &gid, "hi").await.json()["seq"].as_u64().unwrap();
    let report = |p: &Peer, seq: u64, forge: bool| {
        let mut req = api::CommitReportRequest {
            seq,
            epoch: if seq == commit_seq { 0 } else { 1 },
            committer: "alice".into(),
            reason: "The confirmation tag is invalid.".into(),
            signature: Vec::new(),
        };
        let signer = if forge { &eve.signer } else { &p.signer };
        req.signature = signer.sign(&req.signed_data(&p.name, &gid_of(&gid))).unwrap();
        send(p.post(&api::routes::reports(&gid_of(&gid))).json(&req))
    };
    let r = report(&bob, commit_seq, false).await;
    assert_eq!((r.status, r.json()["reporters"].as_u64()), (201, Some(1)), "{}", String::from_utf8_lossy(&r.body));
    // Again from bob: still one reporter; then alice: two.
    assert_eq!(report(&bob, commit_seq, false).await.json()["reporters"], 1);
    assert_eq!(report(&alice, commit_seq, false).await.json()["reporters"], 2);
    let r = report(&bob, commit_seq, true).await;
    assert_eq!((r.status, r.code()), (401, "bad_signature".to_string()));
    let r = report(&bob, app_seq, false).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request".to_string()), "not a commit");
    let r = report(&bob, 999, false).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request".to_string()), "no such entry");
    let mut wrong_epoch = api::CommitReportRequest {
        seq: commit_seq,
        epoch: 5,
        committer: "alice".into(),
        reason: String::new(),
        signature: Vec::new(),
    };
    wrong_epoch.signature = bob.signer.sign(&wrong_epoch.signed_data("bob", &gid_of(&gid))).unwrap();
    let r = send(bob.post(&api::routes::reports(&gid_of(&gid))).json(&wrong_epoch)).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request".to_string()), "the commit is of epoch 0");
    let r = report(&eve, commit_seq, false).await;
    assert_eq!((r.status, r.code()), (403, "not_a_member".to_string()));
}
