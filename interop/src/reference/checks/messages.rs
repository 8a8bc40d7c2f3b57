//! `messages.json`: every structure decodes and re-encodes to the same bytes,
//! both through openmls's public types and through our own codec.

use openmls::framing::MlsMessageIn;
use openmls::messages::proposals::{ExternalInitProposal, PreSharedKeyProposal, ReInitProposal, RemoveProposal};
use openmls::messages::proposals_in::{AddProposalIn, GroupContextExtensionProposalIn, UpdateProposalIn};
use openmls::prelude::RatchetTreeIn;
use serde::Deserialize;
use tls_codec::{Deserialize as TlsDeserialize, Serialize as TlsSerialize};

use crate::harness::{CaseVerifier, Hex};
use crate::reference::codec::{Reader, Writer};
use crate::reference::mls::{
    Codec, Commit, GroupSecrets, KeyPackage, LeafNode, MlsMessage, Proposal, PskId, RatchetTree,
};
use crate::{expect_bytes, Error};
use openmls_traits::types::Ciphersuite;

/// One case: each field is one encoded structure.
#[derive(Debug, Deserialize)]
pub struct Case {
    mls_welcome: Hex,
    mls_group_info: Hex,
    mls_key_package: Hex,
    ratchet_tree: Hex,
    group_secrets: Hex,
    add_proposal: Hex,
    update_proposal: Hex,
    remove_proposal: Hex,
    pre_shared_key_proposal: Hex,
    re_init_proposal: Hex,
    external_init_proposal: Hex,
    group_context_extensions_proposal: Hex,
    commit: Hex,
    public_message_application: Hex,
    public_message_proposal: Hex,
    public_message_commit: Hex,
    private_message: Hex,
}

/// Round trip through an openmls type.
fn openmls_round_trip<T: TlsDeserialize + TlsSerialize>(field: &str, bytes: &[u8]) -> Result<(), Error> {
    let v = T::tls_deserialize_exact(bytes).map_err(|e| Error::openmls(format!("decoding {field}"), e))?;
    let out = v.tls_serialize_detached().map_err(|e| Error::openmls(format!("encoding {field}"), e))?;
    expect_bytes(format!("{field} (openmls re-encoding)"), bytes, &out)
}

/// Round trip through our codec.
fn own_round_trip<T: Codec>(field: &str, bytes: &[u8]) -> Result<T, Error> {
    let v = T::decode_exact(bytes).map_err(|e| Error::decode(format!("{field}: {e}")))?;
    expect_bytes(format!("{field} (our re-encoding)"), bytes, &v.to_bytes())?;
    Ok(v)
}

/// Round trip of a proposal body of type `kind` through our codec.
fn own_proposal_body(field: &str, kind: u16, bytes: &[u8]) -> Result<(), Error> {
    let mut r = Reader::new(bytes);
    let p = Proposal::decode_body(kind, &mut r).map_err(|e| Error::decode(format!("{field}: {e}")))?;
    r.finish(field)?;
    let mut w = Writer::new();
    p.encode_body(&mut w);
    expect_bytes(format!("{field} (our re-encoding)"), bytes, &w.finish())
}

fn expect_kind(field: &str, msg: &MlsMessage, ok: bool) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::decode(format!("{field}: unexpected message {msg:?}")))
    }
}

/// A message field: name, bytes, and the expected kind.
type MessageField<'a> = (&'static str, &'a Hex, fn(&MlsMessage) -> bool);

/// Every field of a case, twice.
#[derive(Debug)]
pub struct Messages;

impl CaseVerifier for Messages {
    type Case = Case;

    fn suite(_: &Case) -> Option<u16> {
        None
    }

