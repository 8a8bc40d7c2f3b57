//! The key schedule (§8), PSK combination (§8.4), exporter (§8.5) and
//! transcript hashes (§8.2), written from the RFC on the provider's HKDF,
//! HMAC and hash.

use crate::reference::codec::Writer;
use crate::reference::mls::{Codec, PskId, PskKind};
use crate::reference::suite::Suite;
use crate::Error;

/// Every secret of one epoch.
#[derive(Debug, Clone)]
pub struct EpochSecrets {
    /// `joiner_secret`.
    pub joiner_secret: Vec<u8>,
    /// `welcome_secret`.
    pub welcome_secret: Vec<u8>,
    /// `epoch_secret`.
    pub epoch_secret: Vec<u8>,
    /// `sender_data_secret`.
    pub sender_data_secret: Vec<u8>,
    /// `encryption_secret`.
    pub encryption_secret: Vec<u8>,
    /// `exporter_secret`.
    pub exporter_secret: Vec<u8>,
    /// `epoch_authenticator`.
    pub epoch_authenticator: Vec<u8>,
    /// `external_secret`.
    pub external_secret: Vec<u8>,
    /// `confirmation_key`.
    pub confirmation_key: Vec<u8>,
    /// `membership_key`.
    pub membership_key: Vec<u8>,
    /// `resumption_psk`.
    pub resumption_psk: Vec<u8>,
    /// `init_secret` of the next epoch.
    pub init_secret: Vec<u8>,
}

/// `joiner_secret` from the previous `init_secret`, `commit_secret` and the
/// new GroupContext.
pub fn joiner_secret(
    s: &Suite,
    init_secret: &[u8],
    commit_secret: &[u8],
    group_context: &[u8],
) -> Result<Vec<u8>, Error> {
    let prk = s.extract(init_secret, commit_secret)?;
    s.expand_with_label(&prk, b"joiner", group_context, s.nh())
}

/// The rest of the schedule from `joiner_secret`, `psk_secret` and the
/// GroupContext.
pub fn from_joiner(
    s: &Suite,
    joiner_secret: &[u8],
    psk_secret: &[u8],
    group_context: &[u8],
) -> Result<EpochSecrets, Error> {
    let member = s.extract(joiner_secret, psk_secret)?;
    let welcome_secret = s.derive_secret(&member, b"welcome")?;
    let epoch_secret = s.expand_with_label(&member, b"epoch", group_context, s.nh())?;
    let d = |label: &[u8]| s.derive_secret(&epoch_secret, label);
    Ok(EpochSecrets {
        joiner_secret: joiner_secret.to_vec(),
        welcome_secret,
        sender_data_secret: d(b"sender data")?,
        encryption_secret: d(b"encryption")?,
        exporter_secret: d(b"exporter")?,
        epoch_authenticator: d(b"authentication")?,
        external_secret: d(b"external")?,
        confirmation_key: d(b"confirm")?,
        membership_key: d(b"membership")?,
        resumption_psk: d(b"resumption")?,
        init_secret: d(b"init")?,
        epoch_secret,
    })
}

/// `welcome_key` and `welcome_nonce` from `welcome_secret` (§12.4.3.1).
pub fn welcome_key_nonce(s: &Suite, welcome_secret: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    Ok((
        s.expand_with_label(welcome_secret, b"key", &[], s.nk())?,
        s.expand_with_label(welcome_secret, b"nonce", &[], s.nn())?,
    ))
}

/// `MLS-Exporter(label, context, length)`.
pub fn exporter(
    s: &Suite,
    exporter_secret: &[u8],
    label: &[u8],
    context: &[u8],
    length: usize,
) -> Result<Vec<u8>, Error> {
    let secret = s.derive_secret(exporter_secret, label)?;
    s.expand_with_label(&secret, b"exported", &s.hash(context)?, length)
}

/// `psk_secret` from `(PreSharedKeyID, psk value)` pairs, in order (§8.4).
pub fn psk_secret(s: &Suite, psks: &[(PskId, Vec<u8>)]) -> Result<Vec<u8>, Error> {
    let zero = vec![0u8; s.nh()];
    let mut acc = zero.clone();
    let count = u16::try_from(psks.len()).map_err(|_| Error::decode("too many PSKs"))?;
    for (index, (id, value)) in psks.iter().enumerate() {
        let extracted = s.extract(&zero, value)?;
        let label = Writer::new().raw(&id.to_bytes()).u16(index as u16).u16(count).finish();
        let input = s.expand_with_label(&extracted, b"derived psk", &label, s.nh())?;
        acc = s.extract(&input, &acc)?;
    }
    Ok(acc)
}

/// An external PSK id with its nonce.
pub fn external_psk_id(id: &[u8], nonce: &[u8]) -> PskId {
    PskId { kind: PskKind::External(id.to_vec()), nonce: nonce.to_vec() }
}

/// `confirmed_transcript_hash = Hash(interim_before || wire_format ||
/// FramedContent || signature)` (§8.2); `content_tbs` is `wire_format ||
/// FramedContent`.
pub fn confirmed_transcript_hash(
    s: &Suite,
    interim_before: &[u8],
    content_tbs: &[u8],
    signature: &[u8],
) -> Result<Vec<u8>, Error> {
    s.hash(&Writer::new().raw(interim_before).raw(content_tbs).vl(signature).finish())
}

/// `interim_transcript_hash = Hash(confirmed || confirmation_tag<V>)`.
pub fn interim_transcript_hash(s: &Suite, confirmed: &[u8], confirmation_tag: &[u8]) -> Result<Vec<u8>, Error> {
    s.hash(&Writer::new().raw(confirmed).vl(confirmation_tag).finish())
}
