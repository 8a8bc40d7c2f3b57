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
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::SignatureScheme;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::DsError;

pub use grove_proto::{signed_bytes, AUTH_LABEL, REGISTER_LABEL};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// Most outstanding challenges (older ones are evicted when expired).
const MAX_CHALLENGES: usize = 100_000;

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

struct Challenge {
    user: String,
    expires: Instant,
}

struct Token {
    user: String,
    expires: Instant,
}

/// Challenges and tokens, kept in memory. A restart invalidates every token;
/// clients answer `token_invalid` by authenticating again.
pub struct AuthState {
    challenges: Mutex<HashMap<[u8; 32], Challenge>>,
    tokens: Mutex<HashMap<[u8; 32], Token>>,
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

impl AuthState {
    /// New state; `rate_per_sec == 0` disables rate limiting.
    pub fn new(token_ttl: Duration, rate_per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(rate_per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst.max(rate_per_sec)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        AuthState { challenges: Mutex::new(HashMap::new()), tokens: Mutex::new(HashMap::new()), token_ttl, limiter }
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
    /// full bucket, and expired tokens and challenges (bounded memory).
    pub fn housekeeping(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let now = Instant::now();
        if let Ok(mut m) = self.tokens.lock() {
            m.retain(|_, t| t.expires > now);
        }
        if let Ok(mut m) = self.challenges.lock() {
            m.retain(|_, c| c.expires > now);
        }
    }

    /// Issues a one-time challenge for `user`.
    pub fn new_challenge(&self, user: &str) -> Result<[u8; 32], DsError> {
        let mut map = self.challenges.lock().map_err(|_| DsError::Internal("challenge lock poisoned".into()))?;
        let now = Instant::now();
        if map.len() >= MAX_CHALLENGES {
            map.retain(|_, c| c.expires > now);
            if map.len() >= MAX_CHALLENGES {
                return Err(DsError::RateLimited { retry_after_ms: CHALLENGE_TTL.as_millis() as u64 });
            }
        }
        let c = random32();
        map.insert(c, Challenge { user: user.to_string(), expires: now + CHALLENGE_TTL });
        Ok(c)
    }

    /// Consumes a challenge: succeeds once, for the user it was issued to, before
    /// it expires.
    pub fn take_challenge(&self, user: &str, challenge: &[u8]) -> Result<(), DsError> {
        let key: [u8; 32] = challenge.try_into().map_err(|_| DsError::ChallengeInvalid)?;
        let mut map = self.challenges.lock().map_err(|_| DsError::Internal("challenge lock poisoned".into()))?;
        match map.remove(&key) {
            Some(c) if c.user == user && c.expires > Instant::now() => Ok(()),
            _ => Err(DsError::ChallengeInvalid),
        }
    }

    /// Issues a bearer token for `user`.
    pub fn issue_token(&self, user: &str) -> Result<String, DsError> {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random32());
        let mut map = self.tokens.lock().map_err(|_| DsError::Internal("token lock poisoned".into()))?;
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, t| t.expires > now);
        }
        map.insert(token_hash(&token), Token { user: user.to_string(), expires: now + self.token_ttl });
        Ok(token)
    }

    /// The user a bearer token belongs to.
    pub fn check_token(&self, token: &str) -> Result<String, DsError> {
        let map = self.tokens.lock().map_err(|_| DsError::Internal("token lock poisoned".into()))?;
        match map.get(&token_hash(token)) {
            Some(t) if t.expires > Instant::now() => Ok(t.user.clone()),
            Some(_) => Err(DsError::TokenExpired),
            None => Err(DsError::TokenInvalid),
        }
    }

    /// Test hook: makes every current token expired.
    pub fn expire_all_tokens_for_tests(&self) {
        if let Ok(mut map) = self.tokens.lock() {
            let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap_or_else(Instant::now);
            for t in map.values_mut() {
                t.expires = past;
            }
        }
    }
}
