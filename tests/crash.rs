//! Crash safety: SIGKILL a real `updraft deploy` / `updraft rollback` at many points and
//! check that `current` always names a complete release and the state file stays valid.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::bin;

const FILES: usize = 1500;

/// A release of FILES files; the archive's last entry is `zz-sentinel`, so a tree holding
/// the sentinel and all FILES files is complete.
fn big_tarball(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::create_dir_all(tree.join("data")).unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..FILES {
        let mut buf = vec![0u8; 8192];
        for b in buf.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        std::fs::write(tree.join(format!("data/f{i:05}")), &buf).unwrap();
    }
    std::fs::write(tree.join("zz-sentinel"), b"complete").unwrap();
    let tarball = dir.join("big.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .args(["data", "bin", "zz-sentinel"])
        .status()
        .unwrap();
    assert!(st.success());
    tarball
}

fn assert_consistent(root: &Path, what: &str) {
    let link = root.join("releases/current");
    if let Ok(target) = std::fs::read_link(&link) {
        let dir = root.join("releases").join(&target);
        assert!(
            dir.is_dir(),
            "{what}: current -> {target:?} is not a directory"
        );
        assert_eq!(
            std::fs::read(dir.join("zz-sentinel")).ok().as_deref(),
            Some(&b"complete"[..]),
            "{what}: current -> {target:?} is incomplete"
        );
        let n = std::fs::read_dir(dir.join("data")).unwrap().count();
        assert_eq!(n, FILES, "{what}: current -> {target:?} has {n} files");
    } else {
        panic!("{what}: current link missing although a release was active before");
    }
    let st = root.join(".updraft/state.json");
    if st.exists() {
        let bytes = std::fs::read(&st).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("{what}: state file unreadable: {e}"));
    }
}

fn updraft(config: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("--config").arg(config).env_remove("UPDRAFT_ROOT");
    c
}

