//! Health and metrics (no authentication).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/health", get(health)).route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let status = if state.ds.shutting_down() { "shutting_down" } else { "ok" };
    Json(json!({ "status": status, "version": env!("CARGO_PKG_VERSION") }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.ds.metrics.encode())
}
