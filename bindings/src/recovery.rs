//! Recovery on [`GroveClient`]: an identity backup to keep off the phone,
//! and a new device restored from it when every other device is lost.

use std::sync::Arc;

use grove_client::Client;

use crate::events::Event;
use crate::types::ClientOptions;
use crate::{GroveClient, Result};

/// What [`restore_client`] made: the new device's client, and what it joined.
#[derive(uniffi::Record)]
pub struct Restored {
    /// The new device.
    pub client: Arc<GroveClient>,
    /// Its `Linked` event: its device id, the groups it joined and those it
    /// could not join.
    pub event: Event,
}

/// Makes `home` (new) a device of the identity in `backup` (the bytes
/// [`GroveClient::identity_backup`] gave), with no other device needed: for
/// a user who lost every device. The DS needs the app's login
/// (`options.login_token`) when it binds users to it. The lost devices stay
/// in the user's list until revoked ([`GroveClient::revoke_device`]).
#[uniffi::export(async_runtime = "tokio")]
pub async fn restore_client(
    home: String,
    options: ClientOptions,
    backup: Vec<u8>,
    passphrase: String,
    label: String,
) -> Result<Restored> {
    let config = options.config()?;
    let identity = grove_client::open_identity_backup(&backup, &passphrase)?;
    let (client, done) = Client::restore(&home, config, &identity, &label).await?;
    let event = Event::Linked { device: done.device, groups: done.joined, failed: done.failed };
    Ok(Restored { client: GroveClient::wrap(client), event })
}

#[uniffi::export]
impl GroveClient {
    /// This user's identity key and contact pins, sealed under `passphrase`
    /// (Argon2id, then XChaCha20-Poly1305): the bytes of a backup file for
    /// the app to keep off the phone (the user's cloud drive, a printout).
    /// With it, [`restore_client`] brings the user back on a new device.
    pub fn identity_backup(&self, passphrase: String) -> Result<Vec<u8>> {
        Ok(self.client()?.identity_backup(&passphrase)?)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl GroveClient {
    /// For a user who lost every device and has no backup: makes this
    /// home's identity (one whose [`create_client`](crate::create_client)
    /// failed with `server_code = "user_exists"`; open it with
    /// [`open_client`](crate::open_client)) the user's, in place of the
    /// lost one. Ask the user first: every old device is cut off, and every
    /// contact sees a new key and must accept it. Needs the app's login
    /// when the DS binds users to it. Returns the new identity's fingerprint.
    pub async fn reset_identity(&self, login_token: Option<String>) -> Result<String> {
        Ok(self.client()?.reset_identity(login_token).await?.fingerprint)
    }
}
