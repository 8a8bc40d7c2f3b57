//! The application protocol of docs/api.md §10, checked against the code.
//!
//! Every fenced block of docs/api.md whose info string is `<lang>
//! example=<name>` is read here at run time: `hex` blocks (the exact bytes, or
//! a template where `xx` is any byte and `xx*N` any N bytes; `#` starts a
//! comment), `json` blocks (the same envelope pretty-printed) and `text`
//! blocks (tables). Each is compared with what the real code produces or
//! accepts, so changing a format without updating the doc fails here, and
//! [`every_example_is_checked`] fails if the doc gains or loses an example
//! this file does not know.
//!
//! The envelopes are checked both ways with a real `grove_client::Client`
//! (`alice`) and hand-written openmls members (`bob`, `carol`) that speak the
//! DS HTTP API directly: bob decrypts what alice sends and compares it with
//! the doc (exactly where the content is deterministic, by JSON shape where
//! it holds random ids, keys or the clock), and bob sends the doc's bytes to
//! alice, whose public API must then show what the doc says. Blobs are
//! checked against `grove_client::resource_crypto` (deterministic given the
//! key) and against an independent implementation of the documented layout
//! written here on openmls's AEAD. What alice posts to the DS (GroupCreate and
//! CommitBundle bodies) is recorded by a proxy in front of the DS.

mod common;
#[path = "common/peer.rs"]
mod peer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use common::{config, start_ds, TestResult};
use grove_client::resource_crypto::{self, BlobContext, ContentKey, Expected, CHUNK_SIZE};
use grove_client::{Client, HistoryPolicy};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::types::AeadType;
use peer::{gid_path, Peer};
use serde_json::Value;
use tls_codec::{Deserialize as _, Serialize as _};

// ------------------------------------------------------------------ the doc

/// Every example name docs/api.md must have, with its block languages.
const EXAMPLES: &[(&str, &str)] = &[
    ("hex", "envelope-text"),
    ("json", "envelope-text"),
    ("hex", "envelope-text-tolerant"),
    ("json", "envelope-text-tolerant"),
    ("hex", "envelope-group-name"),
    ("json", "envelope-group-name"),
    ("hex", "envelope-resource-version"),
    ("json", "envelope-resource-version"),
    ("hex", "envelope-resource-deleted"),
    ("json", "envelope-resource-deleted"),
    ("hex", "envelope-history-policy"),
    ("json", "envelope-history-policy"),
    ("hex", "envelope-key-bundle"),
    ("json", "envelope-key-bundle"),
    ("text", "padme"),
    ("hex", "blob-key"),
    ("hex", "blob-group-id"),
    ("hex", "blob-resource-id"),
    ("hex", "blob-version"),
    ("hex", "blob-content"),
    ("hex", "blob-nonce-0"),
    ("hex", "blob-ad-0"),
    ("hex", "blob"),
    ("hex", "blob-content-hash"),
    ("hex", "blob-empty"),
    ("hex", "group-info-extension-types-create"),
    ("hex", "group-info-extension-types-commit"),
    ("hex", "external-pub-extension"),
    ("hex", "key-package-extensions-last-resort"),
    ("hex", "capabilities-last-resort"),
    ("hex", "key-package-extensions-one-time"),
    ("hex", "capabilities-one-time"),
];

/// `(lang, name)` → block body, from docs/api.md.
fn doc() -> &'static BTreeMap<(String, String), String> {
    static DOC: OnceLock<BTreeMap<(String, String), String>> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        parse_examples(&text)
    })
}

fn parse_examples(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else { continue };
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or_default().to_owned();
        let name = words.find_map(|w| w.strip_prefix("example=")).map(str::to_owned);
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        if let Some(name) = name {
            let key = (lang, name);
            assert!(!out.contains_key(&key), "docs/api.md: example {key:?} appears twice");
            out.insert(key, body);
        }
    }
    out
}

fn block(lang: &str, name: &str) -> &'static str {
    doc()
        .get(&(lang.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("docs/api.md has no ```{lang} example={name} block"))
}

