//! The KeyPackage directory.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{require_media, AppState, Caller};
use crate::api;
use crate::api::routes;
use crate::error::DsError;
use crate::store::KeyPackageKind;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::KEY_PACKAGES, post(upload).get(count))
        .route(routes::KEY_PACKAGE_CLAIM, post(claim))
        .route(routes::KEY_PACKAGE_CLAIM_DEVICES, post(claim_devices))
}

#[derive(Debug, Deserialize)]
struct SuiteQuery {
    ciphersuite: Option<u16>,
}

async fn upload(caller: Caller, headers: HeaderMap, body: Bytes) -> Result<impl IntoResponse, DsError> {
    require_media(&headers, api::MEDIA_KEY_PACKAGES)?;
    Ok((StatusCode::CREATED, Json(caller.ds.upload_key_packages(&caller.session, &body).await?)))
}

async fn count(caller: Caller, Query(q): Query<SuiteQuery>) -> Result<Json<api::KeyPackageCountResponse>, DsError> {
    let c = caller.ds.key_package_counts(&caller.user, q.ciphersuite.unwrap_or(1)).await?;
    Ok(Json(api::KeyPackageCountResponse { accepted: 0, one_time: c.one_time, last_resort: c.last_resort }))
}

/// Any authenticated user may claim another user's KeyPackage (to add them).
async fn claim(
    caller: Caller,
    Path(target): Path<String>,
    Query(q): Query<SuiteQuery>,
) -> Result<impl IntoResponse, DsError> {
    let (kp, kind) = caller.ds.claim_key_package(&target, q.ciphersuite.unwrap_or(1)).await?;
    let kind = match kind {
        KeyPackageKind::OneTime => "one-time",
        KeyPackageKind::LastResort => "last-resort",
    };
    Ok((
        [(header::CONTENT_TYPE, api::MEDIA_MLS), (header::HeaderName::from_static(api::HEADER_KEY_PACKAGE_KIND), kind)],
        kp,
    ))
}

/// One KeyPackage of each current device of a user (to add all of them).
async fn claim_devices(
    caller: Caller,
    Path(target): Path<String>,
    Query(q): Query<SuiteQuery>,
) -> Result<Json<api::DeviceKeyPackagesResponse>, DsError> {
    Ok(Json(caller.ds.claim_device_key_packages(&target, q.ciphersuite.unwrap_or(1)).await?))
}
