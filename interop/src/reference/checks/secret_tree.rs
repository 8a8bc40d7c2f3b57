//! `secret-tree.json`: sender-data keys and every leaf's ratchets.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::secret_tree::{leaf_secret, ratchet_key, sender_data_key, RatchetKind};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// `sender_data`.
#[derive(Debug, Deserialize)]
pub struct SenderData {
    sender_data_secret: Hex,
    ciphertext: Hex,
    key: Hex,
    nonce: Hex,
}

/// One generation of one leaf.
#[derive(Debug, Deserialize)]
pub struct Generation {
    generation: u32,
    handshake_key: Hex,
    handshake_nonce: Hex,
    application_key: Hex,
    application_nonce: Hex,
}

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    sender_data: SenderData,
    encryption_secret: Hex,
    leaves: Vec<Vec<Generation>>,
}

/// Our secret tree derivation on the provider's HKDF.
#[derive(Debug)]
pub struct SecretTree;

impl CaseVerifier for SecretTree {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let sd = &c.sender_data;
        let kn = sender_data_key(s, &sd.sender_data_secret, &sd.ciphertext)?;
        expect_bytes("sender_data.key", &sd.key, &kn.key)?;
        expect_bytes("sender_data.nonce", &sd.nonce, &kn.nonce)?;

        let n_leaves = c.leaves.len() as u32;
        for (leaf, gens) in c.leaves.iter().enumerate() {
            let secret = leaf_secret(s, &c.encryption_secret, n_leaves, leaf as u32)?;
            for g in gens {
                let hs = ratchet_key(s, &secret, RatchetKind::Handshake, g.generation)?;
                let app = ratchet_key(s, &secret, RatchetKind::Application, g.generation)?;
                let at = |f: &str| format!("leaves[{leaf}] generation {}: {f}", g.generation);
                expect_bytes(at("handshake_key"), &g.handshake_key, &hs.key)?;
                expect_bytes(at("handshake_nonce"), &g.handshake_nonce, &hs.nonce)?;
                expect_bytes(at("application_key"), &g.application_key, &app.key)?;
                expect_bytes(at("application_nonce"), &g.application_nonce, &app.nonce)?;
            }
        }
        Ok(())
    }
}
