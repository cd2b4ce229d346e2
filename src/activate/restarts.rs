//! Crash-loop detection: did the app's supervisor restart it behind our back?
//!
//! A service that crashes and is restarted by systemd (`Restart=on-failure`) comes
//! back within a second, so a health check with retries can pass while the release
//! is crash-looping. The supervisor knows better: systemd counts those automatic
//! restarts in `NRestarts` (manual restarts, like ours, do not count). The counter is
//! read right after updraft restarts the app; any increase by the end of the health
//! checks or during the bake period fails the release.
//!
//! The counter comes from a command (`services.restart_count`), by default
//! `systemctl show --property NRestarts --value <units>` when `services.units` is set.
//! A command that cannot be run or read only disables the watch, with a warning: the
//! health checks stay the judge, and a probe problem must not roll back good releases.

use std::time::Duration;

use tracing::{debug, warn};

use crate::activate::process;
use crate::config::Services;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the app was restarted {restarts} time{} by its supervisor since the activation (counted by `{command}`): it is crashing; see its logs (journalctl -u <unit>)", if *.restarts == 1 { "" } else { "s" })]
pub struct CrashLoop {
    pub restarts: u64,
    pub command: String,
}

/// The command that prints the restart counter, if any: the configured one (an empty
/// list turns the watch off), else systemd's for the configured units.
pub fn counter_command(cfg: &Services) -> Option<Vec<String>> {
    match &cfg.restart_count {
        Some(argv) if argv.is_empty() => None,
        Some(argv) => Some(argv.clone()),
        None if cfg.units.is_empty() => None,
        None => {
            let mut argv = cfg.systemctl.clone();
            argv.extend(["show", "--property", "NRestarts", "--value"].map(String::from));
            argv.extend(cfg.units.iter().cloned());
            Some(argv)
        }
    }
}

/// The counter in a probe's output: whitespace-separated counts (one per unit for
/// `systemctl show`), summed.
pub fn parse_count(stdout: &str) -> Result<u64, String> {
    let mut total = 0u64;
    let mut any = false;
    for word in stdout.split_whitespace() {
        let n: u64 = word
            .parse()
            .map_err(|_| format!("expected restart counts, got {word:?}"))?;
        total = total.saturating_add(n);
        any = true;
    }
    if !any {
        return Err("it printed nothing".into());
    }
    Ok(total)
}

/// The counter as it was after our own restart.
#[derive(Debug, Clone)]
pub struct RestartWatch {
    argv: Vec<String>,
    baseline: u64,
    timeout: Duration,
}

impl RestartWatch {
    /// Read the baseline; `None` (with a warning) when there is nothing to watch.
    pub async fn start(cfg: &Services, env: &[(String, String)]) -> Option<RestartWatch> {
        let argv = counter_command(cfg)?;
        let timeout = cfg.timeout.0;
        match read(&argv, env, timeout).await {
            Ok(baseline) => {
                debug!(command = %argv.join(" "), baseline, "watching the restart counter");
                Some(RestartWatch {
                    argv,
                    baseline,
                    timeout,
                })
            }
            Err(why) => {
                warn!(
                    "crash-loop detection is off for this activation: `{}` {why}; fix services.restart_count (or set it to [] to turn the watch off)",
                    argv.join(" ")
                );
                None
            }
        }
    }

    /// Fail if the supervisor restarted the app since the baseline.
    pub async fn check(&self, env: &[(String, String)]) -> Result<(), CrashLoop> {
        match read(&self.argv, env, self.timeout).await {
            Ok(now) if now > self.baseline => Err(CrashLoop {
                restarts: now - self.baseline,
                command: self.argv.join(" "),
            }),
            Ok(_) => Ok(()),
            Err(why) => {
                warn!(
                    "cannot read the restart counter: `{}` {why}",
                    self.argv.join(" ")
                );
                Ok(())
            }
        }
    }
}

async fn read(argv: &[String], env: &[(String, String)], timeout: Duration) -> Result<u64, String> {
    match process::run(argv, env, timeout).await {
        Ok(done) if done.status.success() => parse_count(&String::from_utf8_lossy(&done.stdout)),
        Ok(done) => Err(format!(
            "{}: {}",
            process::describe(done.status),
            process::tail(&done.stderr, 3)
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_and_garbage_refused() {
        assert_eq!(parse_count("0\n"), Ok(0));
        assert_eq!(parse_count("2\n3\n"), Ok(5));
        assert!(parse_count("").is_err());
        assert!(parse_count("[not set]").is_err());
        assert!(parse_count("-1").is_err());
    }

    #[test]
    fn systemd_units_are_watched_unless_turned_off() {
        let mut s = Services {
            units: vec!["demo.service".into(), "demo-worker.service".into()],
            ..Services::default()
        };
        assert_eq!(
            counter_command(&s).unwrap().join(" "),
            "systemctl show --property NRestarts --value demo.service demo-worker.service"
        );
        s.restart_count = Some(vec![]);
        assert_eq!(counter_command(&s), None);
        s.restart_count = Some(vec!["cat".into(), "/run/n".into()]);
        assert_eq!(counter_command(&s).unwrap(), ["cat", "/run/n"]);
        assert_eq!(counter_command(&Services::default()), None);
    }
}
