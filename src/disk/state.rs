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
use crate::time::Timestamp;

pub use crate::disk::history::Event;

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
    /// Serialising the state failed: a bug, but the message says which file it was for.
    #[error("cannot write state file {path}: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Blocked {
    pub reason: String,
    pub at: Timestamp,
}

/// The reason recorded when `rollback` holds back the version it left: an operator's
/// decision, not a failure, so it reads (and counts) as a hold rather than a failure.
pub const HOLD_REASON: &str = "rolled back by operator";

impl Blocked {
    /// Blocked by an operator's rollback rather than by a failed check.
    pub fn is_hold(&self) -> bool {
        self.reason == HOLD_REASON
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub sha256: String,
    pub installed_at: Timestamp,
    #[serde(default)]
    pub source: String,
    /// The data format the release needs (its signed `data_epoch`, or
    /// `deploy --data-epoch`); 0 when none was given, and then not written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data_epoch: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Operation {
    pub kind: Event,
    pub version: Option<Version>,
    pub at: Timestamp,
    pub ok: bool,
    pub message: String,
}

/// What started an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Deploy,
    Update,
    Rollback,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deploy => "deploy",
            Kind::Update => "update",
            Kind::Rollback => "rollback",
        }
    }

    /// A new release that fails is blocked; a rollback target is an operator's choice.
    pub fn blocks_on_failure(self) -> bool {
        !matches!(self, Kind::Rollback)
    }
}

impl From<Kind> for Event {
    fn from(k: Kind) -> Event {
        match k {
            Kind::Deploy => Event::Deploy,
            Kind::Update => Event::Update,
            Kind::Rollback => Event::Rollback,
        }
    }
}

/// `Pending::kind` as written since it was added: a kind, or `""` when unknown.
mod kind_or_empty {
    use super::Kind;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(k: &Option<Kind>, s: S) -> Result<S::Ok, S::Error> {
        match k {
            Some(k) => k.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Kind>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Kind(Kind),
            Other(String),
        }
        match Raw::deserialize(d)? {
            Raw::Kind(k) => Ok(Some(k)),
            Raw::Other(s) if s.is_empty() => Ok(None),
            Raw::Other(s) => Err(serde::de::Error::custom(format!(
                "unknown activation kind {s:?}"
            ))),
        }
    }
}

/// An activation that has switched `current` but not yet passed its health checks.
/// If a run finds one, the process died mid-activation: roll back and block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// Only a new release is blocked on recovery. None in state files written before
    /// the kind was recorded (missing, or `""`); written back as `""`.
    #[serde(default, with = "kind_or_empty")]
    pub kind: Option<Kind>,
    pub version: Version,
    pub previous: Option<Version>,
    /// What `current` pointed at when that was no release of ours (a seed-era
    /// `a1b2c3d`): restored as it was if the activation fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_link: Option<String>,
    pub started_at: Timestamp,
    /// Bake period end when the activation is baking; None while checking.
    #[serde(default)]
    pub bake_until: Option<Timestamp>,
    /// The activation failed (or was found interrupted) and is being undone: `current`
    /// goes back and what ran before is restarted. A run that finds it set finishes
    /// the undo instead of judging the activation again; a new release is already
    /// blocked by then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
    /// `data/` was snapshotted before this activation (its epoch rose): undoing it
    /// restores that snapshot before the release it replaced starts again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_snapshot: bool,
}

