//! Members of the two MLS implementations behind one interface, for the
//! cross-implementation tests (`tests/mls_rs.rs`, `tests/foreign_client.rs`).
//!
//! Everything a member hands to another member is the TLS encoding of an
//! `MLSMessage` (KeyPackage, Welcome, PublicMessage, PrivateMessage), except
//! the out-of-band ratchet tree, which is the TLS encoding of the RFC 9420
//! `ratchet_tree` extension data (`optional<Node> ratchet_tree<V>`).
//!
//! - [`OpenMlsMember`]: openmls 0.9.2 on Grove's client store
//!   (`grove_client::storage::GroveProvider` in a temporary home directory,
//!   one sled transaction per operation), handshakes as PublicMessage
//!   (`MIXED_PLAINTEXT_WIRE_FORMAT_POLICY`) or, in [`Mode::encrypted_handshakes`],
//!   as PrivateMessage (`PURE_CIPHERTEXT_WIRE_FORMAT_POLICY`).
//! - [`MlsRsMember`]: mls-rs 0.57 with its RustCrypto provider and in-memory
//!   storage, handshakes as PublicMessage (its default) or PrivateMessage
//!   (`encrypt_control_messages`).

#![allow(dead_code, unreachable_pub)]

use std::error::Error;

use grove_client::storage::GroveProvider;
use openmls::prelude::*;
use openmls::schedule::{ExternalPsk, PreSharedKeyId, Psk};
use openmls_basic_credential::SignatureKeyPair;
use tls_codec::{Deserialize as _, Serialize as _};

pub type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

/// Ciphersuites run: every suite that both `openmls_rust_crypto` and
/// `mls-rs-crypto-rustcrypto` implement and Grove's DS accepts. Grove uses
/// 0x0001 (default) and 0x0003; 0x0002 (P-256) comes for free.
pub const SUITES: [u16; 3] = [0x0001, 0x0002, 0x0003];

/// Exporter label and context compared after every epoch.
pub const EXPORT_LABEL: &str = "grove interop exporter";
/// See [`EXPORT_LABEL`].
pub const EXPORT_CONTEXT: &[u8] = b"cross-implementation check";
/// Length of the exported secret.
pub const EXPORT_LEN: usize = 32;

/// The external PSK every member holds (id and secret), for commits that
/// inject it (RFC 9420 §8.4).
pub const PSK_ID: &[u8] = b"grove interop external psk";
/// See [`PSK_ID`].
pub const PSK_SECRET: &[u8; 32] = b"grove interop psk secret 32 byte";

/// `WireFormat` values (RFC 9420 §6).
pub const WF_PUBLIC: u16 = 1;
/// PrivateMessage.
pub const WF_PRIVATE: u16 = 2;
/// Welcome.
pub const WF_WELCOME: u16 = 3;
/// KeyPackage.
pub const WF_KEY_PACKAGE: u16 = 5;

/// The `wire_format` of an encoded MLSMessage (after the 2-byte version),
/// checking the version is mls10.
pub fn wire_format(bytes: &[u8]) -> TestResult<u16> {
    if bytes.len() < 4 {
        return Err("MLSMessage shorter than its header".into());
    }
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    if version != 1 {
        return Err(format!("MLSMessage version {version}, expected mls10 (1)").into());
    }
    Ok(u16::from_be_bytes([bytes[2], bytes[3]]))
}

/// Asserts the wire format of an encoded MLSMessage.
pub fn expect_wire_format(what: &str, bytes: &[u8], expected: u16) -> TestResult {
    let got = wire_format(bytes)?;
    if got != expected {
        return Err(format!("{what}: wire format {got}, expected {expected}").into());
    }
    Ok(())
}

/// How a group is run.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Welcomes carry the ratchet tree (ratchet-tree extension); otherwise
    /// the tree travels out of band.
    pub tree_in_welcome: bool,
    /// Handshake messages (proposals, commits) as PrivateMessage; Grove's own
    /// wire format is PublicMessage (`false`).
    pub encrypted_handshakes: bool,
}

impl Mode {
    /// The wire format handshake messages must have in this mode.
    pub fn handshake_wire_format(&self) -> u16 {
        if self.encrypted_handshakes {
            WF_PRIVATE
        } else {
            WF_PUBLIC
        }
    }
}

