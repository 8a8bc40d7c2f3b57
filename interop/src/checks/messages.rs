//! TODO

use crate::harness::CaseVerifier;
use crate::suite::Suite;
use crate::Error;

/// TODO
#[derive(Debug)]
pub struct Messages;

impl CaseVerifier for Messages {
    type Case = serde_json::Value;

    fn suite(c: &serde_json::Value) -> Option<u16> {
        c.get("cipher_suite").and_then(|v| v.as_u64()).map(|v| v as u16)
    }

    fn verify(_: &serde_json::Value, _: Option<&Suite>) -> Result<(), Error> {
        Err(Error::decode("not implemented"))
    }
}
