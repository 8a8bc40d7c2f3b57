//! A ratchet tree on our own decoding (§4, §7): resolutions, tree hashes,
//! parent hashes and leaf signatures, written from the RFC on top of the
//! provider's hash and signature primitives.

use std::collections::BTreeSet;

use crate::reference::codec::Writer;
use crate::reference::mls::{Codec, LeafNode, Node, ParentNode, RatchetTree};
use crate::reference::suite::Suite;
use crate::reference::tree_math as tm;
use crate::Error;

/// A full tree: `2 * n_leaves - 1` node slots, `n_leaves` a power of two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Node slots, `None` for blank.
    pub nodes: Vec<Option<Node>>,
}

impl Tree {
    /// Builds the full tree from the (right-truncated) wire form.
    pub fn from_wire(rt: &RatchetTree) -> Result<Self, Error> {
        let len = rt.0.len();
        if len == 0 || len.is_multiple_of(2) {
            return Err(Error::decode(format!("ratchet tree with {len} nodes")));
        }
        if rt.0.last().is_some_and(Option::is_none) {
            return Err(Error::decode("ratchet tree ends with a blank node"));
        }
        let mut n_leaves = 1u32;
        while (tm::node_width(n_leaves) as usize) < len {
            n_leaves *= 2;
        }
        let mut nodes = rt.0.clone();
        nodes.resize(tm::node_width(n_leaves) as usize, None);
        for (i, n) in nodes.iter().enumerate() {
            let is_leaf = i % 2 == 0;
            match n {
                Some(Node::Leaf(_)) if !is_leaf => return Err(Error::decode(format!("leaf node at parent index {i}"))),
                Some(Node::Parent(_)) if is_leaf => {
                    return Err(Error::decode(format!("parent node at leaf index {i}")))
                }
                _ => {}
            }
        }
        Ok(Self { nodes })
    }

