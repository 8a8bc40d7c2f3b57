//! The outbox: an own message is encrypted and stored (with its ciphertext)
//! before it is posted; the DS's 201 or its echo in the log confirms it, and
//! the next sync posts it again, unchanged, if its first post had an unknown
//! outcome and the log lacks it.

use openmls::prelude::*;
use tls_codec::Serialize as _;

use super::fork::fork_tag;
use super::groups::{padded_join_config, padding_block};
use super::resources::Origin;
use super::{b64url, hash, Client, Fault, SyncReport};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{Envelope, GroupState, OutboxEntry, StoredMessage};
use crate::repo::Repo;
use crate::storage::TxnProvider;
use grove_proto as proto;

impl Client {
    /// Sends a text message. The group state (sender ratchet advanced) and the
    /// message are on disk before the message leaves the device. Returns the
    /// message's log sequence number.
    ///
    /// Fails with [`Error::KeyChanged`] while a member's key differs from the
    /// key pinned for that user (until [`trust_new_key`](Self::trust_new_key)),
    /// and with [`Error::UnlistedDevice`] while a member's device is not in
    /// its user's verified device list.
    pub async fn send(&self, group: &str, text: &str) -> Result<u64> {
        let _op = self.ops.lock().await;
        let gid = self.resolve_group(group)?;
        self.require_active(&gid)?;
        self.check_members(&gid).await?;
        let seq = self.send_payload(&gid, &Envelope::Text { text: text.to_owned() }, Some(text)).await?;
        self.update_if_due_after(&gid).await;
        Ok(seq)
    }

    /// Encrypts `env`, stores it in the outbox (and `text` in the history),
    /// posts it; on `409 stale_epoch` drops it, waits (see [`super::retry`]),
    /// syncs and encrypts it again.
    pub(super) async fn send_payload(&self, gid: &[u8], env: &Envelope, text: Option<&str>) -> Result<u64> {
        let payload = serde_json::to_vec(env).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut backoff = self.backoff();
        loop {
            // A sync after a 409 may have found a fork: stop there too.
            self.require_no_fork(gid)?;
            let envelope = env.is_resource().then(|| payload.clone());
            let (bytes, local) = self.provider.transaction(|p| self.seal_message(p, gid, &payload, envelope, text))?;
            if self.fault() == Some(Fault::StopBeforeSend) {
                return Err(Error::InjectedFault("stopped before posting the message"));
            }
            match self.ds.post_message(&b64url(gid), bytes.clone()).await {
                Ok(_) if self.fault() == Some(Fault::StopAfterSendAccepted) => {
                    return Err(Error::InjectedFault("stopped after the DS accepted the message"));
                }
                Ok(posted) => {
                    self.provider.transaction(|p| -> Result<()> {
                        if let Some(local) = local {
                            Repo::of(p).messages().confirm(gid, local, posted.seq)?;
                        }
                        Repo::of(p).groups().update(gid, |r| r.sent_since_update += 1)?;
                        if env.is_resource() {
                            let epoch = Self::load(p, gid)?.epoch().as_u64();
                            let at = Origin { sender: &self.id.user, seq: posted.seq, epoch };
                            self.apply_resource_envelope(p, gid, env, &at)?;
                        }
                        Ok(())
                    })?;
                    return Ok(posted.seq);
                }
                Err(Error::Server { status: 409, code: proto::ErrorCode::StaleEpoch, .. }) => {
                    // Refused for good: drop this ciphertext, catch up, re-encrypt.
                    self.provider.transaction(|p| -> Result<()> {
                        let repo = Repo::of(p);
                        repo.outbox().remove(&hash(&bytes))?;
                        match local {
                            Some(local) => repo.messages().remove(gid, local),
                            None => Ok(()),
                        }
                    })?;
                    if !backoff.pause().await {
                        return Err(backoff.exhausted("send"));
                    }
                    self.sync_group(gid, &mut SyncReport::default()).await?;
                }
                Err(e) => return Err(self.epoch_rollback(gid, e)?),
            }
        }
    }

