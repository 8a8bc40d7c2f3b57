//! Identity backups (`docs/identity.md`, "Backups"): the identity key and the
//! contact pins, sealed under a passphrase (Argon2id, then
//! XChaCha20-Poly1305), in one JSON file whose header (format, KDF
//! parameters, salt) is bound to the ciphertext as associated data.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};

use super::Client;
use crate::error::{Error, Result};

/// The format name in every backup file.
pub const BACKUP_FORMAT: &str = "grove-identity-backup-v1";
/// Shortest accepted passphrase, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Argon2id cost of new backups: 64 MiB, 3 passes, 1 lane (RFC 9106 §4's
/// second recommended option, with one lane for phones).
const M_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_LANES: u32 = 1;
/// The most a backup file may ask for (a hostile file must not exhaust memory).
const MAX_M_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 10;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    kdf: String,
    m_kib: u32,
    t_cost: u32,
    p_lanes: u32,
    salt: String,
    aead: String,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(flatten)]
    header: Header,
    ciphertext: String,
}

/// What a backup holds once opened.
#[derive(Clone, Serialize, Deserialize)]
pub struct IdentityBackup {
    /// The user.
    pub user: String,
    /// The DS the user was registered with.
    pub server: String,
    /// The identity key (Ed25519, public).
    pub identity_key: Vec<u8>,
    /// Its secret (32 bytes).
    pub(crate) identity_secret: Vec<u8>,
    /// The contacts' pinned keys: (user, key, verified).
    pub contacts: Vec<(String, Vec<u8>, bool)>,
    /// The groups the user was in when the backup was made: a restored
    /// device joins those its user is still in (absent in older backups).
    #[serde(default)]
    pub groups: Vec<BackupGroup>,
}

/// A group in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupGroup {
    /// The group id (base64url).
    pub id: String,
    /// Its local name, if any.
    pub name: Option<String>,
    /// Its history policy.
    pub history: crate::records::HistoryPolicy,
}

impl std::fmt::Debug for IdentityBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityBackup")
            .field("user", &self.user)
            .field("identity_key", &grove_proto::fingerprint(&self.identity_key))
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl Drop for IdentityBackup {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.identity_secret);
    }
}

impl IdentityBackup {
    /// Whether the secret half matches the identity key.
    pub fn is_consistent(&self) -> bool {
        <[u8; 32]>::try_from(self.identity_secret.as_slice()).is_ok_and(|s| {
            ed25519_dalek::SigningKey::from_bytes(&s).verifying_key().to_bytes().as_slice() == self.identity_key
        })
    }
}

