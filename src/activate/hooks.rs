//! The pre-activation hook, and the environment every command of an activation sees.

use super::error::{DeployError, HookFailure};
use super::Pipeline;
use crate::registry::names::Version;

impl Pipeline<'_> {
    /// Run the configured pre-activation check inside the (not yet active) release.
    /// Refuse (as a config error) an activation whose commands cannot run; see
    /// `preflight`.
    pub fn preflight(&self, version: &Version) -> Result<(), DeployError> {
        let problems =
            super::preflight::check(self.config, self.root, &self.root.release_dir(version));
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
        let argv = &self.config.pre_activate;
        if argv.is_empty() {
            return Ok(());
        }
        let dir = self.root.release_dir(version);
        let dir_s = dir.display().to_string();
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("{release}", &dir_s))
            .collect();
        let fail = |reason: HookFailure| DeployError::PreActivate {
            version: version.clone(),
            reason,
        };
        let command = || argv.join(" ");
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&dir)
            .envs(self.env(Some(version), None))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.config.services.timeout.0, cmd.output())
            .await
            .map_err(|_| fail(HookFailure::TimedOut { command: command() }))?
            .map_err(|source| {
                fail(HookFailure::Spawn {
                    command: command(),
                    source,
                })
            })?;
        if !out.status.success() {
            return Err(fail(HookFailure::Exited {
                command: command(),
                status: out.status,
                stderr: tail(&out.stderr),
            }));
        }
        Ok(())
    }

    /// `UPDRAFT_*` variables for the pre-activation hook, service commands and health
    /// checks: which root, which release, and what ran before it.
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
        }
        env
    }
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
