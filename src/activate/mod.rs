//! The deploy pipeline shared by push-mode `deploy`/`rollback` and the agent.
//!
//! Order matters for crash safety: a release directory appears only by renaming a
//! complete, fsynced staging tree; `current` only ever moves to such a directory; an
//! activation is recorded as pending in the state file *before* `current` moves, so a
//! run that finds a pending activation knows the previous process died mid-way and
//! rolls it back.
//!
//! The state is loaded once under the root lock and changed in memory through `State`'s
//! methods, which never write; the pipeline saves it where a crash must find it on
//! disk: after a release is recorded as installed, when an activation is pending
//! (before `current` moves), when it starts baking, when it ends, and after recovery.
//!
//! One concern per module: [`install`] (staging, unpack, rename into `releases/`),
//! [`hooks`] (the pre-activation check and the lifecycle hooks), [`switch`] (the activate / switch-back / bake
//! state machine), [`recover`] (a killed run's leftovers), [`prune`], [`journal`]
//! (`logs/releases.log` and the history), [`error`]. This file holds the [`Pipeline`]
//! they all extend and the push-mode `deploy` and `rollback`.

pub mod data;
pub mod error;
pub mod health;
mod hooks;
mod install;
mod journal;
pub mod main_process;
pub mod preflight;
pub(crate) mod process;
mod prune;
mod recover;
pub(crate) mod restarts;
pub mod services;
mod switch;

use serde::Serialize;

pub use crate::disk::state::Kind;
pub use error::DeployError;
pub use install::{InstallRequest, Installed};
pub use journal::LogLine;
pub use switch::Activated;

use crate::config::Config;
use crate::disk::history::Event;
use crate::disk::layout::AppRoot;
use crate::disk::lock::RootLock;
use crate::disk::order;
use crate::disk::releases;
use crate::disk::state::{State, HOLD_REASON};
use crate::fsutil;
use crate::registry::names::Version;
use error::io_err;

/// Operations on one app root under one config. Callers hold the root lock.
pub struct Pipeline<'a> {
    pub root: &'a AppRoot,
    pub config: &'a Config,
}

impl<'a> Pipeline<'a> {
    pub fn new(root: &'a AppRoot, config: &'a Config) -> Self {
        Pipeline { root, config }
    }

    /// Take the root lock (bounded wait), creating the layout if needed.
    pub async fn lock(&self) -> Result<RootLock, DeployError> {
        self.root
            .ensure()
            .map_err(io_err("cannot create app root layout", self.root.path()))?;
        let path = self.root.lock_file();
        let timeout = self.config.lock_timeout.0;
        fsutil::blocking(move || RootLock::acquire(&path, timeout))
            .await
            .map_err(DeployError::from)
    }

    pub fn load_state(&self) -> Result<State, DeployError> {
        Ok(State::load(&self.root.state_file())?)
    }

    /// Write the state file (atomically, fsynced) off the async workers.
    pub async fn save_state(&self, state: &State) -> Result<(), DeployError> {
        let state = state.clone();
        let path = self.root.state_file();
        Ok(fsutil::blocking(move || state.save(&path)).await?)
    }

    pub fn current(&self) -> Result<Option<Version>, DeployError> {
        self.root.current().map_err(io_err(
            "cannot read current link",
            &self.root.current_link(),
        ))
    }

    pub fn installed(&self) -> Result<Vec<Version>, DeployError> {
        self.root
            .installed()
            .map_err(io_err("cannot list releases", &self.root.releases()))
    }

    /// The installed releases, oldest first by this machine's order (`disk::order`):
    /// what "previous" and "newest" mean for rollback and prune.
    pub fn installed_oldest_first(&self, state: &State) -> Result<Vec<Version>, DeployError> {
        order::installed(self.root, state)
            .map_err(io_err("cannot list releases", &self.root.releases()))
    }

    /// The installed versions for a message, "none" when they cannot be listed.
    pub fn available(&self) -> String {
        list(&self.installed().unwrap_or_default())
    }
}

