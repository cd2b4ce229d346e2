//! Restarting the app after a switch: `[services]` in the config.
//!
//! `units` is shorthand for `systemctl restart <unit>`, unit by unit (through the
//! configured `systemctl` command). Reloading is opt-in: `reload_units` tries
//! `systemctl reload <unit>` first, and a configured `reload` command runs before
//! `restart`; a restart follows whenever the reload fails. A reload is cheaper and
//! keeps connections, but one that only sends SIGHUP leaves the old code running, so
//! after the units are restarted (or reloaded) each unit's main process must run from
//! the new release ([`main_process`]), and with `pidfile` the same goes for `restart`
//! commands. Every command is bounded by `timeout` and killed with its whole process
//! group when it overruns.
//!
//! A restart script that starts the app itself must detach it from the script's output
//! (`setsid server >>log 2>&1 &`, as fixtures/app/restart.sh does): updraft stops
//! waiting for the output once the script exits, and whatever still writes to the pipe
//! after updraft itself has exited gets SIGPIPE.

use std::fmt;
use std::time::Duration;

use tracing::{info, warn};

use crate::activate::main_process::{self, NotNew};
use crate::activate::process::{self, RunError};
use crate::config::Services;

/// Written lowercase in `--json` output (`"restarted"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceOutcome {
    /// Nothing configured: the app is expected to pick the new release up by itself.
    Skipped,
    /// Every configured reload succeeded.
    Reloaded,
    /// At least one restart ran (configured alone, or after a failed reload).
    Restarted,
}

impl ServiceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceOutcome::Skipped => "skipped",
            ServiceOutcome::Reloaded => "reloaded",
            ServiceOutcome::Restarted => "restarted",
        }
    }
}

impl fmt::Display for ServiceOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One command that did not succeed, in words: "`systemctl restart demo` exited with
/// status 1: Unit demo.service not found."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    pub command: String,
    pub failure: String,
}

impl fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.command, self.failure)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("restarting the app failed: {failed}{}; run the command by hand to see why, or fix [services] in the config", after_reload(.reload))]
    Restart {
        failed: CommandFailure,
        reload: Option<CommandFailure>,
    },
    #[error("reloading the app failed: {failed}, and no `restart` command is configured to fall back on; fix [services] in the config")]
    Reload { failed: CommandFailure },
    /// The restart succeeded but the old code still runs (or that cannot be told).
    #[error(transparent)]
    NotNew(#[from] NotNew),
}

fn after_reload(reload: &Option<CommandFailure>) -> String {
    match reload {
        Some(r) => format!(" (after the reload {r})"),
        None => String::new(),
    }
}

/// Run one command; Ok when it exits 0.
async fn run(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), CommandFailure> {
    let command = argv.join(" ");
    let failure = match process::run(argv, env, timeout).await {
        Ok(done) if done.status.success() => return Ok(()),
        Ok(done) => {
            let tail = process::tail(&done.stderr, 5);
            let status = process::describe(done.status);
            if tail.is_empty() {
                status
            } else {
                format!("{status}: {tail}")
            }
        }
        Err(RunError::Spawn { source, .. }) => format!("could not start: {source}"),
        Err(e) => e.to_string(),
    };
    Err(CommandFailure { command, failure })
}

/// Reload, else restart: one step of the restart plan.
async fn reload_or_restart(
    reload: &[String],
    restart: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<ServiceOutcome, ServiceError> {
    let mut reload_failure = None;
    if !reload.is_empty() {
        match run(reload, env, timeout).await {
            Ok(()) => {
                info!(command = %reload.join(" "), "reloaded");
                return Ok(ServiceOutcome::Reloaded);
            }
            Err(failed) if restart.is_empty() => return Err(ServiceError::Reload { failed }),
            Err(failed) => {
                warn!("reload failed, restarting instead: {failed}");
                reload_failure = Some(failed);
            }
        }
    }
    if restart.is_empty() {
        return Ok(ServiceOutcome::Skipped);
    }
    run(restart, env, timeout)
        .await
        .map_err(|failed| ServiceError::Restart {
            failed,
            reload: reload_failure,
        })?;
    info!(command = %restart.join(" "), "restarted");
    Ok(ServiceOutcome::Restarted)
}

/// Make the app run the release `current` now points at. `env` (UPDRAFT_VERSION and
/// friends) is added to each command's environment.
pub async fn restart(
    cfg: &Services,
    env: &[(String, String)],
) -> Result<ServiceOutcome, ServiceError> {
    let timeout = cfg.timeout.0;
    let mut outcome = ServiceOutcome::Skipped;
    let mut merge = |o: ServiceOutcome| {
        outcome = match (outcome, o) {
            (ServiceOutcome::Restarted, _) | (_, ServiceOutcome::Restarted) => {
                ServiceOutcome::Restarted
            }
            (ServiceOutcome::Reloaded, _) | (_, ServiceOutcome::Reloaded) => {
                ServiceOutcome::Reloaded
            }
            _ => ServiceOutcome::Skipped,
        }
    };
    for unit in &cfg.units {
        let sc = |verb: &str| {
            let mut argv = cfg.systemctl.clone();
            argv.extend([verb.to_string(), unit.clone()]);
            argv
        };
        let reload = if cfg.reload_units {
            sc("reload")
        } else {
            Vec::new()
        };
        merge(reload_or_restart(&reload, &sc("restart"), env, timeout).await?);
    }
    let commands = reload_or_restart(&cfg.reload, &cfg.restart, env, timeout).await?;
    merge(commands);
    // Which release the app must now run: the one the commands were told to start.
    if let Some(release) = release_dir(env) {
        for unit in &cfg.units {
            let pid = main_process::unit_main_pid(&cfg.systemctl, unit, env, timeout)
                .await
                .map_err(|reason| NotNew::Unknown {
                    who: format!("unit {unit}"),
                    reason: format!("cannot tell which process it runs: {reason}"),
                })?;
            if pid == 0 {
                warn!(%unit, "unit has no main process after its restart: cannot check that it runs the new release");
                continue;
            }
            unreadable(
                main_process::check(&format!("unit {unit}"), pid, release)?,
                pid,
            );
        }
        if let (Some(pidfile), ServiceOutcome::Reloaded | ServiceOutcome::Restarted) =
            (&cfg.pidfile, commands)
        {
            let pid = main_process::pid_from_file(pidfile).map_err(|reason| NotNew::Unknown {
                who: "the app".into(),
                reason: format!("{reason} (services.pidfile, after the restart command ran)"),
            })?;
            let who = format!("the app (pidfile {})", pidfile.display());
            unreadable(main_process::check(&who, pid, release)?, pid);
        }
    }
    Ok(outcome)
}

/// Warn when a main process could not be inspected (another user's, or gone).
fn unreadable(checked: main_process::Checked, pid: u32) {
    if checked == main_process::Checked::Unreadable {
        warn!(pid, "cannot read /proc/{pid}/exe or cwd (gone, or another user's process: run updraft as the app's user or root): not checking that it runs the new release");
    }
}

/// `UPDRAFT_RELEASE_DIR` from the commands' environment: the release they were told to
/// run (absent when `current` goes back to a release updraft did not install, which
/// is then not checked).
fn release_dir(env: &[(String, String)]) -> Option<&std::path::Path> {
    env.iter()
        .find(|(k, _)| k == "UPDRAFT_RELEASE_DIR")
        .map(|(_, v)| std::path::Path::new(v.as_str()))
}
