//! Encryption at rest: a store opened with a [`StoreKey`] seals every value
//! with an AEAD and replaces every secret part of every key by a keyed hash.
//!
//! # What is on disk
//!
//! - Keys. `0x00 ...` (format marker, salt, key check) stay as they are:
//!   they hold nothing secret. An openmls key `0x01 label 0x00 key` becomes
//!   `0x01 H(label 0x00 key)`. An app key `0x02 len(ns) ns key` becomes
//!   `0x02 H(ns) parts`, where the key is cut into parts by its namespace's
//!   layout ([`crate::repo::key_layout`]): each byte-string part (group id,
//!   user, name, resource id, hash) becomes `H(ns, index, part)`, and each
//!   number (local message id, sequence number, version) stays in clear,
//!   big-endian, so that scans keep their order. `H` is HMAC-SHA-256 under a
//!   key derived from the store key, truncated to 16 bytes. Scans by a
//!   prefix that ends on a part boundary (every scan the repository makes)
//!   keep working; their results come back sorted by the original key.
//! - Values: `nonce (24) || XChaCha20-Poly1305(len(key) (be u32) || key ||
//!   value)`, with the sealed key as associated data, so a value cannot be
//!   moved to another key. The original key inside lets scans return it.
//!
//! What it does not hide: how many records there are, their sizes, which
//! records share a group (equal hashes), and the numbers in keys (how many
//! messages a group has). A group id, user name, group name, message,
//! resource or MLS secret never appears in clear.
//!
//! # Keys
//!
//! The app supplies 32 random bytes ([`StoreKey`]), kept in the iOS Keychain
//! or the Android Keystore. HKDF-SHA-256, salted with 16 random bytes kept in
//! the store, derives the key-hashing key, the value key and a key check
//! (kept in the store), so that a wrong key is refused before anything is
//! read or written.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{StorageError, NS_APP, NS_META, NS_MLS};

/// Length of a store key.
pub const STORE_KEY_LEN: usize = 32;
/// Length of a hashed key part.
const PART_HASH_LEN: usize = 16;
/// Length of the hashed namespace of an app key.
const NS_HASH_LEN: usize = 8;
const NONCE_LEN: usize = 24;

/// `0x00 "salt"`: the 16-byte HKDF salt of a sealed store.
pub(super) const SALT_KEY: &[u8] = b"\x00salt";
/// `0x00 "keycheck"`: proves a store key right before anything is read.
pub(super) const KEY_CHECK_KEY: &[u8] = b"\x00keycheck";

/// The app's key for a client home: 32 random bytes. Wiped from memory when
/// dropped; never written to disk by Grove.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey(Zeroizing<[u8; STORE_KEY_LEN]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// A key from exactly [`STORE_KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StorageError> {
        let arr: [u8; STORE_KEY_LEN] = bytes.try_into().map_err(|_| StorageError::BadStoreKey { len: bytes.len() })?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// A new random key (for apps that make one and keep it in their key store).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; STORE_KEY_LEN]);
        rand::rng().fill_bytes(&mut key[..]);
        Self(key)
    }

    /// The key's bytes (to store in the platform's key store).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[..]
    }
}

/// How an app key's bytes are cut into parts (its namespace's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// `len (be u32) bytes`: hashed.
    Prefixed,
    /// Exactly `n` bytes: hashed.
    Fixed(usize),
    /// A big-endian u64: kept (ordered).
    U64,
    /// A big-endian u32: kept (ordered).
    U32,
    /// Every remaining byte: hashed. Only last.
    Rest,
}

/// The keys of a sealed store, derived from its [`StoreKey`].
pub(crate) struct Sealer {
    key_mac: Hmac<Sha256>,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<keys>)")
    }
}

