//! `tree-math.json`: node counts, root and the child/parent/sibling relations.

use serde::Deserialize;

use crate::harness::CaseVerifier;
use crate::reference::tree_math as tm;
use crate::{expect_eq, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    n_leaves: u32,
    n_nodes: u32,
    root: u32,
    left: Vec<Option<u32>>,
    right: Vec<Option<u32>>,
    parent: Vec<Option<u32>>,
    sibling: Vec<Option<u32>>,
}

/// Our tree math against every node of every tree.
#[derive(Debug)]
pub struct TreeMath;

impl CaseVerifier for TreeMath {
    type Case = Case;

    fn suite(_: &Case) -> Option<u16> {
        None
    }

    fn verify(c: &Case, _: Option<Ciphersuite>) -> Result<(), Error> {
        let n = c.n_leaves;
        expect_eq("n_nodes", c.n_nodes, tm::node_width(n))?;
        expect_eq("root", c.root, tm::root(n))?;
        for (field, list) in [("left", &c.left), ("right", &c.right), ("parent", &c.parent), ("sibling", &c.sibling)] {
            expect_eq(format!("{field}.len()"), c.n_nodes as usize, list.len())?;
            for (x, expected) in list.iter().enumerate() {
                let x = x as u32;
                let got = match field {
                    "left" => tm::left(x),
                    "right" => tm::right(x),
                    "parent" => tm::parent(x, n),
                    _ => tm::sibling(x, n),
                };
                expect_eq(format!("{field}[{x}]"), *expected, got)?;
            }
        }
        Ok(())
    }
}
