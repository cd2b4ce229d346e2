//! Retries with exponential backoff and jitter, above any transport.
//!
//! Documents are small: a failed or cut transfer is simply fetched again. Artifacts are
//! large: a cut transfer resumes from the bytes already handed out (HTTP Range), and
//! the consumer sees one uninterrupted stream of the whole object, exactly once, or an
//! error. Partial data is never handed out as complete.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::warn;

use super::limits;
use super::{ByteStream, FetchRequest, Fetched, Transport, TransportError};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total tries including the first (0 behaves like 1).
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a server asking for more gets this much, so
    /// a hostile or confused one cannot park an agent (slow retrieval).
    pub max_retry_after: Duration,
    /// Bound on one whole artifact download (`timeouts.artifact`); None: derived from
    /// its size by [`artifact_deadline`].
    pub artifact: Option<Duration>,
}

/// How many attempts one artifact download gets in all, as a multiple of
/// [`RetryPolicy::attempts`] (which counts failures in a row, reset by progress).
pub const TOTAL_ATTEMPTS_FACTOR: u32 = 10;

/// The shortest default bound on an artifact download.
pub const MIN_ARTIFACT_TIME: Duration = Duration::from_secs(300);

/// The slowest rate the default bound allows for: 64 KiB/s.
pub const MIN_ARTIFACT_RATE: u64 = 64 * 1024;

/// The total time an artifact download of `size` bytes may take, retries included:
/// the configured `timeouts.artifact`, else max(5 min, size at 64 KiB/s). A server that
/// trickles, or sends a byte per connection and resets, cannot hold the root lock
/// beyond it.
pub fn artifact_deadline(configured: Option<Duration>, size: u64) -> Duration {
    configured
        .unwrap_or_else(|| MIN_ARTIFACT_TIME.max(Duration::from_secs(size / MIN_ARTIFACT_RATE)))
}

/// The wait before the next attempt: the backoff's, or longer when the server asked
/// for longer (capped). `None` (the budget is spent) stays `None`.
pub fn delay_for(
    backoff: Option<Duration>,
    e: &TransportError,
    max_retry_after: Duration,
) -> Option<Duration> {
    let d = backoff?;
    Some(match e.retry_after() {
        Some(asked) => d.max(asked.min(max_retry_after)),
        None => d,
    })
}

impl RetryPolicy {
    /// The policy the config's `[timeouts]` asks for: `retries` after the first try.
    pub fn from_timeouts(t: &crate::config::Timeouts) -> RetryPolicy {
        RetryPolicy {
            attempts: t.retries + 1,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            // No longer than the longest backoff step: an update holds the app root's
            // lock while it polls, and other commands wait at most `lock_timeout`.
            max_retry_after: Duration::from_secs(10),
            artifact: t.artifact.map(|d| d.0),
        }
    }

    /// Attempts one artifact download gets in all.
    pub fn total_attempts(&self) -> u32 {
        self.attempts.max(1).saturating_mul(TOTAL_ATTEMPTS_FACTOR)
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .with_jitter()
    }
}

