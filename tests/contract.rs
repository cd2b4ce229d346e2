//! The command line as an interface scripts rely on: the README's exit-code table, one
//! test per code (codes whose setup belongs to another area are tested there:
//! 4 in tests/deploy.rs, 7 and 8 in tests/fleet.rs, 10 in tests/agent.rs, 11 in
//! tests/fleet_agent.rs), errors as JSON with `--json`, and a reader that closes the
//! pipe early.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::app::release_tarball;
use support::process::ProcessGroup;
use support::registry::{agent_toml, Registry};
use support::{bin, code, json, stderr, stdout, text};

/// `updraft ARGS` with no config or root from the environment.
fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("UPDRAFT_ROOT")
        .env_remove("UPDRAFT_CONFIG")
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Assert the exit code and that the message (stderr) says what to do.
fn assert_fails(o: &Output, want: i32, says: &str) {
    assert_eq!(code(o), want, "{}", text(o));
    assert!(
        stderr(o).contains(says),
        "expected {says:?} in\n{}",
        text(o)
    );
    assert!(!stderr(o).contains("panicked"), "{}", text(o));
}

#[test]
fn usage_and_config_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_config = tmp.path().join("bad.toml");
    std::fs::write(&bad_config, "app = \"demo\"\nkepe = 3\n").unwrap();
    let agentless = tmp.path().join("push.toml");
    std::fs::write(&agentless, format!("root = \"{}\"\n", s(tmp.path()))).unwrap();
    let root = tmp.path().join("root");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "a required flag missing (clap)",
            vec!["deploy", "--version", "1.0.0"],
            "--artifact-path",
        ),
        ("an unknown flag (clap)", vec!["status", "--jsn"], "--jsn"),
        (
            "an unknown config key",
            vec!["--config", s(&bad_config), "status"],
            "kepe",
        ),
        ("no app root anywhere", vec!["status"], "pass --root DIR"),
        (
            "an agent command without a config file",
            vec!["--root", s(&root), "check"],
            "pass --config FILE",
        ),
        (
            "an agent command with a config that is not an agent's",
            vec!["--config", s(&agentless), "check"],
            "`app` is required",
        ),
        (
            "prune --keep 0",
            vec!["--root", s(&root), "prune", "--keep", "0"],
            "--keep must be at least 1",
        ),
        (
            "a duration that is not one",
            vec![
                "fleet",
                "status",
                "--registry",
                "file:///nonexistent",
                "--app",
                "demo",
                "--stale",
                "a month",
            ],
            "--stale \"a month\"",
        ),
        (
            "a registry URL with an unknown scheme",
            vec![
                "registry",
                "verify",
                "--registry",
                "ftp://example.com/r",
                "--app",
                "demo",
                "--public-key",
                s(&bad_config),
            ],
            "",
        ),
    ];
    for (what, args, says) in cases {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{what}: {}", text(&o));
        assert!(stderr(&o).contains(says), "{what}: {}", text(&o));
    }
}

#[test]
fn a_lock_file_that_cannot_be_opened_exits_1_with_the_path_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // Tests may run as root, which permissions do not stop: a directory where the lock
    // file should be cannot be opened for writing by anyone.
    let lock = root.join(".updraft/lock");
    std::fs::create_dir_all(&lock).unwrap();
    let tarball = release_tarball(tmp.path(), "1.0.0", "");
    let o = run(&[
        "--root",
        s(&root),
        "deploy",
        "--version",
        "1.0.0",
        "--artifact-path",
        s(&tarball),
    ]);
    assert_fails(&o, 1, &lock.display().to_string());
    assert!(stderr(&o).contains("write access"), "{}", text(&o));
    assert!(!root.join("releases/current").exists());
}

