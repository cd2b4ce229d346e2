//! Fleet handlers: `fleet status`, `guard`, `rollout resume`, and the health gate of
//! `promote`. The counting is in `registry::fleet`; this file reads, prints and picks
//! exit codes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::publish::{expires_in, load_public_keys, load_secret_key, open_store};
use super::{exit, Ctx, FleetStatusArgs, GuardAction, GuardArgs, RolloutResumeArgs};
use crate::registry::channel::{self, PromoteSource, RolloutChange};
use crate::registry::fleet::{
    self, printable, read, Entry, FleetStatus, GateNotMet, GateRule, GuardRule, GuardVerdict,
    MachineRow, StatusOptions, DEFAULT_STALE,
};
use crate::registry::manifest::{self, ChannelDoc};
use crate::registry::names::{AppName, Channel, Version};
use crate::registry::report::{MachineState, Report};
use crate::registry::rollout::{self, Halt};
use crate::registry::signed::{PublishError, Signer};
use crate::transport::Store;

/// Rows of a list printed before "... and N more" in human output (JSON has them all).
const HUMAN_LIST_LIMIT: usize = 20;

fn good(entries: &[Entry]) -> Vec<&Report> {
    entries
        .iter()
        .filter_map(|e| e.report.as_ref().ok())
        .collect()
}

fn bad_count(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| e.report.is_err()).count()
}

/// Reports are listed, so the registry must be a directory or a bucket.
fn refuse_http(url: &str) -> anyhow::Result<()> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(usage!(
            "{url}: reading machine reports needs to list <app>/fleet/, which a plain HTTP server cannot do; run this against the directory (file:///...) or bucket (s3://...) that the server serves"
        ));
    }
    Ok(())
}

/// Channel names that have a document under `<app>/channels/`.
async fn channel_names(store: &dyn Store, app: &AppName) -> anyhow::Result<Vec<Channel>> {
    let prefix = format!("{app}/channels/");
    Ok(store
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.strip_suffix(".json")?.parse().ok())
        .collect())
}

pub async fn status(ctx: &Ctx, a: FleetStatusArgs) -> anyhow::Result<u8> {
    refuse_http(&a.registry)?;
    let stale = match &a.stale {
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| usage!("--stale {s:?}: write e.g. 30m, 6h, 2d ({e})"))?,
        None => DEFAULT_STALE,
    };
    let store = open_store(ctx, &a.registry)?;
    let entries = read::reports(store.as_ref(), &a.app, a.channel.as_ref()).await?;
    let names = match &a.channel {
        Some(c) => vec![c.clone()],
        None => channel_names(store.as_ref(), &a.app).await?,
    };
    let mut channels: BTreeMap<Channel, ChannelDoc> = BTreeMap::new();
    for c in names {
        if let Some(doc) = read::channel_for_display(store.as_ref(), &a.app, &c).await {
            channels.insert(c, doc);
        }
    }
    let opts = StatusOptions {
        now: SystemTime::now(),
        stale,
        list_machines: a.machines,
    };
    let mut st = fleet::status(&a.app, &entries, &channels, &opts);
    if let Some(c) = &a.channel {
        st.channels.retain(|s| &s.channel == c);
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&st)?)?;
    } else {
        out!("{}", render_status(&st, stale))?;
    }
    Ok(exit::OK)
}

fn short(m: &MachineRow) -> String {
    let id = &m.machine.as_str()[..12];
    match &m.hostname {
        Some(h) => format!("{id} {}", printable(h)),
        None => id.to_string(),
    }
}

fn version_text(v: Option<&Version>) -> String {
    v.map_or_else(|| "(none)".to_string(), Version::to_string)
}

