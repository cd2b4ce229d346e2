//! Requests and their answers: single-object reads, writes and listings, the streamed
//! body with its limit and truncation checks, and network errors.

use std::path::Path;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use rusty_s3::S3Action;

use super::errors::{classify, Ctx, ErrorInfo, Op};
use super::xml::parse_list_page;
use super::{retrying, S3Registry, ERROR_BODY_LIMIT, SIGN_FOR};
use crate::transport::headers::{content_type, ContentRange};
use crate::transport::http::{body_stream, network_error};
use crate::transport::limits::{self, read_capped, Limited};
use crate::transport::Transport;
use crate::transport::{Body, FetchRequest, Fetched, TransportError, TransportOptions};

/// A ListObjectsV2 page holds at most 1000 keys; this is far above that.
const LIST_PAGE_LIMIT: u64 = 16 * 1024 * 1024;

impl S3Registry {
    pub(super) async fn send(
        &self,
        rb: reqwest::RequestBuilder,
        key: &str,
    ) -> Result<reqwest::Response, TransportError> {
        rb.send()
            .await
            .map_err(|e| self.network_error(e, &self.location(key)))
    }

    pub(super) fn network_error(&self, e: reqwest::Error, location: &str) -> TransportError {
        network_error(e, location, &self.opts)
    }

    /// Turn a failed response into a typed error, reading the S3 error document.
    pub(super) async fn failure(&self, resp: reqwest::Response, ctx: Ctx<'_>) -> TransportError {
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
    pub(super) async fn put_file_inner(
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
                message: format!("cannot read {} to upload it", path.display()),
                source: Some(e.into()),
            })?
            .len();
        if size <= self.part_size {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| TransportError::Io {
                    location,
                    message: format!("cannot read {} to upload it", path.display()),
                    source: Some(e.into()),
                })?;
            let bytes = Bytes::from(bytes);
            let condition = if_absent.then_some(None);
            return retrying(|| self.put_bytes_if(key, bytes.clone(), condition)).await;
        }
        self.put_file_multipart(key, path, size, if_absent).await
    }

    pub(super) async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), TransportError> {
        self.put_bytes_if(key, bytes, None).await
    }

    /// PUT, optionally conditional: `Some(Some(etag))` sends If-Match, `Some(None)`
    /// sends `If-None-Match: *` (S3 conditional writes; unsigned headers, so they need
    /// no place in the presigned URL).
    pub(super) async fn put_bytes_if(
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
        let op = if condition.is_some() {
            Op::ConditionalWrite
        } else {
            Op::Write
        };
        Err(self.failure(resp, self.ctx(key, op)).await)
    }

    /// The object and its ETag, or None.
    pub(super) async fn get_once(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError> {
        let fetched = self
            .fetch_inner(&FetchRequest::whole(key, limit), Op::Read)
            .await;
        crate::transport::whole_object(self.location(key), limit, fetched).await
    }

    pub(super) async fn fetch_inner(
        &self,
        req: &FetchRequest,
        op: Op,
    ) -> Result<Fetched, TransportError> {
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
                .and_then(ContentRange::parse)
                .and_then(|r| r.first())
                .ok_or_else(|| TransportError::Io {
                    location: location.clone(),
                    message: "answered 206 Partial Content without a usable Content-Range header"
                        .into(),
                    source: None,
                })?,
            _ => return Err(self.failure(resp, self.ctx(&req.key, op)).await),
        };
        let len = resp.content_length();
        let etag = header_str(resp.headers(), "etag");
        let last_modified = header_str(resp.headers(), "last-modified");
        let date = header_str(resp.headers(), "date");
        let stream = body_stream(resp, &location, &self.opts);
        let stream = Limited::new(stream, location, start, len, req.limit)?;
        Ok(Fetched::Body(Body {
            etag,
            last_modified,
            date,
            len,
            offset: start,
            stream: Box::pin(stream),
        }))
    }

    pub(super) async fn list_once(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
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
            let page = parse_list_page(&page).map_err(|e| TransportError::Io {
                location: location.clone(),
                message: "unreadable ListObjectsV2 answer".into(),
                source: Some(e.into()),
            })?;
            for key in page.keys {
                if let Some(rel) = key.strip_prefix(&self.settings.prefix) {
                    keys.push(rel.to_string());
                }
            }
            match page.next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

pub(super) async fn read_body(
    resp: reqwest::Response,
    limit: u64,
    location: &str,
    opts: &TransportOptions,
) -> Result<Vec<u8>, TransportError> {
    limits::collect(body_stream(resp, location, opts), location, limit).await
}

pub(super) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