/// What a member that adds someone hands out.
pub struct Added {
    /// The Commit (MLSMessage).
    pub commit: Vec<u8>,
    /// The Welcome (MLSMessage).
    pub welcome: Vec<u8>,
    /// The ratchet tree after the commit, for an out-of-band tree.
    pub tree: Vec<u8>,
}

/// One member of a group, whatever its implementation.
pub trait Member {
    /// Name and implementation, for messages.
    fn name(&self) -> String;
    /// A fresh KeyPackage (MLSMessage).
    fn key_package(&mut self) -> TestResult<Vec<u8>>;
    /// Creates a one-member group.
    fn create(&mut self, group_id: &[u8]) -> TestResult;
    /// Joins from a Welcome, with the tree out of band if given.
    fn join(&mut self, welcome: &[u8], tree: Option<&[u8]>) -> TestResult;
    /// Commits an Add of `key_package` and merges it.
    fn add(&mut self, key_package: &[u8]) -> TestResult<Added>;
    /// Commits an empty commit with a path (a self-update) and merges it.
    fn self_update(&mut self) -> TestResult<Vec<u8>>;
    /// Commits a PreSharedKey proposal (by value) for the external PSK
    /// [`PSK_ID`] and merges it.
    fn commit_external_psk(&mut self) -> TestResult<Vec<u8>>;
    /// Proposes an Update of its own leaf (by reference).
    fn propose_update(&mut self) -> TestResult<Vec<u8>>;
    /// Processes another member's proposal and keeps it for the next commit.
    fn receive_proposal(&mut self, bytes: &[u8]) -> TestResult;
    /// Commits the pending proposals (by reference) and merges.
    fn commit_pending(&mut self) -> TestResult<Vec<u8>>;
    /// Its leaf index.
    fn own_leaf(&self) -> TestResult<u32>;
    /// Commits the removal of the member at `leaf` and merges.
    fn remove(&mut self, leaf: u32) -> TestResult<Vec<u8>>;
    /// Encrypts an application message with authenticated data `aad`.
    fn send(&mut self, text: &[u8], aad: &[u8]) -> TestResult<Vec<u8>>;
    /// Decrypts an application message: (text, authenticated data).
    fn receive_app(&mut self, bytes: &[u8]) -> TestResult<(Vec<u8>, Vec<u8>)>;
    /// Processes and merges another member's commit; `true` if that commit
    /// removed this member.
    fn receive_commit(&mut self, bytes: &[u8]) -> TestResult<bool>;
    /// A signed GroupInfo (MLSMessage) that allows external commits, with
    /// the ratchet tree in it or not.
    fn group_info(&self, with_tree: bool) -> TestResult<Vec<u8>>;
    /// The current ratchet tree (for an out-of-band tree).
    fn tree(&self) -> TestResult<Vec<u8>>;
    /// Joins by external commit from a GroupInfo (tree out of band if given);
    /// returns the commit (MLSMessage).
    fn join_external(&mut self, group_info: &[u8], tree: Option<&[u8]>) -> TestResult<Vec<u8>>;
    /// The current epoch.
    fn epoch(&self) -> TestResult<u64>;
    /// The epoch authenticator.
    fn epoch_authenticator(&self) -> TestResult<Vec<u8>>;
    /// MLS-Exporter([`EXPORT_LABEL`], [`EXPORT_CONTEXT`], [`EXPORT_LEN`]).
    fn exported_secret(&self) -> TestResult<Vec<u8>>;
    /// Number of members in the roster.
    fn member_count(&self) -> TestResult<usize>;
}

/// Asserts that all members are in the same epoch with the same epoch
/// authenticator, exported secret and roster size; returns the authenticator.
pub fn assert_agree(what: &str, members: &[&dyn Member]) -> TestResult<Vec<u8>> {
    let first = members.first().ok_or("no members")?;
    let (epoch, auth, secret, count) =
        (first.epoch()?, first.epoch_authenticator()?, first.exported_secret()?, first.member_count()?);
    if count != members.len() {
        return Err(format!("{what}: {} sees {count} members, expected {}", first.name(), members.len()).into());
    }
    for m in &members[1..] {
        let ctx = format!("{what}: {} vs {}", first.name(), m.name());
        if m.epoch()? != epoch {
            return Err(format!("{ctx}: epoch {} vs {}", epoch, m.epoch()?).into());
        }
        if m.epoch_authenticator()? != auth {
            return Err(format!(
                "{ctx}: epoch authenticator {} vs {}",
                hex::encode(&auth),
                hex::encode(m.epoch_authenticator()?)
            )
            .into());
        }
        if m.exported_secret()? != secret {
            return Err(format!(
                "{ctx}: exported secret {} vs {}",
                hex::encode(&secret),
                hex::encode(m.exported_secret()?)
            )
            .into());
        }
        if m.member_count()? != count {
            return Err(format!("{ctx}: member count {count} vs {}", m.member_count()?).into());
        }
    }
    Ok(auth)
}

