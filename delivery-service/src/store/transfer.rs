//! `grove-ds migrate --from-sled DIR --to URL`: copies a sled store, record
//! by record, into an empty PostgreSQL database, in one transaction (all or
//! nothing). Sequence numbers, internal ids, inbox ids, cursors, tokens and
//! the groups' next sequence numbers carry over, so clients notice nothing
//! but a new server. The sled store is only read (and verified first).

use std::path::Path;

use serde::Serialize;
use sqlx::Connection as _;
use tokio::io::AsyncReadExt as _;

use super::integrity::{be_u64, key_tail, Trees};
use super::postgres::{pg_err, PgStore};
use super::records::{corrupt, decode};
use super::{GroupRecord, LogEntry, SledStore, Store, StoreError, StoreResult, UserRecord};

/// What a transfer copied.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Registered users.
    pub users: u64,
    /// One-time and last-resort KeyPackages.
    pub key_packages: u64,
    /// Groups.
    pub groups: u64,
    /// Log entries.
    pub log_entries: u64,
    /// Read cursors.
    pub cursors: u64,
    /// Welcomes waiting in inboxes.
    pub welcomes: u64,
    /// Commit reports.
    pub reports: u64,
    /// Unexpired bearer tokens (hashes) and challenges, and link requests.
    pub sessions: u64,
    /// Versions of users' device lists.
    pub device_lists: u64,
    /// Encrypted blobs (files of the data directory's `blobs/`).
    pub blobs: u64,
    /// Key-directory records (its keys, roots and akd's records).
    pub kt_records: u64,
}

/// Splits a `user 0x00 rest` key.
fn user_key<'k>(what: &'static str, k: &'k [u8]) -> StoreResult<(String, &'k [u8])> {
    let at = k.iter().position(|b| *b == 0).ok_or_else(|| corrupt(what, "key without a user"))?;
    let user = String::from_utf8(k[..at].to_vec()).map_err(|e| corrupt(what, e))?;
    Ok((user, &k[at + 1..]))
}

fn i64_of(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Db(format!("{v} does not fit the database's BIGINT")))
}

