//! The app's own records (`0x02 len(ns) ns key`), shared by both front ends
//! ([`SledStorage`](super::SledStorage) and [`Transaction`](super::Transaction)).

use serde::{de::DeserializeOwned, Serialize};

use super::{Entries, Kv, StorageError, ValueCodec, NS_APP};

pub(crate) fn app_key(namespace: &str, key: &[u8]) -> Result<Vec<u8>, StorageError> {
    let ns = namespace.as_bytes();
    let len = u8::try_from(ns.len()).map_err(|_| StorageError::NamespaceTooLong { len: ns.len() })?;
    let mut out = Vec::with_capacity(2 + ns.len() + key.len());
    out.push(NS_APP);
    out.push(len);
    out.extend_from_slice(ns);
    out.extend_from_slice(key);
    Ok(out)
}

pub(crate) fn encode_value<C: ValueCodec, T: Serialize + ?Sized>(
    what: &str,
    value: &T,
) -> Result<Vec<u8>, StorageError> {
    C::encode(value).map_err(|reason| StorageError::Encode { what: what.to_owned(), reason })
}

pub(crate) fn decode_value<C: ValueCodec, T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    C::decode(bytes).map_err(|reason| StorageError::Corrupt { what: what.to_owned(), reason })
}

// ---- app records, shared by both front ends ----

pub(crate) fn app_get<K: Kv>(kv: &K, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
    kv.get_raw(&app_key(ns, key)?)
}

pub(crate) fn app_put<K: Kv>(kv: &K, ns: &str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
    kv.put_raw(app_key(ns, key)?, Some(value.to_vec()))
}

pub(crate) fn app_remove<K: Kv>(kv: &K, ns: &str, key: &[u8]) -> Result<(), StorageError> {
    kv.put_raw(app_key(ns, key)?, None)
}

pub(crate) fn app_scan<K: Kv>(kv: &K, ns: &str, prefix: &[u8]) -> Result<Entries, StorageError> {
    let strip = app_key(ns, &[])?.len();
    let full = app_key(ns, prefix)?;
    Ok(kv.scan_raw(&full)?.into_iter().map(|(mut k, v)| (k.split_off(strip), v)).collect())
}

pub(crate) fn app_get_value<K: Kv, T: DeserializeOwned>(
    kv: &K,
    ns: &str,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match app_get(kv, ns, key)? {
        None => Ok(None),
        Some(bytes) => decode_value::<K::Codec, T>(&format!("app record in {ns:?}"), &bytes).map(Some),
    }
}

pub(crate) fn app_put_value<K: Kv, T: Serialize + ?Sized>(
    kv: &K,
    ns: &str,
    key: &[u8],
    value: &T,
) -> Result<(), StorageError> {
    let bytes = encode_value::<K::Codec, T>(&format!("app record in {ns:?}"), value)?;
    kv.put_raw(app_key(ns, key)?, Some(bytes))
}

/// Generates the app-record methods on a front end type.
macro_rules! app_methods {
    () => {
        /// Reads app record `key` in `namespace`.
        pub fn get_app(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            $crate::storage::app::app_get(self, namespace, key)
        }

        /// Writes app record `key` in `namespace` (namespace at most 255 bytes).
        pub fn put_app(&self, namespace: &str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
            $crate::storage::app::app_put(self, namespace, key, value)
        }

        /// Deletes app record `key` in `namespace` (no error if absent).
        pub fn remove_app(&self, namespace: &str, key: &[u8]) -> Result<(), StorageError> {
            $crate::storage::app::app_remove(self, namespace, key)
        }

        /// All app records in `namespace` whose key starts with `prefix`, in key
        /// order, as `(key, value)` with the namespace stripped from the key.
        pub fn scan_prefix_app(&self, namespace: &str, prefix: &[u8]) -> Result<Entries, StorageError> {
            $crate::storage::app::app_scan(self, namespace, prefix)
        }

        /// Reads app record `key` in `namespace` and decodes it with the store's codec.
        ///
        /// A value that does not decode gives [`StorageError::Corrupt`].
        pub fn get_app_value<T: DeserializeOwned>(
            &self,
            namespace: &str,
            key: &[u8],
        ) -> Result<Option<T>, StorageError> {
            $crate::storage::app::app_get_value(self, namespace, key)
        }

        /// Encodes `value` with the store's codec and writes it as app record `key`.
        pub fn put_app_value<T: Serialize + ?Sized>(
            &self,
            namespace: &str,
            key: &[u8],
            value: &T,
        ) -> Result<(), StorageError> {
            $crate::storage::app::app_put_value(self, namespace, key, value)
        }
    };
}
