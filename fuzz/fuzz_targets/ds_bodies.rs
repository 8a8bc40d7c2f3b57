//! The DS's own request bodies: the three TLS bodies and the JSON requests.
#![no_main]
use grove_proto::{CommitBundleBody, GroupCreateBody, KeyPackageUploadBody, MessagesPageBody};
use libfuzzer_sys::fuzz_target;
use tls_codec::Deserialize;

fuzz_target!(|data: &[u8]| {
    let _ = CommitBundleBody::tls_deserialize_exact(data);
    let _ = GroupCreateBody::tls_deserialize_exact(data);
    let _ = KeyPackageUploadBody::tls_deserialize_exact(data);
    let _ = MessagesPageBody::tls_deserialize_exact(data);
    let _ = serde_json::from_slice::<grove_proto::RegisterRequest>(data);
    let _ = serde_json::from_slice::<grove_proto::TokenRequest>(data);
});
