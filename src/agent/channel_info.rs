//! The warning the agent logs when its channel document is about to expire.
//!
//! Channel documents expire (30 days by default) so that a registry or mirror frozen
//! on an old document (a freeze attack) cannot keep machines on old releases forever;
//! the price is that a channel nobody re-signs stops updating the fleet, hence the
//! warning ahead of time.

use std::time::{Duration, SystemTime};

use crate::registry::names::Channel;
use crate::time::Timestamp;

/// The agent warns on every run once its channel expires within this.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// The warning to log when `channel`'s document expires within `within` of `now`.
pub fn expiry_warning(
    channel: &Channel,
    expires_at: SystemTime,
    now: SystemTime,
    within: Duration,
) -> Option<String> {
    let left = expires_at.duration_since(now).ok()?;
    if left >= within {
        return None;
    }
    let left = Duration::from_secs(left.as_secs() / 60 * 60);
    Some(format!(
        "channel {channel}'s document expires at {} (in {}): after that this machine refuses it and stops updating; re-sign it before then (`updraft refresh --channel {channel}`, or a promotion)",
        Timestamp::from(expires_at),
        humantime::format_duration(left)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_warning_table() {
        let now = crate::time::parse_time("2026-11-30T00:00:00Z").unwrap();
        let ch: Channel = "prod".parse().unwrap();
        let day = Duration::from_secs(24 * 3600);
        let cases = [
            (30 * day, None),
            (7 * day, None),
            (
                7 * day - Duration::from_secs(60),
                Some("expires at 2026-12-06T23:59:00Z (in 6days 23h 59m)"),
            ),
            (3 * day, Some("(in 3days)")),
            (Duration::from_secs(59), Some("(in 0s)")),
        ];
        for (left, want) in cases {
            let got = expiry_warning(&ch, now + left, now, EXPIRY_WARNING);
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!(
                    g.contains(w) && g.contains("updraft refresh --channel prod"),
                    "{w:?} not in {g:?}"
                ),
                _ => panic!("{left:?}: {got:?}"),
            }
        }
        // Already expired: verification refuses the document with its own error.
        assert_eq!(expiry_warning(&ch, now - day, now, EXPIRY_WARNING), None);
    }
}
