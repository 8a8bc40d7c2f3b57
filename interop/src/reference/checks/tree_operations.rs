//! `tree-operations.json`: one Add, Update or Remove applied to a tree.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::mls::{Codec, Proposal};
use crate::reference::suite::Suite;
use crate::reference::tree::Tree;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    tree_before: Hex,
    proposal: Hex,
    proposal_sender: u32,
    tree_hash_before: Hex,
    tree_after: Hex,
    tree_hash_after: Hex,
}

/// Our tree operations (§7.7, §12.1) and tree hash on the provider's hash.
#[derive(Debug)]
pub struct TreeOperations;

impl CaseVerifier for TreeOperations {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let mut tree = Tree::decode(&c.tree_before)?;
        expect_bytes("tree_hash_before", &c.tree_hash_before, &tree.root_hash(s)?)?;
        match Proposal::decode_exact(&c.proposal)? {
            Proposal::Add(kp) => {
                tree.add_leaf(kp.leaf_node);
            }
            Proposal::Update(leaf) => {
                if tree.leaf(c.proposal_sender).is_none() {
                    return Err(Error::decode("update from a blank leaf"));
                }
                tree.update_leaf(c.proposal_sender, leaf);
            }
            Proposal::Remove(i) => {
                if tree.leaf(i).is_none() {
                    return Err(Error::decode("remove of a blank leaf"));
                }
                tree.remove_leaf(i);
            }
            other => return Err(Error::decode(format!("proposal type {} does not change the tree", other.kind()))),
        }
        expect_bytes("tree_after", &c.tree_after, &tree.to_wire().to_bytes())?;
        expect_bytes("tree_hash_after", &c.tree_hash_after, &tree.root_hash(s)?)
    }
}
