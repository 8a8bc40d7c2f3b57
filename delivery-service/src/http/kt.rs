//! Key transparency (`docs/api.md` §3.7): the directory's keys and heads
//! and audit proofs for anyone (auditors hold no account), lookup and
//! history proofs for signed-in clients.

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::{Json, Router};
use grove_proto::kt as api_kt;

use super::{Anonymous, AppState, Caller};
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::KT_KEYS, get(keys))
        .route(routes::KT_HEAD, get(head))
        .route(routes::KT_LOOKUP, get(lookup))
        .route(routes::KT_HISTORY, get(history))
        .route(routes::KT_AUDIT, get(audit))
}

async fn keys(peer: Anonymous) -> Json<api_kt::KtKeys> {
    Json(peer.ds.kt().keys().clone())
}

#[derive(Debug, serde::Deserialize)]
struct HeadQuery {
    epoch: Option<u64>,
}

async fn head(peer: Anonymous, Query(q): Query<HeadQuery>) -> Result<Json<api_kt::HeadResponse>, DsError> {
    Ok(Json(api_kt::HeadResponse { head: peer.ds.kt().head(q.epoch).await? }))
}

/// The user a caller's mailbox belongs to (`user` or `user/device`).
fn user_of(mailbox: &str) -> &str {
    mailbox.split('/').next().unwrap_or(mailbox)
}

async fn lookup(caller: Caller, Path(user): Path<String>) -> Result<Json<api_kt::LookupResponse>, DsError> {
    Ok(Json(caller.ds.kt().lookup(&user, Some(user_of(&caller.user))).await?))
}

async fn history(caller: Caller, Path(user): Path<String>) -> Result<Json<api_kt::HistoryResponse>, DsError> {
    Ok(Json(caller.ds.kt().history(&user).await?))
}

#[derive(Debug, serde::Deserialize)]
struct AuditQuery {
    from: u64,
    to: u64,
}

async fn audit(peer: Anonymous, Query(q): Query<AuditQuery>) -> Result<Json<api_kt::AuditResponse>, DsError> {
    Ok(Json(peer.ds.kt().audit(q.from, q.to).await?))
}
