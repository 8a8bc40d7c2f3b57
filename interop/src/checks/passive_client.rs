//! `passive-client-welcome.json`, `passive-client-handling-commit.json` and
//! `passive-client-random.json`: a passive member joins and follows the group
//! through openmls, on the in-memory storage.

use crate::harness::CaseVerifier;
use crate::passive::{memory_provider, run_passive_client, PassiveCase};
use crate::suite::Suite;
use crate::Error;

/// Runs [`run_passive_client`] on a fresh in-memory provider per case.
#[derive(Debug)]
pub struct PassiveClient;

impl CaseVerifier for PassiveClient {
    type Case = PassiveCase;

    fn suite(c: &PassiveCase) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &PassiveCase, _: Option<&Suite>) -> Result<(), Error> {
        run_passive_client(&memory_provider(), c)
    }
}
