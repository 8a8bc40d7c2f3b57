//! Groups: creation, commit bundles, messages, fetch (long-poll and WebSocket),
//! acknowledgements and the roster.

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{bearer, group_id, require_media, AppState, Caller, GroupPath, PageQuery};
use crate::api;
use crate::api::routes;
use crate::conn::Refused;
use crate::ds::LogPage;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::GROUPS, post(create))
        .route(routes::GROUP, get(info))
        .route(routes::GROUP_INFO, get(group_info))
        .route(routes::COMMITS, post(post_to_log::<true>))
        .route(routes::MESSAGES, post(post_to_log::<false>).get(fetch))
        .route(routes::ACK, post(ack))
        .route(routes::REPORTS, post(report))
        .route(routes::STREAM, get(stream))
}

async fn create(caller: Caller, headers: HeaderMap, body: Bytes) -> Result<impl IntoResponse, DsError> {
    require_media(&headers, api::MEDIA_GROUP_CREATE)?;
    Ok((StatusCode::CREATED, Json(caller.ds.create_group(&caller.user, &body).await?)))
}

async fn info(caller: Caller, GroupPath(gid): GroupPath) -> Result<Json<api::GroupResponse>, DsError> {
    Ok(Json(caller.ds.group_info(&caller.user, &gid).await?))
}

async fn group_info(caller: Caller, GroupPath(gid): GroupPath) -> Result<Response, DsError> {
    let gi = caller.ds.latest_group_info(&caller.user, &gid).await?;
    Ok(([(header::CONTENT_TYPE, api::MEDIA_MLS)], gi).into_response())
}

/// `COMMIT`: a commit bundle to `/commits`; otherwise a proposal or an
/// application message to `/messages`. 201 with the entry's seq.
async fn post_to_log<const COMMIT: bool>(
    caller: Caller,
    GroupPath(gid): GroupPath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, DsError> {
    require_media(&headers, if COMMIT { api::MEDIA_COMMIT_BUNDLE } else { api::MEDIA_MLS })?;
    let posted = if COMMIT {
        caller.ds.post_commit(&caller.user, &gid, &body).await?
    } else {
        caller.ds.post_message(&caller.user, &gid, body).await?
    };
    Ok((StatusCode::CREATED, Json(posted)))
}

/// Fetch: JSON by default, or the binary [`api::MessagesPageBody`] when the
/// client sends `Accept: application/vnd.grove.messages`.
async fn fetch(
    caller: Caller,
    GroupPath(gid): GroupPath,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, DsError> {
    let binary = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.split(';').next().unwrap_or("").trim() == api::MEDIA_MESSAGES));
    let page = caller.ds.fetch_page(&caller.user, &gid, q.after(), q.limit(), q.wait()).await?;
    if !binary {
        return Ok(Json(json_page(&page)).into_response());
    }
    Ok(([(header::CONTENT_TYPE, api::MEDIA_MESSAGES)], encode_binary_page(&page)?).into_response())
}

/// One log entry in JSON.
fn message_out(e: &crate::store::LogEntry) -> api::MessageOut {
    api::MessageOut { seq: e.seq, epoch: e.epoch, kind: e.kind, message: e.message.to_vec() }
}

/// A page in JSON.
fn json_page(page: &LogPage) -> api::MessagesPage {
    api::MessagesPage {
        messages: page.entries.iter().map(|e| message_out(e)).collect(),
        last_seq: page.last_seq,
        removed_at: page.removed_at,
    }
}

/// One entry of a binary page, borrowing the stored message (no copy).
#[derive(Debug, tls_codec::TlsSerialize, tls_codec::TlsSize)]
struct EntryRef<'a> {
    seq: u64,
    epoch: u64,
    kind: u8,
    message: tls_codec::VLByteSlice<'a>,
}

/// A binary page ([`api::MessagesPageBody`] on the wire), borrowing entries.
#[derive(Debug, tls_codec::TlsSerialize, tls_codec::TlsSize)]
struct PageRef<'a> {
    last_seq: u64,
    removed_at: u64,
    messages: Vec<EntryRef<'a>>,
}

/// Encodes a page in the binary form of `docs/api.md` §5.16.
fn encode_binary_page(page: &LogPage) -> Result<Vec<u8>, DsError> {
    let r = PageRef {
        last_seq: page.last_seq,
        removed_at: page.removed_at.unwrap_or(0),
        messages: page
            .entries
            .iter()
            .map(|e| EntryRef {
                seq: e.seq,
                epoch: e.epoch,
                kind: e.kind.to_u8(),
                message: tls_codec::VLByteSlice(&e.message),
            })
            .collect(),
    };
    tls_codec::Serialize::tls_serialize_detached(&r)
        .map_err(|e| DsError::Internal(format!("encoding a fetch page: {e}")))
}

