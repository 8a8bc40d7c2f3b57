//! TreeKEM (§7.4 to §7.6, §12.4.2): applying an UpdatePath to a tree,
//! decrypting it as a member, and creating a fresh one, written from the RFC
//! on the provider's HPKE, HKDF, hash and signatures.

use std::collections::BTreeMap;

use crate::reference::mls::{
    Codec, GroupContext, HpkeCiphertext, LeafNode, LeafNodeSource, Node, ParentNode, UpdatePath, UpdatePathNode,
};
use crate::reference::suite::Suite;
use crate::reference::tree::Tree;
use crate::reference::tree_math as tm;
use crate::{expect_bytes, Error};

/// What a member knows: its leaf's private key and the path secrets of
/// parent nodes it holds.
#[derive(Debug, Clone)]
pub struct MemberSecrets {
    /// The member's leaf index.
    pub leaf: u32,
    /// The leaf's HPKE private key.
    pub encryption_priv: Vec<u8>,
    /// Path secrets by node index.
    pub path_secrets: BTreeMap<u32, Vec<u8>>,
}

/// The HPKE key pair of a node from its path secret: `(private, public)`.
pub fn node_key_pair(s: &Suite, path_secret: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let node_secret = s.derive_secret(path_secret, b"node")?;
    s.derive_key_pair(&node_secret)
}

/// Checks that `private` opens what is sealed to `public`.
pub fn check_key_pair(s: &Suite, private: &[u8], public: &[u8]) -> Result<(), Error> {
    let probe = s.random(16)?;
    let (kem, ct) = s.encrypt_with_label(public, b"key pair check", &[], &probe)?;
    expect_bytes("key pair check", &probe, &s.decrypt_with_label(private, b"key pair check", &[], &kem, &ct)?)
}

/// Applies `path` from leaf `sender` to `tree`: checks its length against
/// the filtered direct path, installs the new parent nodes with their parent
/// hashes, checks the leaf's `parent_hash` and signature, and checks that the
/// result is parent-hash valid. Returns the new tree.
pub fn apply_update_path(
    s: &Suite,
    tree: &Tree,
    sender: u32,
    path: &UpdatePath,
    group_id: &[u8],
) -> Result<Tree, Error> {
    let fdp = tree.filtered_direct_path(sender);
    if fdp.len() != path.nodes.len() {
        return Err(Error::decode(format!(
            "UpdatePath has {} nodes, filtered direct path {}",
            path.nodes.len(),
            fdp.len()
        )));
    }
    let mut new = tree.clone();
    for p in tm::direct_path(tm::leaf_node(sender), tree.n_leaves()) {
        new.blank(p);
    }
    for ((p, _), node) in fdp.iter().zip(&path.nodes) {
        new.nodes[*p as usize] = Some(Node::Parent(ParentNode {
            encryption_key: node.encryption_key.clone(),
            parent_hash: vec![],
            unmerged_leaves: vec![],
        }));
    }
    let mut above: Vec<u8> = vec![];
    for (p, c) in fdp.iter().rev() {
        if let Some(Some(Node::Parent(pn))) = new.nodes.get_mut(*p as usize) {
            pn.parent_hash = above.clone();
        }
        above = new.parent_hash(s, *p, *c)?;
    }
    let leaf_ph = path.leaf_node.parent_hash().ok_or_else(|| Error::decode("UpdatePath leaf is not a commit leaf"))?;
    expect_bytes("leaf_node.parent_hash", &above, leaf_ph)?;
    new.nodes[tm::leaf_node(sender) as usize] = Some(Node::Leaf(path.leaf_node.clone()));
    s.verify_with_label(
        &path.leaf_node.signature_key,
        b"LeafNodeTBS",
        &path.leaf_node.tbs(group_id, sender),
        &path.leaf_node.signature,
    )?;
    new.verify_parent_hashes(s)?;
    Ok(new)
}

