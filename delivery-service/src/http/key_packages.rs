//! The KeyPackage directory.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{require_media, AppState, AuthUser};
use crate::api;
use crate::api::routes;
use crate::error::DsError;
use crate::store::KeyPackageKind;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::KEY_PACKAGES, post(upload).get(count)).route(routes::KEY_PACKAGE_CLAIM, post(claim))
}

#[derive(Debug, Deserialize)]
struct SuiteQuery {
    ciphersuite: Option<u16>,
}

async fn upload(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, DsError> {
    require_media(&headers, api::MEDIA_KEY_PACKAGES)?;
    let resp = state.ds.upload_key_packages(&user, &body).await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

async fn count(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Query(q): Query<SuiteQuery>,
) -> Result<Json<api::KeyPackageCountResponse>, DsError> {
    let c = state.ds.key_package_counts(&user, q.ciphersuite.unwrap_or(1))?;
    Ok(Json(api::KeyPackageCountResponse { accepted: 0, one_time: c.one_time, last_resort: c.last_resort }))
}

async fn claim(
    State(state): State<AppState>,
    AuthUser(_claimer): AuthUser,
    Path(target): Path<String>,
    Query(q): Query<SuiteQuery>,
) -> Result<impl IntoResponse, DsError> {
    let (kp, kind) = state.ds.claim_key_package(&target, q.ciphersuite.unwrap_or(1)).await?;
    let kind = match kind {
        KeyPackageKind::OneTime => "one-time",
        KeyPackageKind::LastResort => "last-resort",
    };
    Ok((
        [(header::CONTENT_TYPE, api::MEDIA_MLS), (header::HeaderName::from_static(api::HEADER_KEY_PACKAGE_KIND), kind)],
        kp,
    ))
}