/// A release about to be renamed into `releases/`, recorded before the rename: a run
/// that finds it knows the previous one died around the rename, and that the tree
/// under that name is ours (same directory, by device and inode) if the rename
/// happened, with this sha256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installing {
    pub version: Version,
    pub sha256: String,
    #[serde(default)]
    pub source: String,
    /// The directory's name under `releases/` once in place.
    pub dir: String,
    /// Device and inode of the staging tree, which the rename keeps.
    pub dev: u64,
    pub ino: u64,
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
    /// A release being renamed into place (see [`Installing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installing: Option<Installing>,
    /// What `current` pointed at (the link's raw target) when updraft last moved it or
    /// looked: a run that finds it elsewhere knows another tool moved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default)]
    pub channel: Option<ChannelSeen>,
    #[serde(default)]
    pub last_check: Option<Timestamp>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_health: Option<Operation>,
    /// The last poll's decision (`Decision::name`): tells a rollout wait apart from
    /// falling behind in the host-side state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
    /// When a run last ended without an error (for the metrics file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Timestamp>,
    /// The last fleet report written, so an unchanged machine writes only a heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report: Option<ReportMark>,
}

/// `current` found moved by another tool (see [`State::observe_link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Where updraft had left it.
    pub from: String,
    /// Where it points now (None: removed).
    pub to: Option<String>,
    /// `previous` after the move was taken into account.
    pub previous: Option<Version>,
}