fn list_rows(out: &mut String, title: &str, rows: &[MachineRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {title} ({}):", rows.len());
    for m in rows.iter().take(HUMAN_LIST_LIMIT) {
        let _ = writeln!(
            out,
            "    {}  {}  {}  last seen {}",
            short(m),
            version_text(m.version.as_ref()),
            m.state,
            m.last_seen
        );
    }
    if rows.len() > HUMAN_LIST_LIMIT {
        let _ = writeln!(
            out,
            "    ... and {} more (--json lists them all)",
            rows.len() - HUMAN_LIST_LIMIT
        );
    }
}

/// The human report. Every string that came from a report goes through `printable`.
fn render_status(st: &FleetStatus, stale: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "app {}: {} reports, {} bad; machines silent for more than {} are stale and not counted",
        st.app,
        st.reports,
        st.bad.len(),
        humantime::format_duration(stale)
    );
    for c in &st.channels {
        let _ = write!(out, "\nchannel {}", c.channel);
        match (&c.channel_version, c.sequence) {
            (Some(v), Some(seq)) => {
                let _ = write!(out, " -> {v} (sequence {seq})");
            }
            _ => out.push_str(" (no readable channel document)"),
        }
        let _ = writeln!(out, ": {} machines", c.machines);
        if let Some(h) = &c.halted {
            let _ = writeln!(
                out,
                "  rollout HALTED at {}: {}",
                printable(&h.at),
                printable(&h.reason)
            );
        }
        if !c.versions.is_empty() {
            let mut header = format!("  {:<20} {:>8}", "version", "machines");
            for s in MachineState::ALL {
                let _ = write!(header, " {:>8}", short_state(s));
            }
            let _ = writeln!(out, "{header}");
            for row in &c.versions {
                let mut line = format!(
                    "  {:<20} {:>8}",
                    version_text(row.version.as_ref()),
                    row.machines
                );
                for s in MachineState::ALL {
                    let _ = write!(line, " {:>8}", row.states.get(&s).copied().unwrap_or(0));
                }
                let _ = writeln!(out, "{line}");
            }
        }
        if !c.failure_reasons.is_empty() {
            let _ = writeln!(out, "  most frequent failures:");
            for r in &c.failure_reasons {
                let versions: Vec<String> = r.versions.iter().map(Version::to_string).collect();
                let on = if versions.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", versions.join(", "))
                };
                let _ = writeln!(
                    out,
                    "    {:>5} machines{on}: {}",
                    r.machines,
                    printable(&r.reason)
                );
            }
        }
        list_rows(&mut out, "not on the channel's version", &c.behind);
        list_rows(&mut out, "stale", &c.stale);
    }
    if let Some(list) = &st.machine_list {
        let _ = writeln!(out, "\nmachines ({}):", list.len());
        for m in list {
            let _ = writeln!(
                out,
                "  {}  {}  {}  {}  {}  last seen {}{}",
                m.machine,
                m.hostname.as_deref().map_or_else(|| "-".into(), printable),
                m.channel,
                version_text(m.version.as_ref()),
                m.state,
                m.last_seen,
                if m.stale { "  (stale)" } else { "" }
            );
        }
    }
    if !st.bad.is_empty() {
        let _ = writeln!(
            out,
            "\nbad reports ({}), not counted (reports are untrusted input):",
            st.bad.len()
        );
        for b in &st.bad {
            let _ = writeln!(out, "  {}: {}", printable(&b.key), printable(&b.why));
        }
    }
    out
}

/// Column headings short enough for one line.
fn short_state(s: MachineState) -> &'static str {
    match s {
        MachineState::WaitingForRollout => "waiting",
        other => other.as_str(),
    }
}

/// The health gate of `promote --require-healthy`: reads the source channel's reports
/// and returns the exact version to promote, or refuses (exit 7) with the counts.
pub(super) async fn gate_promotion(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    source: PromoteSource,
    target: &Channel,
    rule: &GateRule,
) -> anyhow::Result<PromoteSource> {
    let (from, approved) = match source {
        PromoteSource::Approved { version, from } => (from, Some(version)),
        PromoteSource::Channel(from) => (from, None),
        PromoteSource::Version(_) => {
            return Err(usage!(
            "--require-healthy needs --from CHANNEL: the gate reads that channel's machine reports"
        ))
        }
    };
    let holds = channel::current_channel(store, signer, app, &from)
        .await?
        .ok_or_else(|| PublishError::Missing {
            what: manifest::channel_key(app, &from),
            hint: format!("nothing was published to channel {from} yet"),
        })?
        .version;
    if let Some(v) = approved.filter(|v| v != &holds) {
        return Err(PublishError::SourceMoved {
            from: from.to_string(),
            holds: holds.to_string(),
            approved: v.to_string(),
        }
        .into());
    }
    let entries = read::reports(store, app, Some(&from)).await?;
    let reports = good(&entries);
    let verdict = fleet::gate(&reports, &holds, rule, SystemTime::now(), DEFAULT_STALE);
    let bad = bad_count(&entries);
    let summary = if bad > 0 {
        format!(
            "{}; {bad} bad reports not counted (see `updraft fleet status`)",
            verdict.summary
        )
    } else {
        verdict.summary.clone()
    };
    if !verdict.met {
        return Err(GateNotMet {
            channel: target.to_string(),
            summary: format!("on {from}, {summary}"),
        }
        .into());
    }
    outln!("gate met on {from}: {summary}")?;
    Ok(PromoteSource::Approved {
        version: holds,
        from,
    })
}

#[derive(Serialize)]
struct GuardOutput<'a> {
    kind: &'static str,
    schema_version: u32,
    app: &'a AppName,
    channel: &'a Channel,
    version: &'a Version,
    verdict: &'a GuardVerdict,
    bad_reports: usize,
    action: &'static str,
    /// nothing | already-halted | halted | yanked | would-halt | would-yank
    did: &'static str,
    acted: bool,
    dry_run: bool,
    /// The channel document's sequence after this run.
    sequence: u64,
    halted: Option<Halt>,
    back_to: Option<Version>,
    note: Option<String>,
}

