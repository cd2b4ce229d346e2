//! `s3://bucket/prefix` registries: agents read objects, publishers write them.
//!
//! Requests are presigned with AWS Signature V4 by `rusty-s3` (sans-IO, no AWS SDK) and
//! sent with reqwest, so every scheme shares one HTTP stack. Headers outside the
//! signature (Range, If-None-Match, Content-Type) may be added to a presigned request.
//!
//! Settings resolution and error classification are pure functions at the bottom of the
//! file, tested without a server; `tests/s3.rs` drives the I/O against a real one.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{self, HeaderMap};
use rusty_s3::actions::CreateMultipartUpload;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::io::AsyncReadExt;

use super::{
    Body, FetchRequest, Fetched, S3Options, Store, Transport, TransportError, TransportOptions,
};

/// How long a presigned request stays valid. Each request is signed just before it is
/// sent, so this only needs to cover clock skew and a slow start.
const SIGN_FOR: Duration = Duration::from_secs(15 * 60);
/// Files up to this size go up in one PutObject; larger ones in parts of this size.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3 refuses multipart uploads with more parts than this.
const MAX_PARTS: u64 = 10_000;
/// Error documents are small; never buffer more of one than this.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// A ListObjectsV2 page holds at most 1000 keys; this is far above that.
const LIST_PAGE_LIMIT: u64 = 16 * 1024 * 1024;
/// Attempts per write-side request (PutObject, UploadPart, ...) on transient faults.
const WRITE_ATTEMPTS: usize = 4;

pub struct S3Registry {
    settings: Settings,
    bucket: Bucket,
    credentials: Option<Credentials>,
    client: reqwest::Client,
    opts: TransportOptions,
    part_size: u64,
}

impl S3Registry {
    /// Open `s3://bucket/prefix`. Endpoint, region and credentials come from `opts.s3`,
    /// then the usual AWS environment variables (see `docs/s3.md`).
    pub fn new(url: &str, opts: &TransportOptions) -> Result<S3Registry, TransportError> {
        let settings = Settings::resolve(url, &opts.s3, &|k| std::env::var(k).ok())?;
        let bucket = settings.bucket_addressing()?;
        let credentials = settings.credentials.as_ref().map(|c| match &c.token {
            Some(t) => Credentials::new_with_token(&c.key_id, &c.secret, t),
            None => Credentials::new(&c.key_id, &c.secret),
        });
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            // A redirect would change the host and break the signature; S3 redirects
            // mean "wrong region", which `classify` explains instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("updraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Io {
                location: url.to_string(),
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(S3Registry {
            settings,
            bucket,
            credentials,
            client,
            opts: opts.clone(),
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Change the multipart threshold and part size (default 8 MiB). AWS refuses parts
    /// below 5 MiB except the last, so smaller values only suit servers that allow them.
    pub fn with_part_size(mut self, bytes: u64) -> S3Registry {
        self.part_size = bytes.max(1);
        self
    }

    /// The bucket's object key for a registry key, refusing keys that URL joining
    /// would reinterpret (`..`, empty segments, a leading slash).
    fn object_key(&self, key: &str) -> Result<String, TransportError> {
        check_key(key).map_err(|why| TransportError::Io {
            location: self.location(key),
            message: format!("refusing registry key {key:?}: {why}"),
        })?;
        Ok(format!("{}{key}", self.settings.prefix))
    }

    fn ctx<'a>(&'a self, key: &str, op: Op) -> Ctx<'a> {
        Ctx {
            location: self.location(key),
            settings: &self.settings,
            op,
        }
    }

    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        key: &str,
    ) -> Result<reqwest::Response, TransportError> {
        rb.send()
            .await
            .map_err(|e| self.network_error(e, &self.location(key)))
    }

    fn network_error(&self, e: reqwest::Error, location: &str) -> TransportError {
        network_error(e, location, &self.opts)
    }

    /// Turn a failed response into a typed error, reading the S3 error document.
    async fn failure(&self, resp: reqwest::Response, ctx: Ctx<'_>) -> TransportError {
        let status = resp.status().as_u16();
        let region_header = header_str(resp.headers(), "x-amz-bucket-region");
        let retry_after = header_str(resp.headers(), "retry-after");
        let body = read_capped(resp, ERROR_BODY_LIMIT).await;
        let info = ErrorInfo::parse(status, &body, region_header);
        match classify(&info, &ctx) {
            TransportError::Status {
                location,
                status,
                detail,
            } => TransportError::from_status(location, status, detail, retry_after.as_deref()),
            e => e,
        }
    }

