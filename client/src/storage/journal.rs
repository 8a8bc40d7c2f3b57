//! The commit journal: how a transaction becomes durable without `sled::Db::flush`.
//!
//! # Why
//!
//! A durable sled commit (`apply_batch` then `flush`) hands the log buffer to
//! sled's I/O thread pool twice (once to seal the batch, once to write it) and
//! waits for it; on a two-core machine that costs 40 to 60 µs per operation,
//! more than sending an application message itself (see the "Client
//! benchmarks" section of `docs/benchmarks.md` for the profile).
//!
//! # How
//!
//! [`Journal::append`] writes the whole overlay of a transaction as one record
//! to an append-only file and `fdatasync`s it on the calling thread. Only then
//! does the store make the writes visible, in memory (its `pending` map, read
//! before sled). So once a commit returns, its record is on disk.
//!
//! A *checkpoint* moves the pending writes into sled as one batch, flushes
//! sled, and only then empties the journal. It runs when the journal grows
//! past [`CHECKPOINT_BYTES`], on [`SledStorage::flush`](super::SledStorage::flush)
//! and when the store is dropped. So sled alone holds the state of the last
//! checkpoint (or, after a crash during one, possibly that checkpoint's batch,
//! which sled applies atomically), and the journal holds every commit since.
//!
//! On open, every complete record is applied again, in order, then sled is
//! flushed and the journal emptied. Records carry full values (puts and
//! deletes, never deltas), so applying one whose writes sled already has is
//! harmless: the result is the state after the last committed transaction. A
//! record cut short by a crash fails its length or checksum test and is
//! ignored with everything after it (nothing is ever appended after it): that
//! transaction never returned, and none of its writes became visible before
//! its record was durable.
//!
//! # Record format
//!
//! `"GJ01"`, payload length (u32 LE), XXH64 of the payload seeded with its
//! length (u64 LE), payload. The payload is a sequence of entries: key length
//! (u32 LE), key, then `0x00` (delete) or `0x01`, value length (u32 LE), value.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use super::Overlay;

/// File name of the journal, inside the sled directory (so that removing or
/// moving the store's directory takes its journal along).
pub(crate) const JOURNAL_FILE: &str = "grove.journal";

/// The journal is checkpointed when it grows past this size.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;

const MAGIC: &[u8; 4] = b"GJ01";
const HEADER_LEN: usize = 4 + 4 + 8;
const DELETE: u8 = 0;
const PUT: u8 = 1;

/// The append-only journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    /// Bytes of complete records in the file.
    len: u64,
    /// Reusable record buffer.
    buf: Vec<u8>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and returns the overlays of its
    /// complete records, in commit order. The caller applies them, makes them
    /// durable in sled and then calls [`reset`](Self::reset).
    pub(crate) fn open(dir: &Path) -> io::Result<(Self, Vec<Overlay>)> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(dir.join(JOURNAL_FILE))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, valid) = parse(&bytes);
        let mut journal = Journal { file, len: bytes.len() as u64, buf: Vec::new() };
        if (valid as u64) < journal.len {
            // A torn tail: never appended after, so cut it off now.
            journal.truncate(valid as u64)?;
        }
        Ok((journal, records))
    }

    /// Bytes of records since the last checkpoint.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one record holding `overlay` and waits until it is on disk.
    ///
    /// On error the file may hold a partial record at its end; the caller must
    /// not append again (see `SledStorage`'s poisoning).
    pub(crate) fn append(&mut self, overlay: &Overlay) -> io::Result<()> {
        encode_record(overlay, &mut self.buf)?;
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.len += self.buf.len() as u64;
        // Keep a normal-sized buffer around, not the largest record ever.
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Empties the journal. Only call it once every record's writes are
    /// durable in sled.
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.truncate(0)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        use std::io::Seek;
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.file.seek(io::SeekFrom::Start(len))?;
        self.len = len;
        Ok(())
    }
}

fn len_u32(len: usize) -> io::Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "journal record larger than 4 GiB"))
}

/// Encodes `overlay` as one record into `out` (cleared first).
fn encode_record(overlay: &Overlay, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 12]); // length and checksum, filled below
    for (key, value) in overlay {
        out.extend_from_slice(&len_u32(key.len())?);
        out.extend_from_slice(key);
        match value {
            None => out.push(DELETE),
            Some(value) => {
                out.push(PUT);
                out.extend_from_slice(&len_u32(value.len())?);
                out.extend_from_slice(value);
            }
        }
    }
    let payload_len = out.len() - HEADER_LEN;
    let sum = xxh64(&out[HEADER_LEN..], payload_len as u64);
    out[4..8].copy_from_slice(&len_u32(payload_len)?);
    out[8..16].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// For the fuzz target: `bytes` as a journal file, then as the payload of a
