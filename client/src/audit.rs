//! The key directory's auditor (`grove audit`, `docs/identity.md`).
//!
//! Anyone can audit a DS's key directory: it needs no account. The auditor
//! pins the directory's keys on first use, then walks the epochs from
//! where it stopped to the latest, [`MAX_AUDIT_SPAN`] at a time: it checks
//! each epoch's signed head, that the first root of a span is the root it
//! verified last, and akd's append-only proof between the roots (nothing
//! published before was changed or removed). Its progress (the keys, the
//! last verified epoch and root) is a small JSON file, rewritten atomically
//! after every span, so an audit resumes where it stopped and a DS that
//! later rewrites an audited epoch is caught.

use std::path::{Path, PathBuf};

use grove_proto as proto;
use proto::kt::{KtConfig, KtKeys, MAX_AUDIT_SPAN};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::DsHttp;
use crate::tls::{http_client, TrustMode};

/// What the auditor keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProgress {
    /// The DS audited (a file audits one DS).
    pub server: String,
    /// The directory's VRF public key, hex (pinned on first use).
    pub vrf_public_key: String,
    /// The directory's head-signing key, hex (pinned on first use).
    pub head_key: String,
    /// The last epoch verified.
    pub epoch: u64,
    /// Its root hash, hex.
    pub root: String,
}

/// The outcome of an audit run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The epoch the run started from.
    pub from: u64,
    /// The last epoch verified (the DS's latest when the run started).
    pub to: u64,
    /// Epoch transitions verified in this run.
    pub verified: u64,
    /// The directory keys' fingerprint.
    pub keys: String,
    /// The root of `to`, hex.
    pub root: String,
}

