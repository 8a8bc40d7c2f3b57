//! Group commit for application messages on PostgreSQL. A group's log has
//! one writer at a time (its `groups` row is locked until the transaction's
//! commit is on disk), so one message per commit would cap a group at one
//! message per WAL flush. Instead, concurrent appends to one group queue up,
//! and whoever takes the group's flush lock writes everything queued as one
//! statement: the row update takes `n` sequence numbers at once, the rows go
//! in with `UNNEST`, one notification names the range. Each caller gets its
//! own sequence number back. The write runs in its own task, so a request
//! that goes away does not cancel its neighbours' write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::oneshot;

use super::postgres::{pg_err, NOTIFY_CHANNEL};
use super::{EntryKind, LogEntry, StoreError, StoreResult};

struct Pending {
    entry: LogEntry,
    /// The epoch the sender's membership was checked at: the batch's ticket.
    ticket: u64,
    reply: oneshot::Sender<StoreResult<u64>>,
}

#[derive(Default)]
struct Queue {
    pending: Mutex<Vec<Pending>>,
    flush: tokio::sync::Mutex<()>,
}

/// The per-group queues of one store.
#[derive(Default)]
pub(super) struct Batcher {
    queues: Mutex<HashMap<u64, Arc<Queue>>>,
}

/// Where a batch goes: the pool and this replica's notification prefix.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) pool: PgPool,
    pub(super) replica: String,
}

fn lock_err() -> StoreError {
    StoreError::Db("append queue lock poisoned".into())
}

impl Batcher {
    /// Appends `entry` (an application message) to group `internal_id`'s
    /// log if the group is still at `ticket`; returns its sequence number.
    pub(super) async fn append(
        &self,
        target: &Target,
        internal_id: u64,
        entry: &LogEntry,
        ticket: u64,
    ) -> StoreResult<u64> {
        let queue = {
            let mut queues = self.queues.lock().map_err(|_| lock_err())?;
            Arc::clone(queues.entry(internal_id).or_default())
        };
        let (reply, mut answer) = oneshot::channel();
        queue.pending.lock().map_err(|_| lock_err())?.push(Pending { entry: entry.clone(), ticket, reply });
        let flushing = queue.flush.lock().await;
        // An earlier holder of the lock may have written this one already.
        match answer.try_recv() {
            Ok(result) => return result,
            Err(oneshot::error::TryRecvError::Closed) => return Err(StoreError::Db("the batch writer stopped".into())),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let batch = std::mem::take(&mut *queue.pending.lock().map_err(|_| lock_err())?);
        let target = target.clone();
        let written = tokio::spawn(write(target, internal_id, batch)).await;
        drop(flushing);
        if let Err(e) = written {
            return Err(StoreError::Db(format!("the batch writer failed: {e}")));
        }
        answer.await.map_err(|_| StoreError::Db("the batch writer dropped an append".into()))?
    }
}

/// Writes a batch as runs of equal tickets, in order, and answers every append.
async fn write(target: Target, internal_id: u64, batch: Vec<Pending>) {
    let mut rest = batch.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut run = vec![first];
        while rest.peek().is_some_and(|p| p.ticket == run[0].ticket) {
            run.extend(rest.next());
        }
        match write_run(&target, internal_id, &run).await {
            Ok(first_seq) => {
                for (i, p) in run.into_iter().enumerate() {
                    let _ = p.reply.send(Ok(first_seq + i as u64));
                }
            }
            Err(e) => {
                for p in run {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One statement for a run of appends with one ticket; the first seq taken.
async fn write_run(target: &Target, internal_id: u64, run: &[Pending]) -> StoreResult<u64> {
    let big = |v: u64| i64::try_from(v).map_err(|_| StoreError::Db(format!("{v} does not fit BIGINT")));
    let n = big(run.len() as u64)?;
    let epochs = run.iter().map(|p| big(p.entry.epoch)).collect::<StoreResult<Vec<i64>>>()?;
    let received = run.iter().map(|p| big(p.entry.received_at)).collect::<StoreResult<Vec<i64>>>()?;
    let messages: Vec<&[u8]> = run.iter().map(|p| p.entry.message.as_ref()).collect();
    let kind = EntryKind::Application.to_u8();
    let first: Option<i64> = sqlx::query_scalar(
        "WITH g AS (UPDATE groups SET next_seq = next_seq + $3 \
                    WHERE internal_id = $1 AND epoch = $2 RETURNING next_seq - $3 AS first, group_id), \
              i AS (INSERT INTO log (internal_id, seq, epoch, kind, received_at, message) \
                    SELECT $1, g.first + t.o - 1, t.e, $4, t.r, t.m FROM g, \
                    UNNEST($5::bigint[], $6::bigint[], $7::bytea[]) WITH ORDINALITY AS t(e, r, m, o)) \
         SELECT g.first FROM g, \
                LATERAL (SELECT pg_notify($8, $9 || g.first || ' ' || (g.first + $3 - 1) || ' ' \
                                              || encode(g.group_id, 'hex'))) AS n",
    )
    .bind(big(internal_id)?)
    .bind(big(run[0].ticket)?)
    .bind(n)
    .bind(i16::from(kind))
    .bind(epochs)
    .bind(received)
    .bind(messages)
    .bind(NOTIFY_CHANNEL)
    .bind(format!("{} {kind} ", target.replica))
    .fetch_optional(&target.pool)
    .await
    .map_err(pg_err)?;
    match first {
        Some(s) => u64::try_from(s).map_err(|_| StoreError::Db(format!("negative seq {s}"))),
        None => Err(StoreError::Conflict(format!(
            "group {internal_id} is no longer at epoch {} (a commit came first)",
            run[0].ticket
        ))),
    }
}
