//! The verifiers reject altered vectors: for each file, one real case passes
//! and the same case with one field changed fails.

use interop::checks::*;
use interop::harness::{vectors_dir, CaseVerifier};
use interop::suite::Suite;
use serde_json::Value;

/// Case `index` of `file` as JSON, or `None` when the vectors are absent.
fn case(file: &str, index: usize) -> Option<Value> {
    let path = vectors_dir().join(file);
    let Ok(bytes) = std::fs::read(&path) else {
        println!("SKIPPED: MLS test vectors not found at {}", path.display());
        return None;
    };
    let all: Vec<Value> = serde_json::from_slice(&bytes).expect("vector file is JSON");
    Some(all[index].clone())
}

fn run<V: CaseVerifier>(v: &Value) -> Result<(), interop::Error> {
    let c: V::Case = serde_json::from_value(v.clone()).expect("case shape");
    let suite = V::suite(&c).map(|s| Suite::new(s).expect("suite 1 is supported"));
    V::verify(&c, suite.as_ref())
}

/// Flips the last hex digit of the string at `pointer`.
fn flip(v: &mut Value, pointer: &str) {
    let s = v.pointer_mut(pointer).unwrap_or_else(|| panic!("no field {pointer}"));
    let mut text = s.as_str().expect("hex string").to_string();
    let last = text.pop().expect("non-empty");
    text.push(if last == '0' { '1' } else { '0' });
    *s = Value::String(text);
}

fn check<V: CaseVerifier>(file: &str, index: usize, pointer: &str) {
    let Some(original) = case(file, index) else {
        return;
    };
    run::<V>(&original).unwrap_or_else(|e| panic!("{file}[{index}] should pass: {e}"));
    let mut altered = original;
    flip(&mut altered, pointer);
    let err = run::<V>(&altered).expect_err("altered case must fail");
    println!("{file}[{index}] {pointer} altered: {err}");
}

#[test]
fn crypto_basics_rejects_bad_signature() {
    check::<crypto_basics::CryptoBasics>("crypto-basics.json", 0, "/sign_with_label/signature");
    check::<crypto_basics::CryptoBasics>("crypto-basics.json", 0, "/expand_with_label/out");
}

#[test]
fn secret_tree_rejects_bad_key() {
    check::<secret_tree::SecretTree>("secret-tree.json", 0, "/leaves/0/1/application_key");
}

#[test]
fn key_schedule_rejects_bad_authenticator() {
    check::<key_schedule::KeySchedule>("key-schedule.json", 0, "/epochs/1/epoch_authenticator");
}

#[test]
fn message_protection_rejects_bad_tag() {
    check::<message_protection::MessageProtection>("message-protection.json", 0, "/application_priv");
    check::<message_protection::MessageProtection>("message-protection.json", 0, "/membership_key");
}

#[test]
fn transcript_rejects_bad_confirmation_key() {
    check::<transcript_hashes::TranscriptHashes>("transcript-hashes.json", 0, "/confirmation_key");
}

#[test]
fn welcome_rejects_bad_signer() {
    check::<welcome::WelcomeCheck>("welcome.json", 0, "/signer_pub");
}

#[test]
fn tree_validation_rejects_bad_hash() {
    check::<tree_validation::TreeValidation>("tree-validation.json", 0, "/tree_hashes/0");
    check::<tree_validation::TreeValidation>("tree-validation.json", 0, "/group_id");
}

#[test]
fn treekem_rejects_bad_commit_secret() {
    check::<treekem::TreeKem>("treekem.json", 0, "/update_paths/0/commit_secret");
}

#[test]
fn psk_secret_rejects_bad_nonce() {
    check::<psk_secret::PskSecret>("psk_secret.json", 3, "/psks/0/psk_nonce");
}

#[test]
fn passive_client_rejects_bad_authenticator() {
    check::<passive_client::PassiveClient>("passive-client-handling-commit.json", 0, "/epochs/0/epoch_authenticator");
    check::<passive_client::PassiveClient>("passive-client-welcome.json", 0, "/initial_epoch_authenticator");
}