pub async fn guard(ctx: &Ctx, a: GuardArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    let store = open_store(ctx, &a.registry)?;
    let store = store.as_ref();
    let now = SystemTime::now();
    let doc = channel::current_channel(store, &signer, &a.app, &a.channel)
        .await?
        .ok_or_else(|| PublishError::Missing {
            what: manifest::channel_key(&a.app, &a.channel),
            hint: format!("nothing was published to channel {} yet", a.channel),
        })?;
    let version = doc.version.clone();
    let entries = read::reports(store, &a.app, Some(&a.channel)).await?;
    let reports = good(&entries);
    let rule = GuardRule {
        max_failed_percent: a.max_failed,
        min_reports: usize::try_from(a.min_reports).unwrap_or(usize::MAX),
    };
    let verdict = fleet::guard_verdict(&reports, &version, &rule, now, DEFAULT_STALE);
    let change = RolloutChange {
        app: a.app.clone(),
        channel: a.channel.clone(),
        version: version.clone(),
        reason: format!("updraft guard: {}", verdict.summary),
        expires_in: expires_in(&a.expires_in)?,
    };
    let mut out = GuardOutput {
        kind: "guard",
        schema_version: 1,
        app: &a.app,
        channel: &a.channel,
        version: &version,
        verdict: &verdict,
        bad_reports: bad_count(&entries),
        action: match a.action {
            GuardAction::Halt => "halt",
            GuardAction::Yank => "yank",
        },
        did: "nothing",
        acted: false,
        dry_run: a.dry_run,
        sequence: doc.sequence,
        halted: doc.rollout.as_ref().and_then(|r| r.halted.clone()),
        back_to: None,
        note: None,
    };
    let already_halted = out.halted.is_some();
    if verdict.failing {
        match a.action {
            GuardAction::Halt if already_halted => out.did = "already-halted",
            GuardAction::Halt => {
                if rollout::share(doc.rollout.as_ref(), now) >= 100 {
                    out.note = Some("the rollout already admits every machine, so a halt stops nobody; use --action yank to take machines off it".into());
                }
                if a.dry_run {
                    out.did = "would-halt";
                } else if let Some(d) = channel::halt_rollout(store, &signer, &change, now).await? {
                    out.did = "halted";
                    out.sequence = d.sequence;
                    out.halted = d.rollout.and_then(|r| r.halted);
                } else {
                    out.did = "already-halted";
                }
            }
            GuardAction::Yank => {
                let yanked: Vec<Version> = doc.yanked.iter().map(|y| y.version.clone()).collect();
                let back_to = fleet::fallback_version(&reports, &version, &yanked, now, DEFAULT_STALE)
                    .ok_or_else(|| PublishError::Invalid(format!(
                        "{version} fails on channel {} ({}), but no machine reports a version to go back to: promote a good version to {} with `updraft promote`",
                        a.channel, verdict.summary, a.channel
                    )))?;
                out.back_to = Some(back_to.clone());
                if a.dry_run {
                    out.did = "would-yank";
                } else {
                    let d =
                        channel::yank_and_fall_back(store, &signer, &change, &back_to, now).await?;
                    out.did = "yanked";
                    out.sequence = d.sequence;
                }
            }
        }
    }
    out.acted = matches!(out.did, "halted" | "yanked" | "would-halt" | "would-yank");
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
    } else {
        outln!("channel {} -> {version}: {}", a.channel, verdict.summary)?;
        if out.bad_reports > 0 {
            outln!(
                "{} bad reports not counted (see `updraft fleet status`)",
                out.bad_reports
            )?;
        }
        let said = match out.did {
            "nothing" => "nothing to do".to_string(),
            "already-halted" => format!(
                "the rollout is already halted (at {}): nothing written; `updraft rollout resume` clears it",
                out.halted.as_ref().map_or("?", |h| h.at.as_str())
            ),
            "halted" => format!(
                "HALTED the rollout of {version} on {} at {}% (sequence {}); machines not yet on it stay where they are; `updraft rollout resume` widens it again",
                a.channel,
                rollout::share(doc.rollout.as_ref(), now),
                out.sequence
            ),
            "would-halt" => format!("would halt the rollout of {version} on {} (dry run: nothing written)", a.channel),
            "yanked" => format!(
                "YANKED {version} on {} and pointed it back at {} (sequence {})",
                a.channel,
                version_text(out.back_to.as_ref()),
                out.sequence
            ),
            "would-yank" => format!(
                "would yank {version} on {} and point it back at {} (dry run: nothing written)",
                a.channel,
                version_text(out.back_to.as_ref())
            ),
            other => other.to_string(),
        };
        outln!("{said}")?;
        if let Some(n) = &out.note {
            outln!("note: {n}")?;
        }
    }
    Ok(if out.acted {
        exit::GUARD_ACTED
    } else {
        exit::OK
    })
}

pub async fn resume(ctx: &Ctx, a: RolloutResumeArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    let store = open_store(ctx, &a.registry)?;
    let now = SystemTime::now();
    match channel::resume_rollout(
        store.as_ref(),
        &signer,
        &a.app,
        &a.channel,
        expires_in(&a.expires_in)?,
        now,
    )
    .await?
    {
        Some(doc) => outln!(
            "resumed the rollout of {} on {} (sequence {}): {}% of machines admitted now",
            doc.version,
            doc.channel,
            doc.sequence,
            rollout::share(doc.rollout.as_ref(), now)
        )?,
        None => outln!(
            "the rollout on channel {} is not halted: nothing to do",
            a.channel
        )?,
    }
    Ok(exit::OK)
}
