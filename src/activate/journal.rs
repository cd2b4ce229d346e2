//! The two records an operation leaves: a line in `logs/releases.log` (the seed's audit
//! trail, read by people and their greps, so its wording is kept) and an event in
//! `.updraft/history.jsonl` (what `updraft why` reads).

use std::fmt;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;

use tracing::warn;

use super::error::DeployError;
use super::services::ServiceOutcome;
use super::{show, Pipeline};
use crate::disk::history::{self, Entry, Event};
use crate::disk::state::Kind;
use crate::registry::names::Version;
use crate::time::Timestamp;

/// One line of `logs/releases.log`, without its timestamp.
#[derive(Debug, Clone, Copy)]
pub enum LogLine<'a> {
    Activated {
        kind: Kind,
        version: &'a Version,
        previous: Option<&'a Version>,
        services: ServiceOutcome,
    },
    Failed {
        kind: Kind,
        version: &'a Version,
        reason: &'a str,
        restored: &'a str,
    },
    /// A run found an activation that never passed its health checks and undid it.
    Recovered {
        version: &'a Version,
        restored: Option<&'a Version>,
    },
    /// The pre-activation hook refused a release.
    Refused {
        version: &'a Version,
        error: &'a DeployError,
    },
    Pruned {
        version: &'a Version,
    },
    Pinned {
        version: &'a Version,
    },
    Unpinned {
        version: &'a Version,
    },
    Unblocked {
        version: &'a Version,
    },
    /// `current` was found moved by another tool.
    Moved {
        from: &'a str,
        to: &'a str,
    },
}

impl fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogLine::Activated {
                kind,
                version,
                previous,
                services,
            } => write!(
                f,
                "[{}] {version} activated (previous {}, services {services:?})",
                kind.as_str(),
                show(*previous)
            ),
            LogLine::Failed {
                kind,
                version,
                reason,
                restored,
            } => write!(
                f,
                "[{}] {version} FAILED: {reason}; {restored}",
                kind.as_str()
            ),
            LogLine::Recovered { version, restored } => write!(
                f,
                "[recover] {version} interrupted while pending; restored {}",
                show(*restored)
            ),
            LogLine::Refused { version, error } => write!(
                f,
                "[deploy] {version} refused by pre-activation check: {error}"
            ),
            LogLine::Pruned { version } => write!(f, "[prune] removed {version}"),
            LogLine::Pinned { version } => write!(f, "[pin] pinned to {version}"),
            LogLine::Unpinned { version } => write!(f, "[pin] unpinned {version}"),
            LogLine::Unblocked { version } => write!(f, "[unblock] {version}"),
            LogLine::Moved { from, to } => {
                write!(
                    f,
                    "[moved] current moved outside updraft from {from} to {to}"
                )
            }
        }
    }
}

impl Pipeline<'_> {
    /// Append a line to `logs/releases.log` (the seed's audit trail). Failure to log
    /// never fails an operation.
    pub fn log(&self, line: LogLine<'_>) {
        use std::io::Write;
        let path = self.root.release_log();
        let _ = fs::create_dir_all(self.root.logs());
        // Never through a symlink: whoever can write logs/ must not make root append
        // to a file of their choosing (O_NOFOLLOW fails with ELOOP on one).
        let res = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{} {line}", Timestamp::now()));
        if let Err(e) = res {
            warn!("cannot append to {}: {e}", path.display());
        }
    }

    /// Append one event to `.updraft/history.jsonl` (what `updraft why` reads). Failure
    /// to record history never fails an operation.
    pub fn history(&self, event: Event, version: Option<&Version>, ok: bool, message: &str) {
        let entry = Entry::now(event, version, ok, message);
        if let Err(e) = history::append(&self.root.history_file(), &entry) {
            warn!("cannot append to history: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_keep_the_seed_wording() {
        let v1: Version = "1.0.0".parse().unwrap();
        let v2: Version = "1.1.0".parse().unwrap();
        let refusal = DeployError::PreActivate {
            version: v2.clone(),
            reason: super::super::error::HookFailure::Exited {
                command: "./check".into(),
                status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                stderr: "bad".into(),
            },
        };
        let cases: Vec<(LogLine<'_>, &str)> = vec![
            (
                LogLine::Activated {
                    kind: Kind::Deploy,
                    version: &v2,
                    previous: Some(&v1),
                    services: ServiceOutcome::Restarted,
                },
                "[deploy] 1.1.0 activated (previous 1.0.0, services Restarted)",
            ),
            (
                LogLine::Activated {
                    kind: Kind::Update,
                    version: &v1,
                    previous: None,
                    services: ServiceOutcome::Skipped,
                },
                "[update] 1.0.0 activated (previous none, services Skipped)",
            ),
            (
                LogLine::Failed {
                    kind: Kind::Rollback,
                    version: &v1,
                    reason: "health check web failed",
                    restored: "switched back to 1.1.0 (healthy)",
                },
                "[rollback] 1.0.0 FAILED: health check web failed; switched back to 1.1.0 (healthy)",
            ),
            (
                LogLine::Recovered {
                    version: &v2,
                    restored: Some(&v1),
                },
                "[recover] 1.1.0 interrupted while pending; restored 1.0.0",
            ),
            (
                LogLine::Recovered {
                    version: &v2,
                    restored: None,
                },
                "[recover] 1.1.0 interrupted while pending; restored none",
            ),
            (
                LogLine::Refused {
                    version: &v2,
                    error: &refusal,
                },
                "[deploy] 1.1.0 refused by pre-activation check: pre-activation check failed for 1.1.0: `./check` exited with exit status: 1: bad; the release was not activated",
            ),
            (LogLine::Pruned { version: &v1 }, "[prune] removed 1.0.0"),
            (LogLine::Pinned { version: &v1 }, "[pin] pinned to 1.0.0"),
            (LogLine::Unpinned { version: &v1 }, "[pin] unpinned 1.0.0"),
            (LogLine::Unblocked { version: &v1 }, "[unblock] 1.0.0"),
            (
                LogLine::Moved {
                    from: "1.1.0",
                    to: "v1.0.0",
                },
                "[moved] current moved outside updraft from 1.1.0 to v1.0.0",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.to_string(), want);
        }
    }
}
