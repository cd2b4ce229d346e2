//! Releases that respect data and schedules (issue 15): lifecycle hooks and maintenance
//! windows, through the real binary with the fixture app's real server restarted and
//! health-checked, and a real registry served by `updraft serve`.

mod support;
use support::app::*;
use support::registry::{agent_app, Registry};

/// A hook command that appends its phase and `UPDRAFT_*` environment to
/// `<root>/hooks.log` (one line per run) and prints `said <phase>`.
fn logging_hook(extra: &str) -> String {
    format!(
        r#"["sh", "-c", "echo \"$UPDRAFT_PHASE version=$UPDRAFT_VERSION previous=$UPDRAFT_PREVIOUS_VERSION dir=$UPDRAFT_RELEASE_DIR root=$UPDRAFT_ROOT reason=$UPDRAFT_REASON\" >> \"$UPDRAFT_ROOT/hooks.log\"; echo said $UPDRAFT_PHASE; {extra}"]"#
    )
}

fn hook_lines(app: &App) -> Vec<String> {
    std::fs::read_to_string(app.root.join("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn history(app: &App) -> String {
    std::fs::read_to_string(app.root.join(".updraft/history.jsonl")).unwrap_or_default()
}

#[test]
fn post_activate_sees_its_environment_and_its_output_is_in_the_history() {
    let hook = logging_hook("true");
    let app = App::new(&format!("[hooks]\npost_activate = {hook}\n"));
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let t2 = release_tarball(app.tmp(), "1.1.0", "");
    ok(&app.deploy("1.0.0", &t1));
    ok(&app.deploy("1.1.0", &t2));
    let root = app.root.display();
    assert_eq!(
        hook_lines(&app),
        [
            format!("post_activate version=1.0.0 previous= dir={root}/releases/1.0.0 root={root} reason="),
            format!("post_activate version=1.1.0 previous=1.0.0 dir={root}/releases/1.1.0 root={root} reason="),
        ]
    );
    let h = history(&app);
    assert!(
        h.contains("\"event\":\"hook\"") && h.contains("stdout: said post_activate"),
        "{h}"
    );
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
}

#[test]
fn a_failing_post_activate_rolls_back_and_blocks_and_failing_rollback_hooks_do_not_stop_it() {
    // post_activate refuses 1.1.0; pre_rollback fails too, and must not stop the rollback.
    let post = logging_hook(r#"echo migration broke >&2; test \"$UPDRAFT_VERSION\" != 1.1.0"#);
    let log = logging_hook("true");
    let failing = logging_hook("exit 7");
    let app = App::new(&format!(
        "[hooks]\npost_activate = {post}\npre_rollback = {failing}\npost_rollback = {log}\non_failure = {log}\n"
    ));
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let t2 = release_tarball(app.tmp(), "1.1.0", "");
    ok(&app.deploy("1.0.0", &t1));
    let out = app.deploy("1.1.0", &t2);
    assert_eq!(code(&out), 4, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("post_activate hook failed") && err.contains("migration broke"),
        "{err}"
    );
    assert!(err.contains("pre_rollback hook failed"), "{err}");
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("1.1.0", "post_activate");
    let root = app.root.display();
    let lines = hook_lines(&app);
    let phases: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        phases,
        [
            "post_activate",
            "post_activate",
            "pre_rollback",
            "post_rollback",
            "on_failure"
        ],
        "{lines:#?}"
    );
    // Rolling back: going to 1.0.0, leaving 1.1.0, with the reason.
    assert!(
        lines[3].starts_with(&format!(
            "post_rollback version=1.0.0 previous=1.1.0 dir={root}/releases/1.0.0 root={root} reason=post_activate hook failed"
        )),
        "{}",
        lines[3]
    );
    // on_failure is about the release that failed.
    assert!(
        lines[4].starts_with("on_failure version=1.1.0 previous=1.0.0")
            && lines[4].contains("migration broke"),
        "{}",
        lines[4]
    );
    let h = history(&app);
    assert!(h.contains("pre_rollback `sh -c"), "{h}");
    assert!(h.contains("exited with status 7"), "{h}");
}

#[test]
fn the_rollback_command_runs_the_rollback_hooks() {
    let log = logging_hook("true");
    let app = App::new(&format!(
        "[hooks]\npre_rollback = {log}\npost_rollback = {log}\n"
    ));
    let t1 = release_tarball(app.tmp(), "1.0.0", "");
    let t2 = release_tarball(app.tmp(), "1.1.0", "");
    ok(&app.deploy("1.0.0", &t1));
    ok(&app.deploy("1.1.0", &t2));
    assert!(hook_lines(&app).is_empty());
    ok(&app.run(&["rollback"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    let lines = hook_lines(&app);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for (line, phase) in lines.iter().zip(["pre_rollback", "post_rollback"]) {
        assert!(
            line.starts_with(&format!("{phase} version=1.0.0 previous=1.1.0"))
                && line.contains("reason=rollback requested by the operator"),
            "{line}"
        );
    }
}

/// A fixture release tree that ships `hooks/post-activate`, packed as a tarball.
fn release_with_hook(app: &App, version: &str) -> std::path::PathBuf {
    let tree = app.tmp().join(format!("tree-hooked-{version}"));
    let st = std::process::Command::new(fixtures().join("app/make-release.sh"))
        .arg(&tree)
        .arg(version)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir_all(tree.join("hooks")).unwrap();
    let hook = tree.join("hooks/post-activate");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"shipped $UPDRAFT_PHASE $UPDRAFT_VERSION\" >> \"$UPDRAFT_ROOT/hooks.log\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tarball = app.tmp().join(format!("hooked-{version}.tar.gz"));
    tar_gz(&tree, &tarball);
    tarball
}

#[test]
fn release_hooks_run_only_when_enabled() {
    let off = App::new("");
    ok(&off.deploy("1.0.0", &release_with_hook(&off, "1.0.0")));
    assert!(hook_lines(&off).is_empty(), "{:?}", hook_lines(&off));

    let on = App::new("[hooks]\nrelease_hooks = true\n");
    ok(&on.deploy("1.0.0", &release_with_hook(&on, "1.0.0")));
    assert_eq!(hook_lines(&on), ["shipped post_activate 1.0.0"]);
}

/// A daily window that starts twelve hours from now's hour (UTC): closed now, whatever
/// the time the test runs.
fn closed_window() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = (secs / 3600 + 12) % 24;
    format!("daily {hour:02}:00-{hour:02}:30 UTC")
}

fn yank(reg: &Registry, version: &str) {
    ok(&reg.cli(&[
        "yank",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--channel",
        "prod",
        "--version",
        version,
        "--secret-key",
        reg.secret.to_str().unwrap(),
    ]));
}

#[test]
fn outside_the_window_an_update_is_staged_not_activated_and_a_yank_is_still_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let window = closed_window();
    let app = agent_app(
        &reg,
        "prod",
        &format!("window = [\"{window}\"]\nstage_outside_window = true\n"),
    );
    // A first install disturbs nothing: not delayed.
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));

    reg.ship("1.1.0", "", Some("prod"), &[]);
    let out = app.run(&["update"]);
    ok(&out);
    assert!(
        stdout(&out).contains("outside the maintenance window")
            && stdout(&out).contains("staged it"),
        "{}",
        text(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    assert!(
        app.root.join("releases/1.1.0/VERSION").is_file(),
        "not staged"
    );
    let why = json(&app.run(&["why", "--json"]));
    assert_eq!(why["decision"], "outside-window", "{why}");
    assert_eq!(why["window"]["open"], false, "{why}");
    assert_eq!(why["window"]["windows"][0], window.as_str(), "{why}");
    let opens = why["window"]["opens_at"].as_str().unwrap_or_default();
    assert!(
        why["explanation"]
            .as_str()
            .unwrap_or_default()
            .contains(opens)
            && !opens.is_empty(),
        "{why}"
    );
    assert_valid("why", &why);
    let said = stdout(&app.run(&["why"]));
    assert!(
        said.contains(&format!("the next opens at {opens}")),
        "{said}"
    );

    // The running version is yanked: leaving it is never delayed.
    yank(&reg, "1.0.0");
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
}

#[test]
fn without_stage_outside_window_nothing_is_downloaded_and_an_open_window_activates() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let closed = agent_app(
        &reg,
        "prod",
        &format!("window = [\"{}\"]\n", closed_window()),
    );
    // The whole of every day: always open.
    let open = agent_app(&reg, "prod", "window = [\"daily 00:00-00:00 UTC\"]\n");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&closed.run(&["update"]));
    ok(&open.run(&["update"]));
    reg.ship("1.1.0", "", Some("prod"), &[]);
    let out = closed.run(&["update"]);
    ok(&out);
    assert!(
        stdout(&out).contains("outside the maintenance window"),
        "{}",
        text(&out)
    );
    assert!(
        !closed.root.join("releases/1.1.0").exists(),
        "downloaded outside the window"
    );
    assert_eq!(closed.current().as_deref(), Some("1.0.0"));
    ok(&open.run(&["update"]));
    assert_eq!(open.current().as_deref(), Some("1.1.0"));
    let why = json(&open.run(&["why", "--json"]));
    assert_eq!(why["window"]["open"], true, "{why}");
}

/// `doc` validates against `docs/json/<schema>.schema.json` (Python's jsonschema, as in
/// tests/contract.rs).
fn assert_valid(schema: &str, doc: &serde_json::Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("docs/json/{schema}.schema.json"));
    let v = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.Draft202012Validator(json.load(open(sys.argv[1]))).validate(json.load(open(sys.argv[2])))",
        ])
        .arg(&schema)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", text(&v));
}
