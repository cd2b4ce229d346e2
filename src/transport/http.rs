//! `http(s)://` registries (implementation in progress).

use super::TransportError;

pub struct HttpRegistry {
    pub base: String,
}

impl HttpRegistry {
    pub fn new(url: &str, _opts: &super::TransportOptions) -> Result<HttpRegistry, TransportError> {
        Ok(HttpRegistry {
            base: url.trim_end_matches('/').to_string(),
        })
    }
}

#[async_trait::async_trait]
impl super::Transport for HttpRegistry {
    async fn fetch(&self, req: &super::FetchRequest) -> Result<super::Fetched, TransportError> {
        Err(TransportError::NotFound {
            location: self.location(&req.key),
        })
    }
    fn location(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }
}
