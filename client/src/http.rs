//! The DS HTTP API (docs/api.md) as typed async calls, with the token
//! handling of §3.4: log in on first use, log in again once on
//! `401 token_invalid` / `token_expired`.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use grove_proto as proto;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::Signer as _;
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

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
    /// Body bytes.
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Protocol(format!("unexpected response body: {e}")))
    }
}

/// One user's session with one DS.
pub(crate) struct DsHttp {
    http: reqwest::Client,
    base: String,
    user: String,
    signer: Arc<SignatureKeyPair>,
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for DsHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsHttp").field("base", &self.base).field("user", &self.user).finish_non_exhaustive()
    }
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

impl DsHttp {
    pub(crate) fn new(http: reqwest::Client, base: &str, user: &str, signer: Arc<SignatureKeyPair>) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            signer,
            token: Mutex::new(None),
        }
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.signer.sign(data).map_err(|e| Error::Mls { op: "sign", reason: format!("{e:?}") })
    }

    fn current_token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_token(&self, t: Option<String>) {
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }

    async fn raw(&self, method: Method, path: &str, body: &Body, token: Option<&str>) -> Result<reqwest::Response> {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb = match body {
            Body::Empty => rb,
            Body::Json(v) => rb.json(v),
            Body::Bytes(ct, bytes) => rb.header(reqwest::header::CONTENT_TYPE, *ct).body(bytes.clone()),
        };
        rb.send().await.map_err(|e| Error::Network(format!("{e:#}")))
    }

    async fn finish(resp: reqwest::Response) -> Result<Reply> {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| Error::Network(format!("reading the response: {e:#}")))?.to_vec();
        if (200..300).contains(&status) {
            return Ok(Reply { body });
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Err(Error::Server {
            status,
            code: v["code"].as_str().unwrap_or("unknown").to_owned(),
            message: v["message"].as_str().map_or_else(|| String::from_utf8_lossy(&body).into_owned(), str::to_owned),
            current_epoch: v["current_epoch"].as_u64(),
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
            Err(Error::Server { status: 401, ref code, .. }) if code == "token_invalid" || code == "token_expired" => {
                self.set_token(None);
                let token = self.login().await?;
                Self::finish(self.raw(method, path, &body, Some(&token)).await?).await
            }
            other => other,
        }
    }

    /// Registers the identity (idempotent: `created` is false the second time).
    pub(crate) async fn register(&self, credential: Vec<u8>, scheme: u16) -> Result<proto::RegisterResponse> {
        let key = self.signer.public().to_vec();
        let proof = self.sign(&proto::signed_bytes(proto::REGISTER_LABEL, &self.user, &key))?;
        let req = proto::RegisterRequest {
            user: self.user.clone(),
            credential,
            signature_key: key,
            signature_scheme: scheme,
            proof,
            registration_token: None,
        };
        let v = serde_json::to_value(&req).map_err(|e| Error::Protocol(e.to_string()))?;
        self.call_public(Method::POST, "/v1/users", Body::Json(v)).await?.json()
    }

    /// Challenge → token (§3.4). Returns the new token and keeps it.
    pub(crate) async fn login(&self) -> Result<String> {
        let c: proto::ChallengeResponse = self
            .call_public(Method::POST, "/v1/auth/challenge", Body::Json(serde_json::json!({ "user": self.user })))
            .await?
            .json()?;
        let sig = self.sign(&proto::signed_bytes(proto::AUTH_LABEL, &self.user, &c.challenge))?;
        let t: proto::TokenResponse = self
            .call_public(
                Method::POST,
                "/v1/auth/token",
                Body::Json(serde_json::json!({
                    "user": self.user, "challenge": b64(&c.challenge), "signature": b64(&sig),
                })),
            )
            .await?
            .json()?;
        self.set_token(Some(t.token.clone()));
        Ok(t.token)
    }

    pub(crate) async fn get_user(&self, user: &str) -> Result<proto::UserResponse> {
        self.call(Method::GET, &format!("/v1/users/{user}"), Body::Empty).await?.json()
    }

    pub(crate) async fn key_package_count(&self, suite: u16) -> Result<proto::KeyPackageCountResponse> {
        self.call(Method::GET, &format!("/v1/key-packages?ciphersuite={suite}"), Body::Empty).await?.json()
    }

    pub(crate) async fn upload_key_packages(&self, body: Vec<u8>) -> Result<proto::KeyPackageCountResponse> {
        self.call(Method::POST, "/v1/key-packages", Body::Bytes(proto::MEDIA_KEY_PACKAGES, body)).await?.json()
    }

    /// Claims one KeyPackage of `user`: the MLSMessage bytes.
    pub(crate) async fn claim(&self, user: &str, suite: u16) -> Result<Vec<u8>> {
        Ok(self
            .call(Method::POST, &format!("/v1/key-packages/{user}/claim?ciphersuite={suite}"), Body::Empty)
            .await?
            .body)
    }

    pub(crate) async fn create_group(&self, body: Vec<u8>) -> Result<proto::GroupCreatedResponse> {
        self.call(Method::POST, "/v1/groups", Body::Bytes(proto::MEDIA_GROUP_CREATE, body)).await?.json()
    }

    pub(crate) async fn post_commit(&self, gid: &str, body: Vec<u8>) -> Result<proto::PostedResponse> {
        self.call(Method::POST, &format!("/v1/groups/{gid}/commits"), Body::Bytes(proto::MEDIA_COMMIT_BUNDLE, body))
            .await?
            .json()
    }

    pub(crate) async fn post_message(&self, gid: &str, body: Vec<u8>) -> Result<proto::PostedResponse> {
        self.call(Method::POST, &format!("/v1/groups/{gid}/messages"), Body::Bytes(proto::MEDIA_MLS, body))
            .await?
            .json()
    }

    pub(crate) async fn fetch(&self, gid: &str, after: u64, limit: u32) -> Result<proto::MessagesPage> {
        self.call(Method::GET, &format!("/v1/groups/{gid}/messages?after={after}&limit={limit}"), Body::Empty)
            .await?
            .json()
    }

    pub(crate) async fn ack(&self, gid: &str, seq: u64) -> Result<()> {
        self.call(Method::POST, &format!("/v1/groups/{gid}/ack"), Body::Json(serde_json::json!({ "seq": seq })))
            .await
            .map(|_| ())
    }

    pub(crate) async fn welcomes(&self, after: u64) -> Result<proto::WelcomesPage> {
        self.call(Method::GET, &format!("/v1/welcomes?after={after}&limit=100"), Body::Empty).await?.json()
    }

    pub(crate) async fn delete_welcome(&self, id: u64) -> Result<()> {
        match self.call(Method::DELETE, &format!("/v1/welcomes/{id}"), Body::Empty).await {
            Ok(_) => Ok(()),
            Err(Error::Server { code, .. }) if code == "unknown_welcome" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Uploads a blob from a stream. A stream cannot be replayed, so this logs
    /// in first (a fresh token) instead of retrying on `401`.
    pub(crate) async fn upload_blob(&self, gid: &str, body: reqwest::Body) -> Result<proto::BlobCreatedResponse> {
        let token = self.login().await?;
        let resp = self
            .http
            .post(format!("{}/v1/groups/{gid}/blobs", self.base))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Network(format!("uploading a blob: {e:#}")))?;
        Self::finish(resp).await?.json()
    }

    /// Starts downloading a blob: the response, its status already checked,
    /// to be read as a stream.
    pub(crate) async fn download_blob(&self, gid: &str, blob_id: &str) -> Result<reqwest::Response> {
        let path = format!("/v1/groups/{gid}/blobs/{blob_id}");
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
            Err(Self::finish(resp).await.err().unwrap_or_else(|| Error::Protocol("unexpected status".into())))
        }
    }

    /// Deletes a blob; an unknown one counts as deleted.
    pub(crate) async fn delete_blob(&self, gid: &str, blob_id: &str) -> Result<()> {
        match self.call(Method::DELETE, &format!("/v1/groups/{gid}/blobs/{blob_id}"), Body::Empty).await {
            Ok(_) => Ok(()),
            Err(Error::Server { code, .. }) if code == "unknown_blob" => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn group(&self, gid: &str) -> Result<proto::GroupResponse> {
        self.call(Method::GET, &format!("/v1/groups/{gid}"), Body::Empty).await?.json()
    }
}
