//! What the fleet's reports add up to: `fleet status`, the promotion gate and the guard's
//! verdict.
//!
//! Pure: the caller reads the reports (see [`read`]) and the channel documents and passes
//! the clock in, so every rule here is a table-driven unit test. Reports are unsigned
//! (registry-spec "Machine reports"): a report that failed [`Report::parse`] is listed as
//! bad and never counted, and a stale one is shown but never counted either, so a
//! machine that stopped reporting cannot vouch for a release.

pub mod read;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::registry::manifest::ChannelDoc;
use crate::registry::names::{AppName, Channel, Version};
use crate::registry::report::{AppMachineId, BadReport, MachineState, Report};
use crate::registry::rollout::Halt;

/// The `fleet status --json` format this implementation writes.
pub const STATUS_SCHEMA_VERSION: u32 = 1;
/// A machine whose last report is older than this is stale unless told otherwise.
pub const DEFAULT_STALE: Duration = Duration::from_secs(24 * 3600);
/// How many failure reasons `fleet status` shows per channel.
const TOP_REASONS: usize = 10;
/// Longest failure reason kept: reasons are grouped by text, and a huge one only hides
/// the others.
const MAX_REASON_CHARS: usize = 300;

/// One object read from under `<app>/fleet/`: its key and either the report or why it
/// was refused.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub report: Result<Report, BadReport>,
}

