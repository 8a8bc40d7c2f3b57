//! The verifiers reject altered vectors: for each file, one real case passes
//! and the same case with one field changed fails, at the check that field
//! feeds (the error must name it).

use interop::harness::{vectors_or_skip, verify_json, CaseVerifier};
use serde_json::Value;

/// Case `index` of `file` as JSON, or `None` when the vectors are absent
/// (a failure under `CI=true`).
fn case(file: &str, index: usize) -> Option<Value> {
    let path = vectors_or_skip()?.join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: Vec<Value> = serde_json::from_slice(&bytes).expect("vector file is JSON");
    Some(all[index].clone())
}

/// How a field is altered.
enum Change {
    /// Flips the last hex digit of the string at the pointer.
    FlipLast(&'static str),
    /// Appends a zero byte to the hex string at the pointer.
    Append(&'static str),
    /// Adds one to the number at the pointer.
    Increment(&'static str),
    /// Any other change.
    Custom(fn(&mut Value)),
}

impl Change {
    fn apply(&self, v: &mut Value) {
        let pointer = match self {
            Change::FlipLast(p) | Change::Append(p) | Change::Increment(p) => *p,
            Change::Custom(f) => return f(v),
        };
        let field = v.pointer_mut(pointer).unwrap_or_else(|| panic!("no field {pointer}"));
        *field = match self {
            Change::FlipLast(_) => {
                let mut text = field.as_str().expect("hex string").to_string();
                let last = text.pop().expect("non-empty");
                text.push(if last == '0' { '1' } else { '0' });
                Value::String(text)
            }
            Change::Append(_) => Value::String(format!("{}00", field.as_str().expect("hex string"))),
            Change::Increment(_) => Value::from(field.as_u64().expect("number") + 1),
            Change::Custom(_) => unreachable!(),
        };
    }
}

/// Case `index` of `file` passes `V`; with `change` applied it fails with an
/// error that contains `expect`.
fn check<V: CaseVerifier>(file: &str, index: usize, change: Change, expect: &str) {
    let Some(original) = case(file, index) else {
        return;
    };
    verify_json::<V>(&original).unwrap_or_else(|e| panic!("{file}[{index}] should pass: {e}"));
    let mut altered = original;
    change.apply(&mut altered);
    let err = verify_json::<V>(&altered).expect_err("altered case must fail").to_string();
    println!("{file}[{index}] altered: {err}");
    assert!(err.contains(expect), "{file}[{index}]: expected an error naming {expect:?}, got: {err}");
}

/// Through openmls.
mod openmls {
    use interop::checks::*;

    use super::{check, Change::*};

    #[test]
    fn crypto_basics_rejects_altered_values() {
        let f = "crypto-basics.json";
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/sign_with_label/signature"), "the vector's signature");
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/ref_hash/out"), "ref_hash.out");
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/expand_with_label/out"), "expand_with_label.out");
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/derive_secret/out"), "derive_secret.out");
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/derive_tree_secret/out"), "derive_tree_secret.out");
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/encrypt_with_label/ciphertext"), "DecryptWithLabel");
    }

    #[test]
    fn welcome_rejects_bad_keys() {
        let f = "welcome.json";
        check::<welcome::WelcomeCheck>(f, 0, FlipLast("/signer_pub"), "GroupInfo signature");
        check::<welcome::WelcomeCheck>(f, 0, FlipLast("/init_priv"), "processing the Welcome");
        check::<welcome::WelcomeCheck>(f, 0, FlipLast("/welcome"), "processing the Welcome");
        check::<welcome::WelcomeCheck>(f, 0, FlipLast("/key_package"), "InvalidSignature");
    }

    #[test]
    fn tree_validation_rejects_bad_signatures() {
        let f = "tree-validation.json";
        check::<tree_validation::TreeValidation>(f, 0, FlipLast("/group_id"), "into_verified");
        check::<tree_validation::TreeValidation>(f, 0, FlipLast("/tree"), "into_verified");
        check::<tree_validation::TreeValidation>(f, 0, Append("/tree"), "decoding tree");
    }

    /// Changes one byte of the encryption key of the tree's first parent
    /// node (found by openmls's encoding of that node): no signature covers
    /// it, but the parent hash of the node below it does.
    fn break_a_parent_hash(case: &mut serde_json::Value) {
        use openmls::prelude::RatchetTreeIn;
        use tls_codec::{Deserialize as _, Serialize as _};
        let mut bytes = hex::decode(case["tree"].as_str().expect("tree")).expect("hex");
        let tree = RatchetTreeIn::tls_deserialize_exact(&bytes).expect("tree");
        let parent = tree.parents().next().expect("the tree has a parent node");
        let node = parent.tls_serialize_detached().expect("encode");
        let at = bytes.windows(node.len()).position(|w| w == node).expect("the parent node's encoding is in the tree");
        // Skip the one-byte length prefix of `encryption_key`.
        bytes[at + 1] ^= 0x01;
        case["tree"] = serde_json::Value::String(hex::encode(bytes));
    }

    #[test]
    fn tree_validation_rejects_a_broken_parent_hash() {
        let f = "tree-validation.json";
        check::<tree_validation::TreeValidation>(f, 0, Custom(break_a_parent_hash), "InvalidParentHash");
    }

    #[test]
    fn messages_rejects_trailing_bytes() {
        let f = "messages.json";
        check::<messages::Messages>(f, 0, Append("/mls_key_package"), "decoding mls_key_package");
        check::<messages::Messages>(f, 0, Append("/commit"), "commit (in a PublicMessage)");
        check::<messages::Messages>(f, 0, Append("/remove_proposal"), "decoding remove_proposal");
    }

    #[test]
    fn deserialization_rejects_wrong_length() {
        let f = "deserialization.json";
        check::<deserialization::Deserialization>(f, 4, Increment("/length"), "length");
        check::<deserialization::Deserialization>(f, 4, FlipLast("/vlbytes_header"), "length");
    }

    #[test]
    fn passive_client_rejects_bad_authenticator_and_key_package() {
        let (w, h) = ("passive-client-welcome.json", "passive-client-handling-commit.json");
        check::<passive_client::PassiveClient>(h, 0, FlipLast("/epochs/0/epoch_authenticator"), "epochs[0]");
        check::<passive_client::PassiveClient>(w, 0, FlipLast("/initial_epoch_authenticator"), "initial_epoch");
        check::<passive_client::PassiveClient>(w, 0, FlipLast("/key_package"), "InvalidSignature");
    }
}

/// Through the reference model.
#[cfg(feature = "reference-model")]
mod reference {
    use interop::reference::checks::*;

    use super::{check, Change::*};

    #[test]
    fn crypto_basics_rejects_bad_signature() {
        let f = "crypto-basics.json";
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/sign_with_label/signature"), "VerifyWithLabel");
        check::<crypto_basics::CryptoBasics>(f, 0, FlipLast("/expand_with_label/out"), "expand_with_label.out");
    }

    #[test]
    fn secret_tree_rejects_bad_key() {
        check::<secret_tree::SecretTree>(
            "secret-tree.json",
            0,
            FlipLast("/leaves/0/1/application_key"),
            "application_key",
        );
    }

    #[test]
    fn key_schedule_rejects_bad_authenticator() {
        let f = "key-schedule.json";
        check::<key_schedule::KeySchedule>(f, 0, FlipLast("/epochs/1/epoch_authenticator"), "epoch_authenticator");
    }

    #[test]
    fn message_protection_rejects_bad_tag() {
        let f = "message-protection.json";
        check::<message_protection::MessageProtection>(f, 0, FlipLast("/application_priv"), "application_priv");
        check::<message_protection::MessageProtection>(f, 0, FlipLast("/membership_key"), "proposal_pub");
    }

    #[test]
    fn transcript_rejects_bad_confirmation_key() {
        let f = "transcript-hashes.json";
        check::<transcript_hashes::TranscriptHashes>(f, 0, FlipLast("/confirmation_key"), "confirmation_tag");
    }

    #[test]
    fn welcome_rejects_bad_signer() {
        check::<welcome::WelcomeCheck>("welcome.json", 0, FlipLast("/signer_pub"), "GroupInfoTBS");
    }

    #[test]
    fn tree_validation_rejects_bad_hash() {
        let f = "tree-validation.json";
        check::<tree_validation::TreeValidation>(f, 0, FlipLast("/tree_hashes/0"), "tree_hashes[0]");
        check::<tree_validation::TreeValidation>(f, 0, FlipLast("/group_id"), "LeafNodeTBS");
    }

    #[test]
    fn treekem_rejects_bad_commit_secret() {
        check::<treekem::TreeKem>("treekem.json", 0, FlipLast("/update_paths/0/commit_secret"), "commit_secret");
    }

    #[test]
    fn psk_secret_rejects_bad_nonce() {
        check::<psk_secret::PskSecret>("psk_secret.json", 3, FlipLast("/psks/0/psk_nonce"), "psk_secret");
    }
}