fn key_from(passphrase: &str, salt: &[u8], m_kib: u32, t_cost: u32, p_lanes: u32) -> Result<[u8; 32]> {
    let params = argon2::Params::new(m_kib, t_cost, p_lanes, Some(32))
        .map_err(|e| Error::InvalidArgument(format!("backup KDF parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| Error::InvalidArgument(format!("backup KDF: {e}")))?;
    Ok(key)
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn unb64(what: &str, s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| not_a_backup(&format!("its {what} is not base64")))
}

fn not_a_backup(why: &str) -> Error {
    Error::InvalidArgument(format!("not a Grove identity backup ({why})"))
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    b
}

/// Opens a backup file with its passphrase.
pub fn open_identity_backup(file: &[u8], passphrase: &str) -> Result<IdentityBackup> {
    let f: File = serde_json::from_slice(file).map_err(|e| not_a_backup(&e.to_string()))?;
    let h = &f.header;
    if h.format != BACKUP_FORMAT || h.kdf != "argon2id" || h.aead != "xchacha20poly1305" {
        return Err(not_a_backup(&format!("format {:?}, KDF {:?}, AEAD {:?}", h.format, h.kdf, h.aead)));
    }
    if h.m_kib > MAX_M_KIB || h.t_cost > MAX_T_COST || h.p_lanes > 16 {
        return Err(not_a_backup("its KDF parameters are beyond what this client accepts"));
    }
    let salt = unb64("salt", &h.salt)?;
    let nonce = unb64("nonce", &h.nonce)?;
    if nonce.len() != 24 {
        return Err(not_a_backup("its nonce is not 24 bytes"));
    }
    let ct = unb64("ciphertext", &f.ciphertext)?;
    let aad = serde_json::to_vec(h).map_err(|e| not_a_backup(&e.to_string()))?;
    let mut key = key_from(passphrase, &salt, h.m_kib, h.t_cost, h.p_lanes)?;
    let cipher = chacha20poly1305::XChaCha20Poly1305::new((&key).into());
    zeroize::Zeroize::zeroize(&mut key);
    let mut plain = cipher
        .decrypt(chacha20poly1305::XNonce::from_slice(&nonce), Payload { msg: &ct, aad: &aad })
        .map_err(|_| Error::InvalidArgument("wrong passphrase, or the backup file was changed".into()))?;
    let backup: std::result::Result<IdentityBackup, _> = serde_json::from_slice(&plain);
    zeroize::Zeroize::zeroize(&mut plain);
    let backup = backup.map_err(|e| not_a_backup(&format!("its content: {e}")))?;
    if !backup.is_consistent() {
        return Err(not_a_backup("its identity key and secret do not match"));
    }
    Ok(backup)
}

impl Client {
    /// Seals this user's identity key and contact pins under `passphrase`
    /// (at least [`MIN_PASSPHRASE_CHARS`] characters): the bytes of a backup
    /// file. A home made before identity keys has no identity key to back up.
    pub fn identity_backup(&self, passphrase: &str) -> Result<Vec<u8>> {
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(Error::InvalidArgument(format!(
                "the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
            )));
        }
        let Some(identity) = self.identity_signer()? else {
            return Err(Error::InvalidArgument(
                "this home was made before identity keys: it has no identity key to back up yet".into(),
            ));
        };
        let contacts = self.repo().contacts().all()?.into_iter().map(|(u, c)| (u, c.key, c.verified)).collect();
        let mut groups = Vec::new();
        for (gid, rec) in self.repo().groups().all()? {
            if rec.state == crate::records::GroupState::Active {
                groups.push(BackupGroup { id: super::b64url(&gid), name: rec.name, history: rec.history });
            }
        }
        let backup = IdentityBackup {
            user: self.id.user.clone(),
            server: self.id.server.clone(),
            identity_key: self.id.identity_key.clone(),
            identity_secret: identity.to_bytes().to_vec(),
            contacts,
            groups,
        };
        let (salt, nonce) = (random::<16>(), random::<24>());
        let header = Header {
            format: BACKUP_FORMAT.into(),
            kdf: "argon2id".into(),
            m_kib: M_KIB,
            t_cost: T_COST,
            p_lanes: P_LANES,
            salt: b64(&salt),
            aead: "xchacha20poly1305".into(),
            nonce: b64(&nonce),
        };
        let aad = serde_json::to_vec(&header).map_err(|e| Error::Protocol(e.to_string()))?;
        let mut plain = serde_json::to_vec(&backup).map_err(|e| Error::Protocol(e.to_string()))?;
        let mut key = key_from(passphrase, &salt, M_KIB, T_COST, P_LANES)?;
        let cipher = chacha20poly1305::XChaCha20Poly1305::new((&key).into());
        zeroize::Zeroize::zeroize(&mut key);
        let ct = cipher.encrypt(chacha20poly1305::XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad });
        zeroize::Zeroize::zeroize(&mut plain);
        let ct = ct.map_err(|_| Error::Protocol("sealing the backup failed".into()))?;
        serde_json::to_vec_pretty(&File { header, ciphertext: b64(&ct) }).map_err(|e| Error::Protocol(e.to_string()))
    }
}
