//! The passive client (`passive-client-*.json`) on openmls's public API,
//! run through a client store: Grove's own sled storage in the tests.
//!
//! [`run_passive_client`] imports the vector's KeyPackage and private keys
//! and its external PSKs into the store, joins from the Welcome, then
//! processes every epoch's proposals and commit, comparing the epoch
//! authenticator after the join and after each epoch.
//!
//! It runs like a real client on a [`ClientStore`]: every step (the import,
//! the join, each incoming message) is one [`ClientStore::step`], which on
//! [`GroveProvider`] is one store transaction (one durable journal record). After
//! every step the group is loaded back from the store with `MlsGroup::load`
//! and the next step runs on that copy, so each epoch authenticator is
//! checked on state that went through the store, not on memory alone. The
//! store is also closed and opened again ([`ClientStore::reopen`]) after the
//! join, every 25 epochs and after the last epoch, and the group loaded from
//! the reopened store must have the same epoch authenticator.
//! [`crate::provider::memory_provider`] gives the same run on openmls's
//! in-memory storage.

use std::path::PathBuf;

use grove_client::storage::{GroveProvider, SledStorage, TxnProvider};
use openmls::framing::{MlsMessageBodyIn, ProcessedMessageContent};
use openmls::group::{GroupId, MlsGroup, MlsGroupJoinConfig, StagedWelcome, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY};
use openmls::prelude::RatchetTreeIn;
use openmls::schedule::PreSharedKeyId;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::types::Ciphersuite;
use openmls_traits::OpenMlsProvider;
use serde::Deserialize;
use tls_codec::Deserialize as _;

use crate::harness::Hex;
use crate::provider::{check_signature_key, decode_message, own_key_package, store_key_package, VectorProvider};
use crate::{expect_bytes, Error};

/// An external PSK to import before joining.
#[derive(Debug, Deserialize)]
pub struct ExternalPsk {
    psk_id: Hex,
    psk: Hex,
}

/// One epoch after the join.
#[derive(Debug, Deserialize)]
pub struct Epoch {
    proposals: Vec<Hex>,
    commit: Hex,
    epoch_authenticator: Hex,
}

/// One passive-client case.
#[derive(Debug, Deserialize)]
pub struct PassiveCase {
    /// The case's cipher suite.
    pub cipher_suite: u16,
    external_psks: Vec<ExternalPsk>,
    key_package: Hex,
    signature_priv: Hex,
    encryption_priv: Hex,
    init_priv: Hex,
    welcome: Hex,
    ratchet_tree: Option<Hex>,
    initial_epoch_authenticator: Hex,
    epochs: Vec<Epoch>,
}

/// A client's local state: an [`OpenMlsProvider`] whose writes can be
/// grouped into steps that commit atomically, and that can be closed and
/// opened again.
pub trait ClientStore: OpenMlsProvider {
    /// The provider one step runs on.
    type Step<'a>: OpenMlsProvider
    where
        Self: 'a;

