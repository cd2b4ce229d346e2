//! The command line: argument definitions, context resolution and exit codes.
//!
//! Handlers live in one file per area; this module only parses, resolves the config and
//! root, runs the handler and turns its error into a message and an exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::disk::layout::AppRoot;
use crate::error::{ErrorClass, UsageError};
use crate::registry::names::{AppName, Channel, Target, Version};

/// `println!` for the reader of stdout: returns an error to pass on with `?` when the
/// reader went away (see `output`).
macro_rules! outln {
    () => { $crate::cli::output::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), true) };
}

/// `print!` for the reader of stdout (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*), false) };
}

/// `eprintln!` that never panics: diagnostics are best effort.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::output::diag(format_args!($($arg)*)) };
}

/// A [`UsageError`] (exit 2) as an `anyhow::Error`, formatted like `format!`.
macro_rules! usage {
    ($($arg:tt)*) => { anyhow::Error::from($crate::error::UsageError(format!($($arg)*))) };
}

mod agent;
mod demo;
mod docs;
mod doctor;
mod fleet;
mod json;
mod keys;
mod logging;
mod output;
mod pack;
mod publish;
mod store;

/// Exit codes scripts can rely on (documented in README "Exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    /// Any failure not listed below.
    pub const ERROR: u8 = 1;
    /// Bad command line or config file.
    pub const USAGE: u8 = 2;
    /// Another updraft operation holds the lock.
    pub const BUSY: u8 = 3;
    /// The new release failed its checks and was rolled back (and blocked).
    pub const ROLLED_BACK: u8 = 4;
    /// A signature, checksum, size or freshness check failed: nothing was changed.
    pub const VERIFY: u8 = 5;
    /// Asked-for release or document does not exist.
    pub const NOT_FOUND: u8 = 6;
    /// `promote --require-healthy`: the health gate was not met; nothing moved.
    pub const GATE_NOT_MET: u8 = 7;
    /// `guard`: the channel's version failed on too many machines and guard acted
    /// (halted or yanked), so a CI schedule can alert.
    pub const GUARD_ACTED: u8 = 8;
    /// `check`: an update is available.
    pub const UPDATE_AVAILABLE: u8 = 10;
    /// `check`: behind the channel because the channel's version failed here and is
    /// blocked (state `failed`); stays so until the channel moves or `updraft unblock`.
    pub const BLOCKED_HERE: u8 = 11;
}