#[test]
fn a_lock_held_by_another_operation_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join(".updraft")).unwrap();
    let config = tmp.path().join("u.toml");
    std::fs::write(
        &config,
        format!("root = \"{}\"\nlock_timeout = \"100ms\"\n", s(&root)),
    )
    .unwrap();
    // flock(1) says "held" once it holds the lock, so there is nothing to wait for.
    let mut cmd = Command::new("flock");
    cmd.arg(root.join(".updraft/lock"))
        .args(["-c", "echo held; exec sleep 600"])
        .stdout(Stdio::piped());
    let mut holder = ProcessGroup::spawn(&mut cmd, libc::SIGKILL).unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.take_stdout().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let o = run(&["--config", s(&config), "prune"]);
    assert_fails(&o, 3, "another updraft operation holds");
    drop(holder);
}

#[test]
fn size_checksum_and_limit_violations_exit_5() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let tarball = release_tarball(tmp.path(), "1.0.0", "");
    reg.publish("1.0.0", &tarball, Some("prod"), &[]);

    // deploy --sha256 that does not match.
    let root = tmp.path().join("push");
    let o = run(&[
        "--root",
        s(&root),
        "deploy",
        "--version",
        "1.0.0",
        "--artifact-path",
        s(&tarball),
        "--sha256",
        &"0".repeat(64),
    ]);
    assert_fails(&o, 5, "checksum mismatch");

    // An agent whose artifact limit is below the artifact's size.
    let limited = tmp.path().join("limited.toml");
    std::fs::write(
        &limited,
        agent_toml(
            &reg,
            &reg.http,
            "prod",
            &format!(
                "root = \"{}\"\n[limits]\nmax_artifact_bytes = 100\n",
                s(&tmp.path().join("limited"))
            ),
        ),
    )
    .unwrap();
    let o = run(&["--config", s(&limited), "update"]);
    assert_fails(&o, 5, "limit");

    // The registry's artifact no longer has the signed size.
    let artifact = std::fs::read_dir(reg.dir.join("demo/releases/1.0.0"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    bytes.extend_from_slice(b"appended by an attacker");
    std::fs::write(&artifact, bytes).unwrap();
    let agent = tmp.path().join("agent.toml");
    std::fs::write(
        &agent,
        agent_toml(
            &reg,
            &reg.http,
            "prod",
            &format!("root = \"{}\"\n", s(&tmp.path().join("agent"))),
        ),
    )
    .unwrap();
    let o = run(&["--config", s(&agent), "update"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(!tmp.path().join("agent/releases/current").exists());
}

#[test]
fn what_does_not_exist_exits_6() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let key = s(&reg.secret);
    let url = reg.url.as_str();
    let missing = tmp.path().join("missing.tar.gz");
    let root = tmp.path().join("root");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "publish an artifact file that does not exist",
            vec![
                "publish",
                "--registry",
                url,
                "--app",
                "demo",
                "--version",
                "1.0.0",
                "--artifact",
                s(&missing),
                "--secret-key",
                key,
            ],
            "missing.tar.gz",
        ),
        (
            "promote a release never published",
            vec![
                "promote",
                "--registry",
                url,
                "--app",
                "demo",
                "--version",
                "9.9.9",
                "--channel",
                "prod",
                "--secret-key",
                key,
            ],
            "9.9.9",
        ),
        (
            "yank on a channel never published",
            vec![
                "yank",
                "--registry",
                url,
                "--app",
                "demo",
                "--version",
                "9.9.9",
                "--channel",
                "prod",
                "--secret-key",
                key,
            ],
            "does not exist",
        ),
        (
            "deploy an artifact file that does not exist",
            vec![
                "--root",
                s(&root),
                "deploy",
                "--version",
                "1.0.0",
                "--artifact-path",
                s(&missing),
            ],
            "missing.tar.gz",
        ),
        (
            "roll back to a version that is not installed",
            vec!["--root", s(&root), "rollback", "--version", "9.9.9"],
            "9.9.9 is not installed",
        ),
    ];
    for (what, args, says) in cases {
        let o = run(&args);
        assert_eq!(code(&o), 6, "{what}: {}", text(&o));
        assert!(stderr(&o).contains(says), "{what}: {}", text(&o));
    }
}

