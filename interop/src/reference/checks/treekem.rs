//! `treekem.json`: processing UpdatePaths as each member, then fresh ones.

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::mls::{Codec, GroupContext, UpdatePath};
use crate::reference::suite::Suite;
use crate::reference::tree::Tree;
use crate::reference::treekem::{
    apply_update_path, check_key_pair, create_update_path, decrypt_update_path, node_key_pair, MemberSecrets,
};
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// A path secret a member holds.
#[derive(Debug, Deserialize)]
pub struct PathSecret {
    node: u32,
    path_secret: Hex,
}

/// A member's private state.
#[derive(Debug, Deserialize)]
pub struct LeafPrivate {
    index: u32,
    encryption_priv: Hex,
    signature_priv: Hex,
    path_secrets: Vec<PathSecret>,
}

/// One UpdatePath to process.
#[derive(Debug, Deserialize)]
pub struct UpdatePathCase {
    sender: u32,
    update_path: Hex,
    path_secrets: Vec<Option<Hex>>,
    commit_secret: Hex,
    tree_hash_after: Hex,
}

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    group_id: Hex,
    epoch: u64,
    confirmed_transcript_hash: Hex,
    ratchet_tree: Hex,
    leaves_private: Vec<LeafPrivate>,
    update_paths: Vec<UpdatePathCase>,
}

/// Our TreeKEM on the provider's primitives.
#[derive(Debug)]
pub struct TreeKem;

impl CaseVerifier for TreeKem {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let tree = Tree::decode(&c.ratchet_tree)?;
        let members: Vec<MemberSecrets> = c
            .leaves_private
            .iter()
            .map(|l| MemberSecrets {
                leaf: l.index,
                encryption_priv: l.encryption_priv.0.clone(),
                path_secrets: l.path_secrets.iter().map(|p| (p.node, p.path_secret.0.clone())).collect(),
            })
            .collect();
        // Every private key a member holds matches the tree.
        for m in &members {
            let leaf = tree.leaf(m.leaf).ok_or_else(|| Error::decode(format!("leaf {} is blank", m.leaf)))?;
            check_key_pair(s, &m.encryption_priv, &leaf.encryption_key)
                .map_err(|e| Error::decode(format!("leaf {} encryption_priv: {e}", m.leaf)))?;
            for (n, ps) in &m.path_secrets {
                let (_, public) = node_key_pair(s, ps)?;
                let node = tree.node(*n).ok_or_else(|| Error::decode(format!("node {n} is blank")))?;
                expect_bytes(format!("leaf {} path secret of node {n}", m.leaf), node.encryption_key(), &public)?;
            }
        }
        let context = GroupContext {
            version: 1,
            cipher_suite: c.cipher_suite,
            group_id: c.group_id.0.clone(),
            epoch: c.epoch,
            tree_hash: vec![],
            confirmed_transcript_hash: c.confirmed_transcript_hash.0.clone(),
            extensions: vec![],
        };

        for (u, up) in c.update_paths.iter().enumerate() {
            let f = |name: &str| format!("update_paths[{u}].{name}");
            let path = UpdatePath::decode_exact(&up.update_path)?;
            let after = apply_update_path(s, &tree, up.sender, &path, &c.group_id)
                .map_err(|e| Error::decode(format!("{}: {e}", f("update_path"))))?;
            let tree_hash = after.root_hash(s)?;
            expect_bytes(f("tree_hash_after"), &up.tree_hash_after, &tree_hash)?;
            let gc = GroupContext { tree_hash, ..context.clone() }.to_bytes();
            // `path_secrets` is indexed by leaf: null for the sender and for
            // leaves we hold no keys for.
            for m in &members {
                let expected = up.path_secrets.get(m.leaf as usize).and_then(Option::as_ref);
                match expected {
                    None if m.leaf == up.sender => {}
                    None => {
                        return Err(Error::decode(format!("{}: null for receiver leaf {}", f("path_secrets"), m.leaf)))
                    }
                    Some(_) if m.leaf == up.sender => {
                        return Err(Error::decode(format!("{}: set for the sender", f("path_secrets"))))
                    }
                    Some(expected) => {
                        let (ps, commit) = decrypt_update_path(s, &tree, up.sender, &path, m, &gc)?;
                        expect_bytes(format!("{}[{}]", f("path_secrets"), m.leaf), expected, &ps)?;
                        expect_bytes(format!("{} (leaf {})", f("commit_secret"), m.leaf), &up.commit_secret, &commit)?;
                    }
                }
            }
        }

        // Fresh UpdatePaths from every member we hold keys for.
        for (sender, lp) in members.iter().zip(&c.leaves_private) {
            let (path, new, commit) = create_update_path(s, &tree, sender.leaf, &lp.signature_priv, &context)?;
            let wire = path.to_bytes();
            let path = UpdatePath::decode_exact(&wire)?;
            let after = apply_update_path(s, &tree, sender.leaf, &path, &c.group_id)?;
            if after != new {
                return Err(Error::decode("fresh UpdatePath: trees differ after applying"));
            }
            let gc = GroupContext { tree_hash: after.root_hash(s)?, ..context.clone() }.to_bytes();
            for m in members.iter().filter(|m| m.leaf != sender.leaf) {
                let (_, got) = decrypt_update_path(s, &tree, sender.leaf, &path, m, &gc)?;
                expect_bytes(
                    format!("fresh path from leaf {}: commit secret at leaf {}", sender.leaf, m.leaf),
                    &commit,
                    &got,
                )?;
            }
        }
        Ok(())
    }
}
