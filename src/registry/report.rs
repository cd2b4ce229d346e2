//! Machine reports: what each machine tells the registry about itself, and how a reader
//! decides whether to believe the shape of one.
//!
//! A report lives at `<app>/fleet/<channel>/<machine>.json` (registry-spec "Machine
//! reports"). Reports are written by anyone holding report credentials and are never
//! signed, so every reader treats them as hostile input: [`Report::parse`] bounds the size,
//! refuses anything that is not exactly a schema-1 report for the expected app, and refuses
//! a report dated in the future (which would otherwise never go stale). A refused report
//! is shown to operators as bad; it is never counted, and no report ever decides what a
//! machine installs.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::rollout::BUCKETS;

/// The report format this implementation writes and reads.
pub const REPORT_SCHEMA_VERSION: u32 = 1;
/// The largest report a reader accepts, and so the largest a writer may write.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;
/// How far in the future `written` may be before the report is refused: clocks on a fleet
/// drift, but a report from the far future would count as fresh forever.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The app-specific machine id that names a report: 64 lowercase hex digits (an
/// HMAC-SHA256 keyed by the machine id over the app name). Checked in the constructor and
/// in `Deserialize`, because it becomes part of an object key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppMachineId(String);

impl AppMachineId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("machine id {0:?} must be 64 lowercase hex digits (HMAC-SHA256 of the app name keyed by the machine id)")]
pub struct BadMachineId(pub String);

impl FromStr for AppMachineId {
    type Err = BadMachineId;
    fn from_str(s: &str) -> Result<Self, BadMachineId> {
        let ok = s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(BadMachineId(s.chars().take(80).collect()))
        }
    }
}

impl fmt::Display for AppMachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AppMachineId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AppMachineId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a machine stands against its channel, as the machine itself computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineState {
    /// On the channel's version (or the one it is admitted to), last run fine.
    Healthy,
    /// An activation is in progress.
    Updating,
    /// The channel's version is blocked here (it was rolled back).
    Failed,
    /// Not on the channel's version for another reason (download, verification, disk...).
    Behind,
    /// A pin is set.
    Pinned,
    /// The channel has a newer version this machine is not yet admitted to.
    WaitingForRollout,
}

impl MachineState {
    pub const ALL: [MachineState; 6] = [
        MachineState::Healthy,
        MachineState::Updating,
        MachineState::Failed,
        MachineState::Behind,
        MachineState::Pinned,
        MachineState::WaitingForRollout,
    ];

    /// The name as written in reports and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Healthy => "healthy",
            MachineState::Updating => "updating",
            MachineState::Failed => "failed",
            MachineState::Behind => "behind",
            MachineState::Pinned => "pinned",
            MachineState::WaitingForRollout => "waiting-for-rollout",
        }
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version this machine refuses to run again, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedVersion {
    pub version: Version,
    pub reason: String,
    pub at: String,
}

/// The result of the last health check run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub ok: bool,
    pub at: String,
    pub message: String,
}

/// The last error a run ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub at: String,
    pub message: String,
}

/// `<app>/fleet/<channel>/<machine>.json`, schema_version 1. Unknown fields are ignored
/// when reading, so a newer writer can add fields without breaking older readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always "report".
    pub kind: String,
    pub schema_version: u32,
    pub machine: AppMachineId,
    /// Omitted when the machine is configured not to share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub app: AppName,
    pub channel: Channel,
    pub target: Target,
    pub updraft_version: String,
    #[serde(default)]
    pub current: Option<Version>,
    #[serde(default)]
    pub previous: Option<Version>,
    /// The version of an activation in progress.
    #[serde(default)]
    pub pending: Option<Version>,
    pub state: MachineState,
    /// What the channel asked for at the last poll.
    #[serde(default)]
    pub channel_version: Option<Version>,
    #[serde(default)]
    pub blocked: Vec<BlockedVersion>,
    #[serde(default)]
    pub last_health: Option<HealthResult>,
    #[serde(default)]
    pub last_error: Option<LastError>,
    #[serde(default)]
    pub last_poll: Option<String>,
    /// When `current` was activated; a promotion gate's soak is measured from it.
    #[serde(default)]
    pub last_activation: Option<String>,
    #[serde(default)]
    pub channel_sequence: Option<u64>,
    #[serde(default)]
    pub channel_expires: Option<String>,
    /// This machine's rollout bucket (0..BUCKETS) for `channel_version`.
    #[serde(default)]
    pub rollout_bucket: Option<u32>,
    pub written: String,
}