/// The keys derived from `key` with `salt`, and the key check.
fn derive(key: &StoreKey, salt: &[u8]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>, [u8; 32]) {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), key.as_bytes());
    let mut keys = Zeroizing::new([0u8; 32]);
    let mut values = Zeroizing::new([0u8; 32]);
    let mut check = [0u8; 32];
    // invariant: 32 bytes is far below HKDF-SHA-256's limit of 8160.
    let _ = hk.expand(b"grove client store v1 key hashing", &mut keys[..]);
    let _ = hk.expand(b"grove client store v1 values", &mut values[..]);
    let _ = hk.expand(b"grove client store v1 key check", &mut check);
    (keys, values, check)
}

impl Sealer {
    /// The sealer of a store with `salt` whose key check is `check`: fails
    /// with [`StorageError::WrongStoreKey`] when `key` is not its key.
    pub(super) fn open(key: &StoreKey, salt: &[u8], check: &[u8]) -> Result<Self, StorageError> {
        let (keys, values, expected) = derive(key, salt);
        if !ct_eq(&expected, check) {
            return Err(StorageError::WrongStoreKey);
        }
        Ok(Self::from_parts(&keys, &values))
    }

    /// A sealer for a new store: a fresh salt, and the key check to keep.
    pub(super) fn create(key: &StoreKey) -> (Self, [u8; 16], [u8; 32]) {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let (keys, values, check) = derive(key, &salt);
        (Self::from_parts(&keys, &values), salt, check)
    }

    fn from_parts(keys: &[u8; 32], values: &[u8; 32]) -> Self {
        Self {
            // invariant: HMAC takes keys of any length.
            key_mac: <Hmac<Sha256> as Mac>::new_from_slice(keys).unwrap_or_else(|_| unreachable!()),
            cipher: XChaCha20Poly1305::new(values.into()),
        }
    }

    fn hash(&self, parts: &[&[u8]], len: usize) -> Vec<u8> {
        let mut mac = self.key_mac.clone();
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes()[..len].to_vec()
    }

    /// The sealed form of the raw key `key`.
    pub(super) fn key(&self, key: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.transform(key, false)
    }

    /// The sealed form of the scan prefix `prefix` (it must end on a part
    /// boundary of its namespace's layout).
    pub(super) fn prefix(&self, prefix: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.transform(prefix, true)
    }

    fn transform(&self, key: &[u8], is_prefix: bool) -> Result<Vec<u8>, StorageError> {
        let unsealable = |reason: &str| StorageError::Unsealable {
            key: String::from_utf8_lossy(&key[..key.len().min(40)]).into_owned(),
            reason: reason.to_owned(),
        };
        match key.first() {
            None if is_prefix => Ok(Vec::new()),
            Some(&NS_META) => Ok(key.to_vec()),
            Some(&NS_MLS) if key.len() > 1 => {
                let mut out = vec![NS_MLS];
                out.extend(self.hash(&[b"mls", &key[1..]], PART_HASH_LEN));
                Ok(out)
            }
            Some(&NS_APP) if key.len() >= 2 && key.len() >= 2 + key[1] as usize => {
                let ns = &key[2..2 + key[1] as usize];
                let mut out = vec![NS_APP];
                out.extend(self.hash(&[b"ns", ns], NS_HASH_LEN));
                let mut rest = &key[2 + ns.len()..];
                for (index, part) in crate::repo::key_layout(ns).iter().enumerate() {
                    if rest.is_empty() && is_prefix {
                        return Ok(out);
                    }
                    let take = match *part {
                        Part::Prefixed => {
                            let len: [u8; 4] = rest
                                .get(..4)
                                .and_then(|b| b.try_into().ok())
                                .ok_or_else(|| unsealable("a length-prefixed part is cut short"))?;
                            4 + u32::from_be_bytes(len) as usize
                        }
                        Part::Fixed(n) => n,
                        Part::U64 => 8,
                        Part::U32 => 4,
                        Part::Rest if is_prefix => {
                            return Err(unsealable("a scan prefix cannot end inside a hashed part"));
                        }
                        Part::Rest => rest.len(),
                    };
                    let piece = rest.get(..take).ok_or_else(|| unsealable("a part is cut short"))?;
                    match part {
                        Part::U64 | Part::U32 => out.extend_from_slice(piece),
                        _ => out.extend(self.hash(&[ns, &[index as u8], piece], PART_HASH_LEN)),
                    }
                    rest = &rest[take..];
                }
                if !rest.is_empty() {
                    return Err(unsealable("the key is longer than its namespace's layout"));
                }
                Ok(out)
            }
            _ => Err(unsealable("not a Grove store key")),
        }
    }