/// record with a valid header and checksum.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_parse(bytes: &[u8]) {
    let _ = parse(bytes);
    let Ok(len) = len_u32(bytes.len()) else { return };
    let mut record = MAGIC.to_vec();
    record.extend_from_slice(&len);
    record.extend_from_slice(&xxh64(bytes, bytes.len() as u64).to_le_bytes());
    record.extend_from_slice(bytes);
    let _ = parse(&record);
}

/// The complete records at the start of `bytes`, and how many bytes they span.
fn parse(bytes: &[u8]) -> (Vec<Overlay>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some((overlay, next)) = parse_record(bytes, pos) {
        records.push(overlay);
        pos = next;
    }
    (records, pos)
}

fn take(bytes: &[u8], pos: &mut usize, n: usize) -> Option<std::ops::Range<usize>> {
    let end = pos.checked_add(n)?;
    if end > bytes.len() {
        return None;
    }
    let range = *pos..end;
    *pos = end;
    Some(range)
}

fn take_u32(bytes: &[u8], pos: &mut usize) -> Option<usize> {
    let r = take(bytes, pos, 4)?;
    Some(u32::from_le_bytes(bytes[r].try_into().ok()?) as usize)
}

/// One record at `pos`: its overlay and where the next record starts, or
/// `None` if there is no complete, intact record there.
fn parse_record(bytes: &[u8], mut pos: usize) -> Option<(Overlay, usize)> {
    let magic = take(bytes, &mut pos, 4)?;
    if &bytes[magic] != MAGIC {
        return None;
    }
    let payload_len = take_u32(bytes, &mut pos)?;
    let sum = u64::from_le_bytes(bytes[take(bytes, &mut pos, 8)?].try_into().ok()?);
    let payload = &bytes[take(bytes, &mut pos, payload_len)?];
    if xxh64(payload, payload_len as u64) != sum {
        return None;
    }
    let mut overlay = Overlay::new();
    let mut p = 0;
    while p < payload.len() {
        let key_len = take_u32(payload, &mut p)?;
        let key = payload[take(payload, &mut p, key_len)?].to_vec();
        let tag = payload[take(payload, &mut p, 1)?.start];
        let value = match tag {
            DELETE => None,
            PUT => {
                let value_len = take_u32(payload, &mut p)?;
                Some(payload[take(payload, &mut p, value_len)?].to_vec())
            }
            _ => return None,
        };
        overlay.insert(key, value);
    }
    Some((overlay, pos))
}

/// XXH64 of `data` with `seed`, for torn-record detection (`twox-hash`: see
/// docs/dependencies.md).
pub(crate) fn xxh64(data: &[u8], seed: u64) -> u64 {
    twox_hash::XxHash64::oneshot(seed, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_reference_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // 39 bytes: the 32-byte stripe path, then words, a half word and bytes.
        assert_eq!(xxh64(b"Nobody inspects the spammish repetition", 0), 0xFBCE_A83C_8A37_8BF1);
    }

    fn overlay(entries: &[(&[u8], Option<&[u8]>)]) -> Overlay {
        entries.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect()
    }

    #[test]
    fn records_round_trip_and_torn_tails_are_dropped() {
        let a = overlay(&[(b"k1", Some(b"v1")), (b"k2", None), (b"", Some(b""))]);
        let b = overlay(&[(b"k1", Some(&[7u8; 5000]))]);
        let mut bytes = Vec::new();
        let mut buf = Vec::new();
        for o in [&a, &b] {
            encode_record(o, &mut buf).unwrap();
            bytes.extend_from_slice(&buf);
        }
        let (records, valid) = parse(&bytes);
        assert_eq!(records, vec![a.clone(), b.clone()]);
        assert_eq!(valid, bytes.len());
        let first_len = bytes.len() - buf.len();
        // Every cut inside the second record leaves exactly the first one.
        for cut in first_len..bytes.len() {
            let (records, valid) = parse(&bytes[..cut]);
            assert_eq!((records, valid), (vec![a.clone()], first_len), "cut at {cut}");
        }
        // A flipped byte or zeroed sector in the second record drops it.
        for at in [first_len + 5, first_len + 17, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert_eq!(parse(&bad).0, vec![a.clone()], "flip at {at}");
        }
        let mut zeroed = bytes.clone();
        zeroed[first_len + 512..first_len + 1024].fill(0);
        assert_eq!(parse(&zeroed).0, vec![a]);
    }
}
