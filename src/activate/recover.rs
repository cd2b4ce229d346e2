//! Crash recovery: what a run finds left by one that was killed, reconciled before it
//! does anything else. Every step that changes something visible records its intent in
//! the state first (a release about to be renamed into place, an activation about to
//! move `current`, an undo under way), so a run that finds one knows what the killed
//! run was doing and completes it when that is safe, or undoes it:
//! - temporary files and staging trees are removed;
//! - a release renamed into place with its recorded sha256 is recorded as installed;
//! - an interrupted rollback (or pin) is finished, not repeated;
//! - a new release whose health was never confirmed is rolled back and blocked, and
//!   the block is saved before `current` moves back, so a kill during recovery leaves
//!   an undo that the next run finishes;
//! - `current` moved by another tool is noticed and `previous` kept right.
//!
//! Each is said in the log and the history.

use tracing::{info, warn};

use super::error::{io_err, DeployError};
use super::hooks::{HookRun, Phase};
use super::journal::LogLine;
use super::switch::Activated;
use super::Pipeline;
use crate::disk::history::Event;
use crate::disk::releases;
use crate::disk::state::{Installing, Kind, Pending, State};
use crate::failpoint;
use crate::fsutil;
use crate::registry::names::Version;

/// What to do with an activation a killed run left pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// Drop the record: `current` never reached the release (the run died before the
    /// switch).
    Forget,
    /// `current` points at a new release whose health was never confirmed: block it,
    /// switch back, restart what ran before.
    RollBack,
    /// `current` already went back (an undo was under way): restart what ran before
    /// and re-check it, then drop the record.
    BringBack,
    /// `current` points at the target of a rollback (or pin), an operator's choice:
    /// finish the activation (restart, health, bake) instead of rolling back again.
    Finish,
}

fn recovery(pending: &Pending, current: Option<&Version>) -> Recovery {
    // State files from before `kind` was recorded have none: treat as a new release.
    let blocks = pending.kind.is_none_or(Kind::blocks_on_failure);
    let switched = current == Some(&pending.version);
    match (pending.undo, switched, blocks) {
        (true, true, _) => Recovery::RollBack,
        (true, false, _) => Recovery::BringBack,
        (false, true, true) => Recovery::RollBack,
        (false, true, false) => Recovery::Finish,
        (false, false, _) => Recovery::Forget,
    }
}

/// What recovery did with an interrupted rollback (or pin), for the command that runs
/// after it: a re-run of that rollback ends here instead of stepping back again.
pub struct Finished {
    pub version: Version,
    pub result: Result<Activated, DeployError>,
}