/// A hex block: `Some(byte)`, or `None` for a wildcard (`xx`, `xx*N`).
fn template(name: &str) -> Vec<Option<u8>> {
    let mut out = Vec::new();
    for line in block("hex", name).lines() {
        let line = line.split('#').next().unwrap_or_default();
        for tok in line.split_whitespace() {
            if tok == "xx" {
                out.push(None);
            } else if let Some(n) = tok.strip_prefix("xx*") {
                let n: usize = n.parse().unwrap_or_else(|_| panic!("example {name}: bad wildcard {tok}"));
                out.extend(std::iter::repeat_n(None, n));
            } else {
                let bytes = hex::decode(tok).unwrap_or_else(|e| panic!("example {name}: {tok:?} is not hex: {e}"));
                out.extend(bytes.into_iter().map(Some));
            }
        }
    }
    out
}

/// A hex block without wildcards.
fn hex_example(name: &str) -> Vec<u8> {
    template(name).into_iter().map(|b| b.unwrap_or_else(|| panic!("example {name} has wildcards"))).collect()
}

#[track_caller]
fn assert_matches_template(name: &str, actual: &[u8]) {
    let t = template(name);
    let ok = t.len() == actual.len() && t.iter().zip(actual).all(|(t, a)| t.is_none_or(|t| t == *a));
    assert!(ok, "bytes do not match docs/api.md example {name}:\n doc:  {}\n code: {}", show(&t), hex::encode(actual));
}

fn show(t: &[Option<u8>]) -> String {
    t.iter().map(|b| b.map_or_else(|| "xx".to_owned(), |b| format!("{b:02x}"))).collect()
}

/// A `text` block: its non-empty lines, split on whitespace.
fn rows(name: &str) -> Vec<Vec<&'static str>> {
    block("text", name).lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).filter(|r| !r.is_empty()).collect()
}

// ------------------------------------------------------------------ JSON shape

/// The JSON tokens of `s`, as written (strings with their quotes and escapes).
fn json_tokens(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'"' {
            i += 1;
            while b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'-' || c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b"+-.eE".contains(&b[i])) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
        } else {
            assert!(b"{}[]:,".contains(&c), "not JSON at byte {i}: {s}");
            i += 1;
        }
        out.push(s[start..i].to_owned());
    }
    out
}

/// `s` without insignificant whitespace (what serde_json's compact writer emits).
fn minify(s: &str) -> String {
    json_tokens(s).concat()
}

/// The structure of a JSON text: keys in order, the value of every `"type"`
/// key, and every other string or number replaced by a placeholder.
fn shape(bytes: &[u8]) -> Vec<String> {
    let toks = json_tokens(std::str::from_utf8(bytes).expect("envelope is UTF-8"));
    let mut out = Vec::with_capacity(toks.len());
    for (i, t) in toks.iter().enumerate() {
        let is_key = toks.get(i + 1).is_some_and(|n| n == ":");
        let after_type = i >= 2 && toks[i - 1] == ":" && toks[i - 2] == "\"type\"";
        out.push(match t.as_bytes()[0] {
            b'"' if is_key || after_type => t.clone(),
            b'"' => "<string>".to_owned(),
            b'-' | b'0'..=b'9' => "<number>".to_owned(),
            _ => t.clone(),
        });
    }
    out
}

#[track_caller]
fn assert_same_shape(name: &str, actual: &[u8]) {
    assert_eq!(
        shape(actual),
        shape(&hex_example(name)),
        "envelope does not have the structure of docs/api.md example {name}: {}",
        String::from_utf8_lossy(actual)
    );
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

// ------------------------------------------------------------------ blobs, from the doc

const TAG: usize = 16;

/// Padmé as docs/api.md §10.3 states it.
fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = u64::from(len.ilog2());
    let s = u64::from(e.ilog2()) + 1;
    let z = e - s;
    len.div_ceil(1 << z) << z
}

fn nonce(i: u64, last: bool) -> Vec<u8> {
    let mut n = i.to_be_bytes().to_vec();
    n.push(u8::from(last));
    n.extend_from_slice(&[0, 0, 0]);
    n
}

fn ad(gid: &[u8], rid: &[u8; 16], version: u64, i: u64, last: bool) -> Vec<u8> {
    let mut v = b"grove-resource-v1".to_vec();
    v.extend_from_slice(&u16::try_from(gid.len()).unwrap().to_be_bytes());
    v.extend_from_slice(gid);
    v.extend_from_slice(rid);
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&i.to_be_bytes());
    v.push(u8::from(last));
    v
}

/// The pieces of the padded plaintext: full chunks, the last one possibly
/// short; one empty piece for empty content.
fn pieces(padded: &[u8]) -> Vec<&[u8]> {
    if padded.is_empty() {
        vec![&[]]
    } else {
        padded.chunks(CHUNK_SIZE).collect()
    }
}

