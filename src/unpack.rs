//! Safe extraction of untrusted release tarballs (interface; implementation in progress).

use std::io::Read;
use std::path::Path;

/// Bounds on what one tarball may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refused tarball entry {entry:?}: {why}")]
    Refused { entry: String, why: String },
    #[error("tarball is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Unpack a gzip-compressed tarball from `reader` into the existing, empty directory
/// `dest`. Never writes outside `dest`.
pub fn unpack_tar_gz<R: Read>(
    _reader: R,
    _dest: &Path,
    _limits: &Limits,
) -> Result<Stats, UnpackError> {
    Err(UnpackError::Corrupt("unpacking not implemented yet".into()))
}
