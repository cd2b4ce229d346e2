//! Health checks and service restarts through the public API, against real processes:
//! the fixture app's Python server (fixtures/app) started by its real restart script,
//! and `sh` commands that write marker files, fail, hang or fork.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use updraft::activate::health::{self, HealthError};
use updraft::activate::services::{self, ServiceOutcome};
use updraft::config::{Config, HealthCheck, Services};

use support::process::is_live;
use support::{fixtures, free_port};

fn config(toml: &str) -> Config {
    Config::parse(toml, Path::new("test.toml")).unwrap()
}

fn checks(toml: &str) -> Vec<HealthCheck> {
    config(toml).health
}

fn services_cfg(toml: &str) -> Services {
    config(toml).services
}

/// A TOML string literal for a path or shell snippet.
fn lit(s: &str) -> String {
    format!("{s:?}")
}

fn sh(script: &str) -> String {
    format!("[\"sh\", \"-c\", {}]", lit(script))
}

/// An app root holding one release of the fixture app as `current`; the server is
/// stopped when dropped.
struct App {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    port: u16,
}

impl App {
    fn new(mode: &str) -> App {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("app");
        std::fs::create_dir_all(root.join("config")).unwrap();
        let port = free_port();
        std::fs::write(root.join("config/app.env"), format!("PORT={port}\n")).unwrap();
        let mut cmd = Command::new(fixtures().join("app/make-release.sh"));
        cmd.arg(root.join("releases/1.0.0")).arg("1.0.0");
        if !mode.is_empty() {
            cmd.arg(mode);
        }
        assert!(cmd.status().unwrap().success());
        std::os::unix::fs::symlink("1.0.0", root.join("releases/current")).unwrap();
        App {
            _tmp: tmp,
            root,
            port,
        }
    }

    fn restart_cfg(&self) -> Services {
        services_cfg(&format!(
            "[services]\nrestart = [{}, {}]\ntimeout = \"30s\"\n",
            lit(fixtures().join("app/restart.sh").to_str().unwrap()),
            lit(self.root.to_str().unwrap())
        ))
    }

    async fn start(&self) {
        let outcome = services::restart(&self.restart_cfg(), &[]).await.unwrap();
        assert_eq!(outcome, ServiceOutcome::Restarted);
        // Wait until it listens (the check's own retries do the waiting).
        health::run_checks(&self.tcp_until_up(), &[]).await.unwrap();
    }

    fn tcp_until_up(&self) -> Vec<HealthCheck> {
        checks(&format!(
            "[[health]]\ntcp = \"127.0.0.1:{}\"\nretries = 400\ninterval = \"25ms\"\n",
            self.port
        ))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = Command::new(fixtures().join("app/stop.sh"))
            .arg(&self.root)
            .status();
    }
}