#[derive(Debug, Parser)]
#[command(
    name = "updraft",
    version,
    about = "Pull-based release updater: signed registries, atomic activation, health checks, automatic rollback",
    long_about = "updraft keeps an app root (/opt/<app>) on a signed release channel.\n\n\
        Releases are unpacked into releases/<version>/ and activated by atomically switching \
        the releases/current symlink; services are restarted and health-checked, and a \
        release that fails is rolled back and blocked.\n\n\
        Operators: deploy, rollback, list, status, prune, pin, unblock, why.\n\
        Agents: check, update (for a systemd timer), agent (daemon).\n\
        CI: keygen, pack, publish, promote, yank, unyank, refresh, registry verify, fleet status, guard, rollout resume.\n\
        Try it: updraft demo"
)]
pub struct Cli {
    /// TOML config file (see README "Configuration"). Optional for push-mode commands.
    #[arg(long, global = true, env = "UPDRAFT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// App root (default: `root` from the config, else /opt/<app>).
    #[arg(long, global = true, env = "UPDRAFT_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log format: auto (text on a terminal, JSON under systemd), text or json.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log more (repeat for more detail); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install a release tarball and activate it (push mode).
    Deploy(DeployArgs),
    /// Switch back to an installed release (default: the previous one).
    Rollback(RollbackArgs),
    /// List installed releases.
    List(JsonArgs),
    /// Show current, previous, pinned and blocked versions and the last operation.
    Status(JsonArgs),
    /// Remove old releases, keeping the newest N (current, previous and pinned are kept).
    Prune(PruneArgs),
    /// Poll the registry once and report what `update` would do (exit 10: update
    /// available; 11: behind because the channel's version is blocked here).
    Check(JsonArgs),
    /// Poll the registry once and apply what the channel says (run by updraft.timer).
    Update,
    /// Run as a daemon: poll every `interval` (with jitter) until SIGTERM.
    Agent,
    /// Hold this machine on a version whatever the channel says.
    Pin(VersionArg),
    /// Release a pin: follow the channel again.
    Unpin,
    /// Allow a version that failed its health checks to be tried again.
    Unblock(VersionArg),
    /// Explain why this machine runs what it runs.
    Why(JsonArgs),
    /// Check this machine's setup without changing anything: config, keys, app root,
    /// registry, the channel's signature and expiry, this target's artifact, the
    /// commands and units an activation runs, and the clock. Exit 0 when no check
    /// failed (warnings pass), 1 otherwise.
    Doctor(JsonArgs),
    /// Show the whole flow on a throw-away registry and app root (no setup needed).
    Demo(DemoArgs),
    /// Create a minisign-compatible key pair for signing releases.
    Keygen(KeygenArgs),
    /// Build a reproducible release tarball from a directory.
    Pack(PackArgs),
    /// Upload a release artifact, sign its release document, and optionally set a channel.
    Publish(PublishArgs),
    /// Point a channel at an existing release (re-signed; artifacts are not copied).
    Promote(PromoteArgs),
    /// Quarantine a version fleet-wide by listing it as yanked in a channel.
    Yank(YankArgs),
    /// Take a version off a channel's yanked list (machines may run it again).
    Unyank(UnyankArgs),
    /// Re-sign a channel document unchanged with a new expiry (run it on a schedule).
    Refresh(RefreshArgs),
    /// Registry maintenance.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// The app's signed keys document: which publisher keys agents that pin root keys
    /// trust (see README "Signing keys and rotation").
    #[command(subcommand)]
    Keys(KeysCommand),
    /// What the fleet's machine reports say (see README "Operating a fleet").
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Halt (or yank) a channel's version when too many machines report it failed
    /// (exit 8 when it acted, 0 when nothing needed doing).
    Guard(GuardArgs),
    /// Change a channel's staged rollout.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Serve a registry directory over HTTP on loopback (for demos and tests).
    Serve(ServeArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) on stdout, or write one page per command with --dir.
    Man(docs::ManArgs),
}

impl Command {
    /// Whether the caller asked for `--json`: then a failure is a JSON document too.
    /// Exhaustive on purpose: a new command decides whether it has JSON output.
    pub fn json(&self) -> bool {
        match self {
            Command::Deploy(a) => a.json,
            Command::Rollback(a) => a.json,
            Command::List(a)
            | Command::Status(a)
            | Command::Check(a)
            | Command::Why(a)
            | Command::Doctor(a) => a.json,
            Command::Prune(a) => a.json,
            Command::Registry(RegistryCommand::Verify(a)) => a.json,
            Command::Fleet(FleetCommand::Status(a)) => a.json,
            Command::Guard(a) => a.json,
            Command::Refresh(a) => a.json,
            Command::Update
            | Command::Agent
            | Command::Pin(_)
            | Command::Unpin
            | Command::Unblock(_)
            | Command::Demo(_)
            | Command::Keygen(_)
            | Command::Keys(_)
            | Command::Pack(_)
            | Command::Publish(_)
            | Command::Promote(_)
            | Command::Yank(_)
            | Command::Unyank(_)
            | Command::Rollout(_)
            | Command::Serve(_)
            | Command::Completions(_)
            | Command::Man(_) => false,
        }
    }
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print machine-readable JSON with a stable shape.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VersionArg {
    pub version: Version,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Version to install: a semantic version (a leading 'v' is accepted) or a label such as a git hash or a timestamp.
    #[arg(long)]
    pub version: Version,
    /// Local release tarball (.tar.gz).
    #[arg(
        long,
        value_name = "P",
        conflicts_with = "artifact_url",
        required_unless_present = "artifact_url"
    )]
    pub artifact_path: Option<PathBuf>,
    /// Release tarball URL (http:// or https://).
    #[arg(long, value_name = "U")]
    pub artifact_url: Option<String>,
    /// Expected sha256 of the tarball (hex); the deploy is refused on mismatch.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Replace an installed release of the same version whose bytes differ.
    #[arg(long)]
    pub force: bool,
    /// Install even if the tarball's root VERSION file names another version.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// The data format this release needs: data/ is snapshotted before it raises the
    /// epoch, and restored when going back (default: as recorded, else 0).
    #[arg(long, value_name = "N")]
    pub data_epoch: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Version to switch to (default: the previous release).
    #[arg(long)]
    pub version: Option<Version>,
    /// Roll back across a data epoch without a snapshot to restore: the code only, the
    /// data stays as it is (restore it by hand first).
    #[arg(long)]
    pub force_data: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Releases to keep (default: `keep` from the config, else 5).
    #[arg(long)]
    pub keep: Option<usize>,
    /// Show what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's registry and app root in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (mode 0600; keep it in a CI secret, never in git).
    #[arg(long, value_name = "F")]
    pub secret_key: PathBuf,
    /// Where to write the public key (its second line goes in agents' public_keys).
    #[arg(long, value_name = "F")]
    pub public_key: PathBuf,
    /// Encrypt the secret key with the password in this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Directory holding the release contents (bin/, assets/, ...).
    pub dir: PathBuf,
    /// Version to pack, semantic or a label such as a git hash (written to the tarball's VERSION file).
    #[arg(long)]
    pub version: Version,
    /// Tarball to write (.tar.gz).
    #[arg(long, value_name = "F")]
    pub output: PathBuf,
}

