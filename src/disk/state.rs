//! What updraft remembers about an app root between runs.
//!
//! The `current` symlink is the truth about what runs; this file records why: which
//! versions are blocked, pinned, pending commit, and what the channel last said. It is
//! rewritten atomically, so a crash leaves the old or the new state, never a torn one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::registry::names::{Channel, Version};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is not valid ({source}); move it aside to start afresh (blocks and pins will be forgotten)")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Blocked {
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub sha256: String,
    pub installed_at: String,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Operation {
    pub kind: String,
    pub version: Option<Version>,
    pub at: String,
    pub ok: bool,
    pub message: String,
}

/// An activation that has switched `current` but not yet passed its health checks.
/// If a run finds one, the process died mid-activation: roll back and block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// "deploy", "update" or "rollback": only a new release is blocked on recovery.
    #[serde(default)]
    pub kind: String,
    pub version: Version,
    pub previous: Option<Version>,
    /// What `current` pointed at when that was no release of ours (a seed-era
    /// `a1b2c3d`): restored as it was if the activation fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_link: Option<String>,
    pub started_at: String,
    /// Bake period end (RFC 3339) when the activation is baking; None while checking.
    #[serde(default)]
    pub bake_until: Option<String>,
}

/// What the agent last accepted from its channel: the anti-rollback floor and the
/// cache validators for conditional GET.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ChannelSeen {
    pub channel: Option<Channel>,
    pub sequence: u64,
    pub version: Option<Version>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    /// The sequence of the last channel document whose decision was carried out. It
    /// trails `sequence` while an apply fails for a reason that does not block the
    /// version, so "the channel moved back" is judged again on the next poll.
    #[serde(default)]
    pub followed_sequence: u64,
    #[serde(default)]
    pub yanked: Vec<Version>,
    /// Raw channel document bytes we accepted, so a 304 can be re-verified for expiry.
    #[serde(default)]
    pub document: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct State {
    #[serde(default)]
    pub previous: Option<Version>,
    #[serde(default)]
    pub pinned: Option<Version>,
    #[serde(default)]
    pub blocked: BTreeMap<Version, Blocked>,
    #[serde(default)]
    pub releases: BTreeMap<Version, ReleaseRecord>,
    #[serde(default)]
    pub last_operation: Option<Operation>,
    #[serde(default)]
    pub pending: Option<Pending>,
    #[serde(default)]
    pub channel: Option<ChannelSeen>,
    #[serde(default)]
    pub last_check: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_health: Option<Operation>,
}

impl State {
    pub fn load(path: &Path) -> Result<State, StateError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let write_err = |source| StateError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_err)?;
        }
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| write_err(e.into()))?;
        bytes.push(b'\n');
        fsutil::write_atomic(path, &bytes, 0o644).map_err(write_err)
    }

    pub fn block(&mut self, v: &Version, reason: impl Into<String>) {
        self.blocked.insert(
            v.clone(),
            Blocked {
                reason: reason.into(),
                at: now_rfc3339(),
            },
        );
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Append one JSON line to the history file. History is for humans and `why`; losing
/// the last line in a crash is acceptable, so this appends without a rename.
pub fn append_history(path: &Path, entry: &serde_json::Value) -> io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
    line.push(b'\n');
    f.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_missing_is_default() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s/state.json");
        assert_eq!(State::load(&p).unwrap(), State::default());
        let mut s = State::default();
        s.block(&"1.2.0".parse().unwrap(), "health check failed");
        s.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        fs::write(&p, b"{garbage").unwrap();
        let err = State::load(&p).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
    }
}
