//! Decoding any bytes as an MLSMessage (what every DS route does first) must
//! never panic; what decodes must re-encode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use openmls::prelude::MlsMessageIn;
use tls_codec::{Deserialize, Serialize};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = MlsMessageIn::tls_deserialize_exact(data) {
        let _ = m.tls_serialize_detached();
        let _ = m.extract();
    }
});
