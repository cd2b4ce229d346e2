//! Size limits on what a registry sends, with one meaning everywhere: an object may
//! hold at most `limit` bytes, counted from its first byte (a resumed body counts from
//! its offset). There is no "unlimited": `0` allows only empty objects, and the config
//! refuses `0` for its `[limits]` so an operator cannot ask for it by accident.
//!
//! Every scheme announces a length (Content-Length, a file's size) and then streams;
//! both are checked here, the first before a byte is read, the second as bytes arrive,
//! so an endless or lying body is stopped at the limit and never buffered whole.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{ByteStream, TransportError};

/// [`TransportError::TooLarge`] when an object of `total` bytes is over `limit`.
pub fn check(location: &str, limit: u64, total: u64) -> Result<(), TransportError> {
    if total > limit {
        return Err(TransportError::TooLarge {
            location: location.to_string(),
            limit,
        });
    }
    Ok(())
}

/// A body that stops with [`TransportError::TooLarge`] once the object passes the
/// limit, and that cannot pass for complete when it is not: more bytes than announced
/// is an error, and fewer (a cut connection) a retryable network error.
pub struct Limited {
    inner: ByteStream,
    location: String,
    /// Object offset of the body's first byte.
    start: u64,
    received: u64,
    /// Length the sender announced for this body, if it did.
    announced: Option<u64>,
    limit: u64,
    done: bool,
}

impl Limited {
    /// Check the announced length at once, then wrap `inner`.
    pub fn new(
        inner: ByteStream,
        location: String,
        start: u64,
        announced: Option<u64>,
        limit: u64,
    ) -> Result<Limited, TransportError> {
        if let Some(len) = announced {
            check(&location, limit, start.saturating_add(len))?;
        }
        Ok(Limited {
            inner,
            location,
            start,
            received: 0,
            announced,
            limit,
            done: false,
        })
    }

    fn on_chunk(&mut self, chunk: Bytes) -> Result<Bytes, TransportError> {
        self.received += chunk.len() as u64;
        check(
            &self.location,
            self.limit,
            self.start.saturating_add(self.received),
        )?;
        if let Some(n) = self.announced.filter(|n| self.received > *n) {
            return Err(TransportError::Io {
                location: self.location.clone(),
                message: format!("the server sent more than the {n} bytes it announced"),
                source: None,
            });
        }
        Ok(chunk)
    }

    fn at_end(&self) -> Option<TransportError> {
        let n = self.announced.filter(|n| self.received < *n)?;
        Some(TransportError::Network {
            location: self.location.clone(),
            message: format!("connection closed after {} of {n} bytes", self.received),
            source: None,
        })
    }
}

impl Stream for Limited {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        let this = &mut *self;
        let out = match item {
            Some(Ok(chunk)) => this.on_chunk(chunk),
            Some(Err(e)) => Err(e),
            None => match this.at_end() {
                Some(e) => Err(e),
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
            },
        };
        this.done = out.is_err();
        Poll::Ready(Some(out))
    }
}

/// Collect a stream of chunks, failing as soon as it passes `limit` bytes (so a huge
/// body is never buffered whole).
pub async fn collect(
    mut stream: impl Stream<Item = Result<Bytes, TransportError>> + Unpin,
    location: &str,
    limit: u64,
) -> Result<Vec<u8>, TransportError> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        check(location, limit, out.len() as u64 + chunk.len() as u64)?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// At most `limit` bytes of an error answer's body, cut there, best effort: an error
/// document is a help in a message, not a requirement.
pub async fn read_capped(resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, TransportError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    async fn drain(s: Limited) -> Result<Vec<u8>, TransportError> {
        collect(s, "x", u64::MAX).await
    }

    fn limited(
        chunks: &[&'static [u8]],
        start: u64,
        announced: Option<u64>,
        limit: u64,
    ) -> Result<Limited, TransportError> {
        Limited::new(body(chunks), "x".into(), start, announced, limit)
    }

    #[test]
    fn the_limit_is_inclusive_and_zero_allows_only_nothing() {
        assert!(check("x", 10, 10).is_ok());
        assert!(matches!(
            check("x", 10, 11),
            Err(TransportError::TooLarge { limit: 10, .. })
        ));
        assert!(check("x", 0, 0).is_ok());
        assert!(check("x", 0, 1).is_err());
    }

    #[tokio::test]
    async fn bodies_are_checked_before_and_while_streaming() {
        // Announced too large: refused before reading.
        assert!(matches!(
            limited(&[b"abc"], 0, Some(11), 10).err(),
            Some(TransportError::TooLarge { .. })
        ));
        // A resumed body counts from its offset.
        assert!(limited(&[b"abc"], 8, Some(3), 10).is_err());
        assert_eq!(
            drain(limited(&[b"ab", b"c"], 7, Some(3), 10).unwrap())
                .await
                .unwrap(),
            b"abc"
        );
        // Unannounced and endless: stopped at the limit.
        let e = drain(limited(&[b"abcdef", b"ghijk"], 0, None, 10).unwrap()).await;
        assert!(matches!(e, Err(TransportError::TooLarge { .. })), "{e:?}");
        // Cut short of its announced length: retryable, never complete.
        let e = drain(limited(&[b"ab"], 0, Some(3), 10).unwrap())
            .await
            .unwrap_err();
        assert!(
            e.is_retryable() && e.to_string().contains("2 of 3 bytes"),
            "{e}"
        );
        // More than announced.
        let e = drain(limited(&[b"abcd"], 0, Some(3), 10).unwrap()).await;
        assert!(matches!(e, Err(TransportError::Io { .. })), "{e:?}");
        // Collecting stops at its own limit too.
        assert!(collect(body(&[b"abc", b"d"]), "x", 3).await.is_err());
        assert_eq!(collect(body(&[b"abc"]), "x", 3).await.unwrap(), b"abc");
    }
}
