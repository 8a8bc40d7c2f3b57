//! What a sync reports, as a summary and as events for the app's listener.
//!
//! Grove delivers by polling: the app calls [`GroveClient::sync`](crate::GroveClient::sync)
//! (on a timer, on a push notification, when the app comes to the
//! foreground). Every event of that sync is given to the listener set with
//! [`GroveClient::set_listener`](crate::GroveClient::set_listener), in
//! order, before `sync` returns; the same events are in the returned
//! [`SyncReport`].

use grove_client as gc;

/// Something a sync found that the app may want to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Event {
    /// This device was linked to its user (a new device's first sync).
    Linked {
        /// This device's id.
        device: String,
        /// Groups it joined.
        groups: Vec<String>,
        /// Groups it could not join (`"<id>: <error>"`).
        failed: Vec<String>,
    },
    /// This client joined a group (from a Welcome).
    Joined {
        /// Group id.
        group: String,
    },
    /// New messages arrived (read them with `messages`).
    Messages {
        /// How many.
        count: u64,
    },
    /// This client was removed from a group; its history stays readable.
    Removed {
        /// Group id.
        group: String,
    },
    /// The DS shows less than this client has seen: it lost data or is
    /// lying. Nothing in that group moves until acknowledged.
    ServerRollback {
        /// What was seen.
        detail: String,
    },
    /// Members were shown different commits for one epoch.
    Fork {
        /// Group and epoch.
        detail: String,
    },
    /// This client could not follow a group's log and rejoined it.
    Resynced {
        /// Group id.
        group: String,
        /// Messages it missed.
        missed: u64,
    },
    /// A member sent a commit no member can process.
    BadCommit {
        /// Group, sequence number, committer and reason.
        detail: String,
    },
    /// A group was replaced by a successor group.
    Replaced {
        /// Old group, new group and who created it.
        detail: String,
    },
    /// This client removed from a group the devices of a contact's old
    /// identity (a user who reset theirs, whose new key was accepted).
    OldDevicesRemoved {
        /// Group id.
        group: String,
    },
    /// Someone (or the DS) published an identity key or device list in
    /// this user's name in the key directory: show it prominently, and tell
    /// the user to check their devices.
    KeyTransparencyAlert {
        /// The version and directory epoch, and what is wrong.
        detail: String,
    },
    /// A member's messages carry another key-directory root for an epoch
    /// this client verified: the DS shows members different directories.
    SplitView {
        /// The epoch, the member and both roots.
        detail: String,
    },
    /// A group's log could not be processed; the other groups went on.
    GroupError {
        /// Group and error.
        detail: String,
    },
}

/// What one sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncReport {
    /// New messages stored.
    pub messages: u64,
    /// Groups joined.
    pub joined: Vec<String>,
    /// Groups this client was removed from.
    pub removed: Vec<String>,
    /// Log entries that could not be decrypted and were skipped.
    pub undecryptable: u64,
    /// Every event, in the order the listener received them.
    pub events: Vec<Event>,
}

/// The app's listener for events: implement it in Kotlin, Swift or Python
/// and pass it to [`GroveClient::set_listener`](crate::GroveClient::set_listener).
/// Called on a Tokio worker thread, during `sync`; it must return quickly
/// (post the event to the UI thread) and must not call back into the client.
#[uniffi::export(callback_interface)]
pub trait EventListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: Event);
}

/// The events of a sync (and of the link it completed), in a fixed order.
pub(crate) fn events_of(linked: Option<gc::LinkFinished>, r: &gc::SyncReport) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(l) = linked {
        out.push(Event::Linked { device: l.device, groups: l.joined, failed: l.failed });
    }
    out.extend(r.joined.iter().map(|g| Event::Joined { group: g.clone() }));
    if r.messages > 0 {
        out.push(Event::Messages { count: r.messages as u64 });
    }
    out.extend(r.left.iter().map(|g| Event::Removed { group: g.clone() }));
    out.extend(r.rollbacks.iter().map(|d| Event::ServerRollback { detail: d.clone() }));
    out.extend(r.forks.iter().map(|d| Event::Fork { detail: d.clone() }));
    out.extend(r.resynced.iter().map(|x| Event::Resynced { group: x.group.clone(), missed: x.missed }));
    out.extend(r.bad_commits.iter().map(|d| Event::BadCommit { detail: d.clone() }));
    out.extend(r.successors.iter().map(|d| Event::Replaced { detail: d.clone() }));
    out.extend(r.old_devices_removed.iter().map(|g| Event::OldDevicesRemoved { group: g.clone() }));
    out.extend(r.key_transparency_alerts.iter().map(|d| Event::KeyTransparencyAlert { detail: d.clone() }));
    out.extend(r.split_views.iter().map(|d| Event::SplitView { detail: d.clone() }));
    out.extend(r.errors.iter().map(|d| Event::GroupError { detail: d.clone() }));
    out
}

impl SyncReport {
    pub(crate) fn new(r: &gc::SyncReport, events: Vec<Event>) -> Self {
        Self {
            messages: r.messages as u64,
            joined: r.joined.clone(),
            removed: r.left.clone(),
            undecryptable: r.undecryptable as u64,
            events,
        }
    }
}
