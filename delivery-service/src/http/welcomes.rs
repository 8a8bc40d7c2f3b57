//! The per-client Welcome inbox.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};

use super::{AppState, Caller, PageQuery};
use crate::api;
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::WELCOMES, get(list)).route(routes::WELCOME, delete(ack))
}

async fn list(caller: Caller, Query(q): Query<PageQuery>) -> Result<Json<api::WelcomesPage>, DsError> {
    Ok(Json(caller.ds.welcomes(&caller.user, q.after(), q.limit(), q.wait()).await?))
}

async fn ack(caller: Caller, Path(id): Path<u64>) -> Result<StatusCode, DsError> {
    caller.ds.ack_welcome(&caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
