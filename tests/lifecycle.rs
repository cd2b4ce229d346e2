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

/// An app whose fixture server keeps a SQLite database in `data/`; the server's pid
/// file lives outside `data/` (a restored pid file would name a dead server).
fn sqlite_app(extra: &str) -> App {
    let app = App::new(extra);
    let run = app.tmp().join("run");
    let restart = fixtures().join("app/restart.sh");
    let stop = fixtures().join("app/stop.sh");
    let root = app.root.display();
    let cfg = std::fs::read_to_string(&app.config).unwrap();
    let old = format!("restart = [\"{}\", \"{root}\"]", restart.display());
    assert!(cfg.contains(&old), "{cfg}");
    let env = format!("FIXTURE_RUN_DIR={}", run.display());
    let new = format!(
        "restart = [\"env\", \"{env}\", \"{}\", \"{root}\"]\nstop = [\"env\", \"{env}\", \"{}\", \"{root}\"]",
        restart.display(),
        stop.display()
    );
    std::fs::write(&app.config, cfg.replace(&old, &new)).unwrap();
    app
}

impl Drop for SqliteStop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(fixtures().join("app/stop.sh"))
            .arg(&self.0)
            .env("FIXTURE_RUN_DIR", &self.1)
            .status();
    }
}

/// Stops a [`sqlite_app`]'s server (its pid file is not where `App`'s drop looks).
struct SqliteStop(std::path::PathBuf, std::path::PathBuf);

fn stopper(app: &App) -> SqliteStop {
    SqliteStop(app.root.clone(), app.tmp().join("run"))
}

/// A fixture release on schema `schema`; `migrate` makes it migrate the database up to
/// it, `broken` makes its health check fail.
fn sqlite_release(
    app: &App,
    version: &str,
    schema: u32,
    migrate: bool,
    broken: bool,
) -> std::path::PathBuf {
    let tree = app.tmp().join(format!("tree-sqlite-{version}"));
    let mut cmd = std::process::Command::new(fixtures().join("app/make-release.sh"));
    cmd.arg(&tree).arg(version);
    if broken {
        cmd.arg("broken");
    }
    assert!(cmd.status().unwrap().success());
    std::fs::write(tree.join("SCHEMA"), format!("{schema}\n")).unwrap();
    if migrate {
        std::fs::write(tree.join("MIGRATE"), "").unwrap();
    }
    let tarball = app.tmp().join(format!("sqlite-{version}.tar.gz"));
    tar_gz(&tree, &tarball);
    tarball
}

fn deploy_epoch(
    app: &App,
    version: &str,
    tarball: &std::path::Path,
    epoch: u32,
) -> std::process::Output {
    app.run(&[
        "deploy",
        "--version",
        version,
        "--artifact-path",
        tarball.to_str().unwrap(),
        "--data-epoch",
        &epoch.to_string(),
    ])
}

fn db(app: &App) -> Vec<u8> {
    std::fs::read(app.root.join("data/app.db")).unwrap()
}

/// `PRAGMA user_version` of the app's database, read with Python's sqlite3.
fn schema_of(app: &App) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA user_version').fetchone()[0])",
        ])
        .arg(app.root.join("data/app.db"))
        .output()
        .unwrap();
    stdout(&out).trim().to_string()
}

