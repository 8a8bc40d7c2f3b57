//! `grove resource ...`: encrypted, versioned resources of a group.
//!
//! `--json` fields (stable, see the README): `put`, `get` and `rm` print the
//! version concerned (`group`, `id`, `name`, `version`, `size`, `blob_size`,
//! `blob_id`, `content_hash`, `author`, `time`, `seq`, `shared_by`; `get` also
//! `path`, `rm` also `deleted`); `list`: `group`, `resources[]` (those fields);
//! `history`: `group`, `name`, `history[]` (`seq`, `epoch`, `by`, `time`,
//! `kind`, and by kind `resource_id`, `name`, `version`, `size`, `policy`,
//! `recipients`, `shared_resources`); `policy`: `group`, `policy`, `set`.
//!
//! Transfers of more than 4 MiB draw a progress bar on stderr (only on a
//! terminal, never with `--json`).

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Subcommand;
use grove_client::{Client, Error, HistoryPolicy, Progress, ResourceHistoryEntry, ResourceInfo};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::Out;

/// Transfers larger than this get a progress bar.
const BAR_THRESHOLD: u64 = 4 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum ResourceCmd {
    /// Store a file (or stdin) as the next version of a resource.
    Put {
        /// Group name or id.
        group: String,
        /// Resource name (private to the members).
        name: String,
        /// The file to store; none or `-` reads stdin.
        file: Option<PathBuf>,
    },
    /// Write a version of a resource to a file (or stdout).
    Get {
        /// Group name or id.
        group: String,
        /// Resource name.
        name: String,
        /// The version (default: the newest).
        #[arg(long)]
        version: Option<u64>,
        /// Write to this file (replaced only once the content checked out); default or `-`: stdout
        /// (where a failed get leaves incomplete output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List the group's resources (newest version of each).
    List {
        /// Group name or id.
        group: String,
    },
    /// Delete a resource (every member drops it; the history keeps the event).
    Rm {
        /// Group name or id.
        group: String,
        /// Resource name.
        name: String,
    },
    /// Show a resource's versions, deletion and history shares.
    History {
        /// Group name or id.
        group: String,
        /// Resource name.
        name: String,
    },
    /// Show or set the group's history policy for new members.
    Policy {
        /// Group name or id.
        group: String,
        /// `none` (new members read only later versions) or `share` (they get
        /// the keys of the current versions); omit to show the policy.
        #[arg(value_name = "none|share")]
        policy: Option<HistoryPolicy>,
    },
}

pub(crate) async fn run(c: Client, cmd: ResourceCmd, json_mode: bool) -> anyhow::Result<Out> {
    Ok(match cmd {
        ResourceCmd::Put { group, name, file } => put(&c, &group, &name, file, json_mode).await?,
        ResourceCmd::Get { group, name, version, output } => get(&c, &group, &name, version, output, json_mode).await?,
        ResourceCmd::List { group } => {
            c.sync().await?;
            let rs = c.resources(&group)?;
            let text = if rs.is_empty() {
                format!("no resources in {group}")
            } else {
                rs.iter().map(info_line).collect::<Vec<_>>().join("\n")
            };
            Out { text, json: json!({ "group": group, "resources": rs }) }
        }
        ResourceCmd::Rm { group, name } => {
            c.sync().await?;
            let info = c.delete_resource(&group, &name).await?;
            let mut j = info_json(&group, &info);
            j["deleted"] = json!(true);
            Out { text: format!("deleted {} (newest version {}) from {group}", info.name, info.version), json: j }
        }
        ResourceCmd::History { group, name } => {
            c.sync().await?;
            let h = c.resource_history(&group, &name)?;
            let text = h.iter().map(history_line).collect::<Vec<_>>().join("\n");
            Out { text, json: json!({ "group": group, "name": name, "history": h }) }
        }
        ResourceCmd::Policy { group, policy } => {
            // Catch up first: the policy may have changed meanwhile, and a
            // change is a group message sent in the current epoch.
            c.sync().await?;
            match policy {
                None => {
                    let p = c.history_policy(&group)?;
                    Out {
                        text: format!("history policy of {group}: {}", p.as_str()),
                        json: json!({ "group": group, "policy": p.as_str(), "set": false }),
                    }
                }
                Some(p) => {
                    c.set_history_policy(&group, p).await?;
                    Out {
                        text: format!("history policy of {group} set to {}", p.as_str()),
                        json: json!({ "group": group, "policy": p.as_str(), "set": true }),
                    }
                }
            }
        }
    })
}

/// `grove resource put`.
async fn put(c: &Client, group: &str, name: &str, file: Option<PathBuf>, json_mode: bool) -> anyhow::Result<Out> {
    // Catch up first, like `send`: a Welcome may be waiting (put
    // itself syncs the group it writes to).
    c.sync().await?;
    let (info, from) = match file.filter(|f| !is_stdio(f)) {
        Some(path) => {
            let io = |e: std::io::Error| Error::ResourceIo {
                name: name.to_owned(),
                reason: format!("{}: {e}", path.display()),
            };
            let f = std::fs::File::open(&path).map_err(io)?;
            let meta = f.metadata().map_err(io)?;
            let total = meta.is_file().then_some(meta.len());
            let meter = Meter::new(!json_mode, format!("put {name}"), total);
            let info = c.put_resource(group, name, f, meter.progress()).await?;
            (info, path.display().to_string())
        }
        None => {
            if !json_mode && std::io::stdin().is_terminal() {
                eprintln!("reading {name} from stdin; end it with Ctrl-D");
            }
            let meter = Meter::new(!json_mode, format!("put {name}"), None);
            let info = c.put_resource(group, name, std::io::stdin(), meter.progress()).await?;
            (info, "stdin".to_owned())
        }
    };
    Ok(Out {
        text: format!(
            "stored {} version {} ({}) from {from} in {group}",
            info.name,
            info.version,
            HumanBytes(info.size)
        ),
        json: info_json(group, &info),
    })
}

/// `grove resource get`.
async fn get(
    c: &Client,
    group: &str,
    name: &str,
    version: Option<u64>,
    output: Option<PathBuf>,
    json_mode: bool,
) -> anyhow::Result<Out> {
    let output = output.filter(|p| !is_stdio(p));
    check_get(json_mode, output.is_some())?;
    c.sync().await?;
    // The size, for the progress bar; errors come from the get itself.
    let total = c
        .resource_versions(group, name)
        .ok()
        .and_then(|vs| vs.into_iter().rev().find(|v| version.is_none_or(|n| v.version == n)))
        .map_or(0, |v| v.size);
    let meter = Meter::new(!json_mode, format!("get {name}"), Some(total));
    Ok(match output {
        Some(path) => {
            let info = c.get_resource_to_file(group, name, version, &path, meter.progress()).await?;
            drop(meter);
            let mut j = info_json(group, &info);
            j["path"] = json!(path.display().to_string());
            Out {
                text: format!(
                    "wrote {} version {} ({}) to {}",
                    info.name,
                    info.version,
                    HumanBytes(info.size),
                    path.display()
                ),
                json: j,
            }
        }
        None => {
            let out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout());
            let (mut out, info) = c.get_resource(group, name, version, out, meter.progress()).await?;
            out.flush().map_err(|e| Error::ResourceIo { name: name.to_owned(), reason: format!("stdout: {e}") })?;
            // Nothing more on stdout: it carries the content.
            Out { text: String::new(), json: info_json(group, &info) }
        }
    })
}

