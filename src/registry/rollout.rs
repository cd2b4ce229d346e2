//! Staged rollout: which share of the fleet may take a release, and when.
//!
//! The types are part of the signed channel document (see registry-spec/). The decision
//! of whether *this* machine is inside the share is pure and deterministic.

use serde::{Deserialize, Serialize};

/// A rollout in a channel document. `percent` alone admits a fixed share; `waves` widen
/// the share over time without re-publishing (Bottlerocket-style update waves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Share of machines (0-100) admitted now. Ignored when `waves` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// From each wave's `start` (RFC 3339), that wave's share of the fleet is admitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
    /// Set by `updraft guard` (or an operator) when the release misbehaves: the share is
    /// frozen at what it was at `halted.at`, so the rollout never widens until resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halt>,
}

/// A halted rollout: when it stopped widening and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halt {
    /// RFC 3339 UTC time the share was frozen at.
    pub at: String,
    /// Shown to operators by `updraft why` and `fleet status`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// RFC 3339 UTC time, e.g. "2026-11-25T10:00:00Z".
    pub start: String,
    /// Share of the fleet (0-100) admitted from `start` on.
    pub percent: u8,
}

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// Buckets per machine: 10 000 gives shares to a hundredth of a percent.
pub const BUCKETS: u32 = 10_000;

/// Whether this machine may take the release now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Outside the share admitted now (`share_now` percent). `next` is the first announced
    /// wave that will admit this machine (its start and percent), if any will.
    NotYet {
        share_now: u8,
        next: Option<(SystemTime, u8)>,
    },
}

