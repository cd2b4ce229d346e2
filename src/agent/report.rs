//! Writing this machine's fleet report: what it runs, where it stands, what failed.
//!
//! The report is built from the state file after each run (pure: [`build`], [`fit`],
//! [`due`]) and written to `<app>/fleet/<channel>/<machine>.json` through the same
//! transports as the registry, or an HTTP server that accepts PUT ([`Sink`]). Writing
//! it is best effort: CI reads reports to gate promotions and halt rollouts, but a
//! machine must keep updating when the report store is down, so every failure here is
//! the caller's to log and retry on the next run.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::disk::state::{ReportMark, State};
use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::report::{
    self, AppMachineId, BlockedVersion, HealthResult, LastError, Report, MAX_REPORT_BYTES,
    REPORT_SCHEMA_VERSION,
};
use crate::time::Timestamp;
use crate::transport::http::HttpRegistry;
use crate::transport::{self, Store, TransportError, TransportOptions};

/// The bound on writing one report: a store that hangs costs an update this much, once.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The transport error names the object.
    #[error("cannot write the fleet report: {0}")]
    Write(#[source] TransportError),
    #[error("writing the fleet report to {location} took longer than {}s: gave up (the update is not held up longer)", WRITE_TIMEOUT.as_secs())]
    Timeout { location: String },
    #[error("cannot open the fleet report store: {0}")]
    Open(#[source] TransportError),
    #[error(
        "the fleet report does not fit in {MAX_REPORT_BYTES} bytes even cut down to {0} bytes"
    )]
    TooBig(usize),
    #[error("cannot serialise the fleet report: {0}")]
    Serialise(#[source] serde_json::Error),
}

/// What a report says beyond the state file, gathered by the caller.
pub struct Inputs<'a> {
    pub machine: AppMachineId,
    pub hostname: Option<String>,
    pub app: &'a AppName,
    pub channel: &'a Channel,
    pub target: &'a Target,
    pub state: &'a State,
    pub current: Option<Version>,
    /// When `current` was switched to.
    pub last_activation: Option<String>,
    pub channel_expires: Option<String>,
    pub rollout_bucket: Option<u32>,
    pub now: SystemTime,
}

/// The report for this moment, full length (see [`fit`]).
pub fn build(i: &Inputs<'_>) -> Report {
    let s = i.state;
    let seen = s
        .channel
        .as_ref()
        .filter(|c| c.channel.as_ref() == Some(i.channel));
    let channel_version = seen.and_then(|c| c.version.clone());
    let state = crate::agent::machine_state::of(s, i.current.as_ref(), Some(i.channel));
    Report {
        kind: "report".into(),
        schema_version: REPORT_SCHEMA_VERSION,
        machine: i.machine.clone(),
        hostname: i.hostname.clone(),
        app: i.app.clone(),
        channel: i.channel.clone(),
        target: i.target.clone(),
        updraft_version: env!("CARGO_PKG_VERSION").into(),
        current: i.current.clone(),
        previous: s.previous.clone(),
        pending: s.pending.as_ref().map(|p| p.version.clone()),
        state,
        channel_version,
        blocked: s
            .blocked
            .iter()
            .map(|(v, b)| BlockedVersion {
                version: v.clone(),
                reason: b.reason.clone(),
                at: b.at.to_string(),
            })
            .collect(),
        last_health: s.last_health.as_ref().map(|h| HealthResult {
            ok: h.ok,
            at: h.at.to_string(),
            message: match &h.version {
                Some(v) => format!("{v}: {}", h.message),
                None => h.message.clone(),
            },
        }),
        // The error is recorded by the run that also stamps `last_check`.
        last_error: s.last_error.as_ref().map(|m| LastError {
            at: s
                .last_check
                .map_or_else(|| crate::time::format_time(i.now), |t| t.to_string()),
            message: m.clone(),
        }),
        last_poll: s.last_check.map(|t| t.to_string()),
        last_activation: i.last_activation.clone(),
        channel_sequence: seen.map(|c| c.sequence),
        channel_expires: i.channel_expires.clone(),
        rollout_bucket: i.rollout_bucket,
        written: crate::time::format_time(i.now),
    }
}

/// Cut `s` to at most `max` characters, marking the cut.
fn cut(s: &mut String, max: usize) {
    if s.chars().count() > max {
        *s = s.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
    }
}