/// Encrypts `content` as docs/api.md §10.3 describes, without grove_client.
fn foreign_seal(key: &[u8; 32], gid: &[u8], rid: &[u8; 16], version: u64, content: &[u8]) -> Vec<u8> {
    let crypto = OpenMlsRustCrypto::default();
    let mut padded = content.to_vec();
    padded.resize(usize::try_from(padme(content.len() as u64)).unwrap(), 0);
    let mut blob = b"GRV1".to_vec();
    blob.extend_from_slice(&u32::try_from(CHUNK_SIZE).unwrap().to_be_bytes());
    let ps = pieces(&padded);
    for (i, p) in ps.iter().enumerate() {
        let (i, last) = (i as u64, i + 1 == ps.len());
        let ct = crypto
            .crypto()
            .aead_encrypt(AeadType::Aes256Gcm, key, p, &nonce(i, last), &ad(gid, rid, version, i, last))
            .unwrap();
        blob.extend_from_slice(&ct);
    }
    blob
}

/// Decrypts a blob as docs/api.md §10.3 describes, checking the final flag,
/// the padding and the content hash, without grove_client.
fn foreign_open(key: &[u8; 32], gid: &[u8], rid: &[u8; 16], version: u64, blob: &[u8], m: &Value) -> Vec<u8> {
    let crypto = OpenMlsRustCrypto::default();
    assert_eq!(&blob[..4], b"GRV1", "magic");
    let chunk = u32::from_be_bytes(blob[4..8].try_into().unwrap()) as usize;
    let size = m["size"].as_u64().unwrap();
    let body = &blob[8..];
    let n = body.len().div_ceil(chunk + TAG).max(1);
    let mut padded = Vec::new();
    for (i, c) in body.chunks(chunk + TAG).chain((body.is_empty()).then_some(&[][..])).enumerate() {
        let (i, last) = (i as u64, i + 1 == n);
        let p = crypto
            .crypto()
            .aead_decrypt(AeadType::Aes256Gcm, key, c, &nonce(i, last), &ad(gid, rid, version, i, last))
            .unwrap_or_else(|e| panic!("chunk {i} of {n} does not decrypt as documented: {e:?}"));
        padded.extend_from_slice(&p);
    }
    assert_eq!(padded.len() as u64, padme(size), "padded length");
    assert!(padded[size as usize..].iter().all(|&b| b == 0), "padding is not zero");
    padded.truncate(size as usize);
    assert_eq!(hex::encode(blake3::hash(&padded).as_bytes()), m["content_hash"].as_str().unwrap(), "content hash");
    assert_eq!(m["blob_size"].as_u64().unwrap(), blob.len() as u64, "blob_size");
    assert_eq!(blob.len() as u64, 8 + padme(size) + TAG as u64 * n as u64, "blob size formula");
    padded
}

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().unwrap_or_else(|_| panic!("expected {N} bytes, got {}", v.len()))
}

fn hex_arr<const N: usize>(s: &Value) -> [u8; N] {
    arr(&hex::decode(s.as_str().expect("a hex string")).expect("hex"))
}

// ------------------------------------------------------------------ a member written from the doc

// ------------------------------------------------------------------ a recording proxy

