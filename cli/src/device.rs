//! `grove device ...` and `grove init --link`: this user's devices, linking
//! a new one (request, approval after comparing codes, completion on the
//! next `grove sync`) and revoking one.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::Context as _;
use clap::Subcommand;
use grove_client::{Client, ClientConfig};
use serde_json::json;

use crate::Out;

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCmd {
    /// List this user's devices (from the latest device list, verified).
    List,
    /// Approve a new device by its link code (from `grove init --link` on
    /// the new device), after comparing the comparison code both show.
    Approve {
        /// The link code the new device printed.
        code: String,
        /// Approve without asking (after comparing the codes yourself).
        #[arg(long)]
        yes: bool,
    },
    /// Revoke another device of yours: it is dropped from the device list
    /// and removed from every group, and reads nothing sent afterwards.
    Revoke {
        /// The device id (`grove device list`).
        id: String,
    },
}

/// `grove init --link`: a new device of an existing user, waiting for its
/// approval.
pub(crate) async fn init_link(home: &Path, config: ClientConfig, label: &str) -> anyhow::Result<Out> {
    let user = config.user.clone();
    let (_, codes) = Client::request_link(home, config, label).await?;
    Ok(Out {
        text: format!(
            "link code: {}\ncomparison code: {}\nOn another device of {user}, run `grove device approve {}` and check \
             that it shows the same comparison code; then run `grove sync` here.",
            codes.link_code, codes.compare, codes.link_code
        ),
        json: json!({ "link_code": codes.link_code, "compare": codes.compare }),
    })
}

/// `grove identity restore`: this home becomes a new device of the
/// backed-up identity.
pub(crate) async fn restore(
    home: &Path,
    config: ClientConfig,
    backup: &grove_client::IdentityBackup,
    label: &str,
) -> anyhow::Result<Out> {
    let (c, done) = Client::restore(home, config, backup, label).await?;
    let others: Vec<String> = c.devices().await?.into_iter().filter(|d| !d.this_device).map(|d| d.id).collect();
    let mut text = format!(
        "restored {} as device {} (fingerprint {}); joined {} group(s)",
        c.whoami().user,
        done.device,
        c.whoami().fingerprint,
        done.joined.len()
    );
    for f in &done.failed {
        text.push_str(&format!("\ncould not join {f}"));
    }
    if !others.is_empty() {
        text.push_str(&format!(
            "\nyour other devices: {} (revoke a lost one with `grove device revoke ID`)",
            others.join(", ")
        ));
    }
    Ok(Out {
        text,
        json: json!({ "user": c.whoami().user, "device": done.device, "joined": done.joined, "failed": done.failed, "other_devices": others }),
    })
}

/// `grove identity reset`: asks for confirmation unless `--yes`.
pub(crate) async fn reset(c: Client, login_token: Option<String>, yes: bool, json_mode: bool) -> anyhow::Result<Out> {
    let user = c.whoami().user;
    if !yes {
        let interactive = !json_mode && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        if !interactive {
            anyhow::bail!("an identity reset cannot be undone: run it again with --yes to replace {user}'s identity");
        }
        print!("Replace {user}'s identity with this home's? Every old device is cut off and contacts see the change. [y/N] ");
        std::io::stdout().flush().context("writing the prompt")?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).context("reading the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("not reset");
        }
    }
    let r = c.reset_identity(login_token).await?;
    Ok(Out {
        text: format!(
            "{user} has a new identity (fingerprint {}); contacts see the change and must accept it; re-join groups by \
             being added again",
            r.fingerprint
        ),
        json: json!({ "user": user, "fingerprint": r.fingerprint }),
    })
}

pub(crate) async fn run(c: Client, cmd: DeviceCmd, json_mode: bool) -> anyhow::Result<Out> {
    Ok(match cmd {
        DeviceCmd::List => {
            let devices = c.devices().await?;
            let text = if devices.is_empty() {
                "this home has a single key and no device list (it was made before devices existed)".to_owned()
            } else {
                devices
                    .iter()
                    .map(|d| {
                        format!("{}{}{}", d.id, if d.this_device { "  (this device)" } else { "" }, label(&d.label))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Out { text, json: json!({ "devices": devices }) }
        }
        DeviceCmd::Approve { code, yes } => approve(&c, &code, yes, json_mode).await?,
        DeviceCmd::Revoke { id } => {
            let r = c.revoke_device(&id).await?;
            let mut text = format!("revoked device {}", r.device);
            if let Some(v) = r.list_version {
                text.push_str(&format!(" (device list version {v})"));
            }
            text.push_str(&format!("; removed from {} group(s)", r.removed_from.len()));
            for f in &r.failed {
                text.push_str(&format!("\nnot yet removed from {f}; run the command again"));
            }
            Out { text, json: serde_json::to_value(&r)? }
        }
    })
}

/// Shows the comparison code; approves with `--yes`, or after the user
/// confirms at a terminal.
async fn approve(c: &Client, code: &str, yes: bool, json_mode: bool) -> anyhow::Result<Out> {
    let info = c.approve_link(code, false).await?;
    let confirmed = yes || {
        let interactive = !json_mode && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        if !interactive {
            anyhow::bail!(
                "the new device {} shows comparison code {}: compare it with the new device's screen, then run this \
                 again with --yes",
                info.device,
                info.compare
            );
        }
        print!(
            "new device {}{}\ncomparison code: {}\nDoes the new device show the same code? [y/N] ",
            info.device,
            label(&info.label),
            info.compare
        );
        std::io::stdout().flush().context("writing the prompt")?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).context("reading the answer")?;
        matches!(answer.trim(), "y" | "Y" | "yes")
    };
    if !confirmed {
        anyhow::bail!("not approved: the codes must match");
    }
    let info = c.approve_link(code, true).await?;
    Ok(Out {
        text: format!(
            "approved device {}{} (comparison code {}); it finishes with `grove sync`",
            info.device,
            label(&info.label),
            info.compare
        ),
        json: serde_json::to_value(&info)?,
    })
}

pub(crate) fn label(l: &str) -> String {
    if l.is_empty() {
        String::new()
    } else {
        format!("  {l}")
    }
}
