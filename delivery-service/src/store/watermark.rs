//! The watermark file: an independent record of how far the store had got.
//!
//! `grove-watermark`, in the store's directory beside sled's files, holds the
//! number of registered users and, per group, the [`Head`] of its log (highest
//! seq, an epoch lower bound and the chain value there). It is rewritten
//! atomically (temporary file, fsync, rename, fsync of the directory) at most
//! about once a second, and only with state that sled had already flushed, so
//! the database may be ahead of the watermark but never behind it. On open
//! (`store::integrity`) a database behind its watermark is damaged or was
//! rolled back, and is refused.
//!
//! Format: `GROVE-WM`, a u16 version (1), then the TLS-encoded `Body`, then
//! the SHA-256 of everything before it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tls_codec::{Deserialize as _, Serialize as _, TlsDeserialize, TlsSerialize, TlsSize};

use super::chain::{Chain, Head};

/// The file's name inside the store directory.
pub const FILE_NAME: &str = "grove-watermark";
const MAGIC: &[u8; 8] = b"GROVE-WM";
const VERSION: u16 = 1;

#[derive(Debug, TlsSerialize, TlsDeserialize, TlsSize)]
struct Mark {
    internal_id: u64,
    seq: u64,
    epoch: u64,
    chain: Chain,
}

#[derive(Debug, TlsSerialize, TlsDeserialize, TlsSize)]
struct Body {
    written_at: u64,
    users: u64,
    groups: Vec<Mark>,
}

/// What a watermark file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watermark {
    /// When it was written, unix seconds.
    pub written_at: u64,
    /// Users registered at that time (users are never deleted).
    pub users: u64,
    /// One head per group, ordered by internal id.
    pub groups: Vec<Head>,
}

/// Why a watermark file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// Reading it failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// It is not a watermark file, or it is damaged.
    #[error("{path} is damaged: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

/// The watermark file of the store in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the watermark of the store in `dir`; `None` if there is none.
pub fn read(dir: &Path) -> Result<Option<Watermark>, WatermarkError> {
    let path = path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(WatermarkError::Io { path, source }),
    };
    parse(&bytes).map(Some).map_err(|detail| WatermarkError::Damaged { path, detail })
}

/// Decodes a watermark file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Watermark, String> {
    let body_at = MAGIC.len() + 2;
    let sum_at = bytes.len().checked_sub(32).filter(|&at| at >= body_at).ok_or("too short")?;
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a grove-ds watermark file".into());
    }
    let sum: [u8; 32] = Sha256::digest(&bytes[..sum_at]).into();
    if sum[..] != bytes[sum_at..] {
        return Err("checksum mismatch".into());
    }
    let version = u16::from_be_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
    if version != VERSION {
        return Err(format!("version {version} (this build reads version {VERSION})"));
    }
    let body = Body::tls_deserialize_exact(&bytes[body_at..sum_at]).map_err(|e| e.to_string())?;
    let groups = body
        .groups
        .into_iter()
        .map(|m| Head { internal_id: m.internal_id, seq: m.seq, epoch: m.epoch, chain: m.chain })
        .collect();
    Ok(Watermark { written_at: body.written_at, users: body.users, groups })
}

/// Encodes a watermark file.
pub fn encode(w: &Watermark) -> Result<Vec<u8>, String> {
    let body = Body {
        written_at: w.written_at,
        users: w.users,
        groups: w
            .groups
            .iter()
            .map(|h| Mark { internal_id: h.internal_id, seq: h.seq, epoch: h.epoch, chain: h.chain })
            .collect(),
    };
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&body.tls_serialize_detached().map_err(|e| e.to_string())?);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Replaces the watermark of the store in `dir`, durably: after this returns,
/// a crash leaves either the old or the new file, whole.
pub fn write(dir: &Path, w: &Watermark) -> std::io::Result<()> {
    let bytes = encode(w).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let w = Watermark {
            written_at: 7,
            users: 3,
            groups: vec![Head { internal_id: 1, seq: 5, epoch: 2, chain: [4; 32] }, Head::empty(2, 0)],
        };
        let bytes = encode(&w).unwrap();
        assert_eq!(parse(&bytes).unwrap(), w);
        for i in [0, 9, 12, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(parse(&b).is_err(), "a flipped byte at {i} is detected");
        }
        assert!(parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse(b"").is_err());
        assert!(parse(&[0; 41]).is_err());
    }
}