/// When a fleet report was last written and a digest of what it said (apart from its
/// timestamps): a report is rewritten when that changes, or when it is due as a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportMark {
    pub at: Timestamp,
    pub digest: String,
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
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|source| StateError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        bytes.push(b'\n');
        fsutil::write_atomic(path, &bytes, 0o644).map_err(write_err)
    }

    /// Refuse `v` until an operator unblocks it.
    pub fn block(&mut self, v: &Version, reason: impl Into<String>) {
        self.blocked.insert(
            v.clone(),
            Blocked {
                reason: reason.into(),
                at: Timestamp::now(),
            },
        );
    }

    /// Allow a blocked version again; returns why it was blocked.
    pub fn unblock(&mut self, v: &Version) -> Option<Blocked> {
        self.blocked.remove(v)
    }

    pub fn pin(&mut self, v: &Version) {
        self.pinned = Some(v.clone());
    }

    /// Follow the channel again; returns the version that was pinned.
    pub fn unpin(&mut self) -> Option<Version> {
        self.pinned.take()
    }

    pub fn record_release(&mut self, v: &Version, sha256: &str, source: &str) {
        self.releases.insert(
            v.clone(),
            ReleaseRecord {
                sha256: sha256.to_string(),
                installed_at: Timestamp::now(),
                source: source.to_string(),
                data_epoch: 0,
            },
        );
    }

    pub fn forget_release(&mut self, v: &Version) {
        self.releases.remove(v);
    }

    /// Record an activation about to move `current`. The caller saves before moving it.
    pub fn begin_activation(
        &mut self,
        kind: Kind,
        version: &Version,
        previous: Option<&Version>,
        previous_link: Option<&str>,
    ) {
        self.pending = Some(Pending {
            kind: Some(kind),
            version: version.clone(),
            previous: previous.cloned(),
            previous_link: previous_link.map(str::to_string),
            started_at: Timestamp::now(),
            bake_until: None,
            undo: false,
            data_snapshot: false,
        });
    }

    /// The pending activation's undo must restore the data snapshot taken before it.
    pub fn pending_data_snapshot(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            p.data_snapshot = true;
        }
    }

    /// Record the data epoch an installed release needs.
    pub fn set_data_epoch(&mut self, v: &Version, epoch: u64) {
        if let Some(r) = self.releases.get_mut(v) {
            r.data_epoch = epoch;
        }
    }

    /// The pending activation's health checks passed; it is now baking until `until`.
    pub fn baking_until(&mut self, until: Timestamp) {
        if let Some(p) = self.pending.as_mut() {
            p.bake_until = Some(until);
        }
    }

    /// Where `current` points now (its raw target), as updraft left it.
    pub fn set_link(&mut self, link: Option<String>) {
        self.link = link;
    }

    /// Compare `current` as found (`link`) with where updraft left it. When another tool
    /// moved it (the seed's scripts, `ln -sfn`), the release it moved away from becomes
    /// `previous` (if it is a release of ours other than the new one), so `rollback`
    /// still goes back to it. Returns the move, and records the link as found. Only
    /// meaningful with no activation pending (which moves `current` itself).
    pub fn observe_link(&mut self, link: Option<&str>) -> Option<Moved> {
        let known = self.link.clone();
        self.link = link.map(str::to_string);
        let known = known?;
        if Some(known.as_str()) == link {
            return None;
        }
        let version_of = |raw: &str| -> Option<Version> {
            let name = Path::new(raw).file_name()?.to_string_lossy().into_owned();
            name.strip_prefix('v').unwrap_or(&name).parse().ok()
        };
        let from = version_of(&known);
        let to = link.and_then(version_of);
        if from.is_some() && from != to {
            self.previous = from.clone();
        }
        Some(Moved {
            from: known,
            to: link.map(str::to_string),
            previous: self.previous.clone(),
        })
    }

    /// The activation of `version` passed its checks (and bake).
    pub fn activation_succeeded(
        &mut self,
        kind: Kind,
        version: &Version,
        previous: Option<&Version>,
        message: &str,
    ) {
        self.pending = None;
        if previous != Some(version) {
            self.previous = previous.cloned();
        }
        self.blocked.remove(version);
        self.last_operation = Some(Operation::now(kind.into(), Some(version), true, message));
        self.last_health = Some(Operation::now(
            Event::Health,
            Some(version),
            true,
            "all checks passed",
        ));
    }

    /// The activation of `version` failed and is about to be undone (`current` switched
    /// back): the pending activation is marked as an undo, so a run that finds it
    /// finishes that; a new release is blocked. [`State::undone`] ends it.
    pub fn activation_failed(&mut self, kind: Kind, version: &Version, reason: &str) {
        if let Some(p) = self.pending.as_mut() {
            p.undo = true;
        }
        self.last_health = Some(Operation::now(Event::Health, Some(version), false, reason));
        self.last_operation = Some(Operation::now(kind.into(), Some(version), false, reason));
        if kind.blocks_on_failure() {
            self.block(version, reason);
        }
    }

    /// A pending activation of `version` was found after a crash and is about to be
    /// undone: blocked, and marked as an undo (see [`State::activation_failed`]).
    pub fn recovered(&mut self, version: &Version, reason: &str) {
        if let Some(p) = self.pending.as_mut() {
            p.undo = true;
        }
        self.block(version, reason);
        self.last_operation = Some(Operation::now(Event::Recover, Some(version), false, reason));
    }

    /// The undo of a failed or interrupted activation is complete.
    pub fn undone(&mut self) {
        self.pending = None;
    }

    /// Record the intent to rename a verified release into place.
    pub fn begin_install(&mut self, installing: Installing) {
        self.installing = Some(installing);
    }

    /// The rename is done: the release is installed with the recorded sha256.
    pub fn installed(&mut self, version: &Version, sha256: &str, source: &str) {
        self.installing = None;
        self.record_release(version, sha256, source);
    }

    /// The decision for channel document `sequence` has been carried out.
    pub fn mark_followed(&mut self, sequence: u64) {
        if let Some(c) = self.channel.as_mut() {
            c.followed_sequence = c.followed_sequence.max(sequence);
        }
    }

    /// The end of an agent run: when it was, and the error it ended with.
    pub fn checked(&mut self, at: Timestamp, error: Option<String>) {
        self.last_check = Some(at);
        if error.is_none() {
            self.last_success = Some(at);
        }
        self.last_error = error;
    }

    /// What this poll decided (`Decision::name`).
    pub fn decided(&mut self, decision: &str) {
        self.last_decision = Some(decision.to_string());
    }
}

