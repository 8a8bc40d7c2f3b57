//! The PostgreSQL store's key-transparency table (`kt`, opaque records
//! under `grove_ds::kt`'s keys) and the user names the directory backfills.

use sqlx::postgres::PgPool;

use super::postgres::pg_err;
use super::StoreResult;

pub(super) async fn user_names(pool: &PgPool) -> StoreResult<Vec<String>> {
    sqlx::query_scalar("SELECT name FROM users ORDER BY name").fetch_all(pool).await.map_err(pg_err)
}

pub(super) async fn get(pool: &PgPool, keys: &[Vec<u8>]) -> StoreResult<Vec<Option<Vec<u8>>>> {
    let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as("SELECT key, value FROM kt WHERE key = ANY($1)")
        .bind(keys)
        .fetch_all(pool)
        .await
        .map_err(pg_err)?;
    let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows.into_iter().collect();
    Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
}

pub(super) async fn put(pool: &PgPool, records: &[(Vec<u8>, Vec<u8>)]) -> StoreResult<()> {
    // One statement is atomic; a key twice in it would be an error, so the
    // last value of each key wins here, as it would in a sequence of writes.
    let mut last = std::collections::BTreeMap::new();
    for (k, v) in records {
        last.insert(k.clone(), v.clone());
    }
    let (keys, values): (Vec<Vec<u8>>, Vec<Vec<u8>>) = last.into_iter().unzip();
    sqlx::query(
        "INSERT INTO kt (key, value) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(&keys)
    .bind(&values)
    .execute(pool)
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub(super) async fn put_absent(pool: &PgPool, key: &[u8], value: &[u8]) -> StoreResult<Vec<u8>> {
    sqlx::query("INSERT INTO kt (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(pool)
        .await
        .map_err(pg_err)?;
    sqlx::query_scalar("SELECT value FROM kt WHERE key = $1").bind(key).fetch_one(pool).await.map_err(pg_err)
}

pub(super) async fn scan(pool: &PgPool, prefix: &[u8]) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
    // bytea compares bytewise, so a prefix is a key range.
    match prefix_end(prefix) {
        Some(end) => sqlx::query_as("SELECT key, value FROM kt WHERE key >= $1 AND key < $2 ORDER BY key")
            .bind(prefix)
            .bind(end)
            .fetch_all(pool)
            .await
            .map_err(pg_err),
        None => sqlx::query_as("SELECT key, value FROM kt WHERE key >= $1 ORDER BY key")
            .bind(prefix)
            .fetch_all(pool)
            .await
            .map_err(pg_err),
    }
}

/// The key directory's publish lock: a transaction-scoped advisory lock,
/// held by a transaction that stays open (it writes nothing) until the
/// guard drops (rolled back) or the replica's connection dies.
pub(super) async fn publish_lock(pool: &PgPool) -> StoreResult<super::KtPublishLock> {
    let mut tx = pool.begin().await.map_err(pg_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('grove-kt-publish'), 0)")
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
    Ok(super::KtPublishLock(Some(Box::new(tx))))
}

/// The least key above every key starting with `prefix` (`None`: no bound).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
