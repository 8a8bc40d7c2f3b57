//! Restoring an identity from a backup onto a new device
//! (`docs/identity.md`, "Restore"), with no other device of the user needed:
//! the new device certifies its own key with the backed-up identity key,
//! publishes the next device list (without a token: the identity key's
//! signature authenticates it, plus the app's login when the DS requires
//! one), then logs in as that device and joins, by external commit, the
//! groups the backup lists that its user is still in.

use std::path::Path;
use std::sync::Arc;

use grove_proto as proto;
use grove_proto::identity::{DeviceCertificate, DeviceCertificateTbs, DeviceEntry};
use grove_proto::link::LinkGroup;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider as _;

use super::backup::IdentityBackup;
use super::link::LinkFinished;
use super::{Client, ClientConfig};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{Contact, HistoryPolicy, IdentityRecord};
use crate::repo::Repo;

use super::devices::now;

impl Client {
    /// Makes `home` (new) a device of the identity in `backup` (see the
    /// module docs). `config` gives the server, its trust, the ciphersuite
    /// and the app's login; its user must be the backup's. The other
    /// devices in the list stay: revoke lost ones with
    /// [`Client::revoke_device`]. Returns the client and what it joined.
    pub async fn restore(
        home: impl AsRef<Path>,
        config: ClientConfig,
        backup: &IdentityBackup,
        label: &str,
    ) -> Result<(Client, LinkFinished)> {
        let home = home.as_ref().to_path_buf();
        if config.user != backup.user {
            return Err(Error::InvalidArgument(format!("the backup is of user {}, not {}", backup.user, config.user)));
        }
        let suite = super::identity::check_config(&config)?;
        let provider = super::identity::open_store(&home, config.store_key.as_ref())?;
        if let Some(id) = Repo::new(provider.storage()).meta().identity()? {
            return Err(Error::AlreadyInitialized {
                home: home.display().to_string(),
                user: id.user,
                server: id.server,
            });
        }
        let seed: [u8; 32] = backup
            .identity_secret
            .as_slice()
            .try_into()
            .map_err(|_| Error::InvalidArgument("the backup's identity key is not 32 bytes".into()))?;
        let identity = ed25519_dalek::SigningKey::from_bytes(&seed);
        let ik = identity.verifying_key().to_bytes().to_vec();
        let signer = Arc::new(SignatureKeyPair::new(suite.signature_algorithm()).mls("generate the signature key")?);
        let http = crate::tls::http_client(&config.server, &config.trust)?;
        let ds = crate::http::DsHttp::new(http, &config.server, &config.user, signer.clone(), true);

        // The user's lists as the DS serves them, checked from version 1
        // against the backed-up identity key.
        let served = ds.device_lists(&config.user, 0).await?.lists;
        let latest = served.last().map(|l| l.0.clone());
        let history: Vec<Vec<u8>> = served.into_iter().map(|l| l.0).collect();
        let current = super::devices::advance_list(&config.user, &ik, None, latest.as_deref(), &history)
            .map_err(|reason| Error::DeviceListRejected { user: config.user.clone(), reason })?
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "the DS has no device list of {}: the backup is not of an identity registered there",
                    config.user
                ))
            })?;
        let scheme = signer.signature_scheme() as u16;
        let mut devices = current.tbs.devices.clone();
        devices.push(DeviceEntry {
            device_key: signer.public().to_vec().into(),
            signature_scheme: scheme,
            added_at: now(),
            label: label.as_bytes().to_vec().into(),
        });
        let list = super::link::signed_list(&identity, &current, devices)?;
        let cert = DeviceCertificate::new(
            DeviceCertificateTbs {
                user: config.user.as_bytes().to_vec().into(),
                identity_key: ik.clone().into(),
                device_key: signer.public().to_vec().into(),
                signature_scheme: scheme,
                created_at: now(),
            },
            super::devices::signer(&identity),
        );
        // Published first: if this device crashes before it stores its
        // keys, the list holds a device nobody has, which any device of the
        // user can revoke; the other order could leave a home whose device
        // the DS never accepts.
        let req =
            proto::DeviceListRestoreRequest { device_list: list.encode(), login_token: config.login_token.clone() };
        ds.restore_device_list(&req).await?;

        let mut id = IdentityRecord::for_device(&config, signer.public());
        super::devices::set_identity(&mut id, &identity, &cert, &list);
        provider.transaction(|p| -> Result<()> {
            signer.store(p.storage())?;
            let repo = Repo::of(p);
            repo.meta().set_identity(&id)?;
            for (user, key, verified) in &backup.contacts {
                if *user != id.user {
                    let c = Contact { key: key.clone(), verified: *verified, ..Default::default() };
                    repo.contacts().put(user, &c)?;
                }
            }
            Ok(())
        })?;
        drop(provider);
        let client = Client::open_with_key(&home, config.store_key.clone())?;
        client.ds.login().await?;
        client.ensure_key_packages().await?;
        let mut done =
            LinkFinished { device: proto::identity::device_id(client.signer.public()), ..Default::default() };
        for g in &backup.groups {
            let Some(gid) = proto::group_id_from_path(&g.id) else { continue };
            let link = LinkGroup {
                group_id: gid.into(),
                name: g.name.clone().unwrap_or_default().into_bytes().into(),
                history: u8::from(g.history == HistoryPolicy::Share),
            };
            match client.join_linked_group(&link).await {
                Ok(true) => done.joined.push(g.id.clone()),
                Ok(false) => {}
                Err(e) => done.failed.push(format!("{}: {e}", g.id)),
            }
        }
        tracing::info!(user = %client.id.user, joined = done.joined.len(), "identity restored on a new device");
        Ok((client, done))
    }
}