/// Why a report was refused. Shown next to the report's key in `fleet status`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BadReport {
    #[error("larger than the {MAX_REPORT_BYTES} bytes a report may hold{}", size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooBig { size: Option<u64> },
    #[error("could not be read: {why}")]
    Unreadable { why: String },
    #[error("not a report name (expected <app>/fleet/<channel>/<64 hex digits>.json)")]
    NotAReportKey,
    #[error("not a valid report: {why}")]
    Malformed { why: String },
    #[error("kind is {found:?}, not \"report\"")]
    WrongKind { found: String },
    #[error("schema_version {found}; this updraft reads only {REPORT_SCHEMA_VERSION} (upgrade updraft where you run this)")]
    UnsupportedSchema { found: u32 },
    #[error("written for app {found:?}, not {expected:?}")]
    WrongApp { expected: String, found: String },
    #[error("{field} {value:?} is not an RFC 3339 UTC time ending in Z")]
    BadTime { field: &'static str, value: String },
    #[error("written at {written}, more than {} ahead of now ({now}): a clock is wrong or the report is forged", humantime::format_duration(MAX_CLOCK_SKEW))]
    FromTheFuture { written: String, now: String },
    #[error("rollout_bucket {0} is outside 0..{BUCKETS}")]
    BadBucket(u32),
    #[error("stored at {key}, but it is for channel {channel} and machine {machine}")]
    WrongKey {
        key: String,
        channel: String,
        machine: String,
    },
}

/// Make a serde error short and free of the hostile input it may quote.
fn malformed(e: serde_json::Error) -> BadReport {
    let mut why = e.to_string();
    if why.len() > 200 {
        let mut cut = 200;
        while !why.is_char_boundary(cut) {
            cut -= 1;
        }
        why.truncate(cut);
        why.push('…');
    }
    BadReport::Malformed { why }
}

/// Parse a report time field, keeping the field name for the operator.
fn check_time(field: &'static str, value: &str) -> Result<SystemTime, BadReport> {
    crate::time::parse_time(value).map_err(|_| BadReport::BadTime {
        field,
        value: value.chars().take(64).collect(),
    })
}

impl Report {
    /// Parse and validate untrusted report bytes for `expected_app`, judging `written`
    /// against the clock now.
    pub fn parse(bytes: &[u8], expected_app: &AppName) -> Result<Report, BadReport> {
        Report::parse_at(bytes, expected_app, SystemTime::now())
    }

