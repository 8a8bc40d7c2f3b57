//! Binding registration to the app's login: the app's auth server issues a
//! JWT for a user, and with `--auth-jwt-key` the DS registers a name only with
//! a JWT whose `sub` is that name, signed by one of the configured keys, for
//! the configured issuer and audience, and not expired.
//!
//! Parsing and signature checks are the `jsonwebtoken` crate's (RustCrypto
//! backend). The DS accepts EdDSA (Ed25519) and ES256 (P-256) keys in PEM
//! (`-----BEGIN PUBLIC KEY-----`); several keys allow the auth server to
//! rotate its key without a window where its new tokens are refused. Every
//! refusal names its cause ([`LoginRefusal`]).

use std::path::PathBuf;

use anyhow::Context as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// How far `exp` and `nbf` may be off, in seconds (clock skew between the
/// auth server and the DS).
pub const LEEWAY_SECS: u64 = 30;

/// Why a login token was refused. Each has its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    /// No token was sent.
    #[error("this server requires a login token from the app's auth server (grove init --login-token TOKEN)")]
    Required,
    /// Not a JWT, or a required claim is missing.
    #[error("the login token is not a well-formed JWT with sub, exp, iss and aud")]
    Malformed,
    /// `exp` is past (or `nbf` is ahead).
    #[error("the login token has expired or is not valid yet: log in to the app again for a fresh one")]
    Expired,
    /// `iss` is not the configured issuer.
    #[error("the login token was issued by another issuer than this server trusts")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("the login token is for another audience than this server")]
    WrongAudience,
    /// No configured key verifies it (or its algorithm is not accepted).
    #[error("the login token's signature does not verify with any key this server trusts")]
    BadSignature,
    /// `sub` names another user.
    #[error("the login token is for another user than the one registering")]
    SubjectMismatch,
}

/// The claims the DS reads (the rest are checked by [`Validation`]).
#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: String,
}

struct Key {
    key: DecodingKey,
    alg: Algorithm,
}

/// Verifies login tokens against the configured keys, issuer and audience.
pub struct LoginVerifier {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for LoginVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl LoginVerifier {
    /// The verifier `--auth-jwt-key`, `--auth-issuer` and `--auth-audience`
    /// configure, or `None` when registration is not bound to a login.
    pub fn from_config(c: &crate::config::Config) -> anyhow::Result<Option<Self>> {
        if c.auth_jwt_key.is_empty() {
            return Ok(None);
        }
        let issuer = c.auth_issuer.as_deref().unwrap_or("");
        let audience = c.auth_audience.as_deref().unwrap_or("");
        Self::from_files(&c.auth_jwt_key, issuer, audience).map(Some)
    }

    /// Reads the PEM public keys in `files`.
    pub fn from_files(files: &[PathBuf], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let mut pems = Vec::new();
        for f in files {
            let pem = std::fs::read(f).with_context(|| format!("reading the JWT key {}", f.display()))?;
            pems.push((f.display().to_string(), pem));
        }
        Self::from_pems(&pems, issuer, audience)
    }

    /// Builds a verifier from `(name, PEM)` pairs; `name` only labels errors.
    pub fn from_pems(pems: &[(String, Vec<u8>)], issuer: &str, audience: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(!pems.is_empty(), "no JWT key given");
        anyhow::ensure!(!issuer.is_empty(), "--auth-issuer must be set (and non-empty) with --auth-jwt-key");
        anyhow::ensure!(!audience.is_empty(), "--auth-audience must be set (and non-empty) with --auth-jwt-key");
        let mut keys = Vec::new();
        for (name, pem) in pems {
            keys.push(parse_key(pem).with_context(|| format!("JWT key {name}"))?);
        }
        Ok(LoginVerifier { keys, issuer: issuer.to_owned(), audience: audience.to_owned() })
    }

    /// Checks that `token` is a valid login of `user`.
    pub fn verify(&self, token: Option<&str>, user: &str) -> Result<(), LoginRefusal> {
        let token = token.filter(|t| !t.is_empty()).ok_or(LoginRefusal::Required)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| LoginRefusal::Malformed)?;
        for k in self.keys.iter().filter(|k| k.alg == header.alg) {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &self.validation(k.alg)) {
                Ok(data) if data.claims.sub == user => return Ok(()),
                Ok(_) => return Err(LoginRefusal::SubjectMismatch),
                // Another key may have signed it (rotation): try the next one.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                // The signature verified (claims are checked after it), so
                // the refusal is about the claims, whichever key we try.
                Err(e) => return Err(classify(e.kind())),
            }
        }
        Err(LoginRefusal::BadSignature)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }
}

fn classify(kind: &ErrorKind) -> LoginRefusal {
    match kind {
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => LoginRefusal::Expired,
        ErrorKind::InvalidIssuer => LoginRefusal::WrongIssuer,
        ErrorKind::InvalidAudience => LoginRefusal::WrongAudience,
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            LoginRefusal::BadSignature
        }
        _ => LoginRefusal::Malformed,
    }
}

/// An Ed25519 or P-256 public key in PEM.
fn parse_key(pem: &[u8]) -> anyhow::Result<Key> {
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok(Key { key, alg: Algorithm::EdDSA });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // from_ec_pem takes any EC curve; ES256 needs an uncompressed P-256
        // point (0x04 || x || y, 65 bytes). P-384 keys (97 bytes) are refused here.
        anyhow::ensure!(
            key.try_get_as_bytes().map(<[u8]>::len).ok() == Some(65),
            "an EC key must be on P-256 (ES256); this one is not (P-384 and others are not accepted)"
        );
        return Ok(Key { key, alg: Algorithm::ES256 });
    }
    anyhow::bail!("not a PEM public key (-----BEGIN PUBLIC KEY-----) for Ed25519 or P-256")
}