#[test]
fn a_migration_that_fails_its_health_check_gets_the_database_back_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = sqlite_app(&format!(
        "{}\n",
        support::registry::agent_toml(&reg, &reg.http, "prod", "")
    ));
    let _stop = stopper(&app);
    // Published through the registry: the epochs are signed in the release documents.
    let v1 = sqlite_release(&app, "1.0.0", 1, false, false);
    let v2 = sqlite_release(&app, "2.0.0", 2, true, true);
    ok(&reg.publish("1.0.0", &v1, Some("prod"), &["--data-epoch", "1"]));
    ok(&app.run(&["update"]));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    let before = db(&app);
    assert_eq!(schema_of(&app), "1");
    // Without --data-epoch, 2.0.0 would inherit epoch 1 from the channel's release.
    ok(&reg.publish("2.0.0", &v2, Some("prod"), &["--data-epoch", "2"]));
    let doc = std::fs::read_to_string(reg.dir.join("demo/releases/2.0.0/release.json")).unwrap();
    assert!(doc.contains("\"data_epoch\": 2"), "{doc}");
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 4, "{}", text(&out));
    assert!(
        stderr(&out).contains("restored the data (epoch 1) from the snapshot taken before 2.0.0"),
        "{}",
        text(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(
        db(&app) == before,
        "the database is not the one from before the migration"
    );
    assert_eq!(schema_of(&app), "1");
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    // The snapshot is kept with its release and shown by `list`.
    let list = json(&app.run(&["list", "--json"]));
    assert_valid("list", &list);
    let rows = list["releases"].as_array().unwrap();
    let two = rows.iter().find(|r| r["version"] == "2.0.0").unwrap();
    assert_eq!(two["data_epoch"], 2, "{list}");
    assert_eq!(two["snapshot"]["data_epoch"], 1, "{list}");
    let one = rows.iter().find(|r| r["version"] == "1.0.0").unwrap();
    assert!(one["snapshot"].is_null(), "{list}");
    assert!(stdout(&app.run(&["list"])).contains("data snapshot of epoch 1"));
    // Pruned with its release.
    ok(&app.run(&["prune", "--keep", "1"]));
    assert!(!app.root.join(".updraft/snapshots/2.0.0").exists());
}

#[test]
fn a_rollback_across_an_epoch_restores_the_snapshot_and_refuses_without_one() {
    let app = sqlite_app("");
    let _stop = stopper(&app);
    let v1 = sqlite_release(&app, "1.0.0", 1, false, false);
    let v2 = sqlite_release(&app, "2.0.0", 2, true, false);
    ok(&deploy_epoch(&app, "1.0.0", &v1, 1));
    let before = db(&app);
    ok(&deploy_epoch(&app, "2.0.0", &v2, 2));
    assert_eq!(app.health_body().as_deref(), Some("ok 2.0.0"));
    assert_eq!(schema_of(&app), "2");
    // With the snapshot: stop, restore, start the old release.
    ok(&app.run(&["rollback"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(db(&app) == before, "not restored");
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    // Again, but the snapshot is gone: refused, nothing moves.
    // Forward again (2.0.0 migrates the restored data again, after a new snapshot).
    ok(&app.run(&["rollback", "--version", "2.0.0"]));
    assert_eq!(schema_of(&app), "2");
    std::fs::remove_dir_all(app.root.join(".updraft/snapshots/2.0.0")).unwrap();
    let out = app.run(&["rollback", "--version", "1.0.0"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        stderr(&out).contains("needs data epoch 1") && stderr(&out).contains("--force-data"),
        "{}",
        text(&out)
    );
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    assert_eq!(schema_of(&app), "2");
    // --force-data rolls back the code only: 1.0.0 cannot read epoch 2 and says so in
    // its health check, so the rollback fails and 2.0.0 runs again.
    let out = app.run(&["rollback", "--version", "1.0.0", "--force-data"]);
    assert!(!stderr(&out).contains("refusing"), "{}", text(&out));
    assert!(stderr(&out).contains("--force-data"), "{}", text(&out));
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
}

#[test]
fn a_kill_between_the_snapshot_and_the_switch_or_after_the_migration_recovers() {
    let app = sqlite_app("");
    let _stop = stopper(&app);
    let v1 = sqlite_release(&app, "1.0.0", 1, false, false);
    let v2 = sqlite_release(&app, "2.0.0", 2, true, false);
    ok(&deploy_epoch(&app, "1.0.0", &v1, 1));
    let before = db(&app);
    let deploy2 = [
        "deploy",
        "--version",
        "2.0.0",
        "--artifact-path",
        v2.to_str().unwrap(),
        "--data-epoch",
        "2",
    ];
    let killed_at = |point: &str| {
        let out = std::process::Command::new(bin())
            .arg("--config")
            .arg(&app.config)
            .args(deploy2)
            .env("UPDRAFT_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "not killed at {point}: {}",
            text(&out)
        );
    };
    // Between the snapshot and the switch: nothing ran on the data; the next run
    // finds no activation to undo, and the data is as it was.
    killed_at("data.snapshotted");
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    ok(&app.run(&["status"]));
    assert!(db(&app) == before);
    // After the switch and the migration (health passed): the next run rolls back,
    // restores the data, and 1.0.0 serves again.
    killed_at("activate.healthy");
    assert_eq!(schema_of(&app), "2");
    let out = app.run(&["rollback", "--version", "1.0.0"]);
    ok(&out);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(
        db(&app) == before,
        "not restored after the crash: {}",
        text(&out)
    );
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("2.0.0", "interrupted");
}
