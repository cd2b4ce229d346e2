//! `updraft serve`: a static file server for a registry directory, for trials and
//! tests, and for hosts that have nothing better. It speaks exactly what the HTTP
//! transport uses: GET/HEAD, strong ETags and Last-Modified with conditional requests,
//! and single byte ranges for resumed downloads. Files are streamed in chunks.
//!
//! Paths are percent-decoded, then refused when they climb (`..`) or resolve, through
//! symlinks, to anything outside the served directory.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::transport::headers::{content_type, file_etag};
use crate::transport::key::Key;

type Body = BoxBody<Bytes, io::Error>;

const CHUNK: usize = 64 * 1024;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn bind(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `dir` on `listener` until the task is dropped.
pub async fn serve(dir: PathBuf, listener: TcpListener) -> io::Result<()> {
    let root =
        Arc::new(tokio::fs::canonicalize(&dir).await.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot serve {}: {e}", dir.display()))
        })?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of dying.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let root = root.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let root = root.clone();
                async move { Ok::<_, Infallible>(handle(&root, &req, peer).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                // A client that never finishes its headers must not hold a task forever.
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, svc)
                .await
            {
                debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

pub async fn run(dir: PathBuf, listen: &str) -> anyhow::Result<()> {
    let l = bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    // Where it listens, for whoever started it (tests read this line). Nobody reading it
    // is no reason to stop serving.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "serving {} on http://{}",
            dir.display(),
            l.local_addr()?
        )
        .and_then(|()| out.flush());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serve(dir, l) => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

async fn handle(
    root: &Path,
    req: &Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let resp = respond(root, req).await;
    debug!(
        %peer,
        method = %req.method(),
        path = %req.uri().path(),
        status = resp.status().as_u16(),
        bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-"),
        "serve"
    );
    resp
}

async fn respond(root: &Path, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let Some(rel) = safe_relative(req.uri().path()) else {
        return plain(StatusCode::BAD_REQUEST, "bad path\n");
    };
    let Some((path, meta)) = resolve(root, &rel).await else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let etag = file_etag(&meta);
    let last_modified = httpdate::fmt_http_date(mtime);

    let h = |n: header::HeaderName| req.headers().get(n).and_then(|v| v.to_str().ok());
    let not_modified = match h(header::IF_NONE_MATCH) {
        Some(inm) => etag_matches(inm, &etag),
        None => h(header::IF_MODIFIED_SINCE)
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .is_some_and(|since| whole_seconds(mtime) <= whole_seconds(since)),
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes");
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .unwrap_or_else(|_| internal());
    }
    builder = builder.header(header::CONTENT_TYPE, content_type(&path.to_string_lossy()));

    // If-Range: a resume against a file that changed since gets the whole new file.
    let range_applies = h(header::IF_RANGE).is_none_or(|v| v == etag);
    let range = match h(header::RANGE).filter(|_| range_applies) {
        None => None,
        Some(r) => match parse_range(r, len) {
            RangeSpec::Whole => None,
            RangeSpec::Part(a, b) => Some((a, b)),
            RangeSpec::Unsatisfiable => {
                return builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .header(header::CONTENT_LENGTH, 0)
                    .body(empty())
                    .unwrap_or_else(|_| internal());
            }
        },
    };
    let (status, start, count) = match range {
        Some((a, b)) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, len),
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, count);
    if head {
        return builder.body(empty()).unwrap_or_else(|_| internal());
    }
    match file_body(&path, start, count).await {
        Ok(body) => builder.body(body).unwrap_or_else(|_| internal()),
        Err(e) => {
            warn!(path = %path.display(), "cannot read: {e}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n")
        }
    }
}

/// The request path as a relative path, or None when it is not a registry [`Key`]
/// once percent-decoded (`..`, empty segments, encoded slashes, NUL, invalid UTF-8):
/// the dev server refuses exactly what the transports refuse.
fn safe_relative(raw: &str) -> Option<PathBuf> {
    let mut segments = Vec::new();
    for seg in raw.strip_prefix('/')?.split('/') {
        let seg = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .ok()?;
        if seg.contains('/') {
            return None;
        }
        segments.push(seg);
    }
    let key = Key::new(segments.join("/")).ok()?;
    Some(key.segments().collect())
}

/// The file's canonical path and metadata, when it is a regular file that resolves
/// (following any symlinks) to a place inside `root`.
async fn resolve(root: &Path, rel: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    if rel.as_os_str().is_empty() {
        return None;
    }
    let real = tokio::fs::canonicalize(root.join(rel)).await.ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let meta = tokio::fs::metadata(&real).await.ok()?;
    meta.is_file().then_some((real, meta))
}

fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, PartialEq)]
enum RangeSpec {
    /// No usable single range (absent, malformed or multi-range): send everything.
    Whole,
    /// Inclusive first and last byte.
    Part(u64, u64),
    Unsatisfiable,
}

