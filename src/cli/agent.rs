//! Agent-side handlers: check, update, agent, pin, unpin, unblock, why, demo.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tracing::{error, info};

use super::json::{ChannelFacts, MachineFacts};
use super::{exit, Ctx, DemoArgs, JsonArgs, VersionArg};
use crate::activate::{show, DeployError, Kind, LogLine, Pipeline};
use crate::agent::machine_state::{self, MachineState};
use crate::agent::{Agent, AgentError, RolloutSummary};
use crate::disk::history::{self, Event};
use crate::disk::state::State;
use crate::registry::names::Version;
use crate::time::Timestamp;

fn agent(ctx: &Ctx) -> anyhow::Result<Agent> {
    if ctx.config_path.is_none() {
        return Err(usage!("the agent needs a config file: pass --config FILE or set UPDRAFT_CONFIG (see README \"Configuration\")"));
    }
    Ok(Agent::from_config(ctx.app_root()?, &ctx.config)?)
}

/// `check --json` (docs/json/check.schema.json). `available` and `sequence` predate
/// `channel` and stay for the scripts that read them.
#[derive(Serialize)]
struct CheckJson<'a> {
    app: &'a str,
    channel: ChannelFacts,
    current: Option<&'a Version>,
    available: &'a Version,
    sequence: u64,
    unchanged: bool,
    decision: &'a str,
    explanation: &'a str,
    update_available: bool,
    state: MachineState,
    #[serde(flatten)]
    machine: MachineFacts,
}

pub async fn check(ctx: &Ctx, a: JsonArgs) -> anyhow::Result<u8> {
    let agent = agent(ctx)?;
    let report = agent.check().await?;
    if a.json {
        super::json::print(&CheckJson {
            app: &report.app,
            channel: ChannelFacts {
                name: Some(agent.channel.clone()),
                version: Some(report.available.clone()),
                sequence: Some(report.sequence),
                expires_at: Some(report.expires_at.clone()),
            },
            current: report.current.as_ref(),
            available: &report.available,
            sequence: report.sequence,
            unchanged: report.unchanged,
            decision: &report.decision,
            explanation: &report.explanation,
            update_available: report.update_available,
            state: report.state,
            machine: MachineFacts::of(&ctx.config),
        })?;
    } else {
        outln!(
            "{} {}: current {}, channel offers {} (sequence {}{})",
            report.app,
            agent.channel,
            show(report.current.as_ref()),
            report.available,
            report.sequence,
            if report.unchanged { ", unchanged" } else { "" }
        )?;
        outln!("{}", report.explanation)?;
    }
    Ok(if report.update_available {
        exit::UPDATE_AVAILABLE
    } else if report.state == MachineState::Failed {
        exit::BLOCKED_HERE
    } else {
        exit::OK
    })
}

pub async fn update(ctx: &Ctx) -> anyhow::Result<u8> {
    let agent = agent(ctx)?;
    // Hold SIGTERM while applying: the apply finishes (or fails cleanly) instead of
    // dying half-way; a SIGKILL is covered by pending-activation recovery.
    let _term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let out = agent.update().await?;
    // Under the timer the explanation is already in the journal as a log record.
    if crate::cli::logging::stdout_is_journal() {
        return Ok(exit::OK);
    }
    match &out.activated {
        Some(v) => outln!("updated to {v}: {}", out.explanation)?,
        None => outln!("{}", out.explanation)?,
    }
    Ok(exit::OK)
}

