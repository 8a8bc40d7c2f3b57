//! `grove`: the command line on top of `grove_client`.
//!
//! Every command prints either human text or, with `--json`, one JSON object
//! on stdout (fields documented in the README's "Client and CLI" section).
//! Errors are one line on stderr (`--json`: `{"error": ..., "code": ...}` on
//! stdout) and a non-zero exit code.
//!
//! # Layout
//! - this file: the command tree (clap), opening the home, running a command,
//!   printing its output or error;
//! - `audit`: `grove audit` (the key directory's append-only proofs, epoch
//!   by epoch, with a progress file and bar);
//! - `demo`: `grove demo` (an in-process DS and three users, step by step);
//! - `device`: `grove device ...` and `grove init --link` (linking, approving
//!   and revoking devices);
//! - `resource`: `grove resource ...` (encrypted, versioned resources, progress
//!   bars).

mod audit;
mod demo;
mod device;
mod resource;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use grove_client::{Client, ClientConfig, HistoryPolicy, TrustMode};
use serde_json::{json, Value};

/// Grove: end-to-end encrypted resource groups on MLS.
#[derive(Debug, Parser)]
#[command(name = "grove", version)]
struct Cli {
    /// Home directory of the local state (created owner-only).
    #[arg(long, env = "GROVE_HOME", global = true)]
    home: Option<PathBuf>,
    /// Print one JSON object per command (stable fields).
    #[arg(long, global = true)]
    json: bool,
    /// Encrypt the home at rest under the key in this file (32 raw bytes,
    /// or 64 hex digits). A home in clear is encrypted the first time it is
    /// opened with a key; an encrypted home then needs it every time.
    #[arg(long, env = "GROVE_STORE_KEY_FILE", global = true)]
    store_key_file: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create an identity, register it with the DS and upload KeyPackages.
    Init {
        /// User name.
        #[arg(long)]
        user: String,
        /// The DS and how to reach it.
        #[command(flatten)]
        connect: Connect,
        /// Make this home a new device of an existing user: prints a link
        /// code to approve on another device of the user (`grove device
        /// approve CODE`); `grove sync` here then completes the link.
        #[arg(long)]
        link: bool,
        /// A name for this device in the device list ("laptop"), with --link.
        #[arg(long, default_value = "", requires = "link")]
        device_name: String,
    },
    /// Show the user, server and own key fingerprint.
    Whoami,
    /// Group commands.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Encrypted resources of a group: put, get, list, rm, history, policy.
    #[command(subcommand)]
    Resource(resource::ResourceCmd),
    /// Send a message to a group.
    Send {
        /// Group name or id.
        group: String,
        /// The message text.
        #[arg(required_unless_present = "file")]
        message: Option<String>,
        /// Read the message from a file instead.
        #[arg(long, conflicts_with = "message")]
        file: Option<PathBuf>,
    },
    /// Fetch Welcomes and new messages of every group.
    Sync,
    /// Show a group's stored messages.
    Read {
        /// Group name or id.
        group: String,
    },
    /// Show the safety number with a user.
    Verify {
        /// The other user.
        user: String,
        /// Mark the user verified (after comparing the number out of band).
        #[arg(long)]
        confirm: bool,
    },
    /// This user's devices: list, approve a new one, revoke one.
    #[command(subcommand)]
    Device(device::DeviceCmd),
    /// The identity key: backups.
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Contact codes: hand your key over out of band, and verify others'.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// Accept a changed key for a user.
    Trust {
        /// The user.
        user: String,
        /// Required: replace the pinned key with the newly seen one.
        #[arg(long, required = true)]
        accept_new_key: bool,
    },
    /// Run a DS in-process and walk alice, bob and carol through a group.
    Demo,
    /// Audit a DS's key directory: verify that it only ever grew, epoch by
    /// epoch (needs no account). Exits non-zero naming the first epoch
    /// whose proof fails.
    Audit {
        /// DS base URL (https://, or http:// to loopback).
        #[arg(long)]
        server: String,
        /// Start at this epoch (default: where the progress file stopped, else 0).
        #[arg(long)]
        from: Option<u64>,
        /// The progress file (default: `grove-audit-<host>.json` here).
        #[arg(long)]
        progress: Option<PathBuf>,
        /// Trust only the CA certificates in this PEM file.
        #[arg(long, conflicts_with = "server_cert_sha256")]
        ca_cert: Option<PathBuf>,
        /// Pin the DS certificate by its SHA-256 fingerprint (hex).
        #[arg(long)]
        server_cert_sha256: Option<String>,
    },
}

