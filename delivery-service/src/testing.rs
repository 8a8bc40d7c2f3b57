//! Test conveniences (cargo feature `testing`, off in production builds): the
//! names the test suites use for the daemon's own wiring in [`crate::daemon`].

pub use crate::daemon::{build_with_store, create_private_dir, open as build};

/// A Delivery Service running inside the test process (`127.0.0.1:0`, plain
/// HTTP unless started with TLS, a shutdown handle).
pub type TestServer = crate::daemon::InProcess;
