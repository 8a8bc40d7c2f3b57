//! A resource blob as the DS serves it: header, chunks, padding, tags.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| grove_client::fuzzing::blob(data));
