//! Client-side encryption of resource versions (the blobs the DS stores).
//!
//! Each version is encrypted with its own fresh random 256-bit key under
//! AES-256-GCM, in fixed-size chunks so memory stays bounded whatever the size
//! of the resource (a STREAM-like construction):
//!
//! - blob = header (`"GRV1"`, chunk size as u32 BE) followed by the chunks;
//!   chunk *i* = AES-256-GCM(key, nonce *i*, plaintext chunk *i*, AD *i*);
//! - nonce *i* = *i* (u64 BE) ‖ final flag (1 byte) ‖ 3 zero bytes: unique per
//!   key, and the key is never reused;
//! - AD *i* = `"grove-resource-v1"` ‖ len(group id) (u16 BE) ‖ group id ‖
//!   resource id (16 bytes) ‖ version (u64 BE) ‖ *i* (u64 BE) ‖ final flag.
//!
//! So a flipped bit, a swapped or dropped chunk, a truncated blob (the last
//! chunk left must carry the final flag) and a blob moved to another resource,
//! group or version all fail authentication. Every chunk but the last is full;
//! a 0-byte resource is one empty final chunk.
//!
//! **Padding.** The plaintext is followed by zero bytes up to
//! [`padded_len`] (Padmé: at most about 12% overhead, and a blob's length
//! reveals only O(log log n) bits of the real size). The padding is inside the
//! encrypted chunks; the real size travels only in the manifest, and
//! [`open`] checks that the blob holds exactly `padded_len(size)` bytes whose
//! tail is zero, so a manifest cannot lie about the size either.
//!
//! **Content hash.** The manifest also carries a BLAKE3 hash of the content
//! (without padding), checked after decryption: it names the exact content a
//! version holds, independently of the key. BLAKE3 rather than SHA-256
//! because it is several times faster here (SIMD), and SHA-256 cost as much
//! per byte as AES-256-GCM itself (see docs/benchmarks.md).

use std::io::{Read, Write};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore as _;
use zeroize::Zeroizing;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 1 << 20;
const MAGIC: &[u8; 4] = b"GRV1";
const TAG: usize = 16;
const AD_LABEL: &[u8] = b"grove-resource-v1";

/// Errors of resource encryption and decryption. The caller adds the resource
/// name when it reports them.
#[derive(Debug, thiserror::Error)]
pub enum ResourceCryptoError {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The blob does not start with a Grove resource header.
    #[error("not a Grove resource blob (bad header)")]
    BadHeader,
    /// A chunk failed authentication: the blob was altered, chunks were swapped,
    /// or it belongs to another resource, group or version.
    #[error("chunk {chunk} failed authentication: the blob was altered or is not this resource's")]
    Tampered {
        /// Index of the chunk, from 0.
        chunk: u64,
    },
    /// The blob ends before its final chunk.
    #[error("the blob is truncated (no final chunk)")]
    Truncated,
    /// The plaintext does not have the hash the manifest promises.
    #[error("content hash mismatch: the blob is not the version the manifest describes")]
    HashMismatch,
    /// The blob's plaintext length or padding does not match the size the
    /// manifest promises.
    #[error("size mismatch: the manifest says {expected} bytes, the blob does not hold that")]
    SizeMismatch {
        /// The size the manifest promises.
        expected: u64,
    },
    /// The group id is longer than 65535 bytes.
    #[error("group id too long")]
    GroupIdTooLong,
}

/// The padded plaintext length for a real length `len` (Padmé, from the PURBs
/// paper: keep the top `floor(log2(floor(log2 len))) + 1` bits of the length,
/// round up the rest).
pub fn padded_len(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - u64::from(len.leading_zeros()); // floor(log2 len)
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    (len + mask) & !mask
}

/// What the manifest promises about a version's plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Real size in bytes (before padding).
    pub size: u64,
    /// BLAKE3 hash of the real content.
    pub content_hash: [u8; 32],
}

/// Counts what it reads, then appends the zero padding.
struct Padded<R> {
    inner: R,
    size: u64,
    /// Zero bytes still to yield (known once `inner` ended).
    pad: Option<u64>,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pad.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 {
                self.size += n as u64;
                return Ok(n);
            }
            self.pad = Some(padded_len(self.size) - self.size);
        }
        let left = self.pad.unwrap_or(0);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        buf[..n].fill(0);
        self.pad = Some(left - n as u64);
        Ok(n)
    }
}

