//! Registry access: one small trait, one implementation per scheme.
//!
//! Verification, caching and decisions live above this seam and never learn whether
//! bytes came from a directory, a web server or a bucket. Keys are paths relative to the
//! registry root, such as `demo/channels/prod.json`; each scheme maps them to its own
//! addressing.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use crate::error::{Classify, ErrorClass};
use bytes::Bytes;
use futures_util::Stream;

pub(crate) mod file;
pub(crate) mod headers;
pub mod http;
pub mod key;
pub(crate) mod limits;
pub mod retry;
pub mod s3;
pub(crate) mod source;
pub(crate) mod tls;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{location} not found (404): check the registry URL, app name and channel")]
    NotFound { location: String },
    #[error("access to {location} denied ({status}): {hint}")]
    Denied {
        location: String,
        status: u16,
        hint: String,
    },
    #[error("{location} answered HTTP {status}{detail}")]
    Status {
        location: String,
        status: u16,
        detail: String,
    },
    /// A 429 or 5xx that said when to come back (`Retry-After`).
    #[error("{location} answered HTTP {status}{detail}; the server asked to retry in {}s", retry_after.as_secs())]
    Throttled {
        location: String,
        status: u16,
        detail: String,
        retry_after: Duration,
    },
    /// A conditional write found the object changed since it was read.
    #[error("{location} was changed by someone else while this command was changing it")]
    Conflict { location: String },
    /// `message` says what went wrong in our words (may be empty); the text of every
    /// cause of `source` follows it, so the operator sees the "connection refused" at
    /// the bottom of a reqwest error.
    #[error("network error fetching {location}: {}", detail(message, source))]
    Network {
        location: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("timed out fetching {location} after {after:?}")]
    Timeout { location: String, after: Duration },
    /// An artifact download used up its total bounds (time or attempts) while still
    /// failing or crawling: progress alone does not keep it going for ever.
    #[error("gave up downloading {location} after {attempts} attempts in {}s ({received} of {total} bytes): {why}; the bounds are timeouts.artifact (here {}s) and {max_attempts} attempts in all (10 x (timeouts.retries + 1)): raise timeouts.artifact for a slow link, or fix the server", elapsed.as_secs(), deadline.as_secs())]
    GaveUp {
        location: String,
        attempts: u32,
        max_attempts: u32,
        elapsed: Duration,
        deadline: Duration,
        received: u64,
        total: String,
        why: String,
    },
    #[error("{location} is larger than the limit of {limit} bytes (raise limits.max_document_bytes or limits.max_artifact_bytes if this is expected)")]
    TooLarge { location: String, limit: u64 },
    /// A local I/O failure, or a server that broke the protocol; `message` and
    /// `source` as for [`TransportError::Network`].
    #[error("{location}: {}", detail(message, source))]
    Io {
        location: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("{location}: the server has {total} bytes but the release says {want}: the object was replaced or the release document is wrong")]
    SizeMismatch {
        location: String,
        total: u64,
        want: u64,
    },
    /// `why` quotes `source` where there is one (the credentials file's read error
    /// comes before the advice); the source is kept for callers that inspect it.
    #[error("S3 credentials: {why}")]
    Credentials {
        why: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error(transparent)]
    BadKey(#[from] key::BadKey),
    #[error("invalid registry URL {url:?}: {why}")]
    InvalidUrl { url: String, why: String },
    #[error("bucket {bucket:?} is in region {region}, but requests were signed for {configured}: set s3_region = \"{region}\" in the config (or AWS_REGION={region})")]
    WrongRegion {
        bucket: String,
        region: String,
        configured: String,
    },
}

/// The error underneath a [`TransportError::Network`] or [`TransportError::Io`]: an
/// `io::Error`, a reqwest error, a parser's error. Kept as the source so a caller can
/// inspect it; its text is also part of the message.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `message`, then the text of `source` and its causes, joined by ": ".
fn detail(message: &str, source: &Option<Cause>) -> String {
    match source {
        None => message.to_string(),
        Some(source) if message.is_empty() => http::error_chain(source.as_ref()),
        Some(source) => format!("{message}: {}", http::error_chain(source.as_ref())),
    }
}

impl TransportError {
    /// A local I/O failure on `location` that needs no words beyond its cause's.
    pub(crate) fn io(location: impl Into<String>, source: impl Into<Cause>) -> TransportError {
        TransportError::Io {
            location: location.into(),
            message: String::new(),
            source: Some(source.into()),
        }
    }

