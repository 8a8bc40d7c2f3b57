//! Test conveniences (cargo feature `testing`, off in production builds): the
//! names the test suites use for the daemon's own wiring in [`crate::daemon`].

pub use crate::daemon::{build_with_store, create_private_dir, open as build};

/// A Delivery Service running inside the test process (`127.0.0.1:0`, plain
/// HTTP unless started with TLS, a shutdown handle).
pub type TestServer = crate::daemon::InProcess;

/// A PostgreSQL database of its own for one test: created on the server at
/// `GROVE_TEST_DATABASE_URL`, dropped when the guard goes.
pub struct TestDb {
    /// URL of the new database.
    pub url: String,
    admin: String,
    name: String,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The environment variable that names the test server.
pub const TEST_DATABASE_ENV: &str = "GROVE_TEST_DATABASE_URL";

impl TestDb {
    /// A new, empty database; `None` (after printing `SKIPPED`) when
    /// `GROVE_TEST_DATABASE_URL` is unset. Under `CI=true` an unset variable
    /// or a server that does not answer is a failure, never a skip.
    pub async fn create(test: &str) -> Option<TestDb> {
        let Some(admin) = std::env::var(TEST_DATABASE_ENV).ok().filter(|v| !v.is_empty()) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{TEST_DATABASE_ENV} is unset under CI=true: the PostgreSQL tests must run (.ci/run sets it)"
            );
            eprintln!(
                "SKIPPED {test}: set {TEST_DATABASE_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) to run it"
            );
            return None;
        };
        let name = format!("grove_test_{}_{:08x}", std::process::id(), rand::random::<u32>());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server at {TEST_DATABASE_ENV}={admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("CREATE DATABASE");
        let url = with_database(&admin, &name);
        Some(TestDb { url, admin, name })
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..host_end])
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A runtime of its own: Drop may run inside or outside one.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop the test database {}", self.name);
        }
    }
}

/// Retries `open` while sled's background threads of a database this process
/// just closed or dropped still hold its file lock (they let go within
/// moments); gives up after 10 s.
pub fn retry_sled_lock<T, E: std::fmt::Display>(mut open: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Err(e) if e.to_string().contains("acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other,
        }
    }
}