    /// One PUT, or a multipart upload above the part size; with `if_absent`, the
    /// object is only created, never replaced (`If-None-Match: *`).
    async fn put_file_inner(
        &self,
        key: &str,
        path: &Path,
        if_absent: bool,
    ) -> Result<(), TransportError> {
        let location = self.location(key);
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| TransportError::Io {
                location: location.clone(),
                message: format!("cannot read {} to upload it: {e}", path.display()),
            })?
            .len();
        if size <= self.part_size {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| TransportError::Io {
                    location,
                    message: format!("cannot read {} to upload it: {e}", path.display()),
                })?;
            let bytes = Bytes::from(bytes);
            let condition = if_absent.then_some(None);
            return retrying(|| self.put_bytes_if(key, bytes.clone(), condition)).await;
        }
        self.put_file_multipart(key, path, size, if_absent).await
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), TransportError> {
        self.put_bytes_if(key, bytes, None).await
    }

    /// PUT, optionally conditional: `Some(Some(etag))` sends If-Match, `Some(None)`
    /// sends `If-None-Match: *` (S3 conditional writes; unsigned headers, so they need
    /// no place in the presigned URL).
    async fn put_bytes_if(
        &self,
        key: &str,
        bytes: Bytes,
        condition: Option<Option<&str>>,
    ) -> Result<(), TransportError> {
        let object = self.object_key(key)?;
        let url = self
            .bucket
            .put_object(self.credentials.as_ref(), &object)
            .sign(SIGN_FOR);
        let mut rb = self
            .client
            .put(url)
            .header(header::CONTENT_TYPE, content_type(key))
            .body(bytes);
        match condition {
            Some(Some(etag)) => rb = rb.header(header::IF_MATCH, etag),
            Some(None) => rb = rb.header(header::IF_NONE_MATCH, "*"),
            None => {}
        }
        let resp = self.send(rb, key).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status().as_u16();
        let err = self.failure(resp, self.ctx(key, Op::Write)).await;
        if condition.is_some() {
            return Err(self.as_conflict(key, status, err));
        }
        Err(err)
    }

    /// A refused conditional write as [`TransportError::Conflict`]: 412 (the
    /// precondition failed) or 409 ConditionalRequestConflict (a concurrent
    /// conditional write to the same key won). Other failures stay as they are.
    fn as_conflict(&self, key: &str, status: u16, err: TransportError) -> TransportError {
        let conflict = status == 412
            || (status == 409 && err.to_string().contains("ConditionalRequestConflict"));
        if conflict {
            TransportError::Conflict {
                location: self.location(key),
            }
        } else {
            err
        }
    }

    /// The object and its ETag, or None.
    async fn get_once(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError> {
        let fetched = self
            .fetch_inner(&FetchRequest::whole(key, limit), Op::Read)
            .await;
        super::whole_object(self.location(key), limit, fetched).await
    }

    async fn fetch_inner(&self, req: &FetchRequest, op: Op) -> Result<Fetched, TransportError> {
        let object = self.object_key(&req.key)?;
        let location = self.location(&req.key);
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), &object)
            .sign(SIGN_FOR);
        let mut rb = self.client.get(url);
        if let Some(etag) = &req.if_none_match {
            rb = rb.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(since) = &req.if_modified_since {
            rb = rb.header(header::IF_MODIFIED_SINCE, since);
        }
        if req.offset > 0 {
            rb = rb.header(header::RANGE, format!("bytes={}-", req.offset));
        }
        let resp = self.send(rb, &req.key).await?;
        let status = resp.status().as_u16();
        let start = match status {
            304 => return Ok(Fetched::NotModified),
            200 => 0,
            206 => header_str(resp.headers(), "content-range")
                .as_deref()
                .and_then(content_range_start)
                .ok_or_else(|| TransportError::Io {
                    location: location.clone(),
                    message: "answered 206 Partial Content without a usable Content-Range header"
                        .into(),
                })?,
            _ => return Err(self.failure(resp, self.ctx(&req.key, op)).await),
        };
        let len = resp.content_length();
        // The limit is on the object, so a resumed body counts from its offset.
        if let Some(len) = len {
            if start.saturating_add(len) > req.limit {
                return Err(TransportError::TooLarge {
                    location,
                    limit: req.limit,
                });
            }
        }
        let etag = header_str(resp.headers(), "etag");
        let last_modified = header_str(resp.headers(), "last-modified");
        let reading = Reading {
            inner: Box::pin(resp.bytes_stream()),
            received: 0,
            expected: len,
            start,
            limit: req.limit,
            location,
            opts: self.opts.clone(),
            done: false,
        };
        Ok(Fetched::Body(Body {
            etag,
            last_modified,
            len,
            offset: start,
            stream: Box::pin(futures_util::stream::unfold(reading, Reading::next)),
        }))
    }

    async fn list_once(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        let full_prefix = format!("{}{prefix}", self.settings.prefix);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.credentials.as_ref());
            // Plain keys in XML: URL-encoded keys would need decoding rules that
            // servers disagree on (`+` for space or not), and ours contain `+`.
            action.query_mut().remove("encoding-type");
            action.with_prefix(full_prefix.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGN_FOR);
            let resp = self.send(self.client.get(url), prefix).await?;
            if !resp.status().is_success() {
                return Err(self.failure(resp, self.ctx(prefix, Op::List)).await);
            }
            let location = self.location(prefix);
            let page = read_body(resp, LIST_PAGE_LIMIT, &location, &self.opts).await?;
            let page = String::from_utf8_lossy(&page);
            let (page_keys, next) = parse_list_page(&page);
            for key in page_keys {
                if let Some(rel) = key.strip_prefix(&self.settings.prefix) {
                    keys.push(rel.to_string());
                }
            }
            match next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn put_file_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        if_absent: bool,
    ) -> Result<(), TransportError> {
        let object = self.object_key(key)?;
        let location = self.location(key);
        // Grow parts rather than fail when a file would need more than 10000 of them.
        let part_size = self.part_size.max(size.div_ceil(MAX_PARTS));
        let upload_id = retrying(|| self.create_upload(key, &object)).await?;
        let result = self
            .upload_parts(key, &object, &upload_id, path, size, part_size)
            .await;
        let result = match result {
            Ok(etags) => {
                retrying(|| self.complete_upload(key, &object, &upload_id, &etags, if_absent)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // Parts of an unfinished upload are stored (and billed) until aborted.
            if let Err(abort) = self.abort_upload(key, &object, &upload_id).await {
                tracing::warn!(%location, upload_id, error = %abort,
                    "could not abort the failed multipart upload; a bucket lifecycle rule \
                     (AbortIncompleteMultipartUpload) will clean it up");
            }
            return Err(e);
        }
        Ok(())
    }

    async fn create_upload(&self, key: &str, object: &str) -> Result<String, TransportError> {
        let url = self
            .bucket
            .create_multipart_upload(self.credentials.as_ref(), object)
            .sign(SIGN_FOR);
        let rb = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, content_type(key));
        let resp = self.send(rb, key).await?;
        if !resp.status().is_success() {
            return Err(self.failure(resp, self.ctx(key, Op::Write)).await);
        }
        let location = self.location(key);
        let body = read_body(resp, ERROR_BODY_LIMIT as u64, &location, &self.opts).await?;
        let parsed =
            CreateMultipartUpload::parse_response(&body).map_err(|e| TransportError::Io {
                location,
                message: format!("unreadable CreateMultipartUpload answer: {e}"),
            })?;
        Ok(parsed.upload_id().to_string())
    }

    async fn upload_parts(
        &self,
        key: &str,
        object: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
        part_size: u64,
    ) -> Result<Vec<String>, TransportError> {
        let location = self.location(key);
        let io_err = |e: std::io::Error| TransportError::Io {
            location: location.clone(),
            message: format!("reading {} to upload it: {e}", path.display()),
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let mut etags = Vec::new();
        let mut sent = 0u64;
        let mut number: u16 = 1;
        loop {
            let mut buf = Vec::with_capacity(part_size.min(size - sent.min(size)) as usize);
            (&mut file)
                .take(part_size)
                .read_to_end(&mut buf)
                .await
                .map_err(io_err)?;
            if buf.is_empty() && number > 1 {
                break;
            }
            sent += buf.len() as u64;
            let part = Bytes::from(buf);
            let etag =
                retrying(|| self.upload_part(key, object, upload_id, number, part.clone())).await?;
            etags.push(etag);
            if (part.len() as u64) < part_size {
                break;
            }
            number = number.checked_add(1).ok_or_else(|| TransportError::Io {
                location: location.clone(),
                message: "more than 65535 parts; the file grew while uploading".into(),
            })?;
        }
        if sent != size {
            return Err(TransportError::Io {
                location,
                message: format!(
                    "{} changed while uploading ({size} bytes before, {sent} read): publish from a file nothing else writes",
                    path.display()
                ),
            });
        }
        Ok(etags)
    }

    async fn upload_part(
        &self,
        key: &str,
        object: &str,
        upload_id: &str,
        number: u16,
        part: Bytes,
    ) -> Result<String, TransportError> {
        let url = self
            .bucket
            .upload_part(self.credentials.as_ref(), object, number, upload_id)
            .sign(SIGN_FOR);
        let resp = self.send(self.client.put(url).body(part), key).await?;
        if !resp.status().is_success() {
            return Err(self.failure(resp, self.ctx(key, Op::Write)).await);
        }
        header_str(resp.headers(), "etag").ok_or_else(|| TransportError::Io {
            location: self.location(key),
            message: format!("UploadPart {number} answered without an ETag"),
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        object: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> Result<(), TransportError> {
        let action = self.bucket.complete_multipart_upload(
            self.credentials.as_ref(),
            object,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGN_FOR);
        let mut rb = self.client.post(url).body(action.body());
        if if_absent {
            rb = rb.header(header::IF_NONE_MATCH, "*");
        }
        let resp = self.send(rb, key).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let err = self.failure(resp, self.ctx(key, Op::Write)).await;
            return Err(if if_absent {
                self.as_conflict(key, status, err)
            } else {
                err
            });
        }
        // S3 may answer 200 and still fail the completion in the body.
        let body = read_capped(resp, ERROR_BODY_LIMIT).await;
        if body.windows(7).any(|w| w == b"<Error>") {
            let info = ErrorInfo::parse(500, &body, None);
            return Err(classify(&info, &self.ctx(key, Op::Write)));
        }
        Ok(())
    }

    async fn abort_upload(
        &self,
        key: &str,
        object: &str,
        upload_id: &str,
    ) -> Result<(), TransportError> {
        let url = self
            .bucket
            .abort_multipart_upload(self.credentials.as_ref(), object, upload_id)
            .sign(SIGN_FOR);
        let resp = self.send(self.client.delete(url), key).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.failure(resp, self.ctx(key, Op::Write)).await)
        }
    }
}

#[async_trait::async_trait]
impl Transport for S3Registry {
    async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, TransportError> {
        self.fetch_inner(req, Op::Read).await
    }

    fn location(&self, key: &str) -> String {
        format!(
            "s3://{}/{}{key}",
            self.settings.bucket, self.settings.prefix
        )
    }
}

#[async_trait::async_trait]
impl Store for S3Registry {
    async fn get(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(self.get_tagged(key, limit).await?.map(|(bytes, _)| bytes))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TransportError> {
        let bytes = Bytes::from(bytes);
        retrying(|| self.put_bytes(key, bytes.clone())).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), TransportError> {
        self.put_file_inner(key, path, false).await
    }

    async fn put_file_if_absent(&self, key: &str, path: &Path) -> Result<(), TransportError> {
        self.put_file_inner(key, path, true).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        retrying(|| self.list_once(prefix)).await
    }

    async fn get_tagged(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError> {
        retrying(|| self.get_once(key, limit)).await
    }

    async fn put_if_unchanged(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<(), TransportError> {
        let bytes = Bytes::from(bytes);
        retrying(|| self.put_bytes_if(key, bytes.clone(), Some(expected))).await
    }
}

/// Publishers have no retry layer above the store, so transient faults are retried here.
async fn retrying<T, F, Fut>(op: F) -> Result<T, TransportError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TransportError>>,
{
    op.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_times(WRITE_ATTEMPTS - 1)
            .with_jitter(),
    )
    .when(TransportError::is_retryable)
    .adjust(|e: &TransportError, d| super::retry::delay_for(d, e, Duration::from_secs(10)))
    .await
}

/// A response body being streamed to the caller, with the limit and truncation checks.
struct Reading {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    received: u64,
    expected: Option<u64>,
    start: u64,
    limit: u64,
    location: String,
    opts: TransportOptions,
    done: bool,
}

impl Reading {
    async fn next(mut self) -> Option<(Result<Bytes, TransportError>, Reading)> {
        if self.done {
            return None;
        }
        let item = match self.inner.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                if self.start.saturating_add(self.received) > self.limit {
                    self.done = true;
                    Err(TransportError::TooLarge {
                        location: self.location.clone(),
                        limit: self.limit,
                    })
                } else {
                    Ok(chunk)
                }
            }
            Some(Err(e)) => {
                self.done = true;
                Err(network_error(e, &self.location, &self.opts))
            }
            None => {
                self.done = true;
                match self.expected {
                    Some(expected) if self.received != expected => Err(TransportError::Network {
                        location: self.location.clone(),
                        message: format!("body ended after {} of {expected} bytes", self.received),
                    }),
                    _ => return None,
                }
            }
        };
        Some((item, self))
    }
}

async fn read_body(
    resp: reqwest::Response,
    limit: u64,
    location: &str,
    opts: &TransportOptions,
) -> Result<Vec<u8>, TransportError> {
    let stream = resp
        .bytes_stream()
        .map(|chunk| chunk.map_err(|e| network_error(e, location, opts)));
    super::collect_limited(stream, location, limit).await
}

/// Best effort: an error document is a help, not a requirement.
async fn read_capped(resp: reqwest::Response, limit: usize) -> Vec<u8> {
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

fn network_error(e: reqwest::Error, location: &str, opts: &TransportOptions) -> TransportError {
    if e.is_timeout() {
        let after = if e.is_connect() {
            opts.connect_timeout
        } else {
            opts.read_timeout
        };
        return TransportError::Timeout {
            location: location.to_string(),
            after,
        };
    }
    // reqwest's own message is terse ("error sending request"); the cause is below it.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    TransportError::Network {
        location: location.to_string(),
        message,
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn content_type(key: &str) -> &'static str {
    if key.ends_with(".json") {
        "application/json"
    } else if key.ends_with(".tar.gz") || key.ends_with(".tgz") {
        "application/gzip"
    } else if key.ends_with(".minisig") || key.ends_with(".pub") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

// ---------------------------------------------------------------------------------
// Pure logic: settings resolution, key checks, response parsing, error classification.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    url: String,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    endpoint: String,
    /// True when the endpoint is the user's, false for AWS's.
    custom_endpoint: bool,
    path_style: bool,
    region: String,
    credentials: Option<Creds>,
    /// Where the credentials came from, for hints.
    credentials_from: CredsFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CredsFrom {
    None,
    Config,
    Environment,
    /// A profile of the shared credentials file (`~/.aws/credentials`).
    SharedFile {
        path: String,
        profile: String,
    },
}

impl std::fmt::Display for CredsFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredsFrom::None => write!(f, "nowhere"),
            CredsFrom::Config => write!(f, "config"),
            CredsFrom::Environment => write!(f, "environment"),
            CredsFrom::SharedFile { path, profile } => write!(f, "profile [{profile}] of {path}"),
        }
    }
}