// ---------------------------------------------------------------- openmls

/// Past epochs whose application messages openmls still decrypts: Grove's DS
/// accepts application messages of the previous epoch (docs/api.md §5.15,
/// `--app-epoch-window` 1), so a member may receive one after it moved on.
pub const MAX_PAST_EPOCHS: usize = 1;

/// An openmls member on Grove's client store.
pub struct OpenMlsMember {
    name: String,
    cs: Ciphersuite,
    mode: Mode,
    provider: GroveProvider,
    signer: SignatureKeyPair,
    cwk: CredentialWithKey,
    group: Option<MlsGroup>,
    // Dropped last: the store lives in it.
    _home: tempfile::TempDir,
}

impl OpenMlsMember {
    /// A new identity with a fresh Grove store.
    pub fn new(name: &str, suite: u16, mode: Mode) -> TestResult<Self> {
        let cs = Ciphersuite::try_from(suite)?;
        let home = tempfile::tempdir()?;
        let provider = GroveProvider::open(home.path().join("grove"))?;
        let signer = SignatureKeyPair::new(cs.signature_algorithm())?;
        provider.transaction(|p| -> TestResult {
            signer.store(p.storage())?;
            PreSharedKeyId::external(PSK_ID.to_vec(), Vec::new()).store(p, PSK_SECRET)?;
            Ok(())
        })?;
        let cwk = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Ok(Self { name: name.into(), cs, mode, provider, signer, cwk, group: None, _home: home })
    }

    /// The signature key pair (for DS authentication).
    pub fn signer(&self) -> &SignatureKeyPair {
        &self.signer
    }

    /// A last-resort KeyPackage (MLSMessage): extension `last_resort`
    /// (0x000a), listed in the leaf's capabilities, as Grove's DS stores them.
    pub fn last_resort_key_package(&mut self) -> TestResult<Vec<u8>> {
        let (cs, signer, cwk) = (self.cs, &self.signer, self.cwk.clone());
        let bundle = self.provider.transaction(|p| -> TestResult<KeyPackageBundle> {
            Ok(KeyPackage::builder()
                .mark_as_last_resort()
                .leaf_node_capabilities(Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build())
                .build(cs, p, signer, cwk)?)
        })?;
        Ok(MlsMessageOut::from(bundle.key_package().clone()).tls_serialize_detached()?)
    }

    /// A KeyPackage whose leaf capabilities carry GREASE values (openmls's
    /// opt-in `Capabilities::with_grease`: one random GREASE ciphersuite,
    /// extension, proposal and credential type).
    pub fn greased_key_package(&mut self) -> TestResult<Vec<u8>> {
        let (cs, signer, cwk) = (self.cs, &self.signer, self.cwk.clone());
        let bundle = self.provider.transaction(|p| -> TestResult<KeyPackageBundle> {
            Ok(KeyPackage::builder()
                .leaf_node_capabilities(Capabilities::builder().build().with_grease(p.rand()))
                .build(cs, p, signer, cwk)?)
        })?;
        Ok(MlsMessageOut::from(bundle.key_package().clone()).tls_serialize_detached()?)
    }

    /// The group, once created or joined.
    pub fn group(&self) -> TestResult<&MlsGroup> {
        self.group.as_ref().ok_or_else(|| format!("{}: not in a group", self.name).into())
    }

    fn wire_format_policy(&self) -> WireFormatPolicy {
        if self.mode.encrypted_handshakes {
            PURE_CIPHERTEXT_WIRE_FORMAT_POLICY
        } else {
            MIXED_PLAINTEXT_WIRE_FORMAT_POLICY
        }
    }

    fn join_config(&self) -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .max_past_epochs(MAX_PAST_EPOCHS)
            .wire_format_policy(self.wire_format_policy())
            .use_ratchet_tree_extension(self.mode.tree_in_welcome)
            .build()
    }

    fn process(&mut self, bytes: &[u8]) -> TestResult<ProcessedMessage> {
        let msg = MlsMessageIn::tls_deserialize_exact(bytes)?.try_into_protocol_message()?;
        let group = self.group.as_mut().ok_or("not in a group")?;
        // Processing a message advances the secret tree, which is stored:
        // one transaction.
        self.provider.transaction(|p| -> TestResult<ProcessedMessage> { Ok(group.process_message(p, msg)?) })
    }
}