/// `updraft agent`: poll every `interval` (plus jitter) until SIGTERM or SIGINT.
///
/// - The watchdog is petted by this loop, between polls and while a poll runs, but only
///   until the poll has run for `timeouts.run`: a poll hung past that stops the pets and
///   systemd restarts the agent (`WatchdogSec=`), whose next run recovers.
/// - SIGHUP re-reads the config file and polls at once with it; a config that does not
///   load is reported and the old one kept, so a typo does not stop the agent.
pub async fn daemon(ctx: &Ctx) -> anyhow::Result<u8> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut agent = agent(ctx)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = Watchdog::from_env();
    info!(interval = ?agent.config.interval.0, jitter = ?agent.config.jitter.0, "agent started");
    let mut stopping = false;
    'polls: loop {
        watchdog.pet();
        let run_limit = agent.config.timeouts.run.0;
        let started = tokio::time::Instant::now();
        let result = {
            let poll = agent.update();
            tokio::pin!(poll);
            let mut warned = false;
            loop {
                tokio::select! {
                    r = &mut poll => break r,
                    _ = tokio::time::sleep(watchdog.every()) => {
                        if started.elapsed() < run_limit {
                            watchdog.pet();
                        } else if !warned {
                            warned = true;
                            error!(
                                "this poll has run for over {}: it counts as hung and no longer pets the watchdog, so systemd restarts the agent (raise timeouts.run if runs this long are normal)",
                                humantime::format_duration(run_limit)
                            );
                        }
                    }
                    // A stop request lets the run in progress finish (or fail
                    // cleanly and roll back): KillMode=mixed sends it to us alone.
                    _ = term.recv(), if !stopping => {
                        stopping = true;
                        info!("SIGTERM: stopping after the run in progress");
                    }
                    _ = int.recv(), if !stopping => {
                        stopping = true;
                        info!("SIGINT: stopping after the run in progress");
                    }
                }
            }
        };
        let mut window_opens = None;
        match result {
            Ok(out) => {
                window_opens = out.window_opens;
                let status = out.explanation.clone();
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status)]);
            }
            Err(e) => {
                error!("poll failed: {e}");
                let status = format!("last poll failed: {e}");
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status)]);
            }
        }
        if stopping {
            break 'polls;
        }
        let jitter = agent.config.jitter.0.as_millis() as u64;
        let mut wait = agent.config.interval.0 + Duration::from_millis(fastrand::u64(0..=jitter));
        // An update waiting for a maintenance window is applied when it opens, not up
        // to an interval later (with the jitter, so a fleet does not move at once).
        if let Some(opens) = window_opens.and_then(|t| {
            t.system_time()
                .duration_since(std::time::SystemTime::now())
                .ok()
        }) {
            wait = wait.min(opens + Duration::from_millis(fastrand::u64(0..=jitter)));
        }
        let next = tokio::time::Instant::now() + wait;
        loop {
            watchdog.pet();
            let nap = watchdog
                .every()
                .min(next.saturating_duration_since(tokio::time::Instant::now()));
            if nap.is_zero() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = hup.recv() => {
                    match reload(ctx) {
                        Ok(reloaded) => {
                            agent = reloaded;
                            info!("config reloaded on SIGHUP; polling now");
                            break;
                        }
                        Err(e) => error!(
                            "SIGHUP: keeping the running config: {}",
                            super::render_error(&e)
                        ),
                    }
                }
                _ = term.recv() => break 'polls,
                _ = int.recv() => break 'polls,
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    info!("agent stopping");
    Ok(exit::OK)
}

/// The agent built from the config file as it is now on disk.
fn reload(ctx: &Ctx) -> anyhow::Result<Agent> {
    let path = ctx
        .config_path
        .as_ref()
        .ok_or_else(|| usage!("the agent runs without a config file; nothing to reload"))?;
    let config = crate::config::Config::load(path)?;
    let fresh = Ctx {
        config,
        config_path: ctx.config_path.clone(),
        root_flag: ctx.root_flag.clone(),
    };
    agent(&fresh)
}

/// systemd's watchdog for this process (`WatchdogSec=`), when it is enabled.
struct Watchdog {
    /// Half the watchdog period, as sd_watchdog_enabled(3) advises; `None` when off.
    every: Option<Duration>,
}

impl Watchdog {
    fn from_env() -> Watchdog {
        let mut usec = 0u64;
        let every = (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec / 2));
        Watchdog { every }
    }

    fn pet(&self) {
        if self.every.is_some() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }

    /// How often to wake up to pet it (a long nap when it is off).
    fn every(&self) -> Duration {
        self.every.unwrap_or(Duration::from_secs(3600))
    }
}

