//! KeyPackages: validated batch upload, one-at-a-time claim (durable before it
//! leaves), and the counts a client uses to decide when to top up.

use std::collections::HashSet;

use openmls::prelude::*;
use tls_codec::{Deserialize as _, Serialize as _};

use super::validate::{body_name, parse_mls};
use super::{now_secs, Ds, SUPPORTED_SUITES};
use crate::api;
use crate::api::UserName;
use crate::error::DsError;
use crate::store::{KeyPackageBatch, KeyPackageCounts, KeyPackageKind, StoreError};

use super::devices::{Binding, Session};

/// Who uploads: the user, how its leaves are checked, and its device.
struct Uploader<'a> {
    user: &'a str,
    binding: &'a Binding,
    device: Option<&'a str>,
}

impl Ds {
    /// Validates and stores a batch of KeyPackages of the caller (for a
    /// user with devices: of the caller's own device).
    pub async fn upload_key_packages(
        &self,
        caller: &Session,
        body: &[u8],
    ) -> Result<api::KeyPackageCountResponse, DsError> {
        let user = caller.user.as_str();
        let binding = self.binding(user).await?;
        let reg = Uploader { user, binding: &binding, device: caller.device.as_deref() };
        let upload = api::KeyPackageUploadBody::tls_deserialize_exact(body)
            .map_err(|e| DsError::MalformedMessage(format!("not a Grove key-package upload: {e}")))?;
        if upload.key_packages.is_empty() {
            return Err(DsError::EmptyUpload);
        }
        let batch = self.validate_batch(&reg, &upload)?;
        let mailbox = caller.mailbox();
        let counts =
            self.store.put_key_packages(&mailbox, batch.borrowed(), self.limits.key_package_cap).await.map_err(
                |e| match e {
                    StoreError::Quota(q) => DsError::KeyPackageQuota(q),
                    e => DsError::Storage(e),
                },
            )?;
        self.persist().await?;
        Ok(api::KeyPackageCountResponse {
            accepted: upload.key_packages.len(),
            one_time: counts.one_time,
            last_resort: counts.last_resort,
        })
    }

    /// Validates every KeyPackage of an upload: one suite, the uploader's
    /// registered credential and key, a bounded lifetime, no duplicates, at most
    /// one last-resort package.
    fn validate_batch(&self, reg: &Uploader<'_>, upload: &api::KeyPackageUploadBody) -> Result<Batch, DsError> {
        let mut batch = Batch { suite: 1, one_time: Vec::new(), last_resort: None };
        let mut suite = None;
        let mut seen = HashSet::new();
        for (index, raw) in upload.key_packages.iter().enumerate() {
            let bad = |reason: String| DsError::InvalidKeyPackage { index, reason };
            let kp = self.validate_one(reg, raw.as_slice(), &mut suite).map_err(bad)?;
            let bytes = MlsMessageOut::from(kp.clone()).tls_serialize_detached().map_err(|e| bad(e.to_string()))?;
            if !seen.insert(bytes.clone()) {
                return Err(bad("the same KeyPackage appears twice in the upload".into()));
            }
            if !kp.last_resort() {
                batch.one_time.push(bytes);
            } else if batch.last_resort.replace(bytes).is_some() {
                return Err(bad("more than one last-resort KeyPackage in one upload".into()));
            }
        }
        batch.suite = suite.unwrap_or(1);
        Ok(batch)
    }

    /// One KeyPackage of an upload (whose suite must be `suite`, once set); the
    /// error is the reason.
    fn validate_one(&self, reg: &Uploader<'_>, raw: &[u8], suite: &mut Option<u16>) -> Result<KeyPackage, String> {
        let kp_in = match parse_mls(raw).map_err(|e| e.to_string())? {
            MlsMessageBodyIn::KeyPackage(kp) => kp,
            other => return Err(format!("expected a KeyPackage, got a {}", body_name(&other))),
        };
        let kp = kp_in.validate(&self.crypto, ProtocolVersion::Mls10).map_err(|e| e.to_string())?;
        let cs = u16::from(kp.ciphersuite());
        if !SUPPORTED_SUITES.contains(&cs) {
            return Err(format!("ciphersuite 0x{cs:04x} is not supported"));
        }
        if *suite.get_or_insert(cs) != cs {
            return Err("all KeyPackages of one upload must have the same ciphersuite".into());
        }
        let leaf = kp.leaf_node();
        let key = leaf.signature_key().as_slice();
        reg.binding
            .check_leaf(reg.user, leaf.credential(), key)
            .map_err(|why| format!("its credential or signature key is not one registered for you: {why}"))?;
        if let Some(device) = reg.device {
            if grove_proto::identity::device_id(key) != device {
                return Err("it is another device's: each device uploads its own KeyPackages".into());
            }
        }
        if kp.life_time().not_after() > now_secs().saturating_add(self.limits.key_package_max_secs) {
            return Err(format!(
                "its lifetime ends more than {} days from now",
                self.limits.key_package_max_secs / 86_400
            ));
        }
        Ok(kp)
    }