/// Single ranges only (`bytes=N-`, `bytes=N-M`, `bytes=-S`); anything else is answered
/// with the whole file, which RFC 9110 allows.
fn parse_range(v: &str, len: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match b.parse::<u64>() {
            Ok(0) => RangeSpec::Unsatisfiable,
            Ok(_) if len == 0 => RangeSpec::Unsatisfiable,
            Ok(n) => RangeSpec::Part(len.saturating_sub(n), len - 1),
            Err(_) => RangeSpec::Whole,
        };
    }
    let Ok(first) = a.parse::<u64>() else {
        return RangeSpec::Whole;
    };
    let last = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => Some(l),
            _ => return RangeSpec::Whole,
        }
    };
    if first >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part(first, last.map_or(len - 1, |l| l.min(len - 1)))
}

/// `count` bytes of the file from `start`, read in chunks as the client takes them.
async fn file_body(path: &Path, start: u64, count: u64) -> io::Result<Body> {
    let mut file = tokio::fs::File::open(path).await?;
    if start > 0 {
        file.seek(io::SeekFrom::Start(start)).await?;
    }
    let chunks = futures_util::stream::try_unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        let n = file.read(&mut buf).await?;
        if n == 0 {
            // Truncated under us: end short so the client sees a length mismatch.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being served",
            ));
        }
        buf.truncate(n);
        Ok(Some((buf.freeze(), (file, left - n as u64))))
    });
    Ok(StreamBody::new(chunks.map_ok(Frame::data)).boxed())
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from_static(text.as_bytes()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| internal())
}

fn internal() -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-", 10), Part(0, 9));
        assert_eq!(parse_range("bytes=3-", 10), Part(3, 9));
        assert_eq!(parse_range("bytes=3-5", 10), Part(3, 5));
        assert_eq!(parse_range("bytes=3-50", 10), Part(3, 9));
        assert_eq!(parse_range("bytes=-4", 10), Part(6, 9));
        assert_eq!(parse_range("bytes=-40", 10), Part(0, 9));
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-3", 10), Whole);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Whole);
        assert_eq!(parse_range("items=0-1", 10), Whole);
        assert_eq!(parse_range("bytes=x-", 10), Whole);
    }

    #[test]
    fn paths() {
        assert_eq!(safe_relative("/a/b.json"), Some(PathBuf::from("a/b.json")));
        assert_eq!(safe_relative("/a%20b/c+d"), Some(PathBuf::from("a b/c+d")));
        assert_eq!(safe_relative("//etc/passwd"), None);
        assert_eq!(safe_relative("/a/./c"), None);
        assert_eq!(safe_relative("/a/"), None);
        assert_eq!(safe_relative("/"), None);
        assert_eq!(safe_relative("/a%5cb"), None);
        assert_eq!(safe_relative("/a/../b"), None);
        assert_eq!(safe_relative("/a/%2e%2e/b"), None);
        assert_eq!(safe_relative("/a%2fb"), None);
        assert_eq!(safe_relative("/a%00"), None);
        assert_eq!(safe_relative("/%ff"), None);
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
