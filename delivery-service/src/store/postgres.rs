//! The PostgreSQL [`Store`], for several `grove-ds` replicas on one database.
//!
//! Every write is one committed transaction before the method returns
//! (`synchronous_commit = on` is set on every connection), so
//! [`Store::persist`] has nothing left to do. Records are TLS-encoded exactly
//! as in the sled store; the schema is in `pg/*.sql`, applied by versioned
//! migrations at open ([`PgStore::open`]; sqlx's migrator, under its advisory
//! lock, so replicas starting together apply each migration once).
//!
//! One commit per epoch across replicas: `groups.next_seq` is the ticket of a
//! group's log. An append names the sequence number it expects, and the row
//! update `WHERE next_seq = $expected` lets exactly one writer take it; the
//! others get [`StoreError::Conflict`], reload the group and validate again.
//!
//! Push across replicas: every append sends `NOTIFY grove_ds_log` in its own
//! transaction (delivered on commit). [`PgStore::open`] starts a listener that
//! turns other replicas' notifications into [`StoreEvent`]s, and sends
//! [`StoreEvent::Missed`] whenever it (re)connects, so that a replica re-reads
//! what it may have missed while not listening.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::Row as _;
use tokio::sync::mpsc;

use super::pg_batch::{Batcher, Target};
use super::records::{corrupt, decode, encode};
use super::{pg_auth, pg_kt};
use super::{
    Addressed, EntryKind, GroupRecord, KeyPackageBatch, KeyPackageCounts, KeyPackageKind, LogEntry, RegisterOutcome,
    Store, StoreError, StoreEvent, StoreResult, TokenRecord, UserRecord, WelcomeEntry,
};

/// The channel of log notifications.
pub const NOTIFY_CHANNEL: &str = "grove_ds_log";

/// How long a request waits for a pooled connection before it fails with
/// [`StoreError::Unavailable`] (a database that is down must not hang requests).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The schema migrations, in order. Never edit one that has shipped: add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial schema", include_str!("pg/0001_init.sql")),
    (2, "blobs", include_str!("pg/0002_blobs.sql")),
    (3, "device lists", include_str!("pg/0003_devices.sql")),
    (4, "link requests", include_str!("pg/0004_links.sql")),
    (5, "key transparency", include_str!("pg/0005_kt.sql")),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 5;

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, d, sql)| Migration::new(*v, (*d).into(), MigrationType::Simple, (*sql).into(), false))
                .collect())
        })
    }
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    replica: String,
    events: Mutex<Option<mpsc::UnboundedReceiver<StoreEvent>>>,
    batcher: Batcher,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("replica", &self.replica).finish_non_exhaustive()
    }
}

/// The store error of a database error: unreachable or restarting is
/// [`StoreError::Unavailable`], a unique violation a conflict.
pub(crate) fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        // A connection that broke mid-query shows up as I/O or protocol errors.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(d.to_string()),
        // Class 08 (connection exception), 57P01..03 (shutting down, cannot connect now).
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Db(e.to_string()),
    }
}

pub(super) fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Db(format!("{v} does not fit the database's BIGINT")))
}

pub(super) fn to_u64(what: &'static str, v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| corrupt(what, format!("negative value {v}")))
}

/// Applies every migration this build knows that the database lacks.
pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let migrator = Migrator::new(Embedded).await.map_err(|e| StoreError::Db(format!("loading migrations: {e}")))?;
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => {
            StoreError::Version { found: u32::try_from(v).unwrap_or(u32::MAX), supported: SCHEMA_VERSION as u32 }
        }
        sqlx::migrate::MigrateError::Execute(e) => pg_err(e),
        e => StoreError::Db(format!("migrating the schema: {e}")),
    })
}

