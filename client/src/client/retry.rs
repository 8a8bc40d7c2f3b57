//! Retrying an operation that lost the commit race (409 `stale_epoch`):
//! jittered exponential backoff within a time budget, so that many members
//! racing in one group spread out instead of colliding again in lockstep.

use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

/// Default time budget for redoing an operation after 409s.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// The first pause's upper bound; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(1000);

/// The state of one operation's retries.
#[derive(Debug)]
pub(super) struct Backoff {
    deadline: Instant,
    budget_ms: u64,
    cap: Duration,
    attempts: u32,
}

impl Backoff {
    /// Starts counting: the first attempt is under way.
    pub(super) fn new(budget: Duration) -> Self {
        let deadline = Instant::now().checked_add(budget).unwrap_or_else(|| Instant::now() + DEFAULT_RETRY_BUDGET);
        let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        Backoff { deadline, budget_ms, cap: FIRST_PAUSE, attempts: 1 }
    }

    /// Attempts made so far (the current one included).
    pub(super) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The error of an operation whose budget is spent.
    pub(super) fn exhausted(&self, op: &'static str) -> crate::Error {
        crate::Error::TooManyRetries { op, attempts: self.attempts, budget_ms: self.budget_ms }
    }

    /// After a lost race: sleeps a random time in `[0, cap]` ("full jitter",
    /// the cap doubling each time, never past the deadline) and counts the
    /// next attempt. Returns `false`, without sleeping, once the budget is spent.
    pub(super) async fn pause(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        let cap = self.cap.min(self.deadline - now);
        let pause = rand::rng().random_range(Duration::ZERO..=cap);
        tokio::time::sleep(pause).await;
        self.cap = (self.cap * 2).min(MAX_PAUSE);
        self.attempts += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_stay_within_the_budget_and_then_stop() {
        let budget = Duration::from_secs(3);
        let start = Instant::now();
        let mut b = Backoff::new(budget);
        let mut last = start;
        while b.pause().await {
            let waited = Instant::now() - last;
            assert!(waited <= MAX_PAUSE, "one pause is at most {MAX_PAUSE:?}: {waited:?}");
            last = Instant::now();
        }
        let spent = Instant::now() - start;
        assert!(spent <= budget, "never past the budget: {spent:?}");
        assert!(b.attempts() > 5, "a 3 s budget allows more than 5 attempts: {}", b.attempts());
        assert!(!b.pause().await, "spent stays spent");
    }
}