/// The report's bytes, cut to fit [`MAX_REPORT_BYTES`]: messages are shortened first,
/// then the oldest blocked versions dropped, never the channel's own version (that
/// entry is what makes a machine count as `failed` for it).
pub fn fit(mut r: Report) -> Result<Vec<u8>, ReportError> {
    let bytes = r.to_bytes().map_err(ReportError::Serialise)?;
    if bytes.len() <= MAX_REPORT_BYTES {
        return Ok(bytes);
    }
    if let Some(h) = r.hostname.as_mut() {
        cut(h, 253);
    }
    let mut last = bytes.len();
    for max in [1024, 256, 64] {
        for b in &mut r.blocked {
            cut(&mut b.reason, max);
        }
        if let Some(h) = r.last_health.as_mut() {
            cut(&mut h.message, max);
        }
        if let Some(e) = r.last_error.as_mut() {
            cut(&mut e.message, max);
        }
        // Oldest first (times are RFC 3339 UTC, so they sort as text).
        r.blocked
            .sort_by(|a, b| a.at.cmp(&b.at).then(a.version.cmp(&b.version)));
        loop {
            let bytes = r.to_bytes().map_err(ReportError::Serialise)?;
            if bytes.len() <= MAX_REPORT_BYTES {
                return Ok(bytes);
            }
            last = bytes.len();
            let keep = r.channel_version.clone();
            match r
                .blocked
                .iter()
                .position(|b| Some(&b.version) != keep.as_ref())
            {
                Some(i) => {
                    r.blocked.remove(i);
                }
                None => break,
            }
        }
    }
    Err(ReportError::TooBig(last))
}

/// What the report says apart from when it was written and polled: two reports with
/// the same digest tell CI nothing new.
pub fn digest(r: &Report) -> String {
    let mut quiet = r.clone();
    quiet.written = String::new();
    quiet.last_poll = None;
    let bytes = serde_json::to_vec(&quiet).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Whether to write a report now: after a failed run, when what it says changed since
/// the last one written, and as a heartbeat at least every `every`.
pub fn due(
    last: Option<&ReportMark>,
    digest: &str,
    run_failed: bool,
    every: Duration,
    now: SystemTime,
) -> bool {
    let Some(last) = last else { return true };
    if run_failed || last.digest != digest {
        return true;
    }
    // A mark from the future (the clock was set back) is no reason to stay silent.
    now.duration_since(last.at.system_time())
        .map_or(true, |age| age >= every)
}

/// Where reports are written: a registry store (file://, s3://) or a web server that
/// accepts PUT (http(s)://).
pub enum Sink {
    Store(Box<dyn Store>),
    Http(Box<HttpRegistry>),
}

impl Sink {
    pub fn open(url: &str, opts: &TransportOptions) -> Result<Sink, ReportError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            HttpRegistry::new(url, opts)
                .map(|h| Sink::Http(Box::new(h)))
                .map_err(ReportError::Open)
        } else {
            transport::open_store(url, opts)
                .map(Sink::Store)
                .map_err(ReportError::Open)
        }
    }

    pub fn location(&self, key: &str) -> String {
        use crate::transport::Transport;
        match self {
            Sink::Store(s) => s.location(key),
            Sink::Http(h) => h.location(key),
        }
    }

    /// Write `bytes` at `key`, giving up after [`WRITE_TIMEOUT`].
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ReportError> {
        let location = self.location(key);
        let put = async {
            match self {
                Sink::Store(s) => s.put(key, bytes).await,
                Sink::Http(h) => h.put(key, bytes).await,
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, put).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ReportError::Write(e)),
            Err(_) => Err(ReportError::Timeout { location }),
        }
    }
}

/// Write `r` (cut to size) at its key; returns the mark to remember.
pub async fn write(sink: &Sink, r: &Report) -> Result<ReportMark, ReportError> {
    let key = report::report_key(&r.app, &r.channel, &r.machine);
    let mark = ReportMark {
        // `written` is ours, formatted from a Timestamp.
        at: r.written.parse().unwrap_or_else(|_| Timestamp::now()),
        digest: digest(r),
    };
    sink.put(&key, fit(r.clone())?).await?;
    Ok(mark)
}

