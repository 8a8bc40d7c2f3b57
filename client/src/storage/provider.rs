//! The `OpenMlsProvider`s: [`GroveProvider`] (auto-commit) and
//! [`TxnProvider`] (one transaction).

use std::path::Path;

use openmls_rust_crypto::RustCrypto;
use openmls_traits::OpenMlsProvider;

use super::{DefaultCodec, SledStorage, StorageError, Transaction, ValueCodec};

/// RustCrypto plus the sled store: the `OpenMlsProvider` a Grove client uses.
///
/// Used directly, every storage write is durable on its own but an MLS
/// operation's writes are not atomic together. Run MLS operations inside
/// [`transaction`](Self::transaction) (or [`begin`](Self::begin)) so that all of
/// an operation's writes, and the app records written with it, commit together.
#[derive(Debug)]
pub struct GroveProvider<C: ValueCodec = DefaultCodec> {
    crypto: RustCrypto,
    storage: SledStorage<C>,
}

impl GroveProvider {
    /// Opens (or creates) the store in Grove home directory `home` with the
    /// default codec; see [`SledStorage::open`].
    pub fn open(home: impl AsRef<Path>) -> Result<Self, StorageError> {
        Ok(Self::new(SledStorage::open(home)?))
    }

    /// Opens (or creates) the store in `home`, encrypted at rest under `key`
    /// if one is given; see [`SledStorage::open_keyed`].
    pub fn open_keyed(home: impl AsRef<Path>, key: Option<&super::StoreKey>) -> Result<Self, StorageError> {
        Ok(Self::new(SledStorage::open_keyed(home, key)?))
    }
}

impl<C: ValueCodec> GroveProvider<C> {
    /// Wraps an opened store.
    pub fn new(storage: SledStorage<C>) -> Self {
        Self { crypto: RustCrypto::default(), storage }
    }

    /// Begins a transaction; see [`SledStorage::begin`] (transactions are
    /// serialized; never begin two on one thread).
    pub fn begin(&self) -> TxnProvider<'_, C> {
        TxnProvider { crypto: &self.crypto, txn: self.storage.begin() }
    }

    /// Runs `f` with a provider whose storage is one transaction: commits
    /// (atomically and durably, see [`Transaction::commit`]) if `f` returns `Ok`, discards every write if it
    /// returns `Err`. After an `Err`, reload any `MlsGroup` that `f` touched
    /// with `MlsGroup::load`: its in-memory state may be ahead of disk.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&TxnProvider<'_, C>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        super::transaction::run(self.begin(), f, TxnProvider::commit)
    }

    /// Gives back the store.
    pub fn into_storage(self) -> SledStorage<C> {
        self.storage
    }
}

impl<C: ValueCodec> OpenMlsProvider for GroveProvider<C> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = SledStorage<C>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

/// An `OpenMlsProvider` whose storage is one open [`Transaction`].
///
/// App records go through [`storage()`](OpenMlsProvider::storage)
/// (`provider.storage().put_app(..)`), so they commit in the same batch.
/// Dropping it without [`commit`](Self::commit) rolls back.
#[derive(Debug)]
pub struct TxnProvider<'a, C: ValueCodec = DefaultCodec> {
    crypto: &'a RustCrypto,
    txn: Transaction<'a, C>,
}

impl<C: ValueCodec> TxnProvider<'_, C> {
    /// Commits the transaction; see [`Transaction::commit`].
    pub fn commit(self) -> Result<(), StorageError> {
        self.txn.commit()
    }

    /// Discards every write (the same as dropping it).
    pub fn rollback(self) {
        self.txn.rollback();
    }
}

impl<'a, C: ValueCodec> OpenMlsProvider for TxnProvider<'a, C> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = Transaction<'a, C>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.txn
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}