impl Member for OpenMlsMember {
    fn name(&self) -> String {
        format!("{} (openmls)", self.name)
    }

    fn key_package(&mut self) -> TestResult<Vec<u8>> {
        let (cs, signer, cwk) = (self.cs, &self.signer, self.cwk.clone());
        let bundle = self.provider.transaction(|p| -> TestResult<KeyPackageBundle> {
            Ok(KeyPackage::builder().build(cs, p, signer, cwk)?)
        })?;
        Ok(MlsMessageOut::from(bundle.key_package().clone()).tls_serialize_detached()?)
    }

    fn create(&mut self, group_id: &[u8]) -> TestResult {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(self.cs)
            .max_past_epochs(MAX_PAST_EPOCHS)
            .wire_format_policy(self.wire_format_policy())
            .use_ratchet_tree_extension(self.mode.tree_in_welcome)
            .build();
        let (signer, cwk) = (&self.signer, self.cwk.clone());
        let group = self.provider.transaction(|p| -> TestResult<MlsGroup> {
            Ok(MlsGroup::new_with_group_id(p, signer, &config, GroupId::from_slice(group_id), cwk)?)
        })?;
        self.group = Some(group);
        Ok(())
    }

    fn join(&mut self, welcome: &[u8], tree: Option<&[u8]>) -> TestResult {
        let welcome = match MlsMessageIn::tls_deserialize_exact(welcome)?.extract() {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => return Err("not a Welcome".into()),
        };
        let tree = tree.map(RatchetTreeIn::tls_deserialize_exact).transpose()?;
        let config = self.join_config();
        let group = self.provider.transaction(|p| -> TestResult<MlsGroup> {
            Ok(StagedWelcome::new_from_welcome(p, &config, welcome, tree)?.into_group(p)?)
        })?;
        self.group = Some(group);
        Ok(())
    }

    fn add(&mut self, key_package: &[u8]) -> TestResult<Added> {
        let kp = match MlsMessageIn::tls_deserialize_exact(key_package)?.extract() {
            MlsMessageBodyIn::KeyPackage(kp) => kp,
            _ => return Err("not a KeyPackage".into()),
        };
        let kp = kp.validate(self.provider.crypto(), ProtocolVersion::Mls10)?;
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or("not in a group")?;
        let (commit, welcome) = self.provider.transaction(|p| -> TestResult<(Vec<u8>, Vec<u8>)> {
            let (commit, welcome, _) = group.add_members(p, signer, &[kp])?;
            group.merge_pending_commit(p)?;
            Ok((commit.tls_serialize_detached()?, welcome.tls_serialize_detached()?))
        })?;
        let tree = group.export_ratchet_tree().tls_serialize_detached()?;
        Ok(Added { commit, welcome, tree })
    }

    fn self_update(&mut self) -> TestResult<Vec<u8>> {
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or("not in a group")?;
        self.provider.transaction(|p| -> TestResult<Vec<u8>> {
            let bundle = group.self_update(p, signer, LeafNodeParameters::default())?;
            group.merge_pending_commit(p)?;
            Ok(bundle.commit().tls_serialize_detached()?)
        })
    }

    fn commit_external_psk(&mut self) -> TestResult<Vec<u8>> {
        let (cs, signer) = (self.cs, &self.signer);
        let group = self.group.as_mut().ok_or("not in a group")?;
        self.provider.transaction(|p| -> TestResult<Vec<u8>> {
            let psk_id = PreSharedKeyId::new(cs, p.rand(), Psk::External(ExternalPsk::new(PSK_ID.to_vec())))?;
            let bundle = group
                .commit_builder()
                .add_proposal(Proposal::PreSharedKey(Box::new(PreSharedKeyProposal::new(psk_id))))
                .load_psks(p.storage())?
                .build(p.rand(), p.crypto(), signer, |_| true)?
                .stage_commit(p)?;
            group.merge_pending_commit(p)?;
            Ok(bundle.commit().tls_serialize_detached()?)
        })
    }

