//! Push-mode deploy, rollback, list, status and prune through the real binary, with the
//! fixture app's real server process restarted and health-checked on loopback.

mod support;
use support::app::*;

#[test]
fn deploy_list_rollback_and_restart_the_real_server() {
    let app = App::new("");
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let t2 = release_tarball(app.tmp(), "1.1.0", "");
    std::fs::create_dir_all(app.root.join("data")).unwrap();
    std::fs::write(app.root.join("data/db.sqlite"), b"precious").unwrap();

    ok(&app.deploy("v1.0.0", &t1));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    ok(&app.deploy("1.1.0", &t2));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));

    let list = app.run(&["list", "--json"]);
    ok(&list);
    let j = json(&list);
    assert_eq!(j["total"], 2);
    assert_eq!(j["current"], "1.1.0");
    let rows = j["releases"].as_array().unwrap();
    assert_eq!(rows[0]["version"], "1.0.0");
    assert_eq!(rows[0]["previous"], true);
    assert_eq!(rows[1]["current"], true);
    assert!(rows[1]["size_bytes"].as_u64().unwrap() > 0);
    let text = stdout(&app.run(&["list"]));
    assert!(
        text.contains("* 1.1.0")
            && text.contains("← current")
            && text.contains("Total: 2 releases"),
        "{text}"
    );

    // Default rollback: the previous release, and the server really restarts on it.
    ok(&app.run(&["rollback"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    let missing = app.run(&["rollback", "--version", "9.9.9"]);
    assert_eq!(code(&missing), 6, "{}", stderr(&missing));
    let err = stderr(&missing);
    assert!(
        err.contains("release not found") && err.contains("1.0.0, 1.1.0"),
        "{err}"
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));

    // Config and data are never touched; the log has every operation.
    assert_eq!(
        std::fs::read(app.root.join("data/db.sqlite")).unwrap(),
        b"precious"
    );
    assert!(std::fs::read_to_string(app.root.join("config/app.env"))
        .unwrap()
        .starts_with("PORT="));
    let log = std::fs::read_to_string(app.root.join("logs/releases.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("activated")).count(),
        3,
        "{log}"
    );

    let status = app.run(&["status", "--json"]);
    ok(&status);
    let s = json(&status);
    assert_eq!(s["current"], "1.0.0");
    assert_eq!(s["previous"], "1.1.0");
    assert_eq!(s["last_operation"]["kind"], "rollback");
    // Push mode follows no channel: a rollback holds nothing back.
    assert_eq!(s["blocked"], serde_json::json!({}), "{s}");
}

#[test]
fn failing_health_check_rolls_back_and_blocks() {
    let app = App::new("");
    let good = release_tarball(app.tmp(), "1.0.0", "");
    let bad = release_tarball(app.tmp(), "1.2.0", "broken");
    ok(&app.deploy("1.0.0", &good));
    let out = app.deploy("1.2.0", &bad);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("1.2.0") && err.contains("switched back to 1.0.0") && err.contains("blocked"),
        "{err}"
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("1.2.0", "health");
    let log = std::fs::read_to_string(app.root.join("logs/releases.log")).unwrap();
    assert!(log.contains("[deploy] 1.2.0 FAILED"), "{log}");
}

#[test]
fn first_release_failing_leaves_no_current() {
    let app = App::new("");
    let bad = release_tarball(app.tmp(), "1.0.0", "crash");
    let out = app.deploy("1.0.0", &bad);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(app.current(), None);
}

#[test]
fn releases_are_immutable_unless_forced() {
    let app = App::new("");
    let a = release_tarball(app.tmp(), "1.0.0", "");
    let b = release_tarball(app.tmp(), "1.0.0", "broken");
    ok(&app.deploy("1.0.0", &a));
    let again = app.deploy("1.0.0", &a);
    ok(&again);
    assert!(
        stdout(&again).contains("already installed"),
        "{}",
        stdout(&again)
    );
    let other = app.deploy("1.0.0", &b);
    assert_eq!(code(&other), 1, "{}", stderr(&other));
    assert!(stderr(&other).contains("--force"), "{}", stderr(&other));
    assert!(!app.root.join("releases/1.0.0/BROKEN").exists());
    assert!(
        app.staging_leftovers().is_empty(),
        "{:?}",
        app.staging_leftovers()
    );
}

#[test]
fn checksum_mismatch_changes_nothing() {
    let app = App::new("");
    let a = release_tarball(app.tmp(), "1.0.0", "");
    let b = release_tarball(app.tmp(), "1.1.0", "");
    ok(&app.deploy("1.0.0", &a));
    let out = app.run(&[
        "deploy",
        "--version",
        "1.1.0",
        "--artifact-path",
        b.to_str().unwrap(),
        "--sha256",
        &"0".repeat(64),
    ]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(!app.root.join("releases/1.1.0").exists());
    assert!(app.staging_leftovers().is_empty());

    // The right checksum is accepted.
    let sha = sha256_file(&b);
    ok(&app.run(&[
        "deploy",
        "--version",
        "1.1.0",
        "--artifact-path",
        b.to_str().unwrap(),
        "--sha256",
        &sha,
    ]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
}

fn sha256_file(p: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn hostile_tarballs_are_refused_without_a_trace() {
    // The limits the fixtures are built against (fixtures/README.md).
    let app = App::new("[limits]\nmax_entries = 100\nmax_unpacked_bytes = 16777216");
    let good = release_tarball(app.tmp(), "1.0.0", "");
    ok(&app.deploy("1.0.0", &good));
    let hostile = fixtures().join("hostile");
    let mut seen = 0;
    for entry in std::fs::read_dir(&hostile).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".tar.gz") || name.starts_with("setuid") {
            continue;
        }
        seen += 1;
        let out = app.deploy("6.6.6", &p);
        assert_eq!(code(&out), 5, "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("refused artifact"),
            "{name}: {}",
            stderr(&out)
        );
        assert_eq!(app.current().as_deref(), Some("1.0.0"), "{name}");
        assert!(!app.root.join("releases/6.6.6").exists(), "{name}");
        assert!(
            app.staging_leftovers().is_empty(),
            "{name}: {:?}",
            app.staging_leftovers()
        );
    }
    assert!(seen >= 20, "expected the hostile fixtures, found {seen}");
    // Nothing escaped into the temp dir around the root.
    let mut outside: Vec<String> = std::fs::read_dir(app.tmp())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("tree-") && !n.ends_with(".tar.gz"))
        .collect();
    outside.sort();
    assert_eq!(outside, vec!["app", "updraft.toml"]);
}

#[test]
fn prune_keeps_n_and_never_current_or_previous() {
    let app = App::new("");
    std::fs::write(
        &app.config,
        std::fs::read_to_string(&app.config)
            .unwrap()
            .replace("keep = 5", "keep = 3"),
    )
    .unwrap();
    for i in 0..6 {
        let v = format!("1.{i}.0");
        ok(&app.deploy(&v, &release_tarball(app.tmp(), &v, "")));
    }
    let j = json(&app.run(&["list", "--json"]));
    let versions: Vec<&str> = j["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1.3.0", "1.4.0", "1.5.0"]);
    // Roll back to the oldest kept; prune --keep 1 must keep current and previous.
    ok(&app.run(&["rollback", "--version", "1.3.0"]));
    let out = app.run(&["prune", "--keep", "1", "--json"]);
    ok(&out);
    assert_eq!(json(&out)["removed"], serde_json::json!(["1.4.0"]));
    let j = json(&app.run(&["list", "--json"]));
    assert_eq!(j["total"], 2);
}

/// A release that failed its health checks is blocked: it goes before healthy ones, so
/// it never costs a release that could be rolled back to its slot.
#[test]
fn prune_removes_blocked_releases_before_healthy_ones() {
    let app = App::new("");
    for v in ["1.0.0", "1.1.0"] {
        ok(&app.deploy(v, &release_tarball(app.tmp(), v, "")));
    }
    let failed = app.deploy("1.2.0", &release_tarball(app.tmp(), "1.2.0", "broken"));
    assert_eq!(code(&failed), 4, "{}", stderr(&failed));
    app.assert_blocked("1.2.0", "health");
    for v in ["1.3.0", "1.4.0"] {
        ok(&app.deploy(v, &release_tarball(app.tmp(), v, "")));
    }
    let out = app.run(&["prune", "--keep", "3", "--json"]);
    ok(&out);
    assert_eq!(
        json(&out)["removed"],
        serde_json::json!(["1.0.0", "1.2.0"]),
        "{}",
        stdout(&out)
    );
    let j = json(&app.run(&["list", "--json"]));
    let versions: Vec<&str> = j["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1.1.0", "1.3.0", "1.4.0"]);
}

#[test]
fn a_tarball_naming_another_version_is_not_deployed() {
    let app = App::new("");
    let t = release_tarball(app.tmp(), "1.0.0", "");
    let out = app.deploy("1.1.0", &t);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("VERSION file says \"1.0.0\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.current(), None);
    assert!(!app.root.join("releases/1.1.0").exists());
    assert!(app.staging_leftovers().is_empty());
    ok(&app.run(&[
        "deploy",
        "--version",
        "1.1.0",
        "--artifact-path",
        t.to_str().unwrap(),
        "--allow-version-mismatch",
    ]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
}

#[test]
fn artifact_url_streams_from_a_loopback_http_server() {
    let app = App::new("");
    let www = app.tmp().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let t = release_tarball(app.tmp(), "2.0.0", "");
    std::fs::copy(&t, www.join("app-2.0.0.tar.gz")).unwrap();
    let (server, base) = spawn_serve(&www);
    let url = format!("{base}/app-2.0.0.tar.gz");
    let out = app.run(&[
        "deploy",
        "--version",
        "2.0.0",
        "--artifact-url",
        &url,
        "--sha256",
        &sha256_file(&t),
    ]);
    let missing = app.run(&[
        "deploy",
        "--version",
        "2.0.1",
        "--artifact-url",
        &format!("{base}/nope.tar.gz"),
    ]);
    drop(server);
    ok(&out);
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 2.0.0"));
    assert_eq!(code(&missing), 6, "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn pre_activation_check_runs_inside_the_staged_release() {
    let app = App::new(r#"pre_activate = ["sh", "-c", "test -f VERSION && ! test -f BROKEN"]"#);
    let good = release_tarball(app.tmp(), "1.0.0", "");
    let bad = release_tarball(app.tmp(), "1.1.0", "broken");
    ok(&app.deploy("1.0.0", &good));
    let out = app.deploy("1.1.0", &bad);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pre-activation check failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(!app.root.join("releases/1.1.0").exists());
}

#[test]
fn concurrent_operations_are_serialised_by_the_lock() {
    // The first deploy holds the lock while its pre-activation check sleeps.
    let app = App::new(r#"pre_activate = ["sleep", "3"]"#);
    let t = release_tarball(app.tmp(), "1.0.0", "");
    let mut first = std::process::Command::new(bin())
        .arg("--config")
        .arg(&app.config)
        .args([
            "deploy",
            "--version",
            "1.0.0",
            "--artifact-path",
            t.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    // Wait until the first run is inside the lock (its staging or release exists).
    for _ in 0..200 {
        if app.root.join("releases/1.0.0").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let quick = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        quick.path(),
        std::fs::read_to_string(&app.config)
            .unwrap()
            .replace("lock_timeout = \"20s\"", "lock_timeout = \"200ms\""),
    )
    .unwrap();
    let second = std::process::Command::new(bin())
        .arg("--config")
        .arg(quick.path())
        .args(["prune"])
        .output()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert_eq!(code(&second), 3, "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another updraft operation"),
        "{}",
        stderr(&second)
    );
}

#[test]
fn release_commands_are_copied_like_the_seed() {
    let app = App::new("");
    let t = release_tarball(app.tmp(), "1.0.0", "");
    ok(&app.deploy("1.0.0", &t));
    let copied = app.root.join("commands/hello.sh");
    assert!(copied.exists(), "fixture release ships commands/hello.sh");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copied).unwrap().permissions().mode() & 0o111,
        0o111
    );
}

/// A VM first managed by the seed's scripts: releases named `v1.0.0`, `current` an
/// absolute link made by `ln -sfn`. updraft takes it over in place: lists those
/// releases, rolls back to them, prunes them, and never renames them.
#[test]
fn a_root_managed_by_the_seed_scripts_is_taken_over_in_place() {
    let app = App::new("");
    let releases = app.root.join("releases");
    for v in ["1.0.0", "1.1.0"] {
        // What deploy-release.sh does: mkdir, tar -xzf, ln -sfn with absolute paths.
        let dir = releases.join(format!("v{v}"));
        std::fs::create_dir_all(&dir).unwrap();
        let t = release_tarball(app.tmp(), v, "");
        let st = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&t)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        let st = std::process::Command::new("ln")
            .arg("-sfn")
            .arg(&dir)
            .arg(releases.join("current"))
            .status()
            .unwrap();
        assert!(st.success());
    }

    let list = app.run(&["list", "--json"]);
    ok(&list);
    let j = json(&list);
    assert_eq!(j["total"], 2, "{j}");
    assert_eq!(j["current"], "1.1.0", "{j}");
    assert!(j["releases"][1]["size_bytes"].as_u64().unwrap() > 0, "{j}");

    // Same version again: updraft has no checksum for it, so it says how to go on.
    let t11 = release_tarball(app.tmp(), "1.1.0", "");
    let again = app.deploy("1.1.0", &t11);
    assert_ne!(code(&again), 0);
    let err = stderr(&again);
    assert!(
        err.contains("not by updraft") && err.contains("updraft rollback --version 1.1.0"),
        "{err}"
    );
    assert!(app.current().unwrap().ends_with("/v1.1.0"));

    ok(&app.deploy("1.2.0", &release_tarball(app.tmp(), "1.2.0", "")));
    assert_eq!(app.current().as_deref(), Some("1.2.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.2.0"));

    // Back to the seed-era release, under its own name.
    ok(&app.run(&["rollback"]));
    assert_eq!(app.current().as_deref(), Some("v1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
    ok(&app.run(&["rollback", "--version", "v1.0.0"]));
    assert_eq!(app.current().as_deref(), Some("v1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    // Bytes someone vouches for (--sha256 here, a signed release document for the
    // agent) replace the unverified seed copy of 1.1.0, under its name, and are
    // recorded: the same deploy again is then a no-op.
    let sha = sha256_file(&t11);
    let vouched = [
        "deploy",
        "--version",
        "1.1.0",
        "--artifact-path",
        t11.to_str().unwrap(),
        "--sha256",
        &sha,
    ];
    ok(&app.run(&vouched));
    assert_eq!(app.current().as_deref(), Some("v1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
    ok(&app.run(&vouched));
    assert_eq!(app.current().as_deref(), Some("v1.1.0"));

    // Current 1.2.0, previous 1.1.0: the seed-era 1.0.0 is the one to go.
    ok(&app.run(&["rollback", "--version", "1.2.0"]));
    ok(&app.run(&["prune", "--keep", "2"]));
    let mut left: Vec<String> = std::fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["1.2.0", "current", "v1.1.0"]);
    assert!(app.staging_leftovers().is_empty());
}

/// A release whose server keeps dying and being started again by its supervisor (as
/// systemd's Restart= would) can pass a forgiving health check; the supervisor's
/// restart counter gives it away, during the bake period as right after the restart.
#[test]
fn a_crash_looping_release_is_caught_by_the_restart_counter() {
    let app = App::new("bake = \"5s\"");
    let cfg = std::fs::read_to_string(&app.config).unwrap();
    let restart = fixtures().join("app/restart.sh");
    let plain = format!(
        "restart = [\"{}\", \"{}\"]",
        restart.display(),
        app.root.display()
    );
    assert!(cfg.contains(&plain), "{cfg}");
    let supervised = format!(
        "restart = [\"{}\", \"{}\", \"--supervised\"]\nrestart_count = [\"cat\", \"{}/data/restarts\"]",
        restart.display(),
        app.root.display(),
        app.root.display()
    );
    // Checks patient enough to see each restarted server come back: what fails the
    // release must be the supervisor's count, not a check that gave up.
    let cfg = cfg.replace(&plain, &supervised);
    std::fs::write(&app.config, cfg.replace("retries = 20", "retries = 50")).unwrap();

    ok(&app.deploy("1.0.0", &release_tarball(app.tmp(), "1.0.0", "")));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    // 1.1.0's server dies 1.5 s after each start and is started again 0.2 s later.
    let out = app.deploy("1.1.0", &release_tarball(app.tmp(), "1.1.0", "dies"));
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("restarted") && err.contains("by its supervisor"),
        "{err}"
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("1.1.0", "supervisor");
}

/// A write that fails while unpacking (here a file-size limit, as `LimitFSIZE=` or a
/// full disk would) is the machine's problem, not the tarball's: exit 1, not 5, with
/// what to do, no staging left behind, and `current` where it was.
#[test]
fn a_failed_write_while_unpacking_is_not_blamed_on_the_tarball() {
    use std::os::unix::process::CommandExt;
    let app = App::new("");
    ok(&app.deploy("1.0.0", &release_tarball(app.tmp(), "1.0.0", "")));
    let tree = app.tmp().join("big");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("VERSION"), "2.0.0\n").unwrap();
    std::fs::write(tree.join("bin/blob"), vec![7u8; 4 << 20]).unwrap();
    let tarball = app.tmp().join("big.tar.gz");
    tar_gz(&tree, &tarball);

    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--config")
        .arg(&app.config)
        .args(["deploy", "--version", "2.0.0", "--artifact-path"])
        .arg(&tarball);
    // SAFETY: only async-signal-safe calls between fork and exec. An ignored SIGXFSZ
    // stays ignored across exec, so a write past the limit fails with EFBIG.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write ./bin/blob")
            && err.contains("file size limit")
            && err.contains("`current` is unchanged"),
        "{err}"
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(app.staging_leftovers().is_empty());
    assert!(!app.root.join("releases/2.0.0").exists());
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

/// `current` at a seed-era release (absolute link, extracted by the seed's `tar -xzf`):
/// a failing first deploy over it must put `current` back on it and restart it, not
/// leave the app with no `current` at all. The seed names a release by its git hash when
/// no VERSION is given: that is a version (a label), switched back to under its own
/// name; a directory whose name is no version at all is restored exactly as it was.
#[test]
fn a_failed_deploy_over_a_seed_release_restores_it() {
    // (seed directory, is it a version, what the switch back says)
    for (name, managed, says) in [
        ("a1b2c3d", true, "switched back to a1b2c3d"),
        ("build~42", false, "a release updraft did not install"),
    ] {
        let app = App::new("");
        let releases = app.root.join("releases");
        let seed = releases.join(name);
        std::fs::create_dir_all(&seed).unwrap();
        let t = release_tarball(app.tmp(), name, "");
        let st = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&t)
            .arg("-C")
            .arg(&seed)
            .status()
            .unwrap();
        assert!(st.success());
        std::os::unix::fs::symlink(&seed, releases.join("current")).unwrap();

        let out = app.deploy("1.0.0", &release_tarball(app.tmp(), "1.0.0", "broken"));
        assert_eq!(code(&out), 4, "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{name}: {err}");
        let want = if managed {
            name.to_string()
        } else {
            seed.to_str().unwrap().to_string()
        };
        assert_eq!(
            app.current().as_deref(),
            Some(want.as_str()),
            "{name}: current must point at the seed's release"
        );
        assert_eq!(app.health_body(), Some(format!("ok {name}")));
        app.assert_blocked("1.0.0", "health");

        // A good release takes over as usual.
        ok(&app.deploy("1.1.0", &release_tarball(app.tmp(), "1.1.0", "")));
        assert_eq!(app.current().as_deref(), Some("1.1.0"));
        assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
    }
}

/// An app whose services are systemd units, through the fixture systemctl (PID 1 is not
/// systemd here): unit `demo` starts the fixture server in `releases/current`.
fn unit_app(services: &str, unit: &str) -> App {
    let app = App::new("");
    let units = app.tmp().join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("demo"),
        format!(
            "ROOT={root}\nWORKDIR={root}/releases/current\n{unit}\n",
            root = app.root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        &app.config,
        format!(
            r#"root = "{root}"
keep = 5
lock_timeout = "20s"

[services]
units = ["demo"]
systemctl = ["{systemctl}", "--units", "{units}"]
timeout = "30s"
{services}

[[health]]
http = "http://127.0.0.1:{port}/health"
timeout = "2s"
retries = 20
interval = "100ms"
"#,
            root = app.root.display(),
            systemctl = fixtures().join("app/systemctl").display(),
            units = units.display(),
            port = app.port,
        ),
    )
    .unwrap();
    app
}

/// The reload trap: a unit whose reload only sends SIGHUP, which the server ignores,
/// keeps serving the old version while its health check passes. Reloading is opt-in,
/// and even then the unit's main process must run from the new release.
#[test]
fn a_unit_still_running_the_old_release_fails_the_activation() {
    let app = unit_app("reload_units = true", "");
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let t2 = release_tarball(app.tmp(), "1.1.0", "");
    ok(&app.deploy("1.0.0", &t1));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    let out = app.deploy("1.1.0", &t2);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    let old = app.root.join("releases/1.0.0").canonicalize().unwrap();
    assert!(
        err.contains(&format!("unit demo still runs {}", old.display())),
        "{err}"
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("1.1.0", "still runs");

    // Restarting (the default) really runs the new code.
    let config = std::fs::read_to_string(&app.config).unwrap();
    std::fs::write(&app.config, config.replace("reload_units = true", "")).unwrap();
    ok(&app.run(&["unblock", "1.1.0"]));
    ok(&app.deploy("1.1.0", &t2));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
}

/// A supervisor that restarts its child but itself keeps running from the old release:
/// the new code answers the health check, yet the unit's main process is the old one.
#[test]
fn a_supervisor_left_in_the_old_release_fails_the_activation() {
    let app = unit_app("", "SUPERVISED=--supervised\nRESTART=child");
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let t2 = release_tarball(app.tmp(), "1.1.0", "");
    ok(&app.deploy("1.0.0", &t1));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    let out = app.deploy("1.1.0", &t2);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let old = app.root.join("releases/1.0.0").canonicalize().unwrap();
    assert!(
        stderr(&out).contains(&format!("unit demo still runs {}", old.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
}

/// `services.pidfile`: the same proof for a `restart` command, here one that only
/// signals the running server (which ignores it) once one runs.
#[test]
fn a_restart_command_with_a_pidfile_must_start_the_new_release() {
    let app = App::new("");
    let restart = fixtures().join("app/restart.sh");
    let root = app.root.display().to_string();
    let script = format!(
        "if [ -f {root}/data/server.pid ]; then kill -HUP $(cat {root}/data/server.pid); \
         else cd {root}/releases/current && {restart} {root}; fi",
        restart = restart.display()
    );
    let config = std::fs::read_to_string(&app.config).unwrap();
    let services = format!(
        "[services]\nrestart = [\"sh\", \"-c\", {script:?}]\npidfile = \"{root}/data/server.pid\"\n"
    );
    let start = config.find("[services]").unwrap();
    let end = config.find("[[health]]").unwrap();
    std::fs::write(
        &app.config,
        format!("{}{services}\n{}", &config[..start], &config[end..]),
    )
    .unwrap();
    ok(&app.deploy("1.0.0", &release_tarball(app.tmp(), "1.0.0", "")));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    let out = app.deploy("1.1.0", &release_tarball(app.tmp(), "1.1.0", ""));
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let old = app.root.join("releases/1.0.0").canonicalize().unwrap();
    assert!(
        stderr(&out).contains(&format!("still runs {}", old.display()))
            && stderr(&out).contains("pidfile"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

/// `health.expect_version`: a 200 from the old code is not a pass. The `reload` command
/// only signals the server, which ignores it and keeps answering "ok 1.0.0".
#[test]
fn expect_version_fails_a_health_check_answered_by_the_old_code() {
    let app = App::new("");
    let config = std::fs::read_to_string(&app.config).unwrap();
    let reload = format!(
        "reload = [\"sh\", \"-c\", \"kill -HUP $(cat {}/data/server.pid)\"]\n",
        app.root.display()
    );
    let config = config
        .replace("[services]\n", &format!("[services]\n{reload}"))
        .replace("[[health]]\n", "[[health]]\nexpect_version = true\n");
    std::fs::write(&app.config, config).unwrap();
    ok(&app.deploy("1.0.0", &release_tarball(app.tmp(), "1.0.0", "")));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    let out = app.deploy("1.1.0", &release_tarball(app.tmp(), "1.1.0", ""));
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not say it runs 1.1.0"),
        "{}",
        stderr(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

/// A unit systemd does not know is a config mistake, found before the switch: on a first
/// install nothing becomes `current`, nothing is blocked, and the message names the unit.
#[test]
fn a_unit_systemd_does_not_know_is_a_config_error_before_the_switch() {
    let app = unit_app("", "");
    let config = std::fs::read_to_string(&app.config).unwrap();
    std::fs::write(
        &app.config,
        config.replace("units = [\"demo\"]", "units = [\"demo\", \"ghost\"]"),
    )
    .unwrap();
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let out = app.deploy("1.0.0", &t1);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ghost") && err.contains("not-found") && err.contains("services.units"),
        "{err}"
    );
    assert_eq!(app.current(), None);
    assert_eq!(app.health_body(), None, "nothing was started");
    let s = support::json(&app.run(&["status", "--json"]));
    assert!(s["blocked"].as_object().is_none_or(|b| b.is_empty()), "{s}");

    // Fixed config: the same release installs and runs.
    std::fs::write(&app.config, &config).unwrap();
    ok(&app.deploy("1.0.0", &t1));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

/// A rollback or a pin checks the commands it will run, as a deploy does: a health script
/// missing from the release rolled back to refuses the switch (exit 2) and changes nothing.
#[test]
fn rollback_and_pin_refuse_a_config_mistake_before_switching() {
    let app = App::new("");
    ok(&app.deploy("1.0.0", &release_tarball(app.tmp(), "1.0.0", "")));
    ok(&app.deploy("1.1.0", &release_tarball(app.tmp(), "1.1.0", "")));
    let config = std::fs::read_to_string(&app.config).unwrap();
    // Only 1.1.0 ships the health script the config now names.
    let script = app.root.join("releases/1.1.0/bin/extra-health");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let current = app.root.join("releases/current/bin/extra-health");
    std::fs::write(
        &app.config,
        format!(
            "{config}\n[[health]]\ncommand = [\"{}\"]\n",
            current.display()
        ),
    )
    .unwrap();
    for args in [&["rollback"][..], &["pin", "1.0.0"]] {
        let out = app.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("extra-health"), "{}", stderr(&out));
        assert_eq!(app.current().as_deref(), Some("1.1.0"), "{args:?}");
    }
    let s = support::json(&app.run(&["status", "--json"]));
    assert!(s["pinned"].is_null(), "a refused pin is not recorded: {s}");
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
}
