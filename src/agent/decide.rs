//! The update decision: given what runs here and what the channel says, which version
//! should run, and why, in words `updraft why` can print.
//!
//! Pure: no clock, no disk, no network. The agent gathers the inputs (the rollout
//! admission is computed beforehand at the current time) and acts on the outcome.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::disk::state::Blocked;
use crate::registry::names::Version;
use crate::registry::rollout::{Admission, BUCKETS};
use crate::time::Timestamp;

pub struct Inputs<'a> {
    /// The version `current` points at; None on a machine that has none yet.
    pub current: Option<&'a Version>,
    pub channel_version: &'a Version,
    pub channel_sequence: u64,
    /// The channel sequence this machine had accepted before this document.
    pub last_sequence: u64,
    pub pinned: Option<&'a Version>,
    pub blocked: &'a BTreeMap<Version, Blocked>,
    pub yanked: &'a [Version],
    /// Releases on disk, oldest first (`disk::order`). Changes the wording (a switch
    /// without a download), and orders a label against the running release (below).
    pub installed: &'a [Version],
    pub admission: Admission,
    /// This machine's rollout bucket for the channel version, `0..BUCKETS`.
    pub bucket: u32,
}

/// Why a pinned version cannot be switched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    Yanked,
    Blocked { reason: String, since: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing runs yet: install the channel version (rollouts pace upgrades of running
    /// machines; a machine with nothing to run gains nothing by waiting).
    Install {
        to: Version,
        on_disk: bool,
    },
    /// The channel has a newer version and the rollout admits this machine.
    Update {
        from: Version,
        to: Version,
        on_disk: bool,
    },
    /// The running version was yanked: leave it at once, whatever the rollout says.
    LeaveYanked {
        from: Version,
        to: Version,
        on_disk: bool,
    },
    /// The operator pointed the channel at an older version (higher sequence): follow.
    FollowBack {
        from: Version,
        to: Version,
        sequence: u64,
        on_disk: bool,
    },
    /// An operator pinned a version other than the running one.
    SwitchToPin {
        from: Option<Version>,
        to: Version,
        on_disk: bool,
    },
    UpToDate {
        version: Version,
    },
    /// Running the pinned version; the channel is ignored while pinned.
    Pinned {
        version: Version,
        channel: Version,
        yanked: bool,
    },
    /// Pinned to a version this machine must not run: stay where it is.
    PinUnavailable {
        pin: Version,
        current: Option<Version>,
        why: Unavailable,
    },
    /// The channel points at a yanked version: never installed.
    ChannelYanked {
        version: Version,
        current: Option<Version>,
    },
    /// An operator rolled back from the channel's version here: stay until `unblock`.
    HeldBack {
        version: Version,
        current: Option<Version>,
        since: Timestamp,
    },
    /// The channel version failed here before (health check, pre-activate): not retried.
    Blocked {
        version: Version,
        current: Option<Version>,
        reason: String,
        since: Timestamp,
    },
    /// A newer version exists but the rollout has not reached this machine yet.
    Wait {
        version: Version,
        current: Version,
        share_now: u8,
        bucket: u32,
        next: Option<(SystemTime, u8)>,
    },
    /// Running a newer version than the channel, which has not moved since it was
    /// accepted (e.g. a hand deploy): going back needs the operator to move the channel.
    AheadOfChannel {
        current: Version,
        channel: Version,
        sequence: u64,
    },
}

impl Decision {
    /// The version to switch to, if the decision is to move.
    pub fn target(&self) -> Option<&Version> {
        match self {
            Decision::Install { to, .. }
            | Decision::Update { to, .. }
            | Decision::LeaveYanked { to, .. }
            | Decision::FollowBack { to, .. }
            | Decision::SwitchToPin { to, .. } => Some(to),
            _ => None,
        }
    }

    /// Stable kebab-case name for `--json` output and history entries.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Install { .. } => "install",
            Decision::Update { .. } => "update",
            Decision::LeaveYanked { .. } => "leave-yanked",
            Decision::FollowBack { .. } => "follow-channel-back",
            Decision::SwitchToPin { .. } => "switch-to-pin",
            Decision::UpToDate { .. } => "up-to-date",
            Decision::Pinned { .. } => "pinned",
            Decision::PinUnavailable { .. } => "pin-unavailable",
            Decision::ChannelYanked { .. } => "channel-yanked",
            Decision::HeldBack { .. } => "held-back",
            Decision::Blocked { .. } => "blocked",
            Decision::Wait { .. } => "wait-for-rollout",
            Decision::AheadOfChannel { .. } => "ahead-of-channel",
        }
    }

    /// One line of plain English, printed by `updraft why` and logged by the agent.
    pub fn explain(&self) -> String {
        let disk = |on: &bool| if *on { " (already on disk)" } else { "" };
        let staying = |c: &Option<Version>| match c {
            Some(v) => format!("staying on {v}"),
            None => "installing nothing".to_string(),
        };
        match self {
            Decision::Install { to, on_disk } => format!(
                "nothing runs here yet: installing {to}, the channel's version{}",
                disk(on_disk)
            ),
            Decision::Update { from, to, on_disk } => format!(
                "updating from {from} to {to}, the channel's version{}",
                disk(on_disk)
            ),
            Decision::LeaveYanked { from, to, on_disk } => format!(
                "{from} has been yanked: leaving it for {to} at once, whatever the rollout{}",
                disk(on_disk)
            ),
            Decision::FollowBack {
                from,
                to,
                sequence,
                on_disk,
            } => format!(
                "the operator moved the channel back to {to} (sequence {sequence}): going back from {from}{}",
                disk(on_disk)
            ),
            Decision::SwitchToPin { from, to, on_disk } => format!(
                "pinned to {to} by an operator: switching from {}{}",
                from.as_ref()
                    .map_or("nothing".to_string(), ToString::to_string),
                disk(on_disk)
            ),
            Decision::UpToDate { version } => {
                format!("up to date: running {version}, the channel's version")
            }
            Decision::Pinned {
                version,
                channel,
                yanked,
            } => {
                let yanked = if *yanked {
                    " (even though it is yanked)"
                } else {
                    ""
                };
                if channel == version {
                    format!("pinned to {version} by an operator{yanked}, which is also the channel's version")
                } else {
                    format!("pinned to {version} by an operator{yanked}; the channel's {channel} is ignored until `updraft unpin`")
                }
            }
            Decision::PinUnavailable { pin, current, why } => match why {
                Unavailable::Yanked => format!(
                    "pinned to {pin}, but {pin} has been yanked: {} (pin another version or `updraft unpin`)",
                    staying(current)
                ),
                Unavailable::Blocked { reason, since } => format!(
                    "pinned to {pin}, but {pin} is blocked here since {since} ({reason}): {} (`updraft unblock {pin}` to allow it)",
                    staying(current)
                ),
            },
            Decision::ChannelYanked { version, current } => format!(
                "the channel points at {version}, which is yanked: never installing it; {}",
                staying(current)
            ),
            Decision::HeldBack {
                version,
                current,
                since,
            } => format!(
                "{version} is held back here since {since} (rolled back by operator): {}; `updraft unblock {version}` to follow the channel again",
                staying(current)
            ),
            Decision::Blocked {
                version,
                current,
                reason,
                since,
            } => format!(
                "{version} is blocked here since {since} ({reason}): {} (`updraft unblock {version}` to try it again)",
                staying(current)
            ),
            Decision::Wait {
                version,
                current,
                share_now,
                bucket,
                next,
            } => {
                let at = format!(
                    "{version} is rolled out to {share_now}% of the fleet; this machine is at {:.1}%",
                    f64::from(*bucket) * 100.0 / f64::from(BUCKETS)
                );
                match next {
                    Some((start, percent)) => format!(
                        "{at}, admitted from {} when the rollout widens to {percent}%; staying on {current} until then",
                        Timestamp::from(*start)
                    ),
                    None => format!(
                        "{at}, beyond every announced wave of the rollout; staying on {current} until the operator widens it"
                    ),
                }
            }
            Decision::AheadOfChannel {
                current,
                channel,
                sequence,
            } => format!(
                "running {current}, newer than the channel's {channel} (sequence {sequence}, already accepted): staying; a higher sequence moving the channel is needed to go back"
            ),
        }
    }
}

