//! `tree-validation.json` through openmls: importing and verifying a
//! ratchet tree with its public API.
//!
//! - `RatchetTreeIn` decodes the tree and re-encodes it to the same bytes.
//! - `RatchetTreeIn::into_verified` verifies every leaf signature, with
//!   `group_id` and the leaf index as context for update and commit leaves;
//!   the verified tree must re-encode to the same bytes, and hold as many
//!   non-blank leaves and parents as the vector's resolutions say.
//! - `PublicGroup::from_external` then runs openmls's whole import of the
//!   tree (parent-hash verification of every parent, unmerged-leaf rules,
//!   leaf checks, no duplicate keys) before it verifies the GroupInfo's
//!   signature. The vector has no GroupInfo and no signing key, so we give a
//!   GroupInfo for `group_id` naming the tree's first leaf as signer with a
//!   signature that cannot verify: the import must get exactly as far as
//!   refusing that signature (`InvalidGroupInfoSignature`); any earlier
//!   error is a failure.
//!
//! openmls 0.9.2 does not expose tree hashes (`TreeSync::tree_hash` is
//! crate-private, and the GroupInfo's tree hash is compared only after its
//! signature) nor resolutions: `tree_hashes` and `resolutions` are checked
//! by the reference model only.

use openmls::group::{GroupId, ProposalStore, PublicGroup};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{CreationFromExternalError, RatchetTreeIn};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::types::Ciphersuite;
use serde::Deserialize;
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

use crate::harness::{CaseVerifier, Hex};
use crate::{expect_bytes, expect_eq, Error};

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    tree: Hex,
    group_id: Hex,
    resolutions: Vec<Vec<u32>>,
    // `tree_hashes` is left out: openmls does not expose tree hashes.
}

/// Non-blank nodes by the vector's resolutions: a node is non-blank exactly
/// when its resolution starts with itself. Returns the non-blank leaf
/// indices and the number of non-blank parents.
fn non_blank(resolutions: &[Vec<u32>]) -> (Vec<u32>, usize) {
    let mut leaves = Vec::new();
    let mut parents = 0;
    for (x, r) in resolutions.iter().enumerate() {
        if r.first() == Some(&(x as u32)) {
            if x % 2 == 0 {
                leaves.push(x as u32 / 2);
            } else {
                parents += 1;
            }
        }
    }
    (leaves, parents)
}

/// A GroupInfo for `group_id` at epoch 0, signed (badly) by `signer`: the
/// tree hash, transcript hash, confirmation tag and signature are
/// placeholders (RFC 9420 §8.1, §12.4.3).
fn placeholder_group_info(cs: Ciphersuite, group_id: &[u8], signer: u32) -> Result<VerifiableGroupInfo, Error> {
    let tls = |e: tls_codec::Error| Error::decode(format!("writing the GroupInfo: {e:?}"));
    let nh = cs.hash_length();
    let mut out = Vec::new();
    (1u16, u16::from(cs)).tls_serialize(&mut out).map_err(tls)?; // version, cipher_suite
    VLBytes::from(group_id).tls_serialize(&mut out).map_err(tls)?;
    0u64.tls_serialize(&mut out).map_err(tls)?; // epoch
    (VLBytes::new(vec![0x11; nh]), VLBytes::new(vec![0x22; nh])).tls_serialize(&mut out).map_err(tls)?; // hashes
    (VLBytes::new(vec![]), VLBytes::new(vec![])).tls_serialize(&mut out).map_err(tls)?; // GC and GI extensions
    VLBytes::new(vec![0x33; nh]).tls_serialize(&mut out).map_err(tls)?; // confirmation_tag
    signer.tls_serialize(&mut out).map_err(tls)?;
    VLBytes::new(vec![0x44; 64]).tls_serialize(&mut out).map_err(tls)?; // signature
    VerifiableGroupInfo::tls_deserialize_exact(&out).map_err(|e| Error::openmls("decoding the GroupInfo", e))
}

/// openmls's tree import and verification.
#[derive(Debug)]
pub struct TreeValidation;

impl CaseVerifier for TreeValidation {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let cs = cs.ok_or_else(|| Error::decode("suite required"))?;
        let crypto = RustCrypto::default();
        let encode = |what: &str, e| Error::openmls(format!("encoding {what}"), e);
        let tree = RatchetTreeIn::tls_deserialize_exact(&c.tree).map_err(|e| Error::openmls("decoding tree", e))?;
        expect_bytes("tree (re-encoded)", &c.tree, &tree.tls_serialize_detached().map_err(|e| encode("tree", e))?)?;

        let group_id = GroupId::from_slice(&c.group_id);
        let verified = tree
            .clone()
            .into_verified(cs, &crypto, &group_id)
            .map_err(|e| Error::openmls("verifying the tree (RatchetTreeIn::into_verified)", e))?;
        let bytes = verified.tls_serialize_detached().map_err(|e| encode("verified tree", e))?;
        expect_bytes("tree (verified, re-encoded)", &c.tree, &bytes)?;
        let (leaves, parents) = non_blank(&c.resolutions);
        expect_eq("non-blank leaves", leaves.len(), verified.leaves().count())?;
        expect_eq("non-blank parents", parents, verified.parents().count())?;

        let signer = *leaves.first().ok_or_else(|| Error::decode("tree without a leaf"))?;
        let group_info = placeholder_group_info(cs, &c.group_id, signer)?;
        let storage = MemoryStorage::default();
        match PublicGroup::from_external(&crypto, &storage, tree, group_info, ProposalStore::new()) {
            Err(CreationFromExternalError::InvalidGroupInfoSignature) => Ok(()),
            Ok(_) => Err(Error::NotRefused("a GroupInfo with a placeholder signature".into())),
            Err(e) => Err(Error::openmls("importing the tree (PublicGroup::from_external)", e)),
        }
    }
}
