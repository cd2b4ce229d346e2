//! Maintenance windows: when the agent may activate a new release.
//!
//! A window is written `"<days> HH:MM-HH:MM [zone]"`: `daily`, a day (`Sat`), a list
//! (`Sat,Sun`) or a range (`Mon-Fri`); the times are wall-clock times in the IANA zone
//! (default `UTC`), read from the system's zoneinfo so DST follows the machine's tzdata.
//! A window whose end is not after its start ends the next day (`daily 23:00-01:00`);
//! `00:00-00:00` is the whole day. The days name the day a window starts.
//!
//! Deciding whether a window is open is a pure function of the windows and the time
//! ([`state`]), so it is tested with the time injected.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};

/// One maintenance window, parsed and with its zone loaded.
#[derive(Debug, Clone)]
pub struct Window {
    /// As written, for messages.
    text: String,
    /// Bit `n` set: the window starts on weekday `n` (Monday = 0).
    days: u8,
    start: Time,
    end: Time,
    tz: TimeZone,
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("maintenance window {text:?}: {why}; write e.g. \"Sat 02:00-04:00 UTC\", \"Mon-Fri 22:00-23:30 Europe/Berlin\" or \"daily 23:00-01:00\"")]
pub struct WindowError {
    text: String,
    why: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s == *d)
        .and_then(|i| u8::try_from(i).ok())
}

fn days(s: &str) -> Result<u8, String> {
    if s.eq_ignore_ascii_case("daily") {
        return Ok(0x7f);
    }
    let unknown = |d: &str| format!("{d:?} is no day (Mon, Tue, Wed, Thu, Fri, Sat, Sun, daily)");
    let mut set = 0u8;
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a = day(a).ok_or_else(|| unknown(a))?;
                let b = day(b).ok_or_else(|| unknown(b))?;
                // Fri-Mon wraps over the weekend.
                let mut d = a;
                loop {
                    set |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set |= 1 << day(part).ok_or_else(|| unknown(part))?,
        }
    }
    Ok(set)
}