/// This machine's hostname, as the kernel knows it.
pub fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty()).then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::state::{Blocked, ChannelSeen, Operation, Pending};
    use crate::registry::report::MachineState;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    const M: &str = "5df9d32e2c9dc147c8da96725bbe76ef70c55887f36efe25737458053792d82a";

    fn state() -> State {
        let mut s = State {
            previous: Some(v("1.0.0")),
            last_check: Some(ts("2026-11-30T05:00:00Z")),
            last_error: Some("cannot fetch release 1.2.0: connection refused".into()),
            last_health: Some(Operation {
                kind: crate::disk::history::Event::Health,
                version: Some(v("1.2.0")),
                at: ts("2026-11-30T04:00:00Z"),
                ok: false,
                message: "http check failed".into(),
            }),
            channel: Some(ChannelSeen {
                channel: Some("prod".parse().unwrap()),
                sequence: 12,
                version: Some(v("1.2.0")),
                ..Default::default()
            }),
            ..State::default()
        };
        s.blocked.insert(
            v("1.2.0"),
            Blocked {
                reason: "health check failed".into(),
                at: ts("2026-11-30T04:00:00Z"),
            },
        );
        s
    }

    fn build_from(s: &State) -> Report {
        let app: AppName = "my-app".parse().unwrap();
        let channel: Channel = "prod".parse().unwrap();
        let target: Target = "x86_64-linux".parse().unwrap();
        build(&Inputs {
            machine: M.parse().unwrap(),
            hostname: Some("vm-12".into()),
            app: &app,
            channel: &channel,
            target: &target,
            state: s,
            current: Some(v("1.1.0")),
            last_activation: Some("2026-11-30T03:00:00Z".into()),
            channel_expires: Some("2026-12-30T00:00:00Z".into()),
            rollout_bucket: Some(4321),
            now: at("2026-11-30T05:00:01Z"),
        })
    }

    #[test]
    fn built_from_the_state_and_readable_by_the_registry_side() {
        let r = build_from(&state());
        assert_eq!(r.state, MachineState::Failed);
        assert_eq!(r.channel_version, Some(v("1.2.0")));
        assert_eq!(r.channel_sequence, Some(12));
        assert_eq!(r.previous, Some(v("1.0.0")));
        assert_eq!(r.last_error.as_ref().unwrap().at, "2026-11-30T05:00:00Z");
        assert_eq!(
            r.last_health.as_ref().unwrap().message,
            "1.2.0: http check failed"
        );
        assert_eq!(r.blocked.len(), 1);
        let bytes = fit(r.clone()).unwrap();
        let back = Report::parse_at(
            &bytes,
            &"my-app".parse().unwrap(),
            at("2026-11-30T05:00:02Z"),
        )
        .unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn another_channel_in_the_state_is_not_reported_as_this_one() {
        let mut s = state();
        s.channel.as_mut().unwrap().channel = Some("staging".parse().unwrap());
        let r = build_from(&s);
        assert_eq!(r.channel_version, None);
        assert_eq!(r.channel_sequence, None);
        assert_eq!(r.state, MachineState::Behind);
    }

    #[test]
    fn oversized_reports_are_cut_keeping_the_channel_versions_block() {
        let mut s = state();
        s.pending = Some(Pending {
            kind: Some(crate::disk::state::Kind::Update),
            version: v("1.3.0"),
            previous: None,
            previous_link: None,
            started_at: ts("2026-11-30T05:00:00Z"),
            bake_until: None,
            undo: false,
            data_snapshot: false,
        });
        let long = "x".repeat(5000);
        s.last_error = Some(long.clone());
        for i in 0..400 {
            s.blocked.insert(
                v(&format!("0.{i}.0")),
                Blocked {
                    reason: long.clone(),
                    at: ts(&format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60)),
                },
            );
        }
        // The channel's version has the oldest block of all: it is kept anyway.
        s.blocked.get_mut(&v("1.2.0")).unwrap().at = ts("2025-01-01T00:00:00Z");
        let r = build_from(&s);
        assert!(r.to_bytes().unwrap().len() > MAX_REPORT_BYTES);
        let bytes = fit(r).unwrap();
        assert!(bytes.len() <= MAX_REPORT_BYTES, "{}", bytes.len());
        let back = Report::parse_at(
            &bytes,
            &"my-app".parse().unwrap(),
            at("2026-11-30T05:00:02Z"),
        )
        .unwrap();
        assert!(back.blocks(&v("1.2.0")));
        assert!(back.blocked.len() > 1 && back.blocked.len() < 401);
        // The newest blocks are the ones kept.
        assert!(back.blocks(&v("0.399.0")) && !back.blocks(&v("0.0.0")));
        assert!(back.last_error.unwrap().message.ends_with('…'));
        assert_eq!(back.pending, Some(v("1.3.0")));
        // A report that already fits is written as it is.
        let small = build_from(&state());
        assert_eq!(fit(small.clone()).unwrap(), small.to_bytes().unwrap());
    }

    #[test]
    fn when_a_report_is_due() {
        let now = at("2026-11-30T12:00:00Z");
        let every = Duration::from_secs(6 * 3600);
        let mark = |t: &str, d: &str| ReportMark {
            at: ts(t),
            digest: d.into(),
        };
        #[rustfmt::skip]
        let cases = [
            ("never written", None, "d", false, true),
            ("nothing changed, written an hour ago", Some(mark("2026-11-30T11:00:00Z", "d")), "d", false, false),
            ("something changed", Some(mark("2026-11-30T11:00:00Z", "old")), "d", false, true),
            ("the run failed", Some(mark("2026-11-30T11:00:00Z", "d")), "d", true, true),
            ("heartbeat due", Some(mark("2026-11-30T06:00:00Z", "d")), "d", false, true),
            ("heartbeat not yet", Some(mark("2026-11-30T06:00:01Z", "d")), "d", false, false),
            ("mark from the future", Some(mark("2027-01-01T00:00:00Z", "d")), "d", false, true),
        ];
        for (name, last, d, failed, want) in cases {
            assert_eq!(due(last.as_ref(), d, failed, every, now), want, "{name}");
        }
    }

    #[test]
    fn the_digest_ignores_only_the_timestamps_of_writing_and_polling() {
        let a = build_from(&state());
        let mut b = a.clone();
        b.written = "2026-11-30T06:00:00Z".into();
        b.last_poll = Some("2026-11-30T06:00:00Z".into());
        assert_eq!(digest(&a), digest(&b));
        b.state = MachineState::Healthy;
        assert_ne!(digest(&a), digest(&b));
    }
}