/// Whether a report is recent enough to count: written within `stale` of `now`.
pub fn is_fresh(r: &Report, now: SystemTime, stale: Duration) -> bool {
    r.written_at().is_some_and(|w| w + stale >= now)
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineRow {
    pub machine: AppMachineId,
    /// None when the machine does not share its hostname.
    pub hostname: Option<String>,
    pub channel: Channel,
    pub version: Option<Version>,
    pub state: MachineState,
    /// When the report was written.
    pub last_seen: String,
    pub stale: bool,
}

impl MachineRow {
    fn of(r: &Report, stale: bool) -> MachineRow {
        MachineRow {
            machine: r.machine.clone(),
            hostname: r.hostname.clone(),
            channel: r.channel.clone(),
            version: r.current.clone(),
            state: r.state,
            last_seen: r.written.clone(),
            stale,
        }
    }
}

/// How many machines on one version are in each state (every state listed, zeros too,
/// so scripts can index without checking).
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// None for machines that run nothing yet.
    pub version: Option<Version>,
    pub machines: usize,
    pub states: BTreeMap<MachineState, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonRow {
    pub reason: String,
    /// Machines reporting it.
    pub machines: usize,
    /// The versions it was reported for (blocked versions; empty for other errors).
    pub versions: Vec<Version>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    pub channel: Channel,
    /// What the channel document says now; None if it could not be read.
    pub channel_version: Option<Version>,
    pub sequence: Option<u64>,
    pub halted: Option<Halt>,
    pub yanked: Vec<Version>,
    /// Machines with a fresh report (counted below).
    pub machines: usize,
    pub versions: Vec<VersionRow>,
    /// Machines whose last report is older than the stale limit: not counted above.
    pub stale: Vec<MachineRow>,
    pub failure_reasons: Vec<ReasonRow>,
    /// Fresh machines not on the channel's version.
    pub behind: Vec<MachineRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BadRow {
    pub key: String,
    pub why: String,
}

/// `fleet status --json`, schema_version 1. Fields are only ever added.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    pub kind: &'static str,
    pub schema_version: u32,
    pub app: AppName,
    pub generated: String,
    pub stale_after_seconds: u64,
    /// Reports that parsed (fresh and stale).
    pub reports: usize,
    pub channels: Vec<ChannelStatus>,
    /// Every machine, with `--machines` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_list: Option<Vec<MachineRow>>,
    pub bad: Vec<BadRow>,
}

pub struct StatusOptions {
    pub now: SystemTime,
    pub stale: Duration,
    pub list_machines: bool,
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Add up the reports, channel by channel. `channels` holds the channel documents that
/// could be read; a channel with reports but no document is still shown.
pub fn status(
    app: &AppName,
    entries: &[Entry],
    channels: &BTreeMap<Channel, ChannelDoc>,
    opts: &StatusOptions,
) -> FleetStatus {
    let mut bad = Vec::new();
    let mut by_channel: BTreeMap<&Channel, Vec<&Report>> = BTreeMap::new();
    for c in channels.keys() {
        by_channel.entry(c).or_default();
    }
    for e in entries {
        match &e.report {
            Ok(r) => by_channel.entry(&r.channel).or_default().push(r),
            Err(why) => bad.push(BadRow {
                key: e.key.clone(),
                why: why.to_string(),
            }),
        }
    }
    let mut machine_list = Vec::new();
    let mut out = Vec::new();
    let mut total = 0;
    for (channel, reports) in by_channel {
        total += reports.len();
        let doc = channels.get(channel);
        let mut st = ChannelStatus {
            channel: channel.clone(),
            channel_version: doc.map(|d| d.version.clone()),
            sequence: doc.map(|d| d.sequence),
            halted: doc.and_then(|d| d.rollout.as_ref()?.halted.clone()),
            yanked: doc
                .map(|d| d.yanked.iter().map(|y| y.version.clone()).collect())
                .unwrap_or_default(),
            machines: 0,
            versions: Vec::new(),
            stale: Vec::new(),
            failure_reasons: Vec::new(),
            behind: Vec::new(),
        };
        let mut versions: BTreeMap<Option<&Version>, BTreeMap<MachineState, usize>> =
            BTreeMap::new();
        let mut reasons: BTreeMap<String, (BTreeSet<&AppMachineId>, BTreeSet<&Version>)> =
            BTreeMap::new();
        for r in reports {
            let fresh = is_fresh(r, opts.now, opts.stale);
            if opts.list_machines {
                machine_list.push(MachineRow::of(r, !fresh));
            }
            if !fresh {
                st.stale.push(MachineRow::of(r, true));
                continue;
            }
            st.machines += 1;
            *versions
                .entry(r.current.as_ref())
                .or_insert_with(|| MachineState::ALL.iter().map(|s| (*s, 0)).collect())
                .entry(r.state)
                .or_default() += 1;
            for b in &r.blocked {
                let e = reasons.entry(cut(&b.reason, MAX_REASON_CHARS)).or_default();
                e.0.insert(&r.machine);
                e.1.insert(&b.version);
            }
            if matches!(r.state, MachineState::Failed | MachineState::Behind) {
                if let Some(err) = &r.last_error {
                    let e = reasons
                        .entry(cut(&err.message, MAX_REASON_CHARS))
                        .or_default();
                    e.0.insert(&r.machine);
                }
            }
            let wanted = st.channel_version.as_ref().or(r.channel_version.as_ref());
            if wanted.is_some() && wanted != r.current.as_ref() {
                st.behind.push(MachineRow::of(r, false));
            }
        }
        // Newest version first; machines with nothing installed last.
        st.versions = versions
            .into_iter()
            .rev()
            .map(|(v, states)| VersionRow {
                version: v.cloned(),
                machines: states.values().sum(),
                states,
            })
            .collect();
        let mut reasons: Vec<ReasonRow> = reasons
            .into_iter()
            .map(|(reason, (machines, versions))| ReasonRow {
                reason,
                machines: machines.len(),
                versions: versions.into_iter().cloned().collect(),
            })
            .collect();
        reasons.sort_by(|a, b| b.machines.cmp(&a.machines).then(a.reason.cmp(&b.reason)));
        reasons.truncate(TOP_REASONS);
        st.failure_reasons = reasons;
        out.push(st);
    }
    FleetStatus {
        kind: "fleet-status",
        schema_version: STATUS_SCHEMA_VERSION,
        app: app.clone(),
        generated: crate::time::format_time(opts.now),
        stale_after_seconds: opts.stale.as_secs(),
        reports: total,
        channels: out,
        machine_list: opts.list_machines.then_some(machine_list),
        bad,
    }
}

/// Whether a report says its machine tried `v`: runs it, is activating it, or blocked it.
pub fn tried(r: &Report, v: &Version) -> bool {
    r.current.as_ref() == Some(v) || r.pending.as_ref() == Some(v) || r.blocks(v)
}

/// `promote --require-healthy PCT [--min-machines N] [--soak DUR]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateRule {
    pub require_healthy_percent: u8,
    pub min_machines: usize,
    pub soak: Duration,
}

/// What the gate counted, shown whether it passed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateCounts {
    pub version: Version,
    /// Fresh reports that tried the version (the denominator).
    pub reported: usize,
    /// Healthy on it for at least the soak time (the numerator).
    pub healthy: usize,
    /// Healthy on it, but for less than the soak time (or since an unknown time).
    pub soaking: usize,
    /// Blocked it (rolled back).
    pub failed: usize,
    /// Tried it and are in any other state (updating, behind, ...).
    pub other: usize,
    /// Reports not counted because they are stale.
    pub stale: usize,
}

/// A promotion refused by its health gate; the CLI exits 7 on it.
#[derive(Debug, thiserror::Error)]
#[error("gate not met: {summary}; nothing was promoted to {channel}")]
pub struct GateNotMet {
    pub channel: String,
    pub summary: String,
}

