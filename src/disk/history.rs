//! `.updraft/history.jsonl`: one JSON line per event, for humans and `updraft why`.
//! Losing the last line in a crash is acceptable, so lines are appended without a rename.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::registry::names::Version;
use crate::time::Timestamp;

/// What happened. Written as the lowercase name; a name this version does not know
/// (written by a newer one) is kept as it is, so `why` still shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Event {
    Deploy,
    Update,
    Rollback,
    /// A killed run's pending activation was undone.
    Recover,
    /// A health result (the state file's `last_health`).
    Health,
    Pin,
    Unpin,
    Unblock,
    /// The agent refused a channel document (or could not fetch it).
    Rejected,
    /// The agent's decision about a new channel document.
    Decision,
    /// The pre-activation check refused a release the agent fetched.
    Blocked,
    /// `current` was found moved by another tool.
    Moved,
    /// A lifecycle hook ran (its phase, command, outcome and output).
    Hook,
    Other(String),
}

impl Event {
    pub fn as_str(&self) -> &str {
        match self {
            Event::Deploy => "deploy",
            Event::Update => "update",
            Event::Rollback => "rollback",
            Event::Recover => "recover",
            Event::Health => "health",
            Event::Pin => "pin",
            Event::Unpin => "unpin",
            Event::Unblock => "unblock",
            Event::Rejected => "rejected",
            Event::Decision => "decision",
            Event::Blocked => "blocked",
            Event::Moved => "moved",
            Event::Hook => "hook",
            Event::Other(s) => s,
        }
    }
}

impl From<String> for Event {
    fn from(s: String) -> Event {
        let known = [
            Event::Deploy,
            Event::Update,
            Event::Rollback,
            Event::Recover,
            Event::Health,
            Event::Pin,
            Event::Unpin,
            Event::Unblock,
            Event::Rejected,
            Event::Decision,
            Event::Blocked,
            Event::Moved,
            Event::Hook,
        ];
        known
            .into_iter()
            .find(|e| e.as_str() == s)
            .unwrap_or(Event::Other(s))
    }
}

impl From<Event> for String {
    fn from(e: Event) -> String {
        e.as_str().to_string()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: Timestamp,
    pub event: Event,
    pub version: Option<Version>,
    pub ok: bool,
    pub message: String,
}

impl Entry {
    pub fn now(event: Event, version: Option<&Version>, ok: bool, message: &str) -> Entry {
        Entry {
            at: Timestamp::now(),
            event,
            version: version.cloned(),
            ok,
            message: message.to_string(),
        }
    }
}

/// Append one line to the history file. When the last line was torn (a crash in the
/// middle of an append), the new one starts on a line of its own, so only the torn
/// fragment is lost, not the next event as well.
pub fn append(path: &Path, entry: &Entry) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let mut line = Vec::new();
    if f.seek(SeekFrom::End(0))? > 0 {
        let mut last = [0u8];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    serde_json::to_writer(&mut line, entry).map_err(io::Error::other)?;
    line.push(b'\n');
    // One write on an O_APPEND file: appended whole at the end whatever the offset.
    f.write_all(&line)
}

/// The last `last` readable entries, oldest first. A line that does not parse (torn by
/// a crash, or edited by hand) is skipped: the history is advisory.
pub fn read_last(path: &Path, last: usize) -> Vec<Entry> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let all: Vec<Entry> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    all[all.len().saturating_sub(last)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the previous version wrote them (`serde_json::json!` sorts its keys).
    const OLD_LINES: &str = r#"{"at":"2026-11-29T10:00:00Z","event":"deploy","message":"1.1.0 active (Restarted, previous 1.0.0)","ok":true,"version":"1.1.0"}
{"at":"2026-11-29T10:01:00Z","event":"rejected","message":"signature on prod.json is not by a trusted key","ok":false,"version":null}
{"at":"2026-11-29T10:02:00Z","event":"pin","message":"pinned by operator","ok":true,"version":"1.0.0"}
{"at":"2026-11-29T10:03:00Z","event":"from-the-future","message":"kept","ok":true,"version":null}
{"at":"2026-11-29T10:04:0
{"at":"2026-11-29T10:05:00Z","event":"unblock","message":"unblocked by operator (was: x)","ok":true,"version":"1.2.0"}
"#;

    #[test]
    fn history_of_the_previous_version_reads_and_writes_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("history.jsonl");
        fs::write(&p, OLD_LINES).unwrap();
        let all = read_last(&p, 100);
        let events: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            events,
            ["deploy", "rejected", "pin", "from-the-future", "unblock"]
        );
        assert_eq!(all[0].event, Event::Deploy);
        assert_eq!(all[3].event, Event::Other("from-the-future".into()));
        // Each parsed line serialises to the same JSON value it was read from.
        let good: Vec<&str> = OLD_LINES.lines().filter(|l| l.ends_with('}')).collect();
        for (entry, line) in all.iter().zip(good) {
            let back = serde_json::to_value(entry).unwrap();
            let old: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back, old);
        }
        assert_eq!(read_last(&p, 2).len(), 2);
        assert_eq!(read_last(&p, 2)[1].event, Event::Unblock);
    }

    #[test]
    fn append_then_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h/history.jsonl");
        assert!(read_last(&p, 5).is_empty());
        let v: Version = "1.0.0".parse().unwrap();
        let e = Entry::now(
            Event::Blocked,
            Some(&v),
            false,
            "pre-activation check failed",
        );
        append(&p, &e).unwrap();
        append(&p, &Entry::now(Event::Decision, None, true, "up to date")).unwrap();
        let all = read_last(&p, 5);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], e);
    }

    #[test]
    fn an_append_after_a_torn_line_starts_on_a_fresh_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("history.jsonl");
        let first = Entry::now(Event::Pin, None, true, "first");
        append(&p, &first).unwrap();
        // A crash in the middle of the next append.
        let mut torn = fs::read(&p).unwrap();
        torn.extend_from_slice(br#"{"at":"2026-11-29T10:04:0"#);
        fs::write(&p, torn).unwrap();
        let next = Entry::now(Event::Unpin, None, true, "next");
        append(&p, &next).unwrap();
        assert_eq!(read_last(&p, 10), [first, next]);
    }

    #[test]
    fn event_names_table() {
        let cases = [
            (Event::Deploy, "deploy"),
            (Event::Update, "update"),
            (Event::Rollback, "rollback"),
            (Event::Recover, "recover"),
            (Event::Health, "health"),
            (Event::Pin, "pin"),
            (Event::Unpin, "unpin"),
            (Event::Unblock, "unblock"),
            (Event::Rejected, "rejected"),
            (Event::Decision, "decision"),
            (Event::Blocked, "blocked"),
            (Event::Moved, "moved"),
        ];
        for (event, name) in cases {
            assert_eq!(serde_json::to_value(&event).unwrap(), name);
            assert_eq!(Event::from(name.to_string()), event);
        }
    }
}
