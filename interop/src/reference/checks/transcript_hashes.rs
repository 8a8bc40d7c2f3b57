//! `transcript-hashes.json`: confirmation tag and transcript hashes of a Commit.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::codec::Writer;
use crate::reference::key_schedule::{confirmed_transcript_hash, interim_transcript_hash};
use crate::reference::mls::{AuthenticatedContent, Codec, Content};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    confirmation_key: Hex,
    authenticated_content: Hex,
    interim_transcript_hash_before: Hex,
    confirmed_transcript_hash_after: Hex,
    interim_transcript_hash_after: Hex,
}

/// Decodes the AuthenticatedContent with our codec (it must be a Commit and
/// re-encode identically), then recomputes both hashes and the tag.
#[derive(Debug)]
pub struct TranscriptHashes;

impl CaseVerifier for TranscriptHashes {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let ac = AuthenticatedContent::decode_exact(&c.authenticated_content)?;
        expect_bytes("authenticated_content (re-encoded)", &c.authenticated_content, &ac.to_bytes())?;
        if !matches!(ac.content.content, Content::Commit(_)) {
            return Err(Error::decode("authenticated_content is not a Commit"));
        }
        let tag = ac.auth.confirmation_tag.as_ref().ok_or_else(|| Error::decode("commit without confirmation tag"))?;
        let mut w = Writer::new();
        w.u16(ac.wire_format);
        ac.content.encode(&mut w);
        let confirmed =
            confirmed_transcript_hash(s, &c.interim_transcript_hash_before, &w.finish(), &ac.auth.signature)?;
        expect_bytes("confirmed_transcript_hash_after", &c.confirmed_transcript_hash_after, &confirmed)?;
        expect_bytes("confirmation_tag", tag, &s.mac(&c.confirmation_key, &confirmed)?)?;
        expect_bytes(
            "interim_transcript_hash_after",
            &c.interim_transcript_hash_after,
            &interim_transcript_hash(s, &confirmed, tag)?,
        )
    }
}
