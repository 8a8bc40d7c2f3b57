//! Changing resources without moving content (deletion, history policy,
//! history shares for new members), and applying resource messages to the
//! local records.

use openmls::prelude::*;

use super::{info, now, parse_hex, validate_manifest, ResourceInfo, BUNDLE_PAGE};
use crate::client::{b64url, Client, SyncReport};
use crate::error::{Error, Result};
use crate::records::{
    Envelope, HistoryPolicy, Manifest, ResourceEvent, ResourceEventRecord, ResourceRecord, VersionRecord,
};
use crate::repo::{self, Repo};
use crate::storage::{Transaction, TxnProvider};

impl Client {
    /// Deletes resource `name`: tells the group (every member drops it from
    /// its list; the history keeps the event), then deletes the blobs of every
    /// version this client knows from the DS. Returns the newest version.
    ///
    /// Deleting a resource that is already deleted sends nothing and deletes
    /// its blobs again: run it again if deleting a blob failed (network) after
    /// the group was told.
    pub async fn delete_resource(&self, group: &str, name: &str) -> Result<ResourceInfo> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.sync_group(&gid, &mut SyncReport::default()).await?;
        let (rid, rec) = self.find_resource(&gid, group, name, true)?;
        let versions = self.versions_of(&gid, &rid)?;
        if rec.deleted.is_none() {
            let env = Envelope::ResourceDeleted { resource_id: hex::encode(rid), name: rec.name.clone(), time: now() };
            self.send_payload(&gid, &env, None).await?;
        }
        for v in &versions {
            // An unknown blob (deleted by another member already) counts as deleted.
            self.ds.delete_blob(&b64url(&gid), &v.manifest.blob_id).await?;
        }
        versions.last().map(info).ok_or_else(|| Error::UnknownResource {
            group: group.to_owned(),
            name: name.to_owned(),
            version: None,
        })
    }

    /// Changes the group's history policy; the change is a group message that
    /// every member sees and records.
    pub async fn set_history_policy(&self, group: &str, policy: HistoryPolicy) -> Result<()> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.send_payload(&gid, &Envelope::HistoryPolicy { policy, time: now() }, None).await?;
        Ok(())
    }

    /// Test hook, standing for a malicious member: sends a manifest for the
    /// next version of `name` that points to the current version of `other`
    /// (its blob, key, hash and size).
    #[doc(hidden)]
    pub async fn send_misdirected_manifest_for_test(&self, group: &str, name: &str, other: &str) -> Result<()> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        let (rid, _) = self.find_resource(&gid, group, name, false)?;
        let (orid, _) = self.find_resource(&gid, group, other, false)?;
        let mine = self.versions_of(&gid, &rid)?.pop().ok_or_else(|| Error::InvalidArgument("no version".into()))?;
        let theirs = self.versions_of(&gid, &orid)?.pop().ok_or_else(|| Error::InvalidArgument("no version".into()))?;
        let manifest = Manifest {
            version: mine.manifest.version + 1,
            author: self.id.user.clone(),
            time: now(),
            ..Manifest { resource_id: mine.manifest.resource_id, name: mine.manifest.name, ..theirs.manifest }
        };
        self.send_payload(&gid, &Envelope::ResourceVersion { manifest }, None).await?;
        Ok(())
    }

    /// Test hook: downloads blob `blob_id` of `group` as stored (ciphertext),
    /// whether or not this client holds a manifest for it.
    #[doc(hidden)]
    pub async fn download_blob_for_test(&self, group: &str, blob_id: &str) -> Result<Vec<u8>> {
        let gid = self.resolve_group(group)?;
        let resp = self.ds.download_blob(&b64url(&gid), blob_id).await?;
        Ok(resp.bytes().await.map_err(|e| Error::Network(e.to_string()))?.to_vec())
    }

    /// After an add: tells the new members the group's name and policy and,
    /// with policy `share`, sends the key bundle of the current versions.
    /// `added` may be empty when the add was recovered from the log.
    pub(in crate::client) async fn announce_to_new_members(&self, gid: &[u8], added: &[String]) -> Result<()> {
        let rec = self.group_record(gid)?;
        if let Some(name) = rec.name.clone() {
            self.send_payload(gid, &Envelope::GroupName { name, history: Some(rec.history) }, None).await?;
        }
        if rec.history != HistoryPolicy::Share {
            return Ok(());
        }
        let group = b64url(gid);
        let mut manifests = Vec::new();
        for r in self.resources(&group)? {
            let rid = parse_hex::<16>("resource id", &r.id)?;
            if let Some(v) = self.versions_of(gid, &rid)?.pop() {
                manifests.push(v.manifest);
            }
        }
        if manifests.is_empty() {
            return Ok(());
        }
        for page in manifests.chunks(BUNDLE_PAGE) {
            let env = Envelope::KeyBundle { recipients: added.to_vec(), manifests: page.to_vec(), time: now() };
            self.send_payload(gid, &env, None).await?;
        }
        Ok(())
    }

    /// Applies an own resource envelope (JSON bytes from the outbox) once the
    /// DS accepted it at `seq`.
    pub(in crate::client) fn apply_own_envelope(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        env: &[u8],
        seq: u64,
    ) -> Result<()> {
        let env: Envelope = serde_json::from_slice(env).map_err(|e| repo::corrupt("outbox envelope", e.to_string()))?;
        let epoch = match MlsGroup::load(p.storage(), &GroupId::from_slice(gid))? {
            Some(g) => g.epoch().as_u64(),
            None => 0,
        };
        self.apply_resource_envelope(p, gid, &env, &Origin { sender: &self.id.user, seq, epoch })
    }

    /// Records a resource envelope sent from `at`. Idempotent (keys depend on
    /// the log position). A malformed or forged envelope is an
    /// [`Error::Protocol`], which the caller reports and skips.
    pub(in crate::client) fn apply_resource_envelope(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        env: &Envelope,
        at: &Origin<'_>,
    ) -> Result<()> {
        let repo = Repo::of(p);
        let log = |time: u64, event: ResourceEvent| -> Result<()> {
            let rec = ResourceEventRecord { seq: at.seq, epoch: at.epoch, by: at.sender.to_owned(), time, event };
            repo.resources().put_event(gid, &rec)
        };
        match env {
            Envelope::ResourceVersion { manifest } => {
                validate_manifest(manifest)?;
                if manifest.author != at.sender {
                    return Err(Error::Protocol(format!(
                        "a manifest naming {} as author was sent by {}",
                        manifest.author, at.sender
                    )));
                }
                record_version(repo, gid, manifest, at, false)?;
                log(
                    manifest.time,
                    ResourceEvent::Version {
                        resource_id: manifest.resource_id.clone(),
                        name: manifest.name.clone(),
                        version: manifest.version,
                        size: manifest.size,
                    },
                )
            }
            Envelope::ResourceDeleted { resource_id, name, time } => {
                let rid = parse_hex::<16>("resource id", resource_id)?;
                if let Some(mut rec) = repo.resources().get(gid, &rid)? {
                    rec.deleted = Some((at.sender.to_owned(), *time));
                    repo.resources().put(gid, &rid, &rec)?;
                }
                log(*time, ResourceEvent::Deleted { resource_id: resource_id.clone(), name: name.clone() })
            }
            Envelope::HistoryPolicy { policy, time } => {
                repo.groups().update_if_present(gid, |rec| rec.history = *policy)?;
                log(*time, ResourceEvent::Policy { policy: *policy })
            }
            Envelope::KeyBundle { recipients, manifests, time } => {
                let mut shared = Vec::new();
                for m in manifests {
                    validate_manifest(m)?;
                    let rid = parse_hex::<16>("resource id", &m.resource_id)?;
                    if !repo.resources().has_version(gid, &rid, m.version)? {
                        record_version(repo, gid, m, at, true)?;
                    }
                    shared.push((m.resource_id.clone(), m.name.clone(), m.version));
                }
                log(*time, ResourceEvent::Shared { recipients: recipients.clone(), resources: shared })
            }
            Envelope::Text { .. } | Envelope::GroupName { .. } | Envelope::Successor { .. } => Ok(()),
        }
    }
}

