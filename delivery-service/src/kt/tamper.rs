//! A DS that lies (feature `testing` only, never in a release build): the
//! misbehaviours key transparency must expose, switched on one by one by
//! the tests that show who catches each (`tests/key_transparency.rs`,
//! `client/tests/key_transparency.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use grove_proto::kt::{DirectoryValue, LookupResponse, SignedHead};

use super::KeyDirectory;
use crate::error::DsError;
use crate::store::{MemoryStore, Store};

/// The switches.
#[derive(Default)]
pub struct Tamper {
    knobs: Mutex<Knobs>,
}

#[derive(Default)]
struct Knobs {
    /// user -> the identity key the DS publishes for them instead of theirs.
    publish_key: HashMap<String, Vec<u8>>,
    /// user -> the whole value the DS publishes for them instead of theirs.
    publish_value: HashMap<String, DirectoryValue>,
    /// Users whose key history is served without its newest version.
    drop_newest: HashSet<String>,
    /// epoch -> the root served in that epoch's head instead of the real one.
    rewrite_root: HashMap<u64, Vec<u8>>,
    /// (asker, user) -> the key the DS serves the asker for the user.
    serve_key: HashMap<(String, String), Vec<u8>>,
    /// (asker, a copy of the directory that only they are shown).
    fork: Option<(String, Arc<KeyDirectory>)>,
}

impl Tamper {
    fn with<T>(&self, f: impl FnOnce(&mut Knobs) -> T) -> Option<T> {
        self.knobs.lock().ok().map(|mut k| f(&mut k))
    }

    /// Switches every misbehaviour off (what was published stays published).
    pub fn clear(&self) {
        self.with(|k| *k = Knobs::default());
    }

    /// From now on, publishes `key` as `user`'s identity key (a DS that
    /// puts a key of its own in the directory, for everyone to see).
    pub fn publish_key(&self, user: &str, key: &[u8]) {
        self.with(|k| k.publish_key.insert(user.to_owned(), key.to_vec()));
    }

    /// From now on, publishes `value` as `user`'s (their key and device list).
    pub fn publish_value(&self, user: &str, value: DirectoryValue) {
        self.with(|k| k.publish_value.insert(user.to_owned(), value));
    }

    /// Serves `asker` the key `key` when they look `user` up (and nobody
    /// else), without a device list.
    pub fn serve_key(&self, asker: &str, user: &str, key: &[u8]) {
        self.with(|k| k.serve_key.insert((asker.to_owned(), user.to_owned()), key.to_vec()));
    }

    /// Applies [`Tamper::serve_key`] to a lookup answer.
    pub fn served_user(&self, asker: &str, found: &mut crate::api::UserResponse) {
        let key = (asker.to_owned(), found.key.user.clone());
        if let Some(Some(k)) = self.with(|knobs| knobs.serve_key.get(&key).cloned()) {
            // The user's device list is signed by their real identity key,
            // which would give the swap away: serve them as a single-key user.
            found.fingerprint = crate::api::fingerprint(&k);
            found.key.signature_key = k;
            found.device_list = None;
        }
    }

    /// Serves `user`'s key history without its newest version.
    pub fn drop_newest_version(&self, user: &str) {
        self.with(|k| k.drop_newest.insert(user.to_owned()));
    }

    /// Serves `root` in the head of `epoch` (rewriting history).
    pub fn rewrite_root(&self, epoch: u64, root: &[u8]) {
        self.with(|k| k.rewrite_root.insert(epoch, root.to_vec()));
    }

    pub(super) fn apply_published(&self, user: &str, value: &mut DirectoryValue) {
        if let Some(Some(key)) = self.with(|k| k.publish_key.get(user).cloned()) {
            value.identity_key = key;
        }
        if let Some(Some(v)) = self.with(|k| k.publish_value.get(user).cloned()) {
            *value = v;
        }
    }

    pub(super) fn head(&self, kd: &KeyDirectory, head: &mut SignedHead) {
        if let Some(Some(root)) = self.with(|k| k.rewrite_root.get(&head.epoch).cloned()) {
            // The DS signs what it serves: a rewritten head is signed too.
            *head = kd.sign(head.epoch, &root);
        }
    }

    pub(super) fn history(&self, user: &str, proof: &mut akd::HistoryProof) {
        if self.with(|k| k.drop_newest.contains(user)) == Some(true) && !proof.update_proofs.is_empty() {
            proof.update_proofs.remove(0);
        }
    }

    pub(super) async fn lookup(&self, user: &str, asker: Option<&str>) -> Option<Result<LookupResponse, DsError>> {
        let fork = self.with(|k| k.fork.clone()).flatten()?;
        if Some(fork.0.as_str()) != asker {
            return None;
        }
        Some(fork.1.lookup_proof(user).await)
    }
}

impl KeyDirectory {
    /// Forks the directory: from now on `asker` is shown a copy of it in
    /// which `user` is a single-key user with the key `key`, published as the next epoch
    /// (the real directory's next epoch will hold something else). Returns
    /// the forked epoch.
    pub async fn fork_for(&self, asker: &str, user: &str, key: &[u8]) -> Result<u64, DsError> {
        let copy: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let records = self.store.kt_scan(&[]).await?;
        copy.kt_put(&records).await?;
        // The copy's store has the users the forked values need.
        for name in self.store.user_names().await? {
            if let Some(rec) = self.store.user(&name).await? {
                copy.register_user(&rec).await?;
                for (i, list) in self.store.device_lists(&name, 0).await?.into_iter().enumerate() {
                    copy.append_device_list(&name, i as u64 + 1, &list).await?;
                }
            }
        }
        let fork = KeyDirectory::open(copy, self.interval).await?;
        fork.tamper.publish_value(user, DirectoryValue::of(key, None));
        let epoch = fork.publish_users(&[user.to_owned()]).await?.ok_or_else(|| DsError::Internal("fork".into()))?;
        self.tamper.with(|k| k.fork = Some((asker.to_owned(), fork)));
        Ok(epoch)
    }
}