impl Operation {
    fn now(kind: Event, version: Option<&Version>, ok: bool, message: &str) -> Operation {
        Operation {
            kind,
            version: version.cloned(),
            at: Timestamp::now(),
            ok,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state file as the previous version wrote it, every field set.
    const OLD_STATE: &str = r#"{
  "previous": "1.0.0",
  "pinned": "1.1.0",
  "blocked": {
    "1.2.0": {
      "reason": "health check web failed: connection refused",
      "at": "2026-11-29T10:00:00Z"
    }
  },
  "releases": {
    "1.0.0": {
      "sha256": "aa",
      "installed_at": "2026-11-28T09:00:00Z",
      "source": "/tmp/a.tar.gz"
    },
    "1.1.0": {
      "sha256": "bb",
      "installed_at": "2026-11-29T09:00:00Z"
    }
  },
  "last_operation": {
    "kind": "recover",
    "version": "1.2.0",
    "at": "2026-11-29T10:00:00Z",
    "ok": false,
    "message": "activation of 1.2.0 was interrupted"
  },
  "pending": {
    "kind": "update",
    "version": "1.2.0",
    "previous": "1.1.0",
    "previous_link": "a1b2c3d",
    "started_at": "2026-11-29T10:00:00Z",
    "bake_until": "2026-11-29T10:05:00Z"
  },
  "channel": {
    "channel": "prod",
    "sequence": 7,
    "version": "1.2.0",
    "etag": "\"abc\"",
    "last_modified": "Sat, 29 Nov 2026 09:00:00 GMT",
    "followed_sequence": 6,
    "yanked": ["0.9.0"],
    "document": "{}",
    "signature": "sig"
  },
  "last_check": "2026-11-29T10:01:00Z",
  "last_error": "download failed",
  "last_health": {
    "kind": "health",
    "version": "1.1.0",
    "at": "2026-11-29T09:30:00Z",
    "ok": true,
    "message": "all checks passed"
  }
}
"#;

    #[test]
    fn a_state_file_of_the_previous_version_loads_and_writes_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        fs::write(&p, OLD_STATE).unwrap();
        let s = State::load(&p).unwrap();
        let pending = s.pending.as_ref().unwrap();
        assert_eq!(pending.kind, Some(Kind::Update));
        assert_eq!(
            pending.bake_until.unwrap().to_string(),
            "2026-11-29T10:05:00Z"
        );
        assert_eq!(s.last_operation.as_ref().unwrap().kind, Event::Recover);
        assert_eq!(s.last_health.as_ref().unwrap().kind, Event::Health);
        assert_eq!(s.releases[&"1.1.0".parse().unwrap()].source, "");
        // Every field is written back as it was read (the one missing `source` aside).
        let back: serde_json::Value = serde_json::to_value(&s).unwrap();
        let mut old: serde_json::Value = serde_json::from_str(OLD_STATE).unwrap();
        old["releases"]["1.1.0"]["source"] = "".into();
        assert_eq!(back, old);
    }

    #[test]
    fn pending_kind_table() {
        // (the `kind` of a pending activation as found on disk, as loaded, as written back)
        let cases = [
            (Some("\"deploy\""), Ok(Some(Kind::Deploy)), "deploy"),
            (Some("\"update\""), Ok(Some(Kind::Update)), "update"),
            (Some("\"rollback\""), Ok(Some(Kind::Rollback)), "rollback"),
            (Some("\"\""), Ok(None), ""),
            (None, Ok(None), ""),
            (Some("\"upgrade\""), Err("unknown activation kind"), ""),
        ];
        for (kind, want, written) in cases {
            let kind = kind.map(|k| format!(r#""kind": {k},"#)).unwrap_or_default();
            let json = format!(
                r#"{{{kind} "version": "1.0.0", "previous": null, "started_at": "2026-11-29T10:00:00Z"}}"#
            );
            let got = serde_json::from_str::<Pending>(&json).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(p), Ok(want)) => {
                    assert_eq!(p.kind, want, "{json}");
                    assert_eq!(serde_json::to_value(&p).unwrap()["kind"], written, "{json}");
                }
                (Err(e), Err(want)) => assert!(e.contains(want), "{json}: {e}"),
                (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
            }
        }
    }

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
