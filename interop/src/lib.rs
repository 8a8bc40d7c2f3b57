//! Interop checks for Grove: the RFC 9420 test vectors and cross-implementation tests.
//!
//! # Layout
//! - this crate is filled by the interop issue; for now it only locates the vectors.