/// Where the signing key comes from: a file, or an environment variable holding the
/// key file's contents (a CI secret).
#[derive(Debug, Args, Clone)]
pub struct SecretKeyArgs {
    /// minisign secret key file.
    #[arg(long, value_name = "F", required_unless_present = "secret_key_env")]
    pub secret_key: Option<PathBuf>,
    /// Environment variable holding the secret key file's contents.
    #[arg(long, value_name = "VAR")]
    pub secret_key_env: Option<String>,
    /// Environment variable holding the secret key's password (if it has one).
    #[arg(long, value_name = "VAR", default_value = "UPDRAFT_KEY_PASSWORD")]
    pub password_env: String,
    /// Also accept existing registry documents signed by this public key (repeat; for
    /// key rotation). Documents signed by the --secret-key itself are always accepted.
    #[arg(long, value_name = "F")]
    pub trusted_key: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/channels/, <app>/releases/).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Version of the release: a semantic version (a leading 'v' is accepted) or a label such as a git hash or a timestamp.
    #[arg(long, value_name = "V")]
    pub version: Version,
    /// Release tarball; repeat with --target for several targets.
    #[arg(long, value_name = "F", required = true)]
    pub artifact: Vec<PathBuf>,
    /// Target of each --artifact, in order (default: this machine's): <arch>-<os>, e.g.
    /// x86_64-linux or aarch64-linux.
    #[arg(long, value_name = "T")]
    pub target: Vec<Target>,
    /// Accept a --target whose arch or os updraft does not know.
    #[arg(long)]
    pub allow_target: bool,
    /// Publish even if an artifact's root VERSION file names another version.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// Also point this channel at the new release.
    #[arg(long, value_name = "C")]
    pub channel: Option<Channel>,
    /// Release notes.
    #[arg(long)]
    pub notes: Option<String>,
    /// Staged rollout: share of the fleet (0-100) that may take it.
    #[arg(long, value_name = "PERCENT")]
    pub rollout: Option<u8>,
    /// Channel document validity, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    /// Data format the release needs: machines snapshot data/ before activating a
    /// higher epoch (default: the epoch of the release --channel runs now, else 0).
    #[arg(long, value_name = "N")]
    pub data_epoch: Option<u64>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/channels/, <app>/releases/).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Release to point the channel at. With --from: exactly this version, refused
    /// (exit 7) if the source channel now holds another one.
    #[arg(long, value_name = "V", required_unless_present = "from")]
    pub version: Option<Version>,
    /// Take the version another channel points at.
    #[arg(long, value_name = "C1")]
    pub from: Option<Channel>,
    /// Health gate: promote only if at least PCT percent of the --from channel's machines
    /// that reported on the version are healthy on it (exit 7 otherwise, nothing moved).
    #[arg(long, value_name = "PCT", requires = "from", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub require_healthy: Option<u8>,
    /// Health gate: at least N machines healthy on the version (default 1).
    #[arg(long, value_name = "N", requires = "require_healthy", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_machines: Option<u64>,
    /// Health gate: count a machine only once it has run the version this long, e.g. 1h.
    #[arg(long, value_name = "DURATION", requires = "require_healthy")]
    pub soak: Option<String>,
    /// Channel to move.
    #[arg(long, value_name = "C2")]
    pub channel: Channel,
    /// Staged rollout: share of the fleet (0-100) that may take it.
    #[arg(long, value_name = "PERCENT")]
    pub rollout: Option<u8>,
    /// Time-based waves, e.g. "0s=10,1h=50,1d=100" (from publish time + offset, that share).
    #[arg(long, value_name = "WAVES", conflicts_with = "rollout")]
    pub waves: Option<String>,
    /// Channel document validity, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Args)]
