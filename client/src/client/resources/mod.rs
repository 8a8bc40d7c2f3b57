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

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use openmls::prelude::*;
use rand::RngCore as _;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{b64url, Client};
use crate::error::{Error, Result};
use crate::records::{
    group_prefix, ns, Envelope, GroupRecord, HistoryPolicy, Manifest, ResourceEvent, ResourceEventRecord,
    ResourceRecord, VersionRecord,
};
use crate::resource_crypto::{self, BlobContext, ContentKey, Expected, ResourceCryptoError};
use crate::storage::TxnProvider;

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
pub(super) const MAX_NAME_BYTES: usize = 1024;

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

fn resource_key(gid: &[u8], rid: &[u8; 16]) -> Vec<u8> {
    let mut k = group_prefix(gid);
    k.extend_from_slice(rid);
    k
}

fn version_key(gid: &[u8], rid: &[u8; 16], version: u64, seq: u64) -> Vec<u8> {
    let mut k = resource_key(gid, rid);
    k.extend_from_slice(&version.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn event_key(gid: &[u8], seq: u64, n: u32) -> Vec<u8> {
    let mut k = group_prefix(gid);
    k.extend_from_slice(&seq.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
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

/// The encrypting thread's output: pieces sent to the HTTP body stream.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(UPLOAD_PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, UPLOAD_STOPPED))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(UPLOAD_PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= UPLOAD_PIECE {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buf()
    }
}

/// The decrypting thread's input: pieces of the HTTP response body.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// Counts the content bytes that pass, for progress reports.
struct Counting<T> {
    inner: T,
    done: u64,
    progress: Option<Progress>,
}

impl<T> Counting<T> {
    fn tick(&mut self, n: usize) {
        self.done += n as u64;
        if let Some(p) = &self.progress {
            p(self.done);
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tick(n);
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.tick(n);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Client {
    // ------------------------------------------------------------ queries

    /// The resources of `group` this client holds a key for (the newest
    /// version of each), deleted ones left out, ordered by name.
    pub fn resources(&self, group: &str) -> Result<Vec<ResourceInfo>> {
        let gid = self.resolve_group(group)?;
        let mut out = Vec::new();
        for (key, value) in self.provider.storage().scan_prefix_app(ns::RESOURCES, &group_prefix(&gid))? {
            let rec: ResourceRecord = decode(&value, "resource record")?;
            if rec.deleted.is_some() {
                continue;
            }
            let rid: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| corrupt_key())?;
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
        self.provider
            .storage()
            .scan_prefix_app(ns::RESOURCE_LOG, &group_prefix(gid))?
            .iter()
            .map(|(_, v)| decode(v, "resource history entry"))
            .collect()
    }

    /// Versions of one resource, sorted by (version, seq).
    fn versions_of(&self, gid: &[u8], rid: &[u8; 16]) -> Result<Vec<VersionRecord>> {
        self.provider
            .storage()
            .scan_prefix_app(ns::VERSIONS, &resource_key(gid, rid))?
            .iter()
            .map(|(_, v)| decode(v, "resource version"))
            .collect()
    }

    /// The resource called `name`: the live one first learned (lowest seq) if
    /// several carry the name; a deleted one only if `include_deleted` and no
    /// live one has the name.
    fn find_resource(
        &self,
        gid: &[u8],
        group: &str,
        name: &str,
        include_deleted: bool,
    ) -> Result<([u8; 16], ResourceRecord)> {
        let mut live: Option<([u8; 16], ResourceRecord)> = None;
        let mut dead: Option<([u8; 16], ResourceRecord)> = None;
        for (key, value) in self.provider.storage().scan_prefix_app(ns::RESOURCES, &group_prefix(gid))? {
            let rec: ResourceRecord = decode(&value, "resource record")?;
            if rec.name != name {
                continue;
            }
            let rid: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| corrupt_key())?;
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

    // ------------------------------------------------------------ writes

    /// Stores `source` as a new version of resource `name` in `group` (a new
    /// resource if no live one has that name). Syncs the group first, so the
    /// version number follows the newest one known. The content is encrypted
    /// and uploaded as it is read (memory stays bounded); then the manifest is
    /// sent to the group. Returns the new version.
    ///
    /// Fails with [`Error::KeyChanged`] while a member's key differs from the
    /// pinned one (the manifest carries the key to every member).
    pub async fn put_resource<R>(
        &self,
        group: &str,
        name: &str,
        source: R,
        progress: Option<Progress>,
    ) -> Result<ResourceInfo>
    where
        R: Read + Send + 'static,
    {
        validate_name(name)?;
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.sync_group(&gid, &mut super::SyncReport::default()).await?;
        self.require_active(&gid)?;
        self.check_member_keys(&gid)?;
        let (rid, version) = match self.find_resource(&gid, group, name, false) {
            Ok((rid, _)) => (rid, self.versions_of(&gid, &rid)?.last().map_or(1, |v| v.manifest.version + 1)),
            Err(Error::UnknownResource { .. } | Error::ResourceDeleted { .. }) => {
                let mut rid = [0u8; 16];
                rand::rng().fill_bytes(&mut rid);
                (rid, 1)
            }
            Err(e) => return Err(e),
        };
        let key = ContentKey::generate();
        let (blob, sealed) = self.upload(&gid, name, rid, version, key.clone(), source, progress).await?;
        let manifest = Manifest {
            resource_id: hex::encode(rid),
            name: name.to_owned(),
            version,
            blob_id: blob.blob_id.clone(),
            key: hex::encode(key.as_bytes()),
            content_hash: hex::encode(sealed.content_hash),
            size: sealed.size,
            blob_size: sealed.blob_size,
            author: self.id.user.clone(),
            time: now(),
        };
        let seq = match self.send_payload(&gid, &Envelope::ResourceVersion { manifest }, None).await {
            Ok(seq) => seq,
            Err(e @ Error::Server { status: 400..=499, .. }) => {
                // Refused for good: the blob is garbage now.
                let _ = self.ds.delete_blob(&b64url(&gid), &blob.blob_id).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let v = self
            .versions_of(&gid, &rid)?
            .into_iter()
            .find(|v| v.seq == seq)
            .ok_or_else(|| Error::Protocol("the new version was not recorded".into()))?;
        Ok(info(&v))
    }

    /// Encrypts `source` on a blocking thread and streams it to the DS.
    #[allow(clippy::too_many_arguments)]
    async fn upload<R: Read + Send + 'static>(
        &self,
        gid: &[u8],
        name: &str,
        rid: [u8; 16],
        version: u64,
        key: ContentKey,
        source: R,
        progress: Option<Progress>,
    ) -> Result<(grove_proto::BlobCreatedResponse, resource_crypto::Sealed)> {
        let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_DEPTH);
        let abort = tx.clone();
        let group_id = gid.to_vec();
        let seal = tokio::task::spawn_blocking(move || {
            let ctx = BlobContext { group_id: &group_id, resource_id: rid, version };
            let source = Counting { inner: source, done: 0, progress };
            let result = resource_crypto::seal(&key, &ctx, source, ChannelWriter { tx, buf: Vec::new() });
            if result.is_err() {
                // Make the HTTP body fail, so the DS drops the partial blob.
                let _ = abort.blocking_send(Err(std::io::Error::other("reading the content failed")));
            }
            result
        });
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let gpath = b64url(gid);
        let upload = self.ds.upload_blob(&gpath, reqwest::Body::wrap_stream(stream));
        let (uploaded, sealed) = tokio::join!(upload, seal);
        let sealed = sealed
            .map_err(|e| Error::ResourceIo { name: name.to_owned(), reason: format!("encryption task: {e}") })
            .and_then(|r| r.map_err(|e| corrupt(name, version, e)));
        match (uploaded, sealed) {
            (Ok(blob), Ok(sealed)) => {
                if blob.size != sealed.blob_size {
                    let _ = self.ds.delete_blob(&b64url(gid), &blob.blob_id).await;
                    return Err(Error::Protocol(format!(
                        "the DS stored {} bytes of a {}-byte blob",
                        blob.size, sealed.blob_size
                    )));
                }
                Ok((blob, sealed))
            }
            (Ok(blob), Err(e)) => {
                let _ = self.ds.delete_blob(&b64url(gid), &blob.blob_id).await;
                Err(e)
            }
            // Reading the source failed: say so, not "network error".
            (Err(_), Err(Error::ResourceIo { name, reason })) if !reason.contains(UPLOAD_STOPPED) => {
                Err(Error::ResourceIo { name, reason })
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Writes version `version` (default: the newest) of resource `name` to
    /// `out`, streaming: the blob is downloaded, every chunk authenticated and
    /// the content checked against the manifest (size, padding, BLAKE3 hash).
    /// Only authenticated bytes reach `out`, but on error what was written is
    /// incomplete and must be discarded ([`get_resource_to_file`](Self::get_resource_to_file)
    /// does that). Returns `out` and the version read.
    pub async fn get_resource<W>(
        &self,
        group: &str,
        name: &str,
        version: Option<u64>,
        out: W,
        progress: Option<Progress>,
    ) -> Result<(W, ResourceInfo)>
    where
        W: Write + Send + 'static,
    {
        let gid = self.resolve_group(group)?;
        let (rid, _) = self.find_resource(&gid, group, name, false)?;
        let versions = self.versions_of(&gid, &rid)?;
        let chosen = match version {
            None => versions.last(),
            Some(n) => versions.iter().rev().find(|v| v.manifest.version == n),
        }
        .ok_or_else(|| Error::UnknownResource { group: group.to_owned(), name: name.to_owned(), version })?
        .clone();
        let m = &chosen.manifest;
        let key = ContentKey::from_bytes(parse_hex("key", &m.key)?);
        let expected = Expected { size: m.size, content_hash: parse_hex("content hash", &m.content_hash)? };
        let resp = self.ds.download_blob(&b64url(&gid), &m.blob_id).await?;

        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_DEPTH);
        let pump = async move {
            let mut body = resp.bytes_stream();
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|e| std::io::Error::other(format!("network: {e}")));
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    break;
                }
            }
        };
        let (group_id, version_n) = (gid.clone(), m.version);
        let open = tokio::task::spawn_blocking(move || {
            let ctx = BlobContext { group_id: &group_id, resource_id: rid, version: version_n };
            let mut sink = Counting { inner: out, done: 0, progress };
            let r = resource_crypto::open(&key, &ctx, ChannelReader { rx, cur: Bytes::new() }, &mut sink, &expected);
            r.map(|_| sink.inner)
        });
        let ((), opened) = tokio::join!(pump, open);
        let out = opened
            .map_err(|e| Error::ResourceIo { name: name.to_owned(), reason: format!("decryption task: {e}") })?
            .map_err(|e| match e {
                ResourceCryptoError::Io(io) if io.to_string().starts_with("network:") => {
                    Error::Network(format!("downloading {name}: {io}"))
                }
                other => corrupt(name, version_n, other),
            })?;
        Ok((out, info(&chosen)))
    }

    /// Like [`get_resource`](Self::get_resource), into the file `path`: written
    /// to a temporary file beside it, synced, and renamed over `path` only
    /// once every check passed. On error `path` is untouched.
    pub async fn get_resource_to_file(
        &self,
        group: &str,
        name: &str,
        version: Option<u64>,
        path: &Path,
        progress: Option<Progress>,
    ) -> Result<ResourceInfo> {
        let io_err =
            |e: std::io::Error| Error::ResourceIo { name: name.to_owned(), reason: format!("{}: {e}", path.display()) };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new().prefix(".grove-get-").tempfile_in(&dir).map_err(io_err)?;
        let (tmp, info) = self.get_resource(group, name, version, tmp, progress).await?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(path).map_err(|e| io_err(e.error))?;
        Ok(info)
    }

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
        self.sync_group(&gid, &mut super::SyncReport::default()).await?;
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
    pub(super) async fn announce_to_new_members(&self, gid: &[u8], added: &[String]) -> Result<()> {
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

    // ------------------------------------------------------------ records

    /// Applies an own resource envelope (JSON bytes from the outbox) once the
    /// DS accepted it at `seq`.
    pub(super) fn apply_own_envelope(&self, p: &TxnProvider<'_>, gid: &[u8], env: &[u8], seq: u64) -> Result<()> {
        let env: Envelope = serde_json::from_slice(env).map_err(|e| {
            Error::Storage(crate::storage::StorageError::Corrupt {
                what: "outbox envelope".into(),
                reason: e.to_string(),
            })
        })?;
        let epoch = match MlsGroup::load(p.storage(), &GroupId::from_slice(gid))? {
            Some(g) => g.epoch().as_u64(),
            None => 0,
        };
        self.apply_resource_envelope(p, gid, &env, &self.id.user, seq, epoch)
    }

    /// Records a resource envelope sent by `sender` at log position `seq`.
    /// Idempotent (keys depend on `seq`). A malformed or forged envelope is an
    /// [`Error::Protocol`], which the caller reports and skips.
    pub(super) fn apply_resource_envelope(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        env: &Envelope,
        sender: &str,
        seq: u64,
        epoch: u64,
    ) -> Result<()> {
        let s = p.storage();
        let log = |time: u64, event: ResourceEvent| -> Result<()> {
            let rec = ResourceEventRecord { seq, epoch, by: sender.to_owned(), time, event };
            s.put_app_value(ns::RESOURCE_LOG, &event_key(gid, seq, 0), &rec)?;
            Ok(())
        };
        match env {
            Envelope::ResourceVersion { manifest } => {
                validate_manifest(manifest)?;
                if manifest.author != sender {
                    return Err(Error::Protocol(format!(
                        "a manifest naming {} as author was sent by {sender}",
                        manifest.author
                    )));
                }
                self.record_version(p, gid, manifest, seq, epoch, None)?;
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
                let key = resource_key(gid, &rid);
                if let Some(mut rec) = s.get_app_value::<ResourceRecord>(ns::RESOURCES, &key)? {
                    rec.deleted = Some((sender.to_owned(), *time));
                    s.put_app_value(ns::RESOURCES, &key, &rec)?;
                }
                log(*time, ResourceEvent::Deleted { resource_id: resource_id.clone(), name: name.clone() })
            }
            Envelope::HistoryPolicy { policy, time } => {
                if let Some(mut rec) = s.get_app_value::<GroupRecord>(ns::GROUPS, gid)? {
                    rec.history = *policy;
                    s.put_app_value(ns::GROUPS, gid, &rec)?;
                }
                log(*time, ResourceEvent::Policy { policy: *policy })
            }
            Envelope::KeyBundle { recipients, manifests, time } => {
                let mut shared = Vec::new();
                for m in manifests {
                    validate_manifest(m)?;
                    let rid = parse_hex::<16>("resource id", &m.resource_id)?;
                    let mut known = resource_key(gid, &rid);
                    known.extend_from_slice(&m.version.to_be_bytes());
                    if s.scan_prefix_app(ns::VERSIONS, &known)?.is_empty() {
                        self.record_version(p, gid, m, seq, epoch, Some(sender))?;
                    }
                    shared.push((m.resource_id.clone(), m.name.clone(), m.version));
                }
                log(*time, ResourceEvent::Shared { recipients: recipients.clone(), resources: shared })
            }
            Envelope::Text { .. } | Envelope::GroupName { .. } => Ok(()),
        }
    }

    fn record_version(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        m: &Manifest,
        seq: u64,
        epoch: u64,
        shared_by: Option<&str>,
    ) -> Result<()> {
        let s = p.storage();
        let rid = parse_hex::<16>("resource id", &m.resource_id)?;
        let rkey = resource_key(gid, &rid);
        let rec = match s.get_app_value::<ResourceRecord>(ns::RESOURCES, &rkey)? {
            // A version newer than a deletion brings the resource back (it was
            // written by someone who had not seen the deletion yet).
            Some(mut r) => {
                if shared_by.is_none() {
                    r.name = m.name.clone();
                    r.deleted = None;
                }
                r
            }
            None => ResourceRecord { name: m.name.clone(), first_seq: seq, deleted: None },
        };
        s.put_app_value(ns::RESOURCES, &rkey, &rec)?;
        let v = VersionRecord { manifest: m.clone(), seq, epoch, shared_by: shared_by.map(str::to_owned) };
        s.put_app_value(ns::VERSIONS, &version_key(gid, &rid, m.version, seq), &v)?;
        Ok(())
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

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    use crate::storage::{DefaultCodec, ValueCodec};
    <DefaultCodec as ValueCodec>::decode(bytes)
        .map_err(|reason| Error::Storage(crate::storage::StorageError::Corrupt { what: what.to_owned(), reason }))
}

fn corrupt_key() -> Error {
    Error::Storage(crate::storage::StorageError::Corrupt { what: "resource key".into(), reason: "too short".into() })
}
