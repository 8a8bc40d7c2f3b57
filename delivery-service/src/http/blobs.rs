//! The encrypted blob store of a group: streamed upload, download, delete.
//! Only current members may use it; blobs are opaque ciphertext.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{group_id, AppState, AuthUser};
use crate::api::routes;
use crate::error::DsError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::BLOBS, post(upload).layer(DefaultBodyLimit::disable()))
        .route(routes::BLOB, get(download).delete(remove))
}

async fn upload(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(gid): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, DsError> {
    let gid = group_id(&gid)?;
    let created = state.ds.put_blob(&user, &gid, body.into_data_stream()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn download(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((gid, blob_id)): Path<(String, String)>,
) -> Result<Response, DsError> {
    let gid = group_id(&gid)?;
    let (file, len) = state.ds.get_blob(&user, &gid, &blob_id).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, crate::blobs::READ_BUFFER);
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, len.to_string())],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((gid, blob_id)): Path<(String, String)>,
) -> Result<StatusCode, DsError> {
    let gid = group_id(&gid)?;
    state.ds.delete_blob(&user, &gid, &blob_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