    /// Runs `f` as one step: its writes land together if it returns `Ok`.
    fn step<T>(&self, what: &str, f: impl FnOnce(&Self::Step<'_>) -> Result<T, Error>) -> Result<T, Error>;

    /// Closes the store and opens it again, as after a restart (a no-op for
    /// stores that live in memory).
    fn reopen(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Grove's client store in a home directory, opened with
/// [`GroveProvider::open`] like an app opens it.
#[derive(Debug)]
pub struct GroveStore {
    home: PathBuf,
    provider: GroveProvider,
}

impl GroveStore {
    /// Opens (or creates) the store in Grove home directory `home`.
    pub fn open(home: impl Into<PathBuf>) -> Result<Self, Error> {
        let home = home.into();
        let provider = GroveProvider::open(&home).map_err(|e| Error::store("opening the Grove store", e))?;
        Ok(Self { home, provider })
    }
}

impl OpenMlsProvider for GroveStore {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = SledStorage;

    fn storage(&self) -> &SledStorage {
        self.provider.storage()
    }

    fn crypto(&self) -> &RustCrypto {
        self.provider.crypto()
    }

    fn rand(&self) -> &RustCrypto {
        self.provider.rand()
    }
}

/// One step is one store transaction (one durable journal record).
impl ClientStore for GroveStore {
    type Step<'a> = TxnProvider<'a>;

    fn step<T>(&self, what: &str, f: impl FnOnce(&TxnProvider<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let txn = self.provider.begin();
        let value = f(&txn)?;
        txn.commit().map_err(|e| Error::store(format!("{what}: committing"), e))?;
        Ok(value)
    }

    /// Drops the sled database (sled allows one open handle per directory)
    /// and opens the home directory again: everything read afterwards comes
    /// from disk.
    fn reopen(&mut self) -> Result<(), Error> {
        let placeholder = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| Error::store("opening a placeholder store", e))
            .and_then(|db| SledStorage::from_db(db).map_err(|e| Error::store("opening a placeholder store", e)))?;
        drop(std::mem::replace(&mut self.provider, GroveProvider::new(placeholder)));
        self.provider = GroveProvider::open(&self.home).map_err(|e| Error::store("reopening the Grove store", e))?;
        Ok(())
    }
}

/// The in-memory store: writes land as they are made.
impl ClientStore for VectorProvider<MemoryStorage> {
    type Step<'a> = Self;

    fn step<T>(&self, _: &str, f: impl FnOnce(&Self) -> Result<T, Error>) -> Result<T, Error> {
        f(self)
    }
}

/// The store is closed and opened again after the join, after every
/// `REOPEN_EVERY` epochs, and after the last epoch.
const REOPEN_EVERY: usize = 25;

/// Reopens the store, loads the group from it and checks its epoch
/// authenticator.
fn reopen_and_check<S: ClientStore>(
    store: &mut S,
    group_id: &GroupId,
    field: &str,
    expected: &[u8],
) -> Result<MlsGroup, Error> {
    store.reopen()?;
    let group = reload(store, group_id, &format!("{field} (after reopening the store)"))?;
    expect_bytes(format!("{field} (after reopening the store)"), expected, group.epoch_authenticator().as_slice())?;
    Ok(group)
}

/// Loads the group back from the store (the state the next step runs on).
fn reload<S: ClientStore>(store: &S, group_id: &GroupId, what: &str) -> Result<MlsGroup, Error> {
    MlsGroup::load(store.storage(), group_id)
        .map_err(|e| Error::store(format!("{what}: loading the group"), e))?
        .ok_or_else(|| Error::store(format!("{what}: loading the group"), "not in the store"))
}

/// Runs one passive-client case on `store`, which should be empty.
pub fn run_passive_client<S: ClientStore>(store: &mut S, case: &PassiveCase) -> Result<(), Error> {
    let cs = Ciphersuite::try_from(case.cipher_suite).map_err(|e| Error::openmls("cipher_suite", e))?;
    store.step("importing keys", |provider| import_keys(provider, cs, case))?;

    let config = MlsGroupJoinConfig::builder()
        // Outgoing plaintext, incoming either form: the vectors mix both.
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .number_of_resumption_psks(16)
        .build();

    let welcome = match decode_message(&case.welcome, "welcome")?.extract() {
        MlsMessageBodyIn::Welcome(w) => w,
        _ => return Err(Error::decode("welcome is not a Welcome message")),
    };
    let tree = case
        .ratchet_tree
        .as_ref()
        .map(|tree| RatchetTreeIn::tls_deserialize_exact(tree.as_ref()))
        .transpose()
        .map_err(|e| Error::openmls("decoding ratchet_tree", e))?;
    let group_id = store.step("joining", |provider| {
        // The tree's leaf lifetimes are long expired (see `import_keys`): the
        // join skips only the wall-clock lifetime check, through openmls's
        // public switch.
        let mut join = StagedWelcome::build_from_welcome(provider, &config, welcome)
            .map_err(|e| Error::openmls("processing the Welcome", e))?
            .skip_lifetime_validation();
        if let Some(tree) = tree {
            join = join.with_ratchet_tree(tree);
        }
        let group = join
            .build()
            .map_err(|e| Error::openmls("staging the Welcome", e))?
            .into_group(provider)
            .map_err(|e| Error::openmls("joining from the Welcome", e))?;
        expect_bytes(
            "initial_epoch_authenticator",
            &case.initial_epoch_authenticator,
            group.epoch_authenticator().as_slice(),
        )?;
        Ok(group.group_id().clone())
    })?;
    let group = reload(store, &group_id, "after the join")?;
    expect_bytes(
        "initial_epoch_authenticator (reloaded)",
        &case.initial_epoch_authenticator,
        group.epoch_authenticator().as_slice(),
    )?;
    let mut group =
        reopen_and_check(store, &group_id, "initial_epoch_authenticator", &case.initial_epoch_authenticator)?;

    for (i, epoch) in case.epochs.iter().enumerate() {
        for (j, proposal) in epoch.proposals.iter().enumerate() {
            let what = format!("epochs[{i}].proposals[{j}]");
            store.step(&what, |provider| match process(provider, &mut group, proposal, &what)? {
                ProcessedMessageContent::ProposalMessage(p) => group
                    .store_pending_proposal(provider.storage(), *p)
                    .map_err(|e| Error::openmls(format!("{what}: storing"), e)),
                other => Err(unexpected(&what, &other)),
            })?;
            group = reload(store, &group_id, &what)?;
        }
        let what = format!("epochs[{i}].commit");
        store.step(&what, |provider| match process(provider, &mut group, &epoch.commit, &what)? {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(provider, *staged).map_err(|e| Error::openmls(format!("{what}: merging"), e))
            }
            other => Err(unexpected(&what, &other)),
        })?;
        expect_bytes(
            format!("epochs[{i}].epoch_authenticator"),
            &epoch.epoch_authenticator,
            group.epoch_authenticator().as_slice(),
        )?;
        group = reload(store, &group_id, &what)?;
        expect_bytes(
            format!("epochs[{i}].epoch_authenticator (reloaded)"),
            &epoch.epoch_authenticator,
            group.epoch_authenticator().as_slice(),
        )?;
        if (i + 1) % REOPEN_EVERY == 0 || i + 1 == case.epochs.len() {
            let field = format!("epochs[{i}].epoch_authenticator");
            group = reopen_and_check(store, &group_id, &field, &epoch.epoch_authenticator)?;
        }
    }
    Ok(())
}

/// Stores the external PSKs and the KeyPackage with its private keys.
fn import_keys<P: OpenMlsProvider>(provider: &P, cs: Ciphersuite, case: &PassiveCase) -> Result<(), Error> {
    // External PSKs (the nonce is not part of what is stored).
    for psk in &case.external_psks {
        PreSharedKeyId::external(psk.psk_id.0.clone(), vec![])
            .store(provider, &psk.psk)
            .map_err(|e| Error::openmls("storing external PSK", e))?;
    }

    // The KeyPackage, validated by openmls, with our private keys.
    let key_package = own_key_package(provider.crypto(), &case.key_package)?;
    // The signature key is not needed to stay passive; check that it matches.
    check_signature_key(provider.crypto(), cs, &case.signature_priv, &key_package)?;
    store_key_package(provider, &key_package, &case.init_priv, &case.encryption_priv)
}

fn process<P: OpenMlsProvider>(
    provider: &P,
    group: &mut MlsGroup,
    bytes: &[u8],
    what: &str,
) -> Result<ProcessedMessageContent, Error> {
    let msg = decode_message(bytes, what)?
        .try_into_protocol_message()
        .map_err(|e| Error::openmls(format!("{what}: not a protocol message"), e))?;
    Ok(group
        .process_message(provider, msg)
        .map_err(|e| Error::openmls(format!("{what}: processing"), e))?
        .into_content())
}

fn unexpected(what: &str, content: &ProcessedMessageContent) -> Error {
    let kind = match content {
        ProcessedMessageContent::ApplicationMessage(_) => "an application message",
        ProcessedMessageContent::ProposalMessage(_) => "a proposal",
        ProcessedMessageContent::ExternalJoinProposalMessage(_) => "an external join proposal",
        ProcessedMessageContent::StagedCommitMessage(_) => "a commit",
        _ => "another kind of content",
    };
    Error::decode(format!("{what}: unexpected {kind}"))
}
