//! Several devices of one user through the `grove` binary (issue 11's CLI
//! contract): `init --link` on a new home, `device approve CODE --yes` on an
//! existing one, `sync` completing the link (the new device joins the
//! user's groups), groups holding every device of a user, a replayed link
//! code refused, and `device revoke` shutting a device out of what follows.

#[path = "../../client/tests/common/mod.rs"]
mod common;
mod support;

use common::start_ds;
use serde_json::Value;
use support::{grove, ok};

fn texts(read: &Value) -> Vec<String> {
    read["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap_or_default().to_owned()).collect()
}

fn alice_devices(members: &Value) -> u64 {
    members["members"].as_array().unwrap().iter().find(|m| m["user"] == "alice").unwrap()["devices"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_link_approve_sync_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (phone, laptop, bob) = (dir.path().join("phone"), dir.path().join("laptop"), dir.path().join("bob"));
    tokio::task::spawn_blocking(move || {
        ok(&phone, &["init", "--server", &url, "--user", "alice"]);
        ok(&bob, &["init", "--server", &url, "--user", "bob"]);
        ok(&phone, &["group", "create", "ops"]);
        ok(&phone, &["group", "add", "ops", "bob"]);
        ok(&bob, &["sync"]);

        // The new device asks to be linked and shows its codes.
        let req = ok(&laptop, &["init", "--server", &url, "--user", "alice", "--link", "--device-name", "laptop"]);
        let code = req["link_code"].as_str().unwrap().to_owned();
        let compare = req["compare"].as_str().unwrap().to_owned();
        assert!(code.starts_with("grove-link-v1:alice:"), "{code}");
        // Running it again shows the same request.
        assert_eq!(ok(&laptop, &["init", "--server", &url, "--user", "alice", "--link"])["link_code"], code.as_str());
        // Before the approval, the new device can do nothing but wait.
        let early = grove(&laptop, &["sync"]);
        assert!(!early.ok);
        assert_eq!(early.json["code"], "link_pending", "{}", early.json);
        // Without --yes and without a terminal, approve refuses and names the code to compare.
        let no = grove(&phone, &["device", "approve", &code]);
        assert!(!no.ok);
        assert!(no.json["error"].as_str().unwrap().contains(&compare), "{}", no.json);
        // A code whose secret was changed (what a DS or a typo gives) is refused.
        let mut forged = code.clone();
        forged.truncate(forged.len() - 4);
        forged.push_str("AAAA");
        assert_eq!(grove(&phone, &["device", "approve", &forged, "--yes"]).json["code"], "link_refused");
        let approved = ok(&phone, &["device", "approve", &code, "--yes"]);
        assert_eq!(
            (approved["approved"].as_bool(), approved["compare"].as_str()),
            (Some(true), Some(compare.as_str()))
        );
        // The code works once.
        let replay = grove(&phone, &["device", "approve", &code, "--yes"]);
        assert_eq!(replay.json["code"], "link_refused", "{}", replay.json);

        // The new device completes the link on its next sync and joins ops.
        let synced = ok(&laptop, &["sync"]);
        assert_eq!(synced["linked"]["joined"].as_array().unwrap().len(), 1, "{synced}");
        let laptop_id = synced["linked"]["device"].as_str().unwrap().to_owned();
        for home in [&phone, &laptop] {
            let list = ok(home, &["device", "list"]);
            let devices = list["devices"].as_array().unwrap();
            assert_eq!(devices.len(), 2, "{list}");
            let this = devices.iter().find(|d| d["this_device"] == true).unwrap();
            assert_eq!(this["id"] == laptop_id.as_str(), home == &laptop);
        }
        ok(&phone, &["sync"]);
        ok(&bob, &["sync"]);
        assert_eq!(alice_devices(&ok(&bob, &["group", "members", "ops"])), 2);
        ok(&bob, &["send", "ops", "to both of alice's devices"]);
        for home in [&phone, &laptop] {
            ok(home, &["sync"]);
            assert!(texts(&ok(home, &["read", "ops"])).contains(&"to both of alice's devices".to_owned()));
        }
        // Adding alice to a new group adds both devices in one commit.
        ok(&bob, &["group", "create", "plans"]);
        let added = ok(&bob, &["group", "add", "plans", "alice"]);
        assert_eq!(added["epoch"], 1);
        assert_eq!(alice_devices(&ok(&bob, &["group", "members", "plans"])), 2);
        for home in [&phone, &laptop] {
            assert_eq!(ok(home, &["sync"])["joined"].as_array().unwrap().len(), 1);
        }

        // Revocation: the laptop leaves the list and both groups.
        let revoked = ok(&phone, &["device", "revoke", &laptop_id]);
        assert_eq!(revoked["removed_from"].as_array().unwrap().len(), 2, "{revoked}");
        assert_eq!(ok(&phone, &["device", "list"])["devices"].as_array().unwrap().len(), 1);
        ok(&bob, &["sync"]);
        assert_eq!(alice_devices(&ok(&bob, &["group", "members", "ops"])), 1);
        ok(&bob, &["send", "ops", "after the revocation"]);
        ok(&phone, &["sync"]);
        assert!(texts(&ok(&phone, &["read", "ops"])).contains(&"after the revocation".to_owned()));
        // The laptop is told why, and has nothing of what followed.
        let shut = grove(&laptop, &["sync"]);
        assert!(!shut.ok);
        assert_eq!(shut.json["server_code"], "device_revoked", "{}", shut.json);
        assert!(!texts(&ok(&laptop, &["read", "ops"])).contains(&"after the revocation".to_owned()));
        // A home is one device: revoking this device itself is refused.
        let own = ok(&phone, &["device", "list"])["devices"][0]["id"].as_str().unwrap().to_owned();
        assert!(!grove(&phone, &["device", "revoke", &own]).ok);
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}

/// A lost phone: the identity comes back from a backup on a new device,
/// with no other device, rejoins the group, revokes the lost phone, and
/// contacts see no key change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_restore_from_a_backup_after_losing_the_only_device() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (phone, new, bob) = (d.join("phone"), d.join("new-phone"), d.join("bob"));
        let init = ok(&phone, &["init", "--server", &url, "--user", "alice"]);
        ok(&bob, &["init", "--server", &url, "--user", "bob"]);
        ok(&phone, &["group", "create", "ops"]);
        ok(&phone, &["group", "add", "ops", "bob"]);
        ok(&bob, &["sync"]);
        let pass = d.join("pass");
        std::fs::write(&pass, "correct horse battery staple\n").unwrap();
        let file = d.join("alice.backup");
        let (file_s, pass_s) = (file.to_str().unwrap(), pass.to_str().unwrap());
        ok(&phone, &["identity", "backup", "--out", file_s, "--passphrase-file", pass_s]);
        let phone_id = ok(&phone, &["device", "list"])["devices"][0]["id"].as_str().unwrap().to_owned();

        // The phone is lost. A wrong passphrase restores nothing.
        let wrong = d.join("wrong");
        std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
        let bad = grove(
            &new,
            &["identity", "restore", file_s, "--passphrase-file", wrong.to_str().unwrap(), "--server", &url],
        );
        assert!(!bad.ok);
        let restored = ok(
            &new,
            &[
                "identity",
                "restore",
                file_s,
                "--passphrase-file",
                pass_s,
                "--server",
                &url,
                "--device-name",
                "new phone",
            ],
        );
        assert_eq!(restored["joined"].as_array().unwrap().len(), 1, "{restored}");
        assert_eq!(restored["other_devices"][0], phone_id.as_str());
        assert_eq!(ok(&new, &["whoami"])["fingerprint"], init["fingerprint"], "the same identity");
        // A home holds one device: restoring into it again is refused.
        let again = grove(&new, &["identity", "restore", file_s, "--passphrase-file", pass_s, "--server", &url]);
        assert_eq!(again.json["code"], "already_initialized");

        // The lost phone is revoked from the new one, and leaves the group.
        let revoked = ok(&new, &["device", "revoke", &phone_id]);
        assert_eq!(revoked["removed_from"].as_array().unwrap().len(), 1, "{revoked}");
        ok(&bob, &["sync"]);
        let members = ok(&bob, &["group", "members", "ops"]);
        let alice = members["members"].as_array().unwrap().iter().find(|m| m["user"] == "alice").unwrap().clone();
        assert_eq!(
            (alice["devices"].as_u64(), alice["key"].as_str()),
            (Some(1), Some("pinned")),
            "no key change: {alice}"
        );
        ok(&bob, &["send", "ops", "welcome back"]);
        ok(&new, &["sync"]);
        assert!(texts(&ok(&new, &["read", "ops"])).contains(&"welcome back".to_owned()));
        let shut = grove(&phone, &["sync"]);
        assert_eq!(shut.json["server_code"], "device_revoked", "{}", shut.json);
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}

/// Everything lost, no backup: a new home resets the identity. The old
/// device is cut off, a contact sees the change and must accept it, and
/// once accepted the old identity's device leaves the group on its next
/// sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_identity_reset_after_losing_everything() {
    let dir = tempfile::tempdir().unwrap();
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (phone, new, bob) = (d.join("phone"), d.join("new-phone"), d.join("bob"));
        let old = ok(&phone, &["init", "--server", &url, "--user", "alice"]);
        ok(&bob, &["init", "--server", &url, "--user", "bob"]);
        ok(&bob, &["group", "create", "ops"]);
        ok(&bob, &["group", "add", "ops", "alice"]);
        ok(&phone, &["sync"]);

        // The name is taken by the lost identity: init fails, reset needs --yes.
        let taken = grove(&new, &["init", "--server", &url, "--user", "alice"]);
        assert_eq!(taken.json["server_code"], "user_exists", "{}", taken.json);
        assert!(!grove(&new, &["identity", "reset"]).ok, "no reset without --yes");
        let reset = ok(&new, &["identity", "reset", "--yes"]);
        assert_ne!(reset["fingerprint"], old["fingerprint"]);
        assert_eq!(ok(&new, &["device", "list"])["devices"].as_array().unwrap().len(), 1);
        // Resetting again from the same home: nothing to reset.
        assert!(!grove(&new, &["identity", "reset", "--yes"]).ok);
        // The old device is cut off.
        assert_eq!(grove(&phone, &["sync"]).json["server_code"], "device_revoked");

        // bob sees the identity change and must accept it before re-adding alice.
        let changed = grove(&bob, &["group", "add", "ops", "alice"]);
        assert_eq!(changed.json["code"], "key_changed", "{}", changed.json);
        ok(&bob, &["trust", "alice", "--accept-new-key"]);
        ok(&bob, &["group", "add", "ops", "alice"]);
        // The old identity's device goes on bob's next sync.
        let synced = ok(&bob, &["sync"]);
        assert_eq!(synced["old_devices_removed"].as_array().unwrap().len(), 1, "{synced}");
        let members = ok(&bob, &["group", "members", "ops"]);
        let alice = members["members"].as_array().unwrap().iter().find(|m| m["user"] == "alice").unwrap().clone();
        assert_eq!(
            (alice["devices"].as_u64(), alice["fingerprint"].as_str()),
            (Some(1), reset["fingerprint"].as_str())
        );
        ok(&new, &["sync"]);
        ok(&bob, &["send", "ops", "hello again"]);
        ok(&new, &["sync"]);
        assert!(texts(&ok(&new, &["read", "ops"])).contains(&"hello again".to_owned()));
    })
    .await
    .unwrap();
    ds.shutdown().await.unwrap();
}