pub struct YankArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/channels/, <app>/releases/).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Channel whose document lists the yanked version (machines on it leave it).
    #[arg(long, value_name = "C")]
    pub channel: Channel,
    /// Version no machine on the channel may run.
    #[arg(long, value_name = "V")]
    pub version: Version,
    /// Why it is yanked (shown by `updraft why` on every machine).
    #[arg(long)]
    pub reason: Option<String>,
    /// Channel document validity, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Args)]
pub struct UnyankArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/channels/, <app>/releases/).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Channel whose yanked list holds the version.
    #[arg(long, value_name = "C")]
    pub channel: Channel,
    /// Version machines on the channel may run again.
    #[arg(long, value_name = "V")]
    pub version: Version,
    /// Channel document validity, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/channels/, <app>/releases/).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Channel to re-sign.
    #[arg(long, value_name = "C")]
    pub channel: Channel,
    /// New validity from now, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION", alias = "expires-in")]
    pub expires: Option<String>,
    /// Print the new document's facts as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Versions, states, stale machines and failure reasons, per channel, from reports.
    Status(FleetStatusArgs),
}

#[derive(Debug, Args)]
pub struct FleetStatusArgs {
    /// Registry holding the reports: file:///path or s3://bucket/prefix (reports are
    /// listed, which plain HTTP cannot do).
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/fleet/<channel>/<machine>.json).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Only this channel.
    #[arg(long, value_name = "C")]
    pub channel: Option<Channel>,
    /// A machine whose last report is older than this is stale, e.g. 24h (default).
    #[arg(long, value_name = "DURATION")]
    pub stale: Option<String>,
    /// Also list every machine (id, hostname, version, state, last seen).
    #[arg(long)]
    pub machines: bool,
    /// Print machine-readable JSON with a stable, versioned shape.
    #[arg(long)]
    pub json: bool,
}

/// What `guard` does when the channel's version fails on too many machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GuardAction {
    /// Freeze the rollout at its current share (rollout.halted).
    Halt,
    /// Yank the version and point the channel back at what its machines ran before.
    Yank,
}

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout.
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Channel to watch.
    #[arg(long, value_name = "C")]
    pub channel: Channel,
    /// Act when more than PCT percent of the machines that tried the channel's version
    /// report it failed (rolled back or blocked).
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_failed: u8,
    /// Judge only when at least N machines tried the version (default 3).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub min_reports: u64,
    /// What to do: halt (default) or yank.
    #[arg(long, value_enum, default_value_t = GuardAction::Halt)]
    pub action: GuardAction,
    /// Say what would be done, write nothing (exit codes as if it had acted).
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was seen and done as JSON.
    #[arg(long)]
    pub json: bool,
    /// Channel document validity, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Clear a halt: the rollout widens again as planned.
    Resume(RolloutResumeArgs),
}

#[derive(Debug, Args)]
pub struct RolloutResumeArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout.
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Channel whose rollout to resume.
    #[arg(long, value_name = "C")]
    pub channel: Channel,
    /// Channel document validity, e.g. 30d or 12h (default 30d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub key: SecretKeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create <app>/keys.json version 1: root keys, threshold and publisher keys,
    /// signed by the root keys given with --root-secret-key.
    Init(KeysInitArgs),
    /// Trust one more publisher key (a new version, signed by the root keys).
    Add(KeysAddArgs),
    /// Stop trusting a publisher key on every agent that pins the root keys.
    Revoke(KeysRevokeArgs),
    /// Replace the root keys (signed by the threshold of the current ones).
    RotateRoot(KeysRotateRootArgs),
    /// Publish the same keys again with a new expiry.
    Renew(KeysCommonArgs),
}

