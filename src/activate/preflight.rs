//! Config mistakes are not release failures.
//!
//! A health script that is missing or not executable used to fail the health checks
//! after the switch: the release was rolled back and blocked although nothing was wrong
//! with it, and on a first install `current` was removed. Before switching, every
//! command the activation will run (`pre_activate`, the `[hooks]`, `services.reload`/
//! `restart`, the health commands) must exist and be executable; a program under
//! `releases/current/` is looked up in the staged release, where `current` is about to
//! point. A problem is a config error: nothing is blocked and `current` stays.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::disk::layout::AppRoot;

/// One command the activation would run, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which setting names it (`health.command`, `services.restart`, ...).
    pub setting: String,
    pub program: String,
    pub why: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} runs {}, which {}",
            self.setting, self.program, self.why
        )
    }
}

/// The commands of `config` an activation runs, with the setting that names each.
pub fn commands(config: &Config) -> Vec<(String, &[String])> {
    let mut out: Vec<(String, &[String])> = Vec::new();
    if !config.pre_activate.is_empty() {
        out.push(("pre_activate".into(), &config.pre_activate));
    }
    let h = &config.hooks;
    for (key, argv) in [
        ("hooks.post_activate", &h.post_activate),
        ("hooks.pre_rollback", &h.pre_rollback),
        ("hooks.post_rollback", &h.post_rollback),
        ("hooks.on_failure", &h.on_failure),
    ] {
        if !argv.is_empty() {
            out.push((key.into(), argv));
        }
    }
    if !config.services.reload.is_empty() {
        out.push(("services.reload".into(), &config.services.reload));
    }
    if !config.services.restart.is_empty() {
        out.push(("services.restart".into(), &config.services.restart));
    }
    for (i, h) in config.health.iter().enumerate() {
        if let Some(argv) = h.command.as_deref().filter(|a| !a.is_empty()) {
            out.push((format!("[[health]] #{} command", i + 1), argv));
        }
    }
    out
}

/// Where `program` is for an activation of the release in `release_dir`: `{release}`
/// is that directory, and a path under `<root>/releases/current/` lies in it. None for
/// a bare name (looked up in PATH) or a relative path (its directory depends on the
/// command).
pub fn resolve(program: &str, root: &AppRoot, release_dir: &Path) -> Option<PathBuf> {
    let program = program.replace("{release}", &release_dir.display().to_string());
    let path = Path::new(&program);
    if !path.is_absolute() {
        return None;
    }
    let current = root.current_link();
    match path.strip_prefix(&current) {
        Ok(rest) => Some(release_dir.join(rest)),
        Err(_) => Some(path.to_path_buf()),
    }
}

/// What is wrong with running `path`, if anything.
fn unusable(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "does not exist ({}): fix the path in the config, or ship the file in the release",
            path.display()
        )),
        Err(e) => Some(format!("cannot be read ({}: {e})", path.display())),
        Ok(m) if !m.is_file() => Some(format!("is not a file ({})", path.display())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
            "is not executable ({}): chmod +x it (in the release for a path under releases/current/)",
            path.display()
        )),
        Ok(_) => None,
    }
}

/// A bare program name found in PATH?
fn in_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| unusable(&d.join(name)).is_none()))
}

/// Every problem with the commands an activation of `release_dir` would run.
pub fn check(config: &Config, root: &AppRoot, release_dir: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (setting, argv) in commands(config) {
        let program = &argv[0];
        let why = match resolve(program, root, release_dir) {
            Some(path) => unusable(&path),
            None if !program.contains('/') && !in_path(program) => {
                Some("is not found in PATH: give its absolute path".to_string())
            }
            None => None,
        };
        if let Some(why) = why {
            problems.push(Problem {
                setting,
                program: program.clone(),
                why,
            });
        }
    }
    problems
}

/// What systemd says of a unit in `systemctl show -p LoadState --value UNIT`: `loaded`
/// (or `masked`, which the restart will report itself) when it knows the unit,
/// `not-found` when there is no unit file, which a restart would only discover after
/// `current` had been switched.
pub fn load_state_problem(unit: &str, load_state: &str) -> Option<String> {
    match load_state.trim() {
        "loaded" | "masked" | "stub" | "merged" => None,
        "not-found" => Some(format!(
            "is not a unit systemd knows (LoadState=not-found): install {unit}.service, or fix services.units"
        )),
        "" => Some("has no LoadState (is this a unit name?)".to_string()),
        other => Some(format!(
            "cannot be loaded by systemd (LoadState={other}): see `systemctl status {unit}`"
        )),
    }
}

/// Every configured unit that systemd does not know, asked through the configured
/// `services.systemctl` (a seam: tests and `systemctl --user` setups configure another).
pub async fn unit_problems(config: &Config, timeout: Duration) -> Vec<Problem> {
    let mut problems = Vec::new();
    for unit in &config.services.units {
        let shown = super::main_process::unit_property(
            &config.services.systemctl,
            "LoadState",
            unit,
            &[],
            timeout,
        )
        .await;
        let why = match shown {
            Ok((state, _)) => load_state_problem(unit, &state),
            Err(e) => Some(format!("cannot be looked up: {e}")),
        };
        if let Some(why) = why {
            problems.push(Problem {
                setting: "services.units".into(),
                program: unit.clone(),
                why,
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_in_the_staged_release() {
        let root = AppRoot::new("/opt/demo");
        let staged = Path::new("/opt/demo/releases/1.2.0");
        let cases = [
            (
                "/opt/demo/releases/current/bin/health",
                Some("/opt/demo/releases/1.2.0/bin/health"),
            ),
            (
                "{release}/bin/check",
                Some("/opt/demo/releases/1.2.0/bin/check"),
            ),
            ("/usr/bin/curl", Some("/usr/bin/curl")),
            (
                "/opt/demo/releases/1.1.0/bin/x",
                Some("/opt/demo/releases/1.1.0/bin/x"),
            ),
            ("curl", None),
            ("bin/health", None),
        ];
        for (program, want) in cases {
            assert_eq!(
                resolve(program, &root, staged),
                want.map(PathBuf::from),
                "{program}"
            );
        }
    }

    #[test]
    fn load_states() {
        for (state, ok) in [
            ("loaded\n", true),
            ("masked", true),
            ("not-found\n", false),
            ("", false),
            ("bad-setting", false),
            ("error", false),
        ] {
            assert_eq!(load_state_problem("demo", state).is_none(), ok, "{state:?}");
        }
        assert!(load_state_problem("demo", "not-found")
            .unwrap()
            .contains("install demo.service"));
    }
}
