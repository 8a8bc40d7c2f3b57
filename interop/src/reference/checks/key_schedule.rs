//! `key-schedule.json`: epoch after epoch from `initial_init_secret`.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::key_schedule::{exporter, from_joiner, joiner_secret};
use crate::reference::mls::{Codec, GroupContext};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// `exporter`.
#[derive(Debug, Deserialize)]
pub struct Exporter {
    /// Used as the literal label text: the vector's value looks like hex,
    /// but only its characters (not the decoded bytes) reproduce `secret`,
    /// as in openmls's own key-schedule KAT. See docs/interop.md.
    label: String,
    context: Hex,
    length: usize,
    secret: Hex,
}

/// One epoch.
#[derive(Debug, Deserialize)]
pub struct Epoch {
    tree_hash: Hex,
    commit_secret: Hex,
    psk_secret: Hex,
    confirmed_transcript_hash: Hex,
    group_context: Hex,
    joiner_secret: Hex,
    welcome_secret: Hex,
    init_secret: Hex,
    sender_data_secret: Hex,
    encryption_secret: Hex,
    exporter_secret: Hex,
    epoch_authenticator: Hex,
    external_secret: Hex,
    confirmation_key: Hex,
    membership_key: Hex,
    resumption_psk: Hex,
    external_pub: Hex,
    exporter: Exporter,
}

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    group_id: Hex,
    initial_init_secret: Hex,
    epochs: Vec<Epoch>,
}

/// Our key schedule on the provider's HKDF and HPKE key derivation.
#[derive(Debug)]
pub struct KeySchedule;

impl CaseVerifier for KeySchedule {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let mut init_secret = c.initial_init_secret.0.clone();
        for (i, e) in c.epochs.iter().enumerate() {
            let f = |name: &str| format!("epochs[{i}].{name}");
            let gc = GroupContext {
                version: 1,
                cipher_suite: c.cipher_suite,
                group_id: c.group_id.0.clone(),
                epoch: i as u64,
                tree_hash: e.tree_hash.0.clone(),
                confirmed_transcript_hash: e.confirmed_transcript_hash.0.clone(),
                extensions: vec![],
            }
            .to_bytes();
            expect_bytes(f("group_context"), &e.group_context, &gc)?;
            let joiner = joiner_secret(s, &init_secret, &e.commit_secret, &gc)?;
            expect_bytes(f("joiner_secret"), &e.joiner_secret, &joiner)?;
            let k = from_joiner(s, &joiner, &e.psk_secret, &gc)?;
            expect_bytes(f("welcome_secret"), &e.welcome_secret, &k.welcome_secret)?;
            expect_bytes(f("init_secret"), &e.init_secret, &k.init_secret)?;
            expect_bytes(f("sender_data_secret"), &e.sender_data_secret, &k.sender_data_secret)?;
            expect_bytes(f("encryption_secret"), &e.encryption_secret, &k.encryption_secret)?;
            expect_bytes(f("exporter_secret"), &e.exporter_secret, &k.exporter_secret)?;
            expect_bytes(f("epoch_authenticator"), &e.epoch_authenticator, &k.epoch_authenticator)?;
            expect_bytes(f("external_secret"), &e.external_secret, &k.external_secret)?;
            expect_bytes(f("confirmation_key"), &e.confirmation_key, &k.confirmation_key)?;
            expect_bytes(f("membership_key"), &e.membership_key, &k.membership_key)?;
            expect_bytes(f("resumption_psk"), &e.resumption_psk, &k.resumption_psk)?;
            let (_, external_pub) = s.derive_key_pair(&k.external_secret)?;
            expect_bytes(f("external_pub"), &e.external_pub, &external_pub)?;
            let x = &e.exporter;
            expect_bytes(
                f("exporter.secret"),
                &x.secret,
                &exporter(s, &k.exporter_secret, x.label.as_bytes(), &x.context, x.length)?,
            )?;
            init_secret = k.init_secret;
        }
        Ok(())
    }
}