    /// Transient faults worth another attempt: the network, timeouts, 5xx, throttling.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Network { .. }
            | TransportError::Timeout { .. }
            | TransportError::Throttled { .. } => true,
            // A response of the wrong size may be one confused answer (a proxy, a cut
            // response): retried like a cut body; when retries run out it stands as
            // the verification failure it then is.
            TransportError::SizeMismatch { .. } => true,
            TransportError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A failed response's status error, as [`TransportError::Throttled`] when it is
    /// retryable and carried a usable `Retry-After` header value.
    pub fn from_status(
        location: String,
        status: u16,
        detail: String,
        retry_after_header: Option<&str>,
    ) -> TransportError {
        let retryable = status >= 500 || status == 429;
        match retry_after_header.and_then(parse_retry_after) {
            Some(retry_after) if retryable => TransportError::Throttled {
                location,
                status,
                detail,
                retry_after,
            },
            _ => TransportError::Status {
                location,
                status,
                detail,
            },
        }
    }
}

/// `Retry-After` is either delay-seconds or an HTTP date (RFC 9110 10.2.3); a date in
/// the past means "now".
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// One read from a registry.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    pub key: String,
    /// Conditional GET validators from the last successful fetch.
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    /// Resume from this byte offset (HTTP Range); 0 fetches the whole object.
    pub offset: u64,
    /// Refuse objects larger than this (see [`limits`]: checked against the announced
    /// length up front and against bytes received while streaming).
    pub limit: u64,
}

impl FetchRequest {
    /// An unconditional GET of the whole object, refused past `limit` bytes.
    pub fn whole(key: &str, limit: u64) -> FetchRequest {
        FetchRequest {
            key: key.to_string(),
            limit,
            ..FetchRequest::default()
        }
    }
}

pub enum Fetched {
    NotModified,
    Body(Body),
}

pub struct Body {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The server's clock (HTTP `Date`), for `doctor`'s clock-skew check; None for
    /// file:// registries, which share this machine's clock.
    pub date: Option<String>,
    /// Length of this response body if the server said so.
    pub len: Option<u64>,
    /// Byte offset of the first byte of `stream` in the object: equals the request's
    /// offset when the server honoured Range, 0 when it sent the whole object.
    pub offset: u64,
    pub stream: ByteStream,
}

impl Body {
    /// Collect a (small) body, enforcing `limit` while reading.
    pub async fn bytes(self, location: &str, limit: u64) -> Result<Vec<u8>, TransportError> {
        limits::collect(self.stream, location, limit).await
    }
}

/// Read access to a registry, the only thing the agent needs.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, TransportError>;
    /// Human-readable location of `key` for messages (a URL, a path, `s3://...`).
    fn location(&self, key: &str) -> String;
}

