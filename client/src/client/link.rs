//! Linking a new device (`docs/identity.md`, "Linking").
//!
//! 1. The new device ([`Client::request_link`]) makes a device key, an HPKE
//!    key pair and a 16-byte secret, posts a request (its keys, MACed under
//!    the secret, signed by the device key) and shows the link code
//!    `grove-link-v1:USER:ID:SECRET` and a comparison code.
//! 2. An existing device ([`Client::approve_link`]) reads the request by id,
//!    checks its MAC with the secret from the code (so the DS cannot have
//!    swapped the keys), shows the same comparison code, and on approval
//!    certifies the new device key, publishes the next device list, and
//!    posts the approval: the identity key, the certificate, the list, the
//!    user's groups and pinned contacts, sealed to the request's HPKE key
//!    and MACed under the secret (so the DS can neither read nor forge it).
//! 3. The new device ([`Client::finish_link`], run by `grove sync`) opens
//!    the approval, checks the certificate and the list against the
//!    identity key, becomes a device of the user, and joins each group by
//!    an external commit (which the DS accepts from a listed device of a
//!    member user).
//!
//! A code works once (the DS stores one approval per request) and for
//! [`LINK_TTL_SECS`](grove_proto::link::LINK_TTL_SECS).

use std::path::Path;

use base64::Engine as _;
use grove_proto as proto;
use grove_proto::identity::{DeviceCertificate, DeviceCertificateTbs, DeviceEntry, DeviceList, DeviceListTbs};
use grove_proto::link::{
    LinkApproval, LinkContact, LinkGroup, LinkRequest, LinkRequestTbs, SealedApproval, LINK_APPROVAL_LABEL,
    LINK_CODE_PREFIX, LINK_COMPARE_LABEL, LINK_PROOF_LABEL, LINK_REQUEST_MAC_LABEL, LINK_TTL_SECS,
};
use hmac::Mac as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::Signer as _;
use sha2::Digest as _;
use tls_codec::{Deserialize as _, Serialize as _};

use super::{b64url, Client, ClientConfig};
use crate::error::{Error, MlsResultExt as _, Result};
use crate::records::{Contact, GroupRecord, GroupState, HistoryPolicy, IdentityRecord, IdentitySecret, PendingLink};
use crate::repo::Repo;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a new device shows while it waits to be linked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkCodes {
    /// The link code, entered on an existing device of the user.
    pub link_code: String,
    /// The comparison code both devices show (six digits).
    pub compare: String,
}

/// What [`Client::approve_link`] found (and did).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkApprovalInfo {
    /// The new device's id.
    pub device: String,
    /// Its label, if it gave one.
    pub label: String,
    /// The comparison code: the new device shows the same.
    pub compare: String,
    /// Whether it was approved (false: only looked at, `confirm` was false).
    pub approved: bool,
}

/// What [`Client::finish_link`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkFinished {
    /// This device's id.
    pub device: String,
    /// Groups joined (base64url ids).
    pub joined: Vec<String>,
    /// Groups that could not be joined, with why.
    pub failed: Vec<String>,
}

/// A link code's parts.
struct Code {
    user: String,
    id: String,
    secret: Vec<u8>,
}

