//! [`Store`] for [`SledStore`]: point reads and writes run inline (sled
//! answers them from memory), scans run on the blocking pool. Also the auth
//! trees (`tokens`, `challenges`), whose values are the user name, 0x00, the
//! expiry (u64 BE), and for a device's token the device id (absent in
//! records written before devices existed), the `device_lists` tree, and the
//! `links` tree (link requests, TLS-encoded [`LinkValue`]s).

use super::sled_store::{Inner, SledStore};
use super::{
    Addressed, GroupRecord, KeyPackageBatch, KeyPackageCounts, KeyPackageKind, LinkRecord, LogEntry, RegisterOutcome,
    Store, StoreError, StoreResult, TokenRecord, UserRecord, WelcomeEntry,
};
use crate::store::records::corrupt;

fn auth_value(t: &TokenRecord) -> Vec<u8> {
    let device = t.device.as_deref().unwrap_or("");
    let mut v = Vec::with_capacity(t.user.len() + 9 + device.len());
    v.extend_from_slice(t.user.as_bytes());
    v.push(0);
    v.extend_from_slice(&t.expires_at.to_be_bytes());
    v.extend_from_slice(device.as_bytes());
    v
}

pub(super) fn auth_record(v: &[u8]) -> StoreResult<TokenRecord> {
    // User names never contain 0x00, so the first one ends the name.
    let at = v.iter().position(|b| *b == 0).ok_or_else(|| corrupt("token", "no user name"))?;
    let user = String::from_utf8(v[..at].to_vec()).map_err(|e| corrupt("token", e))?;
    let exp = v.get(at + 1..at + 9).ok_or_else(|| corrupt("token", "too short"))?;
    let expires_at = u64::from_be_bytes(exp.try_into().map_err(|_| corrupt("token", "expiry"))?);
    let rest = &v[at + 9..];
    let device =
        if rest.is_empty() { None } else { Some(String::from_utf8(rest.to_vec()).map_err(|e| corrupt("token", e))?) };
    Ok(TokenRecord { user, expires_at, device })
}

/// A [`LinkRecord`] as the `links` tree stores it.
#[derive(tls_codec::TlsSerialize, tls_codec::TlsDeserialize, tls_codec::TlsSize)]
pub(super) struct LinkValue {
    user: tls_codec::VLBytes,
    expires_at: u64,
    request: tls_codec::VLBytes,
    approval: Option<tls_codec::VLBytes>,
}

fn link_value(l: &LinkRecord) -> StoreResult<Vec<u8>> {
    let v = LinkValue {
        user: l.user.as_bytes().into(),
        expires_at: l.expires_at,
        request: l.request.as_slice().into(),
        approval: l.approval.as_deref().map(Into::into),
    };
    tls_codec::Serialize::tls_serialize_detached(&v).map_err(|e| corrupt("link request", e))
}

pub(super) fn link_record(v: &[u8]) -> StoreResult<LinkRecord> {
    let v: LinkValue = tls_codec::Deserialize::tls_deserialize_exact(v).map_err(|e| corrupt("link request", e))?;
    Ok(LinkRecord {
        user: String::from_utf8(Vec::from(v.user)).map_err(|e| corrupt("link request", e))?,
        expires_at: v.expires_at,
        request: Vec::from(v.request),
        approval: v.approval.map(Vec::from),
    })
}

