//! `psk_secret.json`: combining external PSKs.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::key_schedule::{external_psk_id, psk_secret};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// One PSK.
#[derive(Debug, Deserialize)]
pub struct Psk {
    psk_id: Hex,
    psk: Hex,
    psk_nonce: Hex,
}

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    psks: Vec<Psk>,
    psk_secret: Hex,
}

/// Our §8.4 combination on the provider's HKDF.
#[derive(Debug)]
pub struct PskSecret;

impl CaseVerifier for PskSecret {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let psks: Vec<_> = c.psks.iter().map(|p| (external_psk_id(&p.psk_id, &p.psk_nonce), p.psk.0.clone())).collect();
        expect_bytes("psk_secret", &c.psk_secret, &psk_secret(s, &psks)?)
    }
}
