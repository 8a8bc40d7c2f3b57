//! [`GroveClient`]: one client home, and the calls on it for identity,
//! devices, groups, messages and contacts (resources are in `resources.rs`).
//!
//! Async calls run on the Tokio runtime UniFFI keeps for the library; Kotlin
//! sees `suspend` functions, Swift `async` ones, Python coroutines. The calls
//! that are not async only read the local store and return at once; they
//! are safe to call from any thread, but not from the event listener.

use std::sync::{Arc, Mutex, PoisonError};

use grove_client::Client;

use crate::events::{events_of, Event, EventListener, SyncReport};
use crate::types::{
    ClientOptions, CommitOutcome, Contact, Device, Group, LinkApproval, LinkCodes, Member, Message, RevokeOutcome,
    SafetyNumber, WhoAmI,
};
use crate::{GroveError, Result};

/// One client home: a user's device. Every call is safe from any thread;
/// calls that change state run one at a time.
#[derive(uniffi::Object)]
pub struct GroveClient {
    /// `None` only while a link completes (which needs the client by value).
    inner: Mutex<Option<Arc<Client>>>,
    listener: Mutex<Option<Arc<dyn EventListener>>>,
}

impl std::fmt::Debug for GroveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroveClient").finish_non_exhaustive()
    }
}

impl GroveClient {
    pub(crate) fn wrap(client: Client) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(Some(Arc::new(client))), listener: Mutex::new(None) })
    }

    /// The `grove_client::Client` behind this handle, for one call (for
    /// Rust code that embeds this crate; not exported to other languages).
    pub fn client(&self) -> Result<Arc<Client>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(busy)
    }

    /// Completes a pending link (a new device's first sync): `None` when
    /// none was pending.
    async fn finish_link(&self) -> Result<Option<grove_client::LinkFinished>> {
        let taken = {
            let mut slot = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.as_ref() {
                Some(c) if c.link_pending().is_some() => slot.take(),
                Some(_) => return Ok(None),
                None => return Err(busy()),
            }
        };
        let Some(arc) = taken else { return Err(busy()) };
        let client = match Arc::try_unwrap(arc) {
            Ok(c) => c,
            Err(arc) => {
                // Another call is still using it: put it back and let the app retry.
                *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = Some(arc);
                return Err(busy());
            }
        };
        let home = client.home().to_path_buf();
        let key = client.store_key().cloned();
        let (result, client) = match client.finish_link().await {
            Ok((c, linked)) => (Ok(linked), c),
            // The link failed (refused, network): the home is unchanged; reopen it.
            Err(e) => (Err(GroveError::from(e)), Client::open_with_key(&home, key)?),
        };
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(client));
        result
    }

    fn notify(&self, events: &[Event]) {
        let listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(l) = listener {
            for e in events {
                l.on_event(e.clone());
            }
        }
    }
}

