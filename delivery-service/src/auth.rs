//! Authentication: proof of possession at registration, then short-lived bearer
//! tokens obtained by signing a one-time challenge with the client's MLS
//! signature key. Also the per-client rate limiter.
//!
//! Signed strings (the exact bytes, see `docs/api.md`):
//! - registration proof: `"grove-v1-register" 0x00 user 0x00 signature_key`
//! - token request: `"grove-v1-auth" 0x00 user 0x00 challenge`

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::SignatureScheme;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::DsError;
use crate::store::{Store, TokenRecord};

pub use grove_proto::{signed_bytes, AUTH_LABEL, REGISTER_LABEL};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);

/// The signature schemes accepted for client keys.
pub fn scheme_from_u16(v: u16) -> Option<SignatureScheme> {
    match v {
        0x0807 => Some(SignatureScheme::ED25519),
        0x0403 => Some(SignatureScheme::ECDSA_SECP256R1_SHA256),
        _ => None,
    }
}

/// Verifies `sig` over `data` with a raw public key.
pub fn verify(
    crypto: &RustCrypto,
    scheme: SignatureScheme,
    data: &[u8],
    key: &[u8],
    sig: &[u8],
) -> Result<(), DsError> {
    crypto.verify_signature(scheme, data, key, sig).map_err(|_| DsError::BadSignature)
}

/// How long a replica trusts a token it has looked up before asking the
/// store again (bounds how late a revocation in the store takes effect).
const TOKEN_CACHE_SECS: u64 = 30;
/// Most tokens cached per replica (the cache is emptied when full).
const TOKEN_CACHE: usize = 100_000;

/// Challenges and tokens live in the store (hashed tokens), so that every
/// replica accepts them and a restart keeps them; each replica caches the
/// tokens it has checked. The rate limiter is per replica.
pub struct AuthState {
    cache: Mutex<HashMap<[u8; 32], (TokenRecord, u64)>>,
    token_ttl: Duration,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState").finish_non_exhaustive()
    }
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn now_secs() -> u64 {
    crate::ds::now_secs()
}

impl AuthState {
    /// New state; `rate_per_sec == 0` disables rate limiting.
    pub fn new(token_ttl: Duration, rate_per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(rate_per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst.max(rate_per_sec)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        AuthState { cache: Mutex::new(HashMap::new()), token_ttl, limiter }
    }

    /// Token lifetime.
    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    /// Counts one request against `key`'s rate limit.
    pub fn check_rate(&self, key: &str) -> Result<(), DsError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        match limiter.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(DsError::RateLimited { retry_after_ms: wait.as_millis().max(1) as u64 })
            }
        }
    }

    /// Forgets rate-limiter state of clients idle long enough to be back at a
    /// full bucket, cached tokens past their time, and expired tokens and
    /// challenges in the store. Returns how many the store deleted.
    pub async fn housekeeping(&self, store: &dyn Store) -> Result<u64, DsError> {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let now = now_secs();
        if let Ok(mut m) = self.cache.lock() {
            m.retain(|_, (t, until)| t.expires_at > now && *until > now);
        }
        Ok(store.prune_auth(now).await?)
    }

    /// Issues a one-time challenge for `user`.
    pub async fn new_challenge(&self, store: &dyn Store, user: &str) -> Result<[u8; 32], DsError> {
        let c = random32();
        store.put_challenge(&c, user, now_secs() + CHALLENGE_TTL.as_secs()).await?;
        Ok(c)
    }

    /// Consumes a challenge: succeeds once (on any replica), for the user it
    /// was issued to, before it expires.
    pub async fn take_challenge(&self, store: &dyn Store, user: &str, challenge: &[u8]) -> Result<(), DsError> {
        let key: [u8; 32] = challenge.try_into().map_err(|_| DsError::ChallengeInvalid)?;
        match store.take_challenge(&key).await? {
            Some(c) if c.user == user && c.expires_at >= now_secs() => Ok(()),
            _ => Err(DsError::ChallengeInvalid),
        }
    }

    /// Issues a bearer token for `user` (and its device, if it has a device
    /// list); the store keeps only its hash. The caller persists it before
    /// handing it out.
    pub async fn issue_token(&self, store: &dyn Store, user: &str, device: Option<String>) -> Result<String, DsError> {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random32());
        let record = TokenRecord { user: user.to_string(), expires_at: now_secs() + self.token_ttl.as_secs(), device };
        store.put_token(&token_hash(&token), &record).await?;
        Ok(token)
    }

    /// The session (user, device) a bearer token belongs to: from this
    /// replica's cache, or the store.
    pub async fn check_token(&self, store: &dyn Store, token: &str) -> Result<TokenRecord, DsError> {
        let hash = token_hash(token);
        let now = now_secs();
        let cached = self.cache.lock().ok().and_then(|m| m.get(&hash).cloned());
        let record = match cached {
            Some((t, until)) if until > now => t,
            _ => {
                let t = store.token(&hash).await?.ok_or(DsError::TokenInvalid)?;
                if let Ok(mut m) = self.cache.lock() {
                    if m.len() >= TOKEN_CACHE {
                        m.clear();
                    }
                    m.insert(hash, (t.clone(), now + TOKEN_CACHE_SECS));
                }
                t
            }
        };
        if record.expires_at <= now {
            return Err(DsError::TokenExpired);
        }
        Ok(record)
    }

    /// Test hook: makes every token this replica has cached look expired
    /// (tokens it has not seen yet are unaffected).
    pub fn expire_all_tokens_for_tests(&self) {
        if let Ok(mut map) = self.cache.lock() {
            for (t, until) in map.values_mut() {
                t.expires_at = 0;
                *until = u64::MAX;
            }
        }
    }
}