/// Write access for publishers. Writes of one object must be atomic to readers.
///
/// The conditional methods have no default bodies on purpose: a default that wrote
/// unconditionally would let a new backend compile and silently lose a concurrent
/// publisher's change. Each backend says how it keeps them (a lock, or conditional
/// writes), or that it cannot.
#[async_trait::async_trait]
pub trait Store: Transport {
    /// The object's bytes, or None if it does not exist.
    async fn get(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError>;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TransportError>;
    /// Upload a (possibly large) local file; S3 uses multipart above a threshold.
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), TransportError>;
    /// Keys under `prefix` (recursively), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError>;
    /// The object's bytes and its ETag (when the store has one), or None if it does
    /// not exist: what [`Store::put_if_unchanged`] compares against.
    async fn get_tagged(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError>;
    /// Write `key` only if it is still what was read: `expected` is the ETag from
    /// [`Store::get_tagged`], or None for "must not exist yet". A store that changed
    /// in between answers [`TransportError::Conflict`] and nothing is written.
    async fn put_if_unchanged(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<(), TransportError>;
    /// Upload a file only if `key` does not exist yet (two publishers racing to create
    /// the same artifact: one gets [`TransportError::Conflict`]).
    async fn put_file_if_absent(&self, key: &str, path: &Path) -> Result<(), TransportError>;
    /// Keep other publishers from changing `key` until the guard is dropped, around a
    /// read-modify-write of a channel document (a concurrent yank must not be lost to
    /// a promotion). A store that cannot lock returns an empty guard and must keep
    /// [`Store::put_if_unchanged`] exact instead.
    async fn lock_for_update(&self, key: &str) -> Result<UpdateLock, TransportError>;
}

/// The answer to an unconditional GET as a whole object and its ETag; None for 404.
pub(crate) async fn whole_object(
    location: String,
    limit: u64,
    fetched: Result<Fetched, TransportError>,
) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError> {
    match fetched {
        Ok(Fetched::Body(b)) => {
            let etag = b.etag.clone();
            Ok(Some((b.bytes(&location, limit).await?, etag)))
        }
        Ok(Fetched::NotModified) => Err(TransportError::Io {
            location,
            message: "answered 304 Not Modified to an unconditional GET".into(),
            source: None,
        }),
        Err(TransportError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Held by [`Store::lock_for_update`]; the lock goes with it (or with the process).
#[derive(Debug, Default)]
pub struct UpdateLock {
    _held: Option<std::fs::File>,
}

impl UpdateLock {
    pub fn holding(file: std::fs::File) -> UpdateLock {
        UpdateLock { _held: Some(file) }
    }
}

/// Settings shared by every scheme, from the config file and environment.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    pub connect_timeout: Duration,
    /// Longest silence while reading before giving up on a transfer.
    pub read_timeout: Duration,
    pub s3: S3Options,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            s3: S3Options::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// Open a registry for reading by URL scheme: `file://`, `http(s)://`, `s3://`.
pub fn open(url: &str, opts: &TransportOptions) -> Result<Box<dyn Transport>, TransportError> {
    match scheme_of(url)? {
        "file" => Ok(Box::new(file::FileRegistry::from_url(url)?)),
        "http" | "https" => Ok(Box::new(http::HttpRegistry::new(url, opts)?)),
        "s3" => Ok(Box::new(s3::S3Registry::new(url, opts)?)),
        _ => unreachable!("scheme_of only returns known schemes"),
    }
}

/// Open a registry for publishing. HTTP registries are read-only: publish to the
/// directory or bucket the web server serves.
pub fn open_store(url: &str, opts: &TransportOptions) -> Result<Box<dyn Store>, TransportError> {
    match scheme_of(url)? {
        "file" => Ok(Box::new(file::FileRegistry::from_url(url)?)),
        "s3" => Ok(Box::new(s3::S3Registry::new(url, opts)?)),
        _ => Err(TransportError::InvalidUrl {
            url: url.to_string(),
            why: "publishing needs a file:// directory or an s3:// bucket; an HTTP server is read-only (publish to the directory it serves)".into(),
        }),
    }
}

fn scheme_of(url: &str) -> Result<&'static str, TransportError> {
    for s in ["file", "http", "https", "s3"] {
        if url.len() > s.len() + 3 && url.starts_with(s) && url[s.len()..].starts_with("://") {
            return Ok(s);
        }
    }
    Err(TransportError::InvalidUrl {
        url: url.to_string(),
        why: "expected file:///path, http(s)://host/path or s3://bucket/prefix".into(),
    })
}

impl Classify for TransportError {
    fn class(&self) -> ErrorClass {
        match self {
            TransportError::NotFound { .. } => ErrorClass::NotFound,
            // A registry that sends more than the limit (or the signed size) is refused
            // like any other document that fails verification.
            TransportError::TooLarge { .. } | TransportError::SizeMismatch { .. } => {
                ErrorClass::Verify
            }
            TransportError::InvalidUrl { .. } => ErrorClass::Usage,
            _ => ErrorClass::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn io_errors_keep_their_cause_and_quote_it() {
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cases = [
            (
                TransportError::io("a/b.json", denied()),
                "a/b.json: permission denied",
            ),
            (
                TransportError::Io {
                    location: "a/b.json".into(),
                    message: "copying /tmp/x".into(),
                    source: Some(denied().into()),
                },
                "a/b.json: copying /tmp/x: permission denied",
            ),
            (
                TransportError::Network {
                    location: "a/b.json".into(),
                    message: "connection closed after 1 of 2 bytes".into(),
                    source: None,
                },
                "network error fetching a/b.json: connection closed after 1 of 2 bytes",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            if let Some(s) = e.source() {
                let io = s.downcast_ref::<std::io::Error>().expect("the io::Error");
                assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
            }
        }
    }
}