pub enum Document {
    NotModified,
    Fresh {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Fetch a whole small document, retrying transient failures (including a body cut
/// short) with backoff. Permanent failures (404, 403, too large...) return at once.
pub async fn fetch_document(
    t: &dyn Transport,
    req: &FetchRequest,
    policy: &RetryPolicy,
) -> Result<Document, TransportError> {
    let location = t.location(&req.key);
    let once = || async {
        match t.fetch(req).await? {
            Fetched::NotModified => Ok(Document::NotModified),
            Fetched::Body(b) => {
                let etag = b.etag.clone();
                let last_modified = b.last_modified.clone();
                let announced = b.len;
                let bytes = b.bytes(&location, req.limit).await?;
                // Every transport should catch this itself; a short document must never
                // reach signature verification as if it were whole.
                if let Some(n) = announced.filter(|n| *n != bytes.len() as u64) {
                    return Err(TransportError::Network {
                        location: location.clone(),
                        message: format!("body ended after {} of {n} bytes", bytes.len()),
                        source: None,
                    });
                }
                Ok(Document::Fresh {
                    bytes,
                    etag,
                    last_modified,
                })
            }
        }
    };
    let mut tries = 1u32;
    let result = once
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &TransportError| e.is_retryable())
        .adjust(|e: &TransportError, d| delay_for(d, e, policy.max_retry_after))
        .notify(|e: &TransportError, delay: Duration| {
            warn!(
                attempt = tries,
                of = policy.attempts,
                "retrying in {} ms: {e}",
                delay.as_millis()
            );
            tries += 1;
        })
        .await;
    if let Err(e) = &result {
        if e.is_retryable() && tries > 1 {
            warn!(location = %location, attempts = tries, "giving up: {e}");
        }
    }
    result
}

/// The object at `key` from byte 0 to its end, resuming after interruptions.
///
/// On a transient failure the stream re-requests from the number of bytes already
/// yielded; a server that ignores Range sends the whole object again and the bytes
/// already yielded are skipped. The retry budget (`policy.attempts`) counts failures in
/// a row: any new byte received starts a fresh budget, so a long download over a flaky
/// link keeps going while a dead server is given up on quickly. Progress does not make
/// it endless: the whole download has a deadline ([`artifact_deadline`]) and at most
/// [`RetryPolicy::total_attempts`] attempts. The stream fails (and ends) past `limit`,
/// and when `expected_len` is known, on any byte beyond it or when the retries run out
/// before reaching it.
pub fn resumable_stream(
    t: Arc<dyn Transport>,
    key: String,
    limit: u64,
    expected_len: Option<u64>,
    policy: RetryPolicy,
) -> ByteStream {
    let location = t.location(&key);
    let started = tokio::time::Instant::now();
    let bound = artifact_deadline(policy.artifact, expected_len.unwrap_or(limit));
    let state = Resume {
        started,
        bound,
        attempts: 1,
        backoff: policy.backoff().build(),
        t,
        key,
        location,
        limit,
        expected_len,
        policy,
        yielded: 0,
        skip: 0,
        failures: 0,
        etag: None,
        current: None,
        finished: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        let item = s.next_chunk().await?;
        Some((item, s))
    }))
}

struct Resume {
    t: Arc<dyn Transport>,
    key: String,
    location: String,
    limit: u64,
    expected_len: Option<u64>,
    policy: RetryPolicy,
    backoff: ExponentialBackoff,
    /// Bytes handed to the consumer so far: the offset to resume from.
    yielded: u64,
    /// Bytes still to drop from the current response (it started before `yielded`).
    skip: u64,
    /// Failures since the last byte received.
    failures: u32,
    /// When the download started, and how long it may take in all.
    started: tokio::time::Instant,
    bound: Duration,
    /// Requests made so far.
    attempts: u32,
    /// Validator of the first response: a resumed response must be of the same object.
    etag: Option<String>,
    current: Option<ByteStream>,
    finished: bool,
}

