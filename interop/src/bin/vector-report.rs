//! `vector-report`: runs every RFC 9420 vector check and writes `docs/interop.md`.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// Hand-written notes appended to the generated report.
const NOTES: &str = include_str!("../../report-notes.md");

fn main() -> anyhow::Result<()> {
    let dir = interop::harness::vectors_dir();
    if !dir.is_dir() {
        bail!("MLS test vectors not found at {} (set {})", dir.display(), interop::harness::VECTORS_ENV);
    }
    let reports = interop::run_all(&dir);
    for r in &reports {
        println!("{}", r.summary_line());
    }
    let md = interop::report::markdown(&reports, NOTES);
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/interop.md"));
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    let failing: Vec<&str> = reports.iter().filter(|r| !r.ok()).map(|r| r.file.as_str()).collect();
    if !failing.is_empty() {
        bail!("files not passing: {}", failing.join(", "));
    }
    Ok(())
}