/// Whether the channel's version counts as newer than the running one.
///
/// Two semantic versions compare by precedence. A label (a git hash, a timestamp) has no
/// order of its own, so when either side is one, the channel's version is newer unless
/// it ran here before the running release (installed earlier, `disk::order`). A version
/// the channel moved to that this machine never ran is thus later in the channel's
/// history: an update, paced by the rollout. One it ran before is a move back when the
/// channel's sequence is new (`follow-channel-back`), and leaves a hand-deployed newer
/// build alone when it is not (`ahead-of-channel`), exactly as for semantic versions.
fn channel_is_newer(i: &Inputs, ch: &Version, cur: &Version) -> bool {
    if let (Some(a), Some(b)) = (ch.semantic(), cur.semantic()) {
        return a > b;
    }
    let position = |v: &Version| i.installed.iter().position(|x| x == v);
    let ran_before_current = matches!(
        (position(ch), position(cur)),
        (Some(c), Some(r)) if c < r
    );
    !ran_before_current
}

/// The rules, in order: a pin beats the channel; a yanked or blocked channel version is
/// never installed; a yanked running version is left at once; newer versions wait for
/// the rollout; an older one is followed only when the channel moved (higher sequence).
/// "Newer" is SemVer precedence between semantic versions, and the channel's history when
/// a label is involved (`channel_is_newer`), never a comparison of strings.
pub fn decide(i: &Inputs) -> Decision {
    let ch = i.channel_version;
    let current = i.current.cloned();
    let on_disk = |v: &Version| i.installed.contains(v);
    let blocked = |v: &Version| {
        i.blocked.get(v).map(|b| Unavailable::Blocked {
            reason: b.reason.clone(),
            since: b.at,
        })
    };
    let yanked = |v: &Version| i.yanked.contains(v);

    if let Some(pin) = i.pinned {
        if i.current == Some(pin) {
            return Decision::Pinned {
                version: pin.clone(),
                channel: ch.clone(),
                yanked: yanked(pin),
            };
        }
        let why = if yanked(pin) {
            Some(Unavailable::Yanked)
        } else {
            blocked(pin)
        };
        return match why {
            Some(why) => Decision::PinUnavailable {
                pin: pin.clone(),
                current,
                why,
            },
            None => Decision::SwitchToPin {
                from: current,
                to: pin.clone(),
                on_disk: on_disk(pin),
            },
        };
    }
    if yanked(ch) {
        return Decision::ChannelYanked {
            version: ch.clone(),
            current,
        };
    }
    if let Some(b) = i.blocked.get(ch).filter(|b| b.is_hold()) {
        return Decision::HeldBack {
            version: ch.clone(),
            current,
            since: b.at,
        };
    }
    if let Some(b) = i.blocked.get(ch) {
        return Decision::Blocked {
            version: ch.clone(),
            current,
            reason: b.reason.clone(),
            since: b.at,
        };
    }
    let Some(cur) = i.current else {
        return Decision::Install {
            to: ch.clone(),
            on_disk: on_disk(ch),
        };
    };
    if cur == ch {
        return Decision::UpToDate {
            version: ch.clone(),
        };
    }
    if yanked(cur) {
        return Decision::LeaveYanked {
            from: cur.clone(),
            to: ch.clone(),
            on_disk: on_disk(ch),
        };
    }
    if channel_is_newer(i, ch, cur) {
        return match &i.admission {
            Admission::Admitted => Decision::Update {
                from: cur.clone(),
                to: ch.clone(),
                on_disk: on_disk(ch),
            },
            Admission::NotYet { share_now, next } => Decision::Wait {
                version: ch.clone(),
                current: cur.clone(),
                share_now: *share_now,
                bucket: i.bucket,
                next: *next,
            },
        };
    }
    if i.channel_sequence > i.last_sequence {
        return Decision::FollowBack {
            from: cur.clone(),
            to: ch.clone(),
            sequence: i.channel_sequence,
            on_disk: on_disk(ch),
        };
    }
    Decision::AheadOfChannel {
        current: cur.clone(),
        channel: ch.clone(),
        sequence: i.channel_sequence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// One row of the table: the situation, as owned values.
    struct Case {
        what: &'static str,
        current: Option<&'static str>,
        channel: &'static str,
        sequence: u64,
        last_sequence: u64,
        pinned: Option<&'static str>,
        blocked: &'static [&'static str],
        yanked: &'static [&'static str],
        installed: &'static [&'static str],
        admission: Admission,
        bucket: u32,
        name: &'static str,
        target: Option<&'static str>,
        says: &'static [&'static str],
    }

    const BASE: Case = Case {
        what: "",
        current: Some("1.2.0"),
        channel: "1.3.0",
        sequence: 8,
        last_sequence: 7,
        pinned: None,
        blocked: &[],
        yanked: &[],
        installed: &[],
        admission: Admission::Admitted,
        bucket: 5_712,
        name: "",
        target: None,
        says: &[],
    };

    fn run(c: &Case) -> Decision {
        let current = c.current.map(v);
        let channel = v(c.channel);
        let pinned = c.pinned.map(v);
        let blocked: BTreeMap<Version, Blocked> = c
            .blocked
            .iter()
            .map(|s| {
                (
                    v(s),
                    Blocked {
                        reason: "health check http://127.0.0.1:3000/health failed".into(),
                        at: "2026-11-24T09:00:00Z".parse().unwrap(),
                    },
                )
            })
            .collect();
        let yanked: Vec<Version> = c.yanked.iter().map(|s| v(s)).collect();
        let installed: Vec<Version> = c.installed.iter().map(|s| v(s)).collect();
        decide(&Inputs {
            current: current.as_ref(),
            channel_version: &channel,
            channel_sequence: c.sequence,
            last_sequence: c.last_sequence,
            pinned: pinned.as_ref(),
            blocked: &blocked,
            yanked: &yanked,
            installed: &installed,
            admission: c.admission.clone(),
            bucket: c.bucket,
        })
    }

    fn wave_at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    /// What `guard` relies on: after a halt, machines outside the frozen share keep
    /// their version however much later they poll, and those inside it still update.
    #[test]
    fn a_halted_rollout_keeps_machines_outside_its_share_where_they_are() {
        use crate::registry::rollout::{admission, Halt, Rollout, Wave};
        let wave = |start: &str, percent| Wave {
            start: start.into(),
            percent,
        };
        let r = Rollout {
            percent: None,
            waves: vec![
                wave("2026-11-25T10:00:00Z", 10),
                wave("2026-11-25T12:00:00Z", 50),
                wave("2026-11-26T10:00:00Z", 100),
            ],
            halted: Some(Halt {
                at: "2026-11-25T11:00:00Z".into(),
                reason: "3 of 10 machines failed 1.3.0".into(),
            }),
        };
        let later = wave_at("2026-12-01T00:00:00Z");
        let outside = Case {
            admission: admission(Some(&r), 5_712, later),
            ..BASE
        };
        let d = run(&outside);
        assert_eq!(d.name(), "wait-for-rollout");
        assert_eq!(d.target(), None);
        let says = d.explain();
        assert!(
            says.contains("rolled out to 10%") && says.contains("staying on 1.2.0"),
            "{says}"
        );
        let inside = Case {
            admission: admission(Some(&r), 999, later),
            bucket: 999,
            ..BASE
        };
        assert_eq!(run(&inside).target(), Some(&v("1.3.0")));
        // Without the halt the same machine would have been admitted by the last wave.
        let resumed = Rollout { halted: None, ..r };
        let after = Case {
            admission: admission(Some(&resumed), 5_712, later),
            ..BASE
        };
        assert_eq!(run(&after).target(), Some(&v("1.3.0")));
    }

    /// An operator's rollback holds the version it left; a newer channel version is
    /// taken as usual.
    #[test]
    fn a_held_back_version_stays_held_and_a_newer_one_is_taken() {
        let held: BTreeMap<Version, Blocked> = [(
            v("1.4.0"),
            Blocked {
                reason: crate::disk::state::HOLD_REASON.into(),
                at: "2026-11-24T09:00:00Z".parse().unwrap(),
            },
        )]
        .into();
        let (current, v14, v15) = (v("1.3.0"), v("1.4.0"), v("1.5.0"));
        fn inputs<'a>(
            current: &'a Version,
            channel: &'a Version,
            blocked: &'a BTreeMap<Version, Blocked>,
        ) -> Inputs<'a> {
            Inputs {
                current: Some(current),
                channel_version: channel,
                channel_sequence: 9,
                last_sequence: 8,
                pinned: None,
                blocked,
                yanked: &[],
                installed: &[],
                admission: Admission::Admitted,
                bucket: 0,
            }
        }
        let d = decide(&inputs(&current, &v14, &held));
        assert_eq!(d.name(), "held-back");
        assert_eq!(d.target(), None);
        let says = d.explain();
        for want in [
            "1.4.0 is held back here since 2026-11-24T09:00:00Z",
            "rolled back by operator",
            "staying on 1.3.0",
            "`updraft unblock 1.4.0` to follow the channel again",
        ] {
            assert!(says.contains(want), "{want:?} not in {says:?}");
        }
        let d = decide(&inputs(&current, &v15, &held));
        assert_eq!(d.name(), "update");
        assert_eq!(d.target(), Some(&v("1.5.0")));
    }

    /// The `decide` vectors of the registry-spec conformance suite
    /// (registry-spec/conformance/vectors.json): the normative bucket and share (spec
    /// §10.2) and what a rollout gates (§10.3, §8.5, §8.7), every vector, so one added
    /// by the generator is tested here without touching this file.
    #[test]
    fn conformance_vectors() {
        use crate::registry::rollout::{admission, bucket, Rollout};
        use serde_json::Value;
        let suite: Value =
            serde_json::from_str(include_str!("../../registry-spec/conformance/vectors.json"))
                .unwrap();
        let mut ran = 0;
        for vector in suite["vectors"].as_array().unwrap() {
            if vector["check"] != "decide" {
                continue;
            }
            let name = vector["name"].as_str().unwrap();
            let i = &vector["inputs"];
            let ver = |s: &Value| -> Version { s.as_str().unwrap().parse().unwrap() };
            let list =
                |f: &str| -> Vec<Version> { i[f].as_array().unwrap().iter().map(ver).collect() };
            let current = i["current"].as_str().map(v);
            let pinned = i["pinned"].as_str().map(v);
            let channel = ver(&i["channel_version"]);
            let blocked: BTreeMap<Version, Blocked> = i["blocked"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let reason = if b["hold"].as_bool().unwrap() {
                        crate::disk::state::HOLD_REASON.to_string()
                    } else {
                        "health check failed".to_string()
                    };
                    let at = "2026-05-01T00:00:00Z".parse().unwrap();
                    (ver(&b["version"]), Blocked { reason, at })
                })
                .collect();
            let rollout: Option<Rollout> = serde_json::from_value(i["rollout"].clone()).unwrap();
            let machine_bucket = bucket(
                i["machine_id"].as_str().unwrap(),
                i["app"].as_str().unwrap(),
                &channel.to_string(),
            );
            let now = crate::time::parse_time(i["now"].as_str().unwrap()).unwrap();
            let (yanked, installed) = (list("yanked"), list("installed"));
            let d = decide(&Inputs {
                current: current.as_ref(),
                channel_version: &channel,
                channel_sequence: i["sequence"].as_u64().unwrap(),
                last_sequence: i["last_sequence"].as_u64().unwrap(),
                pinned: pinned.as_ref(),
                blocked: &blocked,
                yanked: &yanked,
                installed: &installed,
                admission: admission(rollout.as_ref(), machine_bucket, now),
                bucket: machine_bucket,
            });
            let expect = &vector["expect"];
            assert_eq!(d.name(), expect["decision"], "{name}: {}", d.explain());
            assert_eq!(
                d.target().map(ToString::to_string).as_deref(),
                expect["target"].as_str(),
                "{name}: {}",
                d.explain()
            );
            ran += 1;
        }
        assert!(ran > 20, "only {ran} decide vectors");
    }

    #[test]
    fn every_rule() {
        let not_yet_next = Admission::NotYet {
            share_now: 30,
            next: Some((wave_at("2026-11-25T12:00:00Z"), 60)),
        };
        let not_yet = Admission::NotYet {
            share_now: 30,
            next: None,
        };
        let cases = [
            Case {
                what: "pinned and running the pin",
                pinned: Some("1.2.0"),
                name: "pinned",
                says: &["pinned to 1.2.0", "1.3.0 is ignored", "updraft unpin"],
                ..BASE
            },
            Case {
                what: "pinned, running the pin although it is yanked",
                pinned: Some("1.2.0"),
                yanked: &["1.2.0"],
                name: "pinned",
                says: &["even though it is yanked"],
                ..BASE
            },
            Case {
                what: "pinned elsewhere: switch, even against the rollout",
                pinned: Some("1.0.0"),
                installed: &["1.0.0", "1.2.0"],
                admission: not_yet.clone(),
                name: "switch-to-pin",
                target: Some("1.0.0"),
                says: &["pinned to 1.0.0", "switching from 1.2.0", "already on disk"],
                ..BASE
            },
            Case {
                what: "pinned to the channel's version",
                pinned: Some("1.3.0"),
                current: Some("1.3.0"),
                name: "pinned",
                says: &["pinned to 1.3.0", "also the channel's version"],
                ..BASE
            },
            Case {
                what: "pinned on an empty machine",
                pinned: Some("1.0.0"),
                current: None,
                name: "switch-to-pin",
                target: Some("1.0.0"),
                says: &["switching from nothing"],
                ..BASE
            },
            Case {
                what: "pinned to a yanked version",
                pinned: Some("1.0.0"),
                yanked: &["1.0.0"],
                name: "pin-unavailable",
                says: &["1.0.0 has been yanked", "staying on 1.2.0"],
                ..BASE
            },
            Case {
                what: "pinned to a blocked version",
                pinned: Some("1.0.0"),
                blocked: &["1.0.0"],
                name: "pin-unavailable",
                says: &[
                    "blocked here since 2026-11-24T09:00:00Z",
                    "health check",
                    "updraft unblock 1.0.0",
                    "staying on 1.2.0",
                ],
                ..BASE
            },
            Case {
                what: "channel version yanked",
                yanked: &["1.3.0"],
                name: "channel-yanked",
                says: &["1.3.0, which is yanked", "never installing it", "staying on 1.2.0"],
                ..BASE
            },
            Case {
                what: "channel version yanked on an empty machine",
                current: None,
                yanked: &["1.3.0"],
                name: "channel-yanked",
                says: &["installing nothing"],
                ..BASE
            },
            Case {
                what: "channel version blocked",
                blocked: &["1.3.0"],
                name: "blocked",
                says: &[
                    "1.3.0 is blocked here since 2026-11-24T09:00:00Z",
                    "health check http://127.0.0.1:3000/health failed",
                    "staying on 1.2.0",
                    "updraft unblock 1.3.0",
                ],
                ..BASE
            },
            Case {
                what: "blocked beats a yanked running version",
                blocked: &["1.3.0"],
                yanked: &["1.2.0"],
                name: "blocked",
                ..BASE
            },
            Case {
                what: "same as current",
                current: Some("1.3.0"),
                name: "up-to-date",
                says: &["up to date", "1.3.0"],
                ..BASE
            },
            Case {
                what: "nothing installed: install whatever the rollout",
                current: None,
                admission: not_yet.clone(),
                name: "install",
                target: Some("1.3.0"),
                says: &["nothing runs here yet", "installing 1.3.0"],
                ..BASE
            },
            Case {
                what: "current yanked: leave at once, ignoring the rollout",
                yanked: &["1.2.0"],
                admission: not_yet.clone(),
                name: "leave-yanked",
                target: Some("1.3.0"),
                says: &["1.2.0 has been yanked", "for 1.3.0 at once"],
                ..BASE
            },
            Case {
                what: "current yanked, channel older: leave it too",
                current: Some("1.4.0"),
                yanked: &["1.4.0"],
                sequence: 7,
                last_sequence: 7,
                name: "leave-yanked",
                target: Some("1.3.0"),
                ..BASE
            },
            Case {
                what: "newer and admitted",
                name: "update",
                target: Some("1.3.0"),
                says: &["updating from 1.2.0 to 1.3.0"],
                ..BASE
            },
            Case {
                what: "newer, not admitted, a wave will admit",
                admission: not_yet_next,
                name: "wait-for-rollout",
                says: &["1.3.0 is rolled out to 30% of the fleet; this machine is at 57.1%, admitted from 2026-11-25T12:00:00Z when the rollout widens to 60%; staying on 1.2.0 until then"],
                ..BASE
            },
            Case {
                what: "newer, not admitted, no wave will",
                admission: not_yet,
                name: "wait-for-rollout",
                says: &["rolled out to 30%", "57.1%", "beyond every announced wave of the rollout", "staying on 1.2.0"],
                ..BASE
            },
            Case {
                what: "older with a higher sequence: the operator moved the channel back",
                current: Some("1.4.0"),
                installed: &["1.3.0", "1.4.0"],
                admission: Admission::NotYet { share_now: 0, next: None },
                name: "follow-channel-back",
                target: Some("1.3.0"),
                says: &["moved the channel back to 1.3.0 (sequence 8)", "from 1.4.0", "already on disk"],
                ..BASE
            },
            Case {
                what: "moved back to a blocked version",
                current: Some("1.4.0"),
                blocked: &["1.3.0"],
                name: "blocked",
                ..BASE
            },
            Case {
                what: "moved back to a yanked version",
                current: Some("1.4.0"),
                yanked: &["1.3.0"],
                name: "channel-yanked",
                ..BASE
            },
            Case {
                what: "older with the sequence already accepted: stay",
                current: Some("1.4.0"),
                last_sequence: 8,
                name: "ahead-of-channel",
                says: &["running 1.4.0, newer than the channel's 1.3.0", "sequence 8"],
                ..BASE
            },
            // Labels (git hashes, timestamps): the channel's history and the install
            // order decide, never the letters ("abc1234" < "fff0000" means nothing).
            Case {
                what: "label: the channel moved to a new hash",
                current: Some("fff0000"),
                channel: "abc1234",
                installed: &["fff0000"],
                name: "update",
                target: Some("abc1234"),
                says: &["updating from fff0000 to abc1234"],
                ..BASE
            },
            Case {
                what: "label: the channel moved to a new hash, rollout not reached",
                current: Some("fff0000"),
                channel: "abc1234",
                installed: &["fff0000"],
                admission: Admission::NotYet { share_now: 30, next: None },
                name: "wait-for-rollout",
                says: &["abc1234 is rolled out to 30%", "staying on fff0000"],
                ..BASE
            },
            Case {
                what: "label: a timestamp that sorts lower as a string is still the newer build",
                current: Some("20261130041500"),
                channel: "20261129000000",
                installed: &["20261130041500"],
                name: "update",
                target: Some("20261129000000"),
                ..BASE
            },
            Case {
                what: "label: the channel moved back to a hash that ran here before",
                current: Some("abc1234"),
                channel: "fff0000",
                installed: &["fff0000", "abc1234"],
                admission: Admission::NotYet { share_now: 0, next: None },
                name: "follow-channel-back",
                target: Some("fff0000"),
                says: &["moved the channel back to fff0000 (sequence 8)", "already on disk"],
                ..BASE
            },
            Case {
                what: "label: channel unchanged, this machine was rolled back by hand",
                current: Some("fff0000"),
                channel: "abc1234",
                installed: &["fff0000", "abc1234"],
                last_sequence: 8,
                name: "update",
                target: Some("abc1234"),
                ..BASE
            },
            Case {
                what: "label: channel unchanged, a newer build deployed here by hand",
                current: Some("0000aaa"),
                channel: "abc1234",
                installed: &["abc1234", "0000aaa"],
                last_sequence: 8,
                name: "ahead-of-channel",
                says: &["running 0000aaa, newer than the channel's abc1234"],
                ..BASE
            },
            Case {
                what: "label on a seed-era machine: the first channel document is followed",
                current: Some("abc1234"),
                channel: "1.0.0",
                installed: &["abc1234"],
                sequence: 1,
                last_sequence: 0,
                name: "update",
                target: Some("1.0.0"),
                ..BASE
            },
            Case {
                what: "mixed: the channel moved back from a semantic version to a hash it ran",
                current: Some("1.0.0"),
                channel: "abc1234",
                installed: &["abc1234", "1.0.0"],
                name: "follow-channel-back",
                target: Some("abc1234"),
                ..BASE
            },
            Case {
                what: "label: the running hash is yanked",
                current: Some("abc1234"),
                channel: "fff0000",
                installed: &["fff0000", "abc1234"],
                yanked: &["abc1234"],
                last_sequence: 8,
                name: "leave-yanked",
                target: Some("fff0000"),
                ..BASE
            },
            Case {
                what: "label: the channel's hash is blocked here",
                current: Some("fff0000"),
                channel: "abc1234",
                blocked: &["abc1234"],
                name: "blocked",
                says: &["abc1234 is blocked here", "`updraft unblock abc1234`"],
                ..BASE
            },
            Case {
                what: "label: pinned to a hash",
                current: Some("fff0000"),
                channel: "abc1234",
                pinned: Some("fff0000"),
                name: "pinned",
                says: &["pinned to fff0000", "the channel's abc1234 is ignored"],
                ..BASE
            },
        ];
        for c in &cases {
            let d = run(c);
            assert_eq!(d.name(), c.name, "{}: {d:?}", c.what);
            assert_eq!(
                d.target().map(ToString::to_string).as_deref(),
                c.target,
                "{}: {d:?}",
                c.what
            );
            let text = d.explain();
            assert!(!text.contains('\n'), "{}: {text}", c.what);
            for s in c.says {
                assert!(text.contains(s), "{}: {text:?} lacks {s:?}", c.what);
            }
        }
    }

    #[test]
    fn names_are_distinct_kebab_case() {
        let x = v("1.0.0");
        let all = [
            Decision::Install {
                to: x.clone(),
                on_disk: false,
            },
            Decision::Update {
                from: x.clone(),
                to: x.clone(),
                on_disk: false,
            },
            Decision::LeaveYanked {
                from: x.clone(),
                to: x.clone(),
                on_disk: false,
            },
            Decision::FollowBack {
                from: x.clone(),
                to: x.clone(),
                sequence: 1,
                on_disk: false,
            },
            Decision::SwitchToPin {
                from: None,
                to: x.clone(),
                on_disk: false,
            },
            Decision::UpToDate { version: x.clone() },
            Decision::Pinned {
                version: x.clone(),
                channel: x.clone(),
                yanked: false,
            },
            Decision::PinUnavailable {
                pin: x.clone(),
                current: None,
                why: Unavailable::Yanked,
            },
            Decision::ChannelYanked {
                version: x.clone(),
                current: None,
            },
            Decision::Blocked {
                version: x.clone(),
                current: None,
                reason: "r".into(),
                since: "2026-11-24T09:00:00Z".parse().unwrap(),
            },
            Decision::Wait {
                version: x.clone(),
                current: x.clone(),
                share_now: 0,
                bucket: 0,
                next: None,
            },
            Decision::AheadOfChannel {
                current: x.clone(),
                channel: x,
                sequence: 1,
            },
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(Decision::name).collect();
        assert_eq!(names.len(), all.len());
        for n in names {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{n}"
            );
        }
    }
}
