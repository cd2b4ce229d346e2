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

// The failpoint sweep (issue 19): every command killed at every failpoint it passes,
// one kill per run, then the invariants, then the same command run again.

mod sweep {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::path::{Path, PathBuf};
    use std::process::Output;

    use super::support::crash::{killed, Root};
    use super::support::registry::Registry;
    use super::support::{code, json, text};

    /// Where a run ended: what the next operator or agent run would see.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Outcome {
        pub code: i32,
        pub current: Option<String>,
        pub running: Option<String>,
        pub previous: serde_json::Value,
        pub pinned: serde_json::Value,
        pub blocked: Vec<String>,
        pub installed: Vec<String>,
        pub sha256: BTreeMap<String, String>,
    }

    impl Outcome {
        fn of(r: &Root, out: &Output) -> Outcome {
            let s = r.state();
            let keys = |v: &serde_json::Value| -> Vec<String> {
                v.as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            };
            let sha256 = s["releases"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v["sha256"].as_str().unwrap_or("").into()))
                        .collect()
                })
                .unwrap_or_default();
            Outcome {
                code: code(out),
                current: r.current(),
                running: r.running(),
                previous: s["previous"].clone(),
                pinned: s["pinned"].clone(),
                blocked: keys(&s["blocked"]),
                installed: installed(&r.root),
                sha256,
            }
        }
    }

    fn installed(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join("releases"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && n != "current")
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Tarballs extracted once per test, to compare releases with.
    #[derive(Default)]
    pub struct Trees {
        dirs: HashMap<PathBuf, tempfile::TempDir>,
    }

    impl Trees {
        fn of(&mut self, tarball: &Path) -> PathBuf {
            self.dirs
                .entry(tarball.to_path_buf())
                .or_insert_with(|| {
                    let d = tempfile::tempdir().unwrap();
                    let st = std::process::Command::new("tar")
                        .arg("-xzf")
                        .arg(tarball)
                        .arg("-C")
                        .arg(d.path())
                        .status()
                        .unwrap();
                    assert!(st.success(), "tar -xzf {}", tarball.display());
                    d
                })
                .path()
                .to_path_buf()
        }
    }

    /// Differences between two trees (names, kinds, contents, link targets).
    fn diff(a: &Path, b: &Path, out: &mut Vec<String>) {
        let names = |d: &Path| -> BTreeSet<String> {
            std::fs::read_dir(d)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let (na, nb) = (names(a), names(b));
        for n in na.symmetric_difference(&nb) {
            out.push(format!(
                "only on one side: {n} ({} vs {})",
                a.display(),
                b.display()
            ));
        }
        for n in na.intersection(&nb) {
            let (pa, pb) = (a.join(n), b.join(n));
            let (ma, mb) = (
                std::fs::symlink_metadata(&pa).unwrap(),
                std::fs::symlink_metadata(&pb).unwrap(),
            );
            if ma.is_dir() && mb.is_dir() {
                diff(&pa, &pb, out);
            } else if ma.file_type().is_symlink() || mb.file_type().is_symlink() {
                if std::fs::read_link(&pa).ok() != std::fs::read_link(&pb).ok() {
                    out.push(format!("link differs: {}", pa.display()));
                }
            } else if std::fs::read(&pa).ok() != std::fs::read(&pb).ok() {
                out.push(format!("content differs: {}", pa.display()));
            }
        }
    }

    /// The invariants that hold after any kill and after any run.
    fn check(r: &Root, trees: &mut Trees, what: &str) {
        let s = r.state();
        let cur = r.current();
        if let Some(c) = &cur {
            assert!(
                r.root.join("releases").join(c).is_dir(),
                "{what}: current -> {c} is not a release"
            );
        }
        // Every release under a final name equals the tarball it was installed from
        // (or, while its install is in flight, the one being installed).
        for v in installed(&r.root) {
            let mut sources = Vec::new();
            if let Some(src) = s["releases"][&v]["source"].as_str() {
                sources.push(src.to_string());
            }
            if s["installing"]["version"] == v.as_str() {
                sources.push(s["installing"]["source"].as_str().unwrap().to_string());
            }
            assert!(
                !sources.is_empty(),
                "{what}: release {v} has no recorded source: {s}"
            );
            let dir = r.root.join("releases").join(&v);
            let matches = sources.iter().any(|src| {
                let path = src.strip_prefix("file://").unwrap_or(src);
                let mut d = Vec::new();
                diff(&dir, &trees.of(Path::new(path)), &mut d);
                d.is_empty()
            });
            assert!(
                matches,
                "{what}: release {v} differs from its tarball {sources:?}"
            );
        }
        for cmd in [
            &["status", "--json"][..],
            &["list", "--json"][..],
            &["why", "--json"][..],
        ] {
            json(&r.run(cmd));
        }
        r.history();
    }

    fn argv(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    /// Run `args` on copies of `base`: once to the end, then once per failpoint it
    /// passes, killed there, checked, and run again. Returns the failpoints.
    pub fn sweep(name: &str, base: &Root, args: &[String]) -> Vec<String> {
        let args = argv(args);
        let mut trees = Trees::default();
        let first = base.fork();
        let (out, points) = first.run_logged(&args);
        check(&first, &mut trees, &format!("{name}: uninterrupted"));
        let want = Outcome::of(&first, &out);
        assert!(first.litter().is_empty(), "{name}: {:?}", first.litter());
        assert!(
            !points.is_empty(),
            "{name}: no failpoint reached: {}",
            text(&out)
        );
        let before = base.current();
        eprintln!("{name}: {} failpoints", points.len());
        for point in &points {
            let what = format!("{name}, killed at {point}");
            let r = base.fork();
            let out = r.run_killed_at(point, &args);
            assert!(killed(&out), "{what}: not killed: {}", text(&out));
            check(&r, &mut trees, &what);
            // A new release killed before its health was confirmed is rolled back and
            // blocked by the next run (the README's promise): an agent does not try it
            // again by itself. The operator's `deploy` does.
            let s = r.state();
            let unconfirmed = args[0] == "update"
                && !s["pending"].is_null()
                && s["pending"]["undo"] != true
                && s["pending"]["kind"] != "rollback"
                && r.current().as_deref() == s["pending"]["version"].as_str();
            // An agent run killed after it blocked the version (while undoing a failed
            // activation) ends as the uninterrupted run did, but the next run only
            // sees the block: it says so and exits 0 instead of the rollback's code.
            let blocked_already = args[0] == "update"
                && s["blocked"].as_object().is_some_and(|b| {
                    b.len() > base.state()["blocked"].as_object().map_or(0, |o| o.len())
                });
            let again = r.run(&args);
            check(&r, &mut trees, &format!("{what}, run again"));
            assert_eq!(r.litter(), Vec::<String>::new(), "{what}, run again");
            let s = r.state();
            assert!(s["pending"].is_null(), "{what}: {s}");
            assert!(s["installing"].is_null(), "{what}: {s}");
            let got = Outcome::of(&r, &again);
            if unconfirmed {
                let v = s["last_operation"]["version"].clone();
                assert_eq!(
                    r.current(),
                    before,
                    "{what}: not rolled back: {}",
                    text(&again)
                );
                assert!(
                    s["blocked"][v.as_str().unwrap_or("?")].is_object(),
                    "{what}: {s}"
                );
            } else if blocked_already {
                assert_eq!(
                    got,
                    Outcome {
                        code: 0,
                        ..want.clone()
                    },
                    "{what}: {}",
                    text(&again)
                );
            } else {
                assert_eq!(got, want, "{what}: {}", text(&again));
            }
        }
        points
    }

    /// An agent root following `prod` of a file:// registry.
    pub fn agent_root(reg: &Registry, extra: &str) -> Root {
        Root::new(&format!(
            r#"app = "demo"
registry = "{}"
channel = "prod"
public_keys = ["{}"]
machine_id = "test-machine"
{extra}"#,
            reg.url, reg.pubkey_line
        ))
    }
}

#[test]
fn every_command_killed_at_every_failpoint_finishes_or_undoes_when_run_again() {
    use support::registry::Registry;
    use sweep::{agent_root, sweep};

    let reached = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let note = |points: Vec<String>| {
        let mut r = reached.lock().unwrap();
        for p in points {
            r.insert(p.split('#').next().unwrap().to_string());
        }
    };
    let push = |versions: &[&str]| deployed(versions);
    std::thread::scope(|scope| {
        // Push mode: deploy, a deploy that fails its health checks, deploy --force,
        // rollback, pin, prune.
        scope.spawn(|| {
            let mut base = push(&["1.0.0"]);
            let d = base.deploy_args("1.1.0", true);
            note(sweep("deploy", &base, &d));
            let d = base.deploy_args("1.1.0", false);
            note(sweep("deploy (unhealthy)", &base, &d));
            // A deploy whose predecessor was killed in its health checks: recovery
            // (roll back, block) runs first, then the deploy.
            let d = base.deploy_args("1.1.0", true);
            let out = base.run_killed_at("activate.restarted", &args(&d));
            assert!(killed(&out), "{}", text(&out));
            note(sweep("deploy after a killed deploy", &base, &d));
        });
        scope.spawn(|| {
            let mut base = push(&["1.0.0", "1.1.0"]);
            let t = base.tarball_of("1.1.0", "rebuilt");
            let d: Vec<String> = ["deploy", "--force", "--version", "1.1.0", "--artifact-path"]
                .iter()
                .map(|s| s.to_string())
                .chain([t.display().to_string()])
                .collect();
            note(sweep("deploy --force", &base, &d));
        });
        scope.spawn(|| {
            let base = push(&["1.0.0", "1.0.1", "1.0.2"]);
            note(sweep("rollback", &base, &["rollback".into()]));
            note(sweep("pin", &base, &["pin".into(), "1.0.0".into()]));
            let mut base = Root::new("");
            for v in ["1.0.0", "1.0.1", "1.0.2", "1.0.3"] {
                let d = base.deploy_args(v, true);
                ok(&base.run(&args(&d)));
                ok(&base.run(&["rollback", "--version", "1.0.0"]));
            }
            note(sweep(
                "prune",
                &base,
                &["prune".into(), "--keep".into(), "1".into()],
            ));
        });
        // A deploy raising the data epoch that fails its health checks: data/ is
        // snapshotted before the switch and restored before switching back.
        scope.spawn(|| {
            let mut base = push(&["1.0.0"]);
            std::fs::create_dir_all(base.root.join("data")).unwrap();
            std::fs::write(base.root.join("data/db"), b"epoch 0").unwrap();
            let mut d = base.deploy_args("1.1.0", false);
            d.extend(["--data-epoch".to_string(), "1".to_string()]);
            note(sweep("deploy (unhealthy, new data epoch)", &base, &d));
        });
        // Pull mode: update (install, switch, restart, health, bake), and one whose
        // release fails its health checks (switch back).
        scope.spawn(|| {
            let tmp = tempfile::tempdir().unwrap();
            let reg = Registry::new(tmp.path());
            let mut base = agent_root(&reg, "bake = \"200ms\"");
            for (v, flavour) in [("1.0.0", ""), ("1.1.0", ""), ("1.2.0", "broken")] {
                let t = base.tarball_of(v, flavour);
                reg.publish(v, &t, None, &[]);
            }
            reg.promote("1.0.0", "prod", &[]);
            ok(&base.run(&["update"]));
            reg.promote("1.1.0", "prod", &[]);
            note(sweep("update", &base, &["update".into()]));
            reg.promote("1.2.0", "prod", &[]);
            note(sweep("update (unhealthy)", &base, &["update".into()]));
        });
    });
    let reached = reached.into_inner().unwrap();
    let missing: Vec<&&str> = updraft::failpoint::ALL
        .iter()
        .filter(|p| !reached.contains(**p))
        .collect();
    assert!(
        missing.is_empty(),
        "failpoints no command reached: {missing:?}"
    );
}
