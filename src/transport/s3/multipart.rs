//! Multipart uploads for files above the part size, aborted when they fail.

use std::path::Path;

use bytes::Bytes;
use reqwest::header;
use rusty_s3::actions::CreateMultipartUpload;
use rusty_s3::S3Action;
use tokio::io::AsyncReadExt;

use super::client::{header_str, read_body};
use super::errors::{classify, ErrorInfo, Op};
use super::xml::parse_error_document;
use super::{retrying, S3Registry, ERROR_BODY_LIMIT, SIGN_FOR};
use crate::transport::headers::content_type;
use crate::transport::limits::read_capped;
use crate::transport::Transport;
use crate::transport::TransportError;

/// S3 refuses multipart uploads with more parts than this.
const MAX_PARTS: u64 = 10_000;

impl S3Registry {
    pub(super) async fn put_file_multipart(
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

    pub(super) async fn create_upload(
        &self,
        key: &str,
        object: &str,
    ) -> Result<String, TransportError> {
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
                message: "unreadable CreateMultipartUpload answer".into(),
                source: Some(e.into()),
            })?;
        Ok(parsed.upload_id().to_string())
    }

    pub(super) async fn upload_parts(
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
            message: format!("reading {} to upload it", path.display()),
            source: Some(e.into()),
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
                source: None,
            })?;
        }
        if sent != size {
            return Err(TransportError::Io {
                location,
                message: format!(
                    "{} changed while uploading ({size} bytes before, {sent} read): publish from a file nothing else writes",
                    path.display()
                ),
                source: None,
            });
        }
        Ok(etags)
    }

    pub(super) async fn upload_part(
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
            source: None,
        })
    }

    pub(super) async fn complete_upload(
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
        let op = if if_absent {
            Op::ConditionalWrite
        } else {
            Op::Write
        };
        if !resp.status().is_success() {
            return Err(self.failure(resp, self.ctx(key, op)).await);
        }
        // S3 may answer 200 and still fail the completion in the body.
        let body = read_capped(resp, ERROR_BODY_LIMIT).await;
        if let Some(doc) = parse_error_document(&body) {
            let info = ErrorInfo::from_document(500, doc, None);
            return Err(classify(&info, &self.ctx(key, op)));
        }
        Ok(())
    }

    pub(super) async fn abort_upload(
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