/// Copies everything in `sled`, and the blob files under `blob_root`, into
/// `pg`, which must hold no user and no group yet.
pub async fn sled_to_postgres(sled: &SledStore, blob_root: &Path, pg: &PgStore) -> StoreResult<TransferReport> {
    let mut conn = pg.pool().acquire().await.map_err(pg_err)?;
    let mut tx = conn.begin().await.map_err(pg_err)?;
    let (users, groups): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM groups)")
            .fetch_one(&mut *tx)
            .await
            .map_err(pg_err)?;
    if users + groups > 0 {
        return Err(StoreError::Db(format!(
            "the target database is not empty ({users} users, {groups} groups): migrate into a new database"
        )));
    }
    let t = sled.trees();
    let mut r = TransferReport {
        users: copy_users(t, &mut tx).await?,
        key_packages: copy_key_packages(t, &mut tx).await?,
        ..TransferReport::default()
    };
    let mut max_internal = 0;
    for item in t.groups.iter() {
        let (gid, v) = item?;
        let record: GroupRecord = decode("group", &v)?;
        let (_, next) = sled.load_group(&gid).await?.ok_or_else(|| corrupt("group", "vanished while copying"))?;
        sqlx::query("INSERT INTO groups (group_id, internal_id, record, epoch, next_seq) VALUES ($1, $2, $3, $4, $5)")
            .bind(gid.as_ref())
            .bind(i64_of(record.internal_id)?)
            .bind(v.as_ref())
            .bind(i64_of(record.epoch)?)
            .bind(i64_of(next)?)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        max_internal = max_internal.max(record.internal_id);
        r.groups += 1;
    }
    r.log_entries = copy_log(t, &mut tx).await?;
    r.cursors = copy_cursors(t, &mut tx).await?;
    let (welcomes, max_inbox) = copy_inbox(t, &mut tx).await?;
    r.welcomes = welcomes;
    r.reports = copy_reports(t, &mut tx).await?;
    r.sessions = copy_sessions(t, &mut tx).await?;
    r.device_lists = copy_device_lists(t, &mut tx).await?;
    r.blobs = copy_blobs(blob_root, &mut tx).await?;
    r.kt_records = copy_kt(t, &mut tx).await?;
    // New ids continue after the copied ones (sled's counter is shared by
    // groups and inbox entries, so both start past the larger).
    let next_id = i64_of(max_internal.max(max_inbox).max(sled.next_internal_id().await?))?;
    for seq in ["group_internal_ids", "inbox_ids"] {
        sqlx::query("SELECT setval($1, $2)").bind(seq).bind(next_id).execute(&mut *tx).await.map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(r)
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

async fn copy_users(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    for item in t.users.iter() {
        let (_, v) = item?;
        let user: UserRecord = decode("user", &v)?;
        sqlx::query("INSERT INTO users (name, record) VALUES ($1, $2)")
            .bind(user.name_str())
            .bind(v.as_ref())
            .execute(&mut **tx)
            .await
            .map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

async fn copy_key_packages(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    // Keys sort by user, suite, kind, then upload id: the order is kept.
    for item in t.key_packages.iter() {
        let (k, v) = item?;
        let (user, rest) = user_key("key package", &k)?;
        let (suite, kind) = match rest {
            [a, b, kind, ..] => (i32::from(u16::from_be_bytes([*a, *b])), *kind),
            _ => return Err(corrupt("key package", "short key")),
        };
        let sql = if kind == 0 {
            "INSERT INTO key_packages (user_name, suite, package) VALUES ($1, $2, $3)"
        } else {
            "INSERT INTO last_resort_key_packages (user_name, suite, package) VALUES ($1, $2, $3)"
        };
        sqlx::query(sql).bind(user).bind(suite).bind(v.as_ref()).execute(&mut **tx).await.map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

async fn copy_log(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    for item in t.log.iter() {
        let (k, v) = item?;
        let internal_id = be_u64("log key", &k[..8.min(k.len())])?;
        let seq = be_u64("log key", key_tail(&k))?;
        let (e, _) = LogEntry::decode_chained(seq, &v)?;
        sqlx::query(
            "INSERT INTO log (internal_id, seq, epoch, kind, received_at, message) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(i64_of(internal_id)?)
        .bind(i64_of(seq)?)
        .bind(i64_of(e.epoch)?)
        .bind(i16::from(e.kind.to_u8()))
        .bind(i64_of(e.received_at)?)
        .bind(e.message.as_ref())
        .execute(&mut **tx)
        .await
        .map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

async fn copy_cursors(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    for item in t.cursors.iter() {
        let (k, v) = item?;
        let internal_id = be_u64("cursor", &k[..8.min(k.len())])?;
        let user = String::from_utf8(key_tail(&k).to_vec()).map_err(|e| corrupt("cursor", e))?;
        sqlx::query("INSERT INTO cursors (internal_id, user_name, seq) VALUES ($1, $2, $3)")
            .bind(i64_of(internal_id)?)
            .bind(user)
            .bind(i64_of(be_u64("cursor", &v)?)?)
            .execute(&mut **tx)
            .await
            .map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

/// Returns the count and the highest inbox id.
async fn copy_inbox(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<(u64, u64)> {
    let (mut n, mut max) = (0, 0);
    for item in t.inbox.iter() {
        let (k, v) = item?;
        let (user, id) = user_key("welcome", &k)?;
        let id = be_u64("welcome", id)?;
        sqlx::query("INSERT INTO inbox (user_name, id, entry) VALUES ($1, $2, $3)")
            .bind(user)
            .bind(i64_of(id)?)
            .bind(v.as_ref())
            .execute(&mut **tx)
            .await
            .map_err(pg_err)?;
        (n, max) = (n + 1, max.max(id));
    }
    Ok((n, max))
}

async fn copy_reports(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    for item in t.reports.iter() {
        let (k, v) = item?;
        if k.len() < 16 {
            return Err(corrupt("commit report", "short key"));
        }
        let reporter = String::from_utf8(k[16..].to_vec()).map_err(|e| corrupt("commit report", e))?;
        sqlx::query("INSERT INTO commit_reports (internal_id, seq, reporter, report) VALUES ($1, $2, $3, $4)")
            .bind(i64_of(be_u64("commit report", &k[..8])?)?)
            .bind(i64_of(be_u64("commit report", &k[8..16])?)?)
            .bind(reporter)
            .bind(v.as_ref())
            .execute(&mut **tx)
            .await
            .map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

async fn copy_sessions(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    for (tree, sql, with_device) in [
        (&t.tokens, "INSERT INTO tokens (hash, user_name, expires_at, device) VALUES ($1, $2, $3, $4)", true),
        (&t.challenges, "INSERT INTO challenges (challenge, user_name, expires_at) VALUES ($1, $2, $3)", false),
    ] {
        for item in tree.iter() {
            let (k, v) = item?;
            let rec = super::sled_trait::auth_record(&v)?;
            let mut q = sqlx::query(sql).bind(k.as_ref()).bind(rec.user).bind(i64_of(rec.expires_at)?);
            if with_device {
                q = q.bind(rec.device);
            }
            q.execute(&mut **tx).await.map_err(pg_err)?;
            n += 1;
        }
    }
    for item in t.links.iter() {
        let (k, v) = item?;
        let rec = super::sled_trait::link_record(&v)?;
        sqlx::query("INSERT INTO links (id, user_name, expires_at, request, approval) VALUES ($1, $2, $3, $4, $5)")
            .bind(k.as_ref())
            .bind(rec.user)
            .bind(i64_of(rec.expires_at)?)
            .bind(rec.request)
            .bind(rec.approval)
            .execute(&mut **tx)
            .await
            .map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

async fn copy_device_lists(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let mut n = 0;
    for item in t.device_lists.iter() {
        let (k, v) = item?;
        let (user, version) = user_key("device list", &k)?;
        sqlx::query("INSERT INTO device_lists (user_name, version, list) VALUES ($1, $2, $3)")
            .bind(user)
            .bind(i64_of(be_u64("device list", version)?)?)
            .bind(v.as_ref())
            .execute(&mut **tx)
            .await
            .map_err(pg_err)?;
        n += 1;
    }
    Ok(n)
}

/// Copies the key directory, keys included (clients pinned them): whatever
/// directory the empty target made at a start of its own is replaced.
async fn copy_kt(t: &Trees, tx: &mut Tx<'_>) -> StoreResult<u64> {
    sqlx::query("DELETE FROM kt").execute(&mut **tx).await.map_err(pg_err)?;
    let mut n = 0;
    let mut batch: (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let mut items = t.kt.iter().peekable();
    while let Some(item) = items.next() {
        let (k, v) = item?;
        batch.0.push(k.to_vec());
        batch.1.push(v.to_vec());
        n += 1;
        if batch.0.len() >= 1000 || items.peek().is_none() {
            sqlx::query("INSERT INTO kt (key, value) SELECT * FROM UNNEST($1::bytea[], $2::bytea[])")
                .bind(&batch.0)
                .bind(&batch.1)
                .execute(&mut **tx)
                .await
                .map_err(pg_err)?;
            batch.0.clear();
            batch.1.clear();
        }
    }
    Ok(n)
}

/// Copies the blob files (`<root>/<internal id hex>/<blob id>`) in the
/// PostgreSQL blob store's layout: 1 MiB chunks, then the `blobs` row.
async fn copy_blobs(root: &Path, tx: &mut Tx<'_>) -> StoreResult<u64> {
    let io = |what: &str, e: std::io::Error| StoreError::Db(format!("blob files: {what}: {e}"));
    let Ok(groups) = std::fs::read_dir(root) else { return Ok(0) };
    let mut n = 0;
    for g in groups {
        let g = g.map_err(|e| io("listing", e))?;
        let Ok(internal_id) = u64::from_str_radix(&g.file_name().to_string_lossy(), 16) else { continue };
        for f in std::fs::read_dir(g.path()).map_err(|e| io("listing", e))? {
            let f = f.map_err(|e| io("listing", e))?;
            let id = f.file_name().to_string_lossy().into_owned();
            if !crate::blobs::valid_blob_id(&id) {
                continue; // an interrupted upload's temporary file
            }
            let mut file = tokio::fs::File::open(f.path()).await.map_err(|e| io("opening", e))?;
            let (mut size, mut chunk_no) = (0i64, 0i32);
            loop {
                let mut buf = Vec::with_capacity(1 << 20);
                let read = (&mut file).take(1 << 20).read_to_end(&mut buf).await.map_err(|e| io("reading", e))?;
                if read == 0 {
                    break;
                }
                sqlx::query("INSERT INTO blob_chunks (internal_id, blob_id, n, data) VALUES ($1, $2, $3, $4)")
                    .bind(i64_of(internal_id)?)
                    .bind(&id)
                    .bind(chunk_no)
                    .bind(buf)
                    .execute(&mut **tx)
                    .await
                    .map_err(pg_err)?;
                size += read as i64;
                chunk_no += 1;
            }
            sqlx::query("INSERT INTO blobs (internal_id, blob_id, size) VALUES ($1, $2, $3)")
                .bind(i64_of(internal_id)?)
                .bind(&id)
                .bind(size)
                .execute(&mut **tx)
                .await
                .map_err(pg_err)?;
            n += 1;
        }
    }
    Ok(n)
}
