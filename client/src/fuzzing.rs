//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off
//! in every other build): Grove's own parsers of bytes from disk or from other
//! members. Each takes arbitrary bytes and must return, never panic.

use crate::resource_crypto::{BlobContext, ContentKey, Expected};

/// The commit journal's reader: `bytes` as a journal file, and `bytes` as the
/// payload of one record with a valid header and checksum (so that the
/// payload parser is reached without the fuzzer guessing an XXH64).
pub fn journal(bytes: &[u8]) {
    crate::storage::journal::fuzz_parse(bytes);
}

/// A decrypted application message: the envelope, and a resource manifest's
/// checks when it carries one.
pub fn envelope(bytes: &[u8]) {
    crate::client::fuzz_envelope(bytes);
}

/// A blob as the DS serves it, opened with a fixed key: the header, the
/// chunking, the padding and the tag checks.
pub fn blob(bytes: &[u8]) {
    let ctx = BlobContext { group_id: b"fuzz", resource_id: [7; 16], version: 1 };
    let key = ContentKey::from_bytes([9; 32]);
    let expected = Expected { size: bytes.len() as u64, content_hash: [0; 32] };
    let _ = crate::resource_crypto::open(&key, &ctx, bytes, std::io::sink(), &expected);
}
