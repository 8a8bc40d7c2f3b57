//! Registration, authentication, identity lookup, device lists and linking.

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
        .route(routes::USER_DEVICES_RESTORE, post(restore_devices))
        .route(routes::USER_LINKS, post(create_link))
        .route(routes::LINK, get(link))
        .route(routes::LINK_APPROVAL, post(approve_link))
}

/// A new device asks to be linked (it has no token yet: its proof of
/// possession and, when required, the app's login vouch for it).
async fn create_link(
    peer: Anonymous,
    Path(user): Path<String>,
    Json(req): Json<api::LinkCreateRequest>,
) -> Result<impl IntoResponse, DsError> {
    Ok((StatusCode::CREATED, Json(peer.ds.create_link(&user, &req).await?)))
}

/// A link request and its approval, by its unguessable id.
async fn link(peer: Anonymous, Path(id): Path<String>) -> Result<Json<api::LinkResponse>, DsError> {
    Ok(Json(peer.ds.link(&id).await?))
}

async fn approve_link(
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<api::LinkApproveRequest>,
) -> Result<StatusCode, DsError> {
    caller.ds.approve_link(&caller.session, &id, &req.approval).await?;
    Ok(StatusCode::NO_CONTENT)
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
    #[allow(unused_mut)]
    let mut found = caller.ds.lookup_user(&user).await?;
    #[cfg(feature = "testing")]
    caller.ds.kt().tamper.served_user(caller.user.split('/').next().unwrap_or_default(), &mut found);
    Ok(Json(found))
}

#[derive(Debug, serde::Deserialize)]
struct DevicesQuery {
    after: Option<u64>,
}

/// Anyone may read a user's device lists (signed, public data), without a
/// token: a device restored from a backup reads them before it has one.
async fn device_lists(
    peer: Anonymous,
    Path(user): Path<String>,
    Query(q): Query<DevicesQuery>,
) -> Result<Json<api::DeviceListsResponse>, DsError> {
    Ok(Json(peer.ds.device_lists_of(&user, q.after.unwrap_or(0)).await?))
}

/// The next device list without a token (a restored device): see
/// `Ds::restore_device_list`.
async fn restore_devices(
    peer: Anonymous,
    Path(user): Path<String>,
    Json(req): Json<api::DeviceListRestoreRequest>,
) -> Result<impl IntoResponse, DsError> {
    Ok((StatusCode::CREATED, Json(peer.ds.restore_device_list(&user, &req).await?)))
}

async fn publish_devices(
    caller: Caller,
    Path(user): Path<String>,
    Json(req): Json<api::DeviceListRequest>,
) -> Result<impl IntoResponse, DsError> {
    let published = caller.ds.publish_device_list(&caller.session, &user, &req.device_list).await?;
    Ok((StatusCode::CREATED, Json(published)))
}