/// This machine's place in the fleet for one release, in `0..BUCKETS`.
///
/// Hashing the version in reshuffles the fleet for every release, so the same machines are
/// not always the canaries; hashing the app in keeps two apps on one machine independent.
/// The same inputs always give the same bucket, so a machine never flips in and out.
pub fn bucket(machine_id: &str, app: &str, version: &str) -> u32 {
    let d = Sha256::digest(format!("{machine_id}\n{app}\n{version}").as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % BUCKETS
}

/// A wave's start, or None when it is malformed: such a wave is treated as never started
/// (the manifest module already refuses documents holding one).
fn wave_start(w: &Wave) -> Option<SystemTime> {
    crate::time::parse_time(&w.start).ok()
}

/// The time a halt froze the share at. A malformed time (the manifest module refuses
/// documents holding one) freezes at the epoch, before any wave: a broken halt must not
/// widen anything.
fn halt_time(h: &Halt) -> SystemTime {
    crate::time::parse_time(&h.at).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The share of the fleet (percent) admitted at `now`. No rollout, or one that says
/// nothing, admits everybody. A halted rollout admits what it admitted when it was
/// halted, however late `now` is: waves that start after the halt never take effect.
pub fn share(rollout: Option<&Rollout>, now: SystemTime) -> u8 {
    let Some(r) = rollout else { return 100 };
    let now = match &r.halted {
        Some(h) => now.min(halt_time(h)),
        None => now,
    };
    if r.waves.is_empty() {
        return r.percent.unwrap_or(100).min(100);
    }
    // Spec §10: the percent of the last wave that has started (starts are strictly
    // increasing), not the largest: every implementation must admit the same share.
    r.waves
        .iter()
        .filter(|w| wave_start(w).is_some_and(|t| t <= now))
        .max_by_key(|w| wave_start(w))
        .map_or(0, |w| w.percent.min(100))
}

fn admits(percent: u8, bucket: u32) -> bool {
    bucket < u32::from(percent.min(100)) * (BUCKETS / 100)
}

/// Whether the machine in `bucket` may take the release at `now`.
pub fn admission(rollout: Option<&Rollout>, bucket: u32, now: SystemTime) -> Admission {
    let share_now = share(rollout, now);
    if admits(share_now, bucket) {
        return Admission::Admitted;
    }
    // A halted rollout announces no next wave: nothing widens until it is resumed.
    let next = rollout.filter(|r| r.halted.is_none()).and_then(|r| {
        r.waves
            .iter()
            .filter_map(|w| Some((wave_start(w)?, w.percent)))
            .filter(|(t, p)| *t > now && admits(*p, bucket))
            .min_by_key(|(t, _)| *t)
    });
    Admission::NotYet { share_now, next }
}

/// Parse "0s=10,1h=50,1d=100" into waves starting at `now + offset`.
pub fn parse_waves(spec: &str, now: SystemTime) -> Result<Vec<Wave>, String> {
    let mut out = Vec::new();
    let mut last: Option<Duration> = None;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (off, pct) = part
            .split_once('=')
            .ok_or_else(|| format!("wave {part:?} must look like OFFSET=PERCENT, e.g. 1h=50"))?;
        let off = humantime::parse_duration(off.trim())
            .map_err(|e| format!("wave offset {off:?}: {e} (write e.g. 0s, 30m, 1h, 1d)"))?;
        let pct: u8 = pct
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| format!("wave percent {pct:?} must be a whole number 0-100"))?;
        if last.is_some_and(|l| off <= l) {
            return Err("wave offsets must increase (e.g. 0s=10,1h=50,1d=100)".into());
        }
        last = Some(off);
        out.push(Wave {
            start: crate::time::format_time(now + off),
            percent: pct,
        });
    }
    if out.is_empty() {
        return Err("no waves given (e.g. 0s=10,1h=50,1d=100)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn waves(spec: &[(&str, u8)]) -> Rollout {
        Rollout {
            percent: None,
            halted: None,
            waves: spec
                .iter()
                .map(|(s, p)| Wave {
                    start: s.to_string(),
                    percent: *p,
                })
                .collect(),
        }
    }

    #[test]
    fn bucket_is_stable_and_per_version() {
        let a = bucket("m-1", "demo", "1.0.0");
        assert_eq!(a, bucket("m-1", "demo", "1.0.0"));
        assert!(a < BUCKETS);
        // Pinned value: changing the hash input would reshuffle every fleet mid-rollout.
        let d = Sha256::digest(b"m-1\ndemo\n1.0.0");
        assert_eq!(a, u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 10_000);
        // Another version (or app) reshuffles: over 50 versions the bucket must move.
        let moved = (0..50).any(|i| bucket("m-1", "demo", &format!("1.0.{i}")) != a);
        assert!(moved);
        let other_app = (0..50).any(|i| {
            bucket(&format!("m-{i}"), "demo", "1.0.0")
                != bucket(&format!("m-{i}"), "other", "1.0.0")
        });
        assert!(other_app);
    }

    #[test]
    fn thirty_percent_admits_about_thirty_percent() {
        let r = Rollout {
            percent: Some(30),
            ..Rollout::default()
        };
        let now = SystemTime::now();
        let admitted = (0..10_000)
            .filter(|i| {
                let b = bucket(&format!("machine-{i:05}"), "demo", "2.1.0");
                admission(Some(&r), b, now) == Admission::Admitted
            })
            .count();
        assert!((2_700..=3_300).contains(&admitted), "{admitted}");
    }

    #[test]
    fn percent_edges() {
        let now = SystemTime::now();
        let p = |n| Rollout {
            percent: Some(n),
            ..Rollout::default()
        };
        assert_eq!(admission(None, 9_999, now), Admission::Admitted);
        assert_eq!(admission(Some(&p(100)), 9_999, now), Admission::Admitted);
        assert_eq!(
            admission(Some(&Rollout::default()), 9_999, now),
            Admission::Admitted
        );
        assert_eq!(
            admission(Some(&p(0)), 0, now),
            Admission::NotYet {
                share_now: 0,
                next: None
            }
        );
        assert_eq!(admission(Some(&p(30)), 2_999, now), Admission::Admitted);
        assert_eq!(
            admission(Some(&p(30)), 3_000, now),
            Admission::NotYet {
                share_now: 30,
                next: None
            }
        );
    }

    #[test]
    fn waves_widen_over_time() {
        let r = waves(&[
            ("2026-11-25T10:00:00Z", 10),
            ("2026-11-25T12:00:00Z", 50),
            ("2026-11-26T10:00:00Z", 100),
        ]);
        let bucket = 3_000; // 30.00%: admitted by the second wave.
        let before = t("2026-11-25T09:00:00Z");
        assert_eq!(share(Some(&r), before), 0);
        assert_eq!(
            admission(Some(&r), bucket, before),
            Admission::NotYet {
                share_now: 0,
                next: Some((t("2026-11-25T12:00:00Z"), 50))
            }
        );
        let first = t("2026-11-25T10:00:00Z");
        assert_eq!(share(Some(&r), first), 10);
        assert_eq!(
            admission(Some(&r), bucket, first),
            Admission::NotYet {
                share_now: 10,
                next: Some((t("2026-11-25T12:00:00Z"), 50))
            }
        );
        assert_eq!(admission(Some(&r), 999, first), Admission::Admitted);
        let second = t("2026-11-25T12:00:00Z") + Duration::from_secs(1);
        assert_eq!(admission(Some(&r), bucket, second), Admission::Admitted);
        // A machine beyond 50% waits for the last wave.
        assert_eq!(
            admission(Some(&r), 9_000, second),
            Admission::NotYet {
                share_now: 50,
                next: Some((t("2026-11-26T10:00:00Z"), 100))
            }
        );
        assert_eq!(
            admission(Some(&r), 9_999, t("2026-11-27T00:00:00Z")),
            Admission::Admitted
        );
    }

    #[test]
    fn waves_override_percent_and_bad_times_never_start() {
        let mut r = waves(&[("yesterday", 100), ("2026-11-25T10:00:00Z", 20)]);
        r.percent = Some(100);
        let now = t("2026-11-25T11:00:00Z");
        assert_eq!(share(Some(&r), now), 20);
        assert_eq!(
            admission(Some(&r), 5_000, now),
            Admission::NotYet {
                share_now: 20,
                next: None
            }
        );
        // No wave admits this machine: no next wave to announce.
        let r = waves(&[("2026-11-25T10:00:00Z", 20), ("2026-12-01T00:00:00Z", 40)]);
        assert_eq!(
            admission(Some(&r), 5_000, now),
            Admission::NotYet {
                share_now: 20,
                next: None
            }
        );
    }

    fn halted(mut r: Rollout, at: &str) -> Rollout {
        r.halted = Some(Halt {
            at: at.into(),
            reason: "5 of 20 machines failed".into(),
        });
        r
    }

    /// A halt freezes the share it had at `at`: later waves never apply, and no machine
    /// outside the frozen share is told a wave will admit it.
    #[test]
    fn a_halted_rollout_never_widens() {
        let plan = waves(&[
            ("2026-11-25T10:00:00Z", 10),
            ("2026-11-25T12:00:00Z", 50),
            ("2026-11-26T10:00:00Z", 100),
        ]);
        let pct = |p| Rollout {
            percent: Some(p),
            ..Rollout::default()
        };
        // (what, rollout, now, share, bucket, admitted)
        let cases: Vec<(&str, Rollout, &str, u8, u32, bool)> = vec![
            (
                "halted during the first wave, later",
                halted(plan.clone(), "2026-11-25T11:00:00Z"),
                "2026-11-27T00:00:00Z",
                10,
                999,
                true,
            ),
            (
                "halted during the first wave, outside",
                halted(plan.clone(), "2026-11-25T11:00:00Z"),
                "2026-11-27T00:00:00Z",
                10,
                1_000,
                false,
            ),
            (
                "halted during the second wave",
                halted(plan.clone(), "2026-11-25T12:30:00Z"),
                "2026-11-30T00:00:00Z",
                50,
                4_999,
                true,
            ),
            (
                "halted during the second wave, outside",
                halted(plan.clone(), "2026-11-25T12:30:00Z"),
                "2026-11-30T00:00:00Z",
                50,
                5_000,
                false,
            ),
            (
                "halted before the first wave",
                halted(plan.clone(), "2026-11-25T09:00:00Z"),
                "2026-11-30T00:00:00Z",
                0,
                0,
                false,
            ),
            (
                "a halt in the future changes nothing yet",
                halted(plan.clone(), "2026-11-26T00:00:00Z"),
                "2026-11-25T10:30:00Z",
                10,
                999,
                true,
            ),
            (
                "a percent rollout stays at its percent",
                halted(pct(20), "2026-11-25T11:00:00Z"),
                "2026-11-30T00:00:00Z",
                20,
                1_999,
                true,
            ),
            (
                "a percent rollout, outside",
                halted(pct(20), "2026-11-25T11:00:00Z"),
                "2026-11-30T00:00:00Z",
                20,
                2_000,
                false,
            ),
            (
                "a malformed halt time admits no new wave",
                halted(plan.clone(), "when it broke"),
                "2026-11-30T00:00:00Z",
                0,
                0,
                false,
            ),
            (
                "not halted, for contrast",
                plan.clone(),
                "2026-11-30T00:00:00Z",
                100,
                9_999,
                true,
            ),
        ];
        for (what, r, now, want_share, bucket, admitted) in cases {
            let now = t(now);
            assert_eq!(share(Some(&r), now), want_share, "{what}");
            let a = admission(Some(&r), bucket, now);
            if admitted {
                assert_eq!(a, Admission::Admitted, "{what}");
            } else {
                assert!(
                    matches!(a, Admission::NotYet { share_now, next: None } if share_now == want_share),
                    "{what}: {a:?}"
                );
            }
        }
        // Resuming (clearing the halt) lets the waves apply again.
        let mut r = halted(plan, "2026-11-25T11:00:00Z");
        r.halted = None;
        assert_eq!(share(Some(&r), t("2026-11-30T00:00:00Z")), 100);
    }

    #[test]
    fn halted_round_trips_and_is_omitted_when_absent() {
        let r = halted(
            Rollout {
                percent: Some(10),
                ..Rollout::default()
            },
            "2026-11-25T11:00:00Z",
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["halted"]["at"], "2026-11-25T11:00:00Z");
        assert_eq!(serde_json::from_value::<Rollout>(json).unwrap(), r);
        let plain = serde_json::to_value(Rollout::default()).unwrap();
        assert!(plain.get("halted").is_none());
        assert!(serde_json::from_str::<Rollout>(
            r#"{"halted": {"at": "x", "reason": "r", "by": 1}}"#
        )
        .is_err());
    }

    #[test]
    fn waves_parse_relative_to_now() {
        let now = t("2026-01-01T00:00:00Z");
        let w = parse_waves("0s=10,1h=50,1d=100", now).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w[1].start, "2026-01-01T01:00:00Z");
        assert_eq!(w[2].percent, 100);
        assert!(parse_waves("1h=10,0s=50", now).is_err());
        assert!(parse_waves("0s=101", now).is_err());
        assert!(parse_waves("", now).is_err());
    }
}