    /// [`Report::parse`] with an explicit `now`, so the future-date rule is testable.
    pub fn parse_at(
        bytes: &[u8],
        expected_app: &AppName,
        now: SystemTime,
    ) -> Result<Report, BadReport> {
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(BadReport::TooBig {
                size: Some(bytes.len() as u64),
            });
        }
        // Check kind, schema and app before the typed parse, so a report from another
        // format or a newer writer is refused for that reason, not for a missing field.
        let loose: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
        let Some(obj) = loose.as_object() else {
            return Err(BadReport::Malformed {
                why: "not a JSON object".into(),
            });
        };
        match obj.get("kind") {
            Some(serde_json::Value::String(k)) if k == "report" => {}
            Some(serde_json::Value::String(k)) => {
                return Err(BadReport::WrongKind {
                    found: k.chars().take(64).collect(),
                })
            }
            _ => {
                return Err(BadReport::Malformed {
                    why: "missing string field `kind`".into(),
                })
            }
        }
        match obj
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(REPORT_SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(BadReport::UnsupportedSchema {
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                })
            }
            None => {
                return Err(BadReport::Malformed {
                    why: "missing integer field `schema_version`".into(),
                })
            }
        }
        match obj.get("app").and_then(serde_json::Value::as_str) {
            Some(a) if a == expected_app.as_str() => {}
            Some(a) => {
                return Err(BadReport::WrongApp {
                    expected: expected_app.to_string(),
                    found: a.chars().take(64).collect(),
                })
            }
            None => {
                return Err(BadReport::Malformed {
                    why: "missing string field `app`".into(),
                })
            }
        }
        let report: Report = serde_json::from_value(loose).map_err(malformed)?;
        report.check(now)?;
        Ok(report)
    }

    /// The rules serde cannot express: times well-formed, `written` not in the future,
    /// the bucket in range.
    fn check(&self, now: SystemTime) -> Result<(), BadReport> {
        let written = check_time("written", &self.written)?;
        if written > now + MAX_CLOCK_SKEW {
            return Err(BadReport::FromTheFuture {
                written: self.written.clone(),
                now: crate::time::format_time(now),
            });
        }
        let optional = [
            ("last_poll", &self.last_poll),
            ("last_activation", &self.last_activation),
            ("channel_expires", &self.channel_expires),
        ];
        for (field, value) in optional {
            if let Some(v) = value {
                check_time(field, v)?;
            }
        }
        for b in &self.blocked {
            check_time("blocked.at", &b.at)?;
        }
        if let Some(h) = &self.last_health {
            check_time("last_health.at", &h.at)?;
        }
        if let Some(e) = &self.last_error {
            check_time("last_error.at", &e.at)?;
        }
        if let Some(b) = self.rollout_bucket.filter(|b| *b >= BUCKETS) {
            return Err(BadReport::BadBucket(b));
        }
        Ok(())
    }

    /// A report is only believed at the key it names: otherwise one machine could write a
    /// second report under another key and be counted twice.
    pub fn check_key(&self, key: &str) -> Result<(), BadReport> {
        if report_key(&self.app, &self.channel, &self.machine) == key {
            Ok(())
        } else {
            Err(BadReport::WrongKey {
                key: key.to_string(),
                channel: self.channel.to_string(),
                machine: self.machine.to_string(),
            })
        }
    }

    /// When the report was written (validated by [`Report::parse`]).
    pub fn written_at(&self) -> Option<SystemTime> {
        crate::time::parse_time(&self.written).ok()
    }

    /// When `current` was activated, if known.
    pub fn activated_at(&self) -> Option<SystemTime> {
        self.last_activation
            .as_deref()
            .and_then(|t| crate::time::parse_time(t).ok())
    }

    /// Whether `v` is blocked on this machine.
    pub fn blocks(&self, v: &Version) -> bool {
        self.blocked.iter().any(|b| &b.version == v)
    }

    /// The bytes a writer stores: compact JSON and a final newline. A writer must keep
    /// them within [`MAX_REPORT_BYTES`] (truncating messages and the blocked list).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec(self)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The prefix under which every report of `app` lives.
pub fn fleet_prefix(app: &AppName) -> String {
    format!("{app}/fleet/")
}

/// The channel and machine a key under [`fleet_prefix`] names, or None for anything
/// that is not a report's key (a stray object, a nested path, a bad name).
pub fn parse_report_key(app: &AppName, key: &str) -> Option<(Channel, AppMachineId)> {
    let rest = key.strip_prefix(&fleet_prefix(app))?;
    let (channel, file) = rest.split_once('/')?;
    let machine = file.strip_suffix(".json")?;
    Some((channel.parse().ok()?, machine.parse().ok()?))
}

