//! Test support: app roots, release tarballs of the fixture app (fixtures/app), and
//! running the real `updraft` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::process::ProcessGroup;

// Re-exported so that `use support::app::*` is all an app test needs; a binary that
// uses only some of them would warn about the rest.
#[allow(unused_imports)]
pub use super::{bin, code, fixtures, free_port, json, ok, stderr, stdout, text};

/// Run `updraft serve DIR` on a port of its own choosing; returns the server (stopped
/// with SIGTERM, which it handles, when dropped) and its base URL
/// (`http://127.0.0.1:PORT`), read from the line it prints once listening.
pub fn spawn_serve(dir: &Path) -> (ProcessGroup, String) {
    use std::io::BufRead;
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped());
    let mut server = ProcessGroup::spawn(&mut cmd, libc::SIGTERM).unwrap();
    let mut lines = std::io::BufReader::new(server.take_stdout().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let Some(base) = first.split(" on ").nth(1).map(str::trim).map(String::from) else {
        drop(server);
        panic!("updraft serve did not say where it listens: {first:?}");
    };
    // Keep draining, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, base)
}

/// Build a release tarball of the fixture app at `out/<version>.tar.gz`.
/// `mode` is "" (healthy), "broken" (health returns 500) or "crash".
pub fn release_tarball(out: &Path, version: &str, mode: &str) -> PathBuf {
    let tree = out.join(format!("tree-{version}-{mode}"));
    let mut cmd = Command::new(fixtures().join("app/make-release.sh"));
    cmd.arg(&tree).arg(version);
    if !mode.is_empty() {
        cmd.arg(mode);
    }
    let st = cmd.status().unwrap();
    assert!(st.success(), "make-release.sh failed");
    let tarball = out.join(format!("{version}{mode}.tar.gz"));
    tar_gz(&tree, &tarball);
    tarball
}

/// `tar -czf out -C tree .` with the real tar.
pub fn tar_gz(tree: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("-czf")
        .arg(out)
        .arg("-C")
        .arg(tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar -czf {}", out.display());
}

/// An app root with a config that restarts the fixture server through the real
/// restart script and health-checks it over HTTP.
pub struct App {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    pub port: u16,
}

impl App {
    pub fn new(extra_toml: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir_all(root.join("config")).unwrap();
        let port = free_port();
        std::fs::write(root.join("config/app.env"), format!("PORT={port}\n")).unwrap();
        let config = dir.path().join("updraft.toml");
        let restart = fixtures().join("app/restart.sh");
        std::fs::write(
            &config,
            format!(
                r#"root = "{root}"
keep = 5
lock_timeout = "20s"
{extra_toml}

[services]
restart = ["{restart}", "{root}"]

[[health]]
http = "http://127.0.0.1:{port}/health"
timeout = "2s"
retries = 20
interval = "100ms"
"#,
                root = root.display(),
                restart = restart.display(),
            ),
        )
        .unwrap();
        App {
            dir,
            root,
            config,
            port,
        }
    }

    pub fn tmp(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("UPDRAFT_ROOT")
            .env_remove("UPDRAFT_CONFIG")
            .output()
            .unwrap()
    }

    pub fn deploy(&self, version: &str, tarball: &Path) -> Output {
        self.run(&[
            "deploy",
            "--version",
            version,
            "--artifact-path",
            tarball.to_str().unwrap(),
        ])
    }

    pub fn current(&self) -> Option<String> {
        std::fs::read_link(self.root.join("releases/current"))
            .ok()
            .map(|p| p.display().to_string())
    }

    /// `status --json` lists `version` as blocked, for a reason that mentions `why`.
    pub fn assert_blocked(&self, version: &str, why: &str) {
        let s = json(&self.run(&["status", "--json"]));
        let reason = s["blocked"][version]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(why),
            "{version} not blocked for {why:?}: {s}"
        );
    }

    /// What the running fixture server says on /health.
    pub fn health_body(&self) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        write!(s, "GET /health HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
    }

    pub fn staging_leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("releases"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = Command::new(fixtures().join("app/stop.sh"))
            .arg(&self.root)
            .status();
    }
}
