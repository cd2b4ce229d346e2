//! `http(s)://` registries (placeholder until the http branch lands).

use futures_util::StreamExt;

use super::{Body, FetchRequest, Fetched, Transport, TransportError};

pub struct HttpRegistry {
    pub base: String,
    client: reqwest::Client,
}

impl HttpRegistry {
    pub fn new(url: &str, opts: &super::TransportOptions) -> Result<HttpRegistry, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .build()
            .map_err(|e| TransportError::InvalidUrl {
                url: url.into(),
                why: e.to_string(),
            })?;
        Ok(HttpRegistry {
            base: url.trim_end_matches('/').to_string(),
            client,
        })
    }
}

#[async_trait::async_trait]
impl Transport for HttpRegistry {
    async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, TransportError> {
        let location = self.location(&req.key);
        let mut r = self.client.get(&location);
        if let Some(e) = &req.if_none_match {
            r = r.header("If-None-Match", e);
        }
        if req.offset > 0 {
            r = r.header("Range", format!("bytes={}-", req.offset));
        }
        let resp = r.send().await.map_err(|e| TransportError::Network {
            location: location.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        match status {
            304 => return Ok(Fetched::NotModified),
            404 => return Err(TransportError::NotFound { location }),
            401 | 403 => {
                return Err(TransportError::Denied {
                    location,
                    status,
                    hint: "check credentials".into(),
                })
            }
            200 | 206 => {}
            _ => {
                return Err(TransportError::Status {
                    location,
                    status,
                    detail: String::new(),
                })
            }
        }
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = h("etag");
        let last_modified = h("last-modified");
        let len = resp.content_length();
        let loc = location.clone();
        let stream = resp.bytes_stream().map(move |r| {
            r.map_err(|e| TransportError::Network {
                location: loc.clone(),
                message: e.to_string(),
            })
        });
        Ok(Fetched::Body(Body {
            etag,
            last_modified,
            len,
            offset: if status == 206 { req.offset } else { 0 },
            stream: Box::pin(stream),
        }))
    }
    fn location(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }
}
