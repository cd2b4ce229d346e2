//! One operation at a time per app root: an advisory lock on `.updraft/lock`.
//!
//! The kernel drops the lock when the process dies (even by SIGKILL), so a crash can
//! never leave a stale lock behind, unlike a pid file.

use crate::error::{Classify, ErrorClass};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another updraft operation holds {path} (waited {waited:?}); try again when it finishes, or raise `lock_timeout`")]
    Busy { path: String, waited: Duration },
    #[error("cannot open lock file {path}: {source}; updraft needs to create and write it: run as the user that owns the app root, or give that user write access to {path} and its directory")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct RootLock {
    _file: File,
}

impl RootLock {
    /// Wait up to `timeout` for the lock, polling so the wait stays bounded.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<RootLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let start = Instant::now();
        if lock_within(&file, timeout).map_err(io_err)? {
            Ok(RootLock { _file: file })
        } else {
            Err(LockError::Busy {
                path: path.display().to_string(),
                waited: start.elapsed(),
            })
        }
    }
}

/// Take an exclusive lock on `file` (a file or a directory), waiting up to `timeout`:
/// `Ok(false)` when someone else still holds it. Polls, so the wait stays bounded.
pub fn lock_within(file: &File, timeout: Duration) -> std::io::Result<bool> {
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if start.elapsed() >= timeout {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Classify for LockError {
    fn class(&self) -> ErrorClass {
        match self {
            LockError::Busy { .. } => ErrorClass::Busy,
            // Waiting will not help: permissions or the disk need fixing first.
            LockError::Io { .. } => ErrorClass::Other,
        }
    }
}