/// Refuse a pin this machine could never run: V must be installed here, or (with an
/// agent config) published in the registry with an artifact for this target.
async fn check_pinnable(ctx: &Ctx, p: &Pipeline<'_>, v: &Version) -> anyhow::Result<()> {
    if p.installed()?.contains(v) {
        return Ok(());
    }
    if ctx.config_path.is_none() || ctx.config.registry.is_none() {
        return Err(anyhow::Error::from(DeployError::NotFound {
            version: v.clone(),
            available: p.available(),
        })
        .context(format!(
            "not pinning {v}: it is not installed and no registry is configured to fetch it from"
        )));
    }
    agent(ctx)?
        .published_for_target(v)
        .await
        .with_context(|| format!("not pinning {v}: it is not installed here and cannot be fetched (check the version, or `updraft check` for the registry)"))
}

pub async fn pin(ctx: &Ctx, a: VersionArg) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let p = Pipeline::new(&root, &ctx.config);
    check_pinnable(ctx, &p, &a.version).await?;
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    p.recover(&mut state).await?;
    // A pin that will switch now is refused for a config mistake before anything is
    // recorded, like a deploy or a rollback: the pin is not set and `current` stays.
    if p.current()?.as_ref() != Some(&a.version) && p.installed()?.contains(&a.version) {
        p.preflight(&a.version).await?;
    }
    state.pin(&a.version);
    // Pinning a version an operator's rollback held back is choosing it again.
    if state.blocked.get(&a.version).is_some_and(|b| b.is_hold()) {
        state.unblock(&a.version);
    }
    p.save_state(&state).await?;
    crate::failpoint::hit("pin.saved");
    p.history(Event::Pin, Some(&a.version), true, "pinned by operator");
    p.log(LogLine::Pinned {
        version: &a.version,
    });
    let current = p.current()?;
    if current.as_ref() == Some(&a.version) {
        outln!("pinned to {} (already current)", a.version)?;
    } else if p.installed()?.contains(&a.version) {
        if let Err(e) = p.activate(&mut state, &a.version, Kind::Rollback).await {
            state.unpin();
            p.save_state(&state).await?;
            p.history(
                Event::Unpin,
                Some(&a.version),
                false,
                &format!("pin cleared: switching to {} failed", a.version),
            );
            return Err(anyhow::Error::from(e).context(format!(
                "switching to the pinned {v} failed, so the pin was cleared (this machine follows its channel again; `updraft pin {v}` to try again)",
                v = a.version
            )));
        }
        outln!(
            "pinned to {} and switched to it (was {})",
            a.version,
            show(current.as_ref())
        )?;
    } else {
        outln!(
            "pinned to {}; it is not installed yet: the next `updraft update` fetches it from the registry",
            a.version
        )?;
    }
    Ok(exit::OK)
}

pub async fn unpin(ctx: &Ctx) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let p = Pipeline::new(&root, &ctx.config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    match state.unpin() {
        Some(v) => {
            p.save_state(&state).await?;
            p.history(Event::Unpin, Some(&v), true, "pin released by operator");
            p.log(LogLine::Unpinned { version: &v });
            outln!("unpinned {v}: following the channel again on the next update")?;
        }
        None => outln!("not pinned")?,
    }
    Ok(exit::OK)
}

pub async fn unblock(ctx: &Ctx, a: VersionArg) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let p = Pipeline::new(&root, &ctx.config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    match state.unblock(&a.version) {
        Some(b) => {
            p.save_state(&state).await?;
            p.history(
                Event::Unblock,
                Some(&a.version),
                true,
                &format!("unblocked by operator (was: {})", b.reason),
            );
            p.log(LogLine::Unblocked {
                version: &a.version,
            });
            outln!(
                "unblocked {} (it was blocked because: {})",
                a.version,
                b.reason
            )?;
        }
        None => outln!("{} is not blocked", a.version)?,
    }
    Ok(exit::OK)
}