    fn verify(c: &Case, _: Option<Ciphersuite>) -> Result<(), Error> {
        use crate::reference::mls::{Content, MlsMessage as M};
        let messages: [MessageField<'_>; 7] = [
            ("mls_welcome", &c.mls_welcome, |m| matches!(m, M::Welcome(_))),
            ("mls_group_info", &c.mls_group_info, |m| matches!(m, M::GroupInfo(_))),
            ("mls_key_package", &c.mls_key_package, |m| matches!(m, M::KeyPackage(_))),
            (
                "public_message_application",
                &c.public_message_application,
                |m| matches!(m, M::Public(p) if matches!(p.content.content, Content::Application(_))),
            ),
            (
                "public_message_proposal",
                &c.public_message_proposal,
                |m| matches!(m, M::Public(p) if matches!(p.content.content, Content::Proposal(_))),
            ),
            (
                "public_message_commit",
                &c.public_message_commit,
                |m| matches!(m, M::Public(p) if matches!(p.content.content, Content::Commit(_))),
            ),
            ("private_message", &c.private_message, |m| matches!(m, M::Private(_))),
        ];
        let mut errs: Vec<Result<(), Error>> = Vec::new();
        for (field, bytes, kind_ok) in messages {
            errs.push(openmls_round_trip::<MlsMessageIn>(field, bytes));
            errs.push(own_round_trip::<MlsMessage>(field, bytes).and_then(|m| expect_kind(field, &m, kind_ok(&m))));
        }

        errs.push(openmls_round_trip::<RatchetTreeIn>("ratchet_tree", &c.ratchet_tree).map(|_| ()));
        errs.push(own_round_trip::<RatchetTree>("ratchet_tree", &c.ratchet_tree).map(|_| ()));

        // openmls keeps GroupSecrets and Commit crate-private: ours only.
        errs.push(own_round_trip::<GroupSecrets>("group_secrets", &c.group_secrets).map(|_| ()));
        errs.push(own_round_trip::<Commit>("commit", &c.commit).map(|_| ()));

        errs.push(openmls_round_trip::<AddProposalIn>("add_proposal", &c.add_proposal).map(|_| ()));
        errs.push(own_round_trip::<KeyPackage>("add_proposal", &c.add_proposal).map(|_| ()));
        errs.push(openmls_round_trip::<UpdateProposalIn>("update_proposal", &c.update_proposal).map(|_| ()));
        errs.push(own_round_trip::<LeafNode>("update_proposal", &c.update_proposal).map(|_| ()));
        errs.push(openmls_round_trip::<RemoveProposal>("remove_proposal", &c.remove_proposal).map(|_| ()));
        errs.push(own_proposal_body("remove_proposal", 3, &c.remove_proposal).map(|_| ()));
        errs.push(
            openmls_round_trip::<PreSharedKeyProposal>("pre_shared_key_proposal", &c.pre_shared_key_proposal)
                .map(|_| ()),
        );
        errs.push(own_round_trip::<PskId>("pre_shared_key_proposal", &c.pre_shared_key_proposal).map(|_| ()));
        // Known openmls divergence: openmls 0.9.2 refuses every ReInit proposal in
        // this file while decoding, because its extensions list `ratchet_tree`
        // (type 2) ("extension of type RatchetTree that is not allowed in the group
        // context"); RFC 9420 puts no such restriction on decoding. The vector's
        // check (decode and re-encode the field) is performed by our codec on the
        // next line. openmls's refusal is asserted, so that a change upstream is
        // noticed and this exception removed; any other openmls error still fails.
        match openmls_round_trip::<ReInitProposal>("re_init_proposal", &c.re_init_proposal) {
            Ok(()) => errs.push(Err(Error::decode(
                "re_init_proposal: openmls now accepts it; remove the known-divergence exception in checks/messages.rs"
                    .to_string(),
            ))),
            Err(e) if e.to_string().contains("RatchetTree") => {}
            Err(e) => errs.push(Err(e)),
        }
        errs.push(own_proposal_body("re_init_proposal", 5, &c.re_init_proposal).map(|_| ()));
        errs.push(
            openmls_round_trip::<ExternalInitProposal>("external_init_proposal", &c.external_init_proposal).map(|_| ()),
        );
        errs.push(own_proposal_body("external_init_proposal", 6, &c.external_init_proposal).map(|_| ()));
        errs.push(
            openmls_round_trip::<GroupContextExtensionProposalIn>(
                "group_context_extensions_proposal",
                &c.group_context_extensions_proposal,
            )
            .map(|_| ()),
        );
        errs.push(
            own_proposal_body("group_context_extensions_proposal", 7, &c.group_context_extensions_proposal).map(|_| ()),
        );
        let failed: Vec<String> = errs.into_iter().filter_map(|r| r.err().map(|e| e.to_string())).collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::Several(failed))
        }
    }
}