/// Where the DS is and how this device reaches it (`init`, `identity restore`).
#[derive(Debug, clap::Args)]
struct Connect {
    /// DS base URL (https://, or http:// to loopback).
    #[arg(long)]
    server: String,
    /// Trust only the CA certificates in this PEM file.
    #[arg(long, conflicts_with = "server_cert_sha256")]
    ca_cert: Option<PathBuf>,
    /// Pin the DS certificate by its SHA-256 fingerprint (hex), e.g. a `--dev-tls` server.
    #[arg(long)]
    server_cert_sha256: Option<String>,
    /// Ciphersuite: 1 (X25519/AES-128-GCM/Ed25519) or 3 (X25519/ChaCha20/Ed25519).
    #[arg(long, default_value_t = 1)]
    ciphersuite: u16,
    /// The app's login for this user (a JWT from the app's auth server),
    /// for a DS that binds users to the app's login. Used once, never stored.
    #[arg(long, env = "GROVE_LOGIN_TOKEN", hide_env_values = true)]
    login_token: Option<String>,
}

impl Connect {
    /// The client configuration of `user` on this DS.
    fn config(self, user: String) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new(self.server, user);
        config.trust = trust_of(self.ca_cert, self.server_cert_sha256)?;
        config.ciphersuite = self.ciphersuite;
        config.login_token = self.login_token;
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
enum IdentityCmd {
    /// Write the identity key and the contact pins, sealed under a
    /// passphrase (Argon2id, XChaCha20-Poly1305), to a new owner-only file.
    Backup {
        /// The backup file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// A file whose first line is the passphrase (at least 12 characters).
        #[arg(long)]
        passphrase_file: PathBuf,
    },
    /// Make this (new) home a device of the identity in a backup, with no
    /// other device needed: it joins the groups the backup lists.
    Restore {
        /// The backup file (`grove identity backup`).
        file: PathBuf,
        /// A file whose first line is the backup's passphrase.
        #[arg(long)]
        passphrase_file: PathBuf,
        /// The DS and how to reach it.
        #[command(flatten)]
        connect: Connect,
        /// A name for this device in the device list.
        #[arg(long, default_value = "")]
        device_name: String,
    },
    /// When every device is lost and there is no backup: make this home's
    /// identity (a home whose `grove init` failed because the name is
    /// taken) the user's new identity. Every old device is out; contacts
    /// see the identity change and must accept it.
    Reset {
        /// The app's login for this user, for a DS that requires one.
        #[arg(long, env = "GROVE_LOGIN_TOKEN", hide_env_values = true)]
        login_token: Option<String>,
        /// Confirm (the old identity cannot be brought back).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ContactCmd {
    /// Print your contact code on the first line (and, on a terminal, as a QR
    /// code) for others to import.
    Export,
    /// Import another user's contact code: pins their key (if the DS serves
    /// the same one) and marks them verified.
    Import {
        /// The code, as `grove contact export` printed it.
        code: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCmd {
    /// Create a group.
    Create {
        /// Its name (kept encrypted; local to each member).
        name: String,
        /// Resource history for members added later: `none` (they read only
        /// versions written after they joined) or `share` (they get the keys
        /// of the current versions).
        #[arg(long, value_name = "none|share", default_value = "none")]
        history: HistoryPolicy,
    },
    /// Add users.
    Add {
        /// Group name or id.
        group: String,
        /// Users to add.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove users.
    Remove {
        /// Group name or id.
        group: String,
        /// Users to remove.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Ask to leave (another member commits it on their next sync).
    Leave {
        /// Group name or id.
        group: String,
    },
    /// List the members.
    Members {
        /// Group name or id.
        group: String,
    },
    /// List groups.
    List,
    /// Show, or set, when this client updates its own leaf in a group
    /// (post-compromise security): after a number of days or of own
    /// messages, whichever comes first, on the next send or sync. 0 turns a
    /// limit off.
    Policy {
        /// Group name or id.
        group: String,
        /// Update the own leaf when it is this many days old (default 7).
        #[arg(long, value_name = "DAYS")]
        update_days: Option<u64>,
        /// Update the own leaf after this many own messages (default 1000).
        #[arg(long, value_name = "N")]
        update_messages: Option<u64>,
    },
    /// Acknowledge a fork seen in a group (see `grove read`): sending into it
    /// is allowed again. Members on the other branch still cannot read it.
    AckFork {
        /// Group name or id.
        group: String,
    },
    /// Replace a group that cannot be used any more (a resync that keeps
    /// failing, or a fork): create a new group with the same name, history
    /// policy and members, except those given with `--without` (such as the
    /// member whose commit broke it), linked from the old one.
    Successor {
        /// Group name or id.
        group: String,
        /// Leave this member out (repeatable).
        #[arg(long, value_name = "USER")]
        without: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Acknowledge a server rollback seen in a group (see `grove sync`):
    /// sending into it is allowed again.
    AckRollback {
        /// Group name or id.
        group: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_mode = cli.json;
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("grove: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(out) => {
            if json_mode {
                println!("{}", out.json);
            } else if !out.text.is_empty() {
                println!("{}", out.text.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let client_err = e.downcast_ref::<grove_client::Error>();
            let code = client_err.map(grove_client::Error::code).unwrap_or("error");
            let line = format!("{e:#}").replace('\n', " ");
            if json_mode {
                let mut out = json!({ "error": line, "code": code });
                if let Some(grove_client::Error::Server { code: server_code, .. }) = client_err {
                    out["server_code"] = json!(server_code.as_str());
                }
                println!("{out}");
            } else {
                eprintln!("grove: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

struct Out {
    text: String,
    json: Value,
}

fn home(cli_home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(h) = cli_home {
        return Ok(h);
    }
    let base = std::env::var_os("HOME").context("no --home, GROVE_HOME or HOME")?;
    Ok(PathBuf::from(base).join(".grove"))
}

async fn run(cli: Cli) -> anyhow::Result<Out> {
    match cli.cmd {
        Cmd::Demo => return demo::run(cli.json).await,
        Cmd::Audit { server, from, progress, ca_cert, server_cert_sha256 } => {
            return audit::run(&server, trust_of(ca_cert, server_cert_sha256)?, from, progress, cli.json).await
        }
        _ => {}
    }
    let home = home(cli.home)?;
    let key = store_key(cli.store_key_file.as_deref())?;
    let open = |home: &Path| Client::open_with_key(home, key.clone());
    let out = match cli.cmd {
        Cmd::Init { user, connect, link, device_name } => {
            let mut config = connect.config(user)?;
            config.store_key = key.clone();
            if link {
                return device::init_link(&home, config, &device_name).await;
            }
            let c = Client::create(&home, config).await?;
            let w = c.whoami();
            Out {
                text: format!("initialised {} at {} (fingerprint {})", w.user, w.server, w.fingerprint),
                json: json!({ "user": w.user, "server": w.server, "fingerprint": w.fingerprint, "ciphersuite": w.ciphersuite, "home": home.display().to_string() }),
            }
        }
        Cmd::Whoami => {
            let w = open(&home)?.whoami();
            Out {
                text: format!("user: {}\nserver: {}\nfingerprint: {}", w.user, w.server, w.fingerprint),
                json: json!({ "user": w.user, "server": w.server, "fingerprint": w.fingerprint, "ciphersuite": w.ciphersuite }),
            }
        }
        Cmd::Group(g) => group_cmd(open(&home)?, g).await?,
        Cmd::Resource(r) => {
            resource::check(&r, cli.json)?;
            resource::run(open(&home)?, r, cli.json).await?
        }
        Cmd::Send { group, message, file } => {
            let text = match (message, file) {
                (Some(m), _) => m,
                (None, Some(f)) => std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
                (None, None) => anyhow::bail!("give a message or --file"),
            };
            let c = open(&home)?;
            // Catch up first, so members added meanwhile can read the message.
            c.sync().await?;
            let seq = c.send(&group, &text).await?;
            Out { text: format!("sent (seq {seq})"), json: json!({ "group": group, "seq": seq }) }
        }
        Cmd::Sync => {
            // A new device waiting to be linked completes the link first.
            let (c, linked) = open(&home)?.finish_link().await?;
            let r = c.sync().await?;
            let mut text = sync_summary(&r);
            let mut json = serde_json::to_value(&r)?;
            if let Some(l) = linked {
                text = format!("linked: this is device {} (joined {} group(s))\n{text}", l.device, l.joined.len());
                for f in &l.failed {
                    text.push_str(&format!("\ncould not join {f}"));
                }
                json["linked"] = serde_json::to_value(&l)?;
            }
            Out { text, json }
        }
        Cmd::Read { group } => read_group(&open(&home)?, &group)?,
        Cmd::Verify { user, confirm } => {
            let c = open(&home)?;
            let s = c.verify(&user, confirm).await?;
            let mut text = format!("safety number with {}:\n{}", s.user, s.number);
            if s.verified {
                text.push_str(&format!("\n{} is verified", s.user));
            }
            Out { text, json: serde_json::to_value(&s)? }
        }
        Cmd::Trust { user, accept_new_key: _ } => {
            let c = open(&home)?;
            let info = c.trust_new_key(&user).await?;
            Out {
                text: format!("{} is now pinned to {} (not verified)", info.user, info.fingerprint),
                json: serde_json::to_value(&info)?,
            }
        }
        Cmd::Contact(cc) => contact_cmd(open(&home)?, cc, cli.json).await?,
        Cmd::Identity(IdentityCmd::Backup { out, passphrase_file }) => {
            let pass = read_passphrase(&passphrase_file)?;
            let c = open(&home)?;
            let bytes = c.identity_backup(&pass)?;
            write_private(&out, &bytes)?;
            let fp = c.whoami().fingerprint;
            Out {
                text: format!("identity {fp} and its contact pins written to {}", out.display()),
                json: json!({ "out": out.display().to_string(), "fingerprint": fp }),
            }
        }
        Cmd::Device(d) => device::run(open(&home)?, d, cli.json).await?,
        Cmd::Identity(IdentityCmd::Reset { login_token, yes }) => {
            device::reset(open(&home)?, login_token, yes, cli.json).await?
        }
        Cmd::Identity(IdentityCmd::Restore { file, passphrase_file, connect, device_name }) => {
            let pass = read_passphrase(&passphrase_file)?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let backup = grove_client::open_identity_backup(&bytes, &pass)?;
            let mut config = connect.config(backup.user.clone())?;
            config.store_key = key.clone();
            device::restore(&home, config, &backup, &device_name).await?
        }
        Cmd::Demo | Cmd::Audit { .. } => anyhow::bail!("internal: demo and audit run without a home"),
    };
    Ok(out)
}

/// The store key in `path` (32 raw bytes, or 64 hex digits and a newline).
fn store_key(path: Option<&Path>) -> anyhow::Result<Option<grove_client::StoreKey>> {
    let Some(path) = path else { return Ok(None) };
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    let text = std::str::from_utf8(&bytes).ok().map(str::trim).filter(|t| t.len() == 64);
    let raw = match text.map(hex::decode) {
        Some(Ok(decoded)) => zeroize::Zeroizing::new(decoded),
        _ => bytes.clone(),
    };
    grove_client::StoreKey::from_bytes(&raw).map(Some).map_err(|_| {
        anyhow::anyhow!(
            "{}: a store key file holds 32 bytes or 64 hex digits (make one with `head -c 32 /dev/urandom`)",
            path.display()
        )
    })
}

/// How the DS's certificate is checked, from the `--ca-cert` and
/// `--server-cert-sha256` flags.
fn trust_of(ca_cert: Option<PathBuf>, server_cert_sha256: Option<String>) -> anyhow::Result<TrustMode> {
    Ok(match (ca_cert, server_cert_sha256) {
        (Some(path), _) => {
            TrustMode::CaPem(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
        }
        (None, Some(fp)) => TrustMode::pinned_hex(&fp)?,
        (None, None) => TrustMode::SystemRoots,
    })
}

/// The first line of a passphrase file (without its line end).
fn read_passphrase(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the passphrase file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// Writes `bytes` to a new owner-only file beside `path`, then renames it
/// over `path`, so a crash leaves the old file or the new one, never half.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

async fn contact_cmd(c: Client, cc: ContactCmd, json_mode: bool) -> anyhow::Result<Out> {
    Ok(match cc {
        ContactCmd::Export => {
            let code = c.contact_code();
            let w = c.whoami();
            let mut text = code.clone();
            // The QR code only for a person at a terminal: scripts read line one.
            if !json_mode && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                let qr = qrcode::QrCode::new(code.as_bytes()).context("drawing the QR code")?;
                text.push('\n');
                text.push_str(&qr.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
            }
            Out { text, json: json!({ "code": code, "user": w.user, "fingerprint": w.fingerprint }) }
        }
        ContactCmd::Import { code } => {
            let info = c.import_contact(&code).await?;
            Out {
                text: format!("{} is pinned to {} and verified", info.user, info.fingerprint),
                json: serde_json::to_value(&info)?,
            }
        }
    })
}

async fn group_cmd(c: Client, g: GroupCmd) -> anyhow::Result<Out> {
    Ok(match g {
        GroupCmd::AckFork { group } => {
            let had = c.acknowledge_fork(&group).await?;
            let text = if had { "fork acknowledged" } else { "no fork to acknowledge" };
            Out { text: format!("{group}: {text}"), json: json!({ "group": group, "acknowledged": had }) }
        }
        GroupCmd::AckRollback { group } => {
            let had = c.acknowledge_rollback(&group).await?;
            let text = if had { "rollback acknowledged" } else { "no rollback to acknowledge" };
            Out { text: format!("{group}: {text}"), json: json!({ "group": group, "acknowledged": had }) }
        }
        GroupCmd::Policy { group, update_days, update_messages } => {
            group_policy(&c, &group, update_days, update_messages)?
        }
        GroupCmd::Successor { group, without, yes } => group_successor(&c, &group, &without, yes).await?,
        GroupCmd::Create { name, history } => {
            let id = c.create_group_with(&name, history).await?;
            Out {
                text: format!("created {name} ({id}), history policy {}", history.as_str()),
                json: json!({ "id": id, "name": name, "epoch": 0, "history": history.as_str() }),
            }
        }
        GroupCmd::Add { group, users } => {
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            let o = c.add_members(&group, &users).await?;
            Out { text: format!("added {} (epoch {})", users.join(", "), o.epoch), json: serde_json::to_value(&o)? }
        }
        GroupCmd::Remove { group, users } => {
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            let o = c.remove_members(&group, &users).await?;
            Out { text: format!("removed {} (epoch {})", users.join(", "), o.epoch), json: serde_json::to_value(&o)? }
        }
        GroupCmd::Leave { group } => {
            c.leave(&group).await?;
            Out {
                text: format!("asked to leave {group}; another member commits it on their next sync"),
                json: json!({ "group": group, "state": "leaving" }),
            }
        }
        GroupCmd::Members { group } => {
            let ms = c.members(&group)?;
            let text = ms
                .iter()
                .map(|m| {
                    let devices = if m.devices > 1 { format!(", {} devices", m.devices) } else { String::new() };
                    format!(
                        "{} (leaf {}, {}, {:?}{devices})",
                        m.user,
                        m.leaf_index,
                        m.fingerprint.get(..16).unwrap_or_default(),
                        m.key
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Out { text, json: json!({ "group": group, "members": ms }) }
        }
        GroupCmd::List => {
            let gs = c.groups()?;
            let text = gs
                .iter()
                .map(|g| {
                    let replaced = g.successor.as_ref().map(|s| format!(" (replaced by {s})")).unwrap_or_default();
                    format!(
                        "{} ({}) epoch {} members {} {}{replaced}",
                        g.name.as_deref().unwrap_or("<unnamed>"),
                        g.id,
                        g.epoch,
                        g.members,
                        g.state.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Out { text, json: json!({ "groups": gs }) }
        }
    })
}

/// `grove read`: the group's messages in log order, and a fork if one was seen.
fn read_group(c: &Client, group: &str) -> anyhow::Result<Out> {
    let msgs = c.messages(group)?;
    let mut text = msgs
        .iter()
        .map(|m| {
            let seq = m.seq.map_or_else(|| "unsent".to_owned(), |s| s.to_string());
            format!("[{seq}] {}: {}", m.sender, m.text)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let fork = c.fork(group)?;
    if let Some(f) = &fork {
        text.push_str(&format!(
            "\nfork_detected: epoch {} (log entry {}): members were shown different histories; \
             sending is stopped until `grove group ack-fork {group}`",
            f.epoch, f.seq
        ));
    }
    let fork = fork.map(|f| json!({ "type": "fork_detected", "epoch": f.epoch, "seq": f.seq, "members": f.members }));
    Ok(Out { text, json: json!({ "group": group, "messages": msgs, "fork_detected": fork }) })
}

/// `grove group policy`: shows, and with a flag sets, the self-update policy.
fn group_policy(
    c: &Client,
    group: &str,
    update_days: Option<u64>,
    update_messages: Option<u64>,
) -> anyhow::Result<Out> {
    let mut status = c.update_policy(group)?;
    let set = update_days.is_some() || update_messages.is_some();
    if set {
        let mut policy = status.policy;
        if let Some(days) = update_days {
            policy.max_age_secs = days.checked_mul(24 * 3600).context("--update-days is too large")?;
        }
        policy.max_messages = update_messages.unwrap_or(policy.max_messages);
        status = c.set_update_policy(group, policy)?;
    }
    let p = status.policy;
    let limit = |n: u64, unit: &str| if n == 0 { "never".to_owned() } else { format!("{n} {unit}") };
    Ok(Out {
        text: format!(
            "{group}: update the own leaf after {} or {}, whichever comes first; leaf age {} s, {} message(s) since{}",
            match p.max_age_secs {
                s if s % (24 * 3600) == 0 => limit(s / (24 * 3600), "day(s)"),
                s => format!("{s} s"),
            },
            limit(p.max_messages, "message(s)"),
            status.leaf_age_secs,
            status.sent_since_update,
            if status.due { "; due on the next send or sync" } else { "" }
        ),
        json: json!({
            "group": status.group,
            "update_after_secs": p.max_age_secs,
            "update_after_messages": p.max_messages,
            "leaf_age_secs": status.leaf_age_secs,
            "sent_since_update": status.sent_since_update,
            "due": status.due,
            "set": set,
        }),
    })
}

/// `grove group successor`: confirms (unless `--yes`), then creates it.
async fn group_successor(c: &Client, group: &str, without: &[String], yes: bool) -> anyhow::Result<Out> {
    use std::io::IsTerminal as _;
    if !yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("creating a successor of {group} needs confirmation: pass --yes");
        }
        let left_out = if without.is_empty() { "nobody".to_owned() } else { without.join(", ") };
        eprint!("Create a new group replacing {group}, with its members except {left_out}? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            anyhow::bail!("not confirmed: nothing was created");
        }
    }
    let without: Vec<&str> = without.iter().map(String::as_str).collect();
    let s = c.create_successor(group, &without).await?;
    Ok(Out {
        text: format!("created {} replacing {} with {}", s.group, s.predecessor, s.members.join(", ")),
        json: serde_json::to_value(&s)?,
    })
}

/// `grove sync`'s one-line summary; skipped entries only when there are any.
fn sync_summary(r: &grove_client::SyncReport) -> String {
    let mut text = format!(
        "joined {} group(s), {} new message(s), left {} group(s), {} commit(s) made for pending proposals",
        r.joined.len(),
        r.messages,
        r.left.len(),
        r.proposals_committed
    );
    for (n, what) in [
        (r.undecryptable, "undecryptable entries skipped"),
        (r.unknown_format, "messages in an unknown format skipped"),
        (r.failed_welcomes, "Welcomes that could not be processed"),
    ] {
        if n > 0 {
            text.push_str(&format!(", {n} {what}"));
        }
    }
    for g in &r.self_updated {
        text.push_str(&format!("\nupdated the own leaf in {g} (self-update policy)"));
    }
    for b in &r.bad_commits {
        text.push_str(&format!(
            "\nbad_commit: {b} (reported to the DS; if it repeats, remove that member with `grove remove`)"
        ));
    }
    for s in &r.successors {
        text.push_str(&format!("\nsuccessor: {s}"));
    }
    for rs in &r.resynced {
        text.push_str(&format!("\n{rs}: {}", rs.reason));
    }
    for f in &r.forks {
        text.push_str(&format!(
            "\nfork_detected: {f} (see `grove read`; acknowledge with `grove group ack-fork <group>`)"
        ));
    }
    for rb in &r.rollbacks {
        text.push_str(&format!("\nserver_rollback: {rb} (acknowledge with `grove group ack-rollback <group>`)"));
    }
    for a in &r.key_transparency_alerts {
        text.push_str(&format!(
            "\nkey_transparency_alert: {a} (someone published a key or device list in your name: check `grove \
             device list`, and tell the operator)"
        ));
    }
    for v in &r.split_views {
        text.push_str(&format!("\nsplit_view: {v} (the DS shows members different key directories)"));
    }
    for e in &r.errors {
        text.push_str(&format!("\nerror: {e}"));
    }
    text
}
