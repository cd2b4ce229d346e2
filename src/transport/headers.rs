//! HTTP header values that the transports and the dev server (`updraft serve`) must
//! agree on, written once: the ETag of a file, the `Content-Range` of a partial answer,
//! and the content type of a registry object. Pure functions, tested below.

use std::fs::Metadata;
use std::time::UNIX_EPOCH;

/// A strong validator for a file: its size and modification time in nanoseconds, in
/// hex. Registry objects are replaced by rename of a new file, which changes at least
/// one of the two, so a reader holding an old ETag never mistakes new bytes for old.
/// `file://` registries and `updraft serve` give the same file the same ETag.
pub fn file_etag(meta: &Metadata) -> String {
    let ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{ns:x}\"", meta.len())
}

/// The `Last-Modified` of a response if it may serve as a validator, None if not.
///
/// It has one-second resolution: a document replaced within the second it was served
/// in keeps its `Last-Modified`, and `If-Modified-Since` would then answer 304 for the
/// new document until the next write (spec §11). RFC 9110 8.8.2.2 calls it weak unless
/// it is at least one second before the response's `Date`; a weak one (or one that
/// cannot be compared with a `Date`) is not kept, so the next poll fetches in full.
pub fn strong_last_modified(last_modified: Option<&str>, date: Option<&str>) -> Option<String> {
    let lm = last_modified?;
    let modified = httpdate::parse_http_date(lm).ok()?;
    let date = httpdate::parse_http_date(date?).ok()?;
    let settled = date
        .duration_since(modified)
        .is_ok_and(|d| d >= std::time::Duration::from_secs(1));
    settled.then(|| lm.to_string())
}

/// A `Content-Range` response header (RFC 9110 14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes first-last/total`: inclusive byte positions; `total` is None for `/*`.
    Part {
        first: u64,
        last: u64,
        total: Option<u64>,
    },
    /// `bytes */total`, sent with 416: the object has `total` bytes.
    Unsatisfied { total: u64 },
}

impl ContentRange {
    /// None for anything malformed: another unit, missing parts, last before first, or
    /// a last byte at or past the total.
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let total = match total.trim() {
            "*" => None,
            t => Some(number(t)?),
        };
        if range.trim() == "*" {
            return total.map(|total| ContentRange::Unsatisfied { total });
        }
        let (first, last) = range.split_once('-')?;
        let (first, last) = (number(first.trim())?, number(last.trim())?);
        if last < first || total.is_some_and(|t| last >= t) {
            return None;
        }
        Some(ContentRange::Part { first, last, total })
    }

    /// The first byte of a partial answer.
    pub fn first(&self) -> Option<u64> {
        match self {
            ContentRange::Part { first, .. } => Some(*first),
            ContentRange::Unsatisfied { .. } => None,
        }
    }
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Content types by file-name ending, first match wins. Only what a registry holds;
/// anything else is bytes.
const CONTENT_TYPES: &[(&str, &str)] = &[
    (".json", "application/json"),
    (".tar.gz", "application/gzip"),
    (".tgz", "application/gzip"),
    (".gz", "application/gzip"),
    (".minisig", "text/plain; charset=utf-8"),
    (".pub", "text/plain; charset=utf-8"),
    (".txt", "text/plain; charset=utf-8"),
];

/// The content type an object named `name` (a key or a file name) is stored and
/// served with.
pub fn content_type(name: &str) -> &'static str {
    CONTENT_TYPES
        .iter()
        .find(|(ending, _)| name.ends_with(ending))
        .map_or("application/octet-stream", |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_modified_within_a_second_of_date_is_weak() {
        let lm = "Mon, 30 Nov 2026 10:00:00 GMT";
        let cases = [
            (Some(lm), Some("Mon, 30 Nov 2026 10:00:01 GMT"), true),
            (Some(lm), Some("Mon, 30 Nov 2026 11:00:00 GMT"), true),
            // Served in the second it was written: a later write may keep it.
            (Some(lm), Some(lm), false),
            // Ahead of the server's clock: nothing can be said.
            (Some(lm), Some("Mon, 30 Nov 2026 09:59:59 GMT"), false),
            // No Date to compare with, or nothing parseable.
            (Some(lm), None, false),
            (Some("yesterday"), Some(lm), false),
            (None, Some(lm), false),
        ];
        for (last_modified, date, strong) in cases {
            assert_eq!(
                strong_last_modified(last_modified, date).is_some(),
                strong,
                "{last_modified:?} / {date:?}"
            );
        }
    }

    #[test]
    fn content_ranges() {
        use ContentRange::*;
        let part = |first, last, total| Some(Part { first, last, total });
        for (header, want) in [
            ("bytes 100-199/200", part(100, 199, Some(200))),
            (" bytes 0-0/* ", part(0, 0, None)),
            ("bytes 6-10/11", part(6, 10, Some(11))),
            ("bytes */200", Some(Unsatisfied { total: 200 })),
            // Malformed.
            ("bytes */*", None),
            ("items 1-2/3", None),
            ("bytes 1-2", None),
            ("bytes 5-3/10", None),
            ("bytes 0-10/10", None),
            ("bytes -1-3/10", None),
            ("bytes +1-3/10", None),
            ("bytes 1-/10", None),
            ("bytes=1-3/10", None),
            ("", None),
        ] {
            assert_eq!(ContentRange::parse(header), want, "{header:?}");
        }
        assert_eq!(
            ContentRange::parse("bytes 7-9/10").unwrap().first(),
            Some(7)
        );
        assert_eq!(ContentRange::parse("bytes */10").unwrap().first(), None);
    }

    #[test]
    fn content_types() {
        for (name, want) in [
            ("demo/channels/prod.json", "application/json"),
            (
                "demo/releases/1.0.0/demo-1.0.0-x86_64-linux.tar.gz",
                "application/gzip",
            ),
            ("a.tgz", "application/gzip"),
            ("a.gz", "application/gzip"),
            (
                "demo/channels/prod.json.minisig",
                "text/plain; charset=utf-8",
            ),
            ("keys/ci.pub", "text/plain; charset=utf-8"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("a.tar", "application/octet-stream"),
            ("json", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), want, "{name}");
        }
    }

    #[test]
    fn file_etags_change_with_size_and_mtime() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        let at = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        f.set_modified(at).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(file_etag(&meta), "\"3-17979cfe362a0005\"");
        f.set_modified(at + std::time::Duration::from_nanos(1))
            .unwrap();
        assert_ne!(file_etag(&std::fs::metadata(&p).unwrap()), file_etag(&meta));
    }
}
