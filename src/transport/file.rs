//! `file://` registries (implementation in progress).

use super::{Transport, TransportError};

pub struct FileRegistry {
    pub root: std::path::PathBuf,
}

impl FileRegistry {
    pub fn from_url(url: &str) -> Result<FileRegistry, TransportError> {
        Err(TransportError::InvalidUrl {
            url: url.into(),
            why: "file registries not implemented yet".into(),
        })
    }
}

#[async_trait::async_trait]
impl super::Transport for FileRegistry {
    async fn fetch(&self, req: &super::FetchRequest) -> Result<super::Fetched, TransportError> {
        Err(TransportError::NotFound {
            location: self.location(&req.key),
        })
    }
    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[async_trait::async_trait]
impl super::Store for FileRegistry {
    async fn get(&self, _key: &str, _limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(None)
    }
    async fn put(&self, key: &str, _bytes: Vec<u8>) -> Result<(), TransportError> {
        Err(TransportError::Io {
            location: self.location(key),
            message: "not implemented yet".into(),
        })
    }
    async fn put_file(&self, key: &str, _path: &std::path::Path) -> Result<(), TransportError> {
        Err(TransportError::Io {
            location: self.location(key),
            message: "not implemented yet".into(),
        })
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<String>, TransportError> {
        Ok(vec![])
    }
}