    /// Claims one KeyPackage of `target` for `suite`: a user without devices
    /// has one mailbox; for a user with devices, the first device in its
    /// latest list that has a package gives one.
    pub async fn claim_key_package(&self, target: &str, suite: u16) -> Result<(Vec<u8>, KeyPackageKind), DsError> {
        for (_, mailbox) in self.claim_mailboxes(target, suite).await? {
            if let Some(claimed) = self.claim_from(&mailbox, suite).await? {
                return Ok(claimed);
            }
        }
        Err(DsError::NoKeyPackage(target.to_string()))
    }

    /// Claims one KeyPackage of every current device of `target` (one of a
    /// user without devices), to add all of them in one commit. Devices
    /// without a package are named in `missing`: they can join later on
    /// their own (an external commit, `docs/identity.md`).
    pub async fn claim_device_key_packages(
        &self,
        target: &str,
        suite: u16,
    ) -> Result<api::DeviceKeyPackagesResponse, DsError> {
        let mut out = api::DeviceKeyPackagesResponse { key_packages: Vec::new(), missing: Vec::new() };
        for (device, mailbox) in self.claim_mailboxes(target, suite).await? {
            match self.claim_from(&mailbox, suite).await? {
                Some((kp, kind)) => out.key_packages.push(api::ClaimedKeyPackage {
                    device,
                    last_resort: kind == KeyPackageKind::LastResort,
                    key_package: kp,
                }),
                None => out.missing.extend(device),
            }
        }
        if out.key_packages.is_empty() {
            return Err(DsError::NoKeyPackage(target.to_string()));
        }
        Ok(out)
    }

    /// The mailboxes a claim of `target`'s packages draws from, with their
    /// device ids: its devices in list order, or the user's own.
    async fn claim_mailboxes(&self, target: &str, suite: u16) -> Result<Vec<(Option<String>, String)>, DsError> {
        UserName::parse(target)?;
        if !SUPPORTED_SUITES.contains(&suite) {
            return Err(DsError::UnsupportedCiphersuite(suite));
        }
        self.registered(target).await?;
        Ok(match self.latest_device_list(target).await? {
            Some(list) => list
                .tbs
                .devices
                .iter()
                .map(|d| {
                    let id = d.id();
                    let mailbox = grove_proto::identity::mailbox(target, Some(&id));
                    (Some(id), mailbox)
                })
                .collect(),
            None => vec![(None, target.to_owned())],
        })
    }

    /// Claims one valid KeyPackage from `mailbox`, if it has one.
    async fn claim_from(&self, target: &str, suite: u16) -> Result<Option<(Vec<u8>, KeyPackageKind)>, DsError> {
        loop {
            let claimed = self.store.claim_key_package(target, suite).await?;
            let Some((kp, kind)) = claimed else { return Ok(None) };
            // Packages were validated on upload; this re-check catches the ones
            // whose lifetime has run out since. An expired one-time package was
            // just removed by the claim (purged); an expired last-resort package
            // stays until its owner replaces it, and is never handed out.
            if !self.still_valid(&kp) {
                tracing::info!(user = %target, last_resort = (kind == KeyPackageKind::LastResort), "expired KeyPackage skipped");
                if kind == KeyPackageKind::LastResort {
                    self.persist().await?;
                    return Ok(None);
                }
                continue;
            }
            // The removal must be durable before the package leaves: a one-time
            // package is handed out at most once, even across a crash.
            self.persist().await?;
            return Ok(Some((kp, kind)));
        }
    }

    fn still_valid(&self, kp: &[u8]) -> bool {
        match parse_mls(kp) {
            Ok(MlsMessageBodyIn::KeyPackage(kp)) => kp.validate(&self.crypto, ProtocolVersion::Mls10).is_ok(),
            _ => false,
        }
    }

    /// How many KeyPackages `user` has left.
    pub async fn key_package_counts(&self, user: &str, suite: u16) -> Result<KeyPackageCounts, DsError> {
        if !SUPPORTED_SUITES.contains(&suite) {
            return Err(DsError::UnsupportedCiphersuite(suite));
        }
        Ok(self.store.key_package_counts(user, suite).await?)
    }
}

/// The KeyPackages of one upload, validated and encoded for the store.
struct Batch {
    suite: u16,
    one_time: Vec<Vec<u8>>,
    last_resort: Option<Vec<u8>>,
}

impl Batch {
    fn borrowed(&self) -> KeyPackageBatch<'_> {
        KeyPackageBatch { suite: self.suite, one_time: &self.one_time, last_resort: self.last_resort.as_deref() }
    }
}