    fn propose_update(&mut self) -> TestResult<Vec<u8>> {
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or("not in a group")?;
        self.provider.transaction(|p| -> TestResult<Vec<u8>> {
            let (msg, _) = group.propose_self_update(p, signer, LeafNodeParameters::default())?;
            Ok(msg.tls_serialize_detached()?)
        })
    }

    fn receive_proposal(&mut self, bytes: &[u8]) -> TestResult {
        let processed = self.process(bytes)?;
        let group = self.group.as_mut().ok_or("not in a group")?;
        match processed.into_content() {
            ProcessedMessageContent::ProposalMessage(p) => self.provider.transaction(|t| -> TestResult {
                group.store_pending_proposal(t.storage(), *p)?;
                Ok(())
            }),
            _ => Err(format!("{}: expected a proposal", self.name).into()),
        }
    }

    fn commit_pending(&mut self) -> TestResult<Vec<u8>> {
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or("not in a group")?;
        self.provider.transaction(|p| -> TestResult<Vec<u8>> {
            let (commit, _, _) = group.commit_to_pending_proposals(p, signer)?;
            group.merge_pending_commit(p)?;
            Ok(commit.tls_serialize_detached()?)
        })
    }

    fn own_leaf(&self) -> TestResult<u32> {
        Ok(self.group()?.own_leaf_index().u32())
    }

    fn remove(&mut self, leaf: u32) -> TestResult<Vec<u8>> {
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or("not in a group")?;
        self.provider.transaction(|p| -> TestResult<Vec<u8>> {
            let (commit, _, _) = group.remove_members(p, signer, &[LeafNodeIndex::new(leaf)])?;
            group.merge_pending_commit(p)?;
            Ok(commit.tls_serialize_detached()?)
        })
    }

    fn send(&mut self, text: &[u8], aad: &[u8]) -> TestResult<Vec<u8>> {
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or("not in a group")?;
        group.set_aad(aad.to_vec());
        self.provider.transaction(|p| -> TestResult<Vec<u8>> {
            Ok(group.create_message(p, signer, text)?.tls_serialize_detached()?)
        })
    }

    fn receive_app(&mut self, bytes: &[u8]) -> TestResult<(Vec<u8>, Vec<u8>)> {
        let processed = self.process(bytes)?;
        let aad = processed.aad().to_vec();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => Ok((m.into_bytes(), aad)),
            _ => Err(format!("{}: expected an application message", self.name).into()),
        }
    }

    fn receive_commit(&mut self, bytes: &[u8]) -> TestResult<bool> {
        let processed = self.process(bytes)?;
        let group = self.group.as_mut().ok_or("not in a group")?;
        match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => self.provider.transaction(|p| -> TestResult {
                group.merge_staged_commit(p, *staged)?;
                Ok(())
            })?,
            _ => return Err(format!("{}: expected a commit", self.name).into()),
        }
        Ok(!group.is_active())
    }

    fn group_info(&self, with_tree: bool) -> TestResult<Vec<u8>> {
        let gi = self.group()?.export_group_info(self.provider.crypto(), &self.signer, with_tree)?;
        Ok(gi.tls_serialize_detached()?)
    }

    fn tree(&self) -> TestResult<Vec<u8>> {
        Ok(self.group()?.export_ratchet_tree().tls_serialize_detached()?)
    }

    fn join_external(&mut self, group_info: &[u8], tree: Option<&[u8]>) -> TestResult<Vec<u8>> {
        let MlsMessageBodyIn::GroupInfo(gi) = MlsMessageIn::tls_deserialize_exact(group_info)?.extract() else {
            return Err("not a GroupInfo".into());
        };
        let mut builder = MlsGroup::external_commit_builder().with_config(self.join_config());
        if let Some(tree) = tree {
            builder = builder.with_ratchet_tree(RatchetTreeIn::tls_deserialize_exact(tree)?);
        }
        let (signer, cwk) = (&self.signer, self.cwk.clone());
        let (group, bundle) = self.provider.transaction(|p| -> TestResult<(MlsGroup, CommitMessageBundle)> {
            Ok(builder
                .build_group(p, gi, cwk)?
                .load_psks(p.storage())?
                .build(p.rand(), p.crypto(), signer, |_| true)?
                .finalize(p)?)
        })?;
        self.group = Some(group);
        Ok(bundle.into_commit().tls_serialize_detached()?)
    }

    fn epoch(&self) -> TestResult<u64> {
        Ok(self.group()?.epoch().as_u64())
    }

    fn epoch_authenticator(&self) -> TestResult<Vec<u8>> {
        Ok(self.group()?.epoch_authenticator().as_slice().to_vec())
    }

    fn exported_secret(&self) -> TestResult<Vec<u8>> {
        Ok(self.group()?.export_secret(self.provider.crypto(), EXPORT_LABEL, EXPORT_CONTEXT, EXPORT_LEN)?)
    }

    fn member_count(&self) -> TestResult<usize> {
        Ok(self.group()?.members().count())
    }
}

