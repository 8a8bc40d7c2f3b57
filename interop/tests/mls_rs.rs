//! Cross-implementation tests: openmls (on Grove's client store) and mls-rs
//! in one process, every message crossing as TLS-encoded MLSMessage bytes.
//!
//! One scenario, run in both directions, for ciphersuites 0x0001 and 0x0003,
//! with the ratchet tree in the Welcome (ratchet-tree extension) and out of
//! band:
//!
//! 1. the creator (implementation X) creates a group and adds a member of
//!    implementation Y from Y's KeyPackage; Y joins from the Welcome;
//! 2. application messages both ways (PrivateMessage);
//! 3. Y commits a self-update (empty commit with a path) that X processes;
//! 4. Y commits an Add of a third member (implementation X), which joins from
//!    Y's Welcome, while X processes the commit;
//! 5. application messages from the third member and from Y to everyone;
//! 6. X commits a self-update that both others process.
//!
//! After the join and after every epoch, all members must agree on the
//! epoch, the epoch authenticator, an MLS-Exporter secret and the roster size,
//! and the epoch authenticator must change. Handshake messages must be
//! PublicMessages (Grove's wire format) and application messages
//! PrivateMessages.

mod common;

use common::{
    assert_agree, expect_wire_format, mls_rs_member, Member, OpenMlsMember, TestResult, SUITES, WF_KEY_PACKAGE,
    WF_PRIVATE, WF_PUBLIC, WF_WELCOME,
};

/// Checks agreement and that the epoch authenticator moved on.
fn next_epoch(what: &str, seen: &mut Vec<Vec<u8>>, members: &[&dyn Member]) -> TestResult {
    let auth = assert_agree(what, members)?;
    if seen.contains(&auth) {
        return Err(format!("{what}: epoch authenticator repeats an earlier epoch's").into());
    }
    seen.push(auth);
    Ok(())
}

fn app(what: &str, from: &mut dyn Member, to: &mut [&mut dyn Member]) -> TestResult {
    let text = format!("{what}: hello from {}", from.name()).into_bytes();
    let msg = from.send(&text)?;
    expect_wire_format(what, &msg, WF_PRIVATE)?;
    for m in to.iter_mut() {
        let got = m.receive_app(&msg).map_err(|e| format!("{what}: {} decrypting: {e}", m.name()))?;
        if got != text {
            return Err(format!("{what}: {} read {:?}", m.name(), String::from_utf8_lossy(&got)).into());
        }
    }
    Ok(())
}

/// The scenario of the module docs; `x` creates, `y` joins, `z` (same
/// implementation as `x`) is added by `y`.
fn scenario(x: &mut dyn Member, y: &mut dyn Member, z: &mut dyn Member, tree_in_welcome: bool) -> TestResult {
    let mut seen = Vec::new();
    x.create(b"grove interop group")?;
    next_epoch("created", &mut seen, &[&*x])?;

    // 1. x adds y.
    let kp = y.key_package()?;
    expect_wire_format("y's KeyPackage", &kp, WF_KEY_PACKAGE)?;
    let added = x.add(&kp).map_err(|e| format!("{} adding {}: {e}", x.name(), y.name()))?;
    expect_wire_format("x's Add commit", &added.commit, WF_PUBLIC)?;
    expect_wire_format("x's Welcome", &added.welcome, WF_WELCOME)?;
    y.join(&added.welcome, (!tree_in_welcome).then_some(&added.tree[..]))
        .map_err(|e| format!("{} joining: {e}", y.name()))?;
    next_epoch("after y joined", &mut seen, &[&*x, &*y])?;

    // 2. Application messages both ways.
    app("x to y", x, &mut [&mut *y])?;
    app("y to x", y, &mut [&mut *x])?;
    app("x to y again", x, &mut [&mut *y])?;

    // 3. y commits a self-update.
    let commit = y.self_update().map_err(|e| format!("{} self-update: {e}", y.name()))?;
    expect_wire_format("y's update commit", &commit, WF_PUBLIC)?;
    x.receive_commit(&commit).map_err(|e| format!("{} processing y's update: {e}", x.name()))?;
    next_epoch("after y's update", &mut seen, &[&*x, &*y])?;
    app("y to x after update", y, &mut [&mut *x])?;

    // 4. y adds z.
    let kp = z.key_package()?;
    let added = y.add(&kp).map_err(|e| format!("{} adding {}: {e}", y.name(), z.name()))?;
    expect_wire_format("y's Add commit", &added.commit, WF_PUBLIC)?;
    expect_wire_format("y's Welcome", &added.welcome, WF_WELCOME)?;
    x.receive_commit(&added.commit).map_err(|e| format!("{} processing y's add: {e}", x.name()))?;
    z.join(&added.welcome, (!tree_in_welcome).then_some(&added.tree[..]))
        .map_err(|e| format!("{} joining from y's Welcome: {e}", z.name()))?;
    next_epoch("after y added z", &mut seen, &[&*x, &*y, &*z])?;

    // 5. Messages in the three-member group.
    app("z to all", z, &mut [&mut *x, &mut *y])?;
    app("y to all", y, &mut [&mut *x, &mut *z])?;

    // 6. x commits a self-update.
    let commit = x.self_update()?;
    expect_wire_format("x's update commit", &commit, WF_PUBLIC)?;
    y.receive_commit(&commit).map_err(|e| format!("{} processing x's update: {e}", y.name()))?;
    z.receive_commit(&commit).map_err(|e| format!("{} processing x's update: {e}", z.name()))?;
    next_epoch("after x's update", &mut seen, &[&*x, &*y, &*z])?;
    app("x to all", x, &mut [&mut *y, &mut *z])?;
    Ok(())
}

