//! Every route of API v1 in one place: the templates the DS's router mounts
//! (`{param}` segments, axum syntax) and the functions clients build concrete
//! paths with. A route changes here or nowhere.

use crate::{GroupId, UserName};

/// `GET`: liveness.
pub const HEALTH: &str = "/v1/health";
/// `GET`: Prometheus metrics (bearer `--metrics-token`).
pub const METRICS: &str = "/metrics";
/// `POST`: register.
pub const USERS: &str = "/v1/users";
/// `GET`: a user's credential and key.
pub const USER: &str = "/v1/users/{user}";
/// `GET` (`?after=N`): a user's device lists; `POST`: the next version of one's own.
pub const USER_DEVICES: &str = "/v1/users/{user}/devices";
/// `POST`: the next device list, without a token (a restored device).
pub const USER_DEVICES_RESTORE: &str = "/v1/users/{user}/devices/restore";
/// `POST`: a new device's link request.
pub const USER_LINKS: &str = "/v1/users/{user}/links";
/// `GET`: a link request and its approval.
pub const LINK: &str = "/v1/links/{id}";
/// `POST`: approve a link request (a device of its user).
pub const LINK_APPROVAL: &str = "/v1/links/{id}/approval";
/// `POST`: a one-time challenge.
pub const AUTH_CHALLENGE: &str = "/v1/auth/challenge";
/// `POST`: a signed challenge for a bearer token.
pub const AUTH_TOKEN: &str = "/v1/auth/token";
/// `POST`: upload KeyPackages; `GET ?ciphersuite=`: counts.
pub const KEY_PACKAGES: &str = "/v1/key-packages";
/// `POST ?ciphersuite=`: claim one KeyPackage of a user.
pub const KEY_PACKAGE_CLAIM: &str = "/v1/key-packages/{user}/claim";
/// `POST ?ciphersuite=`: claim one KeyPackage of each current device of a user.
pub const KEY_PACKAGE_CLAIM_DEVICES: &str = "/v1/key-packages/{user}/claim-devices";
/// `POST`: create a group.
pub const GROUPS: &str = "/v1/groups";
/// `GET`: a group's roster.
pub const GROUP: &str = "/v1/groups/{group_id}";
/// `GET`: a group's latest GroupInfo.
pub const GROUP_INFO: &str = "/v1/groups/{group_id}/group-info";
/// `POST`: a commit bundle.
pub const COMMITS: &str = "/v1/groups/{group_id}/commits";
/// `POST`: a proposal or application message; `GET`: fetch the log.
pub const MESSAGES: &str = "/v1/groups/{group_id}/messages";
/// `POST`: a member's signed report of a commit it cannot process.
pub const REPORTS: &str = "/v1/groups/{group_id}/reports";
/// `POST`: acknowledge the log through a seq.
pub const ACK: &str = "/v1/groups/{group_id}/ack";
/// `GET`: the WebSocket stream of a group's log.
pub const STREAM: &str = "/v1/groups/{group_id}/ws";
/// `POST`: upload an encrypted blob.
pub const BLOBS: &str = "/v1/groups/{group_id}/blobs";
/// `GET`, `DELETE`: one blob.
pub const BLOB: &str = "/v1/groups/{group_id}/blobs/{blob_id}";
/// `GET`: the Welcome inbox.
pub const WELCOMES: &str = "/v1/welcomes";
/// `DELETE`: acknowledge one Welcome.
pub const WELCOME: &str = "/v1/welcomes/{id}";
/// `GET`: the key directory's public keys.
pub const KT_KEYS: &str = "/v1/kt/keys";
/// `GET` (`?epoch=N`): the directory's latest (or epoch N's) signed head.
pub const KT_HEAD: &str = "/v1/kt/head";
/// `GET`: a lookup proof of a user's latest directory value.
pub const KT_LOOKUP: &str = "/v1/kt/lookup/{user}";
/// `GET`: a proof of a user's complete key history.
pub const KT_HISTORY: &str = "/v1/kt/history/{user}";
/// `GET ?from=A&to=B`: an append-only proof from epoch A to epoch B.
pub const KT_AUDIT: &str = "/v1/kt/audit";

/// `/v1/kt/lookup/{user}`.
pub fn kt_lookup(user: &UserName) -> String {
    format!("/v1/kt/lookup/{user}")
}

/// `/v1/kt/history/{user}`.
pub fn kt_history(user: &UserName) -> String {
    format!("/v1/kt/history/{user}")
}

/// `/v1/kt/audit?from={from}&to={to}`.
pub fn kt_audit(from: u64, to: u64) -> String {
    format!("/v1/kt/audit?from={from}&to={to}")
}

/// `/v1/kt/head?epoch={epoch}`.
pub fn kt_head_at(epoch: u64) -> String {
    format!("/v1/kt/head?epoch={epoch}")
}

/// `/v1/users/{user}`.
pub fn user(user: &UserName) -> String {
    format!("/v1/users/{user}")
}

/// `/v1/users/{user}/devices?after={after}`.
pub fn user_devices(user: &UserName, after: u64) -> String {
    format!("/v1/users/{user}/devices?after={after}")
}

/// `/v1/users/{user}/devices/restore`.
pub fn user_devices_restore(user: &UserName) -> String {
    format!("/v1/users/{user}/devices/restore")
}