/// A version's content key: 256 random bits, wiped from memory on drop.
#[derive(Clone)]
pub struct ContentKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

impl ContentKey {
    /// A fresh random key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(k.as_mut());
        ContentKey(k)
    }

    /// A key from its 32 bytes (as carried in a manifest).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        ContentKey(Zeroizing::new(b))
    }

    /// The key bytes (to put in a manifest, which travels only inside MLS).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// What a blob is bound to.
#[derive(Debug, Clone)]
pub struct BlobContext<'a> {
    /// The MLS group id.
    pub group_id: &'a [u8],
    /// The resource's random id.
    pub resource_id: [u8; 16],
    /// The version number.
    pub version: u64,
}

/// Sizes and hash of an encrypted version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Plaintext size.
    pub size: u64,
    /// BLAKE3 hash of the plaintext (without the padding).
    pub content_hash: [u8; 32],
    /// Size of the blob (header, chunks and tags).
    pub blob_size: u64,
}

fn nonce(i: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&i.to_be_bytes());
    n[8] = last as u8;
    n
}

fn ad(ctx: &BlobContext<'_>, i: u64, last: bool) -> Result<Vec<u8>, ResourceCryptoError> {
    let gl = u16::try_from(ctx.group_id.len()).map_err(|_| ResourceCryptoError::GroupIdTooLong)?;
    let mut v = Vec::with_capacity(AD_LABEL.len() + 2 + ctx.group_id.len() + 16 + 17);
    v.extend_from_slice(AD_LABEL);
    v.extend_from_slice(&gl.to_be_bytes());
    v.extend_from_slice(ctx.group_id);
    v.extend_from_slice(&ctx.resource_id);
    v.extend_from_slice(&ctx.version.to_be_bytes());
    v.extend_from_slice(&i.to_be_bytes());
    v.push(last as u8);
    Ok(v)
}

/// Reads until `buf` is full or the reader ends; returns how many bytes.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a source in chunks of one size, one chunk ahead, so that each chunk
/// is known to be the last one or not. Memory: two chunks.
struct Chunks<R> {
    source: R,
    cur: Vec<u8>,
    next: Vec<u8>,
    /// Bytes in `cur`, and in `next` once read ahead.
    cur_len: usize,
    next_len: usize,
    /// Index of the chunk in `cur`; `None` before the first one.
    index: Option<u64>,
    last: bool,
}

impl<R: Read> Chunks<R> {
    fn new(source: R, size: usize) -> Self {
        Chunks { source, cur: vec![0; size], next: vec![0; size], cur_len: 0, next_len: 0, index: None, last: false }
    }

    /// Moves to the next chunk: returns its index and whether it is the last
    /// (a short chunk is the last; a full one is the last if nothing follows),
    /// or `None` after the last one. A short chunk, even an empty one, is
    /// returned: the caller decides whether it is valid.
    fn advance(&mut self) -> std::io::Result<Option<(u64, bool)>> {
        let index = match self.index {
            None => {
                self.cur_len = fill(&mut self.source, &mut self.cur)?;
                0
            }
            Some(_) if self.last => return Ok(None),
            Some(i) => {
                std::mem::swap(&mut self.cur, &mut self.next);
                self.cur_len = self.next_len;
                i + 1
            }
        };
        self.next_len = if self.cur_len == self.cur.len() { fill(&mut self.source, &mut self.next)? } else { 0 };
        self.last = self.next_len == 0;
        self.index = Some(index);
        Ok(Some((index, self.last)))
    }

    /// The current chunk's bytes.
    fn chunk(&mut self) -> &mut [u8] {
        &mut self.cur[..self.cur_len]
    }
}