async fn report(
    caller: Caller,
    GroupPath(gid): GroupPath,
    Json(req): Json<api::CommitReportRequest>,
) -> Result<(StatusCode, Json<api::CommitReportResponse>), DsError> {
    Ok((StatusCode::CREATED, Json(caller.ds.report_commit(&caller.user, &gid, req).await?)))
}

async fn ack(
    caller: Caller,
    GroupPath(gid): GroupPath,
    Json(req): Json<api::AckRequest>,
) -> Result<StatusCode, DsError> {
    caller.ds.ack(&caller.user, &gid, req.seq).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Read buffer of a stream's socket. Clients send only pings and a close on
/// it, and tungstenite zero-fills this buffer's free space on every read
/// attempt, which the stream makes once per batch it sends: the 128 KiB
/// default cost 5 % of the DS's CPU in memset (profile in docs/benchmarks.md).
const STREAM_READ_BUFFER: usize = 4096;

/// The largest message or frame a client may send on a stream (pings and
/// closes are tiny; tungstenite's default would buffer 64 MiB).
const STREAM_MAX_INCOMING: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
struct StreamQuery {
    after: Option<u64>,
    access_token: Option<String>,
    /// `json` (default): one text frame per entry; `binary`: one binary frame
    /// per batch, each an [`api::MessagesPageBody`].
    format: Option<String>,
}

/// WebSocket stream of a group's log. Authenticates with the `Authorization`
/// header or, for browsers, the `access_token` query parameter.
async fn stream(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(gid): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, DsError> {
    let token = bearer(&headers).map(str::to_string).or(q.access_token).ok_or(DsError::AuthRequired)?;
    let session = state.ds.check_token(&token).await?;
    state.ds.auth.check_rate(&session.user)?;
    let user = session.mailbox();
    let gid = group_id(&gid)?;
    // Check access before upgrading, so a refusal is a plain HTTP error.
    let binary = match q.format.as_deref() {
        None | Some("json") => false,
        Some("binary") => true,
        Some(other) => return Err(DsError::UnknownFormat(other.to_string())),
    };
    let rx = state.ds.subscribe(&user, &gid).await?;
    // Counted from here until the stream ends.
    let slot = state.streams.try_open(peer.ip()).map_err(|why| match why {
        Refused::PerIp(n) | Refused::Total(n) => DsError::TooManyStreams(n),
    })?;
    let after = q.after.unwrap_or(0);
    let ws = ws
        .read_buffer_size(STREAM_READ_BUFFER)
        .max_message_size(STREAM_MAX_INCOMING)
        .max_frame_size(STREAM_MAX_INCOMING);
    Ok(ws.on_upgrade(move |socket| async move {
        run_stream(state, token, user, gid, after, binary, rx, socket).await;
        drop(slot);
    }))
}

#[allow(clippy::too_many_arguments)]
async fn run_stream(
    state: AppState,
    token: String,
    user: String,
    gid: api::GroupId,
    mut after: u64,
    binary: bool,
    mut rx: tokio::sync::watch::Receiver<u64>,
    mut socket: WebSocket,
) {
    let mut shutdown = state.ds.shutdown_signal();
    let page = state.ds.limits().max_page;
    loop {
        rx.borrow_and_update();
        // The token is re-checked before every batch: a stream ends with its token.
        if let Err(e) = state.ds.check_token(&token).await {
            let reason = e.code().as_str().into();
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 4401, reason }))).await;
            return;
        }
        let result = state.ds.fetch_page(&user, &gid, after, Some(page), std::time::Duration::ZERO).await;
        let page = match result {
            Ok(p) => p,
            Err(e) => {
                let reason = e.code().as_str().into();
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 4403, reason }))).await;
                return;
            }
        };
        let (removed_at, last_seq, got_any) = (page.removed_at, page.last_seq, !page.entries.is_empty());
        if binary {
            if got_any {
                after = page.entries.last().map(|m| m.seq).unwrap_or(after);
                let Ok(bytes) = encode_binary_page(&page) else { return };
                if socket.send(Message::Binary(bytes.into())).await.is_err() {
                    return;
                }
            }
        } else {
            for e in &page.entries {
                after = e.seq;
                let Ok(text) = serde_json::to_string(&message_out(e)) else { return };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        }
        if removed_at.is_some_and(|at| after >= at) {
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 4403, reason: "removed".into() }))).await;
            return;
        }
        if got_any && last_seq > after {
            continue; // more pages to send
        }
        if *shutdown.borrow() {
            let _ = socket
                .send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() })))
                .await;
            return;
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = shutdown.changed() => {}
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