impl Pipeline<'_> {
    /// Finish what a killed run left (see the module documentation). Returns the
    /// outcome of an interrupted rollback it finished.
    pub async fn recover(&self, state: &mut State) -> Result<Option<Finished>, DeployError> {
        let root = self.root.clone();
        let removed = fsutil::blocking(move || {
            super::data::clean_leftovers(&root);
            releases::clean_leftovers(&root)
        })
        .await
        .map_err(io_err(
            "cannot remove what an interrupted run left",
            self.root.path(),
        ))?;
        for p in removed.removed {
            info!(path = %p.display(), "removed a temporary file or staging directory an interrupted run left");
        }
        for (p, e) in removed.stuck {
            warn!(
                path = %p.display(),
                error = %e,
                "cannot remove a leftover of an interrupted run; it is out of the way and retried on every run (remove it by hand if this repeats: an immutable file or a mount inside it blocks removal)"
            );
        }
        // Saved only when recovery changed something: most runs find nothing to do, and
        // a no-change poll should not pay for a write and two fsyncs here (the caller
        // saves how its run ended anyway).
        let had_work = state.installing.is_some() || state.pending.is_some();
        let link_before = state.link.clone();
        if let Some(i) = state.installing.clone() {
            self.reconcile_install(state, &i).await?;
        }
        let finished = match state.pending.clone() {
            Some(pending) => self.reconcile_activation(state, pending).await?,
            None => None,
        };
        if state.pending.is_none() {
            self.notice_moved_current(state);
        }
        if had_work || state.link != link_before {
            self.save_state(state).await?;
        }
        Ok(finished)
    }

    /// A release was about to be renamed into place: if the tree under its name is
    /// the one that was verified (same device and inode), record it as installed.
    async fn reconcile_install(
        &self,
        state: &mut State,
        i: &Installing,
    ) -> Result<(), DeployError> {
        let dir = self.root.releases().join(&i.dir);
        let ours = releases::identity(&dir).ok() == Some((i.dev, i.ino));
        if ours {
            state.installed(&i.version, &i.sha256, &i.source);
            let msg = format!(
                "the install of {} was interrupted after it was renamed into place; recorded it as installed (sha256 {})",
                i.version, i.sha256
            );
            info!(version = %i.version, "{msg}");
            self.history(Event::Recover, Some(&i.version), true, &msg);
        } else {
            state.installing = None;
            info!(version = %i.version, "the install of {} was interrupted before it was renamed into place; nothing was installed", i.version);
        }
        self.save_state(state).await
    }

    async fn reconcile_activation(
        &self,
        state: &mut State,
        pending: Pending,
    ) -> Result<Option<Finished>, DeployError> {
        let current = self.current()?;
        let version = pending.version.clone();
        match recovery(&pending, current.as_ref()) {
            Recovery::Forget => {
                info!(%version, "an activation of {version} was interrupted before `current` moved; nothing to undo");
                state.undone();
                Ok(None)
            }
            Recovery::Finish => {
                warn!(%version, "a rollback to {version} was interrupted after `current` moved; finishing it");
                let kind = pending.kind.unwrap_or(Kind::Rollback);
                let result = self
                    .complete(
                        state,
                        kind,
                        &version,
                        pending.previous.clone(),
                        pending.previous_link.clone(),
                    )
                    .await;
                if let Err(e) = &result {
                    warn!("finishing the interrupted rollback failed: {e}");
                }
                Ok(Some(Finished { version, result }))
            }
            Recovery::RollBack | Recovery::BringBack => {
                let reason = format!(
                    "activation of {version} was interrupted before its health checks passed (process or machine died)"
                );
                if !pending.undo {
                    warn!(%version, "{reason}; rolling back");
                    // Blocked and marked as an undo before `current` moves back.
                    state.recovered(&version, &reason);
                    self.save_state(state).await?;
                    failpoint::hit("recover.undo");
                } else {
                    warn!(%version, "undoing the activation of {version} was interrupted; finishing the undo");
                }
                let hook = |phase| HookRun {
                    phase,
                    version: pending.previous.as_ref(),
                    previous: Some(&version),
                    reason: Some(&reason),
                    shipped_by: Some(&version),
                };
                let mut what = String::new();
                // The old code must not start on data the new one may have migrated;
                // restoring is repeated in full if a restore was interrupted.
                let data_note = if pending.data_snapshot {
                    match self.restore_snapshot(&version).await {
                        Ok(note) => note,
                        Err(e) => {
                            warn!("{e}");
                            format!(" (but {e})")
                        }
                    }
                } else {
                    String::new()
                };
                if current.as_ref() == Some(&version) {
                    let note = self.run_hooks_reported(&hook(Phase::PreRollback)).await;
                    what = self
                        .switch_back(pending.previous.as_ref(), pending.previous_link.as_deref())
                        .await?;
                    what.push_str(&note);
                    failpoint::hit("recover.switched-back");
                }
                let how = self
                    .bring_back(
                        pending.previous.as_ref(),
                        pending.previous_link.is_some(),
                        &version,
                    )
                    .await;
                failpoint::hit("recover.brought-back");
                let mut notes = self.run_hooks_reported(&hook(Phase::PostRollback)).await;
                let failed = HookRun {
                    phase: Phase::OnFailure,
                    version: Some(&version),
                    previous: pending.previous.as_ref(),
                    reason: Some(&reason),
                    shipped_by: Some(&version),
                };
                notes += &self.run_hooks_reported(&failed).await;
                info!("{what}{data_note}{how}{notes}");
                self.log(LogLine::Recovered {
                    version: &version,
                    restored: pending.previous.as_ref(),
                });
                self.history(Event::Recover, Some(&version), false, &reason);
                failpoint::hit("recover.done");
                state.undone();
                state.set_link(self.raw_current());
                Ok(None)
            }
        }
    }

    /// `current` as found against where updraft left it: a move by another tool is
    /// recorded (log, history) and `previous` set to the release it moved away from.
    fn notice_moved_current(&self, state: &mut State) {
        let link = self.raw_current();
        let Some(moved) = state.observe_link(link.as_deref()) else {
            return;
        };
        let to = moved.to.as_deref().unwrap_or("nothing");
        let msg = format!(
            "current was moved outside updraft from {} to {to}; previous is now {}",
            moved.from,
            super::show(moved.previous.as_ref())
        );
        warn!("{msg}");
        self.log(LogLine::Moved {
            from: &moved.from,
            to,
        });
        self.history(Event::Moved, None, true, &msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_table() {
        use Recovery::*;
        let v1: Version = "1.0.0".parse().unwrap();
        let v2: Version = "1.1.0".parse().unwrap();
        let pending = |kind: Option<Kind>, undo: bool| Pending {
            kind,
            version: v2.clone(),
            previous: Some(v1.clone()),
            previous_link: None,
            started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            bake_until: None,
            undo,
            data_snapshot: false,
        };
        // (pending kind, undo under way, current, what recovery does)
        let cases = [
            (Some(Kind::Deploy), false, Some(&v2), RollBack),
            (Some(Kind::Update), false, Some(&v2), RollBack),
            // Written before `kind` was recorded.
            (None, false, Some(&v2), RollBack),
            // Died before `current` moved.
            (Some(Kind::Deploy), false, Some(&v1), Forget),
            (Some(Kind::Update), false, None, Forget),
            // A rollback that reached its target is finished, not undone or repeated.
            (Some(Kind::Rollback), false, Some(&v2), Finish),
            (Some(Kind::Rollback), false, Some(&v1), Forget),
            // An undo under way: finish it, wherever it stopped.
            (Some(Kind::Update), true, Some(&v2), RollBack),
            (Some(Kind::Update), true, Some(&v1), BringBack),
            (Some(Kind::Deploy), true, None, BringBack),
            (Some(Kind::Rollback), true, Some(&v2), RollBack),
            (Some(Kind::Rollback), true, Some(&v1), BringBack),
        ];
        for (kind, undo, current, want) in cases {
            assert_eq!(
                recovery(&pending(kind, undo), current),
                want,
                "kind={kind:?} undo={undo} current={current:?}"
            );
        }
    }
}
