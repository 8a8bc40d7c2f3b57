//! Registration, authentication and identity lookup.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{Anonymous, AppState, Caller};
use crate::api;
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::USERS, post(register))
        .route(routes::USER, get(lookup))
        .route(routes::USER_DEVICES, get(device_lists).post(publish_devices))
        .route(routes::AUTH_CHALLENGE, post(challenge))
        .route(routes::AUTH_TOKEN, post(token))
}

async fn register(peer: Anonymous, Json(req): Json<api::RegisterRequest>) -> Result<impl IntoResponse, DsError> {
    let resp = peer.ds.register(req).await?;
    let status = if resp.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(resp)))
}

async fn challenge(peer: Anonymous, Json(req): Json<api::ChallengeRequest>) -> Result<impl IntoResponse, DsError> {
    Ok(Json(peer.ds.challenge(&req.user).await?))
}

async fn token(peer: Anonymous, Json(req): Json<api::TokenRequest>) -> Result<impl IntoResponse, DsError> {
    Ok(Json(peer.ds.token(&req).await?))
}

async fn lookup(caller: Caller, Path(user): Path<String>) -> Result<Json<api::UserResponse>, DsError> {
    Ok(Json(caller.ds.lookup_user(&user).await?))
}

#[derive(Debug, serde::Deserialize)]
struct DevicesQuery {
    after: Option<u64>,
}

async fn device_lists(
    caller: Caller,
    Path(user): Path<String>,
    Query(q): Query<DevicesQuery>,
) -> Result<Json<api::DeviceListsResponse>, DsError> {
    Ok(Json(caller.ds.device_lists_of(&user, q.after.unwrap_or(0)).await?))
}

async fn publish_devices(
    caller: Caller,
    Path(user): Path<String>,
    Json(req): Json<api::DeviceListRequest>,
) -> Result<impl IntoResponse, DsError> {
    let published = caller.ds.publish_device_list(&caller.session, &user, &req.device_list).await?;
    Ok((StatusCode::CREATED, Json(published)))
}