impl Resume {
    /// The next chunk, an error (after which the stream ends), or None at the end.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            if self.finished {
                return None;
            }
            let deadline = self.started + self.bound;
            let step = match tokio::time::timeout_at(deadline, self.step()).await {
                Ok(step) => step,
                Err(_) => {
                    self.finished = true;
                    return Some(Err(self.gave_up("the download did not finish in time")));
                }
            };
            match step {
                Ok(Some(chunk)) if chunk.is_empty() => continue,
                Ok(Some(chunk)) => return Some(Ok(chunk)),
                Ok(None) => continue,
                Err(e) => {
                    if let Err(e) = self.before_retry(e).await {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// One step: open a response, or read a chunk of the current one.
    async fn step(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self.current.as_mut() {
            None => self.open().await.map(|()| None),
            Some(body) => match body.next().await {
                Some(Ok(chunk)) => self.accept(chunk).map(Some),
                Some(Err(e)) => {
                    self.current = None;
                    Err(e)
                }
                None => {
                    self.current = None;
                    self.at_end().map(|()| None)
                }
            },
        }
    }

    /// The error for a download that used up its total bounds.
    fn gave_up(&self, why: impl std::fmt::Display) -> TransportError {
        let total = self
            .expected_len
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        warn!(location = %self.location, attempts = self.attempts, "giving up after {} of {total} bytes: {why}", self.yielded);
        TransportError::GaveUp {
            location: self.location.clone(),
            attempts: self.attempts,
            max_attempts: self.policy.total_attempts(),
            elapsed: self.started.elapsed(),
            deadline: self.bound,
            received: self.yielded,
            total,
            why: why.to_string(),
        }
    }

    async fn open(&mut self) -> Result<(), TransportError> {
        let req = FetchRequest {
            key: self.key.clone(),
            offset: self.yielded,
            limit: self.limit,
            ..Default::default()
        };
        let body = match self.t.fetch(&req).await? {
            Fetched::Body(b) => b,
            Fetched::NotModified => {
                return Err(TransportError::Io {
                    location: self.location.clone(),
                    message: "the server answered 304 Not Modified to an unconditional request"
                        .into(),
                    source: None,
                })
            }
        };
        if body.offset > self.yielded {
            return Err(TransportError::Io {
                location: self.location.clone(),
                message: format!(
                    "asked to resume at byte {} but the response starts at byte {}",
                    self.yielded, body.offset
                ),
                source: None,
            });
        }
        if let (None, Some(len)) = (self.expected_len, body.len) {
            // The size is known now: bound the download by it rather than by the limit.
            if self.yielded == 0 {
                self.bound = artifact_deadline(self.policy.artifact, body.offset + len);
            }
        }
        if let (Some(want), Some(len)) = (self.expected_len, body.len) {
            let total = body.offset + len;
            if total != want {
                // A wrong Content-Length (a confused proxy, a cut response) is a transfer
                // fault like a short body: retried (`is_retryable`), and given up on with
                // the budget.
                return Err(TransportError::SizeMismatch {
                    location: self.location.clone(),
                    total,
                    want,
                });
            }
        }
        match (&self.etag, &body.etag) {
            (Some(first), Some(now)) if first != now => {
                self.finished = true;
                return Err(TransportError::Io {
                    location: self.location.clone(),
                    message: format!(
                        "the object changed while it was being downloaded (ETag {first} became {now}); try again"
                    ),
                    source: None,
                });
            }
            (None, Some(now)) if self.yielded == 0 => self.etag = Some(now.clone()),
            _ => {}
        }
        if body.offset < self.yielded {
            warn!(
                location = %self.location,
                "server ignored the Range request: skipping {} bytes already received",
                self.yielded - body.offset
            );
        }
        self.skip = self.yielded - body.offset;
        self.current = Some(body.stream);
        Ok(())
    }

    /// Account for one received chunk; what is left of it is new to the consumer.
    fn accept(&mut self, mut chunk: Bytes) -> Result<Bytes, TransportError> {
        if self.skip > 0 {
            let drop = self.skip.min(chunk.len() as u64);
            let _ = chunk.split_to(drop as usize);
            self.skip -= drop;
        }
        // Progress (new bytes, not re-sent ones): the budget starts afresh.
        if !chunk.is_empty() && self.failures > 0 {
            self.failures = 0;
            self.backoff = self.policy.backoff().build();
        }
        let after = self.yielded + chunk.len() as u64;
        if let Err(e) = limits::check(&self.location, self.limit, after) {
            self.finished = true;
            return Err(e);
        }
        if let Some(want) = self.expected_len.filter(|w| after > *w) {
            self.finished = true;
            return Err(TransportError::Io {
                location: self.location.clone(),
                message: format!(
                    "more data than the {want} bytes the release announces: the object was replaced or the release document is wrong"
                ),
                source: None,
            });
        }
        self.yielded = after;
        Ok(chunk)
    }

    /// A response ended cleanly: done, unless it was short of the expected length.
    fn at_end(&mut self) -> Result<(), TransportError> {
        match self.expected_len {
            Some(want) if self.yielded < want => Err(TransportError::Network {
                location: self.location.clone(),
                message: format!("transfer ended after {} of {want} bytes", self.yielded),
                source: None,
            }),
            _ => {
                self.finished = true;
                Ok(())
            }
        }
    }

    /// Sleep before the next attempt, or give the error back when it is permanent or
    /// the budget is spent.
    async fn before_retry(&mut self, e: TransportError) -> Result<(), TransportError> {
        if self.finished || !e.is_retryable() {
            return Err(e);
        }
        // Everything announced has arrived; only the connection's end was untidy.
        if self.expected_len == Some(self.yielded) && self.yielded > 0 {
            warn!(location = %self.location, "ignoring an error after the last byte: {e}");
            self.finished = true;
            return Ok(());
        }
        self.failures += 1;
        if self.attempts >= self.policy.total_attempts() {
            return Err(self.gave_up(format!("too many attempts; the last failed: {e}")));
        }
        let Some(delay) = delay_for(self.backoff.next(), &e, self.policy.max_retry_after) else {
            warn!(
                location = %self.location,
                attempts = self.failures,
                "giving up after {} of {} bytes: {e}",
                self.yielded,
                self.expected_len.map_or("?".to_string(), |n| n.to_string())
            );
            return Err(e);
        };
        warn!(
            attempt = self.failures,
            of = self.policy.attempts,
            resume_at = self.yielded,
            "retrying in {} ms: {e}",
            delay.as_millis()
        );
        if self.started.elapsed() + delay >= self.bound {
            return Err(self.gave_up(format!(
                "no time left for another attempt; the last failed: {e}"
            )));
        }
        tokio::time::sleep(delay).await;
        self.attempts += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(secs: u64) -> TransportError {
        TransportError::Throttled {
            location: "x".into(),
            status: 503,
            detail: String::new(),
            retry_after: Duration::from_secs(secs),
        }
    }

    #[test]
    fn retry_after_lengthens_never_shortens_and_is_capped() {
        let ms = Duration::from_millis;
        let cap = Duration::from_secs(60);
        let plain = TransportError::Network {
            location: "x".into(),
            message: "reset".into(),
            source: None,
        };
        assert_eq!(delay_for(Some(ms(300)), &plain, cap), Some(ms(300)));
        assert_eq!(delay_for(Some(ms(300)), &throttled(2), cap), Some(ms(2000)));
        assert_eq!(delay_for(Some(ms(300)), &throttled(0), cap), Some(ms(300)));
        assert_eq!(delay_for(Some(ms(300)), &throttled(3600), cap), Some(cap));
        assert_eq!(delay_for(None, &throttled(2), cap), None);
    }

    #[test]
    fn artifact_deadline_table() {
        let s = Duration::from_secs;
        let mib = 1024 * 1024;
        // (configured, size, bound)
        let cases = [
            (None, 0, s(300)),
            (None, 10 * mib, s(300)),
            // 64 KiB/s: 1 GiB takes 16384 s.
            (None, 1024 * mib, s(16384)),
            (None, 20 * mib, s(320)),
            (Some(s(2)), 1024 * mib, s(2)),
            (Some(s(3600)), 0, s(3600)),
        ];
        for (configured, size, want) in cases {
            assert_eq!(
                artifact_deadline(configured, size),
                want,
                "{configured:?} {size}"
            );
        }
    }

    #[test]
    fn retry_after_header_forms() {
        use crate::transport::parse_retry_after;
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(soon)).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
        // Only retryable statuses become Throttled.
        let e = TransportError::from_status("x".into(), 404, String::new(), Some("5"));
        assert!(matches!(e, TransportError::Status { .. }));
        let e = TransportError::from_status("x".into(), 429, String::new(), Some("5"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    }
}
