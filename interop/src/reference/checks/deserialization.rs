//! `deserialization.json`: variable-length vector headers.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::codec::{Reader, Writer};
use crate::{expect_bytes, expect_eq, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    vlbytes_header: Hex,
    length: usize,
}

/// Decodes the header with our reader (which must consume it all) and
/// re-encodes the length to the same header.
#[derive(Debug)]
pub struct Deserialization;

impl CaseVerifier for Deserialization {
    type Case = Case;

    fn suite(_: &Case) -> Option<u16> {
        None
    }

    fn verify(c: &Case, _: Option<Ciphersuite>) -> Result<(), Error> {
        let mut r = Reader::new(&c.vlbytes_header);
        expect_eq("length", c.length, r.varint()?)?;
        r.finish("vlbytes_header")?;
        expect_bytes("vlbytes_header (re-encoded)", &c.vlbytes_header, &Writer::new().varint(c.length).finish())
    }
}