/// Decrypts `path` (from `sender`, already applied to give `after`) as
/// `member`, checks every derived public key against the path, and returns
/// the path secret it decrypted and the commit secret.
pub fn decrypt_update_path(
    s: &Suite,
    before: &Tree,
    sender: u32,
    path: &UpdatePath,
    member: &MemberSecrets,
    group_context: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let fdp = before.filtered_direct_path(sender);
    let leaf_x = tm::leaf_node(member.leaf);
    let (pos, (_, copath_child)) = fdp
        .iter()
        .enumerate()
        .find(|(_, (p, _))| tm::in_subtree(leaf_x, *p))
        .ok_or_else(|| Error::decode("member not below the sender's filtered direct path"))?;
    let resolution = before.resolution(*copath_child);
    let (j, private) = resolution
        .iter()
        .enumerate()
        .find_map(|(j, n)| {
            if *n == leaf_x {
                Some(Ok((j, member.encryption_priv.clone())))
            } else {
                member.path_secrets.get(n).map(|ps| node_key_pair(s, ps).map(|(sk, _)| (j, sk)))
            }
        })
        .ok_or_else(|| Error::decode("member holds no key in the copath resolution"))??;
    let ct =
        path.nodes[pos].encrypted_path_secret.get(j).ok_or_else(|| Error::decode("missing encrypted path secret"))?;
    let decrypted = s.decrypt_with_label(&private, b"UpdatePathNode", group_context, &ct.kem_output, &ct.ciphertext)?;
    let mut secret = decrypted.clone();
    for (k, node) in path.nodes.iter().enumerate().skip(pos) {
        if k > pos {
            secret = s.derive_secret(&secret, b"path")?;
        }
        let (_, public) = node_key_pair(s, &secret)?;
        expect_bytes(format!("UpdatePath node {k} encryption_key"), &node.encryption_key, &public)?;
    }
    let commit_secret = s.derive_secret(&secret, b"path")?;
    Ok((decrypted, commit_secret))
}

/// Creates a fresh UpdatePath from `sender` (holding `signature_priv`), with
/// the GroupContext built from `context` (its tree hash replaced by the new
/// one). Returns the path, the new tree and the commit secret.
pub fn create_update_path(
    s: &Suite,
    tree: &Tree,
    sender: u32,
    signature_priv: &[u8],
    context: &GroupContext,
) -> Result<(UpdatePath, Tree, Vec<u8>), Error> {
    let old_leaf = tree.leaf(sender).ok_or_else(|| Error::decode("sender leaf is blank"))?.clone();
    let fdp = tree.filtered_direct_path(sender);
    let leaf_secret = s.random(s.nh())?;
    let (_, leaf_pub) = node_key_pair(s, &leaf_secret)?;
    let mut secrets = Vec::with_capacity(fdp.len());
    let mut secret = leaf_secret;
    for _ in &fdp {
        secret = s.derive_secret(&secret, b"path")?;
        secrets.push(secret.clone());
    }
    let commit_secret = s.derive_secret(&secret, b"path")?;
    let mut nodes = Vec::with_capacity(fdp.len());
    for ps in &secrets {
        let (_, public) = node_key_pair(s, ps)?;
        nodes.push(UpdatePathNode { encryption_key: public, encrypted_path_secret: vec![] });
    }

    // The new tree, to get the leaf's parent hash.
    let mut new = tree.clone();
    for p in tm::direct_path(tm::leaf_node(sender), tree.n_leaves()) {
        new.blank(p);
    }
    for ((p, _), node) in fdp.iter().zip(&nodes) {
        new.nodes[*p as usize] = Some(Node::Parent(ParentNode {
            encryption_key: node.encryption_key.clone(),
            parent_hash: vec![],
            unmerged_leaves: vec![],
        }));
    }
    let mut above: Vec<u8> = vec![];
    for (p, c) in fdp.iter().rev() {
        if let Some(Some(Node::Parent(pn))) = new.nodes.get_mut(*p as usize) {
            pn.parent_hash = above.clone();
        }
        above = new.parent_hash(s, *p, *c)?;
    }
    let mut leaf =
        LeafNode { encryption_key: leaf_pub, source: LeafNodeSource::Commit(above), signature: vec![], ..old_leaf };
    leaf.signature = s.sign_with_label(signature_priv, b"LeafNodeTBS", &leaf.tbs(&context.group_id, sender))?;
    new.nodes[tm::leaf_node(sender) as usize] = Some(Node::Leaf(leaf.clone()));

    let gc = GroupContext { tree_hash: new.root_hash(s)?, ..context.clone() }.to_bytes();
    for (((_, c), node), ps) in fdp.iter().zip(nodes.iter_mut()).zip(&secrets) {
        for r in tree.resolution(*c) {
            let public =
                tree.node(r).ok_or_else(|| Error::decode("blank node in a resolution"))?.encryption_key().to_vec();
            let (kem_output, ciphertext) = s.encrypt_with_label(&public, b"UpdatePathNode", &gc, ps)?;
            node.encrypted_path_secret.push(HpkeCiphertext { kem_output, ciphertext });
        }
    }
    Ok((UpdatePath { leaf_node: leaf, nodes }, new, commit_secret))
}