/// Credentials of `profile` in an AWS shared credentials file (INI: `[profile]`,
/// then `aws_access_key_id`, `aws_secret_access_key`, optional `aws_session_token`).
/// Pure, so every shape of the file is unit-tested.
fn parse_shared_credentials(text: &str, profile: &str) -> Result<Option<Creds>, String> {
    let mut in_profile = false;
    let mut seen = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            seen |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        match k.trim() {
            "aws_access_key_id" => key_id = v,
            "aws_secret_access_key" => secret = v,
            "aws_session_token" => token = v,
            _ => {}
        }
    }
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => Ok(Some(Creds {
            key_id,
            secret,
            token,
        })),
        (None, None) if !seen => Ok(None),
        _ => Err(format!(
            "profile [{profile}] needs both aws_access_key_id and aws_secret_access_key"
        )),
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Creds {
    key_id: String,
    secret: String,
    token: Option<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Settings {
    fn resolve(
        url: &str,
        opts: &S3Options,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, TransportError> {
        let invalid = |why: String| TransportError::InvalidUrl {
            url: url.to_string(),
            why,
        };
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());

        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("expected s3://bucket/prefix".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|why| invalid(why.into()))?;
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            check_key(prefix).map_err(|why| invalid(format!("prefix {prefix:?}: {why}")))?;
            format!("{prefix}/")
        };

        let region = given(&opts.region)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let custom = given(&opts.endpoint)
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let custom_endpoint = custom.is_some();
        let endpoint = match custom {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        // Dotted bucket names do not match AWS's wildcard certificate when used as a
        // host name, so they need path-style requests.
        let path_style = opts
            .path_style
            .unwrap_or(custom_endpoint || bucket.contains('.'));

        let (credentials, credentials_from) = match (
            given(&opts.access_key_id),
            given(&opts.secret_access_key),
        ) {
            (Some(key_id), Some(secret)) => (
                Some(Creds {
                    key_id,
                    secret,
                    token: given(&opts.session_token),
                }),
                CredsFrom::Config,
            ),
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    "set both s3_access_key_id and s3_secret_access_key in the config, or neither (then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are used)".into(),
                ))
            }
            (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(key_id), Some(secret)) => (
                    Some(Creds {
                        key_id,
                        secret,
                        token: env("AWS_SESSION_TOKEN"),
                    }),
                    CredsFrom::Environment,
                ),
                (Some(_), None) => {
                    return Err(invalid(
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
                    ))
                }
                (None, None) => {
                    // Last, as the AWS CLI does: the shared credentials file.
                    let profile = env("AWS_PROFILE");
                    let path = env("AWS_SHARED_CREDENTIALS_FILE").or_else(|| {
                        env("HOME").map(|h| format!("{}/.aws/credentials", h.trim_end_matches('/')))
                    });
                    let text = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
                    match (text, path) {
                        (Some(text), Some(path)) => {
                            let name = profile.clone().unwrap_or_else(|| "default".into());
                            match parse_shared_credentials(&text, &name) {
                                Ok(Some(c)) => (
                                    Some(c),
                                    CredsFrom::SharedFile {
                                        path,
                                        profile: name,
                                    },
                                ),
                                // A default profile without static keys (role_arn, SSO,
                                // credential_process) is for other tools: not an error
                                // unless this profile was asked for.
                                Err(why) if profile.is_none() => {
                                    tracing::warn!(
                                        "ignoring the [default] profile of {path}: {why}"
                                    );
                                    (None, CredsFrom::None)
                                }
                                Ok(None) if profile.is_some() => {
                                    return Err(TransportError::Credentials {
                                        why: format!(
                                            "AWS_PROFILE={name}, but {path} has no [{name}] section: add it, or pick another profile"
                                        ),
                                    })
                                }
                                Ok(None) => (None, CredsFrom::None),
                                Err(why) => {
                                    return Err(TransportError::Credentials {
                                        why: format!("{path}: {why}"),
                                    })
                                }
                            }
                        }
                        (None, _) if profile.is_some() => {
                            return Err(TransportError::Credentials {
                                why: format!(
                                    "AWS_PROFILE is set, but there is no credentials file to read it from ({}); create it or set AWS_SHARED_CREDENTIALS_FILE",
                                    env("AWS_SHARED_CREDENTIALS_FILE")
                                        .unwrap_or_else(|| "~/.aws/credentials".into())
                                ),
                            })
                        }
                        _ => (None, CredsFrom::None),
                    }
                }
            },
        };

        Ok(Settings {
            url: url.to_string(),
            bucket: bucket.to_string(),
            prefix,
            endpoint,
            custom_endpoint,
            path_style,
            region,
            credentials,
            credentials_from,
        })
    }
}

