//! `passive-client-welcome.json`, `passive-client-handling-commit.json` and
//! `passive-client-random.json`: a passive member joins and follows the group
//! through openmls, on Grove's client store (`grove_client`'s sled storage).

use openmls_traits::types::Ciphersuite;

use crate::harness::CaseVerifier;
use crate::passive::{run_passive_client, GroveStore, PassiveCase};
use crate::Error;

/// Runs [`run_passive_client`] on a fresh Grove client store per case: a
/// [`GroveStore`] (`grove_client::storage::GroveProvider::open`) in a new
/// temporary home directory, one sled transaction per step, reopened along
/// the way.
#[derive(Debug)]
pub struct PassiveClient;

impl CaseVerifier for PassiveClient {
    type Case = PassiveCase;

    fn suite(c: &PassiveCase) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &PassiveCase, _: Option<Ciphersuite>) -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::store("creating a temporary home", e))?;
        let mut store = GroveStore::open(dir.path().join("grove-home"))?;
        run_passive_client(&mut store, c)
    }
}
