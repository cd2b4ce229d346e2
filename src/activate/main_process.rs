//! Proof that a restart took: the app's main process runs from the new release.
//!
//! A restart command can succeed while the old code keeps running: a unit whose reload
//! only sends SIGHUP, a supervisor that restarts its child but itself stays where it
//! was. The health checks would then pass against the old code and the release would
//! be recorded as healthy. So after the restart, the main process of each unit (from
//! `systemctl show -p MainPID --value UNIT`, through the configured `systemctl`) or
//! the one in `services.pidfile` must run from `releases/<new>`: its resolved
//! executable (`/proc/PID/exe`, a native binary) or working directory
//! (`/proc/PID/cwd`, for interpreters and `WorkingDirectory=` units) lies under it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::activate::process;

/// Why the check could not say yes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotNew {
    /// The process runs from elsewhere: the old release, or outside `releases/`.
    #[error("{who} still runs {path} (pid {pid}), not {release}: it did not restart into the new release; restart it (not reload) and make it start from releases/current")]
    OldCode {
        who: String,
        pid: u32,
        path: String,
        release: String,
    },
    /// The pid could not be found or read.
    #[error("{who}: {reason}")]
    Unknown { who: String, reason: String },
}

/// Where a process runs from, as far as /proc says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runs {
    pub exe: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
}

/// Whether a process running as `runs` runs from `release` (a resolved path); if not,
/// the path to name in the message: whichever of exe and cwd lies under `releases`
/// (an old release), else the executable. Pure.
pub fn verdict(runs: &Runs, release: &Path, releases: &Path) -> Result<(), String> {
    let under = |p: &Option<PathBuf>, dir: &Path| p.as_deref().is_some_and(|p| p.starts_with(dir));
    if under(&runs.exe, release) || under(&runs.cwd, release) {
        return Ok(());
    }
    let shown = [&runs.exe, &runs.cwd]
        .into_iter()
        .flatten()
        .find(|p| p.starts_with(releases))
        .or(runs.exe.as_ref())
        .or(runs.cwd.as_ref());
    Err(shown.map_or_else(
        || "an unknown path".to_string(),
        |p| p.display().to_string(),
    ))
}

/// /proc/PID/exe and /proc/PID/cwd, resolved; None for what cannot be read.
pub fn runs(pid: u32) -> Runs {
    let read = |what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).ok();
    Runs {
        exe: read("exe"),
        cwd: read("cwd"),
    }
}

/// What [`check`] could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// It runs from the release.
    Runs,
    /// /proc says nothing about it: gone already, or another user's process that this
    /// one may not inspect. The health checks stay the judge; the caller warns.
    Unreadable,
}

/// Check that process `pid` (`who`, for messages) runs from `release`.
pub fn check(who: &str, pid: u32, release: &Path) -> Result<Checked, NotNew> {
    let resolved = release
        .canonicalize()
        .unwrap_or_else(|_| release.to_path_buf());
    let releases = resolved.parent().unwrap_or(&resolved).to_path_buf();
    let r = runs(pid);
    if r.exe.is_none() && r.cwd.is_none() {
        return Ok(Checked::Unreadable);
    }
    verdict(&r, &resolved, &releases)
        .map(|()| Checked::Runs)
        .map_err(|path| NotNew::OldCode {
            who: who.to_string(),
            pid,
            path,
            release: resolved.display().to_string(),
        })
}

/// A main pid as systemctl or a pidfile writes it; 0 means "no main process".
pub fn parse_pid(text: &str) -> Result<u32, String> {
    let t = text.trim();
    t.parse::<u32>()
        .map_err(|_| format!("expected a process id, got {t:?}"))
}

/// One property of `unit`: `<systemctl> show -p <property> --value <unit>`, and the
/// command as run (for messages); an error names the command and how it ended.
pub async fn unit_property(
    systemctl: &[String],
    property: &str,
    unit: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(String, String), String> {
    let mut argv = systemctl.to_vec();
    argv.extend(["show", "-p", property, "--value", unit].map(String::from));
    let command = argv.join(" ");
    match process::run(&argv, env, timeout).await {
        Ok(done) if done.status.success() => {
            Ok((String::from_utf8_lossy(&done.stdout).into_owned(), command))
        }
        Ok(done) => Err(format!(
            "`{command}` {}: {}",
            process::describe(done.status),
            process::tail(&done.stderr, 3)
        )),
        Err(e) => Err(format!("`{command}`: {e}")),
    }
}

/// The main pid of `unit`: `<systemctl> show -p MainPID --value <unit>`.
pub async fn unit_main_pid(
    systemctl: &[String],
    unit: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<u32, String> {
    let (value, command) = unit_property(systemctl, "MainPID", unit, env, timeout).await?;
    parse_pid(&value).map_err(|e| format!("`{command}`: {e}"))
}

/// The pid in `path`, written by the restart command.
pub fn pid_from_file(path: &Path) -> Result<u32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pidfile {}: {e}", path.display()))?;
    parse_pid(&text).map_err(|e| format!("pidfile {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn verdict_table() {
        let release = Path::new("/opt/app/releases/1.1.0");
        let releases = Path::new("/opt/app/releases");
        let cases = [
            // A native binary of the new release.
            (p("/opt/app/releases/1.1.0/bin/server"), p("/"), Ok(())),
            // An interpreter started in the new release (WorkingDirectory=).
            (
                p("/usr/bin/python3.12"),
                p("/opt/app/releases/1.1.0"),
                Ok(()),
            ),
            (
                p("/usr/bin/python3.12"),
                p("/opt/app/releases/1.1.0/sub"),
                Ok(()),
            ),
            // The old release, by its binary or its directory.
            (
                p("/opt/app/releases/1.0.0/bin/server"),
                p("/opt/app/releases/1.0.0"),
                Err("/opt/app/releases/1.0.0/bin/server"),
            ),
            (
                p("/usr/bin/python3.12"),
                p("/opt/app/releases/1.0.0"),
                Err("/opt/app/releases/1.0.0"),
            ),
            // A sibling whose name starts the same is not the release.
            (
                p("/opt/app/releases/1.1.0-rc.1/bin/server"),
                None,
                Err("/opt/app/releases/1.1.0-rc.1/bin/server"),
            ),
            // Nowhere near releases/: the executable is named.
            (
                p("/usr/bin/python3.12"),
                p("/home/x"),
                Err("/usr/bin/python3.12"),
            ),
            (None, p("/home/x"), Err("/home/x")),
            (None, None, Err("an unknown path")),
        ];
        for (exe, cwd, want) in cases {
            let runs = Runs {
                exe: exe.clone(),
                cwd: cwd.clone(),
            };
            assert_eq!(
                verdict(&runs, release, releases),
                want.map_err(String::from),
                "exe {exe:?} cwd {cwd:?}"
            );
        }
    }

    #[test]
    fn parse_pid_table() {
        assert_eq!(parse_pid("1234\n"), Ok(1234));
        assert_eq!(parse_pid(" 0 "), Ok(0));
        assert!(parse_pid("").is_err());
        assert!(parse_pid("12 34").is_err());
        assert!(parse_pid("-1").is_err());
    }

    #[test]
    fn this_process_runs_from_where_it_runs() {
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(check("this test", me, &cwd), Ok(Checked::Runs));
        let elsewhere = tempfile::tempdir().unwrap();
        let err = check("this test", me, elsewhere.path()).unwrap_err();
        assert!(
            err.to_string().starts_with("this test still runs "),
            "{err}"
        );
        // A pid that is not running cannot be judged.
        assert_eq!(check("gone", u32::MAX, &cwd), Ok(Checked::Unreadable));
    }
}
