//! How the client trusts the DS: TLS server verification and the loopback-only
//! rule for plain `http://`.
//!
//! Three modes ([`TrustMode`]):
//! - **system roots**, read from the operating system's trust store with
//!   `rustls-native-certs` (a desktop or server client then follows the
//!   machine's CA policy and its updates, instead of a root list frozen into the
//!   binary at build time as `webpki-roots` would be);
//! - a **CA file** (PEM), for a private CA;
//! - a **pinned SHA-256 fingerprint** of the DS's certificate (DER), for a
//!   `grove-ds --dev-tls` server whose self-signed certificate no CA vouches
//!   for. The pin replaces chain and name validation; the TLS handshake
//!   signatures are still verified against the pinned certificate's key.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{Error, Result};

/// How the DS's certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrustMode {
    /// The operating system's trust store.
    SystemRoots,
    /// Only the CA certificates in this PEM text.
    CaPem(String),
    /// Exactly the certificate with this SHA-256 fingerprint (32 bytes, over the DER).
    PinnedSha256(Vec<u8>),
}

impl TrustMode {
    /// Parses a fingerprint given as hex (colons allowed, any case).
    pub fn pinned_hex(hex_text: &str) -> Result<Self> {
        let clean: String = hex_text.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(clean.trim()).map_err(|e| {
            Error::Tls(format!("bad fingerprint ({e}): give the 64 hex digits grove-ds printed at startup"))
        })?;
        if bytes.len() != 32 {
            return Err(Error::Tls(format!(
                "a SHA-256 fingerprint has 32 bytes, got {}: give the 64 hex digits grove-ds printed at startup",
                bytes.len()
            )));
        }
        Ok(TrustMode::PinnedSha256(bytes))
    }
}

/// Installs the ring crypto provider for rustls (once per process; later calls
/// are no-ops). reqwest is built with `rustls-no-provider`, so without this
/// rustls would panic when the first TLS config is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Checks that `url` is `https://`, or `http://` to a loopback address.
pub fn check_url(url: &str) -> Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(Error::Tls(format!("{url}: the server URL must start with https:// (or http:// to loopback)")));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(Error::Tls(format!("{url}: plain http:// is only allowed to loopback addresses; use https://")))
    }
}

/// Builds the HTTP client for `url` with `trust`.
pub(crate) fn http_client(url: &str, trust: &TrustMode) -> Result<reqwest::Client> {
    check_url(url)?;
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(
            |e| Error::Tls(format!("{url}: no usable TLS protocol version ({e}); this is a build problem to report")),
        )?;
    let config = match trust {
        TrustMode::SystemRoots => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A certificate the store cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::Tls(format!(
                    "{url}: no usable certificate in the system trust store; install the CA certificates package, or give the DS's CA file or pinned fingerprint"
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TrustMode::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                let bad = |e: &dyn std::fmt::Display| {
                    Error::Tls(format!(
                        "CA file for {url}: {e}; give a PEM file of the CA that signed the DS's certificate"
                    ))
                };
                let cert = cert.map_err(|e| bad(&e))?;
                roots.add(cert).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(Error::Tls(format!(
                    "CA file for {url} holds no certificate; give a PEM file with a BEGIN CERTIFICATE block"
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TrustMode::PinnedSha256(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert { sha256: fp.clone(), provider }))
            .with_no_client_auth(),
    };
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .tls_backend_preconfigured(config)
        .build()
        .map_err(|e| Error::Tls(format!("{url}: building the HTTP client failed ({e}); this is a bug to report")))
}

/// What a handshake signature check gives.
type Checked = std::result::Result<HandshakeSignatureValid, rustls::Error>;

/// Accepts exactly one certificate, by SHA-256 of its DER encoding.
#[derive(Debug)]
struct PinnedCert {
    sha256: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = sha2::Sha256::digest(end_entity.as_ref());
        if got.as_slice() == self.sha256.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(&self, msg: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Checked {
        rustls::crypto::verify_tls12_signature(msg, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Checked {
        rustls::crypto::verify_tls13_signature(msg, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://localhost:1/x").is_ok());
        assert!(check_url("http://[::1]:9").is_ok());
        assert!(check_url("https://ds.example").is_ok());
        assert!(check_url("http://ds.example:80").is_err());
        assert!(check_url("http://10.0.0.1").is_err());
        assert!(check_url("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn fingerprint_parsing() {
        let hex64 = "ab".repeat(32);
        assert!(TrustMode::pinned_hex(&hex64).is_ok());
        assert!(TrustMode::pinned_hex("abcd").is_err());
    }
}
