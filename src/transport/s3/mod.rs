//! `s3://bucket/prefix` registries: agents read objects, publishers write them.
//!
//! Requests are presigned with AWS Signature V4 by `rusty-s3` (sans-IO, no AWS SDK) and
//! sent with reqwest, so every scheme shares one HTTP stack. Headers outside the
//! signature (Range, If-None-Match, Content-Type) may be added to a presigned request.
//!
//! One module per concern: `client` sends requests and reads answers, `multipart` uploads
//! large files, `settings` and `credentials` resolve where and as whom to talk (pure),
//! `xml` reads S3's XML documents and `errors` turns failed answers into
//! [`TransportError`]s (pure). The pure parts are unit-tested without a server;
//! `tests/s3.rs` drives the I/O against a real one.

mod client;
mod credential_process;
mod credentials;
mod errors;
mod multipart;
mod settings;
mod xml;

use std::path::Path;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use rusty_s3::{Bucket, Credentials};

use super::key::Key;
use super::{
    FetchRequest, Fetched, Store, Transport, TransportError, TransportOptions, UpdateLock,
};
use errors::{Ctx, Op};
use settings::Settings;

/// How long a presigned request stays valid. Each request is signed just before it is
/// sent, so this only needs to cover clock skew and a slow start.
const SIGN_FOR: Duration = Duration::from_secs(15 * 60);
/// Files up to this size go up in one PutObject; larger ones in parts of this size.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Error documents are small; never buffer more of one than this.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
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
        let client = super::tls::client_builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            // A redirect would change the host and break the signature; S3 redirects
            // mean "wrong region", which `classify` explains instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("updraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Io {
                location: url.to_string(),
                message: "cannot set up the HTTP client".into(),
                source: Some(e.into()),
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
        let key = Key::new(key)?;
        Ok(format!("{}{key}", self.settings.prefix))
    }

    fn ctx<'a>(&'a self, key: &str, op: Op) -> Ctx<'a> {
        Ctx {
            location: self.location(key),
            settings: &self.settings,
            op,
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

    /// S3 has no locks: read-modify-writes rely on the conditional writes above
    /// (`If-Match`, `If-None-Match: *`), which S3 and compatible servers enforce.
    async fn lock_for_update(&self, _key: &str) -> Result<UpdateLock, TransportError> {
        Ok(UpdateLock::default())
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
