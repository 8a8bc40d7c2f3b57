//! The daemon's configuration: one struct, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of `grove-ds`. Every flag can also be set by the environment
/// variable named in `--help`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "grove-ds",
    version,
    about = "Grove Delivery Service: stores and routes MLS ciphertext",
    after_help = "To verify a data directory without serving it: grove-ds check --data-dir DIR (see grove-ds check --help)."
)]
pub struct Config {
    /// Directory for the database (and the --dev-tls certificate). Created if missing.
    #[arg(long, env = "GROVE_DS_DATA_DIR", default_value = "./grove-ds-data")]
    pub data_dir: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "GROVE_DS_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// TLS certificate chain (PEM).
    #[arg(long, env = "GROVE_DS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "GROVE_DS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Generate (once) and use a self-signed certificate kept in the data dir; its
    /// SHA-256 fingerprint is printed for clients to pin.
    #[arg(long, env = "GROVE_DS_DEV_TLS", conflicts_with_all = ["tls_cert", "insecure_http"])]
    pub dev_tls: bool,

    /// Serve plain HTTP without TLS. Only for tests and local development behind a
    /// TLS-terminating proxy.
    #[arg(long, env = "GROVE_DS_INSECURE_HTTP", conflicts_with = "tls_cert")]
    pub insecure_http: bool,

    /// If set, registration requires this token (closes open sign-up).
    #[arg(long, env = "GROVE_DS_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,

    /// Binds registration to the app's login: a PEM public key (Ed25519 or
    /// P-256/ES256) of the app's auth server. Repeat the flag (or separate
    /// files by commas in the environment variable) to accept several keys
    /// while the auth server rotates. Needs --auth-issuer and --auth-audience.
    #[arg(long, env = "GROVE_DS_AUTH_JWT_KEY", value_delimiter = ',', requires_all = ["auth_issuer", "auth_audience"])]
    pub auth_jwt_key: Vec<PathBuf>,

    /// The `iss` that login tokens must carry (with --auth-jwt-key).
    #[arg(long, env = "GROVE_DS_AUTH_ISSUER", requires = "auth_jwt_key")]
    pub auth_issuer: Option<String>,

    /// The `aud` that login tokens must carry (with --auth-jwt-key).
    #[arg(long, env = "GROVE_DS_AUTH_AUDIENCE", requires = "auth_jwt_key")]
    pub auth_audience: Option<String>,

    /// Bearer token that `GET /metrics` requires. Without it `/metrics` is
    /// refused (403): only health and registration work without authentication.
    #[arg(long, env = "GROVE_DS_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GROVE_DS_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Largest accepted blob (encrypted resource version), in bytes.
    #[arg(long, env = "GROVE_DS_MAX_BLOB_BYTES", default_value_t = 1 << 30)]
    pub max_blob_bytes: u64,

    /// Largest page a fetch may ask for.
    #[arg(long, env = "GROVE_DS_MAX_PAGE", default_value_t = 500)]
    pub max_page: usize,

    /// Longest long-poll wait, in seconds.
    #[arg(long, env = "GROVE_DS_MAX_WAIT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub max_wait_secs: u64,

    /// Requests per second each authenticated client (or each IP, before
    /// authentication) may make; 0 disables rate limiting.
    #[arg(long, env = "GROVE_DS_RATE_LIMIT", default_value_t = 500)]
    pub rate_limit_per_sec: u32,

    /// Burst allowance of the rate limiter.
    #[arg(long, env = "GROVE_DS_RATE_BURST", default_value_t = 1000)]
    pub rate_limit_burst: u32,

    /// How many past epochs application messages may still use (0: current only).
    #[arg(long, env = "GROVE_DS_APP_EPOCH_WINDOW", default_value_t = 1)]
    pub app_epoch_window: u64,

    /// Most one-time KeyPackages stored per client and ciphersuite.
    #[arg(long, env = "GROVE_DS_KEY_PACKAGE_CAP", default_value_t = 100)]
    pub key_package_cap: u64,

    /// Longest accepted KeyPackage lifetime (not_after - now), in days.
    #[arg(long, env = "GROVE_DS_KEY_PACKAGE_MAX_DAYS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=3_650))]
    pub key_package_max_days: u64,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "GROVE_DS_TOKEN_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub token_ttl_secs: u64,

    /// Messages older than this are deleted even if not every member acknowledged
    /// them, in seconds (default 30 days).
    #[arg(long, env = "GROVE_DS_MESSAGE_TTL_SECS", default_value_t = 30 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..=3_153_600_000))]
    pub message_ttl_secs: u64,

    /// The key directory publishes at most one epoch per this many
    /// milliseconds (every update waits at most this long to be published).
    #[arg(long, env = "GROVE_DS_KT_EPOCH_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub kt_epoch_ms: u64,

    /// How often retention runs, in seconds.
    #[arg(long, env = "GROVE_DS_RETENTION_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub retention_interval_secs: u64,

    /// How long a client may take to send a request's headers, in seconds;
    /// also how long an idle keep-alive connection stays open between requests.
    #[arg(long, env = "GROVE_DS_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_read_timeout_secs: u64,

    /// Most open connections in all [default: the open-files limit less 64].
    #[arg(long, env = "GROVE_DS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most open connections from one IP address [default: a quarter of
    /// --max-connections]. Behind a load balancer or proxy, which connects from
    /// one address, set it to --max-connections.
    #[arg(long, env = "GROVE_DS_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,

