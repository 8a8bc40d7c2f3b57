//! Blobs: who may put, get and delete a group's encrypted blobs (its current
//! members) in front of [`crate::blobs::BlobStore`], which holds the bytes.

use super::Ds;
use crate::api;
use crate::api::GroupId;
use crate::error::DsError;

impl Ds {
    /// The internal id of a group `user` is a current member of (removed
    /// members are refused: blobs hold current data).
    async fn member_group(&self, user: &str, gid: &[u8]) -> Result<u64, DsError> {
        Ok(self.member_rt(user, gid).await?.internal_id)
    }

    /// Streams an encrypted blob into the group's blob store.
    pub async fn put_blob<S, E>(&self, user: &str, gid: &GroupId, body: S) -> Result<api::BlobCreatedResponse, DsError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let gid = gid.as_bytes();
        let internal = self.member_group(user, gid).await?;
        let (blob_id, size) = self.blobs.put(internal, body).await?;
        tracing::info!(group = %api::group_id_to_path(gid), %blob_id, size, "blob stored");
        Ok(api::BlobCreatedResponse { blob_id, size })
    }

    /// Opens a blob of the group for a current member.
    pub async fn get_blob(
        &self,
        user: &str,
        gid: &GroupId,
        id: &str,
    ) -> Result<(crate::blobs::BlobBody, u64), DsError> {
        let gid = gid.as_bytes();
        let internal = self.member_group(user, gid).await?;
        self.blobs.open_blob(internal, id).await?.ok_or(DsError::UnknownBlob)
    }

    /// Deletes a blob of the group (current members).
    pub async fn delete_blob(&self, user: &str, gid: &GroupId, id: &str) -> Result<(), DsError> {
        let gid = gid.as_bytes();
        let internal = self.member_group(user, gid).await?;
        if self.blobs.delete(internal, id).await? {
            Ok(())
        } else {
            Err(DsError::UnknownBlob)
        }
    }
}