impl crate::error::Classify for GateNotMet {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::GateNotMet
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateVerdict {
    pub met: bool,
    pub counts: GateCounts,
    /// One sentence: what was required and what was seen.
    pub summary: String,
}

/// The promotion gate over the source channel's reports (registry-spec "Gates"): `v` is
/// healthy, for at least the soak time, on at least `min_machines` machines, and those
/// are at least the required share of the machines that tried it.
pub fn gate(
    reports: &[&Report],
    v: &Version,
    rule: &GateRule,
    now: SystemTime,
    stale: Duration,
) -> GateVerdict {
    let mut c = GateCounts {
        version: v.clone(),
        reported: 0,
        healthy: 0,
        soaking: 0,
        failed: 0,
        other: 0,
        stale: 0,
    };
    for r in reports.iter().filter(|r| tried(r, v)) {
        if !is_fresh(r, now, stale) {
            c.stale += 1;
            continue;
        }
        c.reported += 1;
        if r.blocks(v) {
            c.failed += 1;
        } else if r.current.as_ref() == Some(v) && r.state == MachineState::Healthy {
            let soaked = r.activated_at().is_some_and(|t| t + rule.soak <= now);
            if soaked || rule.soak.is_zero() {
                c.healthy += 1;
            } else {
                c.soaking += 1;
            }
        } else {
            c.other += 1;
        }
    }
    let share_ok =
        c.reported > 0 && c.healthy * 100 >= usize::from(rule.require_healthy_percent) * c.reported;
    let met = share_ok && c.healthy >= rule.min_machines;
    let pct = if c.reported == 0 {
        0.0
    } else {
        c.healthy as f64 * 100.0 / c.reported as f64
    };
    let soak = if rule.soak.is_zero() {
        String::new()
    } else {
        format!(" for at least {}", humantime::format_duration(rule.soak))
    };
    let summary = format!(
        "{v}: {} of {} reporting machines healthy{soak} ({pct:.1}%; required {}% and at least {}); {} failed, {} still soaking, {} in other states, {} stale reports not counted",
        c.healthy,
        c.reported,
        rule.require_healthy_percent,
        rule.min_machines,
        c.failed,
        c.soaking,
        c.other,
        c.stale
    );
    GateVerdict {
        met,
        counts: c,
        summary,
    }
}

/// `guard --max-failed PCT [--min-reports N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardRule {
    pub max_failed_percent: u8,
    pub min_reports: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardCounts {
    pub version: Version,
    pub tried: usize,
    pub failed: usize,
    pub stale: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardVerdict {
    /// Too many machines failed the version: halt or yank it.
    pub failing: bool,
    pub counts: GuardCounts,
    pub summary: String,
}

/// Whether the channel's version fails on too many machines: the failed share among the
/// fresh reports that tried it exceeds the limit, and enough tried it to judge.
pub fn guard_verdict(
    reports: &[&Report],
    v: &Version,
    rule: &GuardRule,
    now: SystemTime,
    stale: Duration,
) -> GuardVerdict {
    let mut c = GuardCounts {
        version: v.clone(),
        tried: 0,
        failed: 0,
        stale: 0,
    };
    for r in reports.iter().filter(|r| tried(r, v)) {
        if !is_fresh(r, now, stale) {
            c.stale += 1;
            continue;
        }
        c.tried += 1;
        if r.blocks(v) {
            c.failed += 1;
        }
    }
    let enough = c.tried >= rule.min_reports;
    let over = c.failed * 100 > usize::from(rule.max_failed_percent) * c.tried;
    let pct = if c.tried == 0 {
        0.0
    } else {
        c.failed as f64 * 100.0 / c.tried as f64
    };
    let judged = if !enough {
        format!("too few to judge (at least {} needed)", rule.min_reports)
    } else if over {
        format!("more than the {}% allowed", rule.max_failed_percent)
    } else {
        format!("within the {}% allowed", rule.max_failed_percent)
    };
    GuardVerdict {
        failing: enough && over,
        summary: format!(
            "{v}: {} of {} machines that tried it failed ({pct:.1}%), {judged}; {} stale reports not counted",
            c.failed, c.tried, c.stale
        ),
        counts: c,
    }
}

/// The version to move a channel back to when its version is yanked: the one most of
/// its fresh machines ran before it (their `previous` when on the bad version, else
/// their `current`), never the bad version itself or one already yanked. Ties go to the
/// newer version.
pub fn fallback_version(
    reports: &[&Report],
    bad: &Version,
    yanked: &[Version],
    now: SystemTime,
    stale: Duration,
) -> Option<Version> {
    let mut votes: BTreeMap<&Version, usize> = BTreeMap::new();
    for r in reports.iter().filter(|r| is_fresh(r, now, stale)) {
        let before = if r.current.as_ref() == Some(bad) {
            r.previous.as_ref()
        } else {
            r.current.as_ref()
        };
        if let Some(v) = before.filter(|v| *v != bad && !yanked.contains(v) && !r.blocks(v)) {
            *votes.entry(v).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)))
        .map(|(v, _)| v.clone())
}

/// Escapes what a terminal would act on (moved to `crate::text`, shared with the
/// transports, which print what servers answer).
pub use crate::text::printable;

#[cfg(test)]
mod tests;
