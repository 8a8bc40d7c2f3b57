//! Production wiring: open the data directory, build the domain layer, and
//! serve it in-process. `grove-ds`'s `main` and `grove demo` both start here.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::AuthState;
use crate::blobs::{BlobStore, PgBlobs};
use crate::config::{CheckArgs, Config, StoreKind};
use crate::ds::{Ds, Limits};
use crate::metrics::Metrics;
use crate::store::{CheckReport, PgStore, SledStore, Store};

/// Creates `dir` (owner-only on unix) if it does not exist.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Opens the configured store (sled in `config.data_dir`, or PostgreSQL at
/// `config.database_url`) and builds the domain layer.
pub async fn open(config: &Config) -> anyhow::Result<Arc<Ds>> {
    create_private_dir(&config.data_dir)?;
    let metrics = Arc::new(Metrics::new());
    if config.store == StoreKind::Postgres {
        let url = config.database_url.as_deref().context(
            "--store postgres needs --database-url (or GROVE_DS_DATABASE_URL), e.g. postgres://grove@db/grove",
        )?;
        let store = PgStore::open(url, config.database_pool).await.context("opening the PostgreSQL store")?;
        let blobs = BlobStore::Postgres(PgBlobs::new(store.pool().clone(), config.max_blob_bytes));
        return build_with_parts(config, Arc::new(store), blobs, metrics).await;
    }
    let observer = {
        let batch = metrics.fsync_batch.clone();
        let secs = metrics.fsync_seconds.clone();
        Arc::new(move |n: usize, s: f64| {
            batch.observe(n as f64);
            secs.observe(s);
        })
    };
    let store = SledStore::open(&store_dir(&config.data_dir), Some(observer))
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    build_with_store(config, Arc::new(store), metrics).await
}

/// The sled store's directory inside a data directory.
pub fn store_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("db")
}

/// `grove-ds check`: verifies (or, with `--accept-rollback`, re-accepts) the
/// store in `args.data_dir`.
pub fn check(args: &CheckArgs) -> anyhow::Result<CheckReport> {
    let dir = store_dir(&args.data_dir);
    if !dir.join("conf").exists() {
        anyhow::bail!(
            "{} holds no grove-ds database (no {}): check the --data-dir",
            args.data_dir.display(),
            dir.display()
        );
    }
    let report = if args.accept_rollback { SledStore::accept_current_state(&dir) } else { SledStore::check(&dir) };
    report.with_context(|| format!("checking the database in {}", args.data_dir.display()))
}

/// `grove-ds migrate`: verifies the sled store in `args.from_sled`, then
/// copies it into the empty PostgreSQL database at `args.to`.
pub async fn migrate(args: &crate::config::MigrateArgs) -> anyhow::Result<crate::store::transfer::TransferReport> {
    let dir = store_dir(&args.from_sled);
    if !dir.join("conf").exists() {
        anyhow::bail!("{} holds no grove-ds database (no {})", args.from_sled.display(), dir.display());
    }
    let report = SledStore::check(&dir).with_context(|| format!("checking {}", args.from_sled.display()))?;
    if !report.ok() {
        anyhow::bail!("the sled store is damaged, nothing was copied:\n{}", render_check(&report, false));
    }
    let sled = SledStore::open(&dir, None).with_context(|| format!("opening {}", args.from_sled.display()))?;
    let pg = PgStore::open(&args.to, 4).await.context("opening the PostgreSQL database")?;
    let copied = crate::store::transfer::sled_to_postgres(&sled, &args.from_sled.join("blobs"), &pg)
        .await
        .context("copying into PostgreSQL")?;
    sled.close().context("closing the sled store")?;
    Ok(copied)
}

/// The human-readable form of a [`CheckReport`].
pub fn render_check(report: &CheckReport, accepted: bool) -> String {
    let mut out = format!(
        "store {} (format {})\nusers {}, groups {}, log entries {}, KeyPackages {}, Welcomes waiting {}, cursors {}\n",
        report.dir,
        report.format,
        report.users,
        report.groups,
        report.log_entries,
        report.key_packages,
        report.welcomes,
        report.cursors
    );
    match report.watermark_written_at {
        Some(at) => out.push_str(&format!("watermark written at unix time {at}\n")),
        None => out.push_str("no watermark file\n"),
    }
    if report.ok() && accepted {
        out.push_str("ACCEPTED: the store is consistent; its current state is the new watermark\n");
    } else if report.ok() {
        out.push_str("OK: every record decodes, every log matches its hash chain, nothing recorded is missing\n");
    } else {
        out.push_str(&format!("DAMAGED: {} problem(s)\n", report.problems.len()));
        for p in &report.problems {
            out.push_str(&format!("  - {p}\n"));
        }
        out.push_str(
            "Restore the data directory from a backup (the whole directory, with db/grove-watermark). If you \
             restored an older backup on purpose, run grove-ds check --accept-rollback.\n",
        );
    }
    out
}

