//! Identity data from the network (`grove_proto::identity`, `grove_proto::link`):
//! device lists (served by the DS, published by clients), credential
//! identities (in every leaf), mailboxes, and link requests and approvals
//! (parsed by the DS and by clients), decoded, verified and compared. Nothing may panic; a list
//! that decodes must verify or be refused, never accepted by accident.
#![no_main]
use grove_proto::identity::{device_credential_identity, DeviceList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = DeviceList::decode(data) {
        // A fixed key: whatever the input, it did not sign it.
        assert!(list.verify(&list.user(), &[3u8; 32]).is_err() || list.tbs.identity_key.as_slice() == [3u8; 32]);
        let _ = list.verify(&list.user(), list.tbs.identity_key.as_slice());
        let _ = list.check_successor(&list);
        let _ = list.hash();
    }
    if let Ok(id) = device_credential_identity(data) {
        let _ = id.user();
        if let grove_proto::identity::CredentialIdentity::Device(cert) = id {
            let _ = cert.verify();
            let _ = cert.device_id();
        }
    }
    if let Ok(req) = grove_proto::link::LinkRequest::decode(data) {
        let _ = req.user();
    }
    let _ = <grove_proto::link::SealedApproval as tls_codec::Deserialize>::tls_deserialize_exact(data);
    let _ = <grove_proto::link::LinkApproval as tls_codec::Deserialize>::tls_deserialize_exact(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let (user, device) = grove_proto::identity::split_mailbox(s);
        assert_eq!(grove_proto::identity::mailbox(user, device), s);
    }
    let _ = serde_json::from_slice::<grove_proto::LinkResponse>(data);
    let _ = serde_json::from_slice::<grove_proto::LinkCreateRequest>(data);
    let _ = serde_json::from_slice::<grove_proto::DeviceKeyPackagesResponse>(data);
    let _ = serde_json::from_slice::<grove_proto::DeviceListsResponse>(data);
    let _ = serde_json::from_slice::<grove_proto::DeviceListRequest>(data);
});
