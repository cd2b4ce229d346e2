//! The activation state machine: record the activation as pending, switch `current`,
//! restart, check health and bake; on failure switch back (to the previous release, to
//! what `current` pointed at before if that was no release of ours, or to nothing),
//! restart that, and block the failed version.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use super::error::{io_err, ActivationFailure, DeployError};
use super::hooks::{HookRun, Phase};
use super::journal::LogLine;
use super::restarts::RestartWatch;
use super::services::{self, ServiceOutcome};
use super::{health, show, Pipeline};
use crate::disk::state::{Kind, State};
use crate::failpoint;
use crate::fsutil;
use crate::registry::names::Version;
use crate::time::Timestamp;

#[derive(Debug, Clone, Serialize)]
pub struct Activated {
    pub version: Version,
    pub previous: Option<Version>,
    pub services: ServiceOutcome,
    pub pruned: Vec<Version>,
}

/// Where `current` goes when an activation is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restore<'a> {
    /// The release that was current before.
    Release(&'a Version),
    /// The raw target `current` had when that was no release of ours.
    Unmanaged(&'a str),
    /// No `current` at all: better none than an unhealthy one.
    Nothing,
}

fn restore_target<'a>(
    previous: Option<&'a Version>,
    previous_link: Option<&'a str>,
) -> Restore<'a> {
    match (previous, previous_link) {
        (Some(p), _) => Restore::Release(p),
        (None, Some(raw)) => Restore::Unmanaged(raw),
        (None, None) => Restore::Nothing,
    }
}

/// The regular files directly in `src`, written atomically into `dst`.
fn copy_files(src: &Path, dst: &Path) -> Result<(), DeployError> {
    let Ok(rd) = fs::read_dir(src) else {
        return Ok(());
    };
    fs::create_dir_all(dst).map_err(io_err("cannot create commands directory", dst))?;
    for entry in rd.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if !ft.is_file() {
            continue;
        }
        let bytes = fs::read(entry.path()).map_err(io_err("cannot read command", &entry.path()))?;
        let to = dst.join(entry.file_name());
        fsutil::write_atomic(&to, &bytes, 0o755).map_err(io_err("cannot write command", &to))?;
    }
    Ok(())
}

