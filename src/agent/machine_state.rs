//! Where this machine stands against its channel, in one word: the `state` that
//! `status --json`, `why --json`, the fleet report and the metrics file all carry.
//!
//! It is derived from what the state file remembers (never stored itself), so it cannot
//! drift from the facts, and it stays `failed` for as long as the machine is behind
//! because the channel's version is blocked here: the alert does not clear itself on the
//! next quiet poll.

use std::collections::BTreeMap;

use crate::disk::state::{Blocked, State};
use crate::registry::names::{Channel, Version};
pub use crate::registry::report::MachineState;

/// The facts the state is judged from, as of the last poll.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// What `current` points at.
    pub current: Option<&'a Version>,
    /// The version of an activation in progress.
    pub pending: Option<&'a Version>,
    pub pinned: Option<&'a Version>,
    /// What this machine's channel asked for at the last poll.
    pub channel_version: Option<&'a Version>,
    pub blocked: &'a BTreeMap<Version, Blocked>,
    /// The last run ended with an error.
    pub last_run_failed: bool,
    /// The name of the last poll's decision (`Decision::name`), if any.
    pub last_decision: Option<&'a str>,
}

/// Decisions after which a machine not on the channel's version is where it should be.
const AT_REST_OFF_CHANNEL: [&str; 2] = ["ahead-of-channel", "channel-yanked"];

/// The state, first match wins: an activation in progress, then an operator's pin, then
/// a channel version held back by an operator's rollback (reads as pinned), then a
/// blocked one, then a failed run, then a rollout wait.
pub fn machine_state(f: &Facts<'_>) -> MachineState {
    if f.pending.is_some() {
        return MachineState::Updating;
    }
    if f.pinned.is_some() {
        return MachineState::Pinned;
    }
    let Some(wanted) = f.channel_version else {
        // Never polled: nothing says this machine is where its channel wants it.
        return MachineState::Behind;
    };
    let on_channel = f.current == Some(wanted);
    match f.blocked.get(wanted) {
        // An operator's rollback holds the machine as a pin does: no alert.
        Some(b) if !on_channel && b.is_hold() => return MachineState::Pinned,
        Some(_) if !on_channel => return MachineState::Failed,
        _ => {}
    }
    if f.last_run_failed {
        return MachineState::Behind;
    }
    if on_channel {
        return MachineState::Healthy;
    }
    match f.last_decision {
        Some("wait-for-rollout") => MachineState::WaitingForRollout,
        Some(d) if AT_REST_OFF_CHANNEL.contains(&d) => MachineState::Healthy,
        _ => MachineState::Behind,
    }
}

/// [`machine_state`] from the state file, for `channel` (the configured one; None: the
/// one the state file last saw). A state file that last saw another channel knows
/// nothing about this one.
pub fn of(state: &State, current: Option<&Version>, channel: Option<&Channel>) -> MachineState {
    let seen = state
        .channel
        .as_ref()
        .filter(|c| channel.is_none() || c.channel.as_ref() == channel);
    machine_state(&Facts {
        current,
        pending: state.pending.as_ref().map(|p| &p.version),
        pinned: state.pinned.as_ref(),
        channel_version: seen.and_then(|c| c.version.as_ref()),
        blocked: &state.blocked,
        last_run_failed: state.last_error.is_some(),
        last_decision: state.last_decision.as_deref(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use MachineState::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn table() {
        let blocked_12: BTreeMap<Version, Blocked> = [(
            v("1.2.0"),
            Blocked {
                reason: "health check failed".into(),
                at: "2026-11-30T05:00:00Z".parse().unwrap(),
            },
        )]
        .into();
        let held_12: BTreeMap<Version, Blocked> = [(
            v("1.2.0"),
            Blocked {
                reason: crate::disk::state::HOLD_REASON.into(),
                at: "2026-11-30T05:00:00Z".parse().unwrap(),
            },
        )]
        .into();
        let none = BTreeMap::new();
        let (v10, v11, v12) = (v("1.0.0"), v("1.1.0"), v("1.2.0"));
        // (name, current, pending, pinned, channel, blocked, failed run, decision, want)
        #[allow(clippy::type_complexity)]
        #[rustfmt::skip]
        let cases: Vec<(
            &str,
            Option<&Version>,
            Option<&Version>,
            Option<&Version>,
            Option<&Version>,
            &BTreeMap<Version, Blocked>,
            bool,
            Option<&str>,
            MachineState,
        )> = vec![
            ("on the channel's version", Some(&v11), None, None, Some(&v11), &none, false, Some("up-to-date"), Healthy),
            ("on it, an old decision", Some(&v11), None, None, Some(&v11), &none, false, Some("update"), Healthy),
            ("on it, old block of another version", Some(&v11), None, None, Some(&v11), &blocked_12, false, None, Healthy),
            ("activation in progress", Some(&v11), Some(&v12), None, Some(&v12), &none, false, None, Updating),
            ("in progress beats a block", Some(&v11), Some(&v12), None, Some(&v12), &blocked_12, true, None, Updating),
            ("pinned", Some(&v10), None, Some(&v10), Some(&v11), &none, false, Some("pinned"), Pinned),
            ("pinned beats a block", Some(&v11), None, Some(&v11), Some(&v12), &blocked_12, false, None, Pinned),
            ("channel version blocked, the failing run", Some(&v11), None, None, Some(&v12), &blocked_12, true, Some("update"), Failed),
            ("channel version blocked, a quiet poll later", Some(&v11), None, None, Some(&v12), &blocked_12, false, Some("blocked"), Failed),
            ("blocked, nothing installed", None, None, None, Some(&v12), &blocked_12, false, Some("blocked"), Failed),
            ("channel version held back by a rollback", Some(&v11), None, None, Some(&v12), &held_12, false, Some("held-back"), Pinned),
            ("held back, but on it again", Some(&v12), None, None, Some(&v12), &held_12, false, Some("up-to-date"), Healthy),
            ("download failed", Some(&v11), None, None, Some(&v12), &none, true, Some("update"), Behind),
            ("poll failed while on the version", Some(&v11), None, None, Some(&v11), &none, true, Some("up-to-date"), Behind),
            ("never polled", Some(&v11), None, None, None, &none, false, None, Behind),
            ("waiting for a wave", Some(&v11), None, None, Some(&v12), &none, false, Some("wait-for-rollout"), WaitingForRollout),
            ("ahead of the channel", Some(&v12), None, None, Some(&v11), &none, false, Some("ahead-of-channel"), Healthy),
            ("channel on a yanked version", Some(&v11), None, None, Some(&v12), &none, false, Some("channel-yanked"), Healthy),
            ("off the channel, no decision (old state file)", Some(&v10), None, None, Some(&v11), &none, false, None, Behind),
        ];
        for (name, current, pending, pinned, channel, blocked, failed, decision, want) in cases {
            let got = machine_state(&Facts {
                current,
                pending,
                pinned,
                channel_version: channel,
                blocked,
                last_run_failed: failed,
                last_decision: decision,
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn another_channels_memory_says_nothing() {
        let mut s = State::default();
        s.block(&v("1.2.0"), "health check failed");
        s.channel = Some(crate::disk::state::ChannelSeen {
            channel: Some("staging".parse().unwrap()),
            version: Some(v("1.2.0")),
            ..Default::default()
        });
        let cur = v("1.1.0");
        assert_eq!(of(&s, Some(&cur), None), Failed);
        assert_eq!(
            of(&s, Some(&cur), Some(&"staging".parse().unwrap())),
            Failed
        );
        assert_eq!(of(&s, Some(&cur), Some(&"prod".parse().unwrap())), Behind);
    }
}