/// `why --json` (docs/json/why.schema.json). `channel_version` and `channel_sequence`
/// predate `channel` and stay for the scripts that read them.
#[derive(Serialize)]
struct WhyReport {
    current: Option<crate::registry::names::Version>,
    /// Where this machine stands against its channel (see README "Machine state").
    state: MachineState,
    channel: ChannelFacts,
    channel_version: Option<crate::registry::names::Version>,
    channel_sequence: Option<u64>,
    last_check: Option<Timestamp>,
    last_error: Option<String>,
    pinned: Option<crate::registry::names::Version>,
    blocked:
        std::collections::BTreeMap<crate::registry::names::Version, crate::disk::state::Blocked>,
    yanked: Vec<crate::registry::names::Version>,
    decision: Option<String>,
    explanation: Option<String>,
    rollout: Option<RolloutSummary>,
    last_health: Option<crate::disk::state::Operation>,
    last_operation: Option<crate::disk::state::Operation>,
    history: Vec<history::Entry>,
    /// Maintenance windows (None: none configured, activations any time).
    window: Option<WindowFacts>,
    #[serde(flatten)]
    machine: MachineFacts,
}

/// `why --json`'s `window`: the configured maintenance windows and where now stands.
#[derive(Debug, Clone, Serialize)]
struct WindowFacts {
    windows: Vec<String>,
    open: bool,
    /// When the open window closes.
    closes_at: Option<Timestamp>,
    /// When the next window opens, while none is open.
    opens_at: Option<Timestamp>,
}

impl WindowFacts {
    fn of(windows: &[crate::window::Window], now: std::time::SystemTime) -> Option<WindowFacts> {
        use crate::window::WindowState;
        let at = |t: jiff::Timestamp| Timestamp::from(std::time::SystemTime::from(t));
        let state = crate::window::state(windows, jiff::Timestamp::try_from(now).ok()?);
        let (open, closes_at, opens_at) = match state {
            WindowState::Always => return None,
            WindowState::Open { closes } => (true, Some(at(closes)), None),
            WindowState::Closed { opens } => (false, None, opens.map(at)),
        };
        Some(WindowFacts {
            windows: windows.iter().map(ToString::to_string).collect(),
            open,
            closes_at,
            opens_at,
        })
    }
}