/// Refuses what cannot work before touching the home directory.
pub(crate) fn check(cmd: &ResourceCmd, json_mode: bool) -> Result<(), Error> {
    match cmd {
        ResourceCmd::Get { output, .. } => check_get(json_mode, output.as_ref().is_some_and(|p| !is_stdio(p))),
        _ => Ok(()),
    }
}

/// `-`: stdin or stdout.
fn is_stdio(p: &std::path::Path) -> bool {
    p.as_os_str() == "-"
}

fn check_get(json_mode: bool, to_file: bool) -> Result<(), Error> {
    if json_mode && !to_file {
        return Err(Error::InvalidArgument(
            "with --json, give -o FILE: stdout carries the JSON object, not the content".into(),
        ));
    }
    Ok(())
}

/// A version's JSON: the `ResourceInfo` fields and `group`.
fn info_json(group: &str, info: &ResourceInfo) -> Value {
    let mut j = serde_json::to_value(info).unwrap_or_else(|_| json!({}));
    j["group"] = json!(group);
    j
}

fn info_line(r: &ResourceInfo) -> String {
    let mut line = format!("{}  v{}  {}  by {}  {}", r.name, r.version, HumanBytes(r.size), r.author, utc(r.time));
    if let Some(by) = &r.shared_by {
        line.push_str(&format!("  (key shared by {by})"));
    }
    line
}