#[derive(Debug, Args)]
pub struct KeysCommonArgs {
    /// Registry: file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name.
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// A root secret key that signs the new version (repeat up to the threshold of the
    /// current root keys; for init, of the new ones).
    #[arg(long, value_name = "F", required = true)]
    pub root_secret_key: Vec<PathBuf>,
    /// Environment variable holding the root secret keys' password (if they have one).
    #[arg(long, value_name = "VAR", default_value = "UPDRAFT_KEY_PASSWORD")]
    pub password_env: String,
    /// How long the new version stays valid (default 365d); agents refuse it after.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysInitArgs {
    #[command(flatten)]
    pub common: KeysCommonArgs,
    /// A further root key (.pub) that does not sign now (repeat).
    #[arg(long, value_name = "F")]
    pub root_public_key: Vec<PathBuf>,
    /// How many root keys must sign each next version.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub root_threshold: u32,
    /// A publisher key (.pub) trusted for channel and release documents (repeat).
    #[arg(long, value_name = "F", required = true)]
    pub key: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysAddArgs {
    #[command(flatten)]
    pub common: KeysCommonArgs,
    /// The publisher key (.pub) to trust.
    #[arg(long, value_name = "F")]
    pub key: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    #[command(flatten)]
    pub common: KeysCommonArgs,
    /// The publisher key to stop trusting: its .pub file or its key id.
    #[arg(long, value_name = "F|ID")]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct KeysRotateRootArgs {
    #[command(flatten)]
    pub common: KeysCommonArgs,
    /// A new root key (.pub); repeat. Replaces the current root keys.
    #[arg(long, value_name = "F", required = true)]
    pub new_root_key: Vec<PathBuf>,
    /// How many of the new root keys must sign each next version.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub new_root_threshold: u32,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Audit a registry: every signature, checksum and size.
    Verify(RegistryVerifyArgs),
}

#[derive(Debug, Args)]
pub struct RegistryVerifyArgs {
    /// Registry: file:///path or s3://bucket/prefix (an audit lists it, which plain HTTP cannot).
    #[arg(long, value_name = "R")]
    pub registry: String,
    /// App name, as in the registry layout (<app>/channels/, <app>/releases/).
    #[arg(long, value_name = "A")]
    pub app: AppName,
    /// Trusted public key file; repeat for several.
    #[arg(long, value_name = "F", required = true)]
    pub public_key: Vec<PathBuf>,
    /// Fail (exit 5) when a channel document expires sooner than this, e.g. 7d: the
    /// alarm before agents start refusing it.
    #[arg(long, value_name = "DURATION")]
    pub min_valid: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory to serve.
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// What every handler gets: the parsed config (empty if none) and where it came from.
pub struct Ctx {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub root_flag: Option<PathBuf>,
}

impl Ctx {
    /// The app root: `--root`/`UPDRAFT_ROOT`, else `root` in the config, else /opt/<app>.
    /// `/`, an empty path and system directories are refused (`disk::layout::check_root`).
    pub fn app_root(&self) -> anyhow::Result<AppRoot> {
        let (root, from) = if let Some(r) = &self.root_flag {
            (r.clone(), "--root or UPDRAFT_ROOT")
        } else if let Some(r) = &self.config.root {
            (r.clone(), "`root` in the config")
        } else if let Some(app) = &self.config.app {
            (PathBuf::from(format!("/opt/{app}")), "the app name")
        } else {
            return Err(UsageError(
                "no app root given: pass --root DIR, set UPDRAFT_ROOT, or set `root` (or `app`) in the config file".into(),
            )
            .into());
        };
        let resolved = std::fs::canonicalize(if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &root
        })
        .ok();
        crate::disk::layout::check_root(&root, resolved.as_deref()).map_err(|e| {
            anyhow::Error::new(e).context(format!("refusing the app root from {from}"))
        })?;
        Ok(AppRoot::new(root))
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version: what was asked for, on stdout.
            let _ = e.print();
            return ExitCode::from(exit::OK);
        }
        Err(e) => {
            // Not parsed, so look for --json the way a script would have written it.
            let json = std::env::args_os()
                .take_while(|a| a != "--")
                .any(|a| a == "--json");
            if json {
                let message = e.render().to_string();
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                return fail(true, exit::USAGE, ErrorClass::Usage, message.trim_end());
            }
            let _ = e.print();
            return ExitCode::from(exit::USAGE);
        }
    };
    let json = cli.command.json();
    let config = match &cli.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => return fail(json, exit::USAGE, ErrorClass::Usage, &e.to_string()),
        },
        None => Config::default(),
    };
    // The command line wins over the config file, as for every other setting.
    let log_format = cli.log_format.as_deref().or(config.log_format.as_deref());
    crate::cli::logging::init(log_format, cli.verbose);
    let ctx = Ctx {
        config,
        config_path: cli.config.clone(),
        root_flag: cli.root.clone(),
    };
    let rt = match runtime(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start async runtime: {e}");
            return fail(json, exit::ERROR, ErrorClass::Other, &message);
        }
    };
    match rt.block_on(dispatch(&ctx, cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if output::is_stdout_closed(&e) => ExitCode::from(output::EXIT_STDOUT_CLOSED),
        Err(e) => {
            let class = crate::error::classify(e.as_ref());
            fail(json, exit_code_for(class), class, &render_error(&e))
        }
    }
}