/// Encrypts `plain` into `out` chunk by chunk (memory: two chunks).
pub fn seal(
    key: &ContentKey,
    ctx: &BlobContext<'_>,
    plain: impl Read,
    mut out: impl Write,
) -> Result<Sealed, ResourceCryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).map_err(|_| ResourceCryptoError::BadHeader)?;
    out.write_all(MAGIC)?;
    out.write_all(&(CHUNK_SIZE as u32).to_be_bytes())?;
    let mut chunks = Chunks::new(Padded { inner: plain, size: 0, pad: None }, CHUNK_SIZE);
    let mut hasher = blake3::Hasher::new();
    let (mut blob_size, mut offset) = (8u64, 0u64);
    while let Some((i, last)) = chunks.advance()? {
        // The chunk's real content (the rest is padding): the source's `size`
        // counts every real byte read so far, this chunk's included.
        let size = chunks.source.size;
        let cur = chunks.chunk();
        let real = usize::try_from(size.saturating_sub(offset)).unwrap_or(usize::MAX).min(cur.len());
        hasher.update(&cur[..real]);
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce(i, last)), &ad(ctx, i, last)?, cur)
            .map_err(|_| ResourceCryptoError::Tampered { chunk: i })?;
        out.write_all(cur)?;
        out.write_all(&tag)?;
        blob_size += (cur.len() + TAG) as u64;
        offset += cur.len() as u64;
    }
    out.flush()?;
    Ok(Sealed { size: chunks.source.size, content_hash: *hasher.finalize().as_bytes(), blob_size })
}