    /// Seals `value` of the raw key `key`, stored under `sealed_key`.
    pub(super) fn seal(&self, sealed_key: &[u8], key: &[u8], value: &[u8]) -> Result<Vec<u8>, StorageError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(4 + key.len() + value.len()));
        plain.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
        plain.extend_from_slice(key);
        plain.extend_from_slice(value);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: sealed_key })
            .map_err(|_| StorageError::Encode { what: "sealed value".into(), reason: "encryption failed".into() })?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens the value stored under `sealed_key`: the raw key and the value.
    pub(super) fn open_value(&self, sealed_key: &[u8], sealed: &[u8]) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
        let corrupt = |reason: &str| StorageError::Corrupt { what: "sealed value".into(), reason: reason.into() };
        if sealed.len() < NONCE_LEN {
            return Err(corrupt("shorter than its nonce"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: sealed_key })
                .map_err(|_| corrupt("it does not decrypt under the store key (damaged, or moved to another key)"))?,
        );
        let len: [u8; 4] = plain.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| corrupt("too short"))?;
        let len = u32::from_be_bytes(len) as usize;
        let key = plain.get(4..4 + len).ok_or_else(|| corrupt("its key is cut short"))?.to_vec();
        Ok((key, plain[4 + len..].to_vec()))
    }
}

/// Whether `a` and `b` are equal, without an early exit (the key check).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where [`seal_plain_store`](super::SledStorage::seal_plain_store) builds the sealed copy of a home's store.
pub(crate) fn sealing_path(home: &Path) -> PathBuf {
    home.join("store.sled.sealing")
}

/// Where the plaintext store waits for deletion after the switch.
pub(super) fn retired_path(home: &Path) -> PathBuf {
    home.join("store.sled.plain")
}

/// `fsync` of a directory, so that a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let err = |source| StorageError::Dir { path: dir.to_path_buf(), source };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)
}

