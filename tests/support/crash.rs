//! Test support for crash tests: a small app root whose services and health checks are
//! shell commands (quick enough to run a command once per failpoint), release tarballs
//! with known contents, and running the real binary killed at a named failpoint
//! (`src/failpoint.rs`; the tests build the binary with the `failpoints` feature).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use super::app::tar_gz;
use super::bin;

/// An app root and its config. Restarting writes the version that `current` names to
/// `<root>/running` (what "the service" runs); the health check passes when the release
/// holds a file `healthy`.
pub struct Root {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    /// version -> (tarball, the tree it was made from)
    releases: BTreeMap<String, (PathBuf, PathBuf)>,
}

impl Root {
    /// A root whose config has `extra` added at the top level (before any table).
    pub fn new(extra: &str) -> Root {
        Root::with_config(extra, "")
    }

    /// `extra` at the top level, `tables` after the built-in `[services]` and `[[health]]`.
    pub fn with_config(extra: &str, tables: &str) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        let config = dir.path().join("updraft.toml");
        std::fs::write(
            &config,
            format!(
                r#"root = "{root}"
keep = 3
lock_timeout = "20s"
{extra}
[services]
restart = ["sh", "-c", "readlink \"$UPDRAFT_ROOT/releases/current\" > \"$UPDRAFT_ROOT/running\""]

[[health]]
command = ["sh", "-c", "test -f \"$UPDRAFT_RELEASE_DIR/healthy\""]
timeout = "5s"
retries = 0
interval = "50ms"
{tables}
"#,
                root = root.display()
            ),
        )
        .unwrap();
        Root {
            dir,
            root,
            config,
            releases: BTreeMap::new(),
        }
    }

    /// The tarball of release `version` (made on first use): a few files, a command
    /// script for `commands/`, and `healthy` unless `healthy` is false.
    pub fn tarball(&mut self, version: &str, healthy: bool) -> PathBuf {
        self.tarball_of(version, if healthy { "" } else { "broken" })
    }

    /// Like [`Root::tarball`]; `flavour` "broken" has no `healthy` file, any other
    /// non-empty flavour makes other bytes of the same version (a rebuild).
    pub fn tarball_of(&mut self, version: &str, flavour: &str) -> PathBuf {
        let healthy = flavour != "broken";
        let key = if flavour.is_empty() {
            version.to_string()
        } else {
            format!("{version}-{flavour}")
        };
        if let Some((t, _)) = self.releases.get(&key) {
            return t.clone();
        }
        let tree = self.dir.path().join(format!("tree-{key}"));
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::create_dir_all(tree.join("commands")).unwrap();
        std::fs::write(tree.join("VERSION"), format!("{version}\n")).unwrap();
        std::fs::write(tree.join("bin/app"), format!("#!/bin/sh\necho {version}\n")).unwrap();
        std::fs::write(tree.join("commands/hello.sh"), format!("echo {version}\n")).unwrap();
        std::fs::write(
            tree.join("commands/bye.sh"),
            format!("echo bye {version}\n"),
        )
        .unwrap();
        if healthy {
            std::fs::write(tree.join("healthy"), b"yes\n").unwrap();
        }
        if !flavour.is_empty() {
            std::fs::write(tree.join("FLAVOUR"), flavour).unwrap();
        }
        let tarball = self.dir.path().join(format!("{key}.tar.gz"));
        tar_gz(&tree, &tarball);
        self.releases.insert(key, (tarball.clone(), tree));
        tarball
    }

    /// A copy of this root (its app root and config) in a directory of its own, to
    /// run a command on from the same starting point again. Tarballs stay where they
    /// are, so `self` must outlive the copy.
    pub fn fork(&self) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        if self.root.exists() {
            let st = Command::new("cp")
                .arg("-a")
                .arg(&self.root)
                .arg(&root)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let config = dir.path().join("updraft.toml");
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replace(
            &format!("root = \"{}\"", self.root.display()),
            &format!("root = \"{}\"", root.display()),
        );
        std::fs::write(&config, text).unwrap();
        Root {
            dir,
            root,
            config,
            releases: self.releases.clone(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("UPDRAFT_ROOT")
            .env_remove("UPDRAFT_CONFIG")
            .env_remove("UPDRAFT_FAILPOINT")
            .env_remove("UPDRAFT_FAILPOINT_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Run, killed (SIGKILL) at failpoint `point` (`NAME` or `NAME#N`).
    pub fn run_killed_at(&self, point: &str, args: &[&str]) -> Output {
        self.command(args)
            .env("UPDRAFT_FAILPOINT", point)
            .output()
            .unwrap()
    }

    /// Run to the end; also returns every failpoint it passed (`NAME#N`), in order.
    pub fn run_logged(&self, args: &[&str]) -> (Output, Vec<String>) {
        let log = self
            .dir
            .path()
            .join(format!("points-{}.log", fastrand_name()));
        let out = self
            .command(args)
            .env("UPDRAFT_FAILPOINT_LOG", &log)
            .output()
            .unwrap();
        let points = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        let _ = std::fs::remove_file(&log);
        (out, points)
    }

    pub fn deploy_args(&mut self, version: &str, healthy: bool) -> Vec<String> {
        let t = self.tarball(version, healthy);
        vec![
            "deploy".into(),
            "--version".into(),
            version.into(),
            "--artifact-path".into(),
            t.display().to_string(),
        ]
    }

    pub fn current(&self) -> Option<String> {
        std::fs::read_link(self.root.join("releases/current"))
            .ok()
            .map(|p| p.display().to_string())
    }

    /// What the restart command last started.
    pub fn running(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("running"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    pub fn state(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.root.join(".updraft/state.json")).unwrap_or_default();
        if bytes.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("state.json does not parse: {e}"))
    }

    /// Every line of the history, parsed (a line that does not parse fails the test).
    pub fn history(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.root.join(".updraft/history.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("history line does not parse ({e}): {l:?}"))
            })
            .collect()
    }

    /// Names starting with a dot in `releases/`, `.updraft/` and `commands/` (other
    /// than updraft's own files): what a killed run may leave and the next must remove.
    pub fn litter(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in ["releases", ".updraft", "commands", ".updraft/snapshots"] {
            let Ok(rd) = std::fs::read_dir(self.root.join(d)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // Data snapshots are kept with their release (issue 15).
                let ours =
                    ["state.json", "history.jsonl", "lock", "snapshots"].contains(&name.as_str());
                if name.starts_with('.') || (d == ".updraft" && !ours) {
                    out.push(format!("{d}/{name}"));
                }
            }
        }
        out.sort();
        out
    }
}

/// Whether the process was killed by SIGKILL (at its failpoint).
pub fn killed(o: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(libc::SIGKILL)
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