/// Forwards everything to the DS and records the bodies of POSTs.
struct Recorder {
    upstream: String,
    http: reqwest::Client,
    posts: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Recorder {
    /// The bodies posted to paths for which `f` holds, in order.
    fn bodies(&self, f: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
        self.posts.lock().unwrap().iter().filter(|(p, _)| f(p)).map(|(_, b)| b.clone()).collect()
    }
}

async fn forward(State(st): State<Arc<Recorder>>, req: Request) -> Response {
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut rb = st.http.request(method.clone(), format!("{}{path}", st.upstream));
    for h in ["authorization", "content-type", "accept"] {
        if let Some(v) = req.headers().get(h) {
            rb = rb.header(h, v.as_bytes());
        }
    }
    let body: Bytes = axum::body::to_bytes(req.into_body(), 64 << 20).await.unwrap();
    if method == reqwest::Method::POST {
        st.posts.lock().unwrap().push((path, body.to_vec()));
    }
    let r = rb.body(body.to_vec()).send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (k, v) in &headers {
        if !["content-length", "transfer-encoding", "connection"].contains(&k.as_str()) {
            resp.headers_mut().insert(
                HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
    }
    resp
}

async fn start_recorder(upstream: &str) -> (String, Arc<Recorder>) {
    let rec = Arc::new(Recorder {
        upstream: upstream.to_owned(),
        http: reqwest::Client::new(),
        posts: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(forward).with_state(rec.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rec)
}

async fn sync_clean(c: &Client) {
    let r = c.sync().await.expect("sync");
    assert_eq!(r.undecryptable, 0, "{} skipped messages: {r:?}", c.user());
    assert!(r.errors.is_empty(), "{}: {r:?}", c.user());
}

fn group_info_of(mls_message: &[u8]) -> VerifiableGroupInfo {
    assert_eq!(&mls_message[..4], [0x00, 0x01, 0x00, 0x04], "MLSMessage mls10, wire_format mls_group_info");
    match MlsMessageIn::tls_deserialize_exact(mls_message).unwrap().extract() {
        MlsMessageBodyIn::GroupInfo(gi) => gi,
        _ => panic!("not a GroupInfo"),
    }
}

fn extension_types(gi: &VerifiableGroupInfo) -> Vec<u8> {
    gi.extensions().iter().flat_map(|e| u16::from(e.extension_type()).to_be_bytes()).collect()
}

fn extension(gi: &VerifiableGroupInfo, t: ExtensionType) -> Vec<u8> {
    gi.extensions()
        .iter()
        .find(|e| e.extension_type() == t)
        .expect("extension present")
        .tls_serialize_detached()
        .unwrap()
}

// ------------------------------------------------------------------ tests

/// The doc has exactly the examples this file checks.
#[test]
fn every_example_is_checked() {
    let want: BTreeSet<(String, String)> = EXAMPLES.iter().map(|(l, n)| ((*l).to_owned(), (*n).to_owned())).collect();
    let have: BTreeSet<(String, String)> = doc().keys().cloned().collect();
    assert_eq!(have, want, "examples in docs/api.md vs the ones tests/protocol_spec.rs checks");
}

/// Each pretty-printed JSON envelope is its hex example, minus whitespace.
#[test]
fn json_examples_are_their_hex() {
    for (lang, name) in doc().keys() {
        if lang == "json" {
            let hex = hex_example(name);
            assert_eq!(minify(block("json", name)), String::from_utf8(hex).unwrap(), "example {name}");
        }
    }
}

/// Padmé: the doc's table is what `padded_len` computes, and what the doc's
/// formula (reimplemented here) computes.
#[test]
fn padding_table() {
    let table = rows("padme");
    assert!(table.len() >= 5);
    for r in table {
        let (len, padded): (u64, u64) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        assert_eq!(resource_crypto::padded_len(len), padded, "padded_len({len})");
        assert_eq!(padme(len), padded, "the doc's formula for {len}");
    }
    for len in (0..3_000_000u64).step_by(9973) {
        assert_eq!(padme(len), resource_crypto::padded_len(len), "len {len}");
    }
}

/// The worked blob example: encrypted with the code it is the doc's bytes;
/// the code opens the doc's bytes; the doc's nonce and associated data open
/// its chunk with a plain AES-256-GCM; the hash is BLAKE3 of the content.
#[test]
fn blob_example() {
    let key: [u8; 32] = arr(&hex_example("blob-key"));
    let gid = hex_example("blob-group-id");
    let rid: [u8; 16] = arr(&hex_example("blob-resource-id"));
    let version = u64::from_be_bytes(arr(&hex_example("blob-version")));
    let content = hex_example("blob-content");
    let doc_blob = hex_example("blob");
    let hash: [u8; 32] = arr(&hex_example("blob-content-hash"));
    let ctx = BlobContext { group_id: &gid, resource_id: rid, version };

    let mut blob = Vec::new();
    let sealed = resource_crypto::seal(&ContentKey::from_bytes(key), &ctx, content.as_slice(), &mut blob).unwrap();
    assert_eq!(hex::encode(&blob), hex::encode(&doc_blob), "seal(example) is the documented blob");
    assert_eq!(sealed.size, content.len() as u64);
    assert_eq!(sealed.blob_size, doc_blob.len() as u64);
    assert_eq!(sealed.content_hash, hash, "content hash");
    assert_eq!(blake3::hash(&content).as_bytes(), &hash, "content hash is BLAKE3 of the content");

    let mut out = Vec::new();
    let expected = Expected { size: content.len() as u64, content_hash: hash };
    resource_crypto::open(&ContentKey::from_bytes(key), &ctx, doc_blob.as_slice(), &mut out, &expected).unwrap();
    assert_eq!(out, content, "open(documented blob)");

    // The documented nonce and AD are the ones the code uses.
    let (n0, ad0) = (hex_example("blob-nonce-0"), hex_example("blob-ad-0"));
    assert_eq!(n0, nonce(0, true));
    assert_eq!(ad0, ad(&gid, &rid, version, 0, true));
    let crypto = OpenMlsRustCrypto::default();
    let padded = crypto.crypto().aead_decrypt(AeadType::Aes256Gcm, &key, &doc_blob[8..], &n0, &ad0).unwrap();
    let mut want = content.clone();
    want.resize(padme(content.len() as u64) as usize, 0);
    assert_eq!(padded, want, "the chunk holds the content and zero padding");

    // The manifest example describes this blob.
    let m = &json(&hex_example("envelope-resource-version"))["manifest"];
    assert_eq!(hex_arr::<32>(&m["key"]), key);
    assert_eq!(hex_arr::<16>(&m["resource_id"]), rid);
    assert_eq!(hex_arr::<32>(&m["content_hash"]), hash);
    assert_eq!(m["version"], version);
    assert_eq!(m["size"], content.len() as u64);
    assert_eq!(m["blob_size"], doc_blob.len() as u64);

    // Empty content: one empty final chunk.
    let mut empty = Vec::new();
    resource_crypto::seal(&ContentKey::from_bytes(key), &ctx, &[][..], &mut empty).unwrap();
    assert_eq!(hex::encode(&empty), hex::encode(hex_example("blob-empty")), "seal(empty) is the documented blob");
}

/// Larger blobs (no hex in the doc): the layout written here from the doc
/// produces the code's bytes exactly, at every chunk boundary, and opens them.
#[test]
fn blob_layout_at_chunk_boundaries() {
    let key: [u8; 32] = arr(&hex_example("blob-key"));
    let gid = hex_example("blob-group-id");
    let rid: [u8; 16] = arr(&hex_example("blob-resource-id"));
    let ctx = BlobContext { group_id: &gid, resource_id: rid, version: 7 };
    for n in [0, 1, 2, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 5000] {
        let content: Vec<u8> = (0..n).map(|i| (i as u32).wrapping_mul(2654435761).to_be_bytes()[1]).collect();
        let mut blob = Vec::new();
        let s = resource_crypto::seal(&ContentKey::from_bytes(key), &ctx, content.as_slice(), &mut blob).unwrap();
        assert!(blob == foreign_seal(&key, &gid, &rid, 7, &content), "size {n}: the documented layout differs");
        let m = serde_json::json!({
            "size": n, "blob_size": s.blob_size, "content_hash": hex::encode(s.content_hash),
        });
        assert!(foreign_open(&key, &gid, &rid, 7, &blob, &m) == content, "size {n}");
    }
}

/// A last-resort KeyPackage lists `last_resort` in its capabilities (the DS
/// refuses one that does not); a foreign member can add a Grove client with
/// it; the Grove client decodes the documented group name envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_resort_key_package_and_group_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let alice = Client::create(dir.path().join("alice"), config(&url, "alice", 1)).await?;
    let mut bob = Peer::join(&url, "bob").await;

    // Alice's KeyPackages, as any member claims them.
    let mut last_resort = None;
    for _ in 0..10 {
        let (kp, kind) = bob.claim("alice").await;
        let ext = kp.extensions().tls_serialize_detached()?;
        let caps = kp.leaf_node().capabilities().tls_serialize_detached()?;
        if kind == "last-resort" {
            assert!(kp.last_resort());
            assert_matches_template("key-package-extensions-last-resort", &ext);
            assert_matches_template("capabilities-last-resort", &caps);
            last_resort = Some(kp);
            break;
        }
        assert_eq!(kind, "one-time");
        assert_matches_template("key-package-extensions-one-time", &ext);
        assert_matches_template("capabilities-one-time", &caps);
    }
    let last_resort = last_resort.expect("alice's last-resort KeyPackage");

    // The DS refuses a last-resort package that does not list the capability.
    let r = bob.upload(&[bob.key_package(true, false)]).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "invalid_key_package");
    bob.upload(&[bob.key_package(true, true)]).await.expect(201);

    // Bob creates a group, adds alice with her last-resort package and names it.
    let mut group = bob.create_group().await;
    bob.add(&mut group, &[last_resort]).await;
    let report = alice.sync().await?;
    assert_eq!(report.joined.len(), 1, "{report:?}");
    let gid = report.joined[0].clone();
    bob.send_app(&mut group, &hex_example("envelope-group-name")).await;
    sync_clean(&alice).await;
    let name = json(&hex_example("envelope-group-name"));
    let summary = alice.groups()?.into_iter().find(|g| g.id == gid).unwrap();
    assert_eq!(summary.name.as_deref(), name["name"].as_str());
    assert_eq!(alice.history_policy(&gid)?.as_str(), name["history"].as_str().unwrap());
    Ok(())
}

/// Every envelope both ways between a Grove client and a foreign member, the
/// GroupInfo of group creation and of commits, and blobs end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_group_infos_and_blobs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ds = start_ds(dir.path()).await;
    let url = ds.url();
    let (proxy, rec) = start_recorder(&url).await;
    let alice = Client::create(dir.path().join("alice"), config(&proxy, "alice", 1)).await?;
    let mut bob = Peer::join(&url, "bob").await;
    let carol = Peer::join(&url, "carol").await;
    bob.upload(&[bob.key_package(false, false)]).await.expect(201);
    carol.upload(&[carol.key_package(false, false)]).await.expect(201);

    // Group creation: GroupCreate's GroupInfo carries the tree and
    // external_pub; the tree also travels beside it.
    let g = alice.create_group_with("ops", HistoryPolicy::Share).await?;
    let gid = alice.resolve_group(&g)?;
    assert_eq!(gid.len(), 16, "Grove group ids are 16 random bytes");
    let creates = rec.bodies(|p| p == "/v1/groups");
    assert_eq!(creates.len(), 1);
    let create = grove_proto::GroupCreateBody::tls_deserialize_exact(&creates[0])?;
    let gi = group_info_of(create.group_info.as_slice());
    assert_eq!(hex::encode(extension_types(&gi)), hex::encode(hex_example("group-info-extension-types-create")));
    assert_matches_template("external-pub-extension", &extension(&gi, ExtensionType::ExternalPub));
    assert_eq!(gi.group_context().extensions().iter().count(), 0, "no group context extensions");
    let tree = RatchetTreeIn::tls_deserialize_exact(create.ratchet_tree.as_slice())?;
    assert_eq!(tree.leaves().count(), 1);

    // The Add commit's bundle carries the new epoch's GroupInfo with
    // ratchet_tree and external_pub; bob joins from the Welcome alone.
    alice.add_members(&g, &["bob"]).await?;
    let commit_path = format!("/v1/groups/{}/commits", gid_path(&gid));
    let commits = rec.bodies(|p| p == commit_path);
    assert_eq!(commits.len(), 1);
    let bundle = grove_proto::CommitBundleBody::tls_deserialize_exact(&commits[0])?;
    let gi = group_info_of(bundle.group_info.as_slice());
    assert_eq!(gi.epoch().as_u64(), 1);
    assert_eq!(hex::encode(extension_types(&gi)), hex::encode(hex_example("group-info-extension-types-commit")));
    assert_matches_template("external-pub-extension", &extension(&gi, ExtensionType::ExternalPub));
    let mut group = bob.accept_welcome(&gid).await;
    let tree = group.export_ratchet_tree().tls_serialize_detached()?;
    let mut want = 2u16.to_be_bytes().to_vec();
    want.extend(tls_codec::VLBytes::new(tree).tls_serialize_detached()?);
    assert!(extension(&gi, ExtensionType::RatchetTree) == want, "ratchet_tree extension = the group's tree");

    // group_name, after the add (exact bytes).
    let got = bob.sync(&mut group).await;
    assert_eq!(got.len(), 1, "one group_name after the add (no resources yet)");
    assert_eq!(hex::encode(&got[0]), hex::encode(hex_example("envelope-group-name")));

    // text, both ways (exact bytes).
    let text = json(&hex_example("envelope-text"));
    alice.send(&g, text["text"].as_str().unwrap()).await?;
    let got = bob.sync(&mut group).await;
    assert_eq!(hex::encode(&got[0]), hex::encode(hex_example("envelope-text")));
    bob.send_app(&mut group, &hex_example("envelope-text")).await;
    bob.send_app(&mut group, &hex_example("envelope-text-tolerant")).await;
    sync_clean(&alice).await;
    let msgs = alice.messages(&g)?;
    let tolerant = json(&hex_example("envelope-text-tolerant"));
    let last: Vec<(&str, &str)> = msgs[msgs.len() - 2..].iter().map(|m| (m.sender.as_str(), m.text.as_str())).collect();
    assert_eq!(last, [("bob", text["text"].as_str().unwrap()), ("bob", tolerant["text"].as_str().unwrap())]);

    // resource_version from bob (the documented manifest): alice lists it as the doc says.
    bob.send_app(&mut group, &hex_example("envelope-resource-version")).await;
    sync_clean(&alice).await;
    let m = &json(&hex_example("envelope-resource-version"))["manifest"];
    let name = m["name"].as_str().unwrap();
    let info = alice.resources(&g)?.into_iter().find(|r| r.name == name).expect("the documented resource");
    assert_eq!(info.id, m["resource_id"].as_str().unwrap());
    assert_eq!(info.version, m["version"].as_u64().unwrap());
    assert_eq!(info.blob_id, m["blob_id"].as_str().unwrap());
    assert_eq!(info.content_hash, m["content_hash"].as_str().unwrap());
    assert_eq!(info.size, m["size"].as_u64().unwrap());
    assert_eq!(info.blob_size, m["blob_size"].as_u64().unwrap());
    assert_eq!(info.author, m["author"].as_str().unwrap());
    assert_eq!(info.time, m["time"].as_u64().unwrap());

    // A real blob written by bob from the doc alone: alice reads it.
    let content = b"written by a foreign client".to_vec();
    let (key, rid) = ([0x42u8; 32], [0x24u8; 16]);
    let blob = foreign_seal(&key, &gid, &rid, 1, &content);
    let blob_size = blob.len();
    let blob_id = bob.upload_blob(&gid, blob).await;
    let envelope = format!(
        r#"{{"type":"resource_version","manifest":{{"resource_id":"{}","name":"from-bob.txt","version":1,"blob_id":"{blob_id}","key":"{}","content_hash":"{}","size":{},"blob_size":{blob_size},"author":"bob","time":1767225601}}}}"#,
        hex::encode(rid),
        hex::encode(key),
        hex::encode(blake3::hash(&content).as_bytes()),
        content.len()
    );
    assert_same_shape("envelope-resource-version", envelope.as_bytes());
    bob.send_app(&mut group, envelope.as_bytes()).await;
    sync_clean(&alice).await;
    let (read, _) = alice.get_resource(&g, "from-bob.txt", None, Vec::new(), None).await?;
    assert!(read == content, "alice reads the foreign blob");

    // resource_version from alice: the documented structure, and bob opens
    // the blob with the documented layout (two chunks).
    let content: Vec<u8> = (0..CHUNK_SIZE + 1000).map(|i| (i % 251) as u8).collect();
    let put = alice.put_resource(&g, "report.bin", std::io::Cursor::new(content.clone()), None).await?;
    let got = bob.sync(&mut group).await;
    assert_eq!(got.len(), 1);
    assert_same_shape("envelope-resource-version", &got[0]);
    let env = json(&got[0]);
    let m = &env["manifest"];
    assert_eq!(m["resource_id"], put.id);
    assert_eq!(m["name"], "report.bin");
    assert_eq!(m["version"], 1);
    assert_eq!(m["author"], "alice");
    let blob = bob.download_blob(&gid, m["blob_id"].as_str().unwrap()).await;
    let opened = foreign_open(&hex_arr(&m["key"]), &gid, &hex_arr(&m["resource_id"]), 1, &blob, m);
    assert!(opened == content, "bob reads alice's blob");

    // resource_deleted, both ways.
    bob.send_app(&mut group, &hex_example("envelope-resource-deleted")).await;
    sync_clean(&alice).await;
    let del = json(&hex_example("envelope-resource-deleted"));
    let del_name = del["name"].as_str().unwrap();
    assert!(alice.resources(&g)?.iter().all(|r| r.name != del_name), "deleted");
    let h = alice.resource_history(&g, del_name)?.pop().unwrap();
    assert_eq!((h.kind, h.by.as_str(), h.time), ("deleted", "bob", del["time"].as_u64().unwrap()));
    assert_eq!(h.resource_id.as_deref(), del["resource_id"].as_str());
    alice.delete_resource(&g, "report.bin").await?;
    let got = bob.sync(&mut group).await;
    assert_same_shape("envelope-resource-deleted", &got[0]);
    assert_eq!(json(&got[0])["resource_id"], put.id);

    // history_policy, both ways.
    bob.send_app(&mut group, &hex_example("envelope-history-policy")).await;
    sync_clean(&alice).await;
    let pol = json(&hex_example("envelope-history-policy"));
    assert_eq!(alice.history_policy(&g)?.as_str(), pol["policy"].as_str().unwrap());
    let h = alice.group_resource_history(&g)?.pop().unwrap();
    assert_eq!((h.kind, h.time), ("policy", pol["time"].as_u64().unwrap()));
    alice.set_history_policy(&g, HistoryPolicy::Share).await?;
    let got = bob.sync(&mut group).await;
    assert_same_shape("envelope-history-policy", &got[0]);
    assert_eq!(json(&got[0])["policy"], "share");

    // key_bundle from alice when she adds carol (one live resource: from-bob.txt).
    alice.add_members(&g, &["carol"]).await?;
    let got = bob.sync(&mut group).await;
    assert_eq!(got.len(), 2, "group_name and key_bundle");
    assert_eq!(hex::encode(&got[0]), hex::encode(hex_example("envelope-group-name")));
    assert_same_shape("envelope-key-bundle", &got[1]);
    let kb = json(&got[1]);
    assert_eq!(kb["recipients"], serde_json::json!(["carol"]));
    assert_eq!(kb["manifests"][0]["name"], "from-bob.txt");
    assert_eq!(kb["manifests"][0]["blob_id"], blob_id.as_str());
    // The second commit's GroupInfo has the same extensions.
    let commits = rec.bodies(|p| p == commit_path);
    let bundle = grove_proto::CommitBundleBody::tls_deserialize_exact(commits.last().unwrap())?;
    let gi = group_info_of(bundle.group_info.as_slice());
    assert_eq!(hex::encode(extension_types(&gi)), hex::encode(hex_example("group-info-extension-types-commit")));

    // key_bundle from bob (the documented one): alice records the shared version.
    bob.send_app(&mut group, &hex_example("envelope-key-bundle")).await;
    sync_clean(&alice).await;
    let kb = json(&hex_example("envelope-key-bundle"));
    let m = &kb["manifests"][0];
    let v = alice.resource_versions(&g, m["name"].as_str().unwrap())?;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].id, m["resource_id"].as_str().unwrap());
    assert_eq!(v[0].version, m["version"].as_u64().unwrap());
    assert_eq!(v[0].author, m["author"].as_str().unwrap());
    assert_eq!(v[0].shared_by.as_deref(), Some("bob"));
    let h = alice.group_resource_history(&g)?.pop().unwrap();
    assert_eq!(
        (h.kind, h.time, h.recipients.clone()),
        ("shared", kb["time"].as_u64().unwrap(), vec!["carol".to_owned()])
    );

