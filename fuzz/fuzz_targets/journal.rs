//! The client's commit journal reader (`grove_client::storage` replays it on open).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| grove_client::fuzzing::journal(data));
