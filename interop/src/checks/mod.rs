//! The verifiers that run vector files through openmls's public API (the
//! code Grove ships), one per file openmls can take; see the vectors' README
//! for what each file checks, and each module for what openmls does not
//! expose.

pub mod crypto_basics;
pub mod deserialization;
pub mod messages;
pub mod passive_client;
pub mod tree_validation;
pub mod welcome;
