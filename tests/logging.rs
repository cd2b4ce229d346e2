//! Where log lines go and what they carry: priorities the journal understands, times in
//! plain log files, one report of the final error, and progress of a long download when
//! nobody watches a terminal. Each test runs the real binary with stderr in a file.

mod support;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::app::release_tarball;
use support::fault_server::{Fault, FaultServer};
use support::registry::{agent_app, Registry};

/// Run updraft with stderr in a file; with `journal`, `JOURNAL_STREAM` names that file,
/// exactly as systemd names the stream it connected. Returns the output and stderr.
fn run_logged(dir: &Path, args: &[&str], journal: bool) -> (Output, String) {
    let log = dir.join(format!("stderr-{}.log", next_suffix()));
    let file = File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Command::new(support::bin());
    cmd.args(args)
        .env_remove("UPDRAFT_ROOT")
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("INVOCATION_ID")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file));
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let out = cmd.output().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    (out, err)
}

fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn tarball(dir: &Path, version: &str) -> std::path::PathBuf {
    release_tarball(dir, version, "")
}

#[test]
fn journal_lines_carry_their_priority_and_the_error_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tgz = tarball(dir.path(), "1.0.0");
    let root_s = root.to_str().unwrap();
    let (out, err) = run_logged(
        dir.path(),
        &[
            "--root",
            root_s,
            "deploy",
            "--version",
            "1.0.0",
            "--artifact-path",
            tgz.to_str().unwrap(),
        ],
        true,
    );
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "a deploy logs what it did");
    for line in &lines {
        let prio = line.strip_prefix('<').and_then(|l| l.split_once('>'));
        assert!(
            matches!(prio, Some((p, _)) if ["3", "4", "5", "6", "7"].contains(&p)),
            "every line to the journal starts with <N>: {line:?}\n{err}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("<6>")),
        "info at 6: {err}"
    );

    // A failure: the wrong checksum for the same tarball.
    let (out, err) = run_logged(
        dir.path(),
        &[
            "--root",
            root_s,
            "deploy",
            "--version",
            "1.0.1",
            "--artifact-path",
            tgz.to_str().unwrap(),
            "--sha256",
            &"0".repeat(64),
        ],
        true,
    );
    assert!(!out.status.success(), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("sha256")).collect();
    assert_eq!(errors.len(), 1, "the failure is reported once: {err}");
    assert!(errors[0].starts_with("<3>error: "), "at priority 3: {err}");
}

#[test]
fn plain_log_files_have_times_and_no_priority() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tgz = tarball(dir.path(), "1.0.0");
    let (out, err) = run_logged(
        dir.path(),
        &[
            "--root",
            root.to_str().unwrap(),
            "deploy",
            "--version",
            "1.0.0",
            "--artifact-path",
            tgz.to_str().unwrap(),
        ],
        false,
    );
    assert!(out.status.success(), "{err}");
    let logged: Vec<&str> = err.lines().filter(|l| l.contains("INFO")).collect();
    assert!(!logged.is_empty(), "{err}");
    for line in logged {
        // 2026-11-30T08:54:20.123456Z  INFO ...
        let time = line.split_whitespace().next().unwrap_or("");
        assert!(
            time.len() >= 20 && time.as_bytes()[4] == b'-' && time.contains('T'),
            "an RFC 3339 time first: {line:?}"
        );
        assert!(!line.starts_with('<'), "{line:?}");
    }
}

#[test]
fn a_long_download_logs_its_progress_off_a_terminal() {
    // An agent's download has a known size (the signed one), so progress is logged at
    // 10% steps. The artifact comes from a server that sends half of it, goes silent for
    // two seconds and closes: the download resumes with Range and lasts over 2 s.
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let art = reg.dir.join(format!(
        "demo/releases/1.0.0/demo-1.0.0-{}-linux.tar.gz",
        std::env::consts::ARCH
    ));
    let body = std::fs::read(&art).unwrap();
    let half = body.len() / 2;
    let cdn = FaultServer::start(body, vec![Fault::Stall(half, Duration::from_secs(2))]);
    let doc_path = reg.dir.join("demo/releases/1.0.0/release.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
    for artifact in doc["artifacts"].as_object_mut().unwrap().values_mut() {
        artifact["url"] = cdn.url("/demo-1.0.0.tar.gz").into();
    }
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    let key = updraft::registry::keys::SecretKey::load_from_file(&reg.secret, None).unwrap();
    let sig = key.sign(&bytes, "release on a slow server").unwrap();
    std::fs::write(&doc_path, &bytes).unwrap();
    std::fs::write(
        reg.dir.join("demo/releases/1.0.0/release.json.minisig"),
        sig,
    )
    .unwrap();

    let app = agent_app(&reg, "prod", "");
    let config = app.config.to_str().unwrap().to_owned();
    let (out, err) = run_logged(tmp.path(), &["--config", &config, "update"], false);
    assert!(out.status.success(), "{err}");
    assert_eq!(app.current().as_deref(), Some("1.0.0"), "{err}");
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("installing 1.0.0:") && l.contains('%'))
        .collect();
    assert!(!progress.is_empty(), "a progress line: {err}");
    assert!(
        progress
            .iter()
            .all(|l| l.contains("INFO") && !l.contains('\r')),
        "log lines, not a redrawn terminal line: {err}"
    );
    assert!(
        progress.last().unwrap().contains("(100%)"),
        "the last line says it is complete: {err}"
    );
}
