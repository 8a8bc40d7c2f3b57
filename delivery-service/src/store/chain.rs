//! The hash chain over each group's log, and the head the store keeps of it.
//!
//! Every stored log entry carries `chain(seq) = SHA-256(chain(seq - 1) ||
//! internal id || seq || entry)`, where `entry` is the entry's encoding without
//! the chain. The chain of a group starts at [`base`]: for a new group at
//! seq 0, and for a log migrated from format 1 whose first entries were already
//! pruned, at the highest pruned seq. A head (seq, epoch, chain) is what the
//! watermark file records per group ([`super::watermark`]); matching a head
//! against the log proves that the log still holds everything it held when the
//! head was written, byte for byte.

use sha2::{Digest as _, Sha256};

/// A chain value.
pub type Chain = [u8; 32];

const DOMAIN: &[u8] = b"grove-ds log chain v1\0";

/// The chain value before the entry `after + 1` of group `internal_id`, for a
/// log whose entries up to `after` are not covered.
pub fn base(internal_id: u64, after: u64) -> Chain {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(internal_id.to_be_bytes());
    h.update(after.to_be_bytes());
    h.finalize().into()
}

/// The chain value of entry `seq` (encoded as `entry`), following `prev`.
pub fn next(prev: &Chain, internal_id: u64, seq: u64, entry: &[u8]) -> Chain {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(internal_id.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.update(entry);
    h.finalize().into()
}

/// The newest point of one group's log that the store vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The group's internal id.
    pub internal_id: u64,
    /// The highest sequence number written (or pruned), 0 for an empty log.
    pub seq: u64,
    /// A lower bound of the group's current epoch.
    pub epoch: u64,
    /// The chain value at `seq`.
    pub chain: Chain,
}

impl Head {
    /// The head of a new, empty group.
    pub fn empty(internal_id: u64, epoch: u64) -> Self {
        Head { internal_id, seq: 0, epoch, chain: base(internal_id, 0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_depends_on_every_input() {
        let b = base(1, 0);
        assert_ne!(b, base(2, 0));
        assert_ne!(b, base(1, 1));
        let c = next(&b, 1, 1, b"m");
        assert_ne!(c, next(&b, 1, 2, b"m"));
        assert_ne!(c, next(&b, 2, 1, b"m"));
        assert_ne!(c, next(&b, 1, 1, b"n"));
        assert_ne!(c, next(&base(1, 1), 1, 1, b"m"));
        assert_eq!(c, next(&b, 1, 1, b"m"), "deterministic");
    }
}