impl<C: super::ValueCodec> super::SledStorage<C> {
    /// Seals the store in clear of `home` under `key`: opens it (replaying
    /// its journal) and checkpoints it, writes a sealed copy of every entry
    /// into [`sealing_path`] and flushes it, then swaps the two directories
    /// and deletes the one in clear. Its files are deleted, not overwritten:
    /// on flash storage nothing can promise more.
    pub(super) fn seal_plain_store(home: &Path, key: &StoreKey) -> Result<(), StorageError> {
        let plain = Self::open_keyed(home, None)?;
        plain.flush()?;
        let target = sealing_path(home);
        let dir_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Dir { path, source }
        };
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(dir_err(&target))?;
        }
        let sealed = super::fs::open_sled(&target)?;
        let (sealer, salt, check) = Sealer::create(key);
        let mut batch = sled::Batch::default();
        let mut batch_bytes = 0usize;
        for entry in plain.db.iter() {
            let (key, value) = entry?;
            if key.first() == Some(&NS_META) {
                continue;
            }
            let sealed_key = sealer.key(&key)?;
            let sealed_value = sealer.seal(&sealed_key, &key, &value)?;
            batch_bytes += sealed_key.len() + sealed_value.len();
            batch.insert(sealed_key, sealed_value);
            if batch_bytes > 4 << 20 {
                sealed.apply_batch(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
        }
        sealed.apply_batch(batch)?;
        sealed.insert(SALT_KEY, &salt[..])?;
        sealed.insert(KEY_CHECK_KEY, &check[..])?;
        let marker = super::format_marker::<C>(super::FORMAT_VERSION) + super::SEALED_SUFFIX;
        sealed.insert(super::FORMAT_KEY, marker.as_bytes())?;
        sealed.flush()?;
        drop(sealed);
        drop(plain);
        let db = super::SledStorage::db_path(home);
        let retired = retired_path(home);
        std::fs::rename(&db, &retired).map_err(dir_err(&db))?;
        sync_dir(home)?;
        std::fs::rename(&target, &db).map_err(dir_err(&target))?;
        sync_dir(home)?;
        std::fs::remove_dir_all(&retired).map_err(dir_err(&retired))?;
        tracing::info!(home = %home.display(), "client store sealed under the store key");
        Ok(())
    }

    /// Finishes what a crash interrupted in [`seal_plain_store`](Self::seal_plain_store):
    /// a sealed copy beside the store in clear was not complete (deleted; the
    /// next open with the key starts again); a complete one whose swap was
    /// cut between the two renames is moved in; a retired store in clear is
    /// deleted.
    pub(super) fn finish_interrupted_sealing(home: &Path) -> Result<(), StorageError> {
        let db = super::SledStorage::db_path(home);
        let sealing = sealing_path(home);
        let retired = retired_path(home);
        let dir_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Dir { path, source }
        };
        if sealing.exists() {
            if db.exists() {
                std::fs::remove_dir_all(&sealing).map_err(dir_err(&sealing))?;
            } else {
                std::fs::rename(&sealing, &db).map_err(dir_err(&sealing))?;
                sync_dir(home)?;
            }
        }
        if retired.exists() && db.exists() {
            std::fs::remove_dir_all(&retired).map_err(dir_err(&retired))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{SledStorage, StorageError};

    fn open(home: &Path, key: Option<&StoreKey>) -> Result<SledStorage, StorageError> {
        SledStorage::open_keyed(home, key)
    }

    /// Every file under `dir` (recursively), concatenated.
    fn all_bytes(dir: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(all_bytes(&path));
            } else {
                out.extend(std::fs::read(&path).unwrap());
            }
        }
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// A messages key: `len(gid) gid local`.
    fn message_key(gid: &[u8], local: u64) -> Vec<u8> {
        let mut k = (gid.len() as u32).to_be_bytes().to_vec();
        k.extend_from_slice(gid);
        k.extend_from_slice(&local.to_be_bytes());
        k
    }

    const GID: &[u8] = b"group-id-secret-7f3a";
    const TEXT: &[u8] = b"the launch code is 4242";

    fn fill(store: &SledStorage) {
        for local in [3u64, 1, 2, 300] {
            let text = [TEXT, format!(" #{local}").as_bytes()].concat();
            store.put_app("messages", &message_key(GID, local), &text).unwrap();
        }
        store.put_app("messages", &message_key(b"other-group", 1), b"elsewhere").unwrap();
        store.put_app("contacts", b"bob-the-contact", b"pinned key of bob").unwrap();
    }

    fn check(store: &SledStorage) {
        let msgs = store.scan_prefix_app("messages", &message_key(GID, 0)[..4 + GID.len()]).unwrap();
        let locals: Vec<u64> =
            msgs.iter().map(|(k, _)| u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap())).collect();
        assert_eq!(locals, vec![1, 2, 3, 300], "a group's messages, in order");
        assert!(msgs.iter().all(|(_, v)| v.starts_with(TEXT)));
        assert_eq!(store.get_app("contacts", b"bob-the-contact").unwrap().as_deref(), Some(&b"pinned key of bob"[..]));
        assert_eq!(store.scan_prefix_app("contacts", b"").unwrap().len(), 1);
        assert_eq!(store.scan_prefix_app("messages", b"").unwrap().len(), 5);
    }

    fn assert_nothing_in_clear(home: &Path) {
        let disk = all_bytes(home);
        for needle in [GID, TEXT, b"bob-the-contact", b"pinned key of bob", b"messages", b"contacts"] {
            assert!(!contains(&disk, needle), "{:?} is on disk in clear", String::from_utf8_lossy(needle));
        }
    }

    #[test]
    fn a_sealed_store_keeps_scans_and_order_and_nothing_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let store = open(dir.path(), Some(&key)).unwrap();
        fill(&store);
        check(&store); // from the journal
                       // A transaction sees the store's (decrypted) entries under its own.
        let txn = store.begin();
        txn.put_app("messages", &message_key(GID, 0), b"draft").unwrap();
        assert_eq!(txn.scan_prefix_app("messages", &message_key(GID, 0)[..4 + GID.len()]).unwrap().len(), 5);
        txn.rollback();
        assert_nothing_in_clear(dir.path()); // journal written, not checkpointed
        store.flush().unwrap();
        check(&store); // from sled
        drop(store);
        assert_nothing_in_clear(dir.path());
        let again = open(dir.path(), Some(&key)).unwrap();
        check(&again);
        assert!(
            matches!(again.scan_prefix_app("contacts", b"bob"), Err(StorageError::Unsealable { .. })),
            "a prefix inside a hashed part is refused, not answered wrongly"
        );
    }

    #[test]
    fn a_sealed_store_refuses_a_missing_or_wrong_key_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let store = open(dir.path(), Some(&key)).unwrap();
        fill(&store);
        drop(store);
        assert!(matches!(SledStorage::open(dir.path()), Err(StorageError::StoreKeyRequired)));
        let wrong = StoreKey::generate();
        assert!(matches!(open(dir.path(), Some(&wrong)), Err(StorageError::WrongStoreKey)));
        assert!(matches!(StoreKey::from_bytes(&[1; 31]), Err(StorageError::BadStoreKey { len: 31 })));
        check(&open(dir.path(), Some(&key)).unwrap());
    }

    #[test]
    fn a_store_in_clear_is_sealed_when_opened_with_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let plain = SledStorage::open(dir.path()).unwrap();
        fill(&plain);
        drop(plain);
        assert!(contains(&all_bytes(dir.path()), TEXT), "the test starts from a store in clear");
        let key = StoreKey::generate();
        let sealed = open(dir.path(), Some(&key)).unwrap();
        check(&sealed);
        drop(sealed);
        assert_nothing_in_clear(dir.path());
        assert!(!sealing_path(dir.path()).exists() && !retired_path(dir.path()).exists());
        assert!(matches!(SledStorage::open(dir.path()), Err(StorageError::StoreKeyRequired)));
    }

    #[test]
    fn an_interrupted_sealing_is_finished_or_restarted() {
        let key = StoreKey::generate();
        // Cut between the two renames: only the complete sealed copy is left.
        let sealed_home = tempfile::tempdir().unwrap();
        fill(&open(sealed_home.path(), Some(&key)).unwrap());
        let home = tempfile::tempdir().unwrap();
        std::fs::rename(SledStorage::db_path(sealed_home.path()), sealing_path(home.path())).unwrap();
        check(&open(home.path(), Some(&key)).unwrap());
        assert!(!sealing_path(home.path()).exists());
        // Cut while copying: the store in clear is whole, the copy is dropped.
        let home = tempfile::tempdir().unwrap();
        fill(&SledStorage::open(home.path()).unwrap());
        std::fs::create_dir_all(sealing_path(home.path()).join("partial")).unwrap();
        check(&SledStorage::open(home.path()).unwrap());
        assert!(!sealing_path(home.path()).exists());
        check(&open(home.path(), Some(&key)).unwrap());
    }
}