/// The polls a timer runs every few minutes (`update`, `check`) do one thing at a time:
/// they run on the calling thread, without worker threads (or the cgroup files read to
/// count CPUs for them), a measurable share of a poll that finds nothing new. Blocking
/// work still goes to the blocking pool. Everything else gets a worker per CPU.
fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match command {
        Command::Update | Command::Check(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// Report a failure: on stderr, and with `--json` also as the documented error object
/// on stdout (README "JSON output"), so a script reads one shape whatever happened.
fn fail(json: bool, code: u8, class: ErrorClass, message: &str) -> ExitCode {
    // The one report of the failure (the library does not log it as well): at the
    // error priority when it goes to the journal.
    errln!(
        "{}error: {message}",
        crate::cli::logging::priority_prefix(3)
    );
    if json {
        // A reader that went away cannot be told anything more.
        let _ = output::write(
            format_args!("{}", json::error_document(code, class, message)),
            true,
        );
    }
    ExitCode::from(code)
}

async fn dispatch(ctx: &Ctx, cmd: Command) -> anyhow::Result<u8> {
    match cmd {
        Command::Deploy(a) => store::deploy(ctx, a).await,
        Command::Rollback(a) => store::rollback(ctx, a).await,
        Command::List(a) => store::list(ctx, a),
        Command::Status(a) => store::status(ctx, a),
        Command::Prune(a) => store::prune(ctx, a).await,
        Command::Check(a) => agent::check(ctx, a).await,
        Command::Update => agent::update(ctx).await,
        Command::Agent => agent::daemon(ctx).await,
        Command::Pin(a) => agent::pin(ctx, a).await,
        Command::Unpin => agent::unpin(ctx).await,
        Command::Unblock(a) => agent::unblock(ctx, a).await,
        Command::Why(a) => agent::why(ctx, a).await,
        Command::Doctor(a) => doctor::doctor(ctx, a).await,
        Command::Demo(a) => agent::demo(ctx, a).await,
        Command::Keygen(a) => publish::keygen(ctx, a),
        Command::Pack(a) => pack::pack(ctx, a),
        Command::Publish(a) => publish::publish(ctx, a).await,
        Command::Promote(a) => publish::promote(ctx, a).await,
        Command::Yank(a) => publish::yank(ctx, a).await,
        Command::Unyank(a) => publish::unyank(ctx, a).await,
        Command::Refresh(a) => publish::refresh(ctx, a).await,
        Command::Registry(RegistryCommand::Verify(a)) => publish::verify(ctx, a).await,
        Command::Keys(c) => keys::keys(ctx, c).await,
        Command::Serve(a) => publish::serve(ctx, a).await,
        Command::Fleet(FleetCommand::Status(a)) => fleet::status(ctx, a).await,
        Command::Guard(a) => fleet::guard(ctx, a).await,
        Command::Rollout(RolloutCommand::Resume(a)) => fleet::resume(ctx, a).await,
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}

/// The error and its causes on one line, skipping a cause whose text the message
/// already includes (many messages embed their source for readability in logs).
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Map classes of failure to the documented exit codes: the one place that does.
fn exit_code_for(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Usage => exit::USAGE,
        ErrorClass::Busy => exit::BUSY,
        ErrorClass::RolledBack => exit::ROLLED_BACK,
        ErrorClass::Verify => exit::VERIFY,
        ErrorClass::NotFound => exit::NOT_FOUND,
        ErrorClass::GateNotMet => exit::GATE_NOT_MET,
        ErrorClass::Other => exit::ERROR,
    }
}
