//! akd's storage ([`akd::storage::Database`]) on the DS's own [`Store`]:
//! every record is a `kt` record (sled tree, PostgreSQL table), MessagePack
//! of akd's `DbRecord`.
//!
//! Keys: `a` and akd's binary id for the aZKS root and tree nodes; `s`, the
//! label's length (u16, big-endian), the label and the epoch (u64,
//! big-endian) for a label's value states, so that one prefix scan returns
//! a user's states in epoch order.

use std::collections::HashMap;
use std::sync::Arc;

use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, StorageType, ValueState, ValueStateKey, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable};
use akd::{AkdLabel, AkdValue};

use crate::store::Store;

/// akd's storage on a [`Store`].
#[derive(Clone)]
pub(crate) struct StoreDb {
    store: Arc<dyn Store>,
}

impl StoreDb {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        StoreDb { store }
    }
}

fn db_err(e: crate::store::StoreError) -> StorageError {
    StorageError::Connection(e.to_string())
}

/// The key prefix of `label`'s value states.
pub(crate) fn states_prefix(label: &[u8]) -> Vec<u8> {
    let n = u16::try_from(label.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(3 + label.len() + 8);
    k.push(b's');
    k.extend_from_slice(&n.to_be_bytes());
    k.extend_from_slice(label);
    k
}

fn state_key(label: &[u8], epoch: u64) -> Vec<u8> {
    let mut k = states_prefix(label);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

fn node_key(binary_id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + binary_id.len());
    k.push(b'a');
    k.extend_from_slice(binary_id);
    k
}

fn record_key(r: &DbRecord) -> Vec<u8> {
    match r {
        DbRecord::ValueState(s) => state_key(&s.username, s.epoch),
        other => node_key(&other.get_full_binary_id()),
    }
}

fn key_of<St: Storable>(id: &St::StorageKey) -> Result<Vec<u8>, StorageError> {
    let bin = St::get_full_binary_key_id(id);
    if St::data_type() == StorageType::ValueState {
        let ValueStateKey(label, epoch) = ValueState::key_from_full_binary(&bin).map_err(StorageError::Other)?;
        return Ok(state_key(&label, epoch));
    }
    Ok(node_key(&bin))
}

fn encode(r: &DbRecord) -> Result<Vec<u8>, StorageError> {
    rmp_serde::to_vec(r).map_err(|e| StorageError::Other(format!("encoding a directory record: {e}")))
}

fn decode(b: &[u8]) -> Result<DbRecord, StorageError> {
    rmp_serde::from_slice(b).map_err(|e| StorageError::Other(format!("a stored directory record does not decode: {e}")))
}

/// The state `flag` selects from `states` (in epoch order), as akd's
/// in-memory database selects it.
fn select(states: Vec<ValueState>, flag: ValueStateRetrievalFlag) -> Option<ValueState> {
    use ValueStateRetrievalFlag as F;
    match flag {
        F::MaxEpoch => states.into_iter().last(),
        F::MinEpoch => states.into_iter().next(),
        F::SpecificVersion(v) => states.into_iter().find(|s| s.version == v),
        F::SpecificEpoch(e) => states.into_iter().find(|s| s.epoch == e),
        F::LeqEpoch(e) => states.into_iter().take_while(|s| s.epoch <= e).last(),
    }
}

#[async_trait::async_trait]
impl Database for StoreDb {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(&self, records: Vec<DbRecord>, _state: DbSetState) -> Result<(), StorageError> {
        let records = records.iter().map(|r| Ok((record_key(r), encode(r)?))).collect::<Result<Vec<_>, _>>()?;
        self.store.kt_put(&records).await.map_err(db_err)
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let key = key_of::<St>(id)?;
        match self.store.kt_get(&[key]).await.map_err(db_err)?.pop().flatten() {
            Some(b) => decode(&b),
            None => Err(StorageError::NotFound(format!("{:?} {id:?}", St::data_type()))),
        }
    }

    async fn batch_get<St: Storable>(&self, ids: &[St::StorageKey]) -> Result<Vec<DbRecord>, StorageError> {
        let keys = ids.iter().map(key_of::<St>).collect::<Result<Vec<_>, _>>()?;
        let found = self.store.kt_get(&keys).await.map_err(db_err)?;
        found.into_iter().flatten().map(|b| decode(&b)).collect()
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let rows = self.store.kt_scan(&states_prefix(username)).await.map_err(db_err)?;
        let mut states = Vec::with_capacity(rows.len());
        for (_, b) in rows {
            match decode(&b)? {
                DbRecord::ValueState(s) => states.push(s),
                _ => return Err(StorageError::Other("a value-state key holds another record".into())),
            }
        }
        if states.is_empty() {
            return Err(StorageError::NotFound(format!("ValueState {username:?}")));
        }
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        let states = self.get_user_data(username).await?.states;
        select(states, flag).ok_or_else(|| StorageError::NotFound(format!("ValueState {username:?} {flag:?}")))
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        let mut map = HashMap::new();
        for username in usernames {
            match self.get_user_state(username, flag).await {
                Ok(s) => {
                    map.insert(username.clone(), (s.version, s.value));
                }
                Err(StorageError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(map)
    }
}