fn time(s: &str) -> Result<Time, String> {
    let bad = || format!("{s:?} is no time of day (HH:MM, 00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// The zone `name` from the system's zoneinfo (`TZDIR`, else /usr/share/zoneinfo).
fn zone(name: &str) -> Result<TimeZone, String> {
    if name.eq_ignore_ascii_case("UTC") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| {
        format!("time zone {name:?} is not known to this machine's zoneinfo ({e}): use an IANA name such as Europe/Berlin, and install tzdata")
    })
}

impl std::str::FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Window, WindowError> {
        let err = |why: String| WindowError {
            text: text.to_string(),
            why,
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let (d, span, z) = match words.as_slice() {
            [d, span] => (*d, *span, "UTC"),
            [d, span, z] => (*d, *span, *z),
            _ => return Err(err("expected days, a time span and an optional zone".into())),
        };
        let (a, b) = span
            .split_once('-')
            .ok_or_else(|| err(format!("{span:?} is no time span (HH:MM-HH:MM)")))?;
        Ok(Window {
            text: text.to_string(),
            days: days(d).map_err(err)?,
            start: time(a).map_err(err)?,
            end: time(b).map_err(err)?,
            tz: zone(z).map_err(err)?,
        })
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn weekday_bit(w: Weekday) -> u8 {
    1 << (w.to_monday_zero_offset() as u8)
}

impl Window {
    /// The occurrence of this window starting on `date` (its zone's calendar), if the
    /// window runs that day: [start, end) as instants. A wall-clock time skipped by a
    /// DST change is taken as the time after the gap.
    fn on(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        if self.days & weekday_bit(date.weekday()) == 0 {
            return None;
        }
        let start = date
            .to_datetime(self.start)
            .to_zoned(self.tz.clone())
            .ok()?;
        let end_date = if self.end > self.start {
            date
        } else {
            date.tomorrow().ok()?
        };
        let end = end_date
            .to_datetime(self.end)
            .to_zoned(self.tz.clone())
            .ok()?;
        Some((start.timestamp(), end.timestamp()))
    }

    /// The occurrences that can contain `now` or start within the next week.
    fn around(&self, now: Timestamp) -> impl Iterator<Item = (Timestamp, Timestamp)> + '_ {
        let today = now.to_zoned(self.tz.clone()).date();
        (-1i64..=8).filter_map(move |n| {
            let d = today.checked_add(jiff::Span::new().days(n)).ok()?;
            self.on(d)
        })
    }
}

/// Whether activations may happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// No windows configured: any time.
    Always,
    /// Inside a window, which closes then.
    Open { closes: Timestamp },
    /// Outside every window; the next one opens then (None: no window ever opens,
    /// which parsing rules out, kept for safety).
    Closed { opens: Option<Timestamp> },
}

impl WindowState {
    pub fn allows(&self) -> bool {
        !matches!(self, WindowState::Closed { .. })
    }
}

/// "when the next window opens at <time>", for messages.
pub fn opens_text(opens: Option<Timestamp>) -> String {
    match opens {
        Some(t) => format!(
            "when the next window opens at {}",
            t.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
        None => "when a window opens".into(),
    }
}

/// Whether `now` lies in one of `windows`.
pub fn state(windows: &[Window], now: Timestamp) -> WindowState {
    if windows.is_empty() {
        return WindowState::Always;
    }
    let mut closes: Option<Timestamp> = None;
    let mut opens: Option<Timestamp> = None;
    for w in windows {
        for (start, end) in w.around(now) {
            if start <= now && now < end {
                closes = Some(closes.map_or(end, |c| c.max(end)));
            } else if start > now {
                opens = Some(opens.map_or(start, |o| o.min(start)));
            }
        }
    }
    match closes {
        Some(closes) => WindowState::Open { closes },
        None => WindowState::Closed { opens },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ws(list: &[&str]) -> Vec<Window> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn parse_table() {
        let good = [
            ("Sat 02:00-04:00 UTC", 1 << 5),
            ("daily 23:00-01:00 Europe/Berlin", 0x7f),
            ("mon-fri 9:00-17:00", 0b1_1111),
            ("Fri-Mon 22:00-06:00 America/New_York", 0b111_0001),
            ("Sat,Sun 00:00-00:00", 0b110_0000),
        ];
        for (text, days) in good {
            let w: Window = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(w.days, days, "{text}");
        }
        let bad = [
            ("Sat", "expected days"),
            ("Sat 02:00-04:00 UTC extra", "expected days"),
            ("Caturday 02:00-04:00", "\"Caturday\" is no day"),
            ("Sat 02:00", "is no time span"),
            ("Sat 25:00-04:00", "\"25:00\" is no time of day"),
            ("Sat 02:00-4", "\"4\" is no time of day"),
            (
                "Sat 02:00-04:00 Mars/Olympus",
                "\"Mars/Olympus\" is not known",
            ),
        ];
        for (text, says) in bad {
            let e = text.parse::<Window>().unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("write e.g."), "{text}: {e}");
        }
    }

    #[test]
    fn state_table() {
        use WindowState::*;
        let sat = ws(&["Sat 02:00-04:00 UTC"]);
        let night = ws(&["daily 23:00-01:00 Europe/Berlin"]);
        let both = ws(&["Sat 02:00-04:00 UTC", "daily 23:00-01:00 Europe/Berlin"]);
        // 2026-11-28 is a Saturday; Berlin is UTC+1 in winter, UTC+2 in summer.
        let cases: Vec<(&[Window], &str, WindowState)> = vec![
            (&[], "2026-11-30T12:00:00Z", Always),
            (
                &sat,
                "2026-11-28T02:00:00Z",
                Open {
                    closes: t("2026-11-28T04:00:00Z"),
                },
            ),
            (
                &sat,
                "2026-11-28T03:59:59Z",
                Open {
                    closes: t("2026-11-28T04:00:00Z"),
                },
            ),
            // The end is not in the window.
            (
                &sat,
                "2026-11-28T04:00:00Z",
                Closed {
                    opens: Some(t("2026-12-05T02:00:00Z")),
                },
            ),
            (
                &sat,
                "2026-11-27T23:00:00Z",
                Closed {
                    opens: Some(t("2026-11-28T02:00:00Z")),
                },
            ),
            // Spanning midnight, in the zone's wall-clock time: 22:00Z is 23:00 Berlin.
            (
                &night,
                "2026-11-30T12:00:00Z",
                Closed {
                    opens: Some(t("2026-11-30T22:00:00Z")),
                },
            ),
            (
                &night,
                "2026-11-30T22:30:00Z",
                Open {
                    closes: t("2026-12-01T00:00:00Z"),
                },
            ),
            // After midnight Berlin: yesterday's occurrence is still open.
            (
                &night,
                "2026-11-30T23:30:00Z",
                Open {
                    closes: t("2026-12-01T00:00:00Z"),
                },
            ),
            (
                &night,
                "2026-12-01T00:00:00Z",
                Closed {
                    opens: Some(t("2026-12-01T22:00:00Z")),
                },
            ),
            // Summer time: 23:00 Berlin is 21:00Z.
            (
                &night,
                "2026-07-01T21:30:00Z",
                Open {
                    closes: t("2026-07-01T23:00:00Z"),
                },
            ),
            (
                &both,
                "2026-11-28T03:00:00Z",
                Open {
                    closes: t("2026-11-28T04:00:00Z"),
                },
            ),
            (
                &both,
                "2026-11-28T05:00:00Z",
                Closed {
                    opens: Some(t("2026-11-28T22:00:00Z")),
                },
            ),
        ];
        for (windows, now, want) in cases {
            assert_eq!(state(windows, t(now)), want, "{now} {windows:?}");
            assert_eq!(
                state(windows, t(now)).allows(),
                !matches!(want, Closed { .. })
            );
        }
    }

    #[test]
    fn the_whole_day_and_a_dst_gap() {
        // 00:00-00:00 is the whole day it starts.
        let all_sat = ws(&["Sat 00:00-00:00 UTC"]);
        assert_eq!(
            state(&all_sat, t("2026-11-28T23:59:00Z")),
            WindowState::Open {
                closes: t("2026-11-29T00:00:00Z")
            }
        );
        // 2026-03-29 02:30 does not exist in Berlin (02:00 → 03:00): the window starts
        // after the gap and is still found.
        let gap = ws(&["Sun 02:30-04:00 Europe/Berlin"]);
        assert_eq!(
            state(&gap, t("2026-03-29T01:30:00Z")),
            WindowState::Open {
                closes: t("2026-03-29T02:00:00Z")
            }
        );
    }
}