/// Decrypts a blob from `blob` into `out`, checking every chunk, the final
/// chunk, the size and padding, and the content hash the manifest promises.
/// Only the real content (not the padding) is written. Memory: two chunks.
/// Every byte written has been authenticated, but on error the caller must
/// still discard what was written (the rest is missing or not this version).
pub fn open(
    key: &ContentKey,
    ctx: &BlobContext<'_>,
    mut blob: impl Read,
    mut out: impl Write,
    expected: &Expected,
) -> Result<u64, ResourceCryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).map_err(|_| ResourceCryptoError::BadHeader)?;
    let mut header = [0u8; 8];
    if fill(&mut blob, &mut header)? != 8 || &header[..4] != MAGIC {
        return Err(ResourceCryptoError::BadHeader);
    }
    let chunk = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if chunk == 0 || chunk > 16 << 20 {
        return Err(ResourceCryptoError::BadHeader);
    }
    let full = chunk + TAG;
    let mut chunks = Chunks::new(blob, full);
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    while let Some((i, last)) = chunks.advance()? {
        let cur = chunks.chunk();
        let cur_len = cur.len();
        if cur_len < TAG {
            return Err(if cur_len == 0 && i > 0 {
                ResourceCryptoError::Truncated
            } else {
                ResourceCryptoError::Tampered { chunk: i }
            });
        }
        let ct_len = cur_len - TAG;
        let tag = aes_gcm::Tag::clone_from_slice(&cur[ct_len..]);
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce(i, last)), &ad(ctx, i, last)?, &mut cur[..ct_len], &tag)
            .map_err(|_| {
                if last && cur_len == full {
                    ResourceCryptoError::Truncated
                } else {
                    ResourceCryptoError::Tampered { chunk: i }
                }
            })?;
        // Real content first, then padding, which must be zero.
        let content = usize::try_from(expected.size.saturating_sub(size)).unwrap_or(usize::MAX).min(ct_len);
        if cur[content..ct_len].iter().any(|&b| b != 0) {
            return Err(ResourceCryptoError::SizeMismatch { expected: expected.size });
        }
        hasher.update(&cur[..content]);
        out.write_all(&cur[..content])?;
        size += ct_len as u64;
    }
    out.flush()?;
    if size != padded_len(expected.size) {
        return Err(ResourceCryptoError::SizeMismatch { expected: expected.size });
    }
    if hasher.finalize().as_bytes() != &expected.content_hash {
        return Err(ResourceCryptoError::HashMismatch);
    }
    Ok(expected.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_lengths() {
        // Small lengths are kept; larger ones lose their low bits; the
        // overhead stays under 12%; the function is monotonic.
        for (len, want) in
            [(0, 0), (1, 1), (2, 2), (3, 3), (9, 10), (1000, 1024), (1 << 20, 1 << 20), (100 << 20, 100 << 20)]
        {
            assert_eq!(padded_len(len), want, "len {len}");
        }
        assert_eq!(padded_len((1 << 20) + 1), (1 << 20) + (1 << 15));
        let mut prev = 0;
        for len in (0..5_000_000u64).step_by(997) {
            let p = padded_len(len);
            assert!(p >= len && p >= prev && (p - len) * 100 <= len * 12 + 100, "len {len} -> {p}");
            prev = p;
        }
    }

    fn ctx() -> BlobContext<'static> {
        BlobContext { group_id: b"group-1", resource_id: [7; 16], version: 3 }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[0]).collect()
    }

    fn sealed(n: usize) -> (ContentKey, Vec<u8>, Vec<u8>, Sealed) {
        let key = ContentKey::generate();
        let plain = data(n);
        let mut blob = Vec::new();
        let s = seal(&key, &ctx(), plain.as_slice(), &mut blob).unwrap();
        (key, plain, blob, s)
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for n in [0, 1, 1024, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 12345] {
            let (key, plain, blob, s) = sealed(n);
            assert_eq!(s.size, n as u64);
            assert_eq!(s.blob_size, blob.len() as u64);
            assert_eq!(&s.content_hash, blake3::hash(&plain).as_bytes());
            let mut out = Vec::new();
            let exp = Expected { size: s.size, content_hash: s.content_hash };
            assert_eq!(open(&key, &ctx(), blob.as_slice(), &mut out, &exp).unwrap(), n as u64);
            assert!(out == plain, "size {n}");
            let chunks = padded_len(n as u64).div_ceil(CHUNK_SIZE as u64).max(1);
            assert_eq!(s.blob_size, 8 + padded_len(n as u64) + chunks * TAG as u64, "size {n}");
            assert!(!blob.windows(16.min(n.max(1))).any(|w| n >= 16 && w == &plain[..16]), "plaintext visible in blob");
        }
    }

    #[test]
    fn detects_bit_flips_swaps_truncation_and_moves() {
        let (key, _, blob, s) = sealed(3 * CHUNK_SIZE + 100);
        let full = CHUNK_SIZE + TAG;
        let exp = Expected { size: s.size, content_hash: s.content_hash };
        let open_ = |b: &[u8], c: &BlobContext<'_>| open(&key, c, b, std::io::sink(), &exp);
        // A flipped bit.
        let mut b = blob.clone();
        b[8 + full + 77] ^= 1;
        assert!(matches!(open_(&b, &ctx()), Err(ResourceCryptoError::Tampered { chunk: 1 })));
        // Two chunks swapped.
        let mut b = blob.clone();
        let (c0, c1) = (b[8..8 + full].to_vec(), b[8 + full..8 + 2 * full].to_vec());
        b[8..8 + full].copy_from_slice(&c1);
        b[8 + full..8 + 2 * full].copy_from_slice(&c0);
        assert!(matches!(open_(&b, &ctx()), Err(ResourceCryptoError::Tampered { chunk: 0 })));
        // Truncated at a chunk boundary (the final chunk dropped).
        let b = &blob[..8 + 3 * full];
        assert!(matches!(open_(b, &ctx()), Err(ResourceCryptoError::Truncated)));
        // Truncated inside a chunk.
        let b = &blob[..blob.len() - 5];
        assert!(matches!(open_(b, &ctx()), Err(ResourceCryptoError::Tampered { .. })));
        // Another resource, version or group.
        for other in [
            BlobContext { resource_id: [8; 16], ..ctx() },
            BlobContext { version: 4, ..ctx() },
            BlobContext { group_id: b"group-2", ..ctx() },
        ] {
            assert!(matches!(open_(&blob, &other), Err(ResourceCryptoError::Tampered { chunk: 0 })));
        }
        // Another key.
        let wrong = ContentKey::generate();
        assert!(open(&wrong, &ctx(), blob.as_slice(), std::io::sink(), &exp).is_err());
        // A hash that is not this content's.
        assert!(matches!(
            open(&key, &ctx(), blob.as_slice(), std::io::sink(), &Expected { content_hash: [0; 32], ..exp }),
            Err(ResourceCryptoError::HashMismatch)
        ));
        // A manifest that lies about the size (smaller: the padding is not
        // zero; larger: the blob is too short).
        for size in [s.size - 1, s.size + 1, 0] {
            assert!(matches!(
                open(&key, &ctx(), blob.as_slice(), std::io::sink(), &Expected { size, ..exp }),
                Err(ResourceCryptoError::SizeMismatch { .. }) | Err(ResourceCryptoError::HashMismatch)
            ));
        }
        // Not a blob at all.
        assert!(matches!(open_(b"nope", &ctx()), Err(ResourceCryptoError::BadHeader)));
    }
}