/// Builds the domain layer over any store.
pub async fn build_with_store(
    config: &Config,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Ds>> {
    let blobs = BlobStore::open(&config.data_dir.join("blobs"), config.max_blob_bytes)?;
    build_with_parts(config, store, blobs, metrics).await
}

/// Builds the domain layer over a store and a blob store, opens the key
/// directory and starts its publisher, and follows the store's changes if
/// other replicas share it.
async fn build_with_parts(
    config: &Config,
    store: Arc<dyn Store>,
    blobs: BlobStore,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Ds>> {
    let auth =
        AuthState::new(Duration::from_secs(config.token_ttl_secs), config.rate_limit_per_sec, config.rate_limit_burst);
    let mut limits = Limits::from_config(config);
    limits.login = crate::login::LoginVerifier::from_config(config)?.map(Arc::new);
    match (&limits.login, &limits.registration_token) {
        (Some(v), _) => tracing::info!(verifier = ?v, "registration requires a login token from the app's auth server"),
        (None, Some(_)) => tracing::warn!(
            "registration needs the shared registration token but is not bound to the app's login: anyone with \
             the token can take any free user name (set --auth-jwt-key, --auth-issuer and --auth-audience)"
        ),
        (None, None) => tracing::warn!(
            "registration is OPEN: anyone who reaches this server can take any free user name. Bind it to the \
             app's login with --auth-jwt-key, --auth-issuer and --auth-audience"
        ),
    }
    let events = store.take_events();
    let kt = crate::kt::KeyDirectory::open(Arc::clone(&store), Duration::from_millis(config.kt_epoch_ms))
        .await
        .context("opening the key directory")?;
    let keys = kt.keys();
    tracing::info!(
        vrf_key = %grove_proto::fingerprint(&keys.vrf_public_key),
        head_key = %grove_proto::fingerprint(&keys.head_key),
        fingerprint = %keys.fingerprint(),
        epoch = kt.latest_epoch(),
        "key directory open: publish these fingerprints so that clients and auditors can check them"
    );
    let ds = Arc::new(Ds::new(store, blobs, limits, auth, metrics, Arc::clone(&kt))?);
    tokio::spawn(kt.run(ds.shutdown_signal()));
    if let Some(events) = events {
        tokio::spawn(Arc::clone(&ds).follow(events));
    }
    Ok(ds)
}

/// A Delivery Service serving inside this process, with a shutdown handle.
/// Dropping it starts a graceful shutdown; [`InProcess::shutdown`] also waits
/// until requests drained and storage is flushed.
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The domain layer (for white-box checks).
    pub ds: Arc<Ds>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl InProcess {
    /// Opens `config.data_dir` and serves plain HTTP on `config.listen` (use
    /// [`Config::loopback`]).
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let ds = open(&config).await?;
        Self::start_with(config, ds).await
    }

    /// Starts serving an already built DS (plain HTTP).
    pub async fn start_with(config: Config, ds: Arc<Ds>) -> anyhow::Result<Self> {
        Self::start_serving(config, ds, None).await
    }

    /// Opens `config.data_dir` and serves over TLS with `tls`.
    pub async fn start_tls(config: Config, tls: axum_server::tls_rustls::RustlsConfig) -> anyhow::Result<Self> {
        let ds = open(&config).await?;
        Self::start_serving(config, ds, Some(tls)).await
    }

    async fn start_serving(
        config: Config,
        ds: Arc<Ds>,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
    ) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("binding {} for the in-process DS", config.listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(crate::server::run_with(
            listener,
            ds.clone(),
            tls,
            crate::server::ServeOptions::from_config(&config),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(InProcess { addr, ds, stop: Some(stop), task: Some(task) })
    }

    /// Base URL, e.g. `http://127.0.0.1:34567`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown; returns when the server has drained and flushed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await.context("server task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