fn openmls_creates(suite: u16, tree_in_welcome: bool) -> TestResult {
    let mut alice = OpenMlsMember::new("alice", suite, tree_in_welcome)?;
    let mut bob = mls_rs_member("bob", suite, tree_in_welcome)?;
    let mut carol = OpenMlsMember::new("carol", suite, tree_in_welcome)?;
    scenario(&mut alice, &mut bob, &mut carol, tree_in_welcome)
}

fn mls_rs_creates(suite: u16, tree_in_welcome: bool) -> TestResult {
    let mut alice = mls_rs_member("alice", suite, tree_in_welcome)?;
    let mut bob = OpenMlsMember::new("bob", suite, tree_in_welcome)?;
    let mut carol = mls_rs_member("carol", suite, tree_in_welcome)?;
    scenario(&mut alice, &mut bob, &mut carol, tree_in_welcome)
}

fn each_suite(f: fn(u16, bool) -> TestResult, tree_in_welcome: bool) -> TestResult {
    for suite in SUITES {
        f(suite, tree_in_welcome).map_err(|e| format!("suite 0x{suite:04x}: {e}"))?;
        println!("suite 0x{suite:04x}: ok");
    }
    Ok(())
}

#[test]
fn openmls_creates_mls_rs_joins_tree_in_welcome() -> TestResult {
    each_suite(openmls_creates, true)
}

#[test]
fn openmls_creates_mls_rs_joins_tree_out_of_band() -> TestResult {
    each_suite(openmls_creates, false)
}

#[test]
fn mls_rs_creates_openmls_joins_tree_in_welcome() -> TestResult {
    each_suite(mls_rs_creates, true)
}

#[test]
fn mls_rs_creates_openmls_joins_tree_out_of_band() -> TestResult {
    each_suite(mls_rs_creates, false)
}

/// Without the ratchet-tree extension the Welcome alone is not enough: both
/// implementations refuse to join without the out-of-band tree.
#[test]
fn join_without_tree_is_refused_both_ways() -> TestResult {
    let suite = SUITES[0];
    for (x, y) in [
        (
            Box::new(OpenMlsMember::new("alice", suite, false)?) as Box<dyn Member>,
            Box::new(mls_rs_member("bob", suite, false)?) as Box<dyn Member>,
        ),
        (Box::new(mls_rs_member("alice", suite, false)?), Box::new(OpenMlsMember::new("bob", suite, false)?)),
    ] {
        let (mut x, mut y) = (x, y);
        x.create(b"no tree")?;
        let kp = y.key_package()?;
        let added = x.add(&kp)?;
        if y.join(&added.welcome, None).is_ok() {
            return Err(format!("{} joined without any ratchet tree", y.name()).into());
        }
    }
    Ok(())
}