/// Where the report of `machine` on `channel` of `app` is stored.
pub fn report_key(app: &AppName, channel: &Channel, machine: &AppMachineId) -> String {
    format!("{app}/fleet/{channel}/{machine}.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const M: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn now() -> SystemTime {
        humantime::parse_rfc3339("2026-11-30T05:00:00Z").unwrap()
    }

    fn app() -> AppName {
        "my-app".parse().unwrap()
    }

    fn good() -> Value {
        json!({
            "kind": "report",
            "schema_version": 1,
            "machine": M,
            "hostname": "vm-12",
            "app": "my-app",
            "channel": "prod",
            "target": "x86_64-linux",
            "updraft_version": "0.1.0",
            "current": "1.1.0",
            "previous": "1.0.0",
            "pending": null,
            "state": "healthy",
            "channel_version": "1.1.0",
            "blocked": [{"version": "1.2.0", "reason": "health check failed", "at": "2026-11-30T04:00:00Z"}],
            "last_health": {"ok": true, "at": "2026-11-30T04:59:00Z", "message": "2 checks passed"},
            "last_error": null,
            "last_poll": "2026-11-30T04:59:00Z",
            "last_activation": "2026-11-30T04:00:00Z",
            "channel_sequence": 12,
            "channel_expires": "2026-12-30T00:00:00Z",
            "rollout_bucket": 4321,
            "written": "2026-11-30T04:59:01Z"
        })
    }

    fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
        let mut v = good();
        edit(v.as_object_mut().unwrap());
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_good_report_parses_and_round_trips() {
        let bytes = serde_json::to_vec(&good()).unwrap();
        let r = Report::parse_at(&bytes, &app(), now()).unwrap();
        assert_eq!(r.state, MachineState::Healthy);
        assert_eq!(r.current.as_ref().unwrap().to_string(), "1.1.0");
        assert!(r.blocks(&"1.2.0".parse().unwrap()));
        assert_eq!(r.rollout_bucket, Some(4321));
        let again = Report::parse_at(&r.to_bytes().unwrap(), &app(), now()).unwrap();
        assert_eq!(again, r);
        assert!(r.check_key(&format!("my-app/fleet/prod/{M}.json")).is_ok());
    }

    #[test]
    fn lenient_where_the_format_allows() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "unknown fields ignored",
                with(|o| {
                    o.insert("future_field".into(), json!({"x": 1}));
                }),
            ),
            (
                "optional fields missing",
                with(|o| {
                    for k in [
                        "hostname",
                        "current",
                        "previous",
                        "pending",
                        "blocked",
                        "last_health",
                        "last_error",
                        "last_poll",
                        "last_activation",
                        "channel_sequence",
                        "channel_expires",
                        "rollout_bucket",
                        "channel_version",
                    ] {
                        o.remove(k);
                    }
                }),
            ),
            (
                "written within the skew",
                with(|o| {
                    o.insert("written".into(), json!("2026-11-30T05:04:59Z"));
                }),
            ),
            (
                "control characters are data, escaped on display",
                with(|o| {
                    o.insert("hostname".into(), json!("\u{1b}[31mred"));
                }),
            ),
        ];
        for (name, bytes) in cases {
            assert!(
                Report::parse_at(&bytes, &app(), now()).is_ok(),
                "{name}: {:?}",
                Report::parse_at(&bytes, &app(), now())
            );
        }
        for s in MachineState::ALL {
            let bytes = with(|o| {
                o.insert("state".into(), json!(s.as_str()));
            });
            assert_eq!(Report::parse_at(&bytes, &app(), now()).unwrap().state, s);
        }
    }

    #[test]
    fn hostile_or_wrong_reports_are_refused() {
        type Check = fn(&BadReport) -> bool;
        let mut huge = good();
        huge["hostname"] = json!("x".repeat(MAX_REPORT_BYTES));
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("too big", serde_json::to_vec(&huge).unwrap(), |e| {
                matches!(e, BadReport::TooBig { .. })
            }),
            ("not json", b"{\"kind\": \"report\"".to_vec(), |e| {
                matches!(e, BadReport::Malformed { .. })
            }),
            ("not an object", b"[1,2]".to_vec(), |e| {
                matches!(e, BadReport::Malformed { .. })
            }),
            ("empty", Vec::new(), |e| {
                matches!(e, BadReport::Malformed { .. })
            }),
            (
                "wrong kind",
                with(|o| {
                    o.insert("kind".into(), json!("channel"));
                }),
                |e| matches!(e, BadReport::WrongKind { .. }),
            ),
            (
                "no kind",
                with(|o| {
                    o.remove("kind");
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "newer schema",
                with(|o| {
                    o.insert("schema_version".into(), json!(2));
                }),
                |e| matches!(e, BadReport::UnsupportedSchema { found: 2 }),
            ),
            (
                "schema as text",
                with(|o| {
                    o.insert("schema_version".into(), json!("1"));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "wrong app",
                with(|o| {
                    o.insert("app".into(), json!("other"));
                }),
                |e| matches!(e, BadReport::WrongApp { .. }),
            ),
            (
                "short machine id",
                with(|o| {
                    o.insert("machine".into(), json!("abc"));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "upper-case machine id",
                with(|o| {
                    o.insert("machine".into(), json!(M.to_uppercase()));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "path in machine id",
                with(|o| {
                    o.insert("machine".into(), json!(format!("../{}", &M[3..])));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "unknown state",
                with(|o| {
                    o.insert("state".into(), json!("exploded"));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "bad version",
                with(|o| {
                    o.insert("current".into(), json!("../1"));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "bad channel",
                with(|o| {
                    o.insert("channel".into(), json!("a/b"));
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
            (
                "future written",
                with(|o| {
                    o.insert("written".into(), json!("2026-11-30T05:05:01Z"));
                }),
                |e| matches!(e, BadReport::FromTheFuture { .. }),
            ),
            (
                "far future written",
                with(|o| {
                    o.insert("written".into(), json!("2099-01-01T00:00:00Z"));
                }),
                |e| matches!(e, BadReport::FromTheFuture { .. }),
            ),
            (
                "written not UTC",
                with(|o| {
                    o.insert("written".into(), json!("2026-11-30T05:00:00+01:00"));
                }),
                |e| {
                    matches!(
                        e,
                        BadReport::BadTime {
                            field: "written",
                            ..
                        }
                    )
                },
            ),
            (
                "bad activation time",
                with(|o| {
                    o.insert("last_activation".into(), json!("yesterday"));
                }),
                |e| {
                    matches!(
                        e,
                        BadReport::BadTime {
                            field: "last_activation",
                            ..
                        }
                    )
                },
            ),
            (
                "bad blocked time",
                with(|o| {
                    o["blocked"][0]["at"] = json!("x");
                }),
                |e| {
                    matches!(
                        e,
                        BadReport::BadTime {
                            field: "blocked.at",
                            ..
                        }
                    )
                },
            ),
            (
                "bucket out of range",
                with(|o| {
                    o.insert("rollout_bucket".into(), json!(BUCKETS));
                }),
                |e| matches!(e, BadReport::BadBucket(_)),
            ),
            (
                "missing written",
                with(|o| {
                    o.remove("written");
                }),
                |e| matches!(e, BadReport::Malformed { .. }),
            ),
        ];
        for (name, bytes, check) in cases {
            match Report::parse_at(&bytes, &app(), now()) {
                Ok(_) => panic!("{name}: accepted"),
                Err(e) => assert!(check(&e), "{name}: wrong refusal {e:?}"),
            }
        }
    }

    #[test]
    fn a_report_is_believed_only_at_its_own_key() {
        let r = Report::parse_at(&serde_json::to_vec(&good()).unwrap(), &app(), now()).unwrap();
        let other = "f".repeat(64);
        for key in [
            format!("my-app/fleet/staging/{M}.json"),
            format!("my-app/fleet/prod/{other}.json"),
            format!("my-app/fleet/prod/{M}"),
        ] {
            assert!(
                matches!(r.check_key(&key), Err(BadReport::WrongKey { .. })),
                "{key}"
            );
        }
    }

    #[test]
    fn keys_and_machine_ids() {
        let m: AppMachineId = M.parse().unwrap();
        assert_eq!(
            report_key(&app(), &"prod".parse().unwrap(), &m),
            format!("my-app/fleet/prod/{M}.json")
        );
        assert_eq!(fleet_prefix(&app()), "my-app/fleet/");
        let key = format!("my-app/fleet/prod/{M}.json");
        assert_eq!(
            parse_report_key(&app(), &key),
            Some(("prod".parse().unwrap(), m.clone()))
        );
        for bad in [
            format!("other/fleet/prod/{M}.json"),
            format!("my-app/fleet/prod/x/{M}.json"),
            format!("my-app/fleet/prod/{M}.json.tmp"),
            format!("my-app/fleet/../{M}.json"),
            "my-app/fleet/prod/notes.txt".to_string(),
            format!("my-app/fleet/{M}.json"),
        ] {
            assert_eq!(parse_report_key(&app(), &bad), None, "{bad}");
        }
        for bad in ["", "g".repeat(64).as_str(), &M[1..], &format!("{M}0")] {
            assert!(bad.parse::<AppMachineId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_do_not_echo_unbounded_input() {
        let bytes = with(|o| {
            o.insert("app".into(), json!("x".repeat(10_000)));
        });
        let e = Report::parse_at(&bytes, &app(), now())
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{}", e.len());
    }

    /// registry-spec/report.schema.json must describe what we write.
    #[test]
    fn schema_matches_what_we_write() {
        let schema: Value =
            serde_json::from_str(include_str!("../../registry-spec/report.schema.json")).unwrap();
        let r = Report::parse_at(&serde_json::to_vec(&good()).unwrap(), &app(), now()).unwrap();
        let written: Value = serde_json::to_value(&r).unwrap();
        crate::registry::assert_schema_describes(&schema, &written, REPORT_SCHEMA_VERSION);
        let props = schema["properties"].as_object().unwrap();
        let states: Vec<&str> = props["state"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = MachineState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, ours);
        assert_eq!(schema["x-max-bytes"], json!(MAX_REPORT_BYTES));
    }
}
