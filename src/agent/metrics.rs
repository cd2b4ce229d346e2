//! The Prometheus textfile (`metrics_file`): node_exporter's textfile collector turns it
//! into metrics, so a machine that fell behind its channel alerts without any server of
//! ours. Rendered from the same report the fleet sees ([`render`] is pure), and replaced
//! atomically so the collector never reads half a file.
//!
//! Every sample carries an `app` label: two apps on one host write two files, and the
//! collector refuses the same series in two files.

use std::fmt::Write as _;
use std::path::Path;

use crate::registry::report::{MachineState, Report};
use crate::time::Timestamp;

/// Escape a label value as the text format requires: `\`, `"` and newline.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn unix_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds of an RFC 3339 time; None when absent or unreadable.
fn unix(t: Option<&str>) -> Option<u64> {
    crate::time::parse_time(t?).ok().map(unix_of)
}

/// The textfile for `r`; `last_success` is when a run last ended without an error.
pub fn render(r: &Report, last_success: Option<Timestamp>) -> String {
    let app = format!("app=\"{}\"", label(r.app.as_str()));
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let version = r
        .current
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    family(
        "updraft_info",
        "The version this machine runs (empty: none) and the channel it follows; always 1.",
        &[(
            format!(
                "{app},channel=\"{}\",version=\"{}\"",
                label(r.channel.as_str()),
                label(&version)
            ),
            "1".into(),
        )],
    );
    let states: Vec<(String, String)> = MachineState::ALL
        .iter()
        .map(|s| {
            (
                format!("{app},state=\"{s}\""),
                u8::from(*s == r.state).to_string(),
            )
        })
        .collect();
    family(
        "updraft_state",
        "1 for where this machine stands against its channel (README \"Agents\"), 0 for the others.",
        &states,
    );
    family(
        "updraft_last_run_timestamp_seconds",
        "When the agent last polled the registry (Unix time; 0: never).",
        &[(
            app.clone(),
            unix(r.last_poll.as_deref()).unwrap_or(0).to_string(),
        )],
    );
    family(
        "updraft_last_success_timestamp_seconds",
        "When an agent run last ended without an error (Unix time; 0: never).",
        &[(
            app.clone(),
            last_success
                .map_or(0, |t| unix_of(t.system_time()))
                .to_string(),
        )],
    );
    let behind = matches!(r.state, MachineState::Failed | MachineState::Behind);
    family(
        "updraft_behind_channel",
        "1 when this machine is not on its channel's version and is not waiting for a rollout wave or pinned (state failed or behind).",
        &[(app.clone(), u8::from(behind).to_string())],
    );
    family(
        "updraft_blocked_versions",
        "Versions blocked here after failing their checks (`updraft unblock V` allows one again).",
        &[(app.clone(), r.blocked.len().to_string())],
    );
    if let Some(expires) = unix(r.channel_expires.as_deref()) {
        family(
            "updraft_channel_expiry_timestamp_seconds",
            "When the last accepted channel document expires (Unix time): polls fail after it unless CI signs a fresh one.",
            &[(app, expires.to_string())],
        );
    }
    out
}

/// Replace the textfile atomically. The directory must exist (node_exporter's
/// `--collector.textfile.directory`).
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let bytes = serde_json::json!({
            "kind": "report", "schema_version": 1,
            "machine": "5df9d32e2c9dc147c8da96725bbe76ef70c55887f36efe25737458053792d82a",
            "app": "my-app", "channel": "prod", "target": "x86_64-linux",
            "updraft_version": "0.1.0", "current": "1.1.0", "state": "failed",
            "channel_version": "1.2.0",
            "blocked": [{"version": "1.2.0", "reason": "health", "at": "2026-11-30T04:00:00Z"}],
            "last_poll": "2026-11-30T05:00:00Z",
            "channel_expires": "2026-12-30T00:00:00Z",
            "written": "2026-11-30T05:00:01Z"
        });
        serde_json::from_value(bytes).unwrap()
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&report(), Some("2026-11-30T04:00:00Z".parse().unwrap()));
        for line in [
            "updraft_info{app=\"my-app\",channel=\"prod\",version=\"1.1.0\"} 1",
            "updraft_state{app=\"my-app\",state=\"failed\"} 1",
            "updraft_state{app=\"my-app\",state=\"healthy\"} 0",
            "updraft_last_run_timestamp_seconds{app=\"my-app\"} 1796014800",
            "updraft_last_success_timestamp_seconds{app=\"my-app\"} 1796011200",
            "updraft_behind_channel{app=\"my-app\"} 1",
            "updraft_blocked_versions{app=\"my-app\"} 1",
            "updraft_channel_expiry_timestamp_seconds{app=\"my-app\"} 1798588800",
            "# TYPE updraft_behind_channel gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        let families = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(families, 7);
        assert_eq!(
            families,
            text.lines().filter(|l| l.starts_with("# TYPE")).count()
        );
    }

    #[test]
    fn unknowns_are_zero_or_left_out() {
        let mut r = report();
        r.current = None;
        r.last_poll = None;
        r.channel_expires = None;
        r.state = MachineState::WaitingForRollout;
        let text = render(&r, None);
        assert!(text.contains("version=\"\"} 1"), "{text}");
        assert!(text.contains("updraft_last_run_timestamp_seconds{app=\"my-app\"} 0"));
        assert!(text.contains("updraft_last_success_timestamp_seconds{app=\"my-app\"} 0"));
        assert!(text.contains("updraft_behind_channel{app=\"my-app\"} 0"));
        assert!(!text.contains("updraft_channel_expiry"));
    }

    #[test]
    fn label_values_are_escaped() {
        let cases = [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("a\\b", "a\\\\b"),
            ("a\nb", "a\\nb"),
            ("\\\"\n", "\\\\\\\"\\n"),
        ];
        for (raw, want) in cases {
            assert_eq!(label(raw), want, "{raw:?}");
        }
    }
}
