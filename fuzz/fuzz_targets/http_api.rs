//! The DS's HTTP API: one request per input through the real router.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| grove_ds::fuzzing::Api::get().request(data));
