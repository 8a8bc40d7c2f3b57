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

/// A stand-in for the app's auth server: a real signing key (Ed25519 or
/// P-256) whose public half is written as PEM for `--auth-jwt-key`, and real
/// signed JWTs with whatever claims a test needs.
pub struct AuthServer {
    private_pem: String,
    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
    alg: jsonwebtoken::Algorithm,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer").field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// The issuer the test auth servers use.
pub const TEST_ISSUER: &str = "https://auth.app.example";
/// The audience the test auth servers use.
pub const TEST_AUDIENCE: &str = "grove";

impl AuthServer {
    /// A new Ed25519 (EdDSA) signing key.
    pub fn ed25519() -> Self {
        Self::generate(&rcgen::PKCS_ED25519, jsonwebtoken::Algorithm::EdDSA)
    }

    /// A new P-256 (ES256) signing key.
    pub fn es256() -> Self {
        Self::generate(&rcgen::PKCS_ECDSA_P256_SHA256, jsonwebtoken::Algorithm::ES256)
    }

    /// A new P-384 key: one the DS must refuse to load.
    pub fn p384_public_pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key").public_key_pem()
    }

    fn generate(alg: &'static rcgen::SignatureAlgorithm, jwt_alg: jsonwebtoken::Algorithm) -> Self {
        let kp = rcgen::KeyPair::generate_for(alg).expect("generate a test auth key");
        AuthServer { private_pem: kp.serialize_pem(), public_pem: kp.public_key_pem(), alg: jwt_alg }
    }

    /// Writes the public key to `dir/name` and returns the path.
    pub fn write_public(&self, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.public_pem).expect("write the test JWT key");
        p
    }

    /// A JWT with exactly `claims`, signed by this key.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let key = match self.alg {
            jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(self.private_pem.as_bytes()),
            _ => jsonwebtoken::EncodingKey::from_ec_pem(self.private_pem.as_bytes()),
        }
        .expect("test signing key");
        jsonwebtoken::encode(&jsonwebtoken::Header::new(self.alg), claims, &key).expect("sign a test JWT")
    }

    /// A good login of `user`: the test issuer and audience, valid for 10 minutes.
    pub fn login(&self, user: &str) -> String {
        self.sign(&Self::claims(user))
    }

    /// The claims of [`AuthServer::login`], to alter.
    pub fn claims(user: &str) -> serde_json::Value {
        let now = crate::ds::now_secs();
        serde_json::json!({ "sub": user, "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "iat": now, "exp": now + 600 })
    }

    /// Sets `--auth-jwt-key` (adding this key), `--auth-issuer` and `--auth-audience`.
    pub fn configure(&self, config: &mut crate::config::Config, dir: &std::path::Path) {
        let n = config.auth_jwt_key.len();
        config.auth_jwt_key.push(self.write_public(dir, &format!("auth-key-{n}.pem")));
        config.auth_issuer = Some(TEST_ISSUER.into());
        config.auth_audience = Some(TEST_AUDIENCE.into());
    }
}
