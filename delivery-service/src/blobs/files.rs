//! The file blob store: one file per blob under
//! `<data dir>/blobs/<group internal id>/<blob id>`.
//!
//! Blobs are streamed to disk, never held whole in memory. An upload is
//! written to a temporary file, fsynced, renamed into place and the directory
//! fsynced before the DS answers 201, so an acknowledged blob survives a crash;
//! an interrupted upload leaves only a temporary file, removed at the next
//! start. Blob ids are 128 random bits in hex, chosen by the DS.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt as _};

use crate::error::DsError;

/// Write buffer of an upload: the writer thread gets this many bytes at a time.
const WRITE_BUFFER: usize = 1 << 20;
/// Buffers queued for an upload's writer thread.
const WRITE_QUEUE: usize = 4;
/// An upload's writer syncs the data written so far every this many bytes.
const SYNC_EVERY: usize = 8 << 20;
/// Read size of a download: one blocking-pool hop and one HTTP frame each.
pub const READ_BUFFER: usize = 256 * 1024;

use super::valid_blob_id;

/// The filesystem blob store.
#[derive(Debug, Clone)]
pub struct FileBlobs {
    root: PathBuf,
    max_bytes: u64,
}

fn io(what: &str, e: std::io::Error) -> DsError {
    DsError::Storage(crate::store::StoreError::Db(format!("blob store: {what}: {e}")))
}

impl FileBlobs {
    /// Opens (creates) the store in `root`; removes temporary files left by
    /// uploads that a crash interrupted.
    pub fn open(root: &Path, max_bytes: u64) -> Result<Self, DsError> {
        std::fs::create_dir_all(root).map_err(|e| io("creating the blob directory", e))?;
        if let Ok(groups) = std::fs::read_dir(root) {
            for g in groups.flatten() {
                if let Ok(files) = std::fs::read_dir(g.path()) {
                    for f in files.flatten() {
                        if f.file_name().to_string_lossy().starts_with(".tmp-") {
                            let _ = std::fs::remove_file(f.path());
                        }
                    }
                }
            }
        }
        Ok(FileBlobs { root: root.to_path_buf(), max_bytes })
    }

    fn dir(&self, internal_id: u64) -> PathBuf {
        self.root.join(format!("{internal_id:016x}"))
    }

    fn path(&self, internal_id: u64, id: &str) -> Result<PathBuf, DsError> {
        if !valid_blob_id(id) {
            return Err(DsError::InvalidBlobId);
        }
        Ok(self.dir(internal_id).join(id))
    }

    /// Largest accepted blob.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Streams `body` into a new blob of the group; returns its id and size.
    /// Refuses (and deletes) a blob larger than the limit.
    pub async fn put<S, E>(&self, internal_id: u64, mut body: S) -> Result<(String, u64), DsError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dir = self.dir(internal_id);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| io("creating the group's blob directory", e))?;
        let id = super::new_blob_id();
        let tmp = dir.join(format!(".tmp-{id}"));
        // Deletes the partial file however this future ends, including when
        // it is dropped because the client disconnected mid-upload.
        let mut guard = TmpFile(Some(tmp.clone()));
        let result = async {
            // A blocking writer thread gets 1 MiB buffers through a bounded
            // channel (memory per upload: a few MiB), writes them and syncs
            // every SYNC_EVERY bytes, so the disk works while the body still
            // arrives and the final fsync only has the tail left.
            let file = std::fs::File::create(&tmp).map_err(|e| io("creating a blob", e))?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
            let writer = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                use std::io::Write as _;
                let mut file = file;
                let mut unsynced = 0usize;
                while let Some(buf) = rx.blocking_recv() {
                    file.write_all(&buf)?;
                    unsynced += buf.len();
                    if unsynced >= SYNC_EVERY {
                        file.sync_data()?;
                        unsynced = 0;
                    }
                }
                file.sync_all()?;
                Ok(file)
            });
            let mut size = 0u64;
            let mut buf = Vec::with_capacity(WRITE_BUFFER);
            let received = async {
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| DsError::UploadInterrupted(e.to_string()))?;
                    size += chunk.len() as u64;
                    if size > self.max_bytes {
                        return Err(DsError::BlobTooLarge { max: self.max_bytes });
                    }
                    buf.extend_from_slice(&chunk);
                    if buf.len() >= WRITE_BUFFER {
                        let full = std::mem::replace(&mut buf, Vec::with_capacity(WRITE_BUFFER));
                        if tx.send(full).await.is_err() {
                            break; // the writer failed: its error is reported below
                        }
                    }
                }
                if !buf.is_empty() {
                    let _ = tx.send(std::mem::take(&mut buf)).await;
                }
                Ok(())
            }
            .await;
            // Closing the channel ends the writer (it syncs on a clean end).
            drop(tx);
            let written = writer.await.map_err(|e| DsError::Internal(format!("blob writer task: {e}")));
            received?;
            written?.map_err(|e| io("writing a blob", e))?;
            Ok(size)
        }
        .await;
        let size = match result {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let fin = dir.join(&id);
        tokio::fs::rename(&tmp, &fin).await.map_err(|e| io("publishing a blob", e))?;
        guard.0 = None;
        let d = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&d).and_then(|f| f.sync_all()))
            .await
            .map_err(|e| DsError::Internal(format!("blob dir sync task: {e}")))?
            .map_err(|e| io("syncing the blob directory", e))?;
        Ok((id, size))
    }

    /// Opens a blob for streaming; `None` if there is no such blob.
    pub async fn open_blob(&self, internal_id: u64, id: &str) -> Result<Option<(tokio::fs::File, u64)>, DsError> {
        let path = self.path(internal_id, id)?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => {
                let len = f.metadata().await.map_err(|e| io("reading a blob", e))?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("opening a blob", e)),
        }
    }

    /// Deletes a blob; returns whether it existed.
    pub async fn delete(&self, internal_id: u64, id: &str) -> Result<bool, DsError> {
        let path = self.path(internal_id, id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("deleting a blob", e)),
        }
    }
}

/// A partial upload, deleted on drop unless published.
struct TmpFile(Option<PathBuf>);

impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}