impl Pipeline<'_> {
    /// The target of `current` when it points at something that is no release of ours
    /// (a directory whose name is no version, such as `my build`), so a failed activation can put
    /// it back instead of leaving the app with no `current` at all.
    /// The raw target of `current`, whatever it names (None: no link).
    pub(super) fn raw_current(&self) -> Option<String> {
        fs::read_link(self.root.current_link())
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }

    fn unmanaged_current(&self) -> Option<String> {
        let target = fs::read_link(self.root.current_link()).ok()?;
        let resolved = self.root.releases().join(&target);
        resolved
            .is_dir()
            .then(|| target.to_string_lossy().into_owned())
    }

    /// Undo a switch: back to the previous release, else to the unmanaged target
    /// `current` had, else no `current` at all. Says which, for the operator.
    pub(super) async fn switch_back(
        &self,
        previous: Option<&Version>,
        previous_link: Option<&str>,
    ) -> Result<String, DeployError> {
        match restore_target(previous, previous_link) {
            Restore::Release(p) => {
                self.switch_to(Some(p)).await?;
                Ok(format!("switched back to {p}"))
            }
            Restore::Unmanaged(raw) => {
                let link = self.root.current_link();
                let target = PathBuf::from(raw);
                fsutil::blocking(move || {
                    fsutil::replace_symlink(&link, &target)
                        .map_err(io_err("cannot switch current link", &link))
                })
                .await?;
                Ok(format!(
                    "switched back to {raw} (a release updraft did not install)"
                ))
            }
            Restore::Nothing => {
                self.switch_to(None).await?;
                Ok("removed the current link (there was no previous release)".into())
            }
        }
    }

    /// Point `current` at `version`, or remove it when there is nothing to point at
    /// (a first release that failed: better no current than an unhealthy one).
    async fn switch_to(&self, version: Option<&Version>) -> Result<(), DeployError> {
        let link = self.root.current_link();
        let target = version.map(|v| self.root.link_target(v));
        let releases = self.root.releases();
        fsutil::blocking(move || match target {
            Some(t) => fsutil::replace_symlink(&link, &t)
                .map_err(io_err("cannot switch current link", &link)),
            None => match fs::remove_file(&link) {
                Ok(()) => fsutil::fsync_dir(&releases)
                    .map_err(io_err("cannot sync releases directory", &link)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("cannot remove current link", &link)(e)),
            },
        })
        .await
    }

    /// Copy the release's `commands/` scripts into `<root>/commands` (the seed's habit),
    /// each file atomically; symlinks and subdirectories are skipped.
    async fn copy_commands(&self, version: &Version) -> Result<(), DeployError> {
        let src = self.root.release_dir(version).join("commands");
        let dst = self.root.commands();
        fsutil::blocking(move || copy_files(&src, &dst)).await
    }

    /// Switch to `version`, restart, check health (and bake). On failure switch back,
    /// restart the old release, and (for new releases) block the version.
    pub async fn activate(
        &self,
        state: &mut State,
        version: &Version,
        kind: Kind,
    ) -> Result<Activated, DeployError> {
        let previous = self.current()?;
        let previous_link = match previous {
            Some(_) => None,
            None => self.unmanaged_current(),
        };
        // A release that raises the data epoch may migrate `data/`: keep it as it is.
        let snapshot = self
            .snapshot_before(state, previous.as_ref(), version)
            .await?;
        state.begin_activation(kind, version, previous.as_ref(), previous_link.as_deref());
        if snapshot {
            state.pending_data_snapshot();
        }
        // Crash safety: the pending activation is on disk before `current` moves.
        self.save_state(state).await?;
        failpoint::hit("activate.pending");
        self.switch_to(Some(version)).await?;
        failpoint::hit("activate.switched");
        info!(%version, previous = %show(previous.as_ref()), "switched current");
        self.complete(state, kind, version, previous, previous_link)
            .await
    }

    /// The rest of an activation once `current` points at `version` (also what
    /// recovery runs to finish an interrupted rollback): restart, health, bake; then
    /// commit, or undo.
    ///
    /// The pending activation is cleared by the last save, after the log and the
    /// history are written: a kill before that leaves it for the next run to finish,
    /// so no kill point lies between "done on disk" and "done for the operator".
    pub(super) async fn complete(
        &self,
        state: &mut State,
        kind: Kind,
        version: &Version,
        previous: Option<Version>,
        previous_link: Option<String>,
    ) -> Result<Activated, DeployError> {
        let env = self.env(Some(version), previous.as_ref());
        let result = self.bring_up(version, &previous, &env, state).await;
        match result {
            Ok(outcome) => {
                let msg = format!(
                    "{version} active ({outcome:?}, previous {})",
                    show(previous.as_ref())
                );
                state.activation_succeeded(kind, version, previous.as_ref(), &msg);
                state.set_link(self.raw_current());
                self.log(LogLine::Activated {
                    kind,
                    version,
                    previous: previous.as_ref(),
                    services: outcome,
                });
                self.history(kind.into(), Some(version), true, &msg);
                failpoint::hit("activate.done");
                self.save_state(state).await?;
                Ok(Activated {
                    version: version.clone(),
                    previous,
                    services: outcome,
                    pruned: Vec::new(),
                })
            }
            Err(failure) => {
                let reason = failure.to_string();
                let restore = state.pending.as_ref().is_some_and(|p| p.data_snapshot);
                warn!(%version, "activation failed: {reason}; switching back to {}", show(previous.as_ref()));
                // Blocked, and marked as an undo, before `current` moves back.
                state.activation_failed(kind, version, &reason);
                self.save_state(state).await?;
                failpoint::hit("activate.undo");
                let back = |phase| HookRun {
                    phase,
                    version: previous.as_ref(),
                    previous: Some(version),
                    reason: Some(&reason),
                    shipped_by: Some(version),
                };
                let mut notes = self.run_hooks_reported(&back(Phase::PreRollback)).await;
                // The old code must not start on data the new one migrated.
                let data_note = if restore {
                    match self.restore_snapshot(version).await {
                        Ok(note) => note,
                        Err(e) => format!(" (but {e})"),
                    }
                } else {
                    String::new()
                };
                let mut restored = self
                    .switch_back(previous.as_ref(), previous_link.as_deref())
                    .await?;
                restored.push_str(&data_note);
                failpoint::hit("activate.switched-back");
                restored.push_str(
                    &self
                        .bring_back(previous.as_ref(), previous_link.is_some(), version)
                        .await,
                );
                failpoint::hit("activate.brought-back");
                notes.push_str(&self.run_hooks_reported(&back(Phase::PostRollback)).await);
                let failed = HookRun {
                    phase: Phase::OnFailure,
                    version: Some(version),
                    previous: previous.as_ref(),
                    reason: Some(&reason),
                    shipped_by: Some(version),
                };
                notes.push_str(&self.run_hooks_reported(&failed).await);
                restored.push_str(&notes);
                self.log(LogLine::Failed {
                    kind,
                    version,
                    reason: &reason,
                    restored: &restored,
                });
                self.history(kind.into(), Some(version), false, &reason);
                failpoint::hit("activate.failed");
                state.undone();
                state.set_link(self.raw_current());
                self.save_state(state).await?;
                if kind.blocks_on_failure() {
                    Err(DeployError::RolledBack {
                        version: version.clone(),
                        reason: Box::new(failure),
                        restored,
                    })
                } else {
                    Err(DeployError::RollbackFailed {
                        version: version.clone(),
                        reason: Box::new(failure),
                        restored: show(previous.as_ref()),
                    })
                }
            }
        }
    }

    /// Restart the release we switched back to and confirm its health, so the
    /// operator learns whether the machine is serving at all. Returns a note for messages.
    /// Restart and re-check what `current` was switched back to: a release of ours,
    /// or (`unmanaged`) one updraft did not install.
    pub(super) async fn bring_back(
        &self,
        restored: Option<&Version>,
        unmanaged: bool,
        failed: &Version,
    ) -> String {
        if restored.is_none() && !unmanaged {
            return String::new();
        }
        let env = self.env(restored, Some(failed));
        match services::restart(&self.config.services, &env).await {
            Err(e) => format!(" (but restarting it failed: {e})"),
            Ok(_) => match health::run_checks(&self.config.health, &env).await {
                Ok(_) if !self.config.health.is_empty() => " (healthy)".into(),
                Ok(_) => String::new(),
                Err(e) => format!(" (but it is not healthy either: {e})"),
            },
        }
    }

    async fn bring_up(
        &self,
        version: &Version,
        previous: &Option<Version>,
        env: &[(String, String)],
        state: &mut State,
    ) -> Result<ServiceOutcome, ActivationFailure> {
        self.copy_commands(version).await?;
        failpoint::hit("activate.commands");
        let outcome = services::restart(&self.config.services, env).await?;
        failpoint::hit("activate.restarted");
        let restarts = match outcome {
            ServiceOutcome::Skipped => None,
            _ => RestartWatch::start(&self.config.services, env).await,
        };
        health::run_checks(&self.config.health, env).await?;
        if let Some(r) = &restarts {
            r.check(env).await?;
        }
        failpoint::hit("activate.healthy");
        let hook = HookRun {
            phase: Phase::PostActivate,
            version: Some(version),
            previous: previous.as_ref(),
            reason: None,
            shipped_by: Some(version),
        };
        self.run_hooks(&hook)
            .await
            .map_err(ActivationFailure::PostActivate)?;
        let bake = self.config.bake.0;
        if bake > Duration::ZERO && (!self.config.health.is_empty() || restarts.is_some()) {
            state.baking_until(Timestamp::from(std::time::SystemTime::now() + bake));
            self.save_state(state).await?;
            failpoint::hit("activate.baking");
            info!(%version, ?bake, "baking: health checks keep running");
            let every = self
                .config
                .health
                .iter()
                .map(|h| h.interval.0)
                .min()
                .unwrap_or(Duration::from_secs(1));
            health::watch(&self.config.health, restarts.as_ref(), env, bake, every)
                .await
                .map_err(ActivationFailure::Bake)?;
            failpoint::hit("activate.baked");
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_target_table() {
        let v: Version = "1.0.0".parse().unwrap();
        let cases = [
            (Some(&v), None, Restore::Release(&v)),
            // A recorded previous release wins over a raw link (never both in practice).
            (Some(&v), Some("a1b2c3d"), Restore::Release(&v)),
            (None, Some("a1b2c3d"), Restore::Unmanaged("a1b2c3d")),
            (None, None, Restore::Nothing),
        ];
        for (previous, link, want) in cases {
            assert_eq!(
                restore_target(previous, link),
                want,
                "{previous:?} {link:?}"
            );
        }
    }

    #[test]
    fn only_new_releases_are_blocked_on_failure() {
        let cases = [
            (Kind::Deploy, "deploy", true),
            (Kind::Update, "update", true),
            (Kind::Rollback, "rollback", false),
        ];
        for (kind, name, blocks) in cases {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.blocks_on_failure(), blocks, "{name}");
        }
    }
}