impl Settings {
    /// rusty-s3's view of the bucket: base URL (path-style or virtual-hosted) and region.
    fn bucket_addressing(&self) -> Result<Bucket, TransportError> {
        let invalid = |why: String| TransportError::InvalidUrl {
            url: self.url.clone(),
            why,
        };
        // A trailing slash keeps an endpoint's own path when the bucket is joined to it.
        let endpoint: url::Url = format!("{}/", self.endpoint).parse().map_err(|e| {
            invalid(format!(
                "S3 endpoint {:?} is not a URL ({e}): fix s3_endpoint or AWS_ENDPOINT_URL",
                self.endpoint
            ))
        })?;
        let style = if self.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        Bucket::new(endpoint, style, self.bucket.clone(), self.region.clone()).map_err(|e| {
            invalid(format!(
                "S3 endpoint {:?} is unusable ({e}): it must be http(s)://host[:port][/path]",
                self.endpoint
            ))
        })
    }
}

/// Lenient on purpose (legacy buckets may hold capitals or `_`): only what would break
/// the URL is refused; the server judges the rest.
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if bucket.is_empty() {
        return Err("the bucket name is missing (expected s3://bucket/prefix)");
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("a bucket name holds only letters, digits, '.', '-' and '_'");
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("empty key");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("empty, '.' or '..' path segments are not allowed");
    }
    if key.chars().any(char::is_control) {
        return Err("control characters are not allowed");
    }
    Ok(())
}