impl PgStore {
    /// Connects to `url` with a pool of `max_connections`, migrates the
    /// schema, and starts listening to other replicas' changes.
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options: PgConnectOptions =
            url.parse().map_err(|e| StoreError::Db(format!("the database URL is not valid: {e}")))?;
        let options = options.options([("synchronous_commit", "on")]).application_name("grove-ds");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(pg_err)?;
        migrate(&pool).await?;
        let replica = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(listen(pool.clone(), replica.clone(), tx));
        Ok(PgStore { pool, replica, events: Mutex::new(Some(rx)), batcher: Batcher::default() })
    }

    /// The pool (for tools and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A notification: `replica kind first last group-id-hex`.
    fn payload(&self, kind: EntryKind, seq: u64, group_id: &[u8]) -> String {
        format!("{} {} {seq} {seq} {}", self.replica, kind.to_u8(), hex::encode(group_id))
    }

    async fn next_seq_conflict(&self, internal_id: u64, seq: u64) -> StoreError {
        let next: Option<i64> = sqlx::query_scalar("SELECT next_seq FROM groups WHERE internal_id = $1")
            .bind(internal_id as i64)
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten();
        match next {
            Some(n) => StoreError::Conflict(format!("log sequence number {seq} is not the next one ({n})")),
            None => StoreError::Conflict(format!("group {internal_id} has no log")),
        }
    }
}

