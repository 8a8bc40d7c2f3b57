//! Key-transparency data from the network (`grove_proto::kt`): directory
//! values, the gossip in messages' authenticated data, signed heads, the
//! JSON bodies of `/v1/kt/*`, and akd's protobuf proofs (lookup, history,
//! audit) checked against a validly signed head, so the proof decoders and
//! verifiers run on whatever the input holds. Nothing may panic, values and
//! gossip round-trip, and nothing made up verifies.
#![no_main]
use grove_proto::kt::{self, DirectoryValue, KtKeys, SignedHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = DirectoryValue::decode(data) {
        assert_eq!(v.encode(), data, "a value decodes only from its one encoding");
    }
    if let Some((epoch, root)) = kt::decode_gossip(data) {
        assert_eq!(kt::encode_gossip(epoch, &root), data);
    }
    let head_key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let root = [9u8; 32];
    let signature = ed25519_dalek::Signer::sign(&head_key, &kt::head_signed_bytes(4, &root)).to_bytes().to_vec();
    let head = SignedHead { epoch: 4, root_hash: root.to_vec(), signature };
    let keys = KtKeys { vrf_public_key: vec![1; 32], head_key: head_key.verifying_key().to_bytes().to_vec() };
    assert!(kt::verify_lookup(&keys, &head, "bob", data).is_err(), "a made-up lookup proof verified");
    assert!(kt::verify_history(&keys, &head, "bob", data).is_err(), "a made-up history proof verified");
    let _ = kt::decode_audit_proof(data);
    // The input as a head key and as a signature.
    let _ = head.verify(data);
    let forged = SignedHead { signature: data.to_vec(), ..head.clone() };
    assert!(forged.verify(&keys.head_key).is_err() || data == head.signature.as_slice());
    let _ = serde_json::from_slice::<kt::LookupResponse>(data);
    let _ = serde_json::from_slice::<kt::HistoryResponse>(data);
    let _ = serde_json::from_slice::<kt::AuditResponse>(data);
    let _ = serde_json::from_slice::<kt::HeadResponse>(data);
    let _ = serde_json::from_slice::<kt::KtKeys>(data);
});