/// Keys of one ListObjectsV2 page and the token for the next page, if any. Read by hand
/// because servers differ in which optional fields (ETag, Owner...) they send.
fn parse_list_page(xml: &str) -> (Vec<String>, Option<String>) {
    let mut keys = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Contents>") {
        let block = &rest[start..];
        let end = block.find("</Contents>").unwrap_or(block.len());
        if let Some(key) = xml_tag(&block[..end], "Key") {
            keys.push(key);
        }
        rest = &block[end..];
    }
    let truncated = xml_tag(xml, "IsTruncated").is_some_and(|t| t == "true");
    let next = xml_tag(xml, "NextContinuationToken").filter(|_| truncated);
    (keys, next)
}

/// `bytes 100-199/200` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    let range = v.trim().strip_prefix("bytes")?.trim_start();
    range.split_once('-')?.0.trim().parse().ok()
}

/// What a failed response said: status, S3 error code, message, region hints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ErrorInfo {
    status: u16,
    code: Option<String>,
    message: Option<String>,
    /// From the error document's `<Region>` or the `x-amz-bucket-region` header.
    region: Option<String>,
}

impl ErrorInfo {
    fn parse(status: u16, body: &[u8], region_header: Option<String>) -> ErrorInfo {
        let body = String::from_utf8_lossy(body);
        ErrorInfo {
            status,
            code: xml_tag(&body, "Code"),
            message: xml_tag(&body, "Message"),
            region: xml_tag(&body, "Region").or(region_header),
        }
    }

    fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no error document".into(),
        }
    }
}

/// The text of the first `<tag>` in a flat S3 error document.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    let text = body[start..start + len]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    List,
    Write,
}

struct Ctx<'a> {
    location: String,
    settings: &'a Settings,
    op: Op,
}

fn classify(info: &ErrorInfo, ctx: &Ctx<'_>) -> TransportError {
    let s = ctx.settings;
    let code = info.code.as_deref().unwrap_or("");
    let location = ctx.location.clone();
    let status = info.status;

    let region_mismatch = info
        .region
        .as_deref()
        .filter(|r| !r.is_empty() && *r != s.region);
    if let (Some(region), 301 | 307 | 400) = (region_mismatch, status) {
        return TransportError::WrongRegion {
            bucket: s.bucket.clone(),
            region: region.to_string(),
            configured: s.region.clone(),
        };
    }
    if status == 301 || code == "PermanentRedirect" {
        return TransportError::Status {
            location,
            status,
            detail: format!(
                ": bucket {:?} is not served by {} ({}): set s3_region (or AWS_REGION) to the bucket's region",
                s.bucket,
                s.endpoint,
                info.describe()
            ),
        };
    }
    match code {
        "NoSuchBucket" => {
            return TransportError::Status {
                location,
                status,
                detail: format!(
                    ": bucket {:?} does not exist at {} (NoSuchBucket): check the bucket in the registry URL and the endpoint (s3_endpoint / AWS_ENDPOINT_URL){}",
                    s.bucket,
                    s.endpoint,
                    if s.custom_endpoint { "" } else { " and region" }
                ),
            }
        }
        // The server gave up waiting for our request body: a transient network fault.
        "RequestTimeout" => {
            return TransportError::Network {
                location,
                message: format!("the server timed out reading the request ({})", info.describe()),
            }
        }
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
            return TransportError::Denied {
                location,
                status,
                hint: format!(
                    "the session token was refused ({}): refresh the temporary credentials (AWS_SESSION_TOKEN / s3_session_token together with their key pair)",
                    info.describe()
                ),
            }
        }
        _ => {}
    }
    match status {
        404 => TransportError::NotFound { location },
        401 | 403 => TransportError::Denied {
            location,
            status,
            hint: denied_hint(info, ctx),
        },
        _ => TransportError::Status {
            location,
            status,
            detail: format!(" ({})", info.describe()),
        },
    }
}

