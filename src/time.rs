//! Timestamps as every updraft document and record writes them: RFC 3339, UTC, whole
//! seconds, ending in `Z`. One format, so a document, the state file and the history
//! compare and sort as text the same way they do as times.

use std::time::SystemTime;

pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    if !s.ends_with('Z') {
        return Err(format!("time {s:?} must be RFC 3339 in UTC ending in 'Z'"));
    }
    humantime::parse_rfc3339(s).map_err(|e| format!("time {s:?} is not RFC 3339: {e}"))
}