/// Listens to log notifications until the DS drops the receiver; reconnects
/// after any loss, and then reports [`StoreEvent::Missed`].
async fn listen(pool: PgPool, replica: String, tx: mpsc::UnboundedSender<StoreEvent>) {
    let mut failing = false;
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                }
                failing = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if failing {
            tracing::info!("listening for other replicas' changes again");
        }
        failing = false;
        // Anything may have happened while nobody listened.
        if tx.send(StoreEvent::Missed).is_err() {
            return;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(ev) = parse_payload(n.payload(), &replica) {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the notification connection failed; reconnecting");
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// A notification from another replica: `replica kind first last
/// group-id-hex` (a batch of application messages names its range).
fn parse_payload(payload: &str, own: &str) -> Option<StoreEvent> {
    let mut parts = payload.split(' ');
    let (replica, kind, first, last, gid) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if replica == own {
        return None;
    }
    let kind = EntryKind::from_u8(kind.parse().ok()?)?;
    let (first, seq) = (first.parse().ok()?, last.parse().ok()?);
    Some(StoreEvent::Appended { group_id: hex::decode(gid).ok()?, first, seq, kind })
}

fn row_entry(row: &sqlx::postgres::PgRow) -> StoreResult<LogEntry> {
    let get = |e: sqlx::Error| corrupt("log entry", e);
    let kind: i16 = row.try_get("kind").map_err(get)?;
    let kind = u8::try_from(kind)
        .ok()
        .and_then(EntryKind::from_u8)
        .ok_or_else(|| corrupt("log entry", format!("unknown kind {kind}")))?;
    let message: Vec<u8> = row.try_get("message").map_err(get)?;
    Ok(LogEntry {
        seq: to_u64("log entry", row.try_get("seq").map_err(get)?)?,
        epoch: to_u64("log entry", row.try_get("epoch").map_err(get)?)?,
        kind,
        received_at: to_u64("log entry", row.try_get("received_at").map_err(get)?)?,
        message: message.into(),
    })
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn register_user(&self, user: &UserRecord) -> StoreResult<RegisterOutcome> {
        let name = user.name_str();
        let inserted = sqlx::query("INSERT INTO users (name, record) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(&name)
            .bind(encode("user", user)?)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?
            .rows_affected();
        if inserted == 1 {
            return Ok(RegisterOutcome::Created);
        }
        match self.user(&name).await? {
            Some(e) if e.credential == user.credential && e.signature_key == user.signature_key => {
                Ok(RegisterOutcome::AlreadyRegistered)
            }
            Some(_) => Ok(RegisterOutcome::NameTaken),
            None => Err(StoreError::Conflict("user registration raced with a deletion".into())),
        }
    }

    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        let v: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_err)?;
        v.map(|v| decode("user", &v)).transpose()
    }

    async fn put_key_packages(
        &self,
        user: &str,
        batch: KeyPackageBatch<'_>,
        cap: u64,
    ) -> StoreResult<KeyPackageCounts> {
        let suite = i32::from(batch.suite);
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        // One uploader per user and suite at a time, so the cap holds.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), $2)")
            .bind(user)
            .bind(suite)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM key_packages WHERE user_name = $1 AND suite = $2")
            .bind(user)
            .bind(suite)
            .fetch_one(&mut *tx)
            .await
            .map_err(pg_err)?;
        let total = super::check_key_package_cap(to_u64("key package", existing)?, batch.one_time.len(), cap)?;
        for kp in batch.one_time {
            sqlx::query("INSERT INTO key_packages (user_name, suite, package) VALUES ($1, $2, $3)")
                .bind(user)
                .bind(suite)
                .bind(kp.as_slice())
                .execute(&mut *tx)
                .await
                .map_err(pg_err)?;
        }
        if let Some(lr) = batch.last_resort {
            sqlx::query(
                "INSERT INTO last_resort_key_packages (user_name, suite, package) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_name, suite) DO UPDATE SET package = EXCLUDED.package",
            )
            .bind(user)
            .bind(suite)
            .bind(lr)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        }
        let last_resort: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM last_resort_key_packages WHERE user_name = $1 AND suite = $2)",
        )
        .bind(user)
        .bind(suite)
        .fetch_one(&mut *tx)
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(KeyPackageCounts { one_time: total, last_resort })
    }

    async fn claim_key_package(&self, user: &str, suite: u16) -> StoreResult<Option<(Vec<u8>, KeyPackageKind)>> {
        let suite = i32::from(suite);
        // SKIP LOCKED: concurrent claimers each take a different package.
        let one: Option<Vec<u8>> = sqlx::query_scalar(
            "DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages WHERE user_name = $1 AND suite = $2 \
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING package",
        )
        .bind(user)
        .bind(suite)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_err)?;
        if let Some(kp) = one {
            return Ok(Some((kp, KeyPackageKind::OneTime)));
        }
        let lr: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT package FROM last_resort_key_packages WHERE user_name = $1 AND suite = $2")
                .bind(user)
                .bind(suite)
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_err)?;
        Ok(lr.map(|kp| (kp, KeyPackageKind::LastResort)))
    }

    async fn key_package_counts(&self, user: &str, suite: u16) -> StoreResult<KeyPackageCounts> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM key_packages WHERE user_name = $1 AND suite = $2) AS n, \
             EXISTS (SELECT 1 FROM last_resort_key_packages WHERE user_name = $1 AND suite = $2) AS lr",
        )
        .bind(user)
        .bind(i32::from(suite))
        .fetch_one(&self.pool)
        .await
        .map_err(pg_err)?;
        let n: i64 = row.try_get("n").map_err(pg_err)?;
        Ok(KeyPackageCounts { one_time: to_u64("key package", n)?, last_resort: row.try_get("lr").map_err(pg_err)? })
    }

    async fn create_group(&self, record: &GroupRecord) -> StoreResult<bool> {
        let n = sqlx::query(
            "INSERT INTO groups (group_id, internal_id, record, epoch, next_seq) VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(record.group_id.as_slice())
        .bind(to_i64(record.internal_id)?)
        .bind(encode("group", record)?)
        .bind(to_i64(record.epoch)?)
        .execute(&self.pool)
        .await
        .map_err(pg_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn next_internal_id(&self) -> StoreResult<u64> {
        let id: i64 =
            sqlx::query_scalar("SELECT nextval('group_internal_ids')").fetch_one(&self.pool).await.map_err(pg_err)?;
        to_u64("group id sequence", id)
    }

    async fn load_group(&self, group_id: &[u8]) -> StoreResult<Option<(GroupRecord, u64)>> {
        let row = sqlx::query("SELECT record, next_seq FROM groups WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(pg_err)?;
        let Some(row) = row else { return Ok(None) };
        let record: Vec<u8> = row.try_get("record").map_err(pg_err)?;
        let next: i64 = row.try_get("next_seq").map_err(pg_err)?;
        Ok(Some((decode("group", &record)?, to_u64("group", next)?)))
    }

    async fn group_ids(&self) -> StoreResult<Vec<Vec<u8>>> {
        sqlx::query_scalar("SELECT group_id FROM groups").fetch_all(&self.pool).await.map_err(pg_err)
    }

    async fn append_commit(
        &self,
        record: &GroupRecord,
        entry: &LogEntry,
        welcomes: &[Addressed],
    ) -> StoreResult<(u64, Vec<u64>)> {
        let id = to_i64(record.internal_id)?;
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        // The row lock: one commit per (group, epoch), and the next seq.
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT next_seq, epoch FROM groups WHERE internal_id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(pg_err)?;
        let Some((next, epoch)) = row else {
            return Err(StoreError::Conflict(format!("group {} has no log", record.internal_id)));
        };
        let epoch = to_u64("group", epoch)?;
        if epoch != entry.epoch {
            return Err(super::sled_store::epoch_moved(epoch, entry.epoch));
        }
        let seq = to_u64("group", next)?;
        let mut record = record.clone();
        for r in record.removed.iter_mut().filter(|r| r.seq == entry.seq) {
            r.seq = seq;
        }
        sqlx::query("UPDATE groups SET next_seq = $2 + 1, record = $3, epoch = $4 WHERE internal_id = $1")
            .bind(id)
            .bind(next)
            .bind(encode("group", &record)?)
            .bind(to_i64(record.epoch)?)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        let entry = LogEntry { seq, ..entry.clone() };
        insert_entry(&mut tx, id, &entry).await?;
        let mut ids = Vec::with_capacity(welcomes.len());
        for (user, w) in welcomes {
            let mut w = w.clone();
            w.id = 0;
            let wid: i64 = sqlx::query_scalar(
                "INSERT INTO inbox (user_name, id, entry) VALUES ($1, nextval('inbox_ids'), $2) RETURNING id",
            )
            .bind(user)
            .bind(encode("welcome", &w)?)
            .fetch_one(&mut *tx)
            .await
            .map_err(pg_err)?;
            ids.push(to_u64("inbox", wid)?);
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(self.payload(entry.kind, seq, record.group_id.as_slice()))
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok((seq, ids))
    }

    async fn append_message(
        &self,
        internal_id: u64,
        entry: &LogEntry,
        new_state: Option<&GroupRecord>,
    ) -> StoreResult<()> {
        let state = new_state.map(|r| encode("group", r)).transpose()?;
        // One statement (one round trip, one implicit transaction): take the
        // ticket, insert the entry, notify.
        let done: Option<i64> = sqlx::query_scalar(
            "WITH g AS (UPDATE groups SET next_seq = $2 + 1, record = COALESCE($7::bytea, record) \
                        WHERE internal_id = $1 AND next_seq = $2 RETURNING group_id), \
                  i AS (INSERT INTO log (internal_id, seq, epoch, kind, received_at, message) \
                        SELECT $1, $2, $3, $4, $5, $6 FROM g RETURNING seq) \
             SELECT i.seq, pg_notify($8, $9 || encode(g.group_id, 'hex')) FROM i, g",
        )
        .bind(to_i64(internal_id)?)
        .bind(to_i64(entry.seq)?)
        .bind(to_i64(entry.epoch)?)
        .bind(i16::from(entry.kind.to_u8()))
        .bind(to_i64(entry.received_at)?)
        .bind(entry.message.as_ref())
        .bind(state)
        .bind(NOTIFY_CHANNEL)
        .bind(self.payload(entry.kind, entry.seq, &[]))
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_err)?;
        match done {
            Some(_) => Ok(()),
            None => Err(self.next_seq_conflict(internal_id, entry.seq).await),
        }
    }

    async fn append_proposal(&self, base: &GroupRecord, record: &GroupRecord, entry: &LogEntry) -> StoreResult<u64> {
        // The stored state itself is the ticket: application messages of
        // other replicas may come in between, another state change may not.
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH g AS (UPDATE groups SET next_seq = next_seq + 1, record = $6 \
                        WHERE internal_id = $1 AND record = $7 RETURNING next_seq - 1 AS seq, group_id), \
                  i AS (INSERT INTO log (internal_id, seq, epoch, kind, received_at, message) \
                        SELECT $1, g.seq, $2, $3, $4, $5 FROM g RETURNING seq) \
             SELECT i.seq, pg_notify($8, $9 || i.seq || ' ' || i.seq || ' ' || encode(g.group_id, 'hex')) FROM i, g",
        )
        .bind(to_i64(record.internal_id)?)
        .bind(to_i64(entry.epoch)?)
        .bind(i16::from(entry.kind.to_u8()))
        .bind(to_i64(entry.received_at)?)
        .bind(entry.message.as_ref())
        .bind(encode("group", record)?)
        .bind(encode("group", base)?)
        .bind(NOTIFY_CHANNEL)
        .bind(format!("{} {} ", self.replica, entry.kind.to_u8()))
        .fetch_optional(&self.pool)
        .await
        .map_err(pg_err)?;
        match seq {
            Some(s) => to_u64("log entry", s),
            None => Err(StoreError::Conflict(format!(
                "the state of group {} changed since the proposal was checked",
                record.internal_id
            ))),
        }
    }

    async fn append_application(&self, internal_id: u64, entry: &LogEntry, epoch: u64) -> StoreResult<u64> {
        // Batched with the group's other concurrent appends (`pg_batch`).
        let target = Target { pool: self.pool.clone(), replica: self.replica.clone() };
        self.batcher.append(&target, internal_id, entry, epoch).await
    }

    async fn fetch_after(&self, internal_id: u64, after: u64, up_to: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        if after >= up_to || limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT seq, epoch, kind, received_at, message FROM log \
             WHERE internal_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(to_i64(internal_id)?)
        .bind(to_i64(after)?)
        .bind(to_i64(up_to)?)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(pg_err)?;
        rows.iter().map(row_entry).collect()
    }

    async fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> StoreResult<u64> {
        let c: i64 = sqlx::query_scalar(
            "INSERT INTO cursors (internal_id, user_name, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (internal_id, user_name) DO UPDATE SET seq = GREATEST(cursors.seq, EXCLUDED.seq) \
             RETURNING seq",
        )
        .bind(to_i64(internal_id)?)
        .bind(user)
        .bind(to_i64(seq)?)
        .fetch_one(&self.pool)
        .await
        .map_err(pg_err)?;
        to_u64("cursor", c)
    }

    async fn cursors(&self, internal_id: u64) -> StoreResult<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT user_name, seq FROM cursors WHERE internal_id = $1")
            .bind(to_i64(internal_id)?)
            .fetch_all(&self.pool)
            .await
            .map_err(pg_err)?;
        rows.into_iter().map(|(u, s)| Ok((u, to_u64("cursor", s)?))).collect()
    }

    async fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> StoreResult<u64> {
        // Entries go in log order up to the first one that is kept: the
        // first with seq > through received at or after the cutoff.
        let n: i64 = sqlx::query_scalar(
            "WITH keep AS (SELECT min(seq) AS s FROM log WHERE internal_id = $1 AND seq > $2 AND received_at >= $3), \
                  d AS (DELETE FROM log WHERE internal_id = $1 \
                        AND seq < COALESCE((SELECT s FROM keep), 9223372036854775807) RETURNING seq), \
                  r AS (DELETE FROM commit_reports WHERE internal_id = $1 AND seq <= (SELECT max(seq) FROM d)) \
             SELECT count(*) FROM d",
        )
        .bind(to_i64(internal_id)?)
        .bind(to_i64(through)?)
        .bind(to_i64(received_before)?)
        .fetch_one(&self.pool)
        .await
        .map_err(pg_err)?;
        to_u64("prune count", n)
    }

    async fn add_commit_report(&self, internal_id: u64, seq: u64, reporter: &str, report: &[u8]) -> StoreResult<u64> {
        let (id, seq) = (to_i64(internal_id)?, to_i64(seq)?);
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        sqlx::query(
            "INSERT INTO commit_reports (internal_id, seq, reporter, report) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (internal_id, seq, reporter) DO UPDATE SET report = EXCLUDED.report",
        )
        .bind(id)
        .bind(seq)
        .bind(reporter)
        .bind(report)
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM commit_reports WHERE internal_id = $1 AND seq = $2")
            .bind(id)
            .bind(seq)
            .fetch_one(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        to_u64("report count", n)
    }

    async fn message_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM log").fetch_one(&self.pool).await.map_err(pg_err)?;
        to_u64("message count", n)
    }

    async fn inbox_after(&self, user: &str, after: u64, limit: usize) -> StoreResult<Vec<WelcomeEntry>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, entry FROM inbox WHERE user_name = $1 AND id > $2 ORDER BY id LIMIT $3")
                .bind(user)
                .bind(to_i64(after)?)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(pg_err)?;
        rows.into_iter()
            .map(|(id, e)| {
                let mut w: WelcomeEntry = decode("welcome", &e)?;
                w.id = to_u64("inbox", id)?;
                Ok(w)
            })
            .collect()
    }

    async fn inbox_ack(&self, user: &str, id: u64) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM inbox WHERE user_name = $1 AND id = $2")
            .bind(user)
            .bind(to_i64(id)?)
            .execute(&self.pool)
            .await
            .map_err(pg_err)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn put_challenge(&self, challenge: &[u8; 32], user: &str, expires_at: u64) -> StoreResult<()> {
        pg_auth::put_challenge(&self.pool, challenge, user, expires_at).await
    }

    async fn take_challenge(&self, challenge: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        pg_auth::take_challenge(&self.pool, challenge).await
    }

    async fn put_token(&self, hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        pg_auth::put_token(&self.pool, hash, token).await
    }

    async fn token(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        pg_auth::token(&self.pool, hash).await
    }

    async fn append_device_list(&self, user: &str, version: u64, list: &[u8]) -> StoreResult<bool> {
        pg_auth::append_device_list(&self.pool, user, version, list).await
    }

    async fn device_lists(&self, user: &str, after: u64) -> StoreResult<Vec<Vec<u8>>> {
        pg_auth::device_lists(&self.pool, user, after).await
    }

    async fn latest_device_list(&self, user: &str) -> StoreResult<Option<Vec<u8>>> {
        pg_auth::latest_device_list(&self.pool, user).await
    }

    async fn reset_user(&self, user: &UserRecord, first_list: &[u8]) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        let name = user.name_str();
        let n = sqlx::query("UPDATE users SET record = $2 WHERE name = $1")
            .bind(&name)
            .bind(encode("user", user)?)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM device_lists WHERE user_name = $1")
            .bind(&name)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        sqlx::query("INSERT INTO device_lists (user_name, version, list) VALUES ($1, 1, $2)")
            .bind(&name)
            .bind(first_list)
            .execute(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }

    async fn put_link(&self, id: &[u8; 16], link: &super::LinkRecord) -> StoreResult<bool> {
        pg_auth::put_link(&self.pool, id, link).await
    }

    async fn link(&self, id: &[u8; 16]) -> StoreResult<Option<super::LinkRecord>> {
        pg_auth::link(&self.pool, id).await
    }

    async fn approve_link(&self, id: &[u8; 16], approval: &[u8]) -> StoreResult<bool> {
        pg_auth::approve_link(&self.pool, id, approval).await
    }

    async fn prune_auth(&self, now: u64) -> StoreResult<u64> {
        pg_auth::prune_auth(&self.pool, now).await
    }

    async fn user_names(&self) -> StoreResult<Vec<String>> {
        pg_kt::user_names(&self.pool).await
    }

    async fn kt_get(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        pg_kt::get(&self.pool, keys).await
    }

    async fn kt_put(&self, records: &[(Vec<u8>, Vec<u8>)]) -> StoreResult<()> {
        pg_kt::put(&self.pool, records).await
    }

    async fn kt_put_absent(&self, key: &[u8], value: &[u8]) -> StoreResult<Vec<u8>> {
        pg_kt::put_absent(&self.pool, key, value).await
    }

    async fn kt_scan(&self, prefix: &[u8]) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        pg_kt::scan(&self.pool, prefix).await
    }

    async fn kt_publish_lock(&self) -> StoreResult<super::KtPublishLock> {
        pg_kt::publish_lock(&self.pool).await
    }

    async fn persist(&self) -> StoreResult<()> {
        // Every write was committed (synchronous_commit = on) before it returned.
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    fn take_events(&self) -> Option<mpsc::UnboundedReceiver<StoreEvent>> {
        self.events.lock().ok()?.take()
    }
}

/// Inserts a log entry inside a transaction.
async fn insert_entry(tx: &mut sqlx::PgConnection, internal_id: i64, entry: &LogEntry) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO log (internal_id, seq, epoch, kind, received_at, message) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(internal_id)
    .bind(to_i64(entry.seq)?)
    .bind(to_i64(entry.epoch)?)
    .bind(i16::from(entry.kind.to_u8()))
    .bind(to_i64(entry.received_at)?)
    .bind(entry.message.as_ref())
    .execute(tx)
    .await
    .map_err(pg_err)?;
    Ok(())
}