pub fn show(v: Option<&Version>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

/// The installed versions for a message: "1.0.0, 1.1.0", or "none".
fn list(installed: &[Version]) -> String {
    if installed.is_empty() {
        return "none".into();
    }
    installed
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `rollback` did: the activation, and the version it holds back (see
/// [`Pipeline::hold_back`]).
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    #[serde(flatten)]
    pub activated: Activated,
    /// The version rolled back from, now blocked here so the agent does not re-install
    /// it on its next run; None without an agent config (push mode has no channel).
    pub held_back: Option<Version>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub installed: Installed,
    pub activated: Activated,
}

/// The whole push-mode deploy: lock, recover, install, check, activate, prune.
pub async fn deploy(
    root: &AppRoot,
    config: &Config,
    req: InstallRequest,
) -> Result<DeployReport, DeployError> {
    let p = Pipeline::new(root, config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    p.recover(&mut state).await?;
    let version = req.version.clone();
    let installed = p.install(&mut state, req).await?;
    let checked = match p.preflight(&version).await {
        Ok(()) => p.pre_activate(&version).await,
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        if installed.fresh && !installed.replaced && p.current()?.as_ref() != Some(&version) {
            let (root, v) = (root.clone(), version.clone());
            let _ = fsutil::blocking(move || releases::remove_release(&root, &v)).await;
            state.forget_release(&version);
            p.save_state(&state).await?;
        }
        p.log(LogLine::Refused {
            version: &version,
            error: &e,
        });
        return Err(e);
    }
    let mut activated = p.activate(&mut state, &version, Kind::Deploy).await?;
    activated.pruned = p.prune(&state, config.keep, false).await?;
    Ok(DeployReport {
        installed,
        activated,
    })
}

/// Switch to an installed release (default: the previous one). With an agent config the
/// version rolled back from is held back, so the agent's next run does not undo this.
pub async fn rollback(
    root: &AppRoot,
    config: &Config,
    version: Option<Version>,
    force_data: bool,
) -> Result<RolledBack, DeployError> {
    let p = Pipeline::new(root, config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    // A rollback that was interrupted after `current` moved is finished by recovery;
    // running the same command again ends there, instead of stepping back once more.
    if let Some(done) = p.recover(&mut state).await? {
        if version.as_ref().is_none_or(|v| *v == done.version) {
            // Finishing an interrupted rollback holds nothing back: which version it
            // left is no longer known here.
            return done.result.map(|activated| RolledBack {
                activated,
                held_back: None,
            });
        }
    }
    let installed = p.installed_oldest_first(&state)?;
    let current = p.current()?;
    let target = rollback_target(
        &installed,
        current.as_ref(),
        state.previous.as_ref(),
        version,
    )?;
    // A config mistake refuses the rollback as it refuses a deploy: `current` stays.
    p.preflight(&target).await?;
    let reason = "rollback requested by the operator";
    let hook = |phase| hooks::HookRun {
        phase,
        version: Some(&target),
        previous: current.as_ref(),
        reason: Some(reason),
        shipped_by: current.as_ref(),
    };
    // Rollback hooks are reported (log, history) and never stop the rollback.
    p.run_hooks_reported(&hook(hooks::Phase::PreRollback)).await;
    // Back across a data epoch: the data goes back first (or the rollback is refused).
    p.restore_for(&state, current.as_ref(), &target, force_data)
        .await?;
    let activated = p.activate(&mut state, &target, Kind::Rollback).await?;
    p.run_hooks_reported(&hook(hooks::Phase::PostRollback))
        .await;
    let held_back = p.hold_back(&mut state, current.as_ref(), &target).await?;
    Ok(RolledBack {
        activated,
        held_back,
    })
}

impl Pipeline<'_> {
    /// After an operator's rollback from `from` to `to` on an agent's root: block `from`
    /// (reason [`HOLD_REASON`]) so the next poll does not re-install the channel's
    /// version, and lift such a hold from `to`, which the operator just chose to run. A
    /// root without an agent config follows no channel: nothing to hold.
    async fn hold_back(
        &self,
        state: &mut State,
        from: Option<&Version>,
        to: &Version,
    ) -> Result<Option<Version>, DeployError> {
        if self.config.registry.is_none() {
            return Ok(None);
        }
        let lifted = state.blocked.get(to).is_some_and(|b| b.is_hold());
        if lifted {
            state.unblock(to);
        }
        let held = from.filter(|f| *f != to).cloned();
        if let Some(f) = &held {
            state.block(f, HOLD_REASON);
        }
        if lifted || held.is_some() {
            self.save_state(state).await?;
        }
        if lifted {
            self.history(
                Event::Unblock,
                Some(to),
                true,
                "hold lifted: rolled back to it",
            );
        }
        if let Some(f) = &held {
            self.history(Event::Blocked, Some(f), true, HOLD_REASON);
        }
        Ok(held)
    }
}

/// Which release `rollback` goes to: the one asked for if installed; else the recorded
/// previous release if still installed and not current; else the release just before
/// current in `installed` (oldest first, by `disk::order`), or the newest one when
/// current is none of them.
pub fn rollback_target(
    installed: &[Version],
    current: Option<&Version>,
    previous: Option<&Version>,
    requested: Option<Version>,
) -> Result<Version, DeployError> {
    if let Some(v) = requested {
        if !installed.contains(&v) {
            return Err(DeployError::NotFound {
                version: v,
                available: list(installed),
            });
        }
        return Ok(v);
    }
    let prev = previous
        .filter(|v| installed.contains(v) && Some(*v) != current)
        .cloned();
    // Without a recorded previous, take the release installed before current.
    let fallback = || match current.and_then(|c| installed.iter().position(|v| v == c)) {
        Some(at) => at.checked_sub(1).map(|i| installed[i].clone()),
        None => installed.last().cloned(),
    };
    prev.or_else(fallback)
        .ok_or_else(|| DeployError::NoPrevious {
            available: list(installed),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// (installed, current, previous, requested, the target or the error's text)
    type Case<'a> = (
        &'a [Version],
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Result<&'a str, &'a str>,
    );

    #[test]
    fn rollback_target_table() {
        let installed = [v("1.0.0"), v("1.1.0"), v("1.2.0")];
        let cases: Vec<Case<'_>> = vec![
            (&installed, Some("1.2.0"), Some("1.0.0"), None, Ok("1.0.0")),
            // No previous recorded: the newest older than current.
            (&installed, Some("1.2.0"), None, None, Ok("1.1.0")),
            // The recorded previous is current (a rollback was rolled back): fall back.
            (&installed, Some("1.1.0"), Some("1.1.0"), None, Ok("1.0.0")),
            // The recorded previous was pruned: fall back.
            (&installed, Some("1.2.0"), Some("0.9.0"), None, Ok("1.1.0")),
            // The previous may be newer than current (after a rollback).
            (&installed, Some("1.0.0"), Some("1.2.0"), None, Ok("1.2.0")),
            (&installed, Some("1.0.0"), None, None, Err("no release to roll back to (installed: 1.0.0, 1.1.0, 1.2.0); pass --version to choose one")),
            // No current (unmanaged or removed): the newest installed.
            (&installed, None, None, None, Ok("1.2.0")),
            (&[], None, None, None, Err("no release to roll back to (installed: none); pass --version to choose one")),
            // Asked for: any installed release, even current.
            (&installed, Some("1.2.0"), Some("1.0.0"), Some("1.1.0"), Ok("1.1.0")),
            (&installed, Some("1.2.0"), None, Some("1.2.0"), Ok("1.2.0")),
            (&installed, Some("1.2.0"), None, Some("2.0.0"), Err("release not found: 2.0.0 is not installed; available releases: 1.0.0, 1.1.0, 1.2.0")),
        ];
        // Labels, oldest first as `disk::order` gives them: "previous" is the one
        // installed before current, never the one before it in the alphabet.
        let labels = [v("fff0000"), v("abc1234"), v("20261129000000")];
        let mixed = [v("abc1234"), v("1.0.0"), v("1.1.0")];
        let label_cases: Vec<Case<'_>> = vec![
            (&labels, Some("20261129000000"), None, None, Ok("abc1234")),
            (&labels, Some("abc1234"), None, None, Ok("fff0000")),
            (&labels, Some("fff0000"), None, None, Err("no release to roll back to (installed: fff0000, abc1234, 20261129000000); pass --version to choose one")),
            (&labels, None, None, None, Ok("20261129000000")),
            (&labels, Some("20261129000000"), Some("fff0000"), None, Ok("fff0000")),
            (&labels, Some("abc1234"), None, Some("20261129000000"), Ok("20261129000000")),
            (&labels, Some("abc1234"), None, Some("1234567"), Err("release not found: 1234567 is not installed; available releases: fff0000, abc1234, 20261129000000")),
            // A seed-era hash directory before updraft's first semantic release.
            (&mixed, Some("1.0.0"), None, None, Ok("abc1234")),
            (&mixed, Some("1.1.0"), None, None, Ok("1.0.0")),
        ];
        for (installed, current, previous, requested, want) in cases.into_iter().chain(label_cases)
        {
            let current = current.map(v);
            let previous = previous.map(v);
            let got = rollback_target(
                installed,
                current.as_ref(),
                previous.as_ref(),
                requested.map(v),
            )
            .map(|v| v.to_string())
            .map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map(String::from).map_err(String::from),
                "current={current:?} previous={previous:?} requested={requested:?}"
            );
        }
    }
}
