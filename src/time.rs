//! Timestamps as every updraft document and record writes them: RFC 3339, UTC, whole
//! seconds, ending in `Z`. One type and one format, so a document, the state file and
//! the history compare and sort as text the same way they do as times.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, written `2026-11-30T05:19:45Z`. Parsed only through
/// [`Timestamp::parse`] (also by `Deserialize`), so no code holds an unchecked one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("time {0:?} must be RFC 3339 in UTC ending in 'Z'")]
    NotUtc(String),
    #[error("time {value:?} is not RFC 3339: {reason}")]
    Invalid { value: String, reason: String },
}

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// Accepts what updraft writes and any RFC 3339 time in UTC (fractions of a second
    /// included: documents written by other tools must still verify).
    pub fn parse(s: &str) -> Result<Timestamp, TimeError> {
        if !s.ends_with('Z') {
            return Err(TimeError::NotUtc(s.to_string()));
        }
        // Spec §4: a fraction has 1 to 9 digits (nanoseconds), so two readers never
        // round one time differently; humantime alone would drop extra digits.
        if let Some(frac) = s.get(19..s.len() - 1).filter(|f| !f.is_empty()) {
            let digits = frac.strip_prefix('.').unwrap_or("");
            if !(1..=9).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TimeError::Invalid {
                    value: s.to_string(),
                    reason: "a fraction of a second must be '.' and 1 to 9 digits".into(),
                });
            }
        }
        humantime::parse_rfc3339(s)
            .map(Timestamp)
            .map_err(|e| TimeError::Invalid {
                value: s.to_string(),
                reason: e.to_string(),
            })
    }

    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    /// Whole seconds: what is written is what is compared.
    fn from(t: SystemTime) -> Timestamp {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Timestamp(UNIX_EPOCH + Duration::from_secs(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Timestamp, TimeError> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The written form of `t` (documents still hold their times as text).
pub fn format_time(t: SystemTime) -> String {
    Timestamp::from(t).to_string()
}

pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    Timestamp::parse(s)
        .map(Timestamp::system_time)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_table() {
        // (input, what it is written back as, or the error)
        let cases = [
            ("2026-11-30T05:19:45Z", Ok("2026-11-30T05:19:45Z")),
            ("1970-01-01T00:00:00Z", Ok("1970-01-01T00:00:00Z")),
            // Fractions are read (other tools write them) and written as whole seconds.
            ("2026-11-30T05:19:45.999Z", Ok("2026-11-30T05:19:45Z")),
            ("2026-11-30T05:19:45.123456789Z", Ok("2026-11-30T05:19:45Z")),
            // A leap second reads as the last second of its minute (spec §4).
            ("2016-12-31T23:59:60Z", Ok("2016-12-31T23:59:59Z")),
            (
                "2026-11-30T05:19:45.1234567891Z",
                Err("time \"2026-11-30T05:19:45.1234567891Z\" is not RFC 3339: a fraction"),
            ),
            (
                "2026-11-30T05:19:45.Z",
                Err("time \"2026-11-30T05:19:45.Z\" is not RFC 3339: a fraction"),
            ),
            (
                "2026-11-30T05:19:45+01:00",
                Err("time \"2026-11-30T05:19:45+01:00\" must be RFC 3339 in UTC ending in 'Z'"),
            ),
            (
                "2026-11-30 05:19:45",
                Err("time \"2026-11-30 05:19:45\" must be RFC 3339 in UTC ending in 'Z'"),
            ),
            ("yesterdayZ", Err("time \"yesterdayZ\" is not RFC 3339")),
            (
                "2026-13-01T00:00:00Z",
                Err("time \"2026-13-01T00:00:00Z\" is not RFC 3339"),
            ),
        ];
        for (input, want) in cases {
            let got = Timestamp::parse(input).map(|t| t.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn serde_goes_through_the_constructor() {
        let t: Timestamp = serde_json::from_str("\"2026-11-30T05:19:45Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-30T05:19:45Z\""
        );
        let err = serde_json::from_str::<Timestamp>("\"2026-11-30T05:19:45+00:00\"").unwrap_err();
        assert!(err.to_string().contains("ending in 'Z'"), "{err}");
    }

    #[test]
    fn now_is_whole_seconds_and_ordered() {
        let a = Timestamp::from(UNIX_EPOCH + Duration::from_millis(1_500));
        let b = Timestamp::from(UNIX_EPOCH + Duration::from_millis(2_100));
        assert_eq!(a.system_time(), UNIX_EPOCH + Duration::from_secs(1));
        assert!(a < b);
        assert_eq!(
            Timestamp::parse(&Timestamp::now().to_string())
                .unwrap()
                .to_string()
                .len(),
            20
        );
    }
}
