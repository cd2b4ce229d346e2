//! Lifecycle hooks: the pre-activation check, `[hooks]` (post_activate, pre_rollback,
//! post_rollback, on_failure) and the `hooks/<phase>` executables a release may ship,
//! all run one way: bounded by `services.timeout`, killed with their process group,
//! with the same `UPDRAFT_*` environment, and their output kept in the history.
//!
//! A failing pre_activate refuses the release; a failing post_activate fails the
//! activation (it is rolled back and blocked); a failing rollback or on_failure hook is
//! reported and never stops the rollback it belongs to.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use tracing::{info, warn};

use super::error::{DeployError, HookFailure};
use super::process::{self, RunError};
use super::Pipeline;
use crate::disk::history::Event;
use crate::registry::names::Version;

/// When a hook runs: its config key, and the file name a release ships it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreActivate,
    PostActivate,
    PreRollback,
    PostRollback,
    OnFailure,
}

impl Phase {
    /// The config key, and `UPDRAFT_PHASE`.
    pub fn key(self) -> &'static str {
        match self {
            Phase::PreActivate => "pre_activate",
            Phase::PostActivate => "post_activate",
            Phase::PreRollback => "pre_rollback",
            Phase::PostRollback => "post_rollback",
            Phase::OnFailure => "on_failure",
        }
    }

    /// `hooks/<file>` in a release.
    pub fn file(self) -> &'static str {
        match self {
            Phase::PreActivate => "pre-activate",
            Phase::PostActivate => "post-activate",
            Phase::PreRollback => "pre-rollback",
            Phase::PostRollback => "post-rollback",
            Phase::OnFailure => "on-failure",
        }
    }
}

/// What one phase is about, for its environment.
#[derive(Debug, Clone, Copy)]
pub(super) struct HookRun<'a> {
    pub phase: Phase,
    /// `UPDRAFT_VERSION` / `UPDRAFT_RELEASE_DIR`: the release `current` points at (or
    /// goes to) once the operation is done; for on_failure, the release that failed.
    pub version: Option<&'a Version>,
    /// `UPDRAFT_PREVIOUS_VERSION`: the release the operation leaves.
    pub previous: Option<&'a Version>,
    /// `UPDRAFT_REASON`: why (a failure, a recovery, an operator's rollback).
    pub reason: Option<&'a str>,
    /// Whose `hooks/<phase>` runs (with `release_hooks`): the release being activated,
    /// or for the rollback phases and on_failure the release being left, which knows
    /// what it changed.
    pub shipped_by: Option<&'a Version>,
}

