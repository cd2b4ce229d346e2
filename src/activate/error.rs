//! Why a deploy, rollback or activation failed, and which class of failure that is.

use std::path::{Path, PathBuf};

use super::health::HealthError;
use super::restarts::CrashLoop;
use super::services::ServiceError;
use crate::archive::unpack::UnpackError;
use crate::disk::lock::LockError;
use crate::disk::state::StateError;
use crate::error::{Classify, ErrorClass};
use crate::registry::manifest::BlockError;
use crate::registry::names::Version;
use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{what} ({path}): {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fetch(#[from] TransportError),
    #[error("cannot read artifact {location}: {source}; check the path")]
    Read {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refused artifact {location}: {source}; nothing was installed and `current` is unchanged"
    )]
    Unpack {
        location: String,
        #[source]
        source: UnpackError,
    },
    #[error("cannot write {path} while installing {location}: {source}; {}; nothing was installed and `current` is unchanged", write_hint(.source))]
    Write {
        location: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refused artifact {location}: {source}")]
    Blocks {
        location: String,
        #[source]
        source: crate::registry::manifest::BlockError,
    },
    /// Reading an artifact that is verified whole before it is unpacked.
    #[error(
        "cannot download {location}: {source}; nothing was installed and `current` is unchanged"
    )]
    Download {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checksum mismatch for {location}: expected sha256 {expected}, got {actual}; the download is corrupt or tampered with, nothing was installed")]
    Checksum {
        location: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {location}: expected {expected} bytes, got {actual}; nothing was installed")]
    Size {
        location: String,
        expected: u64,
        actual: u64,
    },
    #[error("release {version} is already installed with different contents (installed sha256 {installed}, new {new}); releases are immutable: publish a new version, or pass --force to replace it")]
    Exists {
        version: Version,
        installed: String,
        new: String,
    },
    #[error("release {version} is already installed, but not by updraft (the seed's scripts, or by hand), so its checksum is unknown; to run it as it is: updraft rollback --version {version}; to replace it with this tarball: pass its --sha256 (or --force)")]
    ExistsUnrecorded { version: Version },
    #[error("release not found: {version} is not installed; available releases: {available}")]
    NotFound { version: Version, available: String },
    #[error("no release to roll back to (installed: {available}); pass --version to choose one")]
    NoPrevious { available: String },
    #[error("pre-activation check failed for {version}: {reason}; the release was not activated")]
    PreActivate {
        version: Version,
        #[source]
        reason: HookFailure,
    },
    #[error("release {version} failed after activation: {reason}; {restored} and {version} is now blocked (`updraft unblock {version}` to allow it again)")]
    RolledBack {
        version: Version,
        #[source]
        reason: Box<ActivationFailure>,
        restored: String,
    },
    #[error("rollback to {version} failed: {reason}; switched back to {restored}")]
    RollbackFailed {
        version: Version,
        #[source]
        reason: Box<ActivationFailure>,
        restored: String,
    },
    #[error("config error, {version} was not activated: {problems}; nothing was blocked and `current` is unchanged: fix the config (or the release) and run again")]
    Config { version: Version, problems: String },
    #[error("invalid --sha256 {0:?}: expected 64 hexadecimal characters")]
    BadSha(String),
    #[error(transparent)]
    VersionMismatch(#[from] crate::archive::version_file::Mismatch),
    #[error(transparent)]
    Data(Box<super::data::DataError>),
}

impl From<super::data::DataError> for DeployError {
    fn from(e: super::data::DataError) -> Self {
        DeployError::Data(Box::new(e))
    }
}

/// Why a lifecycle hook failed (the pre-activation check refusing a release, a
/// post_activate failing an activation, a rollback hook reported).
#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    #[error("`{command}` timed out")]
    TimedOut { command: String },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// `stderr` is the last lines of what the hook wrote, on one line.
    #[error("`{command}` exited with {status}: {stderr}")]
    Exited {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Why a release that was switched to failed before it was committed: kept typed as
/// the source of [`DeployError::RolledBack`] and [`DeployError::RollbackFailed`].
#[derive(Debug, thiserror::Error)]
pub enum ActivationFailure {
    /// Copying its service commands, or saving the state, failed.
    #[error(transparent)]
    Deploy(Box<DeployError>),
    #[error(transparent)]
    Services(#[from] ServiceError),
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error(transparent)]
    CrashLoop(#[from] CrashLoop),
    #[error("during the bake period: {0}")]
    Bake(#[source] HealthError),
    #[error("post_activate hook failed: {0}")]
    PostActivate(#[source] HookFailure),
}

impl From<DeployError> for ActivationFailure {
    fn from(e: DeployError) -> Self {
        ActivationFailure::Deploy(Box::new(e))
    }
}

impl Classify for DeployError {
    fn class(&self) -> ErrorClass {
        match self {
            DeployError::Lock(l) => l.class(),
            // A read error inside the unpacker is the network or the disk, not the tarball,
            // unless the download itself broke a size rule (the signed size, a limit).
            DeployError::Unpack {
                source: UnpackError::Read(e),
                ..
            } => e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<TransportError>())
                .map_or(ErrorClass::Other, Classify::class),
            DeployError::Download { source: e, .. }
            | DeployError::Blocks {
                source: BlockError::Read(e),
                ..
            } => e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<TransportError>())
                .map_or(ErrorClass::Other, Classify::class),
            // A short download is the network's doing; other bytes are refused.
            DeployError::Blocks {
                source: BlockError::Truncated { .. },
                ..
            } => ErrorClass::Other,
            DeployError::Unpack { .. }
            | DeployError::Blocks { .. }
            | DeployError::Checksum { .. }
            | DeployError::Size { .. }
            | DeployError::VersionMismatch(_) => ErrorClass::Verify,
            DeployError::NotFound { .. } | DeployError::NoPrevious { .. } => ErrorClass::NotFound,
            DeployError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::NotFound
            }
            DeployError::Fetch(t) => t.class(),
            DeployError::RolledBack { .. } | DeployError::RollbackFailed { .. } => {
                ErrorClass::RolledBack
            }
            DeployError::BadSha(_) | DeployError::Config { .. } => ErrorClass::Usage,
            DeployError::Data(d) if matches!(**d, super::data::DataError::NoSnapshot { .. }) => {
                ErrorClass::Usage
            }
            _ => ErrorClass::Other,
        }
    }
}

/// Write errors that are the machine's (space, quotas, limits, permissions, a failing
/// or read-only disk); others while unpacking (a name too long, too many links) come
/// from what the tarball asks for.
pub(super) fn is_disk_failure(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::StorageFull
            | K::QuotaExceeded
            | K::FileTooLarge
            | K::PermissionDenied
            | K::ReadOnlyFilesystem
    ) || e.raw_os_error() == Some(libc::EIO)
}

/// What to do about a failed write under releases/: the disk, not the tarball.
fn write_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "the filesystem holding releases/ is full: free space (`updraft prune --keep 2` removes old releases) and try again"
        }
        std::io::ErrorKind::FileTooLarge => {
            "a file size limit applies (ulimit -f, or LimitFSIZE= in the unit): lift it and try again"
        }
        _ => "check the free space and permissions of the releases/ directory",
    }
}

pub(super) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> DeployError {
    let path = path.to_path_buf();
    move |source| DeployError::Io { what, path, source }
}
