//! `grove-ds`: parse the config, start tracing, open storage, bind, run.

use anyhow::{bail, Context as _};
use clap::Parser as _;
use grove_ds::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the DS allocates a few buffers
/// per delivery on several threads, and glibc's malloc was 11 % of its CPU
/// under load (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "check") {
        std::process::exit(check(grove_ds::config::CheckArgs::parse_from(std::env::args_os().skip(1))));
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "migrate") {
        return migrate(grove_ds::config::MigrateArgs::parse_from(std::env::args_os().skip(1)));
    }
    serve(Config::parse())
}

/// `grove-ds check`: exit status 0 healthy, 1 damaged, 2 not checked.
fn check(args: grove_ds::config::CheckArgs) -> i32 {
    match grove_ds::daemon::check(&args) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                );
            } else {
                print!("{}", grove_ds::daemon::render_check(&report, args.accept_rollback));
            }
            if report.ok() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// `grove-ds migrate --from-sled DIR --to URL`.
#[tokio::main]
async fn migrate(args: grove_ds::config::MigrateArgs) -> anyhow::Result<()> {
    let r = grove_ds::daemon::migrate(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "copied {} users, {} KeyPackages, {} groups, {} log entries, {} cursors, {} Welcomes, {} reports, \
             {} sessions, {} blobs into PostgreSQL",
            r.users, r.key_packages, r.groups, r.log_entries, r.cursors, r.welcomes, r.reports, r.sessions, r.blobs
        );
    }
    Ok(())
}

#[tokio::main]
async fn serve(config: Config) -> anyhow::Result<()> {
    // Colours only on a terminal: a log written to a file or a pipe stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(ansi)
        .init();

    let tls = if config.dev_tls {
        grove_ds::daemon::create_private_dir(&config.data_dir)?;
        let (cfg, fp) = grove_ds::server::dev_tls(&config.data_dir).await?;
        println!("dev TLS certificate SHA-256 fingerprint: {fp}");
        println!("clients pin it with: grove init --server https://{} --server-cert-sha256 {fp} ...", config.listen);
        Some(cfg)
    } else if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        Some(grove_ds::server::tls_from_pem(cert, key).await?)
    } else if config.insecure_http {
        tracing::warn!("serving plain HTTP (--insecure-http): use only on loopback or behind a TLS proxy");
        None
    } else {
        bail!(
            "no TLS configured: pass --tls-cert and --tls-key, or --dev-tls, or (for local tests only) --insecure-http"
        );
    };

    let ds = grove_ds::daemon::open(&config).await?;
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %config.data_dir.display(), tls = tls.is_some(), "grove-ds listening");
    let opts = grove_ds::server::ServeOptions::from_config(&config);
    grove_ds::server::run_with(listener, ds, tls, opts, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