pub async fn why(ctx: &Ctx, a: JsonArgs) -> anyhow::Result<u8> {
    let root = ctx.app_root()?;
    let state = State::load(&root.state_file())?;
    let current = root.current()?;
    let installed = crate::disk::order::installed(&root, &state)?;
    let mut decision = None;
    let mut explanation = None;
    let mut rollout = None;
    // A config naming a registry is an agent's: if the agent could not run with it,
    // say so (as `check` would) rather than explain without it. A push-mode config
    // (no registry) has no decision to explain.
    if ctx.config_path.is_some() && ctx.config.registry.is_some() {
        let agent = Agent::from_config(root.clone(), &ctx.config)?;
        match agent.cached_view(&state) {
            Ok(Some(view)) => {
                let d = agent.decide(&state, current.as_ref(), &installed, &view);
                match agent.window_delay(&d, std::time::SystemTime::now()) {
                    Some(opens) => {
                        decision = Some(crate::agent::OUTSIDE_WINDOW.to_string());
                        explanation = Some(format!(
                            "{}; outside the maintenance window, activating it {}",
                            d.explain(),
                            crate::window::opens_text(opens)
                        ));
                    }
                    None => {
                        decision = Some(d.name().to_string());
                        explanation = Some(d.explain());
                    }
                }
                rollout = Some(agent.rollout_summary(&view));
            }
            Ok(None) => {
                explanation = Some(
                    "no channel document seen yet: run `updraft check` or `updraft update`".into(),
                )
            }
            Err(e) => {
                explanation = Some(format!(
                    "the cached channel document no longer verifies: {e}"
                ))
            }
        }
    }
    let history = history::read_last(&root.history_file(), 20);
    let ch = state.channel.clone().unwrap_or_default();
    let report = WhyReport {
        state: machine_state::of(&state, current.as_ref(), ctx.config.channel.as_ref()),
        current: current.clone(),
        channel: ChannelFacts::seen(&state, None),
        channel_version: ch.version.clone(),
        channel_sequence: state.channel.as_ref().map(|c| c.sequence),
        last_check: state.last_check,
        last_error: state.last_error.clone(),
        pinned: state.pinned.clone(),
        blocked: state.blocked.clone(),
        yanked: ch.yanked.clone(),
        decision,
        explanation,
        rollout,
        last_health: state.last_health.clone(),
        last_operation: state.last_operation.clone(),
        history,
        window: WindowFacts::of(&ctx.config.window, std::time::SystemTime::now()),
        machine: MachineFacts::of(&ctx.config),
    };
    if a.json {
        super::json::print(&report)?;
        return Ok(exit::OK);
    }
    outln!(
        "This machine runs {} (state: {}).",
        show(report.current.as_ref()),
        report.state
    )?;
    match (&report.channel.name, &report.channel_version) {
        (Some(c), Some(v)) => outln!(
            "Channel {c} points at {v} (sequence {}, last checked {}, document expires {}).",
            report.channel_sequence.unwrap_or(0),
            report
                .last_check
                .map_or_else(|| "never".to_string(), |t| t.to_string()),
            report.channel.expires_at.as_deref().unwrap_or("-")
        )?,
        _ => outln!("No channel document has been accepted yet.")?,
    }
    if let Some(e) = &report.explanation {
        outln!("Decision: {e}")?;
    }
    if let Some(w) = &report.window {
        let list = w.windows.join(", ");
        match (w.open, &w.closes_at, &w.opens_at) {
            (true, Some(c), _) => outln!("Maintenance window open ({list}) until {c}.")?,
            (_, _, Some(o)) => {
                outln!("Outside the maintenance windows ({list}); the next opens at {o}.")?
            }
            _ => outln!("Maintenance windows: {list}.")?,
        }
    }
    match &report.pinned {
        Some(p) => outln!("Pinned to {p} by an operator (`updraft unpin` to follow the channel).")?,
        None => outln!("Not pinned.")?,
    }
    for (v, b) in &report.blocked {
        if b.is_hold() {
            outln!(
                "Held back: {v} since {}: {} (`updraft unblock {v}` to follow the channel again).",
                b.at,
                b.reason
            )?;
        } else {
            outln!(
                "Blocked: {v} since {}: {} (`updraft unblock {v}` to allow it again).",
                b.at,
                b.reason
            )?;
        }
    }
    if !report.yanked.is_empty() {
        let list: Vec<String> = report.yanked.iter().map(|v| v.to_string()).collect();
        outln!("Yanked fleet-wide: {}.", list.join(", "))?;
    }
    if let Some(h) = &report.last_health {
        outln!(
            "Last health result: {} for {} at {}: {}.",
            if h.ok { "passed" } else { "FAILED" },
            show(h.version.as_ref()),
            h.at,
            h.message
        )?;
    }
    if let Some(e) = &report.last_error {
        outln!("Last error: {e}")?;
    }
    if !report.history.is_empty() {
        outln!("\nRecent history:")?;
        for h in &report.history {
            outln!(
                "  {} {:<9} {:<10} {}",
                h.at,
                h.event.as_str(),
                h.version
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |v| v.to_string()),
                h.message
            )?;
        }
    }
    Ok(exit::OK)
}

pub async fn demo(ctx: &Ctx, a: DemoArgs) -> anyhow::Result<u8> {
    crate::cli::demo::run(ctx, a.dir)
        .await
        .map_err(|e| match e.downcast::<AgentError>() {
            Ok(a) => a.into(),
            Err(e) => e,
        })?;
    Ok(exit::OK)
}