// ----------------------------------------------------------------- mls-rs

use mls_rs::client_builder::MlsConfig;
use mls_rs::extension::ExtensionType as RsExtensionType;
use mls_rs::group::{CommitEffect, ReceivedMessage};
use mls_rs::identity::basic::{BasicCredential as RsBasicCredential, BasicIdentityProvider};
use mls_rs::identity::SigningIdentity;
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules, EncryptionOptions};
use mls_rs::psk::{ExternalPskId, PreSharedKey};
use mls_rs::{CipherSuite, CipherSuiteProvider, Client, CryptoProvider, Extension, ExtensionList, Group, MlsMessage};

/// The `last_resort` KeyPackage extension type (0x000a), which Grove's DS
/// uses; mls-rs knows it only behind a feature, so it is declared here as a
/// plain extension type.
pub const LAST_RESORT: u16 = 0x000a;
use mls_rs_crypto_rustcrypto::RustCryptoProvider;

/// An mls-rs member (RustCrypto provider, in-memory storage).
pub struct MlsRsMember<C: MlsConfig> {
    name: String,
    client: Client<C>,
    group: Option<Group<C>>,
}

/// A new mls-rs identity. The mode sets mls-rs's
/// `CommitOptions::ratchet_tree_extension` and
/// `EncryptionOptions::encrypt_control_messages`.
pub fn mls_rs_member(name: &str, suite: u16, mode: Mode) -> TestResult<MlsRsMember<impl MlsConfig>> {
    mls_rs_member_with(name, suite, mode, &[])
}

/// [`mls_rs_member`] whose leaf capabilities also list `extension_types`.
pub fn mls_rs_member_with(
    name: &str,
    suite: u16,
    mode: Mode,
    extension_types: &[u16],
) -> TestResult<MlsRsMember<impl MlsConfig>> {
    let cs = CipherSuite::new(suite);
    let crypto = RustCryptoProvider::new();
    let csp = crypto.cipher_suite_provider(cs).ok_or("mls-rs RustCrypto lacks this suite")?;
    let (secret, public) = csp.signature_key_generate().map_err(|e| format!("mls-rs key generation: {e:?}"))?;
    let identity = SigningIdentity::new(RsBasicCredential::new(name.as_bytes().to_vec()).into_credential(), public);
    let mut encryption = EncryptionOptions::default();
    encryption.encrypt_control_messages = mode.encrypted_handshakes;
    let rules = DefaultMlsRules::new()
        .with_commit_options(CommitOptions::new().with_ratchet_tree_extension(mode.tree_in_welcome))
        .with_encryption_options(encryption);
    let client = Client::builder()
        .identity_provider(BasicIdentityProvider)
        .crypto_provider(crypto)
        // Listed in the leaf capabilities so that a last-resort KeyPackage
        // (see `last_resort_key_package`) is valid.
        .extension_type(RsExtensionType::new(LAST_RESORT))
        .extension_types(extension_types.iter().copied().map(RsExtensionType::new))
        .psk(ExternalPskId::new(PSK_ID.to_vec()), PreSharedKey::new(PSK_SECRET.to_vec()))
        .mls_rules(rules)
        .signing_identity(identity, secret, cs)
        .build();
    Ok(MlsRsMember { name: name.into(), client, group: None })
}

impl<C: MlsConfig> MlsRsMember<C> {
    fn group(&self) -> TestResult<&Group<C>> {
        self.group.as_ref().ok_or_else(|| format!("{}: not in a group", self.name).into())
    }

    fn group_mut(&mut self) -> TestResult<&mut Group<C>> {
        let name = &self.name;
        self.group.as_mut().ok_or_else(|| format!("{name}: not in a group").into())
    }

