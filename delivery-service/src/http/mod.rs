//! HTTP API v1: `app(state)` builds the router; each route group lives in its
//! own module with a `router()`. Handlers decode, call [`Ds`], and encode.
//!
//! Every error response is JSON with a stable `code` (see `docs/api.md`), also
//! the ones axum produces itself (unknown route, bad JSON, body too large): the
//! `json_errors` middleware rewrites those. [`error`] maps domain errors to
//! statuses and bodies; route templates come from `grove_proto::routes`.

mod blobs;
pub mod error;
mod groups;
mod key_packages;
mod kt;
mod ops;
mod users;
mod welcomes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::{ErrorBody, ErrorCode};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::conn::ConnLimits;
use crate::ds::Ds;
use crate::error::DsError;
use crate::metrics::{LatencyLabels, RouteLabels};

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The domain layer.
    pub ds: Arc<Ds>,
    /// Open WebSocket streams, per peer IP.
    pub streams: Arc<ConnLimits>,
    /// The largest request body (blob uploads have their own limit).
    pub max_body_bytes: usize,
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// The largest request body outside blob uploads.
    pub max_body_bytes: usize,
    /// Most open WebSocket streams per peer IP.
    pub max_streams_per_ip: usize,
}

/// Builds the whole HTTP application.
pub fn app(ds: Arc<Ds>, opts: HttpOptions) -> Router {
    let streams = ConnLimits::new(usize::MAX, opts.max_streams_per_ip);
    let state = AppState { ds, streams, max_body_bytes: opts.max_body_bytes };
    let max_body_bytes = opts.max_body_bytes;
    Router::new()
        .merge(ops::router())
        .merge(users::router())
        .merge(key_packages::router())
        .merge(groups::router())
        .merge(blobs::router())
        .merge(welcomes::router())
        .merge(kt::router())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), refuse_declared_oversize))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .with_state(state)
}

/// An authenticated request: the domain, and the client that sent the request
/// (`Authorization: Bearer <token>`). Extracting it also counts the request
/// against the client's rate limit.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The domain layer.
    pub ds: Arc<Ds>,
    /// The authenticated device's mailbox (`grove_proto::identity::mailbox`):
    /// the user name for a user without devices, `user/device` otherwise.
    /// Group membership, cursors, the Welcome inbox and KeyPackages are
    /// per mailbox.
    pub user: String,
    /// The authenticated session (user and device).
    pub session: crate::ds::Session,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = DsError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(DsError::AuthRequired)?;
        let session = state.ds.check_token(token).await?;
        state.ds.auth.check_rate(&session.user)?;
        Ok(Caller { ds: state.ds.clone(), user: session.mailbox(), session })
    }
}

/// An unauthenticated request (registration, login). Extracting it counts the
/// request against the rate limit of the peer's IP address.
#[derive(Debug, Clone)]
pub struct Anonymous {
    /// The domain layer.
    pub ds: Arc<Ds>,
}

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = DsError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The extractor, not the raw extension: it also takes axum's MockConnectInfo.
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|_| DsError::Internal("the server was started without peer addresses".into()))?;
        state.ds.auth.check_rate(&format!("ip:{}", peer.ip()))?;
        Ok(Anonymous { ds: state.ds.clone() })
    }
}

/// The `{group_id}` segment of a route, decoded and validated.
#[derive(Debug, Clone)]
pub struct GroupPath(pub crate::api::GroupId);

impl FromRequestParts<AppState> for GroupPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Path(segment) = Path::<String>::from_request_parts(parts, state).await.map_err(|e| e.into_response())?;
        Ok(GroupPath(group_id(&segment).map_err(|e| e.into_response())?))
    }
}

/// The query of a page fetch (`after`, `limit`, `wait` seconds), for the log
/// and for the Welcome inbox.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
    wait: Option<u64>,
}

impl PageQuery {
    /// Entries after this one (0: from the start).
    pub(crate) fn after(&self) -> u64 {
        self.after.unwrap_or(0)
    }

    /// The page size asked for (the domain applies its maximum).
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// How long to wait for the first entry (0: answer at once).
    pub(crate) fn wait(&self) -> Duration {
        Duration::from_secs(self.wait.unwrap_or(0))
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Refuses a body whose Content-Type is not `expected`.
pub(crate) fn require_media(headers: &HeaderMap, expected: &str) -> Result<(), DsError> {
    let got = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = got.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DsError::UnsupportedMediaType(format!("expected Content-Type {expected}, got {got:?}")))
    }
}

/// Decodes a group id path segment.
pub(crate) fn group_id(segment: &str) -> Result<crate::api::GroupId, DsError> {
    Ok(crate::api::GroupId::from_path(segment)?)
}

/// Answers 413 at once to a request whose declared `Content-Length` is over
/// the limit of its route, before any of the body is read.
async fn refuse_declared_oversize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        let is_blob = req.extensions().get::<MatchedPath>().is_some_and(|p| p.as_str() == crate::api::routes::BLOBS);
        let refusal = if is_blob && len > state.ds.max_blob_bytes() {
            Some(DsError::BlobTooLarge { max: state.ds.max_blob_bytes() }.into_response())
        } else if !is_blob && len > state.max_body_bytes as u64 {
            let message =
                format!("the declared body of {len} bytes is over the limit of {} bytes", state.max_body_bytes);
            let body = axum::Json(ErrorBody::new(ErrorCode::PayloadTooLarge, message));
            Some((StatusCode::PAYLOAD_TOO_LARGE, body).into_response())
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tokio::spawn(linger(req.into_body()));
            return refusal;
        }
    }
    next.run(req).await
}

/// After an early refusal, reads and drops what the client is still sending
/// (at most 64 MiB, for at most 5 s: a "lingering close"), so that a client
/// busy writing its body gets to read the 413 instead of a broken pipe. The
/// answer itself is not delayed: it is sent at once.
async fn linger(body: axum::body::Body) {
    use futures_util::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut left: usize = 64 << 20;
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            chunk = stream.next() => match chunk {
                Some(Ok(bytes)) if bytes.len() < left => left -= bytes.len(),
                _ => return,
            },
        }
    }
}

async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &state.ds.metrics;
    m.requests.get_or_create(&RouteLabels { route: route.clone(), method, status: resp.status().as_u16() }).inc();
    m.latency.get_or_create(&LatencyLabels { route }).observe(start.elapsed().as_secs_f64());
    resp
}

/// Turns axum's own plain-text rejections into Grove's JSON error shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        s if s.is_client_error() => ErrorCode::InvalidRequest,
        _ => ErrorCode::InternalError,
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than the server accepts".to_string(),
        StatusCode::NOT_FOUND if text.is_empty() => "no such route (see docs/api.md)".to_string(),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    let mut resp = (status, axum::Json(ErrorBody::new(code, message))).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}
