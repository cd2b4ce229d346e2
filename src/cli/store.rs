//! Push-mode handlers: deploy, rollback, list, status, prune.

use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;

use super::json::{ChannelFacts, MachineFacts};
use super::{exit, Ctx, DeployArgs, JsonArgs, PruneArgs, RollbackArgs};
use crate::activate::{self, show, InstallRequest, Pipeline};
use crate::agent::machine_state::{self, MachineState};
use crate::disk::layout::AppRoot;
use crate::disk::order;
use crate::disk::state::{Kind, State};
use crate::registry::names::Version;
use crate::time::Timestamp;
use crate::transport::source::Source;

/// `deploy --json` (docs/json/deploy.schema.json): what was installed and activated,
/// and `current`, as every document names what runs now.
#[derive(Serialize)]
struct DeployJson<'a> {
    root: String,
    current: &'a Version,
    #[serde(flatten)]
    report: &'a activate::DeployReport,
    #[serde(flatten)]
    machine: MachineFacts,
}

/// `rollback --json` (docs/json/rollback.schema.json).
#[derive(Serialize)]
struct RollbackJson<'a> {
    root: String,
    current: &'a Version,
    #[serde(flatten)]
    activated: &'a activate::Activated,
    /// The version rolled back from, now held back here (agents only).
    held_back: Option<&'a Version>,
    #[serde(flatten)]
    machine: MachineFacts,
}

/// `prune --json` (docs/json/prune.schema.json).
#[derive(Serialize)]
struct PruneJson<'a> {
    root: String,
    current: Option<Version>,
    keep: usize,
    dry_run: bool,
    removed: &'a [Version],
    #[serde(flatten)]
    machine: MachineFacts,
}

pub async fn deploy(ctx: &Ctx, a: DeployArgs) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let source = match (&a.artifact_path, &a.artifact_url) {
        (Some(p), _) => Source::File(p.clone()),
        (None, Some(u)) => {
            let c = &ctx.config;
            let policy = crate::transport::retry::RetryPolicy::from_timeouts(&c.timeouts);
            let limit = c.limits.max_artifact_bytes;
            crate::transport::source::url_source(u, &c.transport_options(), policy, limit).await?
        }
        (None, None) => {
            return Err(usage!(
                "one of --artifact-path or --artifact-url is required"
            ))
        }
    };
    errln!(
        "{}[deploy] deploying {} from {}",
        crate::cli::logging::priority_prefix(6),
        a.version,
        source.location()
    );
    let req = InstallRequest {
        version: a.version.clone(),
        source,
        expected_sha256: a.sha256.clone(),
        expected_size: None,
        force: a.force,
        allow_version_mismatch: a.allow_version_mismatch,
        blocks: None,
        data_epoch: a.data_epoch,
    };
    let report = activate::deploy(&root, &ctx.config, req).await?;
    if a.json {
        super::json::print(&DeployJson {
            root: root.path().display().to_string(),
            current: &report.activated.version,
            report: &report,
            machine: MachineFacts::of(&ctx.config),
        })?;
    } else {
        let i = &report.installed;
        let how = if i.replaced {
            "replaced and activated"
        } else if i.fresh {
            "installed and activated"
        } else {
            "already installed (same sha256); activated"
        };
        outln!(
            "deployed {}: {how} (sha256 {}, previous {}, services {})",
            i.version,
            i.sha256,
            show(report.activated.previous.as_ref()),
            report.activated.services
        )?;
        for v in &report.activated.pruned {
            outln!("pruned old release {v}")?;
        }
    }
    Ok(exit::OK)
}

pub async fn rollback(ctx: &Ctx, a: RollbackArgs) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let done = activate::rollback(&root, &ctx.config, a.version, a.force_data).await?;
    if a.json {
        super::json::print(&RollbackJson {
            root: root.path().display().to_string(),
            current: &done.activated.version,
            activated: &done.activated,
            held_back: done.held_back.as_ref(),
            machine: MachineFacts::of(&ctx.config),
        })?;
    } else {
        let act = &done.activated;
        outln!(
            "rolled back to {} (was {}, services {})",
            act.version,
            show(act.previous.as_ref()),
            act.services
        )?;
        if let Some(v) = &done.held_back {
            outln!("{v} is held back here; updraft unblock {v} to follow the channel again")?;
        }
    }
    Ok(exit::OK)
}

#[derive(Serialize)]
struct ReleaseRow {
    version: Version,
    installed_at: Option<Timestamp>,
    size_bytes: u64,
    current: bool,
    previous: bool,
    pinned: bool,
    blocked: Option<String>,
    sha256: Option<String>,
    /// The data format it needs (0: none declared).
    data_epoch: u64,
    /// The data snapshot taken before it raised the epoch, if kept.
    snapshot: Option<SnapshotRow>,
}

