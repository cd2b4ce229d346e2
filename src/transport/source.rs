//! Where a release tarball's bytes come from, and the one-pass reader that hashes,
//! counts and bounds them on their way into the unpacker.

use std::io::{self, Read};
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::transport::ByteStream;

/// A tarball to install: a local file, or a byte stream from a registry or URL.
pub enum Source {
    File(PathBuf),
    Stream {
        stream: ByteStream,
        location: String,
    },
}

impl Source {
    pub fn location(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stream { location, .. } => location.clone(),
        }
    }
}

/// Wraps the raw artifact bytes: sha256 and length are computed in the same pass that
/// feeds gzip, and reading stops with an error past `limit` (endless-data defence).
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    limit: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            limit,
        }
    }

    /// Hex sha256 and byte count of everything read so far.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        crate::transport::limits::check("the artifact", self.limit, self.bytes)
            .map_err(io::Error::other)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A blocking `Read` over an async byte stream, so the synchronous tar extractor can run
/// on a blocking thread while the network keeps filling a small bounded queue.
pub struct StreamReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl StreamReader {
    /// Spawn a task pumping `stream` into a bounded channel (back-pressure: the download
    /// never runs more than a few chunks ahead of the disk).
    pub fn spawn(mut stream: ByteStream) -> StreamReader {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let item = item.map_err(io::Error::other);
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        StreamReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A tarball at an http(s) URL, streamed through the HTTP transport: the same status
/// mapping and size checks as registry objects, and retries that resume an interrupted
/// download with Range instead of starting over. The sha256 check downstream decides
/// whether the bytes are the right ones.
pub async fn url_source(
    url: &str,
    opts: &crate::transport::TransportOptions,
    policy: crate::transport::retry::RetryPolicy,
    limit: u64,
) -> Result<Source, crate::transport::TransportError> {
    use std::sync::Arc;

    use crate::transport::http::HttpRegistry;
    use crate::transport::retry::resumable_stream;
    use crate::transport::Transport;

    let (registry, key) = HttpRegistry::for_url(url, opts)?;
    let location = registry.location(&key);
    let mut stream = resumable_stream(Arc::new(registry), key, limit, None, policy);
    // Wait for the first bytes here, so a wrong URL (404, 403, refused) is reported as
    // the transport error it is rather than as an unreadable tarball.
    let stream: crate::transport::ByteStream = match stream.next().await {
        Some(Err(e)) => return Err(e),
        Some(Ok(first)) => Box::pin(futures_util::stream::iter([Ok(first)]).chain(stream)),
        None => Box::pin(futures_util::stream::empty()),
    };
    Ok(Source::Stream { stream, location })
}

/// Progress of a long transfer. On a terminal: one line on stderr redrawn in place.
/// Elsewhere (under systemd, in CI logs): an info log line at every 10% step or every
/// 10 seconds, whichever comes first, so a slow download is not silent for minutes and a
/// fast one is not a wall of lines. Nothing at all for transfers done within a second.
pub struct Progress<R> {
    inner: R,
    label: String,
    total: Option<u64>,
    done: u64,
    last: std::time::Instant,
    started: std::time::Instant,
    shown: bool,
    terminal: bool,
    /// The last 10% step logged (log mode).
    logged_step: u64,
}

/// Log mode: at least this long between two lines that mark a 10% step.
const STEP_GAP: std::time::Duration = std::time::Duration::from_secs(1);
/// Log mode: a line at least this often while the transfer runs.
const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl<R: Read> Progress<R> {
    /// Progress drawn on a terminal (stderr).
    pub fn new(inner: R, label: String, total: Option<u64>) -> Self {
        Self::with_mode(inner, label, total, true)
    }

    /// Progress as log lines, for a stderr that is not a terminal.
    pub fn logged(inner: R, label: String, total: Option<u64>) -> Self {
        Self::with_mode(inner, label, total, false)
    }

    fn with_mode(inner: R, label: String, total: Option<u64>, terminal: bool) -> Self {
        let now = std::time::Instant::now();
        Progress {
            inner,
            label,
            total,
            done: 0,
            last: now,
            started: now,
            shown: false,
            terminal,
            logged_step: 0,
        }
    }

    fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        match self.total {
            Some(t) if t > 0 => format!(
                "{}: {:.1}/{:.1} MiB ({:.0}%) {:.1} MiB/s",
                self.label,
                mib(self.done),
                mib(t),
                self.done as f64 * 100.0 / t as f64,
                mib(self.done) / secs
            ),
            _ => format!(
                "{}: {:.1} MiB {:.1} MiB/s",
                self.label,
                mib(self.done),
                mib(self.done) / secs
            ),
        }
    }

    fn draw(&mut self, end: bool) {
        use std::io::Write;
        let line = format!("\r{}", self.summary());
        let mut err = io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        if end {
            let _ = err.write_all(b"\n");
        }
        let _ = err.flush();
        self.shown = true;
    }

    /// The 10% step reached so far (0 to 10), when the total is known.
    fn step(&self) -> Option<u64> {
        match self.total {
            Some(t) if t > 0 => Some((self.done.min(t) * 10) / t),
            _ => None,
        }
    }

    fn maybe_log(&mut self, end: bool) {
        let since = self.last.elapsed();
        let new_step = self.step().is_some_and(|s| s > self.logged_step);
        let due = if end {
            // The closing line, unless the last one already said 100%.
            self.shown && (self.step().is_none() || self.step() != Some(self.logged_step))
        } else {
            self.started.elapsed() >= STEP_GAP
                && ((new_step && since >= STEP_GAP) || since >= LOG_EVERY)
        };
        if due {
            tracing::info!("{}", self.summary());
            self.last = std::time::Instant::now();
            self.logged_step = self.step().unwrap_or(0);
            self.shown = true;
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if !self.terminal {
            if n == 0 {
                self.maybe_log(true);
                self.shown = false;
            } else {
                self.maybe_log(false);
            }
            return Ok(n);
        }
        // Only long transfers get a progress line: nothing for the first second.
        if self.last.elapsed() >= std::time::Duration::from_millis(250)
            && self.started.elapsed() >= std::time::Duration::from_secs(1)
        {
            self.last = std::time::Instant::now();
            self.draw(false);
        }
        if n == 0 && self.shown {
            self.draw(true);
            self.shown = false;
        }
        Ok(n)
    }
}
