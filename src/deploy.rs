//! The deploy pipeline (in progress).

use crate::cli::exit;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("release {version} not found; available: {available}")]
    NotFound { version: String, available: String },
}

impl DeployError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DeployError::NotFound { .. } => exit::NOT_FOUND,
        }
    }
}
