//! A decrypted application message from another member: the envelope and its manifests.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| grove_client::fuzzing::envelope(data));