#[derive(Serialize)]
struct SnapshotRow {
    path: String,
    /// The data epoch the snapshot holds (what a rollback below this release needs).
    data_epoch: u64,
    size_bytes: u64,
}

#[derive(Serialize)]
struct ListReport {
    root: String,
    current: Option<Version>,
    releases: Vec<ReleaseRow>,
    total: usize,
    total_bytes: u64,
    #[serde(flatten)]
    machine: MachineFacts,
}

/// The state as the next run will see it: read without the lock (nothing is written),
/// with a move of `current` by another tool taken into account, so `previous` is shown
/// as that run will record it.
fn read_state(root: &AppRoot) -> anyhow::Result<State> {
    let mut state = State::load(&root.state_file())?;
    if state.pending.is_none() {
        let link = std::fs::read_link(root.current_link())
            .ok()
            .map(|t| t.to_string_lossy().into_owned());
        state.observe_link(link.as_deref());
    }
    Ok(state)
}

pub fn list(ctx: &Ctx, a: JsonArgs) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let state = read_state(&root)?;
    let current = root.current().context("reading current link")?;
    let mut rows = Vec::new();
    // Oldest first: semantic versions by precedence, labels (git hashes, timestamps) by
    // install time (`disk::order`).
    for v in order::installed(&root, &state).context("listing releases")? {
        let dir = root.release_dir(&v);
        let rec = state.releases.get(&v);
        let installed_at = rec.map(|r| r.installed_at).or_else(|| {
            std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .map(|t: SystemTime| Timestamp::from(t))
        });
        rows.push(ReleaseRow {
            size_bytes: crate::fsutil::tree_size(&dir).unwrap_or(0),
            current: current.as_ref() == Some(&v),
            previous: state.previous.as_ref() == Some(&v),
            pinned: state.pinned.as_ref() == Some(&v),
            blocked: state.blocked.get(&v).map(|b| b.reason.clone()),
            sha256: rec.map(|r| r.sha256.clone()),
            data_epoch: rec.map_or(0, |r| r.data_epoch),
            snapshot: {
                let dir = root.snapshot_dir(&v);
                crate::activate::data::snapshot_epoch(&dir).map(|e| SnapshotRow {
                    size_bytes: crate::fsutil::tree_size(&dir).unwrap_or(0),
                    path: dir.display().to_string(),
                    data_epoch: e,
                })
            },
            installed_at,
            version: v,
        });
    }
    let report = ListReport {
        root: root.path().display().to_string(),
        current,
        total: rows.len(),
        total_bytes: rows.iter().map(|r| r.size_bytes).sum(),
        releases: rows,
        machine: MachineFacts::of(&ctx.config),
    };
    if a.json {
        super::json::print(&report)?;
        return Ok(exit::OK);
    }
    if report.releases.is_empty() {
        outln!("No releases found in {}", root.releases().display())?;
        return Ok(exit::OK);
    }
    outln!("Available releases:\n")?;
    for r in &report.releases {
        let mut notes = Vec::new();
        if r.current {
            notes.push("← current".to_string());
        }
        if r.previous {
            notes.push("previous".into());
        }
        if r.pinned {
            notes.push("pinned".into());
        }
        if let Some(b) = &r.blocked {
            notes.push(format!("blocked: {b}"));
        }
        if r.data_epoch > 0 {
            notes.push(format!("data epoch {}", r.data_epoch));
        }
        if let Some(s) = &r.snapshot {
            notes.push(format!(
                "data snapshot of epoch {} ({})",
                s.data_epoch,
                human_bytes(s.size_bytes)
            ));
        }
        outln!(
            "  {} {:<12} ({})  {:>9}  {}",
            if r.current { "*" } else { " " },
            r.version.to_string(),
            r.installed_at
                .map_or_else(|| "?".to_string(), |t| t.to_string()),
            human_bytes(r.size_bytes),
            notes.join(", ")
        )?;
    }
    outln!(
        "\nTotal: {} release{} ({})",
        report.total,
        if report.total == 1 { "" } else { "s" },
        human_bytes(report.total_bytes)
    )?;
    Ok(exit::OK)
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `status --json` (docs/json/status.schema.json). `available` and `channel_sequence`
/// predate `channel` and stay for the scripts that read them.
#[derive(Serialize)]
struct StatusReport<'a> {
    root: String,
    app: Option<String>,
    channel: ChannelFacts,
    current: Option<Version>,
    previous: Option<&'a Version>,
    pinned: Option<&'a Version>,
    blocked: &'a std::collections::BTreeMap<Version, crate::disk::state::Blocked>,
    pending: Option<&'a crate::disk::state::Pending>,
    available: Option<&'a Version>,
    /// What `updraft rollback` without --version would switch to (the recorded previous
    /// release, else the one installed before current by `disk::order`), or null.
    rollback_target: Option<Version>,
    channel_sequence: Option<u64>,
    last_operation: Option<&'a crate::disk::state::Operation>,
    last_health: Option<&'a crate::disk::state::Operation>,
    last_check: Option<&'a Timestamp>,
    last_error: Option<&'a String>,
    /// Where this machine stands against its channel (see README "Machine state").
    state: MachineState,
    #[serde(flatten)]
    machine: MachineFacts,
}

