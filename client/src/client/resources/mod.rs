//! Encrypted resources: named, versioned records kept in a group.
//!
//! A version is encrypted on this device with a fresh random key
//! ([`crate::resource_crypto`]: chunked AES-256-GCM, padded, bound to group,
//! resource and version), streamed to the DS blob store, and announced to the
//! group in a **manifest** (resource id, name, version, blob id, key, content
//! hash, size, author, time) sent as an MLS application message. Members keep
//! the manifests they receive, so they can read any version whose key they hold
//! for as long as the DS keeps its blob and they are members. The DS sees
//! opaque blob ids and ciphertext lengths (padded), never names, keys, sizes or
//! authors.
//!
//! Memory stays bounded whatever the size: the content is read, encrypted and
//! uploaded (or downloaded, checked and written) one chunk at a time through
//! bounded channels.
//!
//! **Removal.** A removed member never receives the manifests (so never the
//! keys) of versions written after its removal, and the DS refuses it every
//! blob. Versions it already held the keys of stay readable to it only if it
//! kept a copy of the ciphertext: see docs/threat-model.md.
//!
//! **History for new members** ([`HistoryPolicy`]): with `share`, the member
//! who adds others sends, in the new epoch, a key bundle with the manifests of
//! the current version of every resource. The policy and every share are group
//! messages, recorded in every member's resource history.

mod changes;
mod transfer;

pub(super) use changes::Origin;

use std::sync::Arc;

use serde::Serialize;

use super::Client;
use crate::error::{Error, Result};
use crate::records::{HistoryPolicy, Manifest, ResourceEvent, ResourceEventRecord, ResourceRecord, VersionRecord};
use crate::repo::ResourceId;
use crate::resource_crypto::ResourceCryptoError;

/// Progress callback: called with the number of content bytes handled so far
/// (read and encrypted on put, checked and written on get).
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Manifests per key-bundle message (each about 400 bytes of JSON).
const BUNDLE_PAGE: usize = 200;
/// Bytes per message of the upload stream.
const UPLOAD_PIECE: usize = 256 * 1024;
/// Messages in flight between the encrypting thread and the HTTP body, and
/// between the HTTP body and the decrypting thread: bounds memory.
const CHANNEL_DEPTH: usize = 8;
const UPLOAD_STOPPED: &str = "the upload stopped";
/// Longest resource name, in bytes.
const MAX_NAME_BYTES: usize = 1024;

/// One version of a resource, as this client knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceInfo {
    /// The resource's random id (32 hex characters).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The version number (from 1).
    pub version: u64,
    /// Content size in bytes (before padding and encryption).
    pub size: u64,
    /// What the DS stores for it, in bytes (padded ciphertext).
    pub blob_size: u64,
    /// The DS blob id.
    pub blob_id: String,
    /// BLAKE3 hash of the content, hex.
    pub content_hash: String,
    /// The member who wrote it.
    pub author: String,
    /// When it was written (Unix seconds, the author's clock).
    pub time: u64,
    /// Log sequence number of the message that carried its manifest.
    pub seq: u64,
    /// Set if this client got the version's key from a history share by this member.
    pub shared_by: Option<String>,
}

