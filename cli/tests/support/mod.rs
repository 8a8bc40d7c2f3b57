//! Running the `grove` binary in the CLI tests: `--json` output parsed into
//! one JSON object, with optional stdin.
#![allow(dead_code)] // each test file uses its own part of it

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Runs `grove --home HOME ARGS` with `input` on stdin.
pub(crate) fn run(home: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_grove"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("GROVE_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run grove");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from a thread: the child may fill stdout before reading it all.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for grove");
    writer.join().unwrap();
    out
}

/// A `grove --json` run: whether it succeeded, and its one JSON object.
pub(crate) struct Run {
    pub(crate) ok: bool,
    pub(crate) json: Value,
}

/// `grove --json ...` with `input` on stdin: exactly one JSON object on stdout.
pub(crate) fn grove_in(home: &Path, args: &[&str], input: &[u8]) -> Run {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(home, &all, input);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "grove {args:?}: not one JSON object ({e}): {stdout:?} stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run { ok: out.status.success(), json }
}

/// `grove --json ...` with nothing on stdin.
pub(crate) fn grove(home: &Path, args: &[&str]) -> Run {
    grove_in(home, args, b"")
}

/// [`grove`], which must succeed; its JSON.
pub(crate) fn ok(home: &Path, args: &[&str]) -> Value {
    let r = grove(home, args);
    assert!(r.ok, "grove {args:?} failed: {}", r.json);
    r.json
}

/// [`grove_in`], which must succeed; its JSON.
pub(crate) fn ok_in(home: &Path, args: &[&str], input: &[u8]) -> Value {
    let r = grove_in(home, args, input);
    assert!(r.ok, "grove {args:?} failed: {}", r.json);
    r.json
}
