//! The sled store's fsync thread (`grove-ds-fsync`): group commit, the
//! flush count that tells which writes are durable ([`FlushClock`]), and the
//! watermark file after a flush.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::heads::HeadTable;
use super::sled_store::{unix_now, FlushObserver, WATERMARK_INTERVAL};
use super::watermark;

/// How long the fsync thread waits for more callers before a flush, when more
/// than one is already waiting (never for a lone caller).
const COMMIT_DELAY: Duration = Duration::from_micros(150);

/// How a caller of `persist` hears that its writes are on disk.
pub(super) type FlushReply = oneshot::Sender<Result<(), String>>;

/// Counts the fsync thread's flushes, so that a caller can tell whether a
/// write it made is durable without a flush of its own (the domain layer
/// makes a whole fsync batch visible at once: one wake-up per follower per
/// batch, not per message).
///
/// A write's mark is the number of flushes begun after it completed; the
/// write is durable once a flush numbered above its mark has completed,
/// since that flush began after the write.
#[derive(Debug, Default)]
pub(super) struct FlushClock {
    started: AtomicU64,
    completed: AtomicU64,
}

impl FlushClock {
    /// The mark of every write that completed before this call. A
    /// read-modify-write, so that the flush that moves `started` past it is
    /// ordered after the caller's writes (it reads from this release).
    pub(super) fn mark(&self) -> u64 {
        self.started.fetch_add(0, Ordering::AcqRel)
    }

    /// Whether the writes behind `mark` are durable.
    pub(super) fn durable(&self, mark: u64) -> bool {
        self.completed.load(Ordering::Acquire) > mark
    }

    fn begin(&self) -> u64 {
        self.started.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn complete(&self, flush: u64) {
        self.completed.fetch_max(flush, Ordering::AcqRel);
    }
}

/// The fsync thread: group commit, then the watermark.
pub(super) struct Flusher {
    pub(super) db: sled::Db,
    pub(super) dir: PathBuf,
    pub(super) heads: Arc<HeadTable>,
    pub(super) observer: Option<FlushObserver>,
    pub(super) clock: Arc<FlushClock>,
}

impl Flusher {
    pub(super) fn run(self, rx: mpsc::Receiver<FlushReply>) {
        let mut written = self.heads.generation();
        let mut last_write = Instant::now();
        loop {
            // With changes the watermark has not seen, wake up in time to write it.
            let wait = if self.heads.generation() != written {
                WATERMARK_INTERVAL.saturating_sub(last_write.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            let mut batch = match rx.recv_timeout(wait) {
                Ok(first) => vec![first],
                Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            // Under concurrency (more than one caller already waiting), wait a
            // moment for the callers that are between their write and their
            // persist, so that one flush serves them too. Asleep rather than
            // in `recv_timeout`: a receiver blocked in the channel is woken
            // by every send (a futex wake and a re-park per caller, 2 % of
            // the DS's CPU); a sleeping one is not, and takes them all after.
            if batch.len() > 1 {
                std::thread::sleep(COMMIT_DELAY);
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
            }
            let generation = self.heads.generation();
            let due = generation != written && last_write.elapsed() >= WATERMARK_INTERVAL;
            let snapshot = if due { self.heads.snapshot(unix_now()).ok() } else { None };
            let start = Instant::now();
            let flush = self.clock.begin();
            let result = self.db.flush().map(|_| ()).map_err(|e| e.to_string());
            if result.is_ok() {
                self.clock.complete(flush);
            }
            if let Some(obs) = &self.observer {
                obs(batch.len(), start.elapsed().as_secs_f64());
            }
            for reply in batch {
                let _ = reply.send(result.clone());
            }
            if let (Some(w), Ok(())) = (snapshot, &result) {
                last_write = Instant::now();
                match watermark::write(&self.dir, &w) {
                    Ok(()) => written = generation,
                    Err(e) => tracing::error!(
                        file = %watermark::path(&self.dir).display(),
                        "cannot write the watermark (retrying in a second): {e}"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FlushClock;

    #[test]
    fn a_write_is_durable_only_after_a_flush_that_began_after_it() {
        let clock = FlushClock::default();
        let first = clock.mark();
        assert!(!clock.durable(first));
        let flush = clock.begin();
        let during = clock.mark(); // written while flush 1 runs: not covered by it
        clock.complete(flush);
        assert!(clock.durable(first));
        assert!(!clock.durable(during));
        let next = clock.begin();
        assert!(!clock.durable(during), "flush 2 has begun, not completed");
        clock.complete(next);
        assert!(clock.durable(during));
    }
}
