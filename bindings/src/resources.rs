//! Resources on [`GroveClient`]: encrypted files and records shared with a
//! group, each version a blob on the DS under a key only members hold.

use crate::types::{Resource, ResourceEvent};
use crate::{GroveClient, GroveError, Result};

#[uniffi::export(async_runtime = "tokio")]
impl GroveClient {
    /// Stores `data` as the next version of the resource `name` in a group.
    /// For large content, prefer [`put_resource_file`](Self::put_resource_file),
    /// which streams.
    pub async fn put_resource(&self, group: String, name: String, data: Vec<u8>) -> Result<Resource> {
        let source = std::io::Cursor::new(data);
        Ok(self.client()?.put_resource(&group, &name, source, None).await?.into())
    }

    /// Stores the file at `path` as the next version of `name` (streamed).
    pub async fn put_resource_file(&self, group: String, name: String, path: String) -> Result<Resource> {
        let file = std::fs::File::open(&path).map_err(|e| {
            GroveError::new("resource_io", format!("cannot read {path}: {e}; check the path and permissions"), false)
        })?;
        Ok(self.client()?.put_resource(&group, &name, file, None).await?.into())
    }

    /// A version of a resource (the newest when `version` is `None`), in
    /// memory. Verified against its content hash before it is returned.
    pub async fn get_resource(&self, group: String, name: String, version: Option<u64>) -> Result<Vec<u8>> {
        let (data, _) = self.client()?.get_resource(&group, &name, version, Vec::new(), None).await?;
        Ok(data)
    }

    /// Like [`get_resource`](Self::get_resource), into the file at `path`:
    /// all or nothing (a temporary file renamed once verified).
    pub async fn get_resource_to_file(
        &self,
        group: String,
        name: String,
        version: Option<u64>,
        path: String,
    ) -> Result<Resource> {
        let path = std::path::PathBuf::from(path);
        Ok(self.client()?.get_resource_to_file(&group, &name, version, &path, None).await?.into())
    }

    /// The newest version of every resource of a group (local).
    pub fn resources(&self, group: String) -> Result<Vec<Resource>> {
        Ok(self.client()?.resources(&group)?.into_iter().map(Into::into).collect())
    }

    /// The history of one resource (local).
    pub fn resource_history(&self, group: String, name: String) -> Result<Vec<ResourceEvent>> {
        Ok(self.client()?.resource_history(&group, &name)?.into_iter().map(Into::into).collect())
    }

    /// Changes the group's history policy for members added from now on
    /// (see [`create_group`](Self::create_group)); every member is told.
    pub async fn set_history_policy(&self, group: String, share_history: bool) -> Result<()> {
        Ok(self.client()?.set_history_policy(&group, crate::types::history_policy(share_history)).await?)
    }

    /// Whether members added to the group get the current resources' keys.
    pub fn shares_history(&self, group: String) -> Result<bool> {
        Ok(self.client()?.history_policy(&group)? == grove_client::HistoryPolicy::Share)
    }

    /// Deletes a resource for every member (its blobs too).
    pub async fn delete_resource(&self, group: String, name: String) -> Result<Resource> {
        Ok(self.client()?.delete_resource(&group, &name).await?.into())
    }
}
