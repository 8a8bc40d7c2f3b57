//! Registration, authentication and identity lookup.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{check_ip_rate, AppState, AuthUser};
use crate::api;
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::USERS, post(register))
        .route(routes::USER, get(lookup))
        .route(routes::AUTH_CHALLENGE, post(challenge))
        .route(routes::AUTH_TOKEN, post(token))
}

async fn register(
    State(state): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    Json(req): Json<api::RegisterRequest>,
) -> Result<impl IntoResponse, DsError> {
    check_ip_rate(&state, peer)?;
    let resp = state.ds.register(req).await?;
    let status = if resp.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(resp)))
}

async fn challenge(
    State(state): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    Json(req): Json<api::ChallengeRequest>,
) -> Result<Json<api::ChallengeResponse>, DsError> {
    check_ip_rate(&state, peer)?;
    Ok(Json(state.ds.challenge(&req.user)?))
}

async fn token(
    State(state): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    Json(req): Json<api::TokenRequest>,
) -> Result<Json<api::TokenResponse>, DsError> {
    check_ip_rate(&state, peer)?;
    Ok(Json(state.ds.token(&req)?))
}

async fn lookup(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(user): Path<String>,
) -> Result<Json<api::UserResponse>, DsError> {
    Ok(Json(state.ds.lookup_user(&user)?))
}