/// Audits the key directory of the DS at `url`, from epoch `from` (else
/// from where `progress_file` stopped, else from epoch 0) to its latest
/// epoch. `on_span(done, total)` is called after each verified span.
/// Fails with [`Error::AuditFailed`] naming the first epoch that does not
/// verify; the progress file then keeps the last good epoch.
pub async fn audit(
    url: &str,
    trust: &TrustMode,
    progress_file: &Path,
    from: Option<u64>,
    on_span: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport> {
    let ds = DsHttp::anonymous(http_client(url, trust)?, url)?;
    let mut progress = read_progress(progress_file)?;
    let keys = ds.kt_keys().await?;
    pin_keys(&mut progress, url, &keys)?;
    let start = match (from, &progress) {
        (Some(e), _) => e,
        (None, p) => p.epoch,
    };
    let latest = ds.kt_head(None).await?.head;
    latest.verify(&keys.head_key).map_err(|e| failed(latest.epoch, format!("the latest head: {}", e.0)))?;
    if start > latest.epoch {
        return Err(failed(start, format!("the DS's latest epoch is {}: it went back", latest.epoch)));
    }
    let mut at = start;
    // The root of `start` is the one verified before, when there is one.
    let mut root = (progress.epoch == start && !progress.root.is_empty()).then(|| progress.root.clone());
    while at < latest.epoch {
        let to = (at + MAX_AUDIT_SPAN).min(latest.epoch);
        let last = verify_span(&ds, &keys, at, to, root.as_deref()).await?;
        progress.epoch = to;
        progress.root = hex::encode(last);
        write_progress(progress_file, &progress)?;
        root = Some(progress.root.clone());
        on_span(to - start, latest.epoch - start);
        at = to;
    }
    if at == start {
        // Nothing new: the latest root must still be the one verified.
        let root_now = latest.verify(&keys.head_key).map_err(|e| failed(at, e.0))?;
        if let Some(r) = root.as_deref().filter(|r| *r != hex::encode(root_now)) {
            return Err(failed(
                at,
                format!("the DS now signs root {} for it, where it signed {r}", hex::encode(root_now)),
            ));
        }
        progress.epoch = at;
        progress.root = hex::encode(root_now);
        write_progress(progress_file, &progress)?;
    }
    Ok(AuditReport {
        from: start,
        to: latest.epoch,
        verified: latest.epoch - start,
        keys: keys.fingerprint(),
        root: progress.root,
    })
}

fn failed(epoch: u64, reason: impl Into<String>) -> Error {
    Error::AuditFailed { epoch, reason: reason.into() }
}

/// Verifies epochs `from..=to`: their heads, `from`'s root against
/// `known` (hex), and the append-only proof. Returns the root of `to`.
async fn verify_span(ds: &DsHttp, keys: &KtKeys, from: u64, to: u64, known: Option<&str>) -> Result<[u8; 32]> {
    let answer = ds.kt_audit(from, to).await?;
    if answer.heads.len() as u64 != to - from + 1 {
        return Err(failed(from, format!("asked for the heads of {from}..={to}, got {}", answer.heads.len())));
    }
    let mut roots = Vec::with_capacity(answer.heads.len());
    for (i, head) in answer.heads.iter().enumerate() {
        let epoch = from + i as u64;
        if head.epoch != epoch {
            return Err(failed(epoch, format!("the DS answered with the head of epoch {}", head.epoch)));
        }
        roots.push(head.verify(&keys.head_key).map_err(|e| failed(epoch, e.0))?);
    }
    if let Some(known) = known {
        if hex::encode(roots[0]) != known {
            return Err(failed(
                from,
                format!("the DS now signs root {} for it, where it signed {known}", hex::encode(roots[0])),
            ));
        }
    }
    let proof = proto::kt::decode_audit_proof(&answer.proof).map_err(|e| failed(from + 1, e.to_string()))?;
    if proof.epochs.len() as u64 != to - from {
        return Err(failed(from + 1, format!("the proof covers {} epochs, not {}", proof.epochs.len(), to - from)));
    }
    if let Err(e) = akd::auditor::audit_verify::<KtConfig>(roots.clone(), proof.clone()).await {
        // Name the first transition that fails.
        for (i, single) in proof.proofs.iter().enumerate() {
            let one = akd::AppendOnlyProof { proofs: vec![single.clone()], epochs: vec![proof.epochs[i]] };
            if let Err(e) = akd::auditor::audit_verify::<KtConfig>(vec![roots[i], roots[i + 1]], one).await {
                return Err(failed(from + i as u64 + 1, format!("the append-only proof does not verify: {e}")));
            }
        }
        return Err(failed(from + 1, format!("the append-only proof does not verify: {e}")));
    }
    Ok(roots[roots.len() - 1])
}

/// Pins the directory's keys in `progress` (first use), or checks them.
fn pin_keys(progress: &mut AuditProgress, url: &str, keys: &KtKeys) -> Result<()> {
    let (vrf, head) = (hex::encode(&keys.vrf_public_key), hex::encode(&keys.head_key));
    if progress.head_key.is_empty() {
        *progress = AuditProgress {
            server: url.to_owned(),
            vrf_public_key: vrf,
            head_key: head,
            epoch: 0,
            root: String::new(),
        };
        return Ok(());
    }
    if progress.vrf_public_key != vrf || progress.head_key != head {
        return Err(failed(
            progress.epoch,
            format!(
                "the directory's keys changed (now {}): a DS that replaced them can rewrite anything; if the \
                 operator announced new keys, audit with a new progress file",
                keys.fingerprint()
            ),
        ));
    }
    Ok(())
}

fn progress_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::AuditProgress { path: path.display().to_string(), reason: reason.to_string() }
}

fn read_progress(path: &Path) -> Result<AuditProgress> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            progress_err(path, format!("{e}; it is not an audit progress file (move it away to start over)"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuditProgress::default()),
        Err(e) => Err(progress_err(path, e)),
    }
}

/// Writes the progress file atomically (a temporary file, synced, renamed).
fn write_progress(path: &Path, progress: &AuditProgress) -> Result<()> {
    let dir: PathBuf = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let bytes = serde_json::to_vec_pretty(progress).map_err(|e| progress_err(path, e))?;
    let mut tmp =
        tempfile::Builder::new().prefix(".grove-audit-").tempfile_in(&dir).map_err(|e| progress_err(path, e))?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| progress_err(path, e))?;
    tmp.as_file().sync_all().map_err(|e| progress_err(path, e))?;
    tmp.persist(path).map_err(|e| progress_err(path, e.error))?;
    Ok(())
}
