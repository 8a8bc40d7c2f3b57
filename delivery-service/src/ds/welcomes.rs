//! The Welcome inbox: each user's pending Welcomes (long-poll), and their
//! acknowledgement. A Welcome appears only once the commit that made it is
//! durable.

use std::time::Duration;

use super::Ds;
use crate::api;
use crate::error::DsError;

impl Ds {
    /// Pending Welcomes of `user`, waiting up to `wait` for one.
    pub async fn welcomes(
        &self,
        user: &str,
        after: u64,
        limit: Option<usize>,
        wait: Duration,
    ) -> Result<api::WelcomesPage, DsError> {
        let limit = self.page_params(limit, wait)?;
        let mut rx = self.welcomes.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            rx.borrow_and_update();
            let pending = self.pending_welcomes.lock().map(|p| p.clone()).unwrap_or_default();
            let owner = user.to_owned();
            let stored = self.store.inbox_after(&owner, after, limit).await?;
            let list: Vec<api::WelcomeOut> = stored
                .into_iter()
                .filter(|w| !pending.contains(&w.id))
                .map(|w| -> Result<api::WelcomeOut, DsError> {
                    Ok(api::WelcomeOut {
                        id: w.id,
                        group_id: api::GroupId::from_bytes(w.group_id.as_slice())?,
                        epoch: w.epoch,
                        message: w.message.into(),
                    })
                })
                .collect::<Result<_, _>>()?;
            if !list.is_empty() || wait.is_zero() || *shutdown.borrow() {
                return Ok(api::WelcomesPage { welcomes: list });
            }
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return Err(DsError::ShuttingDown); } }
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(api::WelcomesPage { welcomes: Vec::new() }),
            }
        }
    }

    /// Acknowledges (deletes) one Welcome.
    pub async fn ack_welcome(&self, user: &str, id: u64) -> Result<(), DsError> {
        if !self.store.inbox_ack(user, id).await? {
            return Err(DsError::UnknownWelcome);
        }
        self.persist().await
    }
}
