use super::*;
use crate::registry::report::{BlockedVersion, LastError};

fn t(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-30T12:00:00Z";

/// A fresh, healthy report on `current`, written an hour ago, activated two hours ago.
fn report(n: u32, channel: &str, current: Option<&str>, state: MachineState) -> Report {
    Report {
        kind: "report".into(),
        schema_version: 1,
        machine: format!("{n:064x}").parse().unwrap(),
        hostname: Some(format!("vm-{n}")),
        app: "my-app".parse().unwrap(),
        channel: channel.parse().unwrap(),
        target: "x86_64-linux".parse().unwrap(),
        updraft_version: "0.1.0".into(),
        current: current.map(v),
        previous: None,
        pending: None,
        state,
        channel_version: None,
        blocked: vec![],
        last_health: None,
        last_error: None,
        last_poll: Some("2026-11-30T11:00:00Z".into()),
        last_activation: Some("2026-11-30T10:00:00Z".into()),
        channel_sequence: None,
        channel_expires: None,
        rollout_bucket: None,
        written: "2026-11-30T11:00:00Z".into(),
    }
}

fn blocked(mut r: Report, version: &str, reason: &str) -> Report {
    r.blocked.push(BlockedVersion {
        version: v(version),
        reason: reason.into(),
        at: "2026-11-30T10:30:00Z".into(),
    });
    r.state = MachineState::Failed;
    r
}

fn stale(mut r: Report) -> Report {
    r.written = "2026-11-28T00:00:00Z".into();
    r
}

fn activated(mut r: Report, at: Option<&str>) -> Report {
    r.last_activation = at.map(str::to_string);
    r
}

fn pending(mut r: Report, version: &str) -> Report {
    r.pending = Some(v(version));
    r.state = MachineState::Updating;
    r
}

use MachineState::*;

#[test]
fn freshness_is_measured_from_written() {
    let r = report(1, "prod", Some("1.0.0"), Healthy);
    let now = t(NOW);
    assert!(is_fresh(&r, now, Duration::from_secs(3600)));
    assert!(!is_fresh(&r, now, Duration::from_secs(3599)));
    assert!(!is_fresh(&stale(r), now, DEFAULT_STALE));
}

#[test]
fn gate_table() {
    let hour = Duration::from_secs(3600);
    let rule = |pct, min, soak| GateRule {
        require_healthy_percent: pct,
        min_machines: min,
        soak,
    };
    let healthy = |n| report(n, "staging", Some("1.1.0"), Healthy);
    // (what, reports, rule, met, (reported, healthy, soaking, failed, other, stale))
    type Row = (&'static str, Vec<Report>, GateRule, bool, [usize; 6]);
    let rows: Vec<Row> = vec![
        (
            "no reports at all",
            vec![],
            rule(0, 1, Duration::ZERO),
            false,
            [0, 0, 0, 0, 0, 0],
        ),
        (
            "all healthy",
            (0..5).map(healthy).collect(),
            rule(95, 1, Duration::ZERO),
            true,
            [5, 5, 0, 0, 0, 0],
        ),
        (
            "one of five failed: 80% < 95%",
            {
                let mut r: Vec<Report> = (0..4).map(healthy).collect();
                r.push(blocked(
                    report(9, "staging", Some("1.0.0"), Failed),
                    "1.1.0",
                    "health check failed",
                ));
                r
            },
            rule(95, 1, Duration::ZERO),
            false,
            [5, 4, 0, 1, 0, 0],
        ),
        (
            "one of five failed: 80% >= 80%",
            {
                let mut r: Vec<Report> = (0..4).map(healthy).collect();
                r.push(blocked(
                    report(9, "staging", Some("1.0.0"), Failed),
                    "1.1.0",
                    "health check failed",
                ));
                r
            },
            rule(80, 1, Duration::ZERO),
            true,
            [5, 4, 0, 1, 0, 0],
        ),
        (
            "too few machines",
            (0..2).map(healthy).collect(),
            rule(50, 3, Duration::ZERO),
            false,
            [2, 2, 0, 0, 0, 0],
        ),
        (
            "machines on other versions do not count",
            vec![healthy(1), report(2, "staging", Some("1.0.0"), Healthy)],
            rule(100, 1, Duration::ZERO),
            true,
            [1, 1, 0, 0, 0, 0],
        ),
        (
            "soaked two hours, one hour needed",
            (0..3).map(healthy).collect(),
            rule(100, 3, hour),
            true,
            [3, 3, 0, 0, 0, 0],
        ),
        (
            "not soaked long enough",
            (0..3).map(healthy).collect(),
            rule(100, 1, 3 * hour),
            false,
            [3, 0, 3, 0, 0, 0],
        ),
        (
            "unknown activation time never soaks",
            vec![activated(healthy(1), None)],
            rule(0, 1, hour),
            false,
            [1, 0, 1, 0, 0, 0],
        ),
        (
            "unknown activation time is fine without soak",
            vec![activated(healthy(1), None)],
            rule(100, 1, Duration::ZERO),
            true,
            [1, 1, 0, 0, 0, 0],
        ),
        (
            "activating counts as tried, not healthy",
            vec![
                healthy(1),
                pending(report(2, "staging", Some("1.0.0"), Healthy), "1.1.0"),
            ],
            rule(60, 1, Duration::ZERO),
            false,
            [2, 1, 0, 0, 1, 0],
        ),
        (
            "on it but behind (e.g. a later download failed)",
            vec![report(1, "staging", Some("1.1.0"), Behind)],
            rule(0, 1, Duration::ZERO),
            false,
            [1, 0, 0, 0, 1, 0],
        ),
        (
            "stale reports never vouch",
            vec![stale(healthy(1)), stale(healthy(2))],
            rule(0, 1, Duration::ZERO),
            false,
            [0, 0, 0, 0, 0, 2],
        ),
        (
            "stale failures do not block either",
            vec![
                healthy(1),
                stale(blocked(
                    report(2, "staging", Some("1.0.0"), Failed),
                    "1.1.0",
                    "x",
                )),
            ],
            rule(100, 1, Duration::ZERO),
            true,
            [1, 1, 0, 0, 0, 1],
        ),
    ];
    for (what, reports, rule, met, want) in rows {
        let refs: Vec<&Report> = reports.iter().collect();
        let g = gate(&refs, &v("1.1.0"), &rule, t(NOW), DEFAULT_STALE);
        let c = &g.counts;
        assert_eq!(
            [c.reported, c.healthy, c.soaking, c.failed, c.other, c.stale],
            want,
            "{what}"
        );
        assert_eq!(g.met, met, "{what}: {}", g.summary);
        assert!(
            g.summary
                .contains(&format!("{} of {}", c.healthy, c.reported)),
            "{what}: {}",
            g.summary
        );
    }
}

#[test]
fn guard_table() {
    let rule = |pct, min| GuardRule {
        max_failed_percent: pct,
        min_reports: min,
    };
    let ok = |n| report(n, "prod", Some("1.1.0"), Healthy);
    let failed = |n| {
        blocked(
            report(n, "prod", Some("1.0.0"), Failed),
            "1.1.0",
            "health check failed",
        )
    };
    let fleet = |good: u32, bad: u32| -> Vec<Report> {
        (0..good)
            .map(ok)
            .chain((100..100 + bad).map(failed))
            .collect()
    };
    // (what, reports, rule, failing, (tried, failed, stale))
    type Row = (&'static str, Vec<Report>, GuardRule, bool, [usize; 3]);
    let rows: Vec<Row> = vec![
        (
            "nobody tried it",
            vec![report(1, "prod", Some("1.0.0"), WaitingForRollout)],
            rule(10, 3),
            false,
            [0, 0, 0],
        ),
        (
            "20 of 100 failed, 10% allowed",
            fleet(80, 20),
            rule(10, 3),
            true,
            [100, 20, 0],
        ),
        (
            "exactly at the limit is not over it",
            fleet(90, 10),
            rule(10, 3),
            false,
            [100, 10, 0],
        ),
        (
            "just over the limit",
            fleet(89, 11),
            rule(10, 3),
            true,
            [100, 11, 0],
        ),
        (
            "two failures are too few to judge",
            fleet(0, 2),
            rule(10, 3),
            false,
            [2, 2, 0],
        ),
        (
            "three are enough",
            fleet(0, 3),
            rule(10, 3),
            true,
            [3, 3, 0],
        ),
        ("zero tolerance", fleet(50, 1), rule(0, 1), true, [51, 1, 0]),
        (
            "stale failures do not count",
            fleet(5, 0)
                .into_iter()
                .chain((0..5).map(|n| stale(failed(200 + n))))
                .collect(),
            rule(10, 3),
            false,
            [5, 0, 5],
        ),
        (
            "a failure of another version does not count",
            vec![
                ok(1),
                ok(2),
                blocked(report(3, "prod", Some("1.1.0"), Healthy), "1.0.5", "x"),
            ],
            rule(10, 1),
            false,
            [3, 0, 0],
        ),
    ];
    for (what, reports, rule, failing, want) in rows {
        let refs: Vec<&Report> = reports.iter().collect();
        let g = guard_verdict(&refs, &v("1.1.0"), &rule, t(NOW), DEFAULT_STALE);
        assert_eq!(
            [g.counts.tried, g.counts.failed, g.counts.stale],
            want,
            "{what}"
        );
        assert_eq!(g.failing, failing, "{what}: {}", g.summary);
    }
}

#[test]
fn fallback_is_what_most_machines_ran_before() {
    let mut on_bad = report(1, "prod", Some("1.1.0"), Healthy);
    on_bad.previous = Some(v("1.0.0"));
    let mut on_bad2 = report(2, "prod", Some("1.1.0"), Healthy);
    on_bad2.previous = Some(v("1.0.0"));
    let rolled_back = blocked(report(3, "prod", Some("1.0.0"), Failed), "1.1.0", "x");
    let odd = report(4, "prod", Some("0.9.0"), Pinned);
    let reports = [on_bad, on_bad2, rolled_back, odd.clone()];
    let refs: Vec<&Report> = reports.iter().collect();
    let now = t(NOW);
    assert_eq!(
        fallback_version(&refs, &v("1.1.0"), &[], now, DEFAULT_STALE),
        Some(v("1.0.0"))
    );
    // A yanked candidate is skipped.
    assert_eq!(
        fallback_version(&refs, &v("1.1.0"), &[v("1.0.0")], now, DEFAULT_STALE),
        Some(v("0.9.0"))
    );
    // Nothing to go back to.
    let only = [report(5, "prod", Some("1.1.0"), Healthy)];
    let refs: Vec<&Report> = only.iter().collect();
    assert_eq!(
        fallback_version(&refs, &v("1.1.0"), &[], now, DEFAULT_STALE),
        None
    );
    // Ties go to the newer version.
    let tie = [report(6, "prod", Some("1.0.1"), Healthy), odd];
    let refs: Vec<&Report> = tie.iter().collect();
    assert_eq!(
        fallback_version(&refs, &v("1.1.0"), &[], now, DEFAULT_STALE),
        Some(v("1.0.1"))
    );
}

fn channel_doc(channel: &str, version: &str) -> ChannelDoc {
    ChannelDoc {
        schema_version: 1,
        kind: "channel".into(),
        app: "my-app".parse().unwrap(),
        channel: channel.parse().unwrap(),
        version: v(version),
        sequence: 7,
        issued: "2026-11-30T00:00:00Z".into(),
        expires: "2026-12-30T00:00:00Z".into(),
        rollout: None,
        yanked: vec![],
        notes: None,
        extra: Default::default(),
    }
}

#[test]
fn status_counts_versions_states_stale_reasons_and_behind() {
    let mut failed_err = report(5, "prod", Some("1.0.0"), Behind);
    failed_err.last_error = Some(LastError {
        at: "2026-11-30T10:00:00Z".into(),
        message: "download timed out".into(),
    });
    let entries: Vec<Entry> = [
        report(1, "prod", Some("1.1.0"), Healthy),
        report(2, "prod", Some("1.1.0"), Healthy),
        blocked(
            report(3, "prod", Some("1.0.0"), Failed),
            "1.1.0",
            "health check failed",
        ),
        blocked(
            report(4, "prod", Some("1.0.0"), Failed),
            "1.1.0",
            "health check failed",
        ),
        failed_err,
        report(6, "prod", Some("1.0.0"), WaitingForRollout),
        stale(report(7, "prod", Some("0.9.0"), Healthy)),
        report(8, "staging", Some("1.2.0"), Healthy),
        report(9, "prod", None, Updating),
    ]
    .into_iter()
    .map(|r| Entry {
        key: format!("my-app/fleet/{}/{}.json", r.channel, r.machine),
        report: Ok(r),
    })
    .chain([Entry {
        key: "my-app/fleet/prod/junk.json".into(),
        report: Err(BadReport::NotAReportKey),
    }])
    .collect();
    let mut channels = BTreeMap::new();
    channels.insert("prod".parse().unwrap(), channel_doc("prod", "1.1.0"));
    channels.insert("dev".parse().unwrap(), channel_doc("dev", "1.3.0"));
    let opts = StatusOptions {
        now: t(NOW),
        stale: DEFAULT_STALE,
        list_machines: true,
    };
    let s = status(&"my-app".parse().unwrap(), &entries, &channels, &opts);
    assert_eq!(s.reports, 9);
    assert_eq!(s.bad.len(), 1);
    assert!(s.bad[0].why.contains("not a report name"));
    let names: Vec<&str> = s.channels.iter().map(|c| c.channel.as_str()).collect();
    assert_eq!(
        names,
        ["dev", "prod", "staging"],
        "a channel with a document but no reports is shown"
    );
    let prod = &s.channels[1];
    assert_eq!(prod.channel_version, Some(v("1.1.0")));
    assert_eq!(prod.machines, 7, "the stale machine is not counted");
    let row = |ver: Option<&str>| {
        prod.versions
            .iter()
            .find(|r| r.version.as_ref().map(|x| x.to_string()).as_deref() == ver)
            .unwrap()
    };
    assert_eq!(row(Some("1.1.0")).machines, 2);
    assert_eq!(row(Some("1.1.0")).states[&Healthy], 2);
    assert_eq!(
        row(Some("1.1.0")).states[&Failed],
        0,
        "every state is listed"
    );
    assert_eq!(row(Some("1.0.0")).machines, 4);
    assert_eq!(row(Some("1.0.0")).states[&Failed], 2);
    assert_eq!(row(Some("1.0.0")).states[&Behind], 1);
    assert_eq!(row(Some("1.0.0")).states[&WaitingForRollout], 1);
    assert_eq!(row(None).states[&Updating], 1);
    let order: Vec<Option<String>> = prod
        .versions
        .iter()
        .map(|r| r.version.as_ref().map(|v| v.to_string()))
        .collect();
    assert_eq!(
        order,
        [Some("1.1.0".to_string()), Some("1.0.0".into()), None],
        "newest first"
    );
    assert_eq!(prod.stale.len(), 1);
    assert_eq!(prod.stale[0].version, Some(v("0.9.0")));
    assert_eq!(prod.failure_reasons[0].reason, "health check failed");
    assert_eq!(prod.failure_reasons[0].machines, 2);
    assert_eq!(prod.failure_reasons[0].versions, [v("1.1.0")]);
    assert_eq!(prod.failure_reasons[1].reason, "download timed out");
    assert_eq!(
        prod.behind.len(),
        5,
        "4 on 1.0.0 and one with nothing installed"
    );
    let list = s.machine_list.as_ref().unwrap();
    assert_eq!(list.len(), 9);
    assert!(list.iter().any(|m| m.stale));
    // The JSON shape scripts read.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["kind"], "fleet-status");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(
        json["channels"][1]["versions"][0]["states"]["waiting-for-rollout"],
        0
    );
    assert_eq!(json["channels"][1]["versions"][1]["states"]["failed"], 2);
    assert_eq!(json["stale_after_seconds"], 86400);
    let without = status(
        &"my-app".parse().unwrap(),
        &entries,
        &channels,
        &StatusOptions {
            list_machines: false,
            ..opts
        },
    );
    assert!(serde_json::to_value(&without)
        .unwrap()
        .get("machine_list")
        .is_none());
}

#[test]
fn behind_falls_back_to_what_the_machine_saw() {
    let mut r = report(1, "prod", Some("1.0.0"), WaitingForRollout);
    r.channel_version = Some(v("1.1.0"));
    let entries = [Entry {
        key: String::new(),
        report: Ok(r),
    }];
    let opts = StatusOptions {
        now: t(NOW),
        stale: DEFAULT_STALE,
        list_machines: false,
    };
    let s = status(
        &"my-app".parse().unwrap(),
        &entries,
        &BTreeMap::new(),
        &opts,
    );
    assert_eq!(s.channels[0].channel_version, None);
    assert_eq!(s.channels[0].behind.len(), 1);
}

#[test]
fn long_reasons_are_cut() {
    let long = "x".repeat(10_000);
    let entries = [Entry {
        key: String::new(),
        report: Ok(blocked(
            report(1, "prod", Some("1.0.0"), Failed),
            "1.1.0",
            &long,
        )),
    }];
    let opts = StatusOptions {
        now: t(NOW),
        stale: DEFAULT_STALE,
        list_machines: false,
    };
    let s = status(
        &"my-app".parse().unwrap(),
        &entries,
        &BTreeMap::new(),
        &opts,
    );
    assert!(s.channels[0].failure_reasons[0].reason.chars().count() <= MAX_REASON_CHARS + 1);
}

#[test]
fn printable_escapes_what_a_terminal_would_act_on() {
    let cases = [
        ("vm-12", "vm-12"),
        ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("bell\u{7}", "bell\\u{7}"),
        ("c1\u{9b}2J", "c1\\u{9b}2J"),
        ("rtl\u{202e}gnp.exe", "rtl\\u{202e}gnp.exe"),
        ("back\\slash", "back\\\\slash"),
        ("ünïcödé", "ünïcödé"),
    ];
    for (raw, shown) in cases {
        assert_eq!(printable(raw), shown, "{raw:?}");
    }
}
