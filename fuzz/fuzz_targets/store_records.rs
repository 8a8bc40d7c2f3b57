//! The DS's stored records, as read back from disk.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| grove_ds::fuzzing::store_records(data));
