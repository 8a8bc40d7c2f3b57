//! Blobs in PostgreSQL: `blob_chunks` rows of up to 1 MiB, and a `blobs` row
//! written last, all in the upload's one transaction (committed, with
//! `synchronous_commit = on`, before the 201). A download reads one chunk at
//! a time, so memory per download stays at one chunk.

use futures_util::{Stream, StreamExt as _};
use sqlx::PgPool;

use super::BlobBody;
use crate::error::DsError;
use crate::store::postgres::pg_err;

/// Bytes per stored chunk.
const CHUNK: usize = 1 << 20;

/// The PostgreSQL blob store.
#[derive(Debug, Clone)]
pub struct PgBlobs {
    pool: PgPool,
    max_bytes: u64,
}

fn db(e: sqlx::Error) -> DsError {
    DsError::Storage(pg_err(e))
}

impl PgBlobs {
    /// Blobs in the database behind `pool` (its schema has the blob tables).
    pub fn new(pool: PgPool, max_bytes: u64) -> Self {
        PgBlobs { pool, max_bytes }
    }

    /// Largest accepted blob.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// See [`super::BlobStore::put`]. A failed or oversized upload rolls
    /// back: nothing of it stays.
    pub async fn put<S, E>(&self, internal_id: u64, mut body: S) -> Result<(String, u64), DsError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let id = super::new_blob_id();
        let gid = internal_id as i64;
        let mut tx = self.pool.begin().await.map_err(db)?;
        let (mut size, mut n, mut buf) = (0u64, 0i32, Vec::with_capacity(CHUNK));
        let flush = |buf: Vec<u8>, n: i32| {
            sqlx::query("INSERT INTO blob_chunks (internal_id, blob_id, n, data) VALUES ($1, $2, $3, $4)")
                .bind(gid)
                .bind(id.clone())
                .bind(n)
                .bind(buf)
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DsError::UploadInterrupted(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(DsError::BlobTooLarge { max: self.max_bytes });
            }
            buf.extend_from_slice(&chunk);
            while buf.len() >= CHUNK {
                let rest = buf.split_off(CHUNK);
                flush(std::mem::replace(&mut buf, rest), n).execute(&mut *tx).await.map_err(db)?;
                n += 1;
            }
        }
        if !buf.is_empty() {
            flush(buf, n).execute(&mut *tx).await.map_err(db)?;
        }
        sqlx::query("INSERT INTO blobs (internal_id, blob_id, size) VALUES ($1, $2, $3)")
            .bind(gid)
            .bind(&id)
            .bind(size as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok((id, size))
    }

    /// See [`super::BlobStore::open_blob`].
    pub async fn open_blob(&self, internal_id: u64, id: &str) -> Result<Option<(BlobBody, u64)>, DsError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE internal_id = $1 AND blob_id = $2")
            .bind(internal_id as i64)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(size) = size else { return Ok(None) };
        let (pool, id) = (self.pool.clone(), id.to_string());
        // One chunk per step; the stream ends at the first missing chunk.
        let chunks = futures_util::stream::unfold(0i32, move |n| {
            let (pool, id) = (pool.clone(), id.clone());
            async move {
                let row: Result<Option<Vec<u8>>, sqlx::Error> = sqlx::query_scalar(
                    "SELECT data FROM blob_chunks WHERE internal_id = $1 AND blob_id = $2 AND n = $3",
                )
                .bind(internal_id as i64)
                .bind(&id)
                .bind(n)
                .fetch_optional(&pool)
                .await;
                match row {
                    Ok(Some(data)) => Some((Ok(bytes::Bytes::from(data)), n + 1)),
                    Ok(None) => None,
                    Err(e) => Some((Err(std::io::Error::other(e)), i32::MAX)),
                }
            }
        });
        let body: BlobBody = chunks.boxed();
        Ok(Some((body, u64::try_from(size).unwrap_or(0))))
    }

    /// See [`super::BlobStore::delete`].
    pub async fn delete(&self, internal_id: u64, id: &str) -> Result<bool, DsError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let n = sqlx::query("DELETE FROM blobs WHERE internal_id = $1 AND blob_id = $2")
            .bind(internal_id as i64)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        sqlx::query("DELETE FROM blob_chunks WHERE internal_id = $1 AND blob_id = $2")
            .bind(internal_id as i64)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(n == 1)
    }
}
