//! Contacts: keys pinned on first use, key changes held until decided, and
//! safety numbers.

use grove_proto as proto;
use openmls::prelude::*;
use sha2::Digest as _;
use tls_codec::Deserialize as _;

use super::devices::pin_key_of;
use super::{identity_of, Client, ContactInfo, SafetyNumber};
use crate::error::{Error, Result};
use crate::records::Contact;
use crate::repo::Repo;
use crate::storage::{Kv, TxnProvider};

/// The safety number of two users: SHA-512 over both (user, key) pairs in
/// sorted order, shown as 12 groups of 5 digits. Both sides compute the same.
pub fn safety_number(a_user: &str, a_key: &[u8], b_user: &str, b_key: &[u8]) -> String {
    let mut parts = [(a_user.as_bytes(), a_key), (b_user.as_bytes(), b_key)];
    parts.sort();
    let mut h = sha2::Sha512::new();
    h.update(b"grove-safety-number-v1");
    for (u, k) in parts {
        h.update((u.len() as u64).to_be_bytes());
        h.update(u);
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
    }
    let d = h.finalize();
    d.chunks(5)
        .take(12)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a key seen for a user means against its pin.
enum Seen {
    /// Nothing was pinned: the key is pinned now.
    New,
    /// The pinned key, with no other key pending.
    Pinned,
    /// A key differs from the pin (the one seen now or one seen earlier):
    /// `(pinned, other)`.
    Differs(Vec<u8>, Vec<u8>),
}

/// Compares `seen` with the pin of `user` in `repo`; pins it if nothing is
/// pinned and remembers it as pending if it differs.
fn pin<K: Kv>(repo: Repo<'_, K>, user: &str, seen: &[u8]) -> Result<Seen> {
    let contacts = repo.contacts();
    match contacts.get(user)? {
        None => {
            contacts
                .put(user, &Contact { key: seen.to_vec(), verified: false, pending: None, ..Default::default() })?;
            Ok(Seen::New)
        }
        // A key the user replaced (an identity reset it accepted): its
        // leaves are on their way out, not a new change.
        Some(c) if c.replaced.iter().any(|k| k == seen) => Ok(Seen::Pinned),
        Some(c) if c.key == seen => match c.pending {
            None => Ok(Seen::Pinned),
            // A different key was seen earlier and not decided on yet.
            Some(pending) => Ok(Seen::Differs(c.key, pending)),
        },
        Some(mut c) => {
            c.pending = Some(seen.to_vec());
            contacts.put(user, &c)?;
            Ok(Seen::Differs(c.key, seen.to_vec()))
        }
    }
}

/// The keys a contact is no longer pinned by once `new` replaces its pin.
fn replaced_keys(current: Option<Contact>, new: &[u8]) -> Vec<Vec<u8>> {
    let Some(c) = current else { return Vec::new() };
    let mut r = c.replaced;
    r.push(c.key);
    r.retain(|k| k != new);
    r.dedup();
    r
}

fn key_changed(user: &str, pinned: &[u8], seen: &[u8]) -> Error {
    Error::KeyChanged { user: user.to_owned(), pinned: proto::fingerprint(pinned), seen: proto::fingerprint(seen) }
}

impl Client {
    pub(super) fn contact(&self, user: &str) -> Result<Option<Contact>> {
        self.repo().contacts().get(user)
    }

    /// Looks `user` up on the DS and checks the key against the pin (pinning
    /// it on first sight). Returns the pinned key.
    pub async fn lookup_user(&self, user: &str) -> Result<ContactInfo> {
        self.pinned_key(user).await?;
        self.contact_info(user)
    }

    /// The pinned key of `user`, checked against what the DS says now.
    pub(super) async fn pinned_key(&self, user: &str) -> Result<Vec<u8>> {
        let key = self.served_key(user).await?;
        self.check_key(user, &key)
    }

    /// The key the DS serves for `user` (its answer checked for the right user).
    async fn served_key(&self, user: &str) -> Result<Vec<u8>> {
        let r = match self.ds.get_user(user).await {
            Ok(r) => r,
            Err(Error::Server { status: 404, code: proto::ErrorCode::UnknownUser, .. })
                if self.contact(user)?.is_some() =>
            {
                return Err(Error::ServerRollback {
                    group: "-".into(),
                    detail: format!("{user} is a pinned contact, but the DS does not know them any more"),
                })
            }
            Err(e) => Err(e)?,
        };
        let cred = Credential::tls_deserialize_exact(&r.key.credential)
            .map_err(|e| Error::Protocol(format!("credential of {user}: {e}")))?;
        if r.key.user != user || identity_of(&cred) != user {
            return Err(Error::Protocol(format!("the DS answered a lookup of {user} with {}", r.key.user)));
        }
        if let Some(bytes) = r.device_list.as_deref() {
            // A list its identity key did not sign is refused as such first.
            let rejected = |e: grove_proto::identity::IdentityError| Error::DeviceListRejected {
                user: user.to_owned(),
                reason: e.to_string(),
            };
            grove_proto::identity::DeviceList::decode(bytes)
                .map_err(rejected)?
                .verify(user, &r.key.signature_key)
                .map_err(rejected)?;
        }
        // Nothing is pinned or used before the key directory vouches for it.
        self.kt_check(user, &r.key.signature_key, r.device_list.as_deref()).await?;
        Ok(r.key.signature_key)
    }

    /// Checks `seen` against the pinned key of `user`; pins it if nothing is
    /// pinned. On a mismatch, remembers `seen` as pending and fails (the
    /// warning stays until [`trust_new_key`](Self::trust_new_key)).
    pub(super) fn check_key(&self, user: &str, seen: &[u8]) -> Result<Vec<u8>> {
        let outcome = self.provider.transaction(|p| pin(Repo::of(p), user, seen))?;
        match outcome {
            Seen::New | Seen::Pinned => Ok(seen.to_vec()),
            Seen::Differs(pinned, other) => Err(key_changed(user, &pinned, &other)),
        }
    }

    /// Pins the keys of group members seen for the first time; marks a
    /// differing key as pending (the user then shows as
    /// [`KeyStatus::Changed`](super::KeyStatus::Changed)).
    ///
    /// A member pinned here was vouched for by the key directory to the
    /// member who added them, not to this client: it is queued, and the end
    /// of the sync checks it against the directory ([`Client::kt_finish_sync`]).
    pub(super) fn pin_members(&self, p: &TxnProvider<'_>, group: &MlsGroup) -> Result<()> {
        let mut new = Vec::new();
        for m in group.members() {
            let user = identity_of(&m.credential);
            if user != self.id.user
                && matches!(pin(Repo::of(p), &user, &pin_key_of(&user, &m.credential, &m.signature_key))?, Seen::New)
            {
                new.push(user);
            }
        }
        if !new.is_empty() {
            let meta = Repo::of(p).meta();
            let mut s = meta.kt()?.unwrap_or_default();
            for u in new {
                if !s.unchecked_pins.contains(&u) {
                    s.unchecked_pins.push(u);
                }
            }
            meta.set_kt(&s)?;
        }
        Ok(())
    }

    /// Fails if any member's key differs from its pin (or a different key
    /// seen earlier is still undecided).
    pub(super) fn check_member_keys(&self, gid: &[u8]) -> Result<()> {
        let g = self.group(gid)?;
        for m in g.members() {
            let user = identity_of(&m.credential);
            if user == self.id.user {
                continue;
            }
            if let Some(c) = self.contact(&user)? {
                let key = self.pin_key(&user, &m.credential, &m.signature_key);
                if c.replaced.contains(&key) {
                    continue; // an old identity's device, removed on the next sync
                }
                let seen = if c.key != key { Some(key) } else { c.pending.clone() };
                if let Some(seen) = seen {
                    return Err(key_changed(&user, &c.key, &seen));
                }
            }
        }
        Ok(())
    }

    fn contact_info(&self, user: &str) -> Result<ContactInfo> {
        let c = self.contact(user)?.ok_or_else(|| Error::UnknownContact(user.to_owned()))?;
        Ok(ContactInfo {
            user: user.to_owned(),
            fingerprint: proto::fingerprint(&c.key),
            verified: c.verified,
            pending_fingerprint: c.pending.as_deref().map(proto::fingerprint),
        })
    }

    /// Accepts the new key of `user` (after checking it out of band): the key
    /// seen most recently (or the DS's current key) replaces the pin, and the
    /// user is no longer verified. A verified contact's new key is refused
    /// ([`Error::VerificationRequired`]): it is accepted only by verifying
    /// again ([`import_contact`](Self::import_contact)).
    pub async fn trust_new_key(&self, user: &str) -> Result<ContactInfo> {
        let current = self.contact(user)?;
        let pending = match current.as_ref().and_then(|c| c.pending.clone()) {
            Some(k) => k,
            None => self.ds.get_user(user).await?.key.signature_key,
        };
        if let Some(c) = current.as_ref().filter(|c| c.verified && c.key != pending) {
            return Err(Error::VerificationRequired {
                user: user.to_owned(),
                pinned: proto::fingerprint(&c.key),
                seen: proto::fingerprint(&pending),
            });
        }
        let replaced = replaced_keys(current, &pending);
        let contact = Contact { key: pending, verified: false, pending: None, device_list: Vec::new(), replaced };
        self.provider.transaction(|p| Repo::of(p).contacts().put(user, &contact))?;
        self.contact_info(user)
    }

    /// The safety number with `user` (their key must match the pin); with
    /// `confirm`, marks the user verified.
    pub async fn verify(&self, user: &str, confirm: bool) -> Result<SafetyNumber> {
        let key = self.pinned_key(user).await?;
        let number = safety_number(&self.id.user, self.identity_public(), user, &key);
        if confirm {
            self.provider.transaction(|p| Repo::of(p).contacts().update(user, |c| c.verified = true))?;
        }
        let verified = self.contact(user)?.is_some_and(|c| c.verified);
        Ok(SafetyNumber { user: user.to_owned(), number, verified })
    }
}

/// The prefix of a contact code (the format's version is part of it).
pub const CONTACT_CODE_PREFIX: &str = "grove-contact-v1";

/// A contact code: `grove-contact-v1:USER:FINGERPRINT`, one line (and a QR
/// code), to hand over out of band (a share sheet, a QR scan, a message).
pub fn contact_code(user: &str, key: &[u8]) -> String {
    format!("{CONTACT_CODE_PREFIX}:{user}:{}", proto::fingerprint(key))
}

/// The user and key fingerprint of a contact code.
pub fn parse_contact_code(code: &str) -> Result<(String, String)> {
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "not a Grove contact code ({why}); a code looks like {CONTACT_CODE_PREFIX}:alice:<64 hex digits>"
        ))
    };
    let rest = code.trim().strip_prefix(CONTACT_CODE_PREFIX).and_then(|r| r.strip_prefix(':'));
    let (user, fp) = rest.and_then(|r| r.rsplit_once(':')).ok_or_else(|| bad("wrong prefix or shape"))?;
    proto::UserName::parse(user).map_err(|_| bad("the user name is not valid"))?;
    let fp = fp.to_ascii_lowercase();
    if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the fingerprint is not 64 hex digits"));
    }
    Ok((user.to_owned(), fp))
}

impl Client {
    /// This user's contact code ([`contact_code`]).
    pub fn contact_code(&self) -> String {
        contact_code(&self.id.user, self.identity_public())
    }

    /// Imports another user's contact code, received out of band: the key
    /// the DS serves for that user must be the one the code names. It is then
    /// pinned (replacing an older pin, and any pending key change) and marked
    /// verified. Nothing is pinned if the keys differ
    /// ([`Error::ContactCodeMismatch`]).
    pub async fn import_contact(&self, code: &str) -> Result<ContactInfo> {
        let (user, expected) = parse_contact_code(code)?;
        if user == self.id.user {
            return Err(Error::InvalidArgument("that is your own contact code".into()));
        }
        let served = self.served_key(&user).await?;
        if proto::fingerprint(&served) != expected {
            return Err(Error::ContactCodeMismatch { user, expected, served: proto::fingerprint(&served) });
        }
        let replaced = replaced_keys(self.contact(&user)?, &served);
        let contact = Contact { key: served, verified: true, pending: None, device_list: Vec::new(), replaced };
        self.provider.transaction(|p| Repo::of(p).contacts().put(&user, &contact))?;
        self.contact_info(&user)
    }
}
