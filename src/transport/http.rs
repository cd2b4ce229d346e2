//! `http(s)://` registries: any static web server (nginx, a CDN, `updraft serve`).
//!
//! One GET per fetch, with conditional validators and a byte range when resuming. The
//! response body is handed out as a stream that checks itself: it stops at the size
//! limit and turns a body that ends before its Content-Length into an error, so a cut
//! connection can never pass for a complete (short) object.

use futures_util::StreamExt;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::{
    CONTENT_RANGE, DATE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RANGE,
};

use super::headers::ContentRange;
use super::key::Key;
use super::limits::{self, Limited};
use super::{Body, ByteStream, FetchRequest, Fetched, Transport, TransportError, TransportOptions};

/// Characters escaped inside one path segment: everything a URL parser would read as
/// structure (`/ ? #`), the escape character itself, and what is never literal in a path.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// How much of an error body is quoted in a status error.
const DETAIL_CHARS: usize = 200;

pub struct HttpRegistry {
    /// Base URL without a trailing slash; keys are appended after a `/`.
    pub base: String,
    /// Query string (with its `?`) appended to every key, e.g. for a pre-signed URL.
    query: String,
    /// For a registry made by [`HttpRegistry::for_url`]: its key and the URL exactly as
    /// given. Decoding and re-escaping is not always the identity (`%2B` would become
    /// `+`, which S3 reads as a space), and a signed link must be sent as signed.
    exact: Option<(String, String)>,
    client: reqwest::Client,
    opts: TransportOptions,
}

impl HttpRegistry {
    pub fn new(url: &str, opts: &TransportOptions) -> Result<HttpRegistry, TransportError> {
        let parsed = url::Url::parse(url).map_err(|e| TransportError::InvalidUrl {
            url: url.into(),
            why: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(TransportError::InvalidUrl {
                url: url.into(),
                why: "expected http://host/path or https://host/path".into(),
            });
        }
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let client = super::tls::client_builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .user_agent(concat!("updraft/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::InvalidUrl {
                url: url.into(),
                why: error_chain(&e),
            })?;
        Ok(HttpRegistry {
            base: base.trim_end_matches('/').to_string(),
            query,
            exact: None,
            client,
            opts: opts.clone(),
        })
    }

    /// A registry for one absolute URL (`deploy --artifact-url`): the registry is the
    /// URL's directory and the returned key its last path segment, so the download gets
    /// the same checks, retries and Range resume as registry objects.
    pub fn for_url(
        url: &str,
        opts: &TransportOptions,
    ) -> Result<(HttpRegistry, String), TransportError> {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        let invalid = |why: &str| TransportError::InvalidUrl {
            url: url.into(),
            why: why.into(),
        };
        let after_scheme = path
            .find("://")
            .map(|i| i + 3)
            .ok_or_else(|| invalid("expected http(s)://host/path/file"))?;
        let (dir, last) = path
            .rsplit_once('/')
            .filter(|(d, l)| d.len() >= after_scheme && !l.is_empty())
            .ok_or_else(|| invalid("the URL must name a file (http(s)://host/path/file)"))?;
        let key = percent_decode_str(last)
            .decode_utf8()
            .map_err(|_| invalid("the file name is not valid UTF-8 once percent-decoded"))?
            .into_owned();
        let key = Key::new(key)
            .map_err(|e| invalid(&format!("the file name {:?}: {}", e.key, e.why)))?
            .to_string();
        let base = match query {
            Some(q) => format!("{dir}?{q}"),
            None => dir.to_string(),
        };
        let mut registry = HttpRegistry::new(&base, opts)?;
        registry.exact = Some((key.clone(), url.to_string()));
        Ok((registry, key))
    }

    fn url_of(&self, key: &str) -> String {
        if let Some((_, url)) = self.exact.as_ref().filter(|(k, _)| k == key) {
            return url.clone();
        }
        let path: Vec<String> = key
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        format!("{}/{}{}", self.base, path.join("/"), self.query)
    }

    /// Store `bytes` at `key` with an HTTP PUT, for servers that accept uploads (nginx
    /// with `dav_methods PUT; create_full_put_path on;`). Only machine reports use it:
    /// registries are published to the directory or bucket a server serves.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TransportError> {
        let location = self.url_of(key);
        let resp = self
            .client
            .put(&location)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| network_error(e, &location, &self.opts))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(()),
            401 | 403 | 405 => Err(TransportError::Denied {
                location,
                status,
                hint: "the web server does not accept uploads here: enable WebDAV PUT for this path (nginx: `dav_methods PUT; create_full_put_path on;`) or write reports to s3:// or file://".into(),
            }),
            _ => {
                let detail = status_detail(resp).await;
                Err(TransportError::from_status(location, status, detail, None))
            }
        }
    }
}

/// A failed request or body read as a [`TransportError`], for every scheme that speaks
/// HTTP (http(s):// and s3://): a timeout names the timeout that expired, anything else
/// is a network error keeping reqwest's error as its source, without reqwest's copy of
/// the URL, which the error already names.
pub(crate) fn network_error(
    e: reqwest::Error,
    location: &str,
    opts: &TransportOptions,
) -> TransportError {
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
    TransportError::Network {
        location: location.to_string(),
        message: String::new(),
        source: Some(e.without_url().into()),
    }
}

/// A response's body as chunks, its read errors mapped by [`network_error`].
pub(crate) fn body_stream(
    resp: reqwest::Response,
    location: &str,
    opts: &TransportOptions,
) -> ByteStream {
    let (location, opts) = (location.to_string(), opts.clone());
    Box::pin(
        resp.bytes_stream()
            .map(move |r| r.map_err(|e| network_error(e, &location, &opts))),
    )
}