impl Pipeline<'_> {
    /// Run the configured pre-activation check inside the (not yet active) release.
    /// Refuse (as a config error) an activation whose commands cannot run; see
    /// `preflight`.
    pub async fn preflight(&self, version: &Version) -> Result<(), DeployError> {
        let mut problems =
            super::preflight::check(self.config, self.root, &self.root.release_dir(version));
        problems.extend(
            super::preflight::unit_problems(self.config, self.config.services.timeout.0).await,
        );
        if problems.is_empty() {
            return Ok(());
        }
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Err(DeployError::Config {
            version: version.clone(),
            problems: problems.join("; "),
        })
    }

    pub async fn pre_activate(&self, version: &Version) -> Result<(), DeployError> {
        let run = HookRun {
            phase: Phase::PreActivate,
            version: Some(version),
            previous: None,
            reason: None,
            shipped_by: Some(version),
        };
        self.run_hooks(&run)
            .await
            .map_err(|reason| DeployError::PreActivate {
                version: version.clone(),
                reason,
            })
    }

    /// The configured argv of a phase.
    fn configured(&self, phase: Phase) -> &[String] {
        let h = &self.config.hooks;
        match phase {
            Phase::PreActivate => &self.config.pre_activate,
            Phase::PostActivate => &h.post_activate,
            Phase::PreRollback => &h.pre_rollback,
            Phase::PostRollback => &h.post_rollback,
            Phase::OnFailure => &h.on_failure,
        }
    }

    /// The executable `hooks/<phase>` of `release`, when release hooks are on.
    fn shipped(&self, phase: Phase, release: Option<&Version>) -> Option<PathBuf> {
        if !self.config.hooks.release_hooks {
            return None;
        }
        let path = self
            .root
            .release_dir(release?)
            .join("hooks")
            .join(phase.file());
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() {
            return None;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            warn!(path = %path.display(), "release hook is not executable; skipped (chmod +x it in the release)");
            return None;
        }
        Some(path)
    }

    /// Run a phase: the configured command, then the release's own hook. Stops at the
    /// first failure and returns it; each run is recorded in the history.
    pub(super) async fn run_hooks(&self, run: &HookRun<'_>) -> Result<(), HookFailure> {
        let dir = run
            .version
            .or(run.shipped_by)
            .map(|v| self.root.release_dir(v))
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| self.root.path().to_path_buf());
        let dir_s = dir.display().to_string();
        let mut commands: Vec<Vec<String>> = Vec::new();
        let configured = self.configured(run.phase);
        if !configured.is_empty() {
            commands.push(
                configured
                    .iter()
                    .map(|a| a.replace("{release}", &dir_s))
                    .collect(),
            );
        }
        if let Some(path) = self.shipped(run.phase, run.shipped_by) {
            commands.push(vec![path.display().to_string()]);
        }
        if commands.is_empty() {
            return Ok(());
        }
        let env = self.hook_env(run);
        for argv in commands {
            let command = argv.join(" ");
            let result =
                process::run_in(&argv, &env, self.config.services.timeout.0, Some(&dir)).await;
            let (ok, message, failure) = match result {
                Ok(f) if f.status.success() => (
                    true,
                    format!("{} `{command}` succeeded{}", run.phase.key(), output(&f)),
                    None,
                ),
                Ok(f) => (
                    false,
                    format!(
                        "{} `{command}` {}{}",
                        run.phase.key(),
                        process::describe(f.status),
                        output(&f)
                    ),
                    Some(HookFailure::Exited {
                        command: command.clone(),
                        status: f.status,
                        // What it said on stderr, else on stdout.
                        stderr: Some(tail(&f.stderr))
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| tail(&f.stdout)),
                    }),
                ),
                Err(e) => {
                    let message = format!("{} `{command}`: {e}", run.phase.key());
                    let failure = match e {
                        RunError::TimedOut { .. } => HookFailure::TimedOut { command },
                        RunError::Spawn { source, .. } | RunError::Wait { source, .. } => {
                            HookFailure::Spawn { command, source }
                        }
                        RunError::Empty => HookFailure::Spawn {
                            command,
                            source: std::io::Error::other("empty command"),
                        },
                    };
                    (false, message, Some(failure))
                }
            };
            if ok {
                info!("{message}");
            } else {
                warn!("{message}");
            }
            self.history(Event::Hook, run.version.or(run.shipped_by), ok, &message);
            if let Some(f) = failure {
                return Err(f);
            }
        }
        Ok(())
    }

    /// Run a phase whose failure must not stop what it accompanies (the rollback
    /// phases, on_failure): a failure is logged, recorded, and returned as a note for
    /// the operation's message ("" when all went well).
    pub(super) async fn run_hooks_reported(&self, run: &HookRun<'_>) -> String {
        match self.run_hooks(run).await {
            Ok(()) => String::new(),
            Err(e) => format!(" ({} hook failed: {e})", run.phase.key()),
        }
    }

    fn hook_env(&self, run: &HookRun<'_>) -> Vec<(String, String)> {
        let mut env = self.env(run.version, run.previous);
        env.push(("UPDRAFT_PHASE".into(), run.phase.key().into()));
        if run.version.is_none() {
            if let Some(v) = run.shipped_by {
                env.push((
                    "UPDRAFT_RELEASE_DIR".into(),
                    self.root.release_dir(v).display().to_string(),
                ));
            }
        }
        if let Some(r) = run.reason {
            env.push(("UPDRAFT_REASON".into(), r.into()));
        }
        env
    }

    /// `UPDRAFT_*` variables for hooks, service commands and health checks: which root,
    /// which release, and what ran before it.
    pub(super) fn env(
        &self,
        version: Option<&Version>,
        previous: Option<&Version>,
    ) -> Vec<(String, String)> {
        let mut env = vec![(
            "UPDRAFT_ROOT".to_string(),
            self.root.path().display().to_string(),
        )];
        if let Some(v) = version {
            env.push(("UPDRAFT_VERSION".into(), v.to_string()));
            env.push((
                "UPDRAFT_RELEASE_DIR".into(),
                self.root.release_dir(v).display().to_string(),
            ));
        }
        if let Some(p) = previous {
            env.push(("UPDRAFT_PREVIOUS".into(), p.to_string()));
            env.push(("UPDRAFT_PREVIOUS_VERSION".into(), p.to_string()));
        }
        env
    }
}

/// What a hook wrote, for the history: the last lines of stdout and stderr.
fn output(f: &process::Finished) -> String {
    let out = process::tail(&f.stdout, 5);
    let err = process::tail(&f.stderr, 5);
    let mut s = String::new();
    if !out.is_empty() {
        s.push_str(&format!("; stdout: {out}"));
    }
    if !err.is_empty() {
        s.push_str(&format!("; stderr: {err}"));
    }
    s
}

/// The last lines of a hook's stderr, on one line, for the error message.
fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_table() {
        let cases: [(&[u8], &str); 4] = [
            (b"", ""),
            (b"one\n", "one"),
            (b"1\n2\n3\n4\n5\n6\n7\n", "3 | 4 | 5 | 6 | 7"),
            (b"a\n\xff b", "a | \u{fffd} b"),
        ];
        for (input, want) in cases {
            assert_eq!(tail(input), want, "{input:?}");
        }
    }
}