    /// Decodes a serialized ratchet tree.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_wire(&RatchetTree::decode_exact(bytes)?)
    }

    /// The wire form: trailing blank nodes removed.
    pub fn to_wire(&self) -> RatchetTree {
        let mut nodes = self.nodes.clone();
        while nodes.last().is_some_and(Option::is_none) {
            nodes.pop();
        }
        RatchetTree(nodes)
    }

    /// Number of leaf slots.
    pub fn n_leaves(&self) -> u32 {
        (self.nodes.len() as u32).div_ceil(2)
    }

    /// The node at index `x`.
    pub fn node(&self, x: u32) -> Option<&Node> {
        self.nodes.get(x as usize).and_then(Option::as_ref)
    }

    /// The leaf node of leaf `i`.
    pub fn leaf(&self, i: u32) -> Option<&LeafNode> {
        match self.node(tm::leaf_node(i)) {
            Some(Node::Leaf(l)) => Some(l),
            _ => None,
        }
    }

    /// The parent node at node index `x`.
    pub fn parent_node(&self, x: u32) -> Option<&ParentNode> {
        match self.node(x) {
            Some(Node::Parent(p)) => Some(p),
            _ => None,
        }
    }

    /// The resolution of node `x` (§4.1.2), as node indices, leaving out
    /// the leaves in `exclude` (leaf indices).
    pub fn resolution_excluding(&self, x: u32, exclude: &BTreeSet<u32>) -> Vec<u32> {
        match self.node(x) {
            Some(Node::Leaf(_)) => {
                if exclude.contains(&(x / 2)) {
                    vec![]
                } else {
                    vec![x]
                }
            }
            Some(Node::Parent(p)) => {
                let mut out = vec![x];
                out.extend(p.unmerged_leaves.iter().filter(|l| !exclude.contains(l)).map(|l| tm::leaf_node(*l)));
                out
            }
            None => match (tm::left(x), tm::right(x)) {
                (Some(l), Some(r)) => {
                    let mut out = self.resolution_excluding(l, exclude);
                    out.extend(self.resolution_excluding(r, exclude));
                    out
                }
                _ => vec![],
            },
        }
    }

    /// The resolution of node `x`.
    pub fn resolution(&self, x: u32) -> Vec<u32> {
        self.resolution_excluding(x, &BTreeSet::new())
    }

    /// The tree hash of node `x` (§7.8), treating the leaves in `exclude` as
    /// blank and dropping them from every `unmerged_leaves` list.
    pub fn tree_hash_excluding(&self, suite: &Suite, x: u32, exclude: &BTreeSet<u32>) -> Result<Vec<u8>, Error> {
        let mut w = Writer::new();
        if x.is_multiple_of(2) {
            let leaf = if exclude.contains(&(x / 2)) {
                None
            } else {
                match self.node(x) {
                    Some(Node::Leaf(l)) => Some(l.to_bytes()),
                    _ => None,
                }
            };
            w.u8(1).u32(x / 2).optional(leaf.as_deref());
        } else {
            let parent = self.parent_node(x).map(|p| {
                let mut p = p.clone();
                p.unmerged_leaves.retain(|l| !exclude.contains(l));
                p.to_bytes()
            });
            let (l, r) = match (tm::left(x), tm::right(x)) {
                (Some(l), Some(r)) => (l, r),
                _ => return Err(Error::decode("parent index without children")),
            };
            let lh = self.tree_hash_excluding(suite, l, exclude)?;
            let rh = self.tree_hash_excluding(suite, r, exclude)?;
            w.u8(2).optional(parent.as_deref()).vl(&lh).vl(&rh);
        }
        suite.hash(&w.finish())
    }

    /// The tree hash of node `x`.
    pub fn tree_hash(&self, suite: &Suite, x: u32) -> Result<Vec<u8>, Error> {
        self.tree_hash_excluding(suite, x, &BTreeSet::new())
    }

    /// The tree hash of the root.
    pub fn root_hash(&self, suite: &Suite) -> Result<Vec<u8>, Error> {
        self.tree_hash(suite, tm::root(self.n_leaves()))
    }

    /// `ParentHash` of parent `p` (§7.9) with `s` as the copath child: the
    /// hash of `p`'s key, `p`'s own parent hash, and `s`'s original tree hash
    /// (`s` with `p`'s unmerged leaves removed).
    pub fn parent_hash(&self, suite: &Suite, p: u32, s: u32) -> Result<Vec<u8>, Error> {
        let node = self.parent_node(p).ok_or_else(|| Error::decode(format!("parent hash of blank node {p}")))?;
        let exclude: BTreeSet<u32> = node.unmerged_leaves.iter().copied().collect();
        let sibling_hash = self.tree_hash_excluding(suite, s, &exclude)?;
        suite.hash(&Writer::new().vl(&node.encryption_key).vl(&node.parent_hash).vl(&sibling_hash).finish())
    }

    fn node_parent_hash(&self, x: u32) -> Option<&[u8]> {
        match self.node(x)? {
            Node::Leaf(l) => l.parent_hash(),
            Node::Parent(p) => Some(&p.parent_hash),
        }
    }

    /// Checks that every non-blank parent node is parent-hash valid (§7.9.2):
    /// exactly one child `C` has a node `D` in its resolution (without the
    /// parent's unmerged leaves) whose `parent_hash` is the parent's hash with
    /// the other child as copath child, and the rest of `C`'s resolution is
    /// exactly the parent's unmerged leaves below `C`.
    pub fn verify_parent_hashes(&self, suite: &Suite) -> Result<(), Error> {
        for p in (1..self.nodes.len() as u32).step_by(2) {
            let Some(node) = self.parent_node(p) else {
                continue;
            };
            let unmerged: BTreeSet<u32> = node.unmerged_leaves.iter().copied().collect();
            let (Some(l), Some(r)) = (tm::left(p), tm::right(p)) else {
                return Err(Error::decode("parent index without children"));
            };
            let mut valid_sides = 0;
            for (c, s) in [(l, r), (r, l)] {
                let ph = self.parent_hash(suite, p, s)?;
                let res = self.resolution_excluding(c, &unmerged);
                let Some(d) = res.iter().copied().find(|d| self.node_parent_hash(*d) == Some(ph.as_slice())) else {
                    continue;
                };
                let rest: BTreeSet<u32> = self.resolution(c).into_iter().filter(|x| *x != d).collect();
                let unmerged_below: BTreeSet<u32> =
                    unmerged.iter().map(|l| tm::leaf_node(*l)).filter(|x| tm::in_subtree(*x, c)).collect();
                if rest == unmerged_below {
                    valid_sides += 1;
                }
            }
            if valid_sides != 1 {
                return Err(Error::Mismatch {
                    field: format!("parent_hash chain of node {p}"),
                    expected: "exactly one child covering it".into(),
                    got: format!("{valid_sides}"),
                });
            }
        }
        Ok(())
    }

    /// Verifies every leaf's signature (§7.2), with `group_id` as context for
    /// update and commit leaves.
    pub fn verify_leaf_signatures(&self, suite: &Suite, group_id: &[u8]) -> Result<(), Error> {
        for i in 0..self.n_leaves() {
            if let Some(leaf) = self.leaf(i) {
                suite
                    .verify_with_label(&leaf.signature_key, b"LeafNodeTBS", &leaf.tbs(group_id, i), &leaf.signature)
                    .map_err(|e| Error::Crypto { what: format!("signature of leaf {i}"), detail: e.to_string() })?;
            }
        }
        Ok(())
    }

    /// Blanks node `x`.
    pub fn blank(&mut self, x: u32) {
        if let Some(slot) = self.nodes.get_mut(x as usize) {
            *slot = None;
        }
    }

    /// Doubles the tree's width (new leaves and parents blank).
    pub fn extend(&mut self) {
        let n = self.n_leaves();
        self.nodes.resize(tm::node_width(2 * n) as usize, None);
    }

    /// Halves the tree while its right half is entirely blank (§7.7).
    pub fn truncate(&mut self) {
        loop {
            let n = self.n_leaves();
            if n <= 1 {
                return;
            }
            let half = tm::node_width(n / 2) as usize;
            if self.nodes[half..].iter().any(Option::is_some) {
                return;
            }
            self.nodes.truncate(half);
        }
    }

    /// Adds a leaf in the leftmost blank slot (extending if needed), marks
    /// it unmerged in every non-blank ancestor, and returns its leaf index
    /// (§7.7).
    pub fn add_leaf(&mut self, leaf: LeafNode) -> u32 {
        let n = self.n_leaves();
        let index = (0..n).find(|i| self.leaf(*i).is_none() && self.node(tm::leaf_node(*i)).is_none());
        let index = match index {
            Some(i) => i,
            None => {
                self.extend();
                n
            }
        };
        let n = self.n_leaves();
        for p in tm::direct_path(tm::leaf_node(index), n) {
            if let Some(Some(Node::Parent(pn))) = self.nodes.get_mut(p as usize) {
                pn.unmerged_leaves.push(index);
            }
        }
        self.nodes[tm::leaf_node(index) as usize] = Some(Node::Leaf(leaf));
        index
    }

    /// Removes leaf `i`: blanks it and its direct path, then truncates.
    pub fn remove_leaf(&mut self, i: u32) {
        let n = self.n_leaves();
        self.blank(tm::leaf_node(i));
        for p in tm::direct_path(tm::leaf_node(i), n) {
            self.blank(p);
        }
        self.truncate();
    }

    /// Replaces leaf `i` and blanks its direct path (an Update proposal).
    pub fn update_leaf(&mut self, i: u32, leaf: LeafNode) {
        let n = self.n_leaves();
        for p in tm::direct_path(tm::leaf_node(i), n) {
            self.blank(p);
        }
        self.nodes[tm::leaf_node(i) as usize] = Some(Node::Leaf(leaf));
    }

    /// The filtered direct path of leaf `i` (§4.1.2): direct-path nodes whose
    /// copath child has a non-empty resolution, each with that copath child.
    pub fn filtered_direct_path(&self, i: u32) -> Vec<(u32, u32)> {
        let n = self.n_leaves();
        let x = tm::leaf_node(i);
        let path = tm::direct_path(x, n);
        let copath = tm::copath(x, n);
        path.into_iter().zip(copath).filter(|(_, c)| !self.resolution(*c).is_empty()).collect()
    }
}