/// One event of a group's resource history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceHistoryEntry {
    /// Log sequence number of the group message.
    pub seq: u64,
    /// Epoch of the group message.
    pub epoch: u64,
    /// The member who sent it.
    pub by: String,
    /// When (Unix seconds, the sender's clock).
    pub time: u64,
    /// `version`, `deleted`, `policy` or `shared`.
    pub kind: &'static str,
    /// The resource (for `version` and `deleted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The resource's name (for `version` and `deleted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The version (for `version`; for `shared`, the shared version of the resource asked about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Content size (for `version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The new policy (for `policy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<HistoryPolicy>,
    /// Who the keys were shared with (for `shared`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// How many resources were shared (for `shared`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_resources: Option<usize>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn parse_hex<const N: usize>(what: &str, s: &str) -> Result<[u8; N]> {
    let v = hex::decode(s).map_err(|_| Error::Protocol(format!("{what} is not hex")))?;
    v.try_into().map_err(|_| Error::Protocol(format!("{what} is not {N} bytes")))
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "a resource name must be 1 to {MAX_NAME_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// For the fuzz target: a decrypted application message as an envelope, and
/// its manifests' checks.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_envelope(bytes: &[u8]) {
    use crate::records::Envelope;
    match serde_json::from_slice::<Envelope>(bytes) {
        Ok(Envelope::ResourceVersion { manifest }) => {
            let _ = validate_manifest(&manifest);
        }
        Ok(Envelope::KeyBundle { manifests, .. }) => {
            for m in &manifests {
                let _ = validate_manifest(m);
            }
        }
        _ => {}
    }
}

/// Checks a received manifest's fields; a bad one is a protocol error.
fn validate_manifest(m: &Manifest) -> Result<()> {
    parse_hex::<16>("resource id", &m.resource_id)?;
    parse_hex::<32>("key", &m.key)?;
    parse_hex::<32>("content hash", &m.content_hash)?;
    if !grove_proto::valid_blob_id(&m.blob_id) {
        return Err(Error::Protocol("blob id is not 32 lowercase hex characters".into()));
    }
    if m.version == 0 || validate_name(&m.name).is_err() {
        return Err(Error::Protocol("manifest with version 0 or an invalid name".into()));
    }
    Ok(())
}

fn info(v: &VersionRecord) -> ResourceInfo {
    let m = &v.manifest;
    ResourceInfo {
        id: m.resource_id.clone(),
        name: m.name.clone(),
        version: m.version,
        size: m.size,
        blob_size: m.blob_size,
        blob_id: m.blob_id.clone(),
        content_hash: m.content_hash.clone(),
        author: m.author.clone(),
        time: m.time,
        seq: v.seq,
        shared_by: v.shared_by.clone(),
    }
}

fn corrupt(name: &str, version: u64, e: ResourceCryptoError) -> Error {
    match e {
        ResourceCryptoError::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => {
            Error::ResourceIo { name: name.to_owned(), reason: io.to_string() }
        }
        other => Error::ResourceCorrupt { name: name.to_owned(), version, reason: other.to_string() },
    }
}

impl Client {
    // ------------------------------------------------------------ queries

    /// The resources of `group` this client holds a key for (the newest
    /// version of each), deleted ones left out, ordered by name.
    pub fn resources(&self, group: &str) -> Result<Vec<ResourceInfo>> {
        let gid = self.resolve_group(group)?;
        let mut out = Vec::new();
        for (rid, rec) in self.repo().resources().list(&gid)? {
            if rec.deleted.is_some() {
                continue;
            }
            if let Some(latest) = self.versions_of(&gid, &rid)?.pop() {
                out.push(info(&latest));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.seq.cmp(&b.seq)));
        Ok(out)
    }

    /// Every version of resource `name` whose key this client holds, oldest first.
    pub fn resource_versions(&self, group: &str, name: &str) -> Result<Vec<ResourceInfo>> {
        let gid = self.resolve_group(group)?;
        let (rid, _) = self.find_resource(&gid, group, name, true)?;
        Ok(self.versions_of(&gid, &rid)?.iter().map(info).collect())
    }

