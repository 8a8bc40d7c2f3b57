//! The DS HTTP API (docs/api.md) as typed async calls, with the token
//! handling of §3.4: log in on first use, log in again once on
//! `401 token_invalid` / `token_expired`.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use grove_proto as proto;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::{Signer as _, SignerError};
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use proto::{routes, ErrorCode};

/// How long to wait before retrying a request that got `429 rate_limited`.
const RATE_LIMIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// A request body.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// JSON.
    Json(serde_json::Value),
    /// Binary body with its media type.
    Bytes(&'static str, Vec<u8>),
}

/// A successful response.
pub(crate) struct Reply {
    /// The request's method and URL, for error messages.
    url: String,
    /// Body bytes.
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Protocol(format!(
                "{}: unexpected response body ({e}); is this URL a Grove DS of a matching version (API v1, docs/api.md)?",
                self.url
            ))
        })
    }
}

/// One user's session with one DS.
pub(crate) struct DsHttp {
    http: reqwest::Client,
    base: String,
    user: String,
    signer: Arc<SignatureKeyPair>,
    device_login: bool,
    /// The link code of a device waiting to be linked: it cannot log in.
    pending_link: Option<String>,
    /// A home upgraded from a single key: that key, and the first device
    /// list to publish with it if the DS does not have one yet.
    upgrading: Option<(Arc<SignatureKeyPair>, Vec<u8>)>,
    token: Mutex<Option<String>>,
    /// How long an API request may take, connection to last body byte
    /// (milliseconds; blob transfers keep the HTTP client's own limit).
    timeout_ms: std::sync::atomic::AtomicU64,
}

/// The default of [`DsHttp::set_timeout`].
pub(crate) const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for DsHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsHttp").field("base", &self.base).field("user", &self.user).finish_non_exhaustive()
    }
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