/// An error with every cause, outermost first, without repeating a cause that its
/// parent already quotes. reqwest's own message ("error sending request for url") says
/// nothing useful; the operator needs the "Connection refused" at the bottom.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// Up to [`DETAIL_CHARS`] characters of a text error body, on one line, as
/// `: <text>` ready to follow "answered HTTP 503".
async fn status_detail(resp: reqwest::Response) -> String {
    let is_text = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/") || ct.contains("json") || ct.contains("xml")
        })
        // Servers often omit the type on short error bodies.
        .unwrap_or(true);
    if !is_text {
        return String::new();
    }
    let buf = limits::read_capped(resp, DETAIL_CHARS * 4).await;
    let text = String::from_utf8_lossy(&buf);
    // Whitespace folded to one line; other control characters (a terminal's escape
    // sequences) escaped: this text is printed and kept in the state for `status`.
    let one_line = crate::text::printable(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    if one_line.is_empty() {
        return String::new();
    }
    let mut short: String = one_line.chars().take(DETAIL_CHARS).collect();
    if short.len() < one_line.len() {
        short.push('…');
    }
    format!(": {short}")
}

#[async_trait::async_trait]
impl Transport for HttpRegistry {
    async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, TransportError> {
        let key = Key::new(req.key.as_str())?;
        let location = self.url_of(key.as_str());
        let mut r = self.client.get(&location);
        if let Some(e) = &req.if_none_match {
            r = r.header(IF_NONE_MATCH, e);
        }
        if let Some(d) = &req.if_modified_since {
            r = r.header(IF_MODIFIED_SINCE, d);
        }
        if req.offset > 0 {
            r = r.header(RANGE, format!("bytes={}-", req.offset));
        }
        let resp = r
            .send()
            .await
            .map_err(|e| network_error(e, &location, &self.opts))?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            304 => return Ok(Fetched::NotModified),
            404 => return Err(TransportError::NotFound { location }),
            401 | 403 => {
                return Err(TransportError::Denied {
                    location,
                    status,
                    hint: "the web server refused this machine: check its access rules, or use a URL it serves publicly".into(),
                })
            }
            416 => {
                let range = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                return Err(TransportError::Status {
                    location,
                    status,
                    detail: format!(
                        " (range not satisfiable) for bytes {}- (server's Content-Range: {range}): the object is shorter than what was already downloaded; it may have been replaced",
                        req.offset
                    ),
                });
            }
            _ => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let detail = status_detail(resp).await;
                return Err(TransportError::from_status(
                    location,
                    status,
                    detail,
                    retry_after.as_deref(),
                ));
            }
        }
        let header = |n: reqwest::header::HeaderName| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let offset = if status == 206 {
            let start = header(CONTENT_RANGE)
                .as_deref()
                .and_then(ContentRange::parse)
                .and_then(|r| r.first());
            if start != Some(req.offset) {
                return Err(TransportError::Io {
                    location,
                    message: format!(
                        "asked for bytes from {} but the server sent a partial response starting at {}: the server's Range support is broken; serve the registry from another server",
                        req.offset,
                        header(CONTENT_RANGE).unwrap_or_else(|| "(no Content-Range)".into())
                    ),
                    source: None,
                });
            }
            req.offset
        } else {
            0
        };
        let etag = header(ETAG);
        let date = header(DATE);
        // Only a strong Last-Modified is a validator (spec §11, RFC 9110 8.8.2.2).
        let last_modified =
            super::headers::strong_last_modified(header(LAST_MODIFIED).as_deref(), date.as_deref());
        let len = resp.content_length();
        let stream = body_stream(resp, &location, &self.opts);
        let stream = Limited::new(stream, location, offset, len, req.limit)?;
        Ok(Fetched::Body(Body {
            etag,
            last_modified,
            date,
            len,
            offset,
            stream: Box::pin(stream),
        }))
    }

    fn location(&self, key: &str) -> String {
        self.url_of(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_per_segment() {
        let r = HttpRegistry::new("http://h/reg/", &TransportOptions::default()).unwrap();
        assert_eq!(
            r.location("demo/releases/1.0.0 #1?.tar.gz"),
            "http://h/reg/demo/releases/1.0.0%20%231%3F.tar.gz"
        );
        assert_eq!(r.location("a%b"), "http://h/reg/a%25b");
    }

    #[test]
    fn for_url_splits_directory_and_file_and_keeps_the_query() {
        let o = TransportOptions::default();
        let (r, k) = HttpRegistry::for_url("https://cdn/x/app%201.tar.gz?sig=abc", &o).unwrap();
        assert_eq!(k, "app 1.tar.gz");
        assert_eq!(r.location(&k), "https://cdn/x/app%201.tar.gz?sig=abc");
        // The file's URL is sent as given, even where re-escaping its decoded name
        // would spell it differently.
        let signed = "https://cdn/x/app-1.0.0%2Bb7.tar.gz?X-Amz-Signature=ab%2Fc";
        let (r, k) = HttpRegistry::for_url(signed, &o).unwrap();
        assert_eq!(k, "app-1.0.0+b7.tar.gz");
        assert_eq!(r.location(&k), signed);
        assert!(HttpRegistry::for_url("https://cdn/", &o).is_err());
        assert!(HttpRegistry::for_url("https://cdn", &o).is_err());
        assert!(HttpRegistry::for_url("ftp://cdn/x", &o).is_err());
    }

    #[test]
    fn chain_skips_repeated_causes() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(error_chain(&outer), "refused");
    }
}
