//! `grove_client`: the library a Grove app embeds (identity, crash-safe MLS state,
//! resource groups, key pinning). Filled in by the client issue.
//!
//! # Layout
//! - nothing yet: see the client issue.