impl DsHttp {
    /// `device_login`: the user has a device list, so logins name the
    /// signing device's key.
    pub(crate) fn new(
        http: reqwest::Client,
        base: &str,
        user: &str,
        signer: Arc<SignatureKeyPair>,
        device_login: bool,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            signer,
            device_login,
            pending_link: None,
            upgrading: None,
            token: Mutex::new(None),
            timeout_ms: std::sync::atomic::AtomicU64::new(DEFAULT_REQUEST_TIMEOUT.as_millis() as u64),
        }
    }

    /// A session that never logs in: for the public routes only (the
    /// auditor's). Its signing key is a throwaway one.
    pub(crate) fn anonymous(http: reqwest::Client, base: &str) -> Result<Self> {
        let throwaway = SignatureKeyPair::new(openmls::prelude::SignatureScheme::ED25519)
            .map_err(|e| Error::Protocol(format!("cannot make a key: {e:?}")))?;
        Ok(Self::new(http, base, "", Arc::new(throwaway), false))
    }

    /// Sets how long each API request may take before it fails as a
    /// (retryable) network error.
    pub(crate) fn set_timeout(&self, timeout: std::time::Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        self.timeout_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// This home was upgraded from the single key `legacy`: a login the DS
    /// refuses because the user has no device list yet publishes `list`
    /// (logged in with `legacy`) first.
    pub(crate) fn upgrading(mut self, legacy: Arc<SignatureKeyPair>, list: Vec<u8>) -> Self {
        self.upgrading = Some((legacy, list));
        self
    }

    /// This device waits for the link with `code` to be approved: every
    /// call that needs a login fails with [`Error::LinkPending`].
    pub(crate) fn pending_link(mut self, code: &str) -> Self {
        self.pending_link = Some(code.to_owned());
        self
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.signer.sign(data).map_err(|e| {
            let cause = match e {
                SignerError::CryptoError(c) => format!("the signature key cannot sign ({c})"),
                SignerError::InvalidSignature | SignerError::SigningError => "the signature key cannot sign".into(),
            };
            Error::mls_because("sign", cause)
        })
    }

    fn current_token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_token(&self, t: Option<String>) {
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }

    async fn raw(&self, method: Method, path: &str, body: &Body, token: Option<&str>) -> Result<reqwest::Response> {
        let url = format!("{}{}", self.base, path);
        let what = format!("{method} {url}");
        let timeout = self.timeout_ms.load(std::sync::atomic::Ordering::Relaxed);
        let mut rb = self.http.request(method, url).timeout(std::time::Duration::from_millis(timeout));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb = match body {
            Body::Empty => rb,
            Body::Json(v) => rb.json(v),
            Body::Bytes(ct, bytes) => rb.header(reqwest::header::CONTENT_TYPE, *ct).body(bytes.clone()),
        };
        rb.send().await.map_err(|e| network(&what, &e))
    }

    async fn finish(resp: reqwest::Response) -> Result<Reply> {
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let body = read_capped(resp, &url, MAX_RESPONSE_BYTES).await?;
        if (200..300).contains(&status) {
            return Ok(Reply { url, body });
        }
        // Grove's error body; anything else (a proxy's page) keeps its text.
        let parsed = serde_json::from_slice::<proto::ErrorBody>(&body).ok();
        Err(match parsed {
            Some(b) => Error::Server { status, code: b.code, message: b.message, current_epoch: b.current_epoch },
            None => Error::Server {
                status,
                code: proto::ErrorCode::Other("unknown".into()),
                message: format!("{url}: {}", String::from_utf8_lossy(&body)),
                current_epoch: None,
            },
        })
    }

    /// An unauthenticated call.
    pub(crate) async fn call_public(&self, method: Method, path: &str, body: Body) -> Result<Reply> {
        Self::finish(self.raw(method, path, &body, None).await?).await
    }

    /// An authenticated call: logs in if needed, and once more on an invalid
    /// or expired token.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Body) -> Result<Reply> {
        let token = match self.current_token() {
            Some(t) => t,
            None => self.login().await?,
        };
        let mut first = Self::finish(self.raw(method.clone(), path, &body, Some(&token)).await?).await;
        if let Err(Error::Server { status: 429, .. }) = first {
            // Rate limited: wait once (the DS's limit refills quickly), then retry.
            tokio::time::sleep(RATE_LIMIT_PAUSE).await;
            first = Self::finish(self.raw(method.clone(), path, &body, Some(&token)).await?).await;
        }
        match first {
            Err(Error::Server { status: 401, code: ErrorCode::TokenInvalid | ErrorCode::TokenExpired, .. }) => {
                self.set_token(None);
                let token = self.login().await?;
                Self::finish(self.raw(method, path, &body, Some(&token)).await?).await
            }
            other => other,
        }
    }

    /// Registers the identity (idempotent: `created` is false the second time).
    pub(crate) async fn register(&self, req: &proto::RegisterRequest) -> Result<proto::RegisterResponse> {
        let v = serde_json::to_value(req).map_err(|e| Error::Protocol(format!("encoding the registration: {e}")))?;
        self.call_public(Method::POST, routes::USERS, Body::Json(v)).await?.json()
    }

    /// Challenge → token (§3.4). Returns the new token and keeps it.
    pub(crate) async fn login(&self) -> Result<String> {
        if let Some(code) = &self.pending_link {
            return Err(Error::LinkPending { code: code.clone() });
        }
        let token = match (self.token_for(&self.signer, self.device_login).await, &self.upgrading) {
            // The DS still knows the user by its single key: publish the
            // first device list with that key's login, then log in again.
            (Err(Error::Server { code: ErrorCode::DeviceListInvalid, .. }), Some((legacy, list))) => {
                let old = self.token_for(legacy, false).await?;
                let body = serde_json::json!({ "device_list": b64(list) });
                let path = routes::user_devices(&user_name(&self.user)?, 0);
                Self::finish(self.raw(Method::POST, &path, &Body::Json(body), Some(&old)).await?).await?;
                tracing::info!(user = %self.user, "published the first device list of an upgraded home");
                self.token_for(&self.signer, self.device_login).await?
            }
            (other, _) => other?,
        };
        self.set_token(Some(token.clone()));
        Ok(token)
    }

    /// A token for a login signed by `key` (naming it as the device key when
    /// `device`).
    async fn token_for(&self, key: &SignatureKeyPair, device: bool) -> Result<String> {
        let c: proto::ChallengeResponse = self
            .call_public(Method::POST, routes::AUTH_CHALLENGE, Body::Json(serde_json::json!({ "user": self.user })))
            .await?
            .json()?;
        let sig = key
            .sign(&proto::signed_bytes(proto::AUTH_LABEL, &self.user, &c.challenge))
            .map_err(|e| Error::mls_because("sign the login", format!("{e:?}")))?;
        let mut body = serde_json::json!({
            "user": self.user, "challenge": b64(&c.challenge), "signature": b64(&sig),
        });
        if device {
            body["device_key"] = serde_json::json!(b64(key.public()));
        }
        let t: proto::TokenResponse =
            self.call_public(Method::POST, routes::AUTH_TOKEN, Body::Json(body)).await?.json()?;
        Ok(t.token)
    }

    /// A user's device lists after version `after` (public: no token needed).
    pub(crate) async fn device_lists(&self, user: &str, after: u64) -> Result<proto::DeviceListsResponse> {
        self.call_public(Method::GET, &routes::user_devices(&user_name(user)?, after), Body::Empty).await?.json()
    }

    /// Publishes this user's next device list without a token (a device
    /// restored from a backup; the identity key's signature authenticates it).
    pub(crate) async fn restore_device_list(
        &self,
        req: &proto::DeviceListRestoreRequest,
    ) -> Result<proto::DeviceListPublished> {
        let v = serde_json::to_value(req).map_err(|e| Error::Protocol(format!("encoding the device list: {e}")))?;
        self.call_public(Method::POST, &routes::user_devices_restore(&user_name(&self.user)?), Body::Json(v))
            .await?
            .json()
    }

    /// Publishes the next version of this user's device list.
    pub(crate) async fn publish_device_list(&self, list: &[u8]) -> Result<proto::DeviceListPublished> {
        let body = serde_json::json!({ "device_list": b64(list) });
        self.call(Method::POST, &routes::user_devices(&user_name(&self.user)?, 0), Body::Json(body)).await?.json()
    }

    /// Posts a new device's link request (no token: the device has none yet).
    pub(crate) async fn create_link(&self, req: &proto::LinkCreateRequest) -> Result<proto::LinkCreated> {
        let v = serde_json::to_value(req).map_err(|e| Error::Protocol(format!("encoding the link request: {e}")))?;
        self.call_public(Method::POST, &routes::user_links(&user_name(&self.user)?), Body::Json(v)).await?.json()
    }

    /// A link request and its approval, by id (no token needed).
    pub(crate) async fn get_link(&self, id: &str) -> Result<proto::LinkResponse> {
        self.call_public(Method::GET, &routes::link(&link_id(id)?), Body::Empty).await?.json()
    }

    /// Approves a link request with the sealed approval.
    pub(crate) async fn approve_link(&self, id: &str, approval: &[u8]) -> Result<()> {
        let body = serde_json::json!({ "approval": b64(approval) });
        self.call(Method::POST, &routes::link_approval(&link_id(id)?), Body::Json(body)).await.map(|_| ())
    }

    /// Claims one KeyPackage of each current device of `user`.
    pub(crate) async fn claim_devices(&self, user: &str, suite: u16) -> Result<proto::DeviceKeyPackagesResponse> {
        self.call(Method::POST, &routes::key_package_claim_devices(&user_name(user)?, suite), Body::Empty).await?.json()
    }

    /// The key directory's public keys (no token needed).
    pub(crate) async fn kt_keys(&self) -> Result<proto::kt::KtKeys> {
        self.call_public(Method::GET, routes::KT_KEYS, Body::Empty).await?.json()
    }

    /// The key directory's latest head, or epoch `epoch`'s (no token needed).
    pub(crate) async fn kt_head(&self, epoch: Option<u64>) -> Result<proto::kt::HeadResponse> {
        let path = epoch.map_or_else(|| routes::KT_HEAD.to_owned(), routes::kt_head_at);
        self.call_public(Method::GET, &path, Body::Empty).await?.json()
    }

    /// A lookup proof of `user`'s latest directory value.
    pub(crate) async fn kt_lookup(&self, user: &str) -> Result<proto::kt::LookupResponse> {
        self.call(Method::GET, &routes::kt_lookup(&user_name(user)?), Body::Empty).await?.json()
    }

    /// A proof of `user`'s complete key history.
    pub(crate) async fn kt_history(&self, user: &str) -> Result<proto::kt::HistoryResponse> {
        self.call(Method::GET, &routes::kt_history(&user_name(user)?), Body::Empty).await?.json()
    }

    /// An append-only proof from epoch `from` to `to` (no token needed).
    pub(crate) async fn kt_audit(&self, from: u64, to: u64) -> Result<proto::kt::AuditResponse> {
        self.call_public(Method::GET, &routes::kt_audit(from, to), Body::Empty).await?.json()
    }

    pub(crate) async fn get_user(&self, user: &str) -> Result<proto::UserResponse> {
        self.call(Method::GET, &routes::user(&user_name(user)?), Body::Empty).await?.json()
    }

    pub(crate) async fn key_package_count(&self, suite: u16) -> Result<proto::KeyPackageCountResponse> {
        self.call(Method::GET, &routes::key_package_counts(suite), Body::Empty).await?.json()
    }

    pub(crate) async fn upload_key_packages(&self, body: Vec<u8>) -> Result<proto::KeyPackageCountResponse> {
        self.call(Method::POST, routes::KEY_PACKAGES, Body::Bytes(proto::MEDIA_KEY_PACKAGES, body)).await?.json()
    }

    /// Claims one KeyPackage of `user`: the MLSMessage bytes.
    pub(crate) async fn claim(&self, user: &str, suite: u16) -> Result<Vec<u8>> {
        Ok(self.call(Method::POST, &routes::key_package_claim(&user_name(user)?, suite), Body::Empty).await?.body)
    }

    pub(crate) async fn create_group(&self, body: Vec<u8>) -> Result<proto::GroupCreatedResponse> {
        self.call(Method::POST, routes::GROUPS, Body::Bytes(proto::MEDIA_GROUP_CREATE, body)).await?.json()
    }

    pub(crate) async fn post_commit(&self, gid: &str, body: Vec<u8>) -> Result<proto::PostedResponse> {
        self.call(Method::POST, &routes::commits(&group_id(gid)?), Body::Bytes(proto::MEDIA_COMMIT_BUNDLE, body))
            .await?
            .json()
    }

    pub(crate) async fn post_message(&self, gid: &str, body: Vec<u8>) -> Result<proto::PostedResponse> {
        self.call(Method::POST, &routes::messages(&group_id(gid)?), Body::Bytes(proto::MEDIA_MLS, body)).await?.json()
    }

    pub(crate) async fn fetch(&self, gid: &str, after: u64, limit: u32) -> Result<proto::MessagesPage> {
        self.call(Method::GET, &routes::fetch(&group_id(gid)?, after, limit as usize, None), Body::Empty).await?.json()
    }

    pub(crate) async fn ack(&self, gid: &str, seq: u64) -> Result<()> {
        self.call(Method::POST, &routes::ack(&group_id(gid)?), Body::Json(serde_json::json!({ "seq": seq })))
            .await
            .map(|_| ())
    }

    pub(crate) async fn welcomes(&self, after: u64) -> Result<proto::WelcomesPage> {
        self.call(Method::GET, &routes::welcomes(after, 100, None), Body::Empty).await?.json()
    }

    pub(crate) async fn delete_welcome(&self, id: u64) -> Result<()> {
        match self.call(Method::DELETE, &routes::welcome(id), Body::Empty).await {
            Ok(_) => Ok(()),
            Err(Error::Server { code: ErrorCode::UnknownWelcome, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Uploads a blob from a stream. A stream cannot be replayed, so this logs
    /// in first (a fresh token) instead of retrying on `401`.
    pub(crate) async fn upload_blob(&self, gid: &str, body: reqwest::Body) -> Result<proto::BlobCreatedResponse> {
        let token = self.login().await?;
        let resp = self
            .http
            .post(format!("{}{}", self.base, routes::blobs(&group_id(gid)?)))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| network(&format!("uploading a blob to {}", self.base), &e))?;
        Self::finish(resp).await?.json()
    }

    /// Starts downloading a blob: the response, its status already checked,
    /// to be read as a stream.
    pub(crate) async fn download_blob(&self, gid: &str, blob_id: &str) -> Result<reqwest::Response> {
        let path = routes::blob(&group_id(gid)?, blob_id);
        let token = match self.current_token() {
            Some(t) => t,
            None => self.login().await?,
        };
        let mut resp = self.raw(Method::GET, &path, &Body::Empty, Some(&token)).await?;
        if resp.status().as_u16() == 401 {
            let token = self.login().await?;
            resp = self.raw(Method::GET, &path, &Body::Empty, Some(&token)).await?;
        }
        if resp.status().is_success() {
            Ok(resp)
        } else {
            let status = resp.status();
            Err(Self::finish(resp)
                .await
                .err()
                .unwrap_or_else(|| Error::Protocol(format!("{}{path}: unexpected status {status}", self.base))))
        }
    }

    /// Deletes a blob; an unknown one counts as deleted.
    pub(crate) async fn delete_blob(&self, gid: &str, blob_id: &str) -> Result<()> {
        match self.call(Method::DELETE, &routes::blob(&group_id(gid)?, blob_id), Body::Empty).await {
            Ok(_) => Ok(()),
            Err(Error::Server { code: ErrorCode::UnknownBlob, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reports a commit this client cannot process, signed with its key
    /// (`req.signature` is filled in here).
    pub(crate) async fn report_commit(
        &self,
        gid: &str,
        mut req: proto::CommitReportRequest,
    ) -> Result<proto::CommitReportResponse> {
        let id = group_id(gid)?;
        req.signature = self.sign(&req.signed_data(&self.user, &id))?;
        let body = serde_json::to_value(&req).map_err(|e| Error::Protocol(e.to_string()))?;
        self.call(Method::POST, &routes::reports(&id), Body::Json(body)).await?.json()
    }

    /// The group's latest GroupInfo (an MLSMessage), as the DS has it.
    pub(crate) async fn group_info(&self, gid: &str) -> Result<Vec<u8>> {
        Ok(self.call(Method::GET, &routes::group_info(&group_id(gid)?), Body::Empty).await?.body)
    }

    pub(crate) async fn group(&self, gid: &str) -> Result<proto::GroupResponse> {
        self.call(Method::GET, &routes::group(&group_id(gid)?), Body::Empty).await?.json()
    }
}

/// A group id from the client's records or the caller (its URL form).
fn group_id(gid: &str) -> Result<proto::GroupId> {
    proto::GroupId::from_path(gid).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// A link id from a link code: base64url of 16 bytes, nothing else (it
/// goes into a URL path).
fn link_id(id: &str) -> Result<String> {
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id) {
        Ok(b) if b.len() == 16 => Ok(id.to_owned()),
        _ => Err(Error::LinkRefused(format!("{id:?} is not a link request id"))),
    }
}

/// A user name from the caller.
fn user_name(user: &str) -> Result<proto::UserName> {
    proto::UserName::parse(user).map_err(|e| Error::InvalidArgument(format!("user name {e}")))
}

/// A connection-level failure of `what` (method and URL): the cause, and what
/// to do about it.
fn network(what: &str, e: &reqwest::Error) -> Error {
    if let Some(tls) = tls_cause(e) {
        return Error::Tls(format!("{what}: {tls}"));
    }
    let remedy = if e.is_timeout() {
        "the DS did not answer in time; retry later"
    } else if e.is_connect() {
        "the DS is not reachable: check the server URL, that grove-ds is running, and the network"
    } else {
        "the connection broke; retry (a write whose answer was lost is resolved by the next sync)"
    };
    Error::Network(format!("{what}: {e:#}; {remedy}"))
}

/// The TLS handshake failure behind a request error, if that is what it is:
/// its cause in words and what to do.
fn tls_cause(e: &reqwest::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let cert = loop {
        let err = source?;
        match err.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(c)) => break c,
            Some(other) => {
                return Some(format!("the TLS handshake failed ({other}); check that the URL is the DS's TLS port"))
            }
            // An io::Error's `source()` skips the error it wraps (and hyper nests
            // io::Errors): step into the wrapped error instead.
            None => match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                Some(inner) => source = Some(inner as &(dyn std::error::Error + 'static)),
                None => source = err.source(),
            },
        }
    };
    Some(match cert {
        C::UnknownIssuer | C::BadSignature => "the server's certificate is not signed by a CA this device trusts \
             (a self-signed certificate, such as grove-ds --dev-tls makes): pass --server-cert-sha256 \
             <the fingerprint grove-ds printed at startup>, or --ca-cert <the CA's PEM file>"
            .to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for this host name: \
             use the host name the certificate was issued for (for --dev-tls: localhost or 127.0.0.1)"
                .to_owned()
        }
        C::Expired | C::ExpiredContext { .. } => {
            "the server's certificate has expired: the DS operator must renew it".to_owned()
        }
        C::ApplicationVerificationFailure => "the server's certificate does not match the pinned SHA-256 fingerprint: \
             the DS has a new certificate, or someone is in between; compare with the fingerprint grove-ds printed \
             and re-run `grove init` with the right --server-cert-sha256"
            .to_owned(),
        other => format!("the server's certificate was refused ({other:?}); check the DS's TLS setup"),
    })
}

/// The most a (non-blob) response body may hold: far above any page the DS
/// serves, low enough that a hostile server cannot exhaust memory.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Reads a response body, refusing one over `cap` bytes (declared or actual)
/// before it is all in memory.
async fn read_capped(mut resp: reqwest::Response, url: &str, cap: usize) -> Result<Vec<u8>> {
    let too_big = || {
        Error::Protocol(format!("the response of {url} is larger than {cap} bytes: not a Grove DS, or a broken one"))
    };
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| network(&format!("reading the response of {url}"), &e))? {
        if body.len() + chunk.len() > cap {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body over the cap is refused, whether its length is declared up front
    /// or it is streamed without one; a body at the cap is read whole.
    #[tokio::test]
    async fn response_bodies_are_capped() {
        use axum::body::Body as AxBody;
        let app = axum::Router::new().route("/declared", axum::routing::get(|| async { vec![7u8; 2048] })).route(
            "/streamed",
            axum::routing::get(|| async {
                let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![7u8; 512]));
                AxBody::from_stream(futures_util::stream::iter(chunks))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let base = format!("http://{addr}");
        let http = crate::tls::http_client(&base, &crate::TrustMode::SystemRoots).unwrap();
        let get = |path: &str| http.get(format!("{base}{path}")).send();
        for path in ["/declared", "/streamed"] {
            let err = read_capped(get(path).await.unwrap(), path, 1024).await.unwrap_err();
            assert!(matches!(&err, Error::Protocol(m) if m.contains("larger than 1024 bytes")), "{path}: {err}");
            assert_eq!(read_capped(get(path).await.unwrap(), path, 2048).await.unwrap().len(), 2048, "{path}");
        }
    }
}
