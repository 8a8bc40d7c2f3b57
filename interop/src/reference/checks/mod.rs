//! The reference model's verifiers, one per vector file it covers (every file
//! but the passive-client ones); see the vectors' README for what each checks.

pub mod crypto_basics;
pub mod deserialization;
pub mod key_schedule;
pub mod message_protection;
pub mod messages;
pub mod psk_secret;
pub mod secret_tree;
pub mod transcript_hashes;
pub mod tree_math;
pub mod tree_operations;
pub mod tree_validation;
pub mod treekem;
pub mod welcome;