/// The `device_lists` key of a user's version: `user 0x00 version (u64 BE)`.
fn device_list_key(user: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 9);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl Inner {
    fn prune_auth(&self, now: u64) -> StoreResult<u64> {
        let mut n = 0;
        for tree in [&self.t.tokens, &self.t.challenges] {
            for item in tree.iter() {
                let (k, v) = item?;
                if auth_record(&v).map_or(true, |t| t.expires_at < now) {
                    tree.remove(k)?;
                    n += 1;
                }
            }
        }
        for item in self.t.links.iter() {
            let (k, v) = item?;
            if link_record(&v).map_or(true, |l| l.expires_at < now) {
                self.t.links.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn register_user(&self, user: &UserRecord) -> StoreResult<RegisterOutcome> {
        self.inner.register_user(user)
    }

    async fn user(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        self.inner.user(name)
    }

    async fn put_key_packages(
        &self,
        user: &str,
        batch: KeyPackageBatch<'_>,
        cap: u64,
    ) -> StoreResult<KeyPackageCounts> {
        let (user, suite) = (user.to_string(), batch.suite);
        let one_time = batch.one_time.to_vec();
        let last_resort = batch.last_resort.map(<[u8]>::to_vec);
        self.blocking(move |s| {
            let batch = KeyPackageBatch { suite, one_time: &one_time, last_resort: last_resort.as_deref() };
            s.put_key_packages(&user, batch, cap)
        })
        .await
    }

    async fn claim_key_package(&self, user: &str, suite: u16) -> StoreResult<Option<(Vec<u8>, KeyPackageKind)>> {
        self.inner.claim_key_package(user, suite)
    }

    async fn key_package_counts(&self, user: &str, suite: u16) -> StoreResult<KeyPackageCounts> {
        let user = user.to_string();
        self.blocking(move |s| s.key_package_counts(&user, suite)).await
    }

    async fn create_group(&self, record: &GroupRecord) -> StoreResult<bool> {
        self.inner.create_group(record)
    }

    async fn next_internal_id(&self) -> StoreResult<u64> {
        self.inner.next_internal_id()
    }

    async fn load_group(&self, group_id: &[u8]) -> StoreResult<Option<(GroupRecord, u64)>> {
        let gid = group_id.to_vec();
        self.blocking(move |s| s.load_group(&gid)).await
    }

    async fn group_ids(&self) -> StoreResult<Vec<Vec<u8>>> {
        self.blocking(|s| s.group_ids()).await
    }

    async fn append_commit(
        &self,
        record: &GroupRecord,
        entry: &LogEntry,
        welcomes: &[Addressed],
    ) -> StoreResult<(u64, Vec<u64>)> {
        self.inner.append_commit(record, entry, welcomes).map(|ids| (entry.seq, ids))
    }

    async fn append_message(
        &self,
        internal_id: u64,
        entry: &LogEntry,
        new_state: Option<&GroupRecord>,
    ) -> StoreResult<()> {
        self.inner.append_message(internal_id, entry, new_state)
    }

    async fn fetch_after(&self, internal_id: u64, after: u64, up_to: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        self.blocking(move |s| s.fetch_after(internal_id, after, up_to, limit)).await
    }

    async fn set_cursor(&self, internal_id: u64, user: &str, seq: u64) -> StoreResult<u64> {
        self.inner.set_cursor(internal_id, user, seq)
    }

    async fn cursors(&self, internal_id: u64) -> StoreResult<Vec<(String, u64)>> {
        self.blocking(move |s| s.cursors(internal_id)).await
    }

    async fn prune_log(&self, internal_id: u64, through: u64, received_before: u64) -> StoreResult<u64> {
        self.blocking(move |s| s.prune_log(internal_id, through, received_before)).await
    }

    async fn add_commit_report(&self, internal_id: u64, seq: u64, reporter: &str, report: &[u8]) -> StoreResult<u64> {
        let (reporter, report) = (reporter.to_string(), report.to_vec());
        self.blocking(move |s| s.add_commit_report(internal_id, seq, &reporter, &report)).await
    }

    async fn message_count(&self) -> StoreResult<u64> {
        self.inner.message_count()
    }

    async fn inbox_after(&self, user: &str, after: u64, limit: usize) -> StoreResult<Vec<WelcomeEntry>> {
        let user = user.to_string();
        self.blocking(move |s| s.inbox_after(&user, after, limit)).await
    }

    async fn inbox_ack(&self, user: &str, id: u64) -> StoreResult<bool> {
        self.inner.inbox_ack(user, id)
    }

    async fn put_challenge(&self, challenge: &[u8; 32], user: &str, expires_at: u64) -> StoreResult<()> {
        let v = auth_value(&TokenRecord { user: user.to_string(), expires_at, device: None });
        self.inner.t.challenges.insert(challenge, v)?;
        Ok(())
    }

    async fn take_challenge(&self, challenge: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.inner.t.challenges.remove(challenge)?.map(|v| auth_record(&v)).transpose()
    }

    async fn put_token(&self, hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.inner.t.tokens.insert(hash, auth_value(token))?;
        Ok(())
    }

    async fn token(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.inner.t.tokens.get(hash)?.map(|v| auth_record(&v)).transpose()
    }

    async fn reset_user(&self, user: &UserRecord, first_list: &[u8]) -> StoreResult<bool> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional as _;
        let t = &self.inner.t;
        let name = user.name_str();
        if t.users.get(name.as_bytes())?.is_none() {
            return Ok(false);
        }
        let value = super::records::encode("user", user)?;
        let old: Vec<sled::IVec> = t
            .device_lists
            .range(device_list_key(&name, 1)..=device_list_key(&name, u64::MAX))
            .keys()
            .collect::<Result<_, _>>()?;
        let first = device_list_key(&name, 1);
        let done = (&t.users, &t.device_lists).transaction(|(users, lists)| {
            users.insert(name.as_bytes(), value.as_slice())?;
            for k in &old {
                lists.remove(k)?;
            }
            lists.insert(first.as_slice(), first_list)?;
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        match done {
            Ok(()) => Ok(true),
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(())) => Err(StoreError::Conflict("identity reset aborted".into())),
        }
    }

    async fn put_link(&self, id: &[u8; 16], link: &LinkRecord) -> StoreResult<bool> {
        let v = link_value(link)?;
        Ok(self.inner.t.links.compare_and_swap(id, None as Option<&[u8]>, Some(v))?.is_ok())
    }

    async fn link(&self, id: &[u8; 16]) -> StoreResult<Option<LinkRecord>> {
        self.inner.t.links.get(id)?.map(|v| link_record(&v)).transpose()
    }

    async fn approve_link(&self, id: &[u8; 16], approval: &[u8]) -> StoreResult<bool> {
        let tree = &self.inner.t.links;
        let Some(old) = tree.get(id)? else { return Ok(false) };
        let mut link = link_record(&old)?;
        if link.approval.is_some() {
            return Ok(false);
        }
        link.approval = Some(approval.to_vec());
        Ok(tree.compare_and_swap(id, Some(old), Some(link_value(&link)?))?.is_ok())
    }

    async fn append_device_list(&self, user: &str, version: u64, list: &[u8]) -> StoreResult<bool> {
        let tree = &self.inner.t.device_lists;
        if version == 0 || (version > 1 && tree.get(device_list_key(user, version - 1))?.is_none()) {
            return Ok(false);
        }
        // Compare-and-swap from nothing: of two writers of one version, one wins.
        let swapped = tree.compare_and_swap(device_list_key(user, version), None as Option<&[u8]>, Some(list))?;
        Ok(swapped.is_ok())
    }

    async fn device_lists(&self, user: &str, after: u64) -> StoreResult<Vec<Vec<u8>>> {
        let tree = &self.inner.t.device_lists;
        let (from, to) = (device_list_key(user, after.saturating_add(1)), device_list_key(user, u64::MAX));
        let mut out = Vec::new();
        for item in tree.range(from..=to) {
            out.push(item?.1.to_vec());
        }
        Ok(out)
    }

    async fn latest_device_list(&self, user: &str) -> StoreResult<Option<Vec<u8>>> {
        let tree = &self.inner.t.device_lists;
        let (from, to) = (device_list_key(user, 1), device_list_key(user, u64::MAX));
        Ok(tree.range(from..=to).next_back().transpose()?.map(|(_, v)| v.to_vec()))
    }

    async fn prune_auth(&self, now: u64) -> StoreResult<u64> {
        self.blocking(move |s| s.prune_auth(now)).await
    }

    async fn user_names(&self) -> StoreResult<Vec<String>> {
        self.blocking(move |inner| {
            inner
                .t
                .users
                .iter()
                .keys()
                .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
                .collect::<StoreResult<_>>()
        })
        .await
    }

    async fn kt_get(&self, keys: &[Vec<u8>]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let tree = &self.inner.t.kt;
        keys.iter().map(|k| Ok(tree.get(k)?.map(|v| v.to_vec()))).collect()
    }

    async fn kt_put(&self, records: &[(Vec<u8>, Vec<u8>)]) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in records {
            batch.insert(k.as_slice(), v.as_slice());
        }
        Ok(self.inner.t.kt.apply_batch(batch)?)
    }

    async fn kt_put_absent(&self, key: &[u8], value: &[u8]) -> StoreResult<Vec<u8>> {
        match self.inner.t.kt.compare_and_swap(key, None::<&[u8]>, Some(value))? {
            Ok(()) => Ok(value.to_vec()),
            Err(e) => e.current.map(|v| v.to_vec()).ok_or_else(|| StoreError::Db("kt record vanished".into())),
        }
    }

    async fn kt_scan(&self, prefix: &[u8]) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let prefix = prefix.to_vec();
        self.blocking(move |inner| {
            inner
                .t
                .kt
                .scan_prefix(prefix)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
                .collect()
        })
        .await
    }

    async fn persist(&self) -> StoreResult<()> {
        self.inner.persist().await
    }

    fn durability_mark(&self) -> Option<u64> {
        Some(self.inner.clock.mark())
    }

    fn is_durable(&self, mark: u64) -> bool {
        self.inner.clock.durable(mark)
    }
}