    /// A KeyPackage carrying the (empty) `last_resort` extension.
    pub fn last_resort_key_package(&mut self) -> TestResult<Vec<u8>> {
        let extensions = ExtensionList::from(vec![Extension::new(RsExtensionType::new(LAST_RESORT), Vec::new())]);
        Ok(self.client.generate_key_package_message(extensions, ExtensionList::default(), None)?.to_bytes()?)
    }

    /// A KeyPackage with an empty extension of each type in `key_package`
    /// in `KeyPackage.extensions` and of each type in `leaf` in
    /// `LeafNode.extensions` (list them in the capabilities with
    /// [`mls_rs_member_with`]).
    pub fn key_package_with(&mut self, key_package: &[u16], leaf: &[u16]) -> TestResult<Vec<u8>> {
        let list = |types: &[u16]| {
            ExtensionList::from(
                types.iter().map(|t| Extension::new(RsExtensionType::new(*t), Vec::new())).collect::<Vec<_>>(),
            )
        };
        Ok(self.client.generate_key_package_message(list(key_package), list(leaf), None)?.to_bytes()?)
    }

    /// Creates a one-member group whose own leaf carries an empty extension
    /// of each type in `leaf` (list them with [`mls_rs_member_with`]).
    pub fn create_with_leaf_extensions(&mut self, group_id: &[u8], leaf: &[u16]) -> TestResult {
        let list = ExtensionList::from(
            leaf.iter().map(|t| Extension::new(RsExtensionType::new(*t), Vec::new())).collect::<Vec<_>>(),
        );
        self.group = Some(self.client.create_group_with_id(group_id.to_vec(), ExtensionList::default(), list, None)?);
        Ok(())
    }

    /// Commits an Add whose Welcome's GroupInfo carries an empty extension of
    /// type `group_info_extension`, and merges.
    pub fn add_with_group_info_extension(
        &mut self,
        key_package: &[u8],
        group_info_extension: u16,
    ) -> TestResult<Added> {
        let kp = MlsMessage::from_bytes(key_package)?;
        let extensions =
            ExtensionList::from(vec![Extension::new(RsExtensionType::new(group_info_extension), Vec::new())]);
        let group = self.group_mut()?;
        let out = group.commit_builder().add_member(kp)?.set_group_info_ext(extensions).build()?;
        group.apply_pending_commit()?;
        let welcome = out.welcome_messages.first().ok_or("mls-rs produced no Welcome")?.to_bytes()?;
        Ok(Added { commit: out.commit_message.to_bytes()?, welcome, tree: group.export_tree().to_bytes()? })
    }

    /// The signing identity's public signature key.
    pub fn signature_public_key(&self) -> TestResult<Vec<u8>> {
        Ok(self.client.signing_identity()?.0.signature_key.as_bytes().to_vec())
    }

    fn process(&mut self, bytes: &[u8]) -> TestResult<ReceivedMessage> {
        let msg = MlsMessage::from_bytes(bytes)?;
        Ok(self.group_mut()?.process_incoming_message(msg)?)
    }
}

impl<C: MlsConfig> Member for MlsRsMember<C> {
    fn name(&self) -> String {
        format!("{} (mls-rs)", self.name)
    }

    fn key_package(&mut self) -> TestResult<Vec<u8>> {
        let kp = self.client.generate_key_package_message(ExtensionList::default(), ExtensionList::default(), None)?;
        Ok(kp.to_bytes()?)
    }

    fn create(&mut self, group_id: &[u8]) -> TestResult {
        let group = self.client.create_group_with_id(
            group_id.to_vec(),
            ExtensionList::default(),
            ExtensionList::default(),
            None,
        )?;
        self.group = Some(group);
        Ok(())
    }

    fn join(&mut self, welcome: &[u8], tree: Option<&[u8]>) -> TestResult {
        let welcome = MlsMessage::from_bytes(welcome)?;
        let tree = tree.map(mls_rs::group::ExportedTree::from_bytes).transpose()?;
        let (group, _info) = self.client.join_group(tree, &welcome, None)?;
        self.group = Some(group);
        Ok(())
    }

    fn add(&mut self, key_package: &[u8]) -> TestResult<Added> {
        let kp = MlsMessage::from_bytes(key_package)?;
        let group = self.group_mut()?;
        let out = group.commit_builder().add_member(kp)?.build()?;
        group.apply_pending_commit()?;
        let welcome = out.welcome_messages.first().ok_or("mls-rs produced no Welcome")?.to_bytes()?;
        Ok(Added { commit: out.commit_message.to_bytes()?, welcome, tree: group.export_tree().to_bytes()? })
    }