    /// The history of resource `name`: its versions, deletion, and the history
    /// shares that included it, in log order.
    pub fn resource_history(&self, group: &str, name: &str) -> Result<Vec<ResourceHistoryEntry>> {
        let gid = self.resolve_group(group)?;
        let (rid, _) = self.find_resource(&gid, group, name, true)?;
        let rid = hex::encode(rid);
        let mut out = Vec::new();
        for e in self.resource_events(&gid)? {
            let entry = match &e.event {
                ResourceEvent::Version { resource_id, .. } | ResourceEvent::Deleted { resource_id, .. }
                    if *resource_id == rid =>
                {
                    history_entry(&e, None)
                }
                ResourceEvent::Shared { resources, .. } => match resources.iter().find(|(id, _, _)| *id == rid) {
                    Some((_, _, v)) => history_entry(&e, Some(*v)),
                    None => continue,
                },
                _ => continue,
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// The whole resource history of `group` (versions, deletions, policy
    /// changes, shares), in log order, as far as this client can read it.
    pub fn group_resource_history(&self, group: &str) -> Result<Vec<ResourceHistoryEntry>> {
        let gid = self.resolve_group(group)?;
        Ok(self.resource_events(&gid)?.iter().map(|e| history_entry(e, None)).collect())
    }

    /// The group's history policy, as this client last learned it.
    pub fn history_policy(&self, group: &str) -> Result<HistoryPolicy> {
        let gid = self.resolve_group(group)?;
        Ok(self.group_record(&gid)?.history)
    }

    fn resource_events(&self, gid: &[u8]) -> Result<Vec<ResourceEventRecord>> {
        self.repo().resources().events(gid)
    }

    /// Versions of one resource, sorted by (version, seq).
    pub(super) fn versions_of(&self, gid: &[u8], rid: &ResourceId) -> Result<Vec<VersionRecord>> {
        self.repo().resources().versions(gid, rid)
    }

    /// The resource called `name`: the live one first learned (lowest seq) if
    /// several carry the name; a deleted one only if `include_deleted` and no
    /// live one has the name.
    pub(super) fn find_resource(
        &self,
        gid: &[u8],
        group: &str,
        name: &str,
        include_deleted: bool,
    ) -> Result<(ResourceId, ResourceRecord)> {
        let mut live: Option<(ResourceId, ResourceRecord)> = None;
        let mut dead: Option<(ResourceId, ResourceRecord)> = None;
        for (rid, rec) in self.repo().resources().list(gid)? {
            if rec.name != name {
                continue;
            }
            let slot = if rec.deleted.is_some() { &mut dead } else { &mut live };
            if slot.as_ref().is_none_or(|(_, r)| rec.first_seq < r.first_seq) {
                *slot = Some((rid, rec));
            }
        }
        match (live, dead) {
            (Some(found), _) => Ok(found),
            (None, Some(found)) if include_deleted => Ok(found),
            (None, Some((_, rec))) => Err(Error::ResourceDeleted {
                group: group.to_owned(),
                name: name.to_owned(),
                by: rec.deleted.map(|(by, _)| by).unwrap_or_default(),
            }),
            (None, None) => {
                Err(Error::UnknownResource { group: group.to_owned(), name: name.to_owned(), version: None })
            }
        }
    }
}

fn history_entry(e: &ResourceEventRecord, shared_version: Option<u64>) -> ResourceHistoryEntry {
    let mut h = ResourceHistoryEntry {
        seq: e.seq,
        epoch: e.epoch,
        by: e.by.clone(),
        time: e.time,
        kind: "",
        resource_id: None,
        name: None,
        version: None,
        size: None,
        policy: None,
        recipients: Vec::new(),
        shared_resources: None,
    };
    match &e.event {
        ResourceEvent::Version { resource_id, name, version, size } => {
            h.kind = "version";
            h.resource_id = Some(resource_id.clone());
            h.name = Some(name.clone());
            h.version = Some(*version);
            h.size = Some(*size);
        }
        ResourceEvent::Deleted { resource_id, name } => {
            h.kind = "deleted";
            h.resource_id = Some(resource_id.clone());
            h.name = Some(name.clone());
        }
        ResourceEvent::Policy { policy } => {
            h.kind = "policy";
            h.policy = Some(*policy);
        }
        ResourceEvent::Shared { recipients, resources } => {
            h.kind = "shared";
            h.recipients = recipients.clone();
            h.shared_resources = Some(resources.len());
            h.version = shared_version;
        }
    }
    h
}
