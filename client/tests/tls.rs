//! TLS: a `--dev-tls` DS is reached with its pinned SHA-256 fingerprint; a
//! wrong pin, or no pin (system roots do not know the self-signed
//! certificate), is refused; plain http:// goes only to loopback.

use std::time::Duration;

use grove_client::{Client, ClientConfig, Error, TrustMode};
use grove_ds::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_dev_certificate() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    grove_ds::server::install_crypto_provider();
    let mut config = Config::for_tests(dir.path().join("ds"));
    config.rate_limit_per_sec = 0;
    std::fs::create_dir_all(&config.data_dir)?;
    let (tls, fp) = grove_ds::server::dev_tls(&config.data_dir).await?;
    let ds = grove_ds::testing::build(&config).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(grove_ds::server::run(
        listener,
        ds,
        config.max_body_bytes,
        Some(tls),
        Duration::from_secs(3600),
        Duration::from_secs(1),
        async move {
            let _ = stopped.await;
        },
    ));
    let url = format!("https://localhost:{port}");

    let mut good = ClientConfig::new(&url, "alice");
    good.trust = TrustMode::pinned_hex(&fp)?;
    let alice = Client::create(dir.path().join("alice"), good).await?;
    alice.create_group("over tls").await?;
    assert_eq!(alice.groups()?.len(), 1);

    let mut wrong = ClientConfig::new(&url, "bob");
    wrong.trust = TrustMode::pinned_hex(&"00".repeat(32))?;
    let r = Client::create(dir.path().join("bob"), wrong).await;
    assert!(matches!(&r, Err(Error::Tls(m)) if m.contains("does not match the pinned")), "{r:?}");

    // No pin: the cause (an issuer nobody trusts) and the remedy are named ...
    let r = Client::create(dir.path().join("carol"), ClientConfig::new(&url, "carol")).await;
    assert!(
        matches!(&r, Err(Error::Tls(m)) if m.contains("not signed by a CA") && m.contains("--server-cert-sha256")),
        "system roots must not accept it, and the error says what to do: {r:?}"
    );
    // ... and the same home then takes the right pin: a failed init is retried.
    let mut carol = ClientConfig::new(&url, "carol");
    carol.trust = TrustMode::pinned_hex(&fp)?;
    let carol = Client::create(dir.path().join("carol"), carol).await?;
    assert_eq!(carol.whoami().user, "carol");
    drop(carol);
    assert!(Client::open(dir.path().join("carol"))?.groups()?.is_empty(), "reopens with the pin it was given last");

    let r = Client::create(dir.path().join("dave"), ClientConfig::new("http://ds.example:8080", "dave")).await;
    assert!(matches!(r, Err(Error::Tls(_))), "{r:?}");

    let _ = stop.send(());
    server.await??;
    Ok(())
}