    // Something that is not an envelope is skipped, not fatal.
    bob.send_app(&mut group, br#"{"type":"no_such_type"}"#).await;
    let r = alice.sync().await?;
    assert_eq!((r.unknown_format, r.undecryptable), (1, 0), "{r:?}");

    // A member can post its own ciphertext twice (the DS cannot tell a copy
    // from a new message, see docs/threat-model.md): the copy fails to decrypt
    // (its ratchet generation is used up) and is dropped.
    let replayed = bob.seal_app(&mut group, &hex_example("envelope-text"));
    let first = bob.post_app(&group, replayed.clone()).await;
    assert!(bob.post_app(&group, replayed).await > first, "the DS stored both copies");
    let before = alice.messages(&g)?.len();
    let r = alice.sync().await?;
    assert_eq!(alice.messages(&g)?.len(), before + 1, "one copy kept");
    assert_eq!((r.messages, r.undecryptable), (1, 1), "the copy skipped: {r:?}");

    // Update and remove commits carry the same GroupInfo extensions.
    alice.self_update(&g).await?;
    alice.remove_members(&g, &["carol"]).await?;
    let commits = rec.bodies(|p| p == commit_path);
    assert_eq!(commits.len(), 4, "add bob, add carol, update, remove");
    for body in &commits[2..] {
        let bundle = grove_proto::CommitBundleBody::tls_deserialize_exact(body)?;
        let gi = group_info_of(bundle.group_info.as_slice());
        assert_eq!(hex::encode(extension_types(&gi)), hex::encode(hex_example("group-info-extension-types-commit")));
        assert_matches_template("external-pub-extension", &extension(&gi, ExtensionType::ExternalPub));
    }
    bob.sync(&mut group).await;
    assert_eq!(group.epoch().as_u64(), 4, "bob followed both commits");
    Ok(())
}