#[test]
fn sigkill_at_many_points_never_breaks_current() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let tarball = big_tarball(dir.path());
    let config = dir.path().join("updraft.toml");
    std::fs::write(
        &config,
        format!(
            r#"root = "{}"
keep = 4
[services]
restart = ["sh", "-c", "sleep 0.05"]
[[health]]
command = ["sh", "-c", "sleep 0.1; test -f \"$UPDRAFT_RELEASE_DIR/zz-sentinel\""]
timeout = "5s"
retries = 0
"#,
            root.display()
        ),
    )
    .unwrap();
    let deploy = |v: &str| {
        let mut c = updraft(&config);
        c.args([
            "deploy",
            "--version",
            v,
            "--artifact-path",
            tarball.to_str().unwrap(),
        ]);
        c
    };

    // Calibrate: how long one full deploy takes here (not asserted, only to spread kills).
    // The quicker of two: the first pays one-off costs (page cache, the fixture's own
    // writes still being flushed) and would push most kill points past the end.
    let mut full = Duration::MAX;
    for v in ["1.0.0", "1.0.1"] {
        let t0 = Instant::now();
        let out = deploy(v).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        full = full.min(t0.elapsed());
        assert_consistent(&root, &format!("after calibration deploy {v}"));
    }
    let full = full.max(Duration::from_millis(100));

    let points = 24;
    let mut killed = 0;
    for k in 0..points {
        let v = format!("1.{}.0", k + 1);
        let mut cmd = if k % 4 == 3 {
            let mut c = updraft(&config);
            c.args(["rollback"]);
            c
        } else {
            deploy(&v)
        };
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd.process_group(0);
        let mut child = cmd.spawn().unwrap();
        let delay = full.mul_f64(k as f64 / points as f64 * 1.1);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_consistent(&root, &format!("kill point {k} ({delay:?})"));
        // Any later command sees a valid state (status reads it without the lock).
        let st = updraft(&config)
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "status after kill {k}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    // Rollbacks are quick and often finish before their kill; most deploys must not.
    assert!(
        killed >= points / 3,
        "only {killed} of {points} runs were killed mid-way"
    );

    // The next operation cleans up leftovers and recovers a pending activation.
    let out = deploy("9.0.0").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_consistent(&root, "after final deploy");
    let leftovers: Vec<String> = std::fs::read_dir(root.join("releases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "leftovers: {leftovers:?}");
    let status: serde_json::Value = serde_json::from_slice(
        &updraft(&config)
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["current"], "9.0.0");
    assert!(status["pending"].is_null());
}

// Regression tests for what the run after a kill does (issue 19). Each kills the real
// binary at a named failpoint (`src/failpoint.rs`), then runs the next command.

use support::crash::{killed, Root};
use support::{json, ok, text};

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn an_event_after_a_torn_history_line_starts_on_a_line_of_its_own() {
    let mut r = Root::new("");
    let d = r.deploy_args("1.0.0", true);
    ok(&r.run(&args(&d)));
    // What a crash in the middle of an append leaves.
    let h = r.root.join(".updraft/history.jsonl");
    let mut bytes = std::fs::read(&h).unwrap();
    bytes.extend_from_slice(br#"{"at":"2026-11-29T10:04:0"#);
    std::fs::write(&h, bytes).unwrap();
    ok(&r.run(&["pin", "1.0.0"]));
    let text = std::fs::read_to_string(&h).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("the pin was appended to the torn line ({e}):\n{text}"));
    assert_eq!(last["event"], "pin", "{text}");
    json(&r.run(&["why", "--json"]));
}

#[test]
fn temporary_files_of_a_killed_run_are_removed_by_the_next_run() {
    // A root with 1.0.0 active, and the deploy of 1.1.0 to kill.
    let fresh = || {
        let mut r = Root::new("");
        let d = r.deploy_args("1.0.0", true);
        ok(&r.run(&args(&d)));
        let d = r.deploy_args("1.1.0", true);
        (r, d)
    };
    let (r, d) = fresh();
    let (out, points) = r.run_logged(&args(&d));
    ok(&out);
    let mut seen = std::collections::BTreeSet::new();
    for point in points.iter().filter(|p| p.starts_with("fsutil.")) {
        let (r, d) = fresh();
        let out = r.run_killed_at(point, &args(&d));
        assert!(killed(&out), "not killed at {point}: {}", text(&out));
        let litter = r.litter();
        assert!(!litter.is_empty(), "killed at {point} but nothing left");
        for l in &litter {
            seen.insert(l.split('/').next().unwrap().to_string());
        }
        // Any command that takes the lock cleans up.
        ok(&r.run(&["prune", "--dry-run"]));
        assert_eq!(r.litter(), Vec::<String>::new(), "after a kill at {point}");
    }
    // The kills left litter in every directory that gets temporary files.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [".updraft", "commands", "releases"]
    );
}

/// A root with `versions` deployed in order (all healthy).
fn deployed(versions: &[&str]) -> Root {
    let mut r = Root::new("");
    for v in versions {
        let d = r.deploy_args(v, true);
        ok(&r.run(&args(&d)));
    }
    r
}

/// The failpoints `args` passes on a root made by `fresh`, from the first named `from`.
fn points_from(fresh: &dyn Fn() -> Root, args: &[&str], from: &str) -> Vec<String> {
    let r = fresh();
    let (out, points) = r.run_logged(args);
    ok(&out);
    let start = points
        .iter()
        .position(|p| p.starts_with(from))
        .unwrap_or_else(|| panic!("{args:?} never reached {from}: {points:?}"));
    points[start..].to_vec()
}

#[test]
fn a_deploy_killed_after_the_rename_is_recognised_as_ours_by_the_next() {
    for (sha, point) in [
        (false, "install.renamed"),
        (true, "install.renamed"),
        (false, "install.recorded"),
    ] {
        let mut r = deployed(&["1.0.0"]);
        let mut d = r.deploy_args("1.0.2", true);
        if sha {
            let t = r.tarball("1.0.2", true);
            let out = std::process::Command::new("sha256sum")
                .arg(&t)
                .output()
                .unwrap();
            let hex = String::from_utf8_lossy(&out.stdout)[..64].to_string();
            d.extend(["--sha256".into(), hex]);
        }
        let out = r.run_killed_at(point, &args(&d));
        assert!(killed(&out), "{point}: {}", text(&out));
        assert!(r.root.join("releases/1.0.2").is_dir());
        let out = r.run(&args(&d));
        ok(&out);
        assert_eq!(r.current().as_deref(), Some("1.0.2"));
        let s = r.state();
        assert_eq!(
            s["releases"]["1.0.2"]["sha256"].as_str().map(str::len),
            Some(64)
        );
        assert!(s["installing"].is_null(), "{s}");
        if point == "install.renamed" {
            let recovered = r
                .history()
                .into_iter()
                .any(|e| e["event"] == "recover" && e["version"] == "1.0.2");
            assert!(
                recovered,
                "the history does not say the install was recovered"
            );
        }
    }
}

#[test]
fn a_rollback_killed_at_any_point_after_the_switch_lands_on_the_same_target_when_run_again() {
    let fresh = || deployed(&["1.0.0", "1.0.1", "1.0.2"]);
    let points = points_from(&fresh, &["rollback"], "activate.switched");
    assert!(points.len() >= 5, "{points:?}");
    for point in &points {
        let r = fresh();
        let out = r.run_killed_at(point, &["rollback"]);
        assert!(killed(&out), "{point}: {}", text(&out));
        let out = r.run(&["rollback"]);
        ok(&out);
        assert_eq!(
            r.current().as_deref(),
            Some("1.0.1"),
            "killed at {point}: {}",
            text(&out)
        );
        assert_eq!(r.running().as_deref(), Some("1.0.1"), "killed at {point}");
        let s = r.state();
        assert_eq!(s["previous"], "1.0.2", "killed at {point}: {s}");
        assert!(s["pending"].is_null(), "killed at {point}: {s}");
        // `previous` was kept: rolling back again returns to 1.0.2.
        ok(&r.run(&["rollback"]));
        assert_eq!(r.current().as_deref(), Some("1.0.2"), "killed at {point}");
    }
}

#[test]
fn a_kill_during_recovery_still_ends_rolled_back_and_blocked() {
    // 1.1.0 killed in its health check; then the recovering run killed at each of its
    // own steps; then one more run.
    let fresh = || {
        let mut r = deployed(&["1.0.0"]);
        let d = r.deploy_args("1.1.0", true);
        let out = r.run_killed_at("activate.restarted", &args(&d));
        assert!(killed(&out), "{}", text(&out));
        r
    };
    let points = points_from(&fresh, &["prune", "--dry-run"], "recover.");
    assert!(points.len() >= 3, "{points:?}");
    for point in &points {
        let r = fresh();
        let out = r.run_killed_at(point, &["prune", "--dry-run"]);
        assert!(killed(&out), "{point}: {}", text(&out));
        ok(&r.run(&["prune", "--dry-run"]));
        assert_eq!(r.current().as_deref(), Some("1.0.0"), "killed at {point}");
        assert_eq!(r.running().as_deref(), Some("1.0.0"), "killed at {point}");
        let s = r.state();
        assert!(s["pending"].is_null(), "killed at {point}: {s}");
        let reason = s["blocked"]["1.1.0"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("interrupted"), "killed at {point}: {s}");
    }
}

#[test]
fn current_moved_by_another_tool_is_noticed_and_previous_kept() {
    let r = deployed(&["1.0.0", "1.1.0"]);
    // The seed's rollback script: `ln -sfn` to the older release.
    let st = std::process::Command::new("ln")
        .args(["-sfn", "1.0.0"])
        .arg(r.root.join("releases/current"))
        .status()
        .unwrap();
    assert!(st.success());
    let s = json(&r.run(&["status", "--json"]));
    assert_eq!(s["current"], "1.0.0", "{s}");
    assert_eq!(s["previous"], "1.1.0", "{s}");
    let out = r.run(&["rollback"]);
    ok(&out);
    assert_eq!(r.current().as_deref(), Some("1.1.0"), "{}", text(&out));
    let moved: Vec<_> = r
        .history()
        .into_iter()
        .filter(|e| e["event"] == "moved")
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(
        moved[0]["message"]
            .as_str()
            .unwrap()
            .contains("from 1.1.0 to 1.0.0"),
        "{moved:?}"
    );
    let log = std::fs::read_to_string(r.root.join("logs/releases.log")).unwrap();
    assert!(
        log.contains("[moved] current moved outside updraft from 1.1.0 to 1.0.0"),
        "{log}"
    );
    let s = json(&r.run(&["status", "--json"]));
    assert_eq!(s["previous"], "1.0.0", "{s}");
}
