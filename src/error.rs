//! What class of failure an error is.
//!
//! The library says what failed and on what; the command line decides which documented
//! exit code that is (`cli::exit`), in one place. Keeping the class here rather than the
//! number means no module below the CLI knows about exit codes.

use std::error::Error;

/// The kind of failure, as far as a script calling updraft cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A bad command line, config file or key file: fix the input and run again.
    Usage,
    /// Another updraft operation holds the lock, or another publisher kept changing the
    /// document this one meant to change: try again later.
    Busy,
    /// The new release failed its checks and was rolled back (and blocked).
    RolledBack,
    /// A signature, checksum, size or freshness check failed: nothing was changed.
    Verify,
    /// The asked-for release or document does not exist.
    NotFound,
    /// A health gate refused a promotion (or what was approved is no longer there):
    /// nothing was moved.
    GateNotMet,
    /// Anything else: the disk, the network, a service manager.
    Other,
}

impl ErrorClass {
    /// The class's name in `--json` error output (`error.kind`), stable like the codes.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Usage => "usage",
            ErrorClass::Busy => "busy",
            ErrorClass::RolledBack => "rolled-back",
            ErrorClass::Verify => "verification",
            ErrorClass::NotFound => "not-found",
            ErrorClass::GateNotMet => "gate-not-met",
            ErrorClass::Other => "failure",
        }
    }
}

/// A mistake in what the caller asked for that no typed error of a module covers (a
/// flag combination, a setting the command needs): fix the command line or the config
/// and run again. The message says which and how.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Classify for UsageError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// Implemented by every typed library error whose class is not always [`ErrorClass::Other`].
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// The class of the first typed error in `e`'s chain of causes that has one.
pub fn classify(e: &(dyn Error + 'static)) -> ErrorClass {
    let mut cause: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(class) = class_of(c) {
            return class;
        }
        cause = c.source();
    }
    ErrorClass::Other
}

fn class_of(e: &(dyn Error + 'static)) -> Option<ErrorClass> {
    fn try_as<T: Classify + Error + 'static>(e: &(dyn Error + 'static)) -> Option<ErrorClass> {
        e.downcast_ref::<T>().map(Classify::class)
    }
    try_as::<crate::activate::DeployError>(e)
        .or_else(|| try_as::<crate::agent::AgentError>(e))
        .or_else(|| try_as::<crate::registry::signed::PublishError>(e))
        .or_else(|| try_as::<crate::registry::manifest::ManifestError>(e))
        .or_else(|| try_as::<crate::registry::keyring::KeyringError>(e))
        .or_else(|| try_as::<crate::registry::keys::KeyError>(e))
        .or_else(|| try_as::<crate::registry::fleet::GateNotMet>(e))
        .or_else(|| try_as::<crate::archive::unpack::UnpackError>(e))
        .or_else(|| try_as::<crate::transport::TransportError>(e))
        .or_else(|| try_as::<crate::disk::lock::LockError>(e))
        .or_else(|| try_as::<crate::config::ConfigError>(e))
        .or_else(|| try_as::<UsageError>(e))
        .or_else(|| try_as::<crate::registry::names::UnknownTarget>(e))
        .or_else(|| try_as::<crate::archive::version_file::Mismatch>(e))
        .or_else(|| try_as::<crate::disk::layout::RootRefusal>(e))
}