fn history_line(h: &ResourceHistoryEntry) -> String {
    let what = match h.kind {
        "version" => format!(
            "version {} of {} ({})",
            h.version.unwrap_or_default(),
            h.name.as_deref().unwrap_or_default(),
            HumanBytes(h.size.unwrap_or_default())
        ),
        "deleted" => format!("deleted {}", h.name.as_deref().unwrap_or_default()),
        "policy" => format!("history policy {}", h.policy.map_or("?", HistoryPolicy::as_str)),
        "shared" => format!(
            "shared the keys of {} resource(s){} with {}",
            h.shared_resources.unwrap_or_default(),
            h.version.map(|v| format!(" (this one: version {v})")).unwrap_or_default(),
            h.recipients.join(", ")
        ),
        other => other.to_owned(),
    };
    format!("[{}] {}  {}: {what}", h.seq, utc(h.time), h.by)
}

/// `YYYY-MM-DD HH:MM:SSZ` from Unix seconds (UTC).
fn utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A progress bar on stderr for a transfer of more than [`BAR_THRESHOLD`]
/// bytes: drawn from the start when the size is known, as a spinner with
/// bytes once that much went through when it is not (stdin). indicatif hides
/// it when stderr is not a terminal. Cleared when dropped.
struct Meter {
    bar: Arc<OnceLock<ProgressBar>>,
    progress: Option<Progress>,
}

impl Meter {
    fn new(enabled: bool, label: String, total: Option<u64>) -> Meter {
        let bar = Arc::new(OnceLock::new());
        let wanted = enabled && total.is_none_or(|t| t > BAR_THRESHOLD);
        if !wanted {
            return Meter { bar, progress: None };
        }
        if let Some(t) = total {
            let _ = bar.set(new_bar(&label, Some(t)));
        }
        let cell = Arc::clone(&bar);
        let progress: Progress = Arc::new(move |done: u64| {
            if let Some(b) = cell.get() {
                b.set_position(done);
            } else if done > BAR_THRESHOLD {
                cell.get_or_init(|| new_bar(&label, None)).set_position(done);
            }
        });
        Meter { bar, progress: Some(progress) }
    }

    fn progress(&self) -> Option<Progress> {
        self.progress.clone()
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(b) = self.bar.get() {
            b.finish_and_clear();
        }
    }
}

fn new_bar(label: &str, total: Option<u64>) -> ProgressBar {
    let pb = match total {
        Some(t) => {
            let pb = ProgressBar::new(t);
            if let Ok(s) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                pb.set_style(s.progress_chars("=> "));
            }
            pb
        }
        None => {
            let pb = ProgressBar::new_spinner();
            if let Ok(s) = ProgressStyle::with_template("{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}") {
                pb.set_style(s);
            }
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        }
    };
    pb.set_message(label.to_owned());
    pb
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59Z");
    }
}
