//! `message-protection.json`: PublicMessage and PrivateMessage protection in a
//! two-member group, sender at leaf 1 (as the vectors are generated).

use serde::Deserialize;

use crate::harness::{CaseVerifier, Hex};
use crate::reference::framing::GroupKeys;
use crate::reference::mls::{Codec, Commit, Content, FramedContent, GroupContext, MlsMessage, Proposal, Sender};
use crate::reference::suite::Suite;
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// One case.
#[derive(Debug, Deserialize)]
pub struct Case {
    cipher_suite: u16,
    group_id: Hex,
    epoch: u64,
    tree_hash: Hex,
    confirmed_transcript_hash: Hex,
    signature_priv: Hex,
    signature_pub: Hex,
    encryption_secret: Hex,
    sender_data_secret: Hex,
    membership_key: Hex,
    proposal: Hex,
    proposal_pub: Hex,
    proposal_priv: Hex,
    commit: Hex,
    commit_pub: Hex,
    commit_priv: Hex,
    application: Hex,
    application_priv: Hex,
}

const SENDER: u32 = 1;

fn public_of(bytes: &[u8]) -> Result<crate::reference::mls::PublicMessage, Error> {
    match MlsMessage::decode_exact(bytes)? {
        MlsMessage::Public(m) => Ok(m),
        _ => Err(Error::decode("expected a PublicMessage")),
    }
}

fn private_of(bytes: &[u8]) -> Result<crate::reference::mls::PrivateMessage, Error> {
    match MlsMessage::decode_exact(bytes)? {
        MlsMessage::Private(m) => Ok(m),
        _ => Err(Error::decode("expected a PrivateMessage")),
    }
}

fn body(c: &Content) -> Vec<u8> {
    let mut w = crate::reference::codec::Writer::new();
    c.encode_body(&mut w);
    w.finish()
}

/// Our framing code on the provider's primitives: the given messages
/// unprotect to the raw values, fresh ones round-trip, and application data
/// is refused as a PublicMessage (both when sending and when receiving).
#[derive(Debug)]
pub struct MessageProtection;

impl CaseVerifier for MessageProtection {
    type Case = Case;

    fn suite(c: &Case) -> Option<u16> {
        Some(c.cipher_suite)
    }

    fn verify(c: &Case, cs: Option<Ciphersuite>) -> Result<(), Error> {
        let s = &Suite::required(cs)?;
        let keys = GroupKeys {
            suite: s,
            group_context: GroupContext {
                version: 1,
                cipher_suite: c.cipher_suite,
                group_id: c.group_id.0.clone(),
                epoch: c.epoch,
                tree_hash: c.tree_hash.0.clone(),
                confirmed_transcript_hash: c.confirmed_transcript_hash.0.clone(),
                extensions: vec![],
            }
            .to_bytes(),
            n_leaves: 2,
            encryption_secret: &c.encryption_secret,
            sender_data_secret: &c.sender_data_secret,
            membership_key: &c.membership_key,
        };
        let proposal = Content::Proposal(Proposal::decode_exact(&c.proposal)?);
        let commit = Content::Commit(Commit::decode_exact(&c.commit)?);
        let application = Content::Application(c.application.0.clone());

        // The given messages.
        for (name, bytes, raw) in
            [("proposal_pub", &c.proposal_pub, &c.proposal), ("commit_pub", &c.commit_pub, &c.commit)]
        {
            let m = public_of(bytes)?;
            let content =
                keys.unprotect_public(&m, &c.signature_pub).map_err(|e| Error::decode(format!("{name}: {e}")))?;
            expect_bytes(format!("{name} content"), raw, &body(&content.content))?;
        }
        for (name, bytes, raw) in [
            ("proposal_priv", &c.proposal_priv, &c.proposal),
            ("commit_priv", &c.commit_priv, &c.commit),
            ("application_priv", &c.application_priv, &c.application),
        ] {
            let m = private_of(bytes)?;
            let (content, _) =
                keys.unprotect_private(&m, &c.signature_pub).map_err(|e| Error::decode(format!("{name}: {e}")))?;
            let got = match &content.content {
                Content::Application(d) => d.clone(),
                other => body(other),
            };
            expect_bytes(format!("{name} content"), raw, &got)?;
        }

        // Fresh protection of the raw values.
        let framed = |content: Content| FramedContent {
            group_id: c.group_id.0.clone(),
            epoch: c.epoch,
            sender: Sender::Member(SENDER),
            authenticated_data: b"grove interop".to_vec(),
            content,
        };
        let tag = |content: &Content| -> Result<Option<Vec<u8>>, Error> {
            Ok(match content {
                Content::Commit(_) => Some(s.random(s.nh())?),
                _ => None,
            })
        };
        for content in [proposal.clone(), commit.clone()] {
            let fc = framed(content.clone());
            let m = keys.protect_public(fc.clone(), &c.signature_priv, tag(&content)?)?;
            let wire = MlsMessage::Public(m).to_bytes();
            let back = keys.unprotect_public(&public_of(&wire)?, &c.signature_pub)?;
            if back != fc {
                return Err(Error::decode("fresh PublicMessage did not round-trip"));
            }
        }
        for (i, content) in [proposal, commit, application.clone()].into_iter().enumerate() {
            let fc = framed(content.clone());
            let guard: [u8; 4] = s.random(4)?.try_into().unwrap_or([7, 7, 7, 7]);
            let m = keys.protect_private(&fc, &c.signature_priv, tag(&content)?, 3 + i as u32, guard, 5 * i)?;
            let wire = MlsMessage::Private(m).to_bytes();
            let (back, _) = keys.unprotect_private(&private_of(&wire)?, &c.signature_pub)?;
            if back != fc {
                return Err(Error::decode("fresh PrivateMessage did not round-trip"));
            }
        }

        // Application data must not travel as a PublicMessage.
        let app = framed(application);
        if keys.protect_public(app.clone(), &c.signature_priv, None).is_ok() {
            return Err(Error::NotRefused("sending application data as PublicMessage".into()));
        }
        let auth = keys.sign(crate::reference::framing::WIRE_PUBLIC, &app, &c.signature_priv, None)?;
        let forged = crate::reference::mls::PublicMessage { content: app, auth, membership_tag: Some(vec![0; s.nh()]) };
        if keys.unprotect_public(&forged, &c.signature_pub).is_ok() {
            return Err(Error::NotRefused("receiving application data as PublicMessage".into()));
        }
        Ok(())
    }
}
