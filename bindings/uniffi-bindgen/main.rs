//! `uniffi-bindgen`: generates the Kotlin, Swift and Python sources of the
//! `grove-ffi` binding from the built library (see `docs/mobile.md`):
//!
//! ```text
//! cargo build -p grove-ffi
//! cargo run -p uniffi-bindgen -- generate --library target/debug/libgrove_ffi.so \
//!     --language kotlin --language swift --language python --out-dir target/bindings
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
