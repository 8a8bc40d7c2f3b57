//! TLS: `--dev-tls` generates a certificate once, keeps it, and serves HTTPS that
//! a client trusting that certificate accepts; plain HTTP to the TLS port fails.

mod common;

use grove_ds::config::Config;
use grove_ds::testing::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_tls_serves_https_with_a_stable_pinned_certificate() {
    grove_ds::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (tls, fingerprint) = grove_ds::server::dev_tls(dir.path()).await.unwrap();
    assert_eq!(fingerprint.len(), 64);
    // The certificate is kept: a second start has the same fingerprint.
    let (_, again) = grove_ds::server::dev_tls(dir.path()).await.unwrap();
    assert_eq!(again, fingerprint);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("dev-tls-key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the TLS private key is owner-only");
    }

    let mut config = Config::for_tests(dir.path().join("data"));
    config.rate_limit_per_sec = 0;
    let ds = TestServer::start_tls(config, tls).await.unwrap();
    let port = ds.addr.port();
    let pem = std::fs::read(dir.path().join("dev-tls-cert.pem")).unwrap();
    let client =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]).build().unwrap();
    let r = client.get(format!("https://localhost:{port}/v1/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A client that does not trust the certificate is refused ...
    let strict = reqwest::Client::builder().build().unwrap();
    assert!(strict.get(format!("https://localhost:{port}/v1/health")).send().await.is_err());
    // ... and plain HTTP to the TLS port gets no answer.
    assert!(strict.get(format!("http://127.0.0.1:{port}/v1/health")).send().await.is_err());
    ds.shutdown().await.unwrap();
}