    /// Encrypts `payload` in `p`, stores `text` (if any) as an unconfirmed own
    /// message and the ciphertext in the outbox. Returns the ciphertext and
    /// the message's local id.
    fn seal_message(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        payload: &[u8],
        envelope: Option<Vec<u8>>,
        text: Option<&str>,
    ) -> Result<(Vec<u8>, Option<u64>)> {
        let repo = Repo::of(p);
        let mut rec = repo.groups().require(gid)?;
        let mut g = Self::load(p, gid)?;
        // Pad to the length's bucket: the configuration is what openmls pads
        // by, kept in the group's state (one small write when the bucket changes).
        let block = padding_block(payload.len());
        if g.configuration().padding_size() != block {
            g.set_configuration(p.storage(), &padded_join_config(block))?;
        }
        let mut aad = fork_tag(&g);
        aad.extend(super::kt::gossip_of(repo.meta().kt()?));
        g.set_aad(aad);
        let msg = g.create_message(p, self.signer.as_ref(), payload).mls("encrypt")?;
        let bytes = msg.tls_serialize_detached().mls("encode")?;
        let local = match text {
            Some(t) => {
                let local = rec.next_local;
                rec.next_local += 1;
                let m = StoredMessage {
                    seq: None,
                    epoch: g.epoch().as_u64(),
                    sender: self.id.user.clone(),
                    text: t.to_owned(),
                    own: true,
                };
                repo.messages().put(gid, local, &m)?;
                repo.groups().put(gid, &rec)?;
                Some(local)
            }
            None => None,
        };
        let entry = OutboxEntry { group: gid.to_vec(), local, message: bytes.clone(), envelope };
        repo.outbox().put(&hash(&bytes), &entry)?;
        Ok((bytes, local))
    }

    /// Posts again the own text messages whose first post had an unknown
    /// outcome (a crash before or during it, a network error) and that the
    /// log, fetched to its end, does not hold. The bytes are the ones stored
    /// before the first attempt: no new encryption, so no key or nonce reuse.
    /// A message the DS now refuses for good (too old an epoch) stays in the
    /// history as unsent.
    pub(super) async fn resend_unconfirmed(&self, gid: &[u8]) -> Result<()> {
        let rec = self.group_record(gid)?;
        if rec.state == GroupState::Left || rec.rollback.is_some() || rec.fork.is_some() {
            return Ok(());
        }
        let todo: Vec<(Vec<u8>, OutboxEntry)> = self
            .repo()
            .outbox()
            .of_group(gid)?
            .into_iter()
            .filter(|(_, e)| (e.local.is_some() || e.envelope.is_some()) && !e.message.is_empty())
            .collect();
        for (key, entry) in todo {
            let result = self.ds.post_message(&b64url(gid), entry.message.clone()).await;
            let seq = match result {
                Ok(posted) => Some(posted.seq),
                Err(Error::Server { status: 400..=499, .. }) => None,
                Err(e) => return Err(e),
            };
            self.provider.transaction(|p| -> Result<()> {
                if let Some(seq) = seq {
                    self.confirm_outbox_entry(p, gid, &entry, seq)?;
                }
                Repo::of(p).outbox().remove(&key)
            })?;
        }
        Ok(())
    }

    /// Applies what an own message, now accepted at `seq`, confirms: the
    /// history entry's position and the resource envelope's records.
    pub(super) fn confirm_outbox_entry(
        &self,
        p: &TxnProvider<'_>,
        gid: &[u8],
        entry: &OutboxEntry,
        seq: u64,
    ) -> Result<()> {
        if let Some(local) = entry.local {
            Repo::of(p).messages().confirm(gid, local, seq)?;
        }
        if let Some(env) = &entry.envelope {
            self.apply_own_envelope(p, gid, env, seq)?;
        }
        Ok(())
    }
}