fn b64u(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn parse_code(code: &str) -> Result<Code> {
    let bad = || {
        Error::LinkRefused(format!(
            "{code:?} is not a link code (it looks like {LINK_CODE_PREFIX}:USER:ID:SECRET; copy it whole from the new device)"
        ))
    };
    let mut parts = code.trim().split(':');
    let (Some(prefix), Some(user), Some(id), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if prefix != LINK_CODE_PREFIX || proto::UserName::parse(user).is_err() {
        return Err(bad());
    }
    let dec = |s: &str, n: usize| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok().filter(|b| b.len() == n).ok_or_else(bad)
    };
    dec(id, 16)?;
    Ok(Code { user: user.to_owned(), id: id.to_owned(), secret: dec(secret, 16)? })
}

/// HMAC-SHA256 under `secret` over `label || 0x00` and each part, prefixed
/// by its length (u32, big-endian).
fn link_mac(secret: &[u8], label: &[u8], parts: &[&[u8]]) -> Result<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret).map_err(|e| Error::LinkRefused(format!("link secret: {e}")))?;
    m.update(label);
    m.update(&[0]);
    for p in parts {
        m.update(&u32::try_from(p.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.update(p);
    }
    Ok(m)
}

/// The six digits both devices show: a hash of the link secret, the user
/// and the new device's key.
pub fn comparison_code(secret: &[u8], user: &str, device_key: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    for part in [LINK_COMPARE_LABEL, secret, user.as_bytes(), device_key] {
        h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(part);
    }
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    b
}

use super::devices::now;

impl Client {
    /// Makes `home` a new device of `config.user` waiting to be linked
    /// (see the module docs): a device key, and a link request at the DS.
    /// Returns the client and the codes to show. Run again on the same
    /// home, it shows the same codes (or makes a new request if the old one
    /// expired); a home that is already a device fails with
    /// [`Error::AlreadyInitialized`].
    pub async fn request_link(
        home: impl AsRef<Path>,
        config: ClientConfig,
        label: &str,
    ) -> Result<(Client, LinkCodes)> {
        let home = home.as_ref().to_path_buf();
        let suite = super::identity::check_config(&config)?;
        let provider = super::identity::open_store(&home, config.store_key.as_ref())?;
        let existing = Repo::new(provider.storage()).meta().identity()?;
        let (signer, id) = match existing {
            Some(id) if id.link.is_some() && id.user == config.user => {
                let signer = Self::read_signer(&provider, &id, &home)?;
                (std::sync::Arc::new(signer), id)
            }
            Some(id) => {
                return Err(Error::AlreadyInitialized {
                    home: home.display().to_string(),
                    user: id.user,
                    server: id.server,
                })
            }
            None => {
                let signer = SignatureKeyPair::new(suite.signature_algorithm()).mls("generate the signature key")?;
                let id = IdentityRecord::for_device(&config, signer.public());
                (std::sync::Arc::new(signer), id)
            }
        };
        let live = id.link.as_ref().is_some_and(|l| !l.id.is_empty() && l.expires_at > now() + 30);
        let id = if live { id } else { Self::post_link_request(&home, &provider, &signer, id, &config, label).await? };
        let link = id.link.clone().ok_or_else(|| Error::Protocol("link request missing".into()))?;
        let compare = comparison_code(&link.secret.0, &id.user, signer.public());
        let client = Self::assemble(home, provider, signer, id, config.store_key.clone())?;
        Ok((client, LinkCodes { link_code: link.code, compare }))
    }

    /// Posts a fresh link request for the device `signer`; stores the keys
    /// first (so a crash never leaves a request whose keys are lost).
    async fn post_link_request(
        home: &Path,
        provider: &crate::storage::GroveProvider,
        signer: &std::sync::Arc<SignatureKeyPair>,
        mut id: IdentityRecord,
        config: &ClientConfig,
        label: &str,
    ) -> Result<IdentityRecord> {
        let suite = Self::suite_of(&id)?;
        let secret = random::<16>();
        let keys = provider
            .crypto()
            .derive_hpke_keypair(suite.hpke_config(), &random::<32>())
            .mls("generate the link's HPKE key")?;
        let tbs = LinkRequestTbs {
            user: id.user.as_bytes().to_vec().into(),
            device_key: signer.public().to_vec().into(),
            signature_scheme: signer.signature_scheme() as u16,
            hpke_public: keys.public.clone().into(),
            ciphersuite: id.ciphersuite,
            label: label.as_bytes().to_vec().into(),
            created_at: now(),
        };
        let tbs_bytes = tbs.tls_serialize_detached().mls("encode the link request")?;
        let mac = link_mac(&secret, LINK_REQUEST_MAC_LABEL, &[&tbs_bytes])?.finalize().into_bytes().to_vec();
        let request = LinkRequest { tbs, mac: mac.into() }.tls_serialize_detached().mls("encode the link request")?;
        let proof = signer
            .sign(&proto::identity::labeled(LINK_PROOF_LABEL, &request))
            .map_err(|e| Error::mls_because("sign the link request", format!("{e:?}")))?;
        let mut link = PendingLink {
            code: String::new(),
            id: String::new(),
            secret: IdentitySecret(secret.to_vec()),
            hpke_secret: IdentitySecret(keys.private.to_vec()),
            expires_at: 0,
        };
        id.link = Some(link.clone());
        provider.transaction(|p| -> Result<()> {
            signer.store(p.storage())?;
            Repo::of(p).meta().set_identity(&id)
        })?;
        let http = crate::tls::http_client(&id.server, &id.trust)?;
        let ds = crate::http::DsHttp::new(http, &id.server, &id.user, signer.clone(), true);
        let req = proto::LinkCreateRequest { request, proof, login_token: config.login_token.clone() };
        let created = ds.create_link(&req).await?;
        link.code = format!("{LINK_CODE_PREFIX}:{}:{}:{}", id.user, created.id, b64u(&secret));
        link.id = created.id;
        link.expires_at = now() + created.expires_in.min(LINK_TTL_SECS);
        id.link = Some(link);
        provider.transaction(|p| Repo::of(p).meta().set_identity(&id))?;
        tracing::info!(home = %home.display(), "link request posted");
        Ok(id)
    }

    /// The link code of a home waiting to be linked.
    pub fn link_pending(&self) -> Option<LinkCodes> {
        self.id.link.as_ref().map(|l| LinkCodes {
            link_code: l.code.clone(),
            compare: comparison_code(&l.secret.0, &self.id.user, self.signer.public()),
        })
    }
}

impl Client {
    /// Approves the new device whose link code is `code` (see the module
    /// docs). With `confirm` false it only checks the request and returns
    /// the comparison code, for the user to compare; with `confirm` true
    /// it approves.
    pub async fn approve_link(&self, code: &str, confirm: bool) -> Result<LinkApprovalInfo> {
        let _op = self.ops.lock().await;
        let code = parse_code(code)?;
        if code.user != self.id.user {
            return Err(Error::LinkRefused(format!(
                "the code is for user {}, this device is {}'s",
                code.user, self.id.user
            )));
        }
        let identity = self.identity_signer()?.ok_or_else(|| {
            Error::LinkRefused(
                "this home has no identity key (it was made before identity keys): it cannot link devices".into(),
            )
        })?;
        let found = match self.ds.get_link(&code.id).await {
            Err(Error::Server { status: 404, .. }) => {
                return Err(Error::LinkRefused(
                    "the DS has no such link request: it expired (they last 10 minutes) or the code is wrong; run \
                     `grove init --link` on the new device again"
                        .into(),
                ))
            }
            other => other?,
        };
        let req = LinkRequest::decode(&found.request)
            .map_err(|e| Error::LinkRefused(format!("the DS serves a malformed link request: {e}")))?;
        let tbs_bytes = req.tbs.tls_serialize_detached().mls("encode")?;
        let mac = link_mac(&code.secret, LINK_REQUEST_MAC_LABEL, &[&tbs_bytes])?;
        if found.user != self.id.user || req.user() != self.id.user || mac.verify_slice(req.mac.as_slice()).is_err() {
            return Err(Error::LinkRefused(
                "the request the DS serves does not match the link code (its MAC fails): the DS or someone in \
                 between changed it. Nothing was approved"
                    .into(),
            ));
        }
        if req.tbs.ciphersuite != self.id.ciphersuite {
            return Err(Error::LinkRefused(format!(
                "the new device uses ciphersuite {}, this one {}: make the request with the same --ciphersuite",
                req.tbs.ciphersuite, self.id.ciphersuite
            )));
        }
        let device_key = req.tbs.device_key.as_slice().to_vec();
        let info = LinkApprovalInfo {
            device: proto::identity::device_id(&device_key),
            label: String::from_utf8_lossy(req.tbs.label.as_slice()).into_owned(),
            compare: comparison_code(&code.secret, &self.id.user, &device_key),
            approved: false,
        };
        if found.approval.is_some() {
            return Err(Error::LinkRefused("this link code was used already: a code approves one device, once".into()));
        }
        if !confirm {
            return Ok(info);
        }
        let list = self.list_with_device(&identity, &req.tbs).await?;
        let approval = self.seal_approval(&identity, &code, &req.tbs, &list)?;
        match self.ds.approve_link(&code.id, &approval).await {
            Err(Error::Server { status: 409, .. }) => {
                return Err(Error::LinkRefused(
                    "this link code was used already: a code approves one device, once".into(),
                ))
            }
            other => other?,
        }
        tracing::info!(device = %info.device, "device linked");
        Ok(LinkApprovalInfo { approved: true, ..info })
    }

    /// This user's latest verified device list with the new device in it:
    /// published as the next version, unless a retry finds it there already.
    async fn list_with_device(&self, identity: &ed25519_dalek::SigningKey, tbs: &LinkRequestTbs) -> Result<DeviceList> {
        let user = self.id.user.clone();
        let current = self.device_list_of(&user).await?.ok_or_else(|| {
            Error::LinkRefused("the DS has no device list of this user: this home cannot link devices".into())
        })?;
        if current.contains(tbs.device_key.as_slice()) {
            return Ok(current);
        }
        let mut devices = current.tbs.devices.clone();
        devices.push(DeviceEntry {
            device_key: tbs.device_key.clone(),
            signature_scheme: tbs.signature_scheme,
            added_at: now(),
            label: tbs.label.clone(),
        });
        let next = signed_list(identity, &current, devices)?;
        self.publish_own_list(&next).await?;
        Ok(next)
    }

    /// Publishes `list` as this user's next device list and remembers it.
    pub(super) async fn publish_own_list(&self, list: &DeviceList) -> Result<()> {
        self.ds.publish_device_list(&list.encode()).await?;
        let bytes = list.encode();
        self.provider.transaction(|p| -> Result<()> {
            let repo = Repo::of(p);
            let mut id = repo.meta().identity()?.ok_or_else(|| Error::Protocol("identity record missing".into()))?;
            id.device_list = bytes;
            repo.meta().set_identity(&id)
        })
    }

    /// The approval for the request `tbs`, sealed to its HPKE key and MACed
    /// under the code's secret.
    fn seal_approval(
        &self,
        identity: &ed25519_dalek::SigningKey,
        code: &Code,
        tbs: &LinkRequestTbs,
        list: &DeviceList,
    ) -> Result<Vec<u8>> {
        let cert = DeviceCertificate::new(
            DeviceCertificateTbs {
                user: self.id.user.as_bytes().to_vec().into(),
                identity_key: identity.verifying_key().to_bytes().to_vec().into(),
                device_key: tbs.device_key.clone(),
                signature_scheme: tbs.signature_scheme,
                created_at: now(),
            },
            super::devices::signer(identity),
        );
        let repo = self.repo();
        let mut groups = Vec::new();
        for gid in repo.groups().ids()? {
            let rec = repo.groups().require(&gid)?;
            if rec.state == GroupState::Active {
                groups.push(LinkGroup {
                    group_id: gid.into(),
                    name: rec.name.unwrap_or_default().into_bytes().into(),
                    history: u8::from(rec.history == HistoryPolicy::Share),
                });
            }
        }
        let contacts = repo
            .contacts()
            .all()?
            .into_iter()
            .map(|(user, c)| LinkContact {
                user: user.into_bytes().into(),
                key: c.key.into(),
                verified: u8::from(c.verified),
            })
            .collect();
        let payload = LinkApproval {
            identity_secret: identity.to_bytes().to_vec().into(),
            device_certificate: cert.tls_serialize_detached().mls("encode the certificate")?.into(),
            device_list: list.encode().into(),
            groups,
            contacts,
        };
        let mut plain = payload.tls_serialize_detached().mls("encode the approval")?;
        let id_bytes = code.id.as_bytes();
        let sealed = self.provider.crypto().hpke_seal(
            self.suite().hpke_config(),
            tbs.hpke_public.as_slice(),
            LINK_APPROVAL_LABEL,
            id_bytes,
            &plain,
        );
        zeroize::Zeroize::zeroize(&mut plain);
        let sealed = sealed.mls("seal the approval")?;
        let (enc, ct) = (sealed.kem_output.as_slice(), sealed.ciphertext.as_slice());
        let mac = link_mac(&code.secret, LINK_APPROVAL_LABEL, &[id_bytes, enc, ct])?.finalize().into_bytes().to_vec();
        SealedApproval { enc: enc.to_vec().into(), ciphertext: ct.to_vec().into(), mac: mac.into() }
            .tls_serialize_detached()
            .mls("encode the approval")
    }
}

/// The next version of `current` with `devices`, signed by the identity key.
pub(super) fn signed_list(
    identity: &ed25519_dalek::SigningKey,
    current: &DeviceList,
    devices: Vec<DeviceEntry>,
) -> Result<DeviceList> {
    if devices.len() > proto::identity::MAX_DEVICES {
        return Err(Error::InvalidArgument(format!(
            "a user has at most {} devices: revoke one first",
            proto::identity::MAX_DEVICES
        )));
    }
    Ok(DeviceList::new(
        DeviceListTbs {
            user: current.tbs.user.clone(),
            identity_key: current.tbs.identity_key.clone(),
            version: current.version() + 1,
            previous: current.hash().into(),
            devices,
            issued_at: now(),
        },
        super::devices::signer(identity),
    ))
}

impl Client {
    /// Completes the link of a home made by [`Client::request_link`], once
    /// another device approved it: checks and opens the approval, becomes a
    /// device of the user, uploads KeyPackages and joins the user's groups.
    /// Returns the client of the linked home (a home that is not waiting
    /// comes back unchanged, with `None`). Fails with
    /// [`Error::LinkPending`] while the approval is not there.
    pub async fn finish_link(self) -> Result<(Client, Option<LinkFinished>)> {
        let Some(link) = self.id.link.clone() else { return Ok((self, None)) };
        let found = match self.ds.get_link(&link.id).await {
            Err(Error::Server { status: 404, .. }) => {
                return Err(Error::LinkRefused(
                    "the link request expired before another device approved it: run `grove init --link` again \
                     with this home to make a new one"
                        .into(),
                ))
            }
            other => other?,
        };
        let Some(sealed) = found.approval else { return Err(Error::LinkPending { code: link.code.clone() }) };
        let approval = self.open_approval(&link, &sealed)?;
        let (identity, cert, list) = self.check_approval(&approval)?;
        let home = self.home.clone();
        let store_key = self.store_key.clone();
        self.provider.transaction(|p| -> Result<()> {
            let repo = Repo::of(p);
            let mut id = repo.meta().identity()?.ok_or_else(|| Error::Protocol("identity record missing".into()))?;
            super::devices::set_identity(&mut id, &identity, &cert, &list);
            id.link = None;
            repo.meta().set_identity(&id)?;
            for c in &approval.contacts {
                let user = String::from_utf8_lossy(c.user.as_slice()).into_owned();
                if user != id.user && repo.contacts().get(&user)?.is_none() {
                    let contact =
                        Contact { key: c.key.as_slice().to_vec(), verified: c.verified == 1, ..Default::default() };
                    repo.contacts().put(&user, &contact)?;
                }
            }
            Ok(())
        })?;
        drop(self);
        let client = Client::open_with_key(&home, store_key)?;
        client.ds.login().await?;
        client.ensure_key_packages().await?;
        let mut done =
            LinkFinished { device: proto::identity::device_id(client.signer.public()), ..Default::default() };
        for g in &approval.groups {
            let gid = g.group_id.as_slice();
            match client.join_linked_group(g).await {
                Ok(true) => done.joined.push(b64url(gid)),
                Ok(false) => {}
                Err(e) => done.failed.push(format!("{}: {e}", b64url(gid))),
            }
        }
        Ok((client, Some(done)))
    }

    /// Checks the approval's MAC under the link secret, then opens it.
    fn open_approval(&self, link: &PendingLink, sealed: &[u8]) -> Result<LinkApproval> {
        let sealed = SealedApproval::tls_deserialize_exact(sealed)
            .map_err(|e| Error::LinkRefused(format!("the approval is malformed: {e}")))?;
        let (enc, ct) = (sealed.enc.as_slice(), sealed.ciphertext.as_slice());
        let id_bytes = link.id.as_bytes();
        if link_mac(&link.secret.0, LINK_APPROVAL_LABEL, &[id_bytes, enc, ct])?
            .verify_slice(sealed.mac.as_slice())
            .is_err()
        {
            return Err(Error::LinkRefused(
                "the approval was not made by a device that saw the link code (its MAC fails): the DS or someone \
                 else made it up. Nothing was changed"
                    .into(),
            ));
        }
        let ciphertext =
            openmls_traits::types::HpkeCiphertext { kem_output: enc.to_vec().into(), ciphertext: ct.to_vec().into() };
        let mut plain = self
            .provider
            .crypto()
            .hpke_open(self.suite().hpke_config(), &ciphertext, &link.hpke_secret.0, LINK_APPROVAL_LABEL, id_bytes)
            .map_err(|e| Error::LinkRefused(format!("the approval cannot be opened: {e:?}")))?;
        let approval = LinkApproval::tls_deserialize_exact(&plain)
            .map_err(|e| Error::LinkRefused(format!("the approval is malformed: {e}")));
        zeroize::Zeroize::zeroize(&mut plain);
        approval
    }

    /// The approval's identity key, and this device's certificate and the
    /// list holding it, each checked against that identity key.
    fn check_approval(&self, a: &LinkApproval) -> Result<(ed25519_dalek::SigningKey, DeviceCertificate, DeviceList)> {
        let refuse = |why: String| Error::LinkRefused(format!("the approval does not hold: {why}"));
        let seed: [u8; 32] =
            a.identity_secret.as_slice().try_into().map_err(|_| refuse("the identity key is not 32 bytes".into()))?;
        let identity = ed25519_dalek::SigningKey::from_bytes(&seed);
        let ik = identity.verifying_key().to_bytes();
        let cert = DeviceCertificate::tls_deserialize_exact(a.device_certificate.as_slice())
            .map_err(|e| refuse(format!("certificate: {e}")))?;
        cert.verify_for(&self.id.user, &ik, self.signer.public()).map_err(|e| refuse(format!("certificate: {e}")))?;
        let list = DeviceList::decode(a.device_list.as_slice()).map_err(|e| refuse(format!("device list: {e}")))?;
        list.verify(&self.id.user, &ik).map_err(|e| refuse(format!("device list: {e}")))?;
        if !list.contains(self.signer.public()) {
            return Err(refuse("the device list does not hold this device".into()));
        }
        Ok((identity, cert, list))
    }

    /// Joins a group of this user by an external commit (this device is
    /// new to it); `false` when it has a record of the group already.
    pub(super) async fn join_linked_group(&self, g: &LinkGroup) -> Result<bool> {
        let gid = g.group_id.as_slice().to_vec();
        if self.repo().groups().get(&gid)?.is_some() {
            return Ok(false);
        }
        let seq = self.external_join(&gid).await?;
        let name = Some(String::from_utf8_lossy(g.name.as_slice()).into_owned()).filter(|n| !n.is_empty());
        let history = if g.history == 1 { HistoryPolicy::Share } else { HistoryPolicy::None };
        let now = self.now_secs();
        self.provider.transaction(|p| -> Result<()> {
            let group = Self::load(p, &gid)?;
            let mut rec = GroupRecord::fresh(name.clone(), group.epoch().as_u64(), history, now);
            rec.cursor = seq;
            Repo::of(p).groups().put(&gid, &rec)?;
            self.pin_members(p, &group)
        })?;
        Ok(true)
    }

    /// Joins `gid` with this device's own leaf by an external commit on the
    /// DS's GroupInfo (its MLS state, if any, is replaced); returns the
    /// commit's seq. On a lost race it builds again on the new GroupInfo.
    pub(super) async fn external_join(&self, gid: &[u8]) -> Result<u64> {
        let gpath = b64url(gid);
        let mut backoff = self.backoff();
        loop {
            let gi = self.ds.group_info(&gpath).await?;
            let body = self.provider.transaction(|p| self.stage_join(p, gid, &gi))?;
            match self.ds.post_commit(&gpath, body).await {
                Ok(posted) => return Ok(posted.seq),
                Err(Error::Server { status: 409, .. }) => {
                    self.drop_group_state(gid)?;
                    if !backoff.pause().await {
                        return Err(backoff.exhausted("join a group as a new device"));
                    }
                }
                Err(e) => {
                    self.drop_group_state(gid)?;
                    return Err(e);
                }
            }
        }
    }

    /// Builds the external commit that joins `gid` from its GroupInfo `gi`.
    fn stage_join(&self, p: &crate::storage::TxnProvider<'_>, gid: &[u8], gi: &[u8]) -> Result<Vec<u8>> {
        let msg = MlsMessageIn::tls_deserialize_exact(gi).mls("decode the group's GroupInfo")?;
        let MlsMessageBodyIn::GroupInfo(vgi) = msg.extract() else {
            return Err(Error::Protocol("the DS's group-info is not a GroupInfo".into()));
        };
        if vgi.group_id().as_slice() != gid {
            return Err(Error::Protocol("the DS's GroupInfo is for another group".into()));
        }
        let signer = super::resync::group_info_signer(&vgi)?;
        if let Some(mut old) = MlsGroup::load(p.storage(), &GroupId::from_slice(gid))? {
            old.delete(p.storage())?; // an upgraded home's single-key state: replaced by the device's
        }
        let (group, _, body) = self.external_commit(p, vgi)?;
        self.check_join_signer(p, &group, signer)?;
        Ok(body)
    }

    /// A GroupInfo from the DS could be made up (a tree with a leaf of the
    /// DS's own, which signs it): its signer must be another device of this
    /// user (in the verified device list) or a contact with the pinned key
    /// (the pins came with the approval). openmls has checked the signature
    /// with the signer leaf's key, and the GroupInfo covers the tree.
    fn check_join_signer(&self, p: &crate::storage::TxnProvider<'_>, group: &MlsGroup, signer: u32) -> Result<()> {
        let list = DeviceList::decode(&self.id.device_list).map_err(|e| Error::Protocol(e.to_string()))?;
        let vouched = match group.members().find(|m| m.index.u32() == signer) {
            Some(m) if m.index != group.own_leaf_index() => {
                let user = super::identity_of(&m.credential);
                let pin_key = super::devices::pin_key_of(&user, &m.credential, &m.signature_key);
                // Another device of this user, this user's single-key leaf
                // (an upgraded home), or a pinned contact.
                list.contains(&m.signature_key)
                    || m.signature_key.as_slice() == self.identity_public()
                    || (user != self.id.user && Repo::of(p).contacts().get(&user)?.is_some_and(|c| c.key == pin_key))
            }
            _ => false,
        };
        if vouched {
            return Ok(());
        }
        Err(Error::Protocol(
            "the DS's GroupInfo is not signed by another device of this user nor by a pinned contact: it will not \
             join a group state it cannot trace to someone it knows (the DS may be making it up)"
                .into(),
        ))
    }

    /// Forgets the MLS state of a group this device failed to join.
    fn drop_group_state(&self, gid: &[u8]) -> Result<()> {
        self.provider.transaction(|p| -> Result<()> {
            if let Some(mut g) = MlsGroup::load(p.storage(), &GroupId::from_slice(gid))? {
                g.delete(p.storage())?;
            }
            Ok(())
        })
    }
}
