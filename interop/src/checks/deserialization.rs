//! `deserialization.json` through `tls_codec`, the TLS codec openmls ships
//! with (with its `mls` feature, which openmls turns on: minimal-length
//! variable-length headers, lengths below 2^30).

use std::io::Read as _;

use openmls_traits::types::Ciphersuite;
use serde::Deserialize;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

use crate::harness::{CaseVerifier, Hex};
use crate::{expect_bytes, expect_eq, Error};

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    vlbytes_header: Hex,
    length: usize,
}

/// Vectors up to this length are also decoded as a whole `opaque<V>`.
const WHOLE_VECTOR_MAX: usize = 1 << 16;

fn codec(what: &str, e: tls_codec::Error) -> Error {
    Error::decode(format!("{what}: {e:?}"))
}

/// The header decodes with `tls_codec::vlen::read_length` (consuming it
/// all) to `length`, `write_length` gives the same header back, and a
/// longer-than-needed encoding of the same length is refused. Up to 64 KiB
/// the header followed by `length` bytes also decodes as `VLBytes` and
/// encodes back to the same bytes.
#[derive(Debug)]
pub struct Deserialization;

impl CaseVerifier for Deserialization {
    type Case = Case;

    fn suite(_: &Case) -> Option<u16> {
        None
    }

    fn verify(c: &Case, _: Option<Ciphersuite>) -> Result<(), Error> {
        let mut reader: &[u8] = &c.vlbytes_header;
        let (length, header_len) = tls_codec::vlen::read_length(&mut reader).map_err(|e| codec("read_length", e))?;
        expect_eq("length", c.length, length)?;
        expect_eq("header bytes read", c.vlbytes_header.len(), header_len)?;
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map_err(|e| Error::decode(e.to_string()))?;
        expect_eq("bytes left after the header", 0, rest.len())?;

        let mut header = Vec::new();
        tls_codec::vlen::write_length(&mut header, c.length).map_err(|e| codec("write_length", e))?;
        expect_bytes("vlbytes_header (re-encoded)", &c.vlbytes_header, &header)?;

        // The same length with an 8-byte header (RFC 9000's longest form)
        // is not minimal and must be refused.
        let long = (0xc000_0000_0000_0000u64 | c.length as u64).to_be_bytes();
        if tls_codec::vlen::read_length(&mut &long[..]).is_ok() {
            return Err(Error::NotRefused(format!("non-minimal 8-byte header for length {}", c.length)));
        }

        if c.length <= WHOLE_VECTOR_MAX {
            let body: Vec<u8> = (0..c.length).map(|i| i as u8).collect();
            let bytes = [&c.vlbytes_header[..], &body].concat();
            let v = VLBytes::tls_deserialize_exact(&bytes).map_err(|e| codec("VLBytes", e))?;
            expect_bytes("VLBytes content", &body, v.as_slice())?;
            expect_bytes(
                "VLBytes (re-encoded)",
                &bytes,
                &v.tls_serialize_detached().map_err(|e| codec("VLBytes", e))?,
            )?;
        }
        Ok(())
    }
}