#[test]
fn with_json_an_error_is_a_json_document_on_stdout_with_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["status", "--json"], 2, "usage"),
        (vec!["deploy", "--json", "--version", "1.0.0"], 2, "usage"),
        (
            vec![
                "--root",
                s(&root),
                "rollback",
                "--version",
                "9.9.9",
                "--json",
            ],
            6,
            "not-found",
        ),
    ];
    for (args, want, kind) in cases {
        let o = run(&args);
        assert_eq!(code(&o), want, "{}", text(&o));
        let doc = json(&o);
        assert_eq!(doc["schema_version"], 1, "{doc}");
        assert_eq!(doc["error"]["code"], want, "{doc}");
        assert_eq!(doc["error"]["kind"], kind, "{doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{doc}"
        );
    }
    // Without --json, stdout stays empty.
    let o = run(&["--root", s(&root), "rollback", "--version", "9.9.9"]);
    assert_eq!(code(&o), 6);
    assert_eq!(stdout(&o), "");
}

/// Run `updraft ARGS` with stdout a pipe whose reader is already gone, as in
/// `updraft status --json | head -c1` once head has exited.
fn run_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(bin())
        .args(args)
        .env_remove("UPDRAFT_ROOT")
        .env_remove("UPDRAFT_CONFIG")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let tarball = release_tarball(tmp.path(), "1.0.0", "");
    let o = run(&[
        "--root",
        s(&root),
        "deploy",
        "--version",
        "1.0.0",
        "--artifact-path",
        s(&tarball),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    for args in [
        vec!["--root", s(&root), "status", "--json"],
        vec!["--root", s(&root), "status"],
        vec!["--root", s(&root), "list", "--json"],
        vec!["--root", s(&root), "list"],
        vec!["--root", s(&root), "why", "--json"],
    ] {
        let o = run_into_closed_pipe(&args);
        assert_eq!(code(&o), 141, "{args:?}: {}", text(&o));
        assert_eq!(stderr(&o), "", "{args:?}: {}", text(&o));
    }
    // A command whose work is done before it prints keeps that work.
    let o = run_into_closed_pipe(&["--root", s(&root), "rollback", "--version", "1.0.0"]);
    assert_eq!(code(&o), 141, "{}", text(&o));
}

/// Collects real `--json` outputs as `<schema>.<n>.json` for the validator.
struct Outputs {
    dir: tempfile::TempDir,
    n: usize,
}

impl Outputs {
    /// Keep `o`'s stdout as an output of `schema`, after checking its exit code.
    fn keep(&mut self, schema: &str, o: &Output, want: i32) -> serde_json::Value {
        assert_eq!(code(o), want, "{schema}: {}", text(o));
        let doc = json(o);
        assert_eq!(doc["schema_version"], 1, "{schema}: {doc}");
        self.n += 1;
        let path = self.dir.path().join(format!("{schema}.{}.json", self.n));
        std::fs::write(path, &o.stdout).unwrap();
        doc
    }
}

#[test]
fn every_json_output_matches_its_schema_in_docs_json() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let report = format!("[report]\nenabled = true\nurl = \"{}\"\n", reg.url);
    let app = support::registry::agent_app(&reg, "prod", &report);
    let mut out = Outputs {
        dir: tempfile::tempdir().unwrap(),
        n: 0,
    };
    out.keep("status", &app.run(&["status", "--json"]), 0);
    out.keep("why", &app.run(&["why", "--json"]), 0);
    out.keep("list", &app.run(&["list", "--json"]), 0);
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let c = out.keep("check", &app.run(&["check", "--json"]), 10);
    assert_eq!(c["channel"]["name"], "prod", "{c}");
    assert_eq!(c["channel"]["version"], "1.0.0", "{c}");
    assert_eq!(c["channel"]["sequence"], c["sequence"], "{c}");
    assert!(c["channel"]["expires_at"].is_string(), "{c}");
    assert!(c["machine"].is_string() && c["hostname"].is_string(), "{c}");
    support::ok(&app.run(&["update"]));
    out.keep("check", &app.run(&["check", "--json"]), 0);
    let doc = out.keep("doctor", &app.run(&["doctor", "--json"]), 0);
    assert_eq!(doc["ok"], true, "{doc}");
    // The same facts under the same names in status and why.
    let st = out.keep("status", &app.run(&["status", "--json"]), 0);
    let w = out.keep("why", &app.run(&["why", "--json"]), 0);
    assert_eq!(st["current"], "1.0.0");
    assert_eq!(st["current"], w["current"]);
    for field in ["machine", "hostname"] {
        assert_eq!(st[field], c[field], "{field}");
        assert_eq!(st[field], w[field], "{field}");
    }
    assert_eq!(st["channel"], w["channel"]);
    assert_eq!(st["channel"]["expires_at"], c["channel"]["expires_at"]);
    out.keep("list", &app.run(&["list", "--json"]), 0);

    // A release that fails its health check: blocked, with history.
    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    assert_eq!(code(&app.run(&["update"])), 4);
    out.keep("status", &app.run(&["status", "--json"]), 0);
    out.keep("why", &app.run(&["why", "--json"]), 0);
    out.keep("check", &app.run(&["check", "--json"]), 11);

    // Push mode.
    let tarball = release_tarball(tmp.path(), "1.2.0", "");
    let d = out.keep(
        "deploy",
        &app.run(&[
            "deploy",
            "--json",
            "--version",
            "1.2.0",
            "--artifact-path",
            s(&tarball),
        ]),
        0,
    );
    assert_eq!(d["current"], "1.2.0");
    let r = out.keep("rollback", &app.run(&["rollback", "--json"]), 0);
    assert_eq!(r["current"], "1.0.0");
    out.keep("list", &app.run(&["list", "--json"]), 0);
    out.keep(
        "prune",
        &app.run(&["prune", "--json", "--keep", "1", "--dry-run"]),
        0,
    );
    out.keep("prune", &app.run(&["prune", "--json", "--keep", "1"]), 0);

    // Failures, with --json.
    let e = out.keep(
        "error",
        &app.run(&["rollback", "--json", "--version", "9.9.9"]),
        6,
    );
    assert_eq!(e["error"]["kind"], "not-found");
    out.keep("error", &app.run(&["deploy", "--json"]), 2);

    // Publisher and fleet commands.
    let public = s(&reg.public);
    let registry = ["--registry", reg.url.as_str(), "--app", "demo"];
    let verify = [
        &["registry", "verify"][..],
        &registry,
        &["--json", "--public-key", public],
    ];
    out.keep("registry-verify", &run(&verify.concat()), 0);
    let fleet = [&["fleet", "status"][..], &registry, &["--json"]].concat();
    let f = out.keep("fleet-status", &run(&fleet), 0);
    assert!(f["reports"].as_u64() >= Some(1), "{f}");
    let machines = [&fleet[..], &["--machines"]].concat();
    out.keep("fleet-status", &run(&machines), 0);
    let key = s(&reg.secret);
    let guard = [
        &["guard"][..],
        &registry,
        &[
            "--channel",
            "prod",
            "--max-failed",
            "50",
            "--min-reports",
            "5",
        ],
        &["--dry-run", "--json", "--secret-key", key],
    ]
    .concat();
    out.keep("guard", &run(&guard), 0);
    let refresh = [
        &["refresh"][..],
        &registry,
        &["--channel", "prod", "--json", "--secret-key", key],
    ]
    .concat();
    let r = out.keep("refresh", &run(&refresh), 0);
    assert_eq!(r["channel"]["name"], "prod", "{r}");

    let v = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/validate_json.py"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json"))
        .arg(out.dir.path())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v));
}

