//! Serving: `run(listener, ds, tls, shutdown)`. The caller binds the listener and
//! passes a shutdown future (ctrl-c/SIGTERM in production, a oneshot in tests).
//! On shutdown `run` stops accepting, wakes long-polls and streams, lets open
//! requests finish (up to the grace period), flushes storage and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::tls_rustls::RustlsConfig;

use crate::ds::Ds;

/// Installs the process-wide rustls crypto provider (ring). Safe to call more
/// than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads a PEM certificate chain and key into a rustls server config.
pub async fn tls_from_pem(cert: &Path, key: &Path) -> anyhow::Result<RustlsConfig> {
    install_crypto_provider();
    RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))
}

/// Generates (once) a self-signed certificate for `localhost`/127.0.0.1 in
/// `dir` and returns the rustls config and the certificate's SHA-256 fingerprint.
pub async fn dev_tls(dir: &Path) -> anyhow::Result<(RustlsConfig, String)> {
    use sha2::Digest as _;
    install_crypto_provider();
    let cert_path = dir.join("dev-tls-cert.pem");
    let key_path = dir.join("dev-tls-key.pem");
    if !cert_path.exists() || !key_path.exists() {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let ck = rcgen::generate_simple_self_signed(names).context("generating the dev TLS certificate")?;
        std::fs::write(&cert_path, ck.cert.pem()).context("writing the dev TLS certificate")?;
        write_private(&key_path, ck.key_pair.serialize_pem().as_bytes()).context("writing the dev TLS key")?;
    }
    let pem = std::fs::read(&cert_path)?;
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .context("the dev TLS certificate file holds no certificate")??;
    let fp = hex::encode(sha2::Sha256::digest(der.as_ref()));
    Ok((tls_from_pem(&cert_path, &key_path).await?, fp))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Serves the API on `listener` until `shutdown` resolves, then drains and
/// flushes. Retention runs every `retention_every`.
pub async fn run(
    listener: std::net::TcpListener,
    ds: Arc<Ds>,
    max_body_bytes: usize,
    tls: Option<RustlsConfig>,
    retention_every: Duration,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let app = crate::http::app(ds.clone(), max_body_bytes).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();

    let retention = {
        let ds = ds.clone();
        let mut stop = ds.shutdown_signal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(retention_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        ds.auth.housekeeping();
                        match ds.run_retention().await {
                            Ok(n) if n > 0 => tracing::info!(deleted = n, "retention"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "retention failed"),
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };

    {
        let handle = handle.clone();
        let ds = ds.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests");
            ds.begin_shutdown();
            handle.graceful_shutdown(Some(grace));
        });
    }

    let served = match tls {
        Some(cfg) => axum_server::from_tcp_rustls(listener, cfg).handle(handle).serve(app).await,
        None => axum_server::from_tcp(listener).handle(handle).serve(app).await,
    };
    ds.begin_shutdown();
    let _ = retention.await;
    ds.store().persist().await.context("final flush of the store")?;
    tracing::info!("storage flushed; stopped");
    served.context("serving HTTP")
}
