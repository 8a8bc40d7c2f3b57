//! Compares value codecs for the sled store with a real openmls workload:
//! store size, `MlsGroup::load` time (decode), and the time of an operation
//! that writes the message secrets (encode), and whether a group reloads at all.
//!
//! Ignored by default (it is a measurement, not a check); run with
//! `cargo test -p client --release --test codec_eval -- --ignored --nocapture`.
//! The results are written down in docs/dependencies.md.

use std::error::Error;
use std::time::{Duration, Instant};

use grove_client::storage::{GroveProvider, MsgPack, SledStorage, ValueCodec};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use serde::{de::DeserializeOwned, Serialize};

type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

struct Json;
impl ValueCodec for Json {
    const NAME: &'static str = "json";
    fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(v).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        serde_json::from_slice(b).map_err(|e| e.to_string())
    }
}

struct MsgPackNamed;
impl ValueCodec for MsgPackNamed {
    const NAME: &'static str = "msgpack-named";
    fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec_named(v).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        rmp_serde::from_slice(b).map_err(|e| e.to_string())
    }
}

struct Cbor;
impl ValueCodec for Cbor {
    const NAME: &'static str = "cbor";
    fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        ciborium::from_reader(b).map_err(|e| e.to_string())
    }
}

struct Postcard;
impl ValueCodec for Postcard {
    const NAME: &'static str = "postcard";
    fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(v).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        postcard::from_bytes(b).map_err(|e| e.to_string())
    }
}

const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
const MEMBERS: usize = 16;
const ROUNDS: u32 = 200;

fn temp_provider<C: ValueCodec>() -> TestResult<(GroveProvider<C>, sled::Db)> {
    let db = sled::Config::new().temporary(true).open()?;
    Ok((GroveProvider::new(SledStorage::<C>::from_db_with_codec(db.clone())?), db))
}

fn identity<C: ValueCodec>(p: &GroveProvider<C>, name: &str) -> TestResult<(SignatureKeyPair, CredentialWithKey)> {
    let signer = SignatureKeyPair::new(CS.signature_algorithm())?;
    signer.store(p.storage())?;
    let cwk = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.public().into(),
    };
    Ok((signer, cwk))
}

struct Row {
    name: &'static str,
    mls_bytes: usize,
    largest: (String, usize),
    load: Option<Duration>,
    op: Duration,
    load_error: Option<String>,
}

fn run<C: ValueCodec>() -> TestResult<Row> {
    let (alice, db) = temp_provider::<C>()?;
    let (signer, cwk) = identity(&alice, "alice")?;
    let mut kps = Vec::new();
    for i in 1..MEMBERS {
        let (p, _) = temp_provider::<MsgPack>()?;
        let (s, c) = identity(&p, &format!("member-{i}"))?;
        kps.push(KeyPackage::builder().build(CS, &p, &s, c)?.key_package().clone());
    }
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(CS)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build();
    let mut group = alice.transaction(|p| -> TestResult<MlsGroup> {
        let mut g = MlsGroup::new(p, &signer, &config, cwk)?;
        g.add_members(p, &signer, &kps)?;
        g.merge_pending_commit(p)?;
        for _ in 0..3 {
            g.self_update(p, &signer, LeafNodeParameters::default())?;
            g.merge_pending_commit(p)?;
        }
        for i in 0..20u32 {
            g.create_message(p, &signer, &i.to_be_bytes())?;
        }
        Ok(g)
    })?;
    let gid = group.group_id().clone();

    let mut mls_bytes = 0;
    let mut largest = (String::new(), 0);
    for entry in db.scan_prefix([0x01]) {
        let (k, v) = entry?;
        mls_bytes += k.len() + v.len();
        if v.len() > largest.1 {
            let label = k[1..].split(|b| *b == 0).next().unwrap_or_default();
            largest = (String::from_utf8_lossy(label).into_owned(), v.len());
        }
    }

    // Decode: reload the group from the store.
    let (load, load_error) = match MlsGroup::load(alice.storage(), &gid) {
        Ok(Some(_)) => {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                MlsGroup::load(alice.storage(), &gid)?;
            }
            (Some(start.elapsed() / ROUNDS), None)
        }
        Ok(None) => (None, Some("group missing".to_owned())),
        Err(e) => (None, Some(e.to_string())),
    };

    // Encode: one application message (writes the message secrets), rolled back
    // so that no fsync is timed.
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let p = alice.begin();
        group.create_message(&p, &signer, b"x")?;
        p.rollback();
    }
    let op = start.elapsed() / ROUNDS;
    Ok(Row { name: C::NAME, mls_bytes, largest, load, op, load_error })
}

#[test]
#[ignore = "measurement; run explicitly with --ignored --nocapture"]
fn compare_codecs() -> TestResult {
    let rows = vec![run::<Json>()?, run::<MsgPack>()?, run::<MsgPackNamed>()?, run::<Cbor>()?, run::<Postcard>()?];
    println!(
        "group of {MEMBERS}, epoch 4, suite 0x0001; times are means of {ROUNDS} runs\n\
         codec          | MLS bytes | largest value        | MlsGroup::load | create_message (no fsync)"
    );
    for r in &rows {
        println!(
            "{:<14} | {:>9} | {:<13} {:>6} | {:>14} | {:>10.1?}",
            r.name,
            r.mls_bytes,
            r.largest.0,
            r.largest.1,
            r.load.map(|d| format!("{d:.1?}")).unwrap_or_else(|| "FAILS".to_owned()),
            r.op,
        );
        if let Some(e) = &r.load_error {
            println!("    {} load error: {e}", r.name);
        }
    }
    // The chosen codec must round-trip.
    let chosen = rows.iter().find(|r| r.name == MsgPack::NAME).ok_or("no msgpack row")?;
    assert!(chosen.load.is_some(), "{:?}", chosen.load_error);
    Ok(())
}
