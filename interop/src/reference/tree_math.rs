//! Array-based tree math (RFC 9420 §4.2, Appendix C), written from the RFC.
//!
//! Nodes are numbered left to right; leaves are the even indices. Trees are
//! always full: `n_leaves` is a power of two.

/// The level of node `x`: the number of trailing one bits (leaves are 0).
pub fn level(x: u32) -> u32 {
    x.trailing_ones()
}

/// The number of nodes in a tree of `n_leaves` leaves.
pub fn node_width(n_leaves: u32) -> u32 {
    if n_leaves == 0 {
        0
    } else {
        2 * (n_leaves - 1) + 1
    }
}

/// The root of a tree of `n_leaves` leaves.
pub fn root(n_leaves: u32) -> u32 {
    let w = node_width(n_leaves);
    if w == 0 {
        return 0;
    }
    (1u32 << (31 - w.leading_zeros())) - 1
}

/// The left child of `x`, `None` for a leaf.
pub fn left(x: u32) -> Option<u32> {
    let k = level(x);
    (k > 0).then(|| x ^ (1 << (k - 1)))
}

/// The right child of `x`, `None` for a leaf.
pub fn right(x: u32) -> Option<u32> {
    let k = level(x);
    (k > 0).then(|| x ^ (3 << (k - 1)))
}

/// The parent of `x` in a tree of `n_leaves` leaves, `None` for the root.
pub fn parent(x: u32, n_leaves: u32) -> Option<u32> {
    if x == root(n_leaves) || x >= node_width(n_leaves) {
        return None;
    }
    let k = level(x);
    let b = (x >> (k + 1)) & 1;
    Some((x | (1 << k)) ^ (b << (k + 1)))
}

/// The other child of `x`'s parent, `None` for the root.
pub fn sibling(x: u32, n_leaves: u32) -> Option<u32> {
    let p = parent(x, n_leaves)?;
    if x < p {
        right(p)
    } else {
        left(p)
    }
}

/// The direct path of `x`: its ancestors from its parent up to the root.
pub fn direct_path(x: u32, n_leaves: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cur = x;
    while let Some(p) = parent(cur, n_leaves) {
        out.push(p);
        cur = p;
    }
    out
}

/// The copath of `x`: the sibling of `x` and of each node of its direct path
/// except the root.
pub fn copath(x: u32, n_leaves: u32) -> Vec<u32> {
    let mut path = vec![x];
    path.extend(direct_path(x, n_leaves));
    path.pop();
    path.into_iter().filter_map(|n| sibling(n, n_leaves)).collect()
}

/// Whether `x` is in the subtree rooted at `ancestor`.
pub fn in_subtree(x: u32, ancestor: u32) -> bool {
    let k = level(ancestor);
    let lo = ancestor - ((1 << k) - 1);
    let hi = ancestor + ((1 << k) - 1);
    (lo..=hi).contains(&x)
}

/// The node index of leaf `i`.
pub fn leaf_node(i: u32) -> u32 {
    2 * i
}