/// Whether `pid` is gone (or only a zombie waiting for a reaper that may never come in a
/// container whose PID 1 does not reap), polling a bounded number of times.
fn gone(pid: i32) -> bool {
    for _ in 0..400 {
        if !is_live(pid as u32) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn read_pid(path: &Path) -> i32 {
    for _ in 0..400 {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(p) = s.trim().parse() {
                return p;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no pid in {}", path.display());
}

#[tokio::test]
async fn http_tcp_and_command_checks_pass_against_the_real_server() {
    let app = App::new("");
    app.start().await;
    let health_cmd = app.root.join("releases/current/bin/health");
    let cs = checks(&format!(
        r#"
[[health]]
http = "{url}"
body_contains = "ok 1.0.0"
retries = 0

[[health]]
name = "port open"
tcp = "127.0.0.1:{port}"
retries = 0

[[health]]
command = [{cmd}]
retries = 0
"#,
        url = app.url(),
        port = app.port,
        cmd = lit(health_cmd.to_str().unwrap())
    ));
    let report = health::run_checks(&cs, &[]).await.unwrap();
    let names: Vec<&str> = report.checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(names.len(), 3, "{report:?}");
    assert_eq!(names[1], "port open");
    assert!(report.checks.iter().all(|c| c.attempts == 1), "{report:?}");
    // The bake period re-runs them and passes while the server stays healthy.
    health::watch(
        &cs,
        None,
        &[],
        Duration::from_millis(150),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_broken_release_fails_with_the_check_name_and_http_500() {
    let app = App::new("broken");
    app.start().await;
    let named = checks(&format!(
        "[[health]]\nname = \"web\"\nhttp = \"{}\"\nretries = 1\ninterval = \"10ms\"\n",
        app.url()
    ));
    let err = health::run_checks(&named, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("web"), "{err}");
    assert!(err.contains("after 2 attempts"), "{err}");
    assert!(
        err.contains(&format!("HTTP 500 from {}", app.url())),
        "{err}"
    );
    assert!(err.contains("broken 1.0.0"), "{err}");
    // Unnamed: the URL names the check, once.
    let unnamed = checks(&format!(
        "[[health]]\nhttp = \"{}\"\nretries = 0\n",
        app.url()
    ));
    let err = health::run_checks(&unnamed, &[]).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(text.matches(&app.url()).count(), 1, "{text}");
    assert!(
        matches!(err, HealthError::Failed { attempts: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_mismatch_says_what_was_wanted_and_what_came() {
    let app = App::new("");
    app.start().await;
    let cs = checks(&format!(
        "[[health]]\nname = \"version\"\nhttp = \"{}\"\nbody_contains = \"ok 2.0.0\"\nretries = 0\n",
        app.url()
    ));
    let err = health::run_checks(&cs, &[]).await.unwrap_err().to_string();
    assert!(err.contains("version"), "{err}");
    assert!(err.contains("does not contain \"ok 2.0.0\""), "{err}");
    assert!(err.contains("ok 1.0.0"), "{err}");
}

#[tokio::test]
async fn a_closed_port_is_connection_refused() {
    let port = free_port();
    let cs = checks(&format!(
        "[[health]]\nname = \"api\"\nhttp = \"http://127.0.0.1:{port}/health\"\nretries = 1\ninterval = \"10ms\"\n"
    ));
    let err = health::run_checks(&cs, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("connection refused to 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("api") && err.contains("2 attempts"), "{err}");
    let cs = checks(&format!(
        "[[health]]\ntcp = \"127.0.0.1:{port}\"\nretries = 0\n"
    ));
    let err = health::run_checks(&cs, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("connection refused to 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(
        err.matches(&format!("127.0.0.1:{port}")).count(),
        1,
        "{err}"
    );
}

#[tokio::test]
async fn expected_status_and_a_silent_server() {
    let app = App::new("");
    app.start().await;
    let cs = checks(&format!(
        "[[health]]\nhttp = \"http://127.0.0.1:{}/nope\"\nexpect_status = 404\nretries = 0\n",
        app.port
    ));
    health::run_checks(&cs, &[]).await.unwrap();
    // A server that accepts connections but never answers: the attempt times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", silent.local_addr().unwrap());
    let cs = checks(&format!(
        "[[health]]\nhttp = \"{url}\"\ntimeout = \"200ms\"\nretries = 0\n"
    ));
    let err = health::run_checks(&cs, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "health check http {url} failed after 1 attempt: timed out after 200ms"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn command_checks_get_the_env_and_report_status_and_stderr() {
    let cs = checks(&format!(
        "[[health]]\ncommand = {}\nretries = 0\n",
        sh("echo checking; [ \"$WANT\" = yes ] || { echo \"WANT is $WANT\" >&2; exit 3; }")
    ));
    let env = |v: &str| vec![("WANT".to_string(), v.to_string())];
    health::run_checks(&cs, &env("yes")).await.unwrap();
    let err = health::run_checks(&cs, &env("no"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("command exited with status 3: WANT is no"),
        "{err}"
    );
    assert!(err.contains("sh -c"), "names the check: {err}");
    let missing = checks("[[health]]\ncommand = [\"/nonexistent/health\"]\nretries = 0\n");
    let err = health::run_checks(&missing, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot run /nonexistent/health"), "{err}");
}

#[tokio::test]
async fn a_hanging_command_check_is_killed_with_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("child.pid");
    let cs = checks(&format!(
        "[[health]]\nname = \"slow\"\ncommand = {}\ntimeout = \"2s\"\nretries = 0\n",
        sh(&format!(
            "sleep 600 & echo $! > {}; wait",
            pidfile.display()
        ))
    ));
    let err = health::run_checks(&cs, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("slow failed after 1 attempt: timed out after 2s"),
        "{err}"
    );
    let pid = read_pid(&pidfile);
    assert!(gone(pid), "the check's child {pid} survived its timeout");
}

#[tokio::test]
async fn watch_fails_when_the_app_dies_during_the_bake() {
    let app = App::new("");
    app.start().await;
    let cs = checks(&format!(
        "[[health]]\nname = \"web\"\nhttp = \"{}\"\nretries = 2\ninterval = \"20ms\"\n",
        app.url()
    ));
    let watching = tokio::spawn({
        let cs = cs.clone();
        async move {
            health::watch(
                &cs,
                None,
                &[],
                Duration::from_secs(600),
                Duration::from_millis(20),
            )
            .await
        }
    });
    let st = Command::new(fixtures().join("app/stop.sh"))
        .arg(&app.root)
        .status()
        .unwrap();
    assert!(st.success());
    let err = watching.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("web failed after 3 attempts"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[tokio::test]
async fn nothing_configured_is_skipped() {
    assert_eq!(
        services::restart(&Services::default(), &[]).await.unwrap(),
        ServiceOutcome::Skipped
    );
}

#[tokio::test]
async fn a_failing_reload_falls_back_to_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    let m = marker.display();
    let env = vec![("UPDRAFT_VERSION".to_string(), "1.2.3".to_string())];
    let cfg = services_cfg(&format!(
        "[services]\nreload = {}\nrestart = {}\n",
        sh(&format!(
            "echo reload >> {m}; echo 'no reload here' >&2; exit 1"
        )),
        sh(&format!("echo restart $UPDRAFT_VERSION >> {m}")),
    ));
    assert_eq!(
        services::restart(&cfg, &env).await.unwrap(),
        ServiceOutcome::Restarted
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "reload\nrestart 1.2.3\n"
    );
    // A working reload is enough: restart does not run.
    std::fs::remove_file(&marker).unwrap();
    let cfg = services_cfg(&format!(
        "[services]\nreload = {}\nrestart = {}\n",
        sh(&format!("echo reload $UPDRAFT_VERSION >> {m}")),
        sh(&format!("echo restart >> {m}")),
    ));
    assert_eq!(
        services::restart(&cfg, &env).await.unwrap(),
        ServiceOutcome::Reloaded
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "reload 1.2.3\n");
}

#[tokio::test]
async fn a_failing_restart_names_the_command_status_and_stderr() {
    let cfg = services_cfg(&format!(
        "[services]\nreload = {}\nrestart = {}\n",
        sh("echo 'reload unsupported' >&2; exit 1"),
        sh("echo starting; echo 'line one' >&2; echo 'disk full' >&2; exit 7"),
    ));
    let err = services::restart(&cfg, &[]).await.unwrap_err().to_string();
    assert!(err.contains("`sh -c echo starting;"), "{err}");
    assert!(
        err.contains("exited with status 7: line one | disk full"),
        "{err}"
    );
    assert!(err.contains("reload unsupported"), "{err}");
    // A reload with nothing to fall back on is an error too, not a silent skip.
    let cfg = services_cfg(&format!("[services]\nreload = {}\n", sh("exit 2")));
    let err = services::restart(&cfg, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("exited with status 2") && err.contains("no `restart` command"),
        "{err}"
    );
    // Unit shorthand: systemctl restart, named in the error; no reload unless asked.
    let unit = format!("updraft-test-no-such-unit-{}", std::process::id());
    let cfg = services_cfg(&format!("[services]\nunits = [\"{unit}\"]\n"));
    let err = services::restart(&cfg, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("`systemctl restart {unit}`")),
        "{err}"
    );
    assert!(!err.contains("reload"), "{err}");
    // With reload_units: systemctl reload first, then restart, both named.
    let cfg = services_cfg(&format!(
        "[services]\nunits = [\"{unit}\"]\nreload_units = true\n"
    ));
    let err = services::restart(&cfg, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("`systemctl restart {unit}`")),
        "{err}"
    );
    assert!(err.contains(&format!("`systemctl reload {unit}`")), "{err}");
}

#[tokio::test]
async fn a_restart_that_overruns_is_killed_with_its_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("child.pid");
    let cfg = services_cfg(&format!(
        "[services]\nrestart = {}\ntimeout = \"2s\"\n",
        sh(&format!(
            "sleep 600 & echo $! > {}; echo 'still starting' >&2; wait",
            pidfile.display()
        ))
    ));
    let err = services::restart(&cfg, &[]).await.unwrap_err().to_string();
    assert!(err.contains("timed out after 2s"), "{err}");
    assert!(err.contains("still starting"), "{err}");
    let pid = read_pid(&pidfile);
    assert!(gone(pid), "the restart's child {pid} survived its timeout");
}

#[tokio::test]
async fn a_background_process_holding_the_pipes_does_not_hang_restart() {
    // The fixture's restart script daemonises the server (setsid, redirected).
    let app = App::new("");
    app.start().await;
    // Worse: a child that keeps the command's stdout and stderr open. restart() must
    // return when the command exits, and must leave that child running.
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("bg.pid");
    let cfg = services_cfg(&format!(
        "[services]\nrestart = {}\ntimeout = \"600s\"\n",
        sh(&format!("sleep 600 & echo $! > {}", pidfile.display()))
    ));
    assert_eq!(
        services::restart(&cfg, &[]).await.unwrap(),
        ServiceOutcome::Restarted
    );
    let pid = read_pid(&pidfile);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the background child was killed"
    );
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    // The fixture server started by restart.sh is still serving.
    health::run_checks(
        &checks(&format!(
            "[[health]]\nhttp = \"{}\"\nretries = 0\n",
            app.url()
        )),
        &[],
    )
    .await
    .unwrap();
}