fn denied_hint(info: &ErrorInfo, ctx: &Ctx<'_>) -> String {
    let s = ctx.settings;
    let code = info.code.as_deref().unwrap_or("");
    let said = info.describe();
    let (key_var, secret_var) = match &s.credentials_from {
        CredsFrom::Config => (
            "s3_access_key_id in the config".to_string(),
            "s3_secret_access_key in the config".to_string(),
        ),
        CredsFrom::SharedFile { path, profile } => (
            format!("aws_access_key_id of [{profile}] in {path}"),
            format!("aws_secret_access_key of [{profile}] in {path}"),
        ),
        CredsFrom::Environment | CredsFrom::None => (
            "AWS_ACCESS_KEY_ID".to_string(),
            "AWS_SECRET_ACCESS_KEY".to_string(),
        ),
    };
    let mut hint = match (&s.credentials, code) {
        (None, _) => format!(
            "no S3 credentials were found, so the request was sent unsigned and bucket {:?} does not allow anonymous access ({said}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or s3_access_key_id and s3_secret_access_key in the config, or a profile in ~/.aws/credentials)",
            s.bucket
        ),
        (Some(c), "SignatureDoesNotMatch") => format!(
            "the server rejected the signature ({said}): the secret key does not belong to access key {:?}; check {secret_var}",
            c.key_id
        ),
        (Some(c), "InvalidAccessKeyId" | "NotSignedUp") => format!(
            "access key {:?} is unknown to the server ({said}); check {key_var}",
            c.key_id
        ),
        (Some(_), "RequestTimeTooSkewed") => format!(
            "this machine's clock is too far from the server's ({said}); fix the clock (NTP)"
        ),
        (Some(c), _) => {
            let need = match ctx.op {
                Op::Read => format!(
                    "s3:GetObject on arn:aws:s3:::{}/{}*; a missing object also answers 403 when s3:ListBucket is not granted",
                    s.bucket, s.prefix
                ),
                Op::List => format!(
                    "s3:ListBucket on arn:aws:s3:::{} for prefix {:?}",
                    s.bucket, s.prefix
                ),
                Op::Write => format!(
                    "s3:PutObject (and s3:AbortMultipartUpload) on arn:aws:s3:::{}/{}*",
                    s.bucket, s.prefix
                ),
            };
            format!(
                "access key {:?} (from the {}) is not allowed {need} ({said}); see docs/s3.md for the policies",
                c.key_id, s.credentials_from
            )
        }
    };
    if let Some(region) = info.region.as_deref().filter(|r| *r != s.region) {
        hint.push_str(&format!(
            "; the bucket reports region {region} while {} was configured (set s3_region or AWS_REGION)",
            s.region
        ));
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn resolve(url: &str, opts: &S3Options, env: &[(&str, &str)]) -> Settings {
        Settings::resolve(url, opts, &env_of(env)).unwrap()
    }

    #[test]
    fn shared_credentials_file_shapes() {
        let text = "# comment\n[default]\naws_access_key_id=A1\naws_secret_access_key = S1\n\n; other\n[ci]\n  aws_access_key_id = A2 \naws_secret_access_key=S2\naws_session_token=T2\n[half]\naws_access_key_id=A3\n";
        let c = parse_shared_credentials(text, "default").unwrap().unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str(), c.token),
            ("A1", "S1", None)
        );
        let c = parse_shared_credentials(text, "ci").unwrap().unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.secret.as_str(), c.token.as_deref()),
            ("A2", "S2", Some("T2"))
        );
        assert_eq!(parse_shared_credentials(text, "absent").unwrap(), None);
        assert!(parse_shared_credentials(text, "half")
            .unwrap_err()
            .contains("needs both"));
    }

    #[test]
    fn a_default_profile_without_keys_is_ignored_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, "[default]\nrole_arn = arn:aws:iam::1:role/x\n").unwrap();
        let f = file.to_str().unwrap();
        let s = resolve(
            "s3://rel",
            &S3Options::default(),
            &[("AWS_SHARED_CREDENTIALS_FILE", f)],
        );
        assert!(s.credentials.is_none());
        let asked = Settings::resolve(
            "s3://rel",
            &S3Options::default(),
            &env_of(&[
                ("AWS_SHARED_CREDENTIALS_FILE", f),
                ("AWS_PROFILE", "default"),
            ]),
        )
        .unwrap_err();
        assert!(asked.to_string().contains("needs both"), "{asked}");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id=A\naws_secret_access_key=S\n",
        )
        .unwrap();
        let s = resolve(
            "s3://rel",
            &S3Options::default(),
            &[("AWS_SHARED_CREDENTIALS_FILE", f)],
        );
        assert_eq!(s.credentials.unwrap().key_id, "A");
    }

    #[test]
    fn aws_defaults_are_virtual_hosted_in_us_east_1_and_anonymous() {
        let s = resolve("s3://rel/apps/", &S3Options::default(), &[]);
        assert_eq!(s.bucket, "rel");
        assert_eq!(s.prefix, "apps/");
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert!(!s.path_style);
        assert!(s.credentials.is_none());
    }

    #[test]
    fn region_and_endpoint_precedence() {
        let env = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"),
        ];
        let s = resolve("s3://rel", &S3Options::default(), &env);
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.endpoint, "http://127.0.0.1:9000");
        assert!(s.path_style, "custom endpoints default to path style");
        assert_eq!(s.prefix, "");

        let s = resolve(
            "s3://rel",
            &S3Options::default(),
            &[("AWS_DEFAULT_REGION", "eu-central-1")],
        );
        assert_eq!(s.region, "eu-central-1");

        let opts = S3Options {
            region: Some("ap-south-1".into()),
            endpoint: Some("https://minio.example".into()),
            path_style: Some(false),
            ..S3Options::default()
        };
        let s = resolve("s3://rel/a/b", &opts, &env);
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.endpoint, "https://minio.example");
        assert!(!s.path_style);
        assert_eq!(s.prefix, "a/b/");

        let s = resolve("s3://my.dotted.bucket", &S3Options::default(), &[]);
        assert!(
            s.path_style,
            "dotted buckets break AWS's wildcard certificate"
        );
    }

    #[test]
    fn credentials_come_from_config_then_env() {
        let env = [
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SESSION_TOKEN", "envtoken"),
        ];
        let s = resolve("s3://rel", &S3Options::default(), &env);
        let c = s.credentials.unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.token.as_deref()),
            ("ENVKEY", Some("envtoken"))
        );
        assert_eq!(s.credentials_from, CredsFrom::Environment);

        let opts = S3Options {
            access_key_id: Some("CFGKEY".into()),
            secret_access_key: Some("cfgsecret".into()),
            ..S3Options::default()
        };
        let s = resolve("s3://rel", &opts, &env);
        let c = s.credentials.unwrap();
        assert_eq!((c.key_id.as_str(), c.token.as_deref()), ("CFGKEY", None));
        assert!(!format!("{c:?}").contains("cfgsecret"));
    }

    #[test]
    fn bucket_urls_for_each_addressing_style() {
        let base = |url: &str, opts: S3Options, env: &[(&str, &str)]| {
            resolve(url, &opts, env)
                .bucket_addressing()
                .unwrap()
                .object_url("k/1.0.0+b")
                .unwrap()
                .to_string()
        };
        assert_eq!(
            base(
                "s3://rel/p",
                S3Options::default(),
                &[("AWS_REGION", "eu-west-1")]
            ),
            "https://rel.s3.eu-west-1.amazonaws.com/k/1.0.0%2Bb"
        );
        assert_eq!(
            base("s3://my.rel", S3Options::default(), &[]),
            "https://s3.us-east-1.amazonaws.com/my.rel/k/1.0.0%2Bb"
        );
        let custom = |endpoint: &str| S3Options {
            endpoint: Some(endpoint.into()),
            ..S3Options::default()
        };
        assert_eq!(
            base("s3://rel", custom("http://127.0.0.1:9000"), &[]),
            "http://127.0.0.1:9000/rel/k/1.0.0%2Bb"
        );
        assert_eq!(
            base("s3://rel", custom("https://gw.example/storage/"), &[]),
            "https://gw.example/storage/rel/k/1.0.0%2Bb"
        );
        let opts = S3Options {
            path_style: Some(false),
            ..custom("https://objects.example")
        };
        assert_eq!(
            base("s3://rel", opts, &[]),
            "https://rel.objects.example/k/1.0.0%2Bb"
        );
        let bad = resolve("s3://rel", &custom("ftp://x"), &[]).bucket_addressing();
        assert!(matches!(bad, Err(TransportError::InvalidUrl { .. })));
    }

    #[test]
    fn half_credentials_and_bad_urls_are_refused() {
        let half = S3Options {
            access_key_id: Some("K".into()),
            ..S3Options::default()
        };
        for (url, opts, env) in [
            ("s3://rel", half.clone(), vec![]),
            (
                "s3://rel",
                S3Options::default(),
                vec![("AWS_ACCESS_KEY_ID", "K")],
            ),
            ("s3://", S3Options::default(), vec![]),
            ("s3:///prefix", S3Options::default(), vec![]),
            ("s3://b@d/x", S3Options::default(), vec![]),
            ("s3://rel/a/../b", S3Options::default(), vec![]),
            ("s3://rel/a//b", S3Options::default(), vec![]),
        ] {
            let r = Settings::resolve(url, &opts, &env_of(&env));
            assert!(
                matches!(r, Err(TransportError::InvalidUrl { .. })),
                "{url}: {r:?}"
            );
        }
    }

    #[test]
    fn keys_that_url_joining_would_rewrite_are_refused() {
        assert!(check_key("demo/channels/prod.json").is_ok());
        assert!(check_key("demo/1.0.0+build.5/app.tar.gz").is_ok());
        for bad in ["", "/x", "x/", "a/../b", "./a", "a\nb"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_pages_parse_without_optional_fields() {
        let page = "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a&amp;b</Key><Size>1</Size></Contents>\
            <Contents><Key>p/1.0.0+b/x</Key><ETag>\"e\"</ETag></Contents>\
            <NextContinuationToken>tok</NextContinuationToken></ListBucketResult>";
        let (keys, next) = parse_list_page(page);
        assert_eq!(keys, vec!["a&b", "p/1.0.0+b/x"]);
        assert_eq!(next.as_deref(), Some("tok"));
        let (keys, next) = parse_list_page(
            "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
        );
        assert!(keys.is_empty() && next.is_none());
    }

    #[test]
    fn content_range_start_parses() {
        assert_eq!(content_range_start("bytes 6-10/11"), Some(6));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start("bytes */11"), None);
    }

    fn settings(creds: bool) -> Settings {
        let env: Vec<(&str, &str)> = if creds {
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ]
        } else {
            vec![]
        };
        resolve("s3://rel/apps", &S3Options::default(), &env)
    }

    fn classify_doc(status: u16, body: &str, header: Option<&str>, creds: bool) -> TransportError {
        let s = settings(creds);
        let ctx = Ctx {
            location: "s3://rel/apps/k".into(),
            settings: &s,
            op: Op::Read,
        };
        classify(
            &ErrorInfo::parse(status, body.as_bytes(), header.map(String::from)),
            &ctx,
        )
    }

    #[test]
    fn error_classification() {
        let doc = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m &amp; m</Message></Error>")
        };
        assert!(matches!(
            classify_doc(404, &doc("NoSuchKey"), None, true),
            TransportError::NotFound { .. }
        ));
        assert!(matches!(
            classify_doc(404, "", None, true),
            TransportError::NotFound { .. }
        ));
        let e = classify_doc(404, &doc("NoSuchBucket"), None, true);
        assert!(matches!(e, TransportError::Status { status: 404, .. }));
        assert!(
            e.to_string().contains("bucket \"rel\" does not exist"),
            "{e}"
        );

        let e = classify_doc(403, &doc("SignatureDoesNotMatch"), None, true);
        let TransportError::Denied { hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(
            hint.contains("AWS_SECRET_ACCESS_KEY") && hint.contains("AKIDEXAMPLE"),
            "{hint}"
        );
        assert!(hint.contains("m & m"), "{hint}");
        let e = classify_doc(403, &doc("AccessDenied"), None, false);
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(e.to_string().contains("\"rel\""), "{e}");
        let e = classify_doc(403, &doc("AccessDenied"), None, true);
        assert!(e.to_string().contains("s3:GetObject"), "{e}");

        for (status, code) in [(503, "SlowDown"), (500, "InternalError"), (429, "")] {
            let e = classify_doc(status, &doc(code), None, true);
            assert!(e.is_retryable(), "{status} {code}: {e:?}");
        }
        assert!(classify_doc(400, &doc("RequestTimeout"), None, true).is_retryable());
        assert!(!classify_doc(400, &doc("InvalidArgument"), None, true).is_retryable());

        let wrong = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
        let e = classify_doc(400, wrong, None, true);
        assert!(
            matches!(&e, TransportError::WrongRegion { region, configured, .. } if region == "eu-west-1" && configured == "us-east-1"),
            "{e:?}"
        );
        assert!(e.to_string().contains("AWS_REGION=eu-west-1"), "{e}");
        let e = classify_doc(301, &doc("PermanentRedirect"), Some("ap-southeast-2"), true);
        assert!(
            matches!(&e, TransportError::WrongRegion { region, .. } if region == "ap-southeast-2"),
            "{e:?}"
        );
        let e = classify_doc(301, "", None, true);
        assert!(e.to_string().contains("s3_region"), "{e}");
    }
}
