//! `grove audit`: audits a DS's key directory (needs no account or home).
//!
//! Verifies the append-only proofs epoch by epoch (`grove_client::audit`),
//! keeps its progress in a file (by default `grove-audit-<host>.json` in
//! the current directory) so the next run resumes, draws a progress bar on
//! a terminal, and exits non-zero on a proof that fails, naming the epoch.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::Out;

/// The default progress file for `server`: one per host and port.
fn default_progress(server: &str) -> PathBuf {
    let host: String = server
        .split("://")
        .last()
        .unwrap_or(server)
        .trim_end_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    PathBuf::from(format!("grove-audit-{host}.json"))
}

/// Runs the audit.
pub(crate) async fn run(
    server: &str,
    trust: grove_client::TrustMode,
    from: Option<u64>,
    progress: Option<PathBuf>,
    json_mode: bool,
) -> anyhow::Result<Out> {
    let file = progress.unwrap_or_else(|| default_progress(server));
    let bar = (!json_mode && std::io::stderr().is_terminal()).then(|| {
        let pb = ProgressBar::new(0);
        if let Ok(s) = ProgressStyle::with_template("auditing [{bar:30}] epoch {pos}/{len} eta {eta}") {
            pb.set_style(s.progress_chars("=> "));
        }
        pb
    });
    let mut on_span = |done: u64, total: u64| {
        if let Some(pb) = &bar {
            pb.set_length(total);
            pb.set_position(done);
        }
    };
    let result = grove_client::audit::audit(server, &trust, &file, from, &mut on_span).await;
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let r = result?;
    Ok(Out {
        text: format!(
            "audited epochs {} to {} of {server}: {} append-only proof(s) verified, root {} (directory keys {}; \
             progress in {})",
            r.from,
            r.to,
            r.verified,
            &r.root[..r.root.len().min(16)],
            r.keys,
            file.display()
        ),
        json: json!({
            "server": server,
            "from": r.from,
            "to": r.to,
            "verified": r.verified,
            "root": r.root,
            "keys": r.keys,
            "progress_file": file.display().to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn progress_file_names() {
        assert_eq!(
            super::default_progress("https://ds.example:8443/").to_str(),
            Some("grove-audit-ds.example_8443.json")
        );
        assert_eq!(super::default_progress("http://127.0.0.1:80").to_str(), Some("grove-audit-127.0.0.1_80.json"));
    }
}
