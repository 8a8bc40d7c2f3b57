//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`, off
//! in every other build): the DS's decoders of stored records, and the whole
//! HTTP API through `tower::ServiceExt::oneshot` on the real router (memory
//! store). Each takes arbitrary bytes and must return, never panic.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request};
use tower::ServiceExt as _;

use crate::config::Config;
use crate::http::HttpOptions;
use crate::metrics::Metrics;
use crate::store::{records, watermark, GroupRecord, LogEntry, MemoryStore, UserRecord, WelcomeEntry};

/// Every record decoder of the store, on `bytes` as read from disk
/// (records, log entries with their chain, the watermark file).
pub fn store_records(bytes: &[u8]) {
    let _ = LogEntry::decode_value(1, bytes);
    let _ = LogEntry::decode_chained(1, bytes);
    let _ = GroupRecord::peek_ids(bytes);
    let _ = watermark::parse(bytes);
    let _ = records::decode::<GroupRecord>("group", bytes);
    let _ = records::decode::<UserRecord>("user", bytes);
    let _ = records::decode::<WelcomeEntry>("welcome", bytes);
}

/// The HTTP application over a memory store, with one registered user's
/// token, built once.
pub struct Api {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

const ROUTES: &[&str] = &[
    "/v1/health",
    "/v1/users",
    "/v1/users/{seg}",
    "/v1/auth/challenge",
    "/v1/auth/token",
    "/v1/key-packages",
    "/v1/key-packages/{seg}/claim?ciphersuite=1",
    "/v1/groups",
    "/v1/groups/{seg}",
    "/v1/groups/{seg}/group-info",
    "/v1/groups/{seg}/commits",
    "/v1/groups/{seg}/messages?after=0&limit=5",
    "/v1/groups/{seg}/ack",
    "/v1/groups/{seg}/reports",
    "/v1/groups/{seg}/blobs",
    "/v1/groups/{seg}/blobs/{seg}",
    "/v1/welcomes?after=0",
    "/v1/welcomes/{seg}",
    "/metrics",
];
const MEDIA: &[&str] =
    &["application/json", "application/mls-message", "application/vnd.grove.commit-bundle", "text/plain"];

impl Api {
    /// The API, built on first use.
    pub fn get() -> &'static Api {
        static API: OnceLock<Api> = OnceLock::new();
        // Setup of the harness itself, not input: if the machine cannot make a
        // temp dir or a runtime, no fuzzing can happen, and a panic says so.
        API.get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = Config::loopback(dir.path().to_path_buf());
            config.rate_limit_per_sec = 0;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let ds = rt
                .block_on(async {
                    crate::daemon::build_with_store(&config, Arc::new(MemoryStore::new()), Arc::new(Metrics::new()))
                        .await
                })
                .expect("the DS");
            let opts = HttpOptions { max_body_bytes: 64 * 1024, max_streams_per_ip: 4 };
            let app = crate::http::app(ds, opts).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
            Api { rt, app, _dir: dir }
        })
    }

    /// One request made from `bytes`: method, route, path segment, content
    /// type and body. A 5xx is a bug, like a panic.
    pub fn request(&self, bytes: &[u8]) {
        let [m, r, c, seg_len, rest @ ..] = bytes else { return };
        let method = [Method::GET, Method::POST, Method::DELETE, Method::PUT][usize::from(*m) % 4].clone();
        let (seg, body) = rest.split_at(usize::from(*seg_len).min(rest.len()));
        let seg: String = seg.iter().map(|b| char::from(b'!' + b % 94)).collect();
        let seg = utf8_percent(&seg);
        let path = ROUTES[usize::from(*r) % ROUTES.len()].replace("{seg}", &seg);
        let Ok(req) = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", MEDIA[usize::from(*c) % MEDIA.len()])
            .header("authorization", "Bearer fuzz-token-that-is-not-valid")
            .body(Body::from(body.to_vec()))
        else {
            return;
        };
        let status = self.rt.block_on(async { self.app.clone().oneshot(req).await.map(|r| r.status()) });
        let Ok(status) = status;
        assert!(!status.is_server_error(), "{status} for a request the fuzzer made");
    }
}

/// Escapes what a URI path may not hold.
fn utf8_percent(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' => c.to_string(),
            c => format!("%{:02X}", c as u32),
        })
        .collect()
}