pub fn status(ctx: &Ctx, a: JsonArgs) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let state = read_state(&root)?;
    let current = root.current().context("reading current link")?;
    let installed = order::installed(&root, &state).context("listing releases")?;
    let rollback_target =
        activate::rollback_target(&installed, current.as_ref(), state.previous.as_ref(), None).ok();
    let report = StatusReport {
        root: root.path().display().to_string(),
        app: ctx.config.app.as_ref().map(|a| a.to_string()),
        channel: ChannelFacts::seen(&state, ctx.config.channel.as_ref()),
        current: current.clone(),
        previous: state.previous.as_ref(),
        pinned: state.pinned.as_ref(),
        blocked: &state.blocked,
        pending: state.pending.as_ref(),
        available: state.channel.as_ref().and_then(|c| c.version.as_ref()),
        rollback_target,
        channel_sequence: state.channel.as_ref().map(|c| c.sequence),
        last_operation: state.last_operation.as_ref(),
        last_health: state.last_health.as_ref(),
        last_check: state.last_check.as_ref(),
        last_error: state.last_error.as_ref(),
        state: machine_state::of(&state, current.as_ref(), ctx.config.channel.as_ref()),
        machine: MachineFacts::of(&ctx.config),
    };
    if a.json {
        super::json::print(&report)?;
        return Ok(exit::OK);
    }
    outln!("root:      {}", report.root)?;
    if let Some(app) = &report.app {
        outln!("app:       {app}")?;
    }
    if let Some(ch) = ctx.config.channel.as_ref() {
        outln!(
            "channel:   {ch} (available {}, sequence {}, expires {})",
            show(report.available),
            report
                .channel_sequence
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            report.channel.expires_at.as_deref().unwrap_or("-")
        )?;
    }
    outln!("current:   {}", show(report.current.as_ref()))?;
    outln!("state:     {}", report.state)?;
    outln!("previous:  {}", show(report.previous))?;
    if report.rollback_target.as_ref() != report.previous {
        outln!("rollback:  {}", show(report.rollback_target.as_ref()))?;
    }
    outln!("pinned:    {}", show(report.pinned))?;
    if report.blocked.is_empty() {
        outln!("blocked:   none")?;
    }
    for (v, b) in report.blocked {
        outln!("blocked:   {v} since {}: {}", b.at, b.reason)?;
    }
    if let Some(p) = report.pending {
        outln!(
            "pending:   {} {} since {} (not yet confirmed healthy)",
            p.kind.map_or("", Kind::as_str),
            p.version,
            p.started_at
        )?;
    }
    if let Some(o) = report.last_operation {
        outln!(
            "last op:   {} {} at {}: {} ({})",
            o.kind,
            show(o.version.as_ref()),
            o.at,
            if o.ok { "ok" } else { "FAILED" },
            o.message
        )?;
    }
    if let Some(t) = report.last_check {
        outln!("checked:   {t}")?;
    }
    if let Some(e) = report.last_error {
        outln!("last error: {e}")?;
    }
    Ok(exit::OK)
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let keep = a.keep.unwrap_or(ctx.config.keep);
    if keep == 0 {
        return Err(usage!(
            "--keep must be at least 1 (the current release is never removed)"
        ));
    }
    let p = Pipeline::new(&root, &ctx.config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    p.recover(&mut state).await?;
    let removed = p.prune(&state, keep, a.dry_run).await?;
    if a.json {
        super::json::print(&PruneJson {
            root: root.path().display().to_string(),
            current: p.current()?,
            keep,
            dry_run: a.dry_run,
            removed: &removed,
            machine: MachineFacts::of(&ctx.config),
        })?;
    } else if removed.is_empty() {
        outln!("nothing to prune (keeping {keep})")?;
    } else {
        for v in &removed {
            outln!("{} {v}", if a.dry_run { "would remove" } else { "removed" })?;
        }
    }
    Ok(exit::OK)
}