/// Where a group message came from: its sender, log position and epoch.
pub(in crate::client) struct Origin<'a> {
    pub(in crate::client) sender: &'a str,
    pub(in crate::client) seq: u64,
    pub(in crate::client) epoch: u64,
}

/// Records version `m`, carried by the message from `at` (`shared`: in a
/// key bundle by `at.sender`, not by its author).
fn record_version(
    repo: Repo<'_, Transaction<'_>>,
    gid: &[u8],
    m: &Manifest,
    at: &Origin<'_>,
    shared: bool,
) -> Result<()> {
    let rid = parse_hex::<16>("resource id", &m.resource_id)?;
    let rec = match repo.resources().get(gid, &rid)? {
        // A version newer than a deletion brings the resource back (it was
        // written by someone who had not seen the deletion yet).
        Some(mut r) => {
            if !shared {
                r.name = m.name.clone();
                r.deleted = None;
            }
            r
        }
        None => ResourceRecord { name: m.name.clone(), first_seq: at.seq, deleted: None },
    };
    repo.resources().put(gid, &rid, &rec)?;
    let shared_by = shared.then(|| at.sender.to_owned());
    let v = VersionRecord { manifest: m.clone(), seq: at.seq, epoch: at.epoch, shared_by };
    repo.resources().put_version(gid, &rid, &v)
}
