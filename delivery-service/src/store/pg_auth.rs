//! The PostgreSQL store's authentication tables (`challenges`, `tokens`),
//! users' device lists (`device_lists`) and link requests (`links`).

use sqlx::postgres::PgPool;

use super::postgres::{pg_err, to_i64, to_u64};
use super::{LinkRecord, StoreResult, TokenRecord};

pub(super) async fn put_challenge(pool: &PgPool, challenge: &[u8; 32], user: &str, expires_at: u64) -> StoreResult<()> {
    sqlx::query("INSERT INTO challenges (challenge, user_name, expires_at) VALUES ($1, $2, $3)")
        .bind(challenge.as_slice())
        .bind(user)
        .bind(to_i64(expires_at)?)
        .execute(pool)
        .await
        .map_err(pg_err)?;
    Ok(())
}

pub(super) async fn take_challenge(pool: &PgPool, challenge: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
    let row: Option<(String, i64)> =
        sqlx::query_as("DELETE FROM challenges WHERE challenge = $1 RETURNING user_name, expires_at")
            .bind(challenge.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(pg_err)?;
    row.map(|(user, at)| Ok(TokenRecord { user, expires_at: to_u64("challenge", at)?, device: None })).transpose()
}

pub(super) async fn put_token(pool: &PgPool, hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
    sqlx::query("INSERT INTO tokens (hash, user_name, expires_at, device) VALUES ($1, $2, $3, $4)")
        .bind(hash.as_slice())
        .bind(&token.user)
        .bind(to_i64(token.expires_at)?)
        .bind(token.device.as_deref())
        .execute(pool)
        .await
        .map_err(pg_err)?;
    Ok(())
}

pub(super) async fn token(pool: &PgPool, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
    let row: Option<(String, i64, Option<String>)> =
        sqlx::query_as("SELECT user_name, expires_at, device FROM tokens WHERE hash = $1")
            .bind(hash.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(pg_err)?;
    row.map(|(user, at, device)| Ok(TokenRecord { user, expires_at: to_u64("token", at)?, device })).transpose()
}

pub(super) async fn prune_auth(pool: &PgPool, now: u64) -> StoreResult<u64> {
    let now = to_i64(now)?;
    let mut n = 0;
    for table in ["tokens", "challenges", "links"] {
        n += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
            .bind(now)
            .execute(pool)
            .await
            .map_err(pg_err)?
            .rows_affected();
    }
    Ok(n)
}

/// Inserts version `version` only if version `version - 1` exists (or it is
/// version 1); the primary key lets one of two concurrent writers win.
pub(super) async fn append_device_list(pool: &PgPool, user: &str, version: u64, list: &[u8]) -> StoreResult<bool> {
    if version == 0 {
        return Ok(false);
    }
    let v = to_i64(version)?;
    let n = sqlx::query(
        "INSERT INTO device_lists (user_name, version, list) SELECT $1, $2, $3 \
         WHERE $2 = 1 OR EXISTS (SELECT 1 FROM device_lists WHERE user_name = $1 AND version = $2 - 1) \
         ON CONFLICT (user_name, version) DO NOTHING",
    )
    .bind(user)
    .bind(v)
    .bind(list)
    .execute(pool)
    .await
    .map_err(pg_err)?
    .rows_affected();
    Ok(n == 1)
}

pub(super) async fn device_lists(pool: &PgPool, user: &str, after: u64) -> StoreResult<Vec<Vec<u8>>> {
    sqlx::query_scalar("SELECT list FROM device_lists WHERE user_name = $1 AND version > $2 ORDER BY version")
        .bind(user)
        .bind(to_i64(after.min(i64::MAX as u64))?)
        .fetch_all(pool)
        .await
        .map_err(pg_err)
}

pub(super) async fn latest_device_list(pool: &PgPool, user: &str) -> StoreResult<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT list FROM device_lists WHERE user_name = $1 ORDER BY version DESC LIMIT 1")
        .bind(user)
        .fetch_optional(pool)
        .await
        .map_err(pg_err)
}

pub(super) async fn put_link(pool: &PgPool, id: &[u8; 16], link: &LinkRecord) -> StoreResult<bool> {
    let n = sqlx::query(
        "INSERT INTO links (id, user_name, expires_at, request, approval) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.as_slice())
    .bind(&link.user)
    .bind(to_i64(link.expires_at)?)
    .bind(&link.request)
    .bind(link.approval.as_deref())
    .execute(pool)
    .await
    .map_err(pg_err)?
    .rows_affected();
    Ok(n == 1)
}

/// A `links` row: user, expiry, request, approval.
type LinkRow = (String, i64, Vec<u8>, Option<Vec<u8>>);

pub(super) async fn link(pool: &PgPool, id: &[u8; 16]) -> StoreResult<Option<LinkRecord>> {
    let row: Option<LinkRow> =
        sqlx::query_as("SELECT user_name, expires_at, request, approval FROM links WHERE id = $1")
            .bind(id.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(pg_err)?;
    row.map(|(user, at, request, approval)| {
        Ok(LinkRecord { user, expires_at: to_u64("link request", at)?, request, approval })
    })
    .transpose()
}

pub(super) async fn approve_link(pool: &PgPool, id: &[u8; 16], approval: &[u8]) -> StoreResult<bool> {
    let n = sqlx::query("UPDATE links SET approval = $2 WHERE id = $1 AND approval IS NULL")
        .bind(id.as_slice())
        .bind(approval)
        .execute(pool)
        .await
        .map_err(pg_err)?
        .rows_affected();
    Ok(n == 1)
}
