//! The per-client Welcome inbox.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;

use super::{wait_param, AppState, AuthUser};
use crate::api;
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::WELCOMES, get(list)).route(routes::WELCOME, delete(ack))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<usize>,
    wait: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<api::WelcomesPage>, DsError> {
    Ok(Json(state.ds.welcomes(&user, q.after.unwrap_or(0), q.limit, wait_param(q.wait)).await?))
}

async fn ack(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<u64>,
) -> Result<StatusCode, DsError> {
    state.ds.ack_welcome(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
