//! `tree-validation.json`: resolutions, tree hashes, parent hashes and leaf
//! signatures of a ratchet tree.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::mls::Codec;
use crate::reference::suite::Suite;
use crate::reference::tree::Tree;
use crate::{expect_bytes, expect_eq, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    tree: Hex,
    group_id: Hex,
    resolutions: Vec<Vec<u32>>,
    tree_hashes: Vec<Hex>,
}

/// Our tree code (§4.1.2, §7.8, §7.9.2, §7.2) on the provider's hash and
/// signatures.
#[derive(Debug)]
pub struct TreeValidation;

impl CaseVerifier for TreeValidation {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let tree = Tree::decode(&c.tree)?;
        expect_bytes("tree (re-encoded)", &c.tree, &tree.to_wire().to_bytes())?;
        expect_eq("number of nodes", c.tree_hashes.len(), tree.nodes.len())?;
        expect_eq("resolutions.len()", c.resolutions.len(), tree.nodes.len())?;
        for (x, expected) in c.resolutions.iter().enumerate() {
            expect_eq(format!("resolutions[{x}]"), expected, &tree.resolution(x as u32))?;
        }
        for (x, expected) in c.tree_hashes.iter().enumerate() {
            expect_bytes(format!("tree_hashes[{x}]"), expected, &tree.tree_hash(s, x as u32)?)?;
        }
        tree.verify_parent_hashes(s)?;
        tree.verify_leaf_signatures(s, &c.group_id)
    }
}