#[test]
fn a_health_script_that_cannot_run_is_a_config_error_not_a_release_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let tarball = release_tarball(tmp.path(), "1.0.0", "");
    reg.publish("1.0.0", &tarball, Some("prod"), &[]);
    let root = tmp.path().join("root");
    let restarted = tmp.path().join("restarted");
    let config = tmp.path().join("u.toml");
    let write_config = |health: &str| {
        let agent = agent_toml(
            &reg,
            &reg.http,
            "prod",
            &format!("root = \"{}\"\n", s(&root)),
        );
        std::fs::write(
            &config,
            format!(
                "{agent}\n[services]\nrestart = [\"/bin/sh\", \"-c\", \"touch {}\"]\n\n[[health]]\ncommand = [\"{health}\"]\n",
                s(&restarted)
            ),
        )
        .unwrap();
    };
    let deploy = || {
        run(&[
            "--config",
            s(&config),
            "deploy",
            "--version",
            "1.0.0",
            "--artifact-path",
            s(&tarball),
        ])
    };
    let assert_untouched = |o: &Output| {
        assert!(!root.join("releases/current").exists(), "{}", text(o));
        assert!(!restarted.exists(), "restarted: {}", text(o));
        let st = json(&run(&["--root", s(&root), "status", "--json"]));
        assert_eq!(st["blocked"], serde_json::json!({}), "{st}");
    };

    // First install, push mode: a health script the release does not ship.
    let missing = root.join("releases/current/bin/no-such-health");
    write_config(s(&missing));
    let o = deploy();
    assert_fails(&o, 2, "config error");
    assert!(stderr(&o).contains("bin/no-such-health"), "{}", text(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", text(&o));
    assert_untouched(&o);

    // A health script that exists but cannot be executed.
    let plain = tmp.path().join("health.sh");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    write_config(s(&plain));
    let o = deploy();
    assert_fails(&o, 2, "not executable");
    assert_untouched(&o);

    // The agent: the same mistake is exit 2, and the version is not blocked.
    write_config(s(&missing));
    let o = run(&["--config", s(&config), "update"]);
    assert_fails(&o, 2, "config error");
    assert_untouched(&o);

    // Fixed, the same release installs.
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    write_config(s(&plain));
    let o = run(&["--config", s(&config), "update"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(restarted.exists());
}

/// `doctor` runs every check the agent's run depends on without changing anything, one
/// line each; a failure names what to fix and exits 1, warnings pass.
#[test]
fn doctor_names_each_problem_and_exits_1_on_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = support::registry::agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    support::ok(&app.run(&["update"]));
    let o = app.run(&["doctor"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    for check in [
        "config", "root", "keys", "registry", "channel", "artifact", "clock", "commands",
    ] {
        let line = stdout(&o)
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(check))
            .unwrap_or_else(|| panic!("no {check} line: {}", text(&o)))
            .to_string();
        assert!(line.starts_with("ok "), "{line}");
    }
    let before = std::fs::read(app.root.join(".updraft/state.json")).ok();

    // A key that did not sign the channel, a health script that is gone, and a unit
    // systemd does not know: each its own failing line, nothing changed.
    let config = std::fs::read_to_string(&app.config).unwrap();
    let other = tmp.path().join("other.pub");
    support::ok(&run(&[
        "keygen",
        "--secret-key",
        s(&tmp.path().join("other.key")),
        "--public-key",
        s(&other),
    ]));
    let mut bad = String::new();
    for line in config.lines() {
        if line.starts_with("public_keys") || line.starts_with("public_key_files") {
            bad.push_str(&format!("public_key_files = [\"{}\"]\n", s(&other)));
        } else {
            bad.push_str(line);
            bad.push('\n');
        }
    }
    bad.push_str(&format!(
        "\n[[health]]\ncommand = [\"{}\"]\n",
        s(&app.root.join("releases/current/bin/gone"))
    ));
    std::fs::write(&app.config, bad).unwrap();
    let o = app.run(&["doctor", "--json"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let d = json(&o);
    assert_eq!(d["ok"], false, "{d}");
    let status = |check: &str| -> Vec<String> {
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == check)
            .map(|c| {
                format!(
                    "{} {}",
                    c["status"].as_str().unwrap(),
                    c["detail"].as_str().unwrap()
                )
            })
            .collect()
    };
    let channel = status("channel").join("\n");
    assert!(channel.starts_with("fail "), "{d}");
    assert!(status("artifact").join("").starts_with("skip "), "{d}");
    let commands = status("commands").join("\n");
    assert!(
        commands.starts_with("fail ")
            && commands.contains("bin/gone")
            && commands.contains("does not exist"),
        "{d}"
    );
    assert_eq!(
        std::fs::read(app.root.join(".updraft/state.json")).ok(),
        before,
        "doctor changed the state"
    );
}
