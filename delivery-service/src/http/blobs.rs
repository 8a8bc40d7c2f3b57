//! The encrypted blob store of a group: streamed upload, download, delete.
//! Only current members may use it; blobs are opaque ciphertext.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{group_id, AppState, Caller, GroupPath};
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::BLOBS, post(upload).layer(DefaultBodyLimit::disable()))
        .route(routes::BLOB, get(download).delete(remove))
}

async fn upload(caller: Caller, GroupPath(gid): GroupPath, body: Body) -> Result<impl IntoResponse, DsError> {
    let created = caller.ds.put_blob(&caller.user, &gid, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn download(caller: Caller, Path((gid, blob_id)): Path<(String, String)>) -> Result<Response, DsError> {
    let (stream, len) = caller.ds.get_blob(&caller.user, &group_id(&gid)?, &blob_id).await?;
    let headers =
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, len.to_string())];
    Ok((headers, Body::from_stream(stream)).into_response())
}

async fn remove(caller: Caller, Path((gid, blob_id)): Path<(String, String)>) -> Result<StatusCode, DsError> {
    caller.ds.delete_blob(&caller.user, &group_id(&gid)?, &blob_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
