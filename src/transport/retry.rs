//! Retries with backoff (placeholder until the http branch lands).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{ByteStream, FetchRequest, Fetched, Transport, TransportError};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

pub enum Document {
    NotModified,
    Fresh {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

pub async fn fetch_document(
    t: &dyn Transport,
    req: &FetchRequest,
    policy: &RetryPolicy,
) -> Result<Document, TransportError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let res: Result<Document, TransportError> = async {
            match t.fetch(req).await? {
                Fetched::NotModified => Ok(Document::NotModified),
                Fetched::Body(b) => {
                    let etag = b.etag.clone();
                    let last_modified = b.last_modified.clone();
                    let bytes = b.bytes(&t.location(&req.key), req.limit).await?;
                    Ok(Document::Fresh {
                        bytes,
                        etag,
                        last_modified,
                    })
                }
            }
        }
        .await;
        match res {
            Err(e) if e.is_retryable() && attempt < policy.attempts => {
                tokio::time::sleep(policy.min_delay).await;
            }
            other => return other,
        }
    }
}

pub fn resumable_stream(
    t: Arc<dyn Transport>,
    key: String,
    limit: u64,
    _expected_len: Option<u64>,
    _policy: RetryPolicy,
) -> ByteStream {
    let s = futures_util::stream::once(async move {
        let req = FetchRequest {
            key,
            limit,
            ..Default::default()
        };
        match t.fetch(&req).await {
            Ok(Fetched::Body(b)) => Ok(b.stream),
            Ok(Fetched::NotModified) => Err(TransportError::Io {
                location: t.location(&req.key),
                message: "unexpected 304".into(),
            }),
            Err(e) => Err(e),
        }
    })
    .flat_map(|r| match r {
        Ok(s) => s,
        Err(e) => Box::pin(futures_util::stream::once(async move { Err(e) })),
    });
    Box::pin(s)
}
