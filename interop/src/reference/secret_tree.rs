//! The secret tree (§9) and the sender-data keys (§6.3.2), from the RFC.

use crate::reference::suite::Suite;
use crate::reference::tree_math as tm;
use crate::Error;

/// Which ratchet of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatchetKind {
    /// The handshake ratchet (proposals and commits).
    Handshake,
    /// The application ratchet.
    Application,
}

/// A key and nonce for one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNonce {
    /// The AEAD key.
    pub key: Vec<u8>,
    /// The AEAD nonce (before reuse-guard XOR).
    pub nonce: Vec<u8>,
}

/// The secret of leaf `leaf` in a tree of `n_leaves` leaves rooted at
/// `encryption_secret`.
pub fn leaf_secret(s: &Suite, encryption_secret: &[u8], n_leaves: u32, leaf: u32) -> Result<Vec<u8>, Error> {
    let target = tm::leaf_node(leaf);
    let mut x = tm::root(n_leaves);
    let mut secret = encryption_secret.to_vec();
    while x != target {
        let (l, r) = match (tm::left(x), tm::right(x)) {
            (Some(l), Some(r)) => (l, r),
            _ => return Err(Error::decode("secret tree walk reached a leaf early")),
        };
        if target < x {
            secret = s.expand_with_label(&secret, b"tree", b"left", s.nh())?;
            x = l;
        } else {
            secret = s.expand_with_label(&secret, b"tree", b"right", s.nh())?;
            x = r;
        }
    }
    Ok(secret)
}

/// The key and nonce of `generation` in a leaf's `kind` ratchet.
pub fn ratchet_key(s: &Suite, leaf_secret: &[u8], kind: RatchetKind, generation: u32) -> Result<KeyNonce, Error> {
    let label: &[u8] = match kind {
        RatchetKind::Handshake => b"handshake",
        RatchetKind::Application => b"application",
    };
    let mut secret = s.expand_with_label(leaf_secret, label, &[], s.nh())?;
    for g in 0..generation {
        secret = s.derive_tree_secret(&secret, b"secret", g, s.nh())?;
    }
    Ok(KeyNonce {
        key: s.derive_tree_secret(&secret, b"key", generation, s.nk())?,
        nonce: s.derive_tree_secret(&secret, b"nonce", generation, s.nn())?,
    })
}

/// The sender-data key and nonce for a ciphertext (§6.3.2): the sample is the
/// first `Nh` bytes of the ciphertext (all of it when shorter).
pub fn sender_data_key(s: &Suite, sender_data_secret: &[u8], ciphertext: &[u8]) -> Result<KeyNonce, Error> {
    let sample = &ciphertext[..ciphertext.len().min(s.nh())];
    Ok(KeyNonce {
        key: s.expand_with_label(sender_data_secret, b"key", sample, s.nk())?,
        nonce: s.expand_with_label(sender_data_secret, b"nonce", sample, s.nn())?,
    })
}