    fn self_update(&mut self) -> TestResult<Vec<u8>> {
        let group = self.group_mut()?;
        let out = group.commit(Vec::new())?;
        group.apply_pending_commit()?;
        Ok(out.commit_message.to_bytes()?)
    }

    fn commit_external_psk(&mut self) -> TestResult<Vec<u8>> {
        let group = self.group_mut()?;
        let out = group.commit_builder().add_external_psk(ExternalPskId::new(PSK_ID.to_vec()))?.build()?;
        group.apply_pending_commit()?;
        Ok(out.commit_message.to_bytes()?)
    }

    fn propose_update(&mut self) -> TestResult<Vec<u8>> {
        Ok(self.group_mut()?.propose_update(Vec::new())?.to_bytes()?)
    }

    fn receive_proposal(&mut self, bytes: &[u8]) -> TestResult {
        // mls-rs keeps received proposals in its proposal cache; the next
        // commit includes them by reference.
        match self.process(bytes)? {
            ReceivedMessage::Proposal(_) => Ok(()),
            other => Err(format!("{}: expected a proposal, got {other:?}", self.name).into()),
        }
    }

    fn commit_pending(&mut self) -> TestResult<Vec<u8>> {
        let group = self.group_mut()?;
        if group.get_cached_proposals().is_empty() {
            return Err("mls-rs has no pending proposal to commit".into());
        }
        let out = group.commit(Vec::new())?;
        group.apply_pending_commit()?;
        Ok(out.commit_message.to_bytes()?)
    }

    fn own_leaf(&self) -> TestResult<u32> {
        Ok(self.group()?.current_member_index())
    }

    fn remove(&mut self, leaf: u32) -> TestResult<Vec<u8>> {
        let group = self.group_mut()?;
        let out = group.commit_builder().remove_member(leaf)?.build()?;
        group.apply_pending_commit()?;
        Ok(out.commit_message.to_bytes()?)
    }

    fn send(&mut self, text: &[u8], aad: &[u8]) -> TestResult<Vec<u8>> {
        Ok(self.group_mut()?.encrypt_application_message(text, aad.to_vec())?.to_bytes()?)
    }

    fn receive_app(&mut self, bytes: &[u8]) -> TestResult<(Vec<u8>, Vec<u8>)> {
        match self.process(bytes)? {
            ReceivedMessage::ApplicationMessage(m) => Ok((m.data().to_vec(), m.authenticated_data.clone())),
            other => Err(format!("{}: expected an application message, got {other:?}", self.name).into()),
        }
    }

    fn receive_commit(&mut self, bytes: &[u8]) -> TestResult<bool> {
        match self.process(bytes)? {
            ReceivedMessage::Commit(c) => Ok(matches!(c.effect, CommitEffect::Removed { .. })),
            other => Err(format!("{}: expected a commit, got {other:?}", self.name).into()),
        }
    }

    fn group_info(&self, with_tree: bool) -> TestResult<Vec<u8>> {
        Ok(self.group()?.group_info_message_allowing_ext_commit(with_tree)?.to_bytes()?)
    }

    fn tree(&self) -> TestResult<Vec<u8>> {
        Ok(self.group()?.export_tree().to_bytes()?)
    }

    fn join_external(&mut self, group_info: &[u8], tree: Option<&[u8]>) -> TestResult<Vec<u8>> {
        let mut builder = self.client.external_commit_builder()?;
        if let Some(tree) = tree {
            builder = builder.with_tree_data(mls_rs::group::ExportedTree::from_bytes(tree)?.into_owned());
        }
        let (group, commit) = builder.build(MlsMessage::from_bytes(group_info)?)?;
        self.group = Some(group);
        Ok(commit.to_bytes()?)
    }

    fn epoch(&self) -> TestResult<u64> {
        Ok(self.group()?.current_epoch())
    }

    fn epoch_authenticator(&self) -> TestResult<Vec<u8>> {
        Ok(self.group()?.epoch_authenticator()?.as_bytes().to_vec())
    }

    fn exported_secret(&self) -> TestResult<Vec<u8>> {
        Ok(self.group()?.export_secret(EXPORT_LABEL.as_bytes(), EXPORT_CONTEXT, EXPORT_LEN)?.as_bytes().to_vec())
    }

    fn member_count(&self) -> TestResult<usize> {
        Ok(self.group()?.roster().members_iter().count())
    }
}