/// `/v1/users/{user}/links`.
pub fn user_links(user: &UserName) -> String {
    format!("/v1/users/{user}/links")
}

/// `/v1/links/{id}`.
pub fn link(id: &str) -> String {
    format!("/v1/links/{id}")
}

/// `/v1/links/{id}/approval`.
pub fn link_approval(id: &str) -> String {
    format!("/v1/links/{id}/approval")
}

/// `/v1/key-packages?ciphersuite={suite}`.
pub fn key_package_counts(suite: u16) -> String {
    format!("{KEY_PACKAGES}?ciphersuite={suite}")
}

/// `/v1/key-packages/{user}/claim?ciphersuite={suite}`.
pub fn key_package_claim(user: &UserName, suite: u16) -> String {
    format!("/v1/key-packages/{user}/claim?ciphersuite={suite}")
}

/// `/v1/key-packages/{user}/claim-devices?ciphersuite={suite}`.
pub fn key_package_claim_devices(user: &UserName, suite: u16) -> String {
    format!("/v1/key-packages/{user}/claim-devices?ciphersuite={suite}")
}

/// `/v1/groups/{group_id}`.
pub fn group(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}")
}

/// `/v1/groups/{group_id}/group-info`.
pub fn group_info(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}/group-info")
}

/// `/v1/groups/{group_id}/commits`.
pub fn commits(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}/commits")
}

/// `/v1/groups/{group_id}/messages` (to post).
pub fn messages(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}/messages")
}

/// `/v1/groups/{group_id}/messages?after=&limit=[&wait=]` (to fetch).
pub fn fetch(gid: &GroupId, after: u64, limit: usize, wait_secs: Option<u64>) -> String {
    match wait_secs {
        Some(w) => format!("/v1/groups/{gid}/messages?after={after}&limit={limit}&wait={w}"),
        None => format!("/v1/groups/{gid}/messages?after={after}&limit={limit}"),
    }
}

/// `/v1/groups/{group_id}/reports`.
pub fn reports(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}/reports")
}

/// `/v1/groups/{group_id}/ack`.
pub fn ack(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}/ack")
}

/// `/v1/groups/{group_id}/ws?after=`.
pub fn stream(gid: &GroupId, after: u64) -> String {
    format!("/v1/groups/{gid}/ws?after={after}")
}

/// `/v1/groups/{group_id}/blobs`.
pub fn blobs(gid: &GroupId) -> String {
    format!("/v1/groups/{gid}/blobs")
}

/// `/v1/groups/{group_id}/blobs/{blob_id}`.
pub fn blob(gid: &GroupId, blob_id: &str) -> String {
    format!("/v1/groups/{gid}/blobs/{blob_id}")
}

/// `/v1/welcomes?after=&limit=[&wait=]`.
pub fn welcomes(after: u64, limit: usize, wait_secs: Option<u64>) -> String {
    match wait_secs {
        Some(w) => format!("{WELCOMES}?after={after}&limit={limit}&wait={w}"),
        None => format!("{WELCOMES}?after={after}&limit={limit}"),
    }
}

/// `/v1/welcomes/{id}`.
pub fn welcome(id: u64) -> String {
    format!("/v1/welcomes/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a template's `{param}` segments, to check the builders against it.
    fn fill(template: &str, values: &[&str]) -> String {
        let mut out = String::new();
        let mut values = values.iter();
        for seg in template.split('/').skip(1) {
            out.push('/');
            out.push_str(if seg.starts_with('{') { values.next().expect("a value per parameter") } else { seg });
        }
        out
    }

    #[test]
    fn builders_match_the_templates_the_router_mounts() {
        let g = GroupId::from_bytes(b"g1").unwrap();
        let u = UserName::parse("alice").unwrap();
        let gp = g.to_path();
        assert_eq!(user(&u), fill(USER, &["alice"]));
        assert_eq!(key_package_claim(&u, 1), fill(KEY_PACKAGE_CLAIM, &["alice"]) + "?ciphersuite=1");
        assert_eq!(key_package_counts(3), format!("{KEY_PACKAGES}?ciphersuite=3"));
        assert_eq!(group(&g), fill(GROUP, &[&gp]));
        assert_eq!(group_info(&g), fill(GROUP_INFO, &[&gp]));
        assert_eq!(commits(&g), fill(COMMITS, &[&gp]));
        assert_eq!(messages(&g), fill(MESSAGES, &[&gp]));
        assert_eq!(fetch(&g, 5, 10, None), fill(MESSAGES, &[&gp]) + "?after=5&limit=10");
        assert_eq!(fetch(&g, 5, 10, Some(3)), fill(MESSAGES, &[&gp]) + "?after=5&limit=10&wait=3");
        assert_eq!(ack(&g), fill(ACK, &[&gp]));
        assert_eq!(reports(&g), fill(REPORTS, &[&gp]));
        assert_eq!(stream(&g, 2), fill(STREAM, &[&gp]) + "?after=2");
        assert_eq!(blobs(&g), fill(BLOBS, &[&gp]));
        assert_eq!(blob(&g, "ab"), fill(BLOB, &[&gp, "ab"]));
        assert_eq!(welcomes(0, 100, None), format!("{WELCOMES}?after=0&limit=100"));
        assert_eq!(welcome(9), fill(WELCOME, &["9"]));
    }
}
