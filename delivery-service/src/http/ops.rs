//! Health (no authentication) and metrics (the `--metrics-token` bearer token).

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::HEALTH, get(health)).route(routes::METRICS, get(metrics))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let status = if state.ds.shutting_down() { "shutting_down" } else { "ok" };
    Json(json!({ "status": status, "version": env!("CARGO_PKG_VERSION") }))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, DsError> {
    state.ds.check_metrics_token(super::bearer(&headers))?;
    Ok((
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.ds.metrics.encode(),
    ))
}