fn busy() -> GroveError {
    GroveError::new("busy", "the client is completing a device link; retry the call in a moment", true)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Creates a client home at `home` (a directory in the app's private
/// files), registers the user with the DS (with `options.login_token` when
/// the DS requires the app's login) and publishes KeyPackages.
#[uniffi::export(async_runtime = "tokio")]
pub async fn create_client(home: String, options: ClientOptions) -> Result<Arc<GroveClient>> {
    let config = options.config()?;
    Ok(GroveClient::wrap(Client::create(&home, config).await?))
}

/// Opens an existing client home (upgrading its format if it was written
/// by an earlier release). Local only: works offline. An encrypted home
/// needs its `store_key` (`store_key_required` without it,
/// `wrong_store_key` with another; nothing is changed then); a home in
/// clear opened with a key is encrypted under it.
#[uniffi::export]
pub fn open_client(home: String, store_key: Option<Vec<u8>>) -> Result<Arc<GroveClient>> {
    let key = crate::types::store_key(store_key.as_deref())?;
    Ok(GroveClient::wrap(Client::open_with_key(&home, key)?))
}

/// A new random store key (32 bytes) for [`ClientOptions::store_key`]: keep
/// it in the iOS Keychain or the Android Keystore, never beside the home.
#[uniffi::export]
pub fn new_store_key() -> Vec<u8> {
    grove_client::StoreKey::generate().as_bytes().to_vec()
}

/// Starts linking a new device to an existing user: creates the home and
/// posts the link request. Show [`GroveClient::link_pending`]'s code (or a
/// QR code of it) to be approved on a device already linked, then call
/// [`GroveClient::sync`] until it reports [`Event::Linked`].
#[uniffi::export(async_runtime = "tokio")]
pub async fn request_link(home: String, options: ClientOptions, label: String) -> Result<Arc<GroveClient>> {
    let config = options.config()?;
    let (client, _codes) = Client::request_link(&home, config, &label).await?;
    Ok(GroveClient::wrap(client))
}

#[uniffi::export(async_runtime = "tokio")]
impl GroveClient {
    /// Who this client is.
    pub fn whoami(&self) -> Result<WhoAmI> {
        Ok(self.client()?.whoami().into())
    }

    /// Sets the listener that receives each sync's events (replacing any).
    pub fn set_listener(&self, listener: Box<dyn EventListener>) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::from(listener));
    }

    /// How long each request to the DS may take before the call fails with
    /// `network` (retryable), in milliseconds: 60,000 by default.
    pub fn set_request_timeout(&self, millis: u64) -> Result<()> {
        self.client()?.set_request_timeout(std::time::Duration::from_millis(millis));
        Ok(())
    }

    /// Removes the listener.
    pub fn clear_listener(&self) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Fetches and applies everything new: a pending device link, Welcomes,
    /// messages, other members' commits. Events go to the listener and into
    /// the report.
    pub async fn sync(&self) -> Result<SyncReport> {
        let linked = self.finish_link().await?;
        let report = self.client()?.sync().await?;
        let events = events_of(linked, &report);
        self.notify(&events);
        Ok(SyncReport::new(&report, events))
    }

    /// The codes of this new device's pending link, if it is waiting for one.
    pub fn link_pending(&self) -> Result<Option<LinkCodes>> {
        Ok(self.client()?.link_pending().map(Into::into))
    }

    /// On a linked device: checks the code a new device shows. Without
    /// `confirm` it only returns the device and the six digits to compare;
    /// with `confirm` it certifies the device and lets it in.
    pub async fn approve_link(&self, code: String, confirm: bool) -> Result<LinkApproval> {
        Ok(self.client()?.approve_link(&code, confirm).await?.into())
    }

    /// This user's devices, from the verified device list.
    pub async fn devices(&self) -> Result<Vec<Device>> {
        Ok(self.client()?.devices().await?.into_iter().map(Into::into).collect())
    }

    /// Revokes a lost or retired device: a new device list without it, and
    /// its leaves removed from every group.
    pub async fn revoke_device(&self, device: String) -> Result<RevokeOutcome> {
        Ok(self.client()?.revoke_device(&device).await?.into())
    }

    /// Creates a group; returns its id. With `share_history`, members added
    /// later get the keys of the resources' current versions (the history
    /// policy `share`); without it they read only what is written after
    /// they joined.
    #[uniffi::method(default(share_history = false))]
    pub async fn create_group(&self, name: String, share_history: bool) -> Result<String> {
        Ok(self.client()?.create_group_with(&name, crate::types::history_policy(share_history)).await?)
    }

    /// Adds users (every device of each) to a group (name or id).
    pub async fn add_members(&self, group: String, users: Vec<String>) -> Result<CommitOutcome> {
        Ok(self.client()?.add_members(&group, &strs(&users)).await?.into())
    }

    /// Removes users (every device of each) from a group.
    pub async fn remove_members(&self, group: String, users: Vec<String>) -> Result<CommitOutcome> {
        Ok(self.client()?.remove_members(&group, &strs(&users)).await?.into())
    }

    /// Leaves a group; its history stays readable here.
    pub async fn leave(&self, group: String) -> Result<()> {
        Ok(self.client()?.leave(&group).await?)
    }

    /// The groups this client is or was in (local).
    pub fn groups(&self) -> Result<Vec<Group>> {
        Ok(self.client()?.groups()?.into_iter().map(Into::into).collect())
    }

    /// The members of a group (local).
    pub fn members(&self, group: String) -> Result<Vec<Member>> {
        Ok(self.client()?.members(&group)?.into_iter().map(Into::into).collect())
    }

    /// Sends a text message; returns its log sequence number. The message is
    /// on this device's disk before it leaves.
    pub async fn send(&self, group: String, text: String) -> Result<u64> {
        Ok(self.client()?.send(&group, &text).await?)
    }

    /// The messages of a group, oldest first (local).
    pub fn messages(&self, group: String) -> Result<Vec<Message>> {
        Ok(self.client()?.messages(&group)?.into_iter().map(Into::into).collect())
    }

    /// This user's contact code (`grove-contact-v1:USER:FINGERPRINT`), to
    /// show as a QR code for another user to import.
    pub fn contact_code(&self) -> Result<String> {
        Ok(self.client()?.contact_code())
    }

    /// Imports another user's contact code: pins and verifies their key, if
    /// the DS serves the key the code names (`contact_code_mismatch` if not).
    pub async fn import_contact(&self, code: String) -> Result<Contact> {
        Ok(self.client()?.import_contact(&code).await?.into())
    }

    /// Looks a user up and pins their key on first use.
    pub async fn lookup_user(&self, user: String) -> Result<Contact> {
        Ok(self.client()?.lookup_user(&user).await?.into())
    }

    /// The safety number with a user, to compare in person.
    pub async fn safety_number(&self, user: String) -> Result<SafetyNumber> {
        Ok(self.client()?.verify(&user, false).await?.into())
    }

    /// Marks a user verified after the safety numbers matched.
    pub async fn verify(&self, user: String) -> Result<SafetyNumber> {
        Ok(self.client()?.verify(&user, true).await?.into())
    }

    /// Accepts a user's changed key (after checking it out of band).
    pub async fn trust_new_key(&self, user: String) -> Result<Contact> {
        Ok(self.client()?.trust_new_key(&user).await?.into())
    }

    /// Checks this user's own entry in the DS's key directory now (a sync
    /// does it once per directory epoch): returns alerts not reported
    /// before, each naming the version and epoch someone else published.
    pub async fn check_key_history(&self) -> Result<Vec<String>> {
        Ok(self.client()?.check_key_history().await?)
    }

    /// Every key-transparency alert this client has seen (kept until the
    /// home is deleted), split views included.
    pub fn key_transparency_alerts(&self) -> Result<Vec<String>> {
        let (mut alerts, split_views) = self.client()?.key_transparency_alerts()?;
        alerts.extend(split_views.into_iter().map(|v| format!("split_view: {v}")));
        Ok(alerts)
    }
}