    /// Most open WebSocket streams from one IP address [default: half of
    /// --max-connections-per-ip].
    #[arg(long, env = "GROVE_DS_MAX_STREAMS_PER_IP")]
    pub max_streams_per_ip: Option<usize>,

    /// How long graceful shutdown waits for open requests, in seconds.
    #[arg(long, env = "GROVE_DS_SHUTDOWN_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_grace_secs: u64,

    /// Where the DS keeps its data: `sled` (embedded, in --data-dir; one
    /// process) or `postgres` (--database-url; any number of replicas). With
    /// postgres, --data-dir holds only local files (the --dev-tls certificate,
    /// blobs).
    #[arg(long, env = "GROVE_DS_STORE", value_enum, default_value_t = StoreKind::Sled)]
    pub store: StoreKind,

    /// PostgreSQL connection URL, with --store postgres (for example
    /// `postgres://grove@db.internal/grove?sslmode=verify-full`).
    #[arg(long, env = "GROVE_DS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Connections in this replica's PostgreSQL pool.
    #[arg(long, env = "GROVE_DS_DATABASE_POOL", default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub database_pool: u32,
}

/// The storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// sled, embedded in the data directory (the default).
    Sled,
    /// PostgreSQL at --database-url.
    Postgres,
}

/// The connection caps in effect, with the defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnCaps {
    /// Open connections in all.
    pub total: usize,
    /// Open connections per peer IP.
    pub per_ip: usize,
    /// Open WebSocket streams per peer IP.
    pub streams_per_ip: usize,
}

impl Config {
    /// [`ConnCaps`] from the flags, or their defaults.
    pub fn conn_caps(&self) -> ConnCaps {
        let total = self.max_connections.unwrap_or_else(crate::conn::default_max_connections).max(1);
        let per_ip = self.max_connections_per_ip.unwrap_or(total / 4).clamp(1, total);
        let streams_per_ip = self.max_streams_per_ip.unwrap_or(per_ip / 2).max(1);
        ConnCaps { total, per_ip, streams_per_ip }
    }

    /// The defaults, serving plain HTTP on an ephemeral loopback port with its
    /// data in `data_dir`: for a DS run inside another process (`grove demo`,
    /// tests). Never reachable from another machine.
    pub fn loopback(data_dir: PathBuf) -> Self {
        use clap::Parser as _;
        let mut c = Config::parse_from(["grove-ds", "--insecure-http", "--listen", "127.0.0.1:0"]);
        c.data_dir = data_dir;
        c
    }

    /// [`Config::loopback`], for tests.
    #[cfg(feature = "testing")]
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut c = Self::loopback(data_dir);
        // Registrations are visible in the key directory within 0.1 s, so
        // tests that look a fresh user up do not wait a second each.
        c.kt_epoch_ms = 100;
        c
    }
}

/// `grove-ds migrate`: copy a sled data directory into PostgreSQL.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "grove-ds migrate",
    about = "Copy a stopped grove-ds's sled data directory into an empty PostgreSQL database, in one \
             transaction: users, KeyPackages, groups, logs, cursors, Welcomes, reports and sessions, with \
             their sequence numbers and ids, and the encrypted blobs. The sled directory is verified first and \
             only read."
)]
pub struct MigrateArgs {
    /// The sled data directory, as given to grove-ds --data-dir (stop that grove-ds first).
    #[arg(long)]
    pub from_sled: PathBuf,
    /// The PostgreSQL URL of the new, empty database.
    #[arg(long, env = "GROVE_DS_DATABASE_URL", hide_env_values = true)]
    pub to: String,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `grove-ds check`: verify a data directory without serving it.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "grove-ds check",
    about = "Verify a grove-ds data directory without serving it: every record decodes, every group's log \
             matches its hash chain, and nothing the watermark recorded is missing. Exit status 0: healthy; \
             1: damaged or rolled back; 2: could not be checked (for example, a running grove-ds has it open)."
)]
pub struct CheckArgs {
    /// The data directory, as given to grove-ds.
    #[arg(long, env = "GROVE_DS_DATA_DIR", default_value = "./grove-ds-data")]
    pub data_dir: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// After restoring an older backup on purpose: if the store is otherwise
    /// healthy, record its current state as the new watermark so grove-ds serves
    /// it again. Clients that had seen more will report server_rollback.
    #[arg(long)]
    pub accept_rollback: bool,
}

#[cfg(test)]
mod tests {
    use super::Config;
    use clap::Parser as _;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(["grove-ds"].iter().chain(args))
    }

    /// Values that would panic or overflow later (a zero interval, an Instant
    /// far in the future) are refused when the flags are parsed, naming the flag.
    #[test]
    fn out_of_range_durations_are_refused_at_startup() {
        for (flag, value) in [
            ("--retention-interval-secs", "0"),
            ("--max-wait-secs", "18446744073709551615"),
            ("--token-ttl-secs", "0"),
            ("--token-ttl-secs", "18446744073709551615"),
            ("--key-package-max-days", "18446744073709551615"),
            ("--shutdown-grace-secs", "99999999"),
        ] {
            let err = parse(&[flag, value]).expect_err(flag).to_string();
            assert!(err.contains(flag), "{flag}={value}: {err}");
        }
        let ok = parse(&["--retention-interval-secs", "1", "--max-wait-secs", "0"]).unwrap();
        assert_eq!((ok.retention_interval_secs, ok.max_wait_secs), (1, 0));
    }
}
