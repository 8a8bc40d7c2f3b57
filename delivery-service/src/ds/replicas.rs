//! Following other replicas on a shared store (PostgreSQL): their appends
//! move this replica's view of a group on, or reload it, so that long-polls
//! and streams here wake up; a lost notification connection reloads every
//! cached group. Correctness never depends on a notification arriving: an
//! append on a stale view is refused by the store and retried after a reload
//! (`log`), and refusals that a stale view could cause are re-checked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::runtime::GroupRt;
use super::Ds;
use crate::store::{EntryKind, StoreEvent};

impl Ds {
    /// Follows the store's change events until shutdown (spawned by the
    /// daemon for a shared store).
    pub async fn follow(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<StoreEvent>) {
        let mut shutdown = self.shutdown_signal();
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                _ = shutdown.changed() => return,
            };
            let Some(event) = event else { return };
            self.metrics.notifications.inc();
            match event {
                StoreEvent::Appended { group_id, first, seq, kind } => {
                    if kind == EntryKind::Commit {
                        // A commit may have put Welcomes in inboxes polled here.
                        self.welcomes.send_modify(|v| *v += 1);
                    }
                    let Ok(Some(rt)) = self.cached_group(&group_id) else { continue };
                    if kind == EntryKind::Application && self.pull_remote(&rt, first, seq).await {
                        continue;
                    }
                    self.spawn_refresh(rt);
                }
                StoreEvent::Missed => {
                    self.welcomes.send_modify(|v| *v += 1);
                    let cached: Vec<Arc<GroupRt>> =
                        self.groups.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
                    for rt in cached {
                        self.spawn_refresh(rt);
                    }
                }
            }
        }
    }

    /// Reloads a group in the background; one reload at a time per group
    /// (an event that arrives during one starts another afterwards).
    fn spawn_refresh(self: &Arc<Self>, rt: Arc<GroupRt>) {
        if rt.refresh_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let ds = Arc::clone(self);
        tokio::spawn(async move {
            rt.refresh_pending.store(false, Ordering::SeqCst);
            if let Err(e) = ds.refresh_unlocked(&rt).await {
                tracing::warn!(error = %e, "reloading a group another replica changed failed");
            }
        });
    }
}

impl Ds {
    /// Application messages `first..=last` another replica appended: the
    /// view moves on without a reload when nothing between what this replica
    /// has seen and `last` changes the group's state (the gap may hold this
    /// replica's own appends still completing, or messages of a third
    /// replica). The new entries are read once into the tail when members
    /// here follow the group, so that their long-polls and streams do not
    /// each read them from the database. False if a reload is needed.
    async fn pull_remote(&self, rt: &GroupRt, first: u64, last: u64) -> bool {
        let from = match rt.view() {
            Ok(view) if view.next_seq > last => return true,
            Ok(view) => view.next_seq.min(first),
            Err(_) => return false,
        };
        let following = rt.visible.receiver_count() > 0;
        if following || from < first {
            let want = usize::try_from(last - from + 1).unwrap_or(usize::MAX);
            let Ok(entries) = self.store.fetch_after(rt.internal_id, from - 1, last, want).await else { return false };
            if entries.iter().any(|e| e.kind != EntryKind::Application) {
                return false;
            }
            if following {
                for e in entries {
                    rt.remember(e);
                }
            }
        }
        let Ok(mut view) = rt.view() else { return false };
        view.next_seq = view.next_seq.max(last + 1);
        drop(view);
        rt.advance_visible(last);
        true
    }
}
