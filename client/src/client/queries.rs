//! Queries: what this client knows of its groups (no state changes; they do
//! not wait for a running operation), and the raw views a test or an
//! auditor needs.

use grove_proto as proto;
use openmls::prelude::*;
use tls_codec::Deserialize as _;

use super::{b64url, identity_of, Client, GroupSummary, KeyStatus, MemberInfo, PAGE};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{GroupState, StoredMessage};

impl Client {
    /// Every group this client knows, including ones it left.
    pub fn groups(&self) -> Result<Vec<GroupSummary>> {
        let mut out = Vec::new();
        for (gid, rec) in self.repo().groups().all()? {
            let g = self.try_group(&gid)?;
            out.push(GroupSummary {
                id: b64url(&gid),
                name: rec.name,
                epoch: g.as_ref().map_or(0, |g| g.epoch().as_u64()),
                state: rec.state,
                members: g.as_ref().map_or(0, |g| g.members().count()),
                cursor: rec.cursor,
                successor: rec.successor,
                successor_by: rec.successor_by,
            });
        }
        Ok(out)
    }

    /// The group's members (users, with how many devices each has in the
    /// group) as this client's MLS state sees them, in leaf order.
    pub fn members(&self, group: &str) -> Result<Vec<MemberInfo>> {
        let gid = self.resolve_group(group)?;
        let g = self.try_group(&gid)?.ok_or_else(|| Error::UnknownGroup(group.to_owned()))?;
        let mut out: Vec<MemberInfo> = Vec::new();
        for m in g.members() {
            let user = identity_of(&m.credential);
            let pin_key = self.pin_key(&user, &m.credential, &m.signature_key);
            if let Some(seen) = out.iter_mut().find(|o| o.user == user) {
                seen.devices += 1;
                // Every device of a user stands for the same identity key.
                if seen.fingerprint != proto::fingerprint(&pin_key) && seen.key != KeyStatus::Own {
                    seen.key = KeyStatus::Changed;
                }
                continue;
            }
            let key = if user == self.id.user {
                KeyStatus::Own
            } else {
                match self.contact(&user)? {
                    Some(c) if c.key != pin_key || c.pending.is_some() => KeyStatus::Changed,
                    Some(c) if c.verified => KeyStatus::Verified,
                    _ => KeyStatus::Pinned,
                }
            };
            out.push(MemberInfo {
                user,
                leaf_index: m.index.u32(),
                fingerprint: proto::fingerprint(&pin_key),
                key,
                devices: 1,
            });
        }
        Ok(out)
    }

    /// The group's stored message history, in log order (unconfirmed own
    /// messages last).
    pub fn messages(&self, group: &str) -> Result<Vec<StoredMessage>> {
        let gid = self.resolve_group(group)?;
        let mut list = self.repo().messages().list(&gid)?;
        // Log order; own messages the DS has not confirmed yet come last. (Stored
        // order is local: an own message sealed before a sync that brought
        // earlier messages would otherwise come first.) The sort is stable.
        list.sort_by_key(|m| m.seq.unwrap_or(u64::MAX));
        Ok(list)
    }

    /// The group's current epoch.
    pub fn epoch(&self, gid: &[u8]) -> Result<u64> {
        Ok(self.group(gid)?.epoch().as_u64())
    }

    /// The group's epoch and epoch authenticator (equal across members in the
    /// same epoch unless the group forked).
    pub fn epoch_authenticator(&self, group: &str) -> Result<(u64, Vec<u8>)> {
        let gid = self.resolve_group(group)?;
        let g = self.try_group(&gid)?.ok_or_else(|| Error::UnknownGroup(group.to_owned()))?;
        Ok((g.epoch().as_u64(), g.epoch_authenticator().as_slice().to_vec()))
    }

    /// The group's state (`active`, `leaving`, `left`) and cursor.
    pub fn group_state(&self, group: &str) -> Result<(GroupState, u64)> {
        let rec = self.group_record(&self.resolve_group(group)?)?;
        Ok((rec.state, rec.cursor))
    }

    /// Fetches raw log entries as the DS serves them to this user (what the
    /// DS stores: ciphertext for application data).
    pub async fn fetch_log(&self, group: &str, after: u64) -> Result<proto::MessagesPage> {
        let gid = self.resolve_group(group)?;
        self.ds.fetch(&b64url(&gid), after, PAGE).await
    }

    /// The DS's public view of the group (roster, epoch, last seq).
    pub async fn server_view(&self, group: &str) -> Result<proto::GroupResponse> {
        let gid = self.resolve_group(group)?;
        self.ds.group(&b64url(&gid)).await
    }

    /// Tries to decrypt a raw MLSMessage with the group's current state,
    /// without keeping any change. Fails if this client has no key for it.
    pub fn try_decrypt(&self, group: &str, message: &[u8]) -> Result<Vec<u8>> {
        let gid = self.resolve_group(group)?;
        let p = self.provider.begin();
        let mut g = Self::load(&p, &gid)?;
        let pm =
            MlsMessageIn::tls_deserialize_exact(message).mls("decode")?.try_into_protocol_message().mls("decode")?;
        let processed = g.process_message(&p, pm).mls("decrypt")?;
        p.rollback();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(a) => Ok(a.into_bytes()),
            _ => Err(Error::mls_because("decrypt", "not an application message".into())),
        }
    }
}
