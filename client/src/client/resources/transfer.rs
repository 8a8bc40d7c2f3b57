//! Moving resource content: encrypting and uploading a new version,
//! downloading and checking one, streamed through bounded channels.

use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt as _;
use rand::RngCore as _;
use tokio::sync::mpsc;

use super::{
    corrupt, info, now, parse_hex, validate_name, Progress, ResourceInfo, CHANNEL_DEPTH, UPLOAD_PIECE, UPLOAD_STOPPED,
};
use crate::client::{b64url, Client, SyncReport};
use crate::error::{Error, Result};
use crate::records::{Envelope, Manifest};
use crate::repo::ResourceId;
use crate::resource_crypto::{self, BlobContext, ContentKey, Expected, ResourceCryptoError};

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
        self.sync_group(&gid, &mut SyncReport::default()).await?;
        self.require_active(&gid)?;
        self.check_members(&gid).await?;
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
        rid: ResourceId,
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
}
