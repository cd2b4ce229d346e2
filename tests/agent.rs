//! The agent end to end: a registry written by `updraft publish`, served over loopback
//! HTTP, and `updraft check/update/why/pin/unblock` driving the fixture app's real server.

mod support;

use support::app::*;
use support::fault_server;
use support::nginx;
use support::registry::*;

#[test]
fn updates_rolls_back_blocks_and_follows_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");

    reg.ship("1.0.0", "", Some("prod"), &[]);
    let check = app.run(&["check", "--json"]);
    assert_eq!(code(&check), 10, "{}", stderr(&check));
    let j = json(&check);
    assert_eq!(j["available"], "1.0.0");
    assert_eq!(j["update_available"], true);

    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    let check = app.run(&["check"]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));

    reg.ship("1.1.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));

    // A release whose health check fails: rolled back and blocked, exit 4.
    reg.ship("1.2.0", "broken", Some("prod"), &[]);
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));
    // The next poll does not retry it.
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    let why = app.run(&["why", "--json"]);
    ok(&why);
    let w = json(&why);
    assert!(
        w["blocked"]["1.2.0"]["reason"]
            .as_str()
            .unwrap()
            .contains("health"),
        "{w}"
    );
    assert_eq!(w["channel_version"], "1.2.0");
    let text = stdout(&app.run(&["why"]));
    assert!(
        text.contains("Blocked: 1.2.0") && text.contains("updraft unblock 1.2.0"),
        "{text}"
    );

    // A newer version on the channel is tried.
    reg.ship("1.3.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.3.0"));

    // The operator moves the channel back (higher sequence, older version): follow it.
    reg.promote("1.1.0", "prod", &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.1.0"));

    // Unblocking lets a blocked version be tried again (it fails again here).
    ok(&app.run(&["unblock", "1.2.0"]));
    reg.promote("1.2.0", "prod", &[]);
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
}

/// `rollback` on an agent's root holds the version it left: the next `update` stays,
/// `why` says so, a newer channel version is taken as usual, and `unblock` releases it.
#[test]
fn a_rollback_sticks_until_unblocked() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.3.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    reg.ship("1.4.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.4.0"));

    let out = app.run(&["rollback"]);
    ok(&out);
    assert!(
        stdout(&out)
            .contains("1.4.0 is held back here; updraft unblock 1.4.0 to follow the channel again"),
        "{}",
        stdout(&out)
    );
    assert_eq!(app.current().as_deref(), Some("1.3.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.3.0"));

    // The next timer run does not undo the operator.
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.3.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.3.0"));
    let check = app.run(&["check", "--json"]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    let c = json(&check);
    assert_eq!(c["decision"], "held-back", "{c}");
    assert_eq!(c["state"], "pinned", "{c}");
    let w = json(&app.run(&["why", "--json"]));
    assert_eq!(
        w["blocked"]["1.4.0"]["reason"], "rolled back by operator",
        "{w}"
    );
    assert_eq!(w["decision"], "held-back", "{w}");
    let text = stdout(&app.run(&["why"]));
    assert!(
        text.contains("Held back: 1.4.0")
            && text.contains("rolled back by operator")
            && text.contains("updraft unblock 1.4.0"),
        "{text}"
    );

    // A newer channel version is taken as usual.
    reg.ship("1.5.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.5.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.5.0"));

    // Held again, then released: the channel's version comes back.
    let out = app.run(&["rollback", "--version", "1.3.0", "--json"]);
    ok(&out);
    let r = json(&out);
    assert_eq!(r["version"], "1.3.0", "{r}");
    assert_eq!(r["held_back"], "1.5.0", "{r}");
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.3.0"));
    ok(&app.run(&["unblock", "1.5.0"]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.5.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.5.0"));
}

#[test]
fn pin_holds_the_machine_whatever_the_channel_says() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    reg.ship("2.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["pin", "1.0.0"]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    let w = json(&app.run(&["why", "--json"]));
    assert_eq!(w["pinned"], "1.0.0");
    ok(&app.run(&["unpin"]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    // Pinning an installed older version switches to it at once.
    ok(&app.run(&["pin", "1.0.0"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

/// A pin is checked before it is set (installed, or published for this target), and a
/// pin whose activation fails is cleared, on the command line and in the agent.
#[test]
fn pins_are_checked_and_a_failed_pin_is_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    let pinned = |app: &App| json(&app.run(&["status", "--json"]))["pinned"].clone();

    // Neither installed nor published: refused, nothing pinned.
    let out = app.run(&["pin", "7.7.7"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not pinning 7.7.7"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pinned(&app), serde_json::Value::Null);

    // Published, but only for another target.
    let other = release_tarball(tmp.path(), "1.1.0", "");
    reg.publish("1.1.0", &other, None, &["--target", "s390x-linux"]);
    let out = app.run(&["pin", "1.1.0"]);
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not pinning 1.1.0") && err.contains("no artifact for target"),
        "{err}"
    );
    assert_eq!(pinned(&app), serde_json::Value::Null);

    // Published for this target but failing here: the agent's switch fails and clears it.
    reg.ship("1.2.0", "broken", None, &[]);
    let out = app.run(&["pin", "1.2.0"]);
    ok(&out);
    assert!(
        stdout(&out).contains("not installed yet"),
        "{}",
        stdout(&out)
    );
    assert_eq!(pinned(&app), "1.2.0");
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the pin was cleared"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pinned(&app), serde_json::Value::Null);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));

    // Installed (after unblocking) and failing: `pin` itself switches, fails, clears.
    ok(&app.run(&["unblock", "1.2.0"]));
    let out = app.run(&["pin", "1.2.0"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the pin was cleared"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pinned(&app), serde_json::Value::Null);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

/// A channel release without an artifact for this machine is no update: `check` says
/// so and exits 0 with a warning, instead of "update available".
#[test]
fn check_reports_a_release_without_an_artifact_for_this_target() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    let other = release_tarball(tmp.path(), "1.1.0", "");
    reg.publish("1.1.0", &other, Some("prod"), &["--target", "s390x-linux"]);
    let out = app.run(&["check", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let c = json(&out);
    assert_eq!(c["decision"], "no-artifact-for-target", "{c}");
    assert_eq!(c["update_available"], false, "{c}");
    assert!(
        c["explanation"].as_str().unwrap().contains("s390x-linux"),
        "{c}"
    );
    assert!(
        stderr(&out).contains("WARN") && stderr(&out).contains("no artifact for target"),
        "{}",
        stderr(&out)
    );
}

/// The channel document's expiry is in `check`, `status` and `why --json`, and the agent
/// warns once it is less than a week away.
#[test]
fn the_agent_warns_when_its_channel_is_about_to_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &["--expires-in", "3d"]);
    let out = app.run(&["update"]);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("WARN")
            && err.contains("channel prod's document expires at")
            && err.contains("updraft refresh --channel prod"),
        "{err}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.dir.join("demo/channels/prod.json")).unwrap())
            .unwrap();
    let expires = &doc["expires"];
    for cmd in ["check", "status", "why"] {
        let j = json(&app.run(&[cmd, "--json"]));
        assert_eq!(&j["channel"]["expires_at"], expires, "{cmd}: {j}");
        assert_eq!(j["channel"]["name"], "prod", "{cmd}: {j}");
        assert_eq!(j["channel"]["version"], "1.0.0", "{cmd}: {j}");
        assert_eq!(j["channel"]["sequence"], doc["sequence"], "{cmd}: {j}");
    }

    // Re-signed for longer: no warning.
    reg.promote("1.0.0", "prod", &["--expires-in", "30d"]);
    let out = app.run(&["update"]);
    ok(&out);
    assert!(!stderr(&out).contains("expires at"), "{}", stderr(&out));
}

#[test]
fn untrusted_signature_tampered_artifact_and_rollback_attack_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    let channel = reg.dir.join("demo/channels/prod.json");
    let old_doc = std::fs::read(&channel).unwrap();
    let old_sig = std::fs::read(reg.dir.join("demo/channels/prod.json.minisig")).unwrap();

    // Tampered artifact: checksum mismatch, exit 5, nothing installed.
    reg.ship("1.1.0", "", Some("prod"), &[]);
    let art = std::fs::read_dir(reg.dir.join("demo/releases/1.1.0"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap();
    let good = std::fs::read(&art).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&art, &bad).unwrap();
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(!app.root.join("releases/1.1.0").exists());
    assert!(app.staging_leftovers().is_empty());
    std::fs::write(&art, &good).unwrap();
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));

    // Rollback attack: an old, validly signed channel document with a lower sequence.
    std::fs::write(&channel, &old_doc).unwrap();
    std::fs::write(reg.dir.join("demo/channels/prod.json.minisig"), &old_sig).unwrap();
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("sequence"), "{}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    let s = json(&app.run(&["status", "--json"]));
    assert!(
        s["last_error"].as_str().unwrap_or("").contains("sequence"),
        "{s}"
    );
    assert!(s["last_check"].is_string(), "{s}");
    assert_eq!(s["channel_sequence"], 2, "{s}");

    // A document signed by a key this machine does not trust.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let foreign = agent_app(&reg, "prod", "");
    let k2 = other.join("k2.pub");
    ok(&reg.cli(&[
        "keygen",
        "--secret-key",
        other.join("k2.key").to_str().unwrap(),
        "--public-key",
        k2.to_str().unwrap(),
    ]));
    let line = std::fs::read_to_string(&k2)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let cfg = std::fs::read_to_string(&foreign.config)
        .unwrap()
        .replace(&reg.pubkey_line, &line);
    std::fs::write(&foreign.config, cfg).unwrap();
    let out = foreign.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("trusted"), "{}", stderr(&out));
    assert_eq!(foreign.current(), None);
}

#[test]
fn rollout_share_and_yank() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    // 0% rollout: nobody is admitted; the machine waits and says so.
    reg.ship("1.1.0", "", Some("prod"), &["--rollout", "0"]);
    let check = app.run(&["check", "--json"]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    let w = json(&app.run(&["why", "--json"]));
    assert!(
        w["explanation"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("rollout"),
        "{w}"
    );
    // Yanking the running version makes the machine leave it at once, rollout or not.
    let out = reg.cli(&[
        "yank",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--channel",
        "prod",
        "--version",
        "1.0.0",
        "--secret-key",
        reg.secret.to_str().unwrap(),
    ]);
    ok(&out);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    // 100%: admitted.
    reg.ship("1.2.0", "", Some("prod"), &["--rollout", "100"]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.2.0"));
}

#[test]
fn a_killed_pending_activation_is_rolled_back_and_blocked() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    // The health check of 1.1.0 hangs (a SLOW marker), so the update is killed while pending.
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    let cfg = std::fs::read_to_string(&app.config).unwrap();
    std::fs::write(&app.config, cfg.replace("retries = 20", "retries = 1000")).unwrap();
    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    let mut child = std::process::Command::new(bin())
        .arg("--config")
        .arg(&app.config)
        .arg("update")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut pending = false;
    for _ in 0..1200 {
        let st = std::fs::read_to_string(app.root.join(".updraft/state.json")).unwrap_or_default();
        if app.current().as_deref() == Some("1.1.0") && st.contains("\"pending\": {") {
            pending = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(pending, "the update never reached the pending state");
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    // The next run recovers: back to 1.0.0, 1.1.0 blocked, and it is not retried.
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("1.1.0", "interrupted");
}

#[test]
fn daemon_polls_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "interval = \"200ms\"\njitter = \"50ms\"");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let mut child = std::process::Command::new(bin())
        .arg("--config")
        .arg(&app.config)
        .arg("agent")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |v: &str| {
        for _ in 0..1200 {
            if app.current().as_deref() == Some(v) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        false
    };
    let first = wait_for("1.0.0");
    reg.ship("1.1.0", "", Some("prod"), &[]);
    let second = wait_for("1.1.0");
    unsafe { libc_kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
    assert!(first && second, "daemon did not follow the channel");
    assert!(status.success(), "daemon exit: {status:?}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn demo_runs_end_to_end() {
    let out = std::process::Command::new(bin())
        .arg("demo")
        .output()
        .unwrap();
    ok(&out);
    let text = stdout(&out);
    assert!(text.contains("Demo complete"), "{text}");
    assert!(text.contains("$ updraft update"), "{text}");
}

#[test]
fn a_crash_during_the_bake_period_still_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    // The server dies 1.5 s after it starts; the checks (20 retries 100 ms apart) give
    // up about 2 s later, well inside the bake, however slowly the server started.
    let app = agent_app(&reg, "prod", "bake = \"8s\"");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    // 1.1.0 passes its first health checks, then its server dies 1.5 s after start.
    reg.ship("1.1.0", "dies", Some("prod"), &[]);
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("bake"), "{}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    app.assert_blocked("1.1.0", "bake");
}

#[test]
fn logs_are_json_lines_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let out = app.run(&["--log-format", "json", "update"]);
    ok(&out);
    let lines: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "release installed" && l["version"] == "1.0.0"),
        "{}",
        stderr(&out)
    );
    assert!(lines.iter().all(|l| l["level"].is_string()));
}

/// Under the systemd timer, stdout is the journal (JOURNAL_STREAM names it): logs are
/// JSON records and the summary line is not printed a second time next to them.
#[test]
fn under_the_timer_the_journal_gets_each_message_once() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let run = |journal_is_stdout: bool| {
        let path = tmp.path().join("stdout");
        let file = std::fs::File::create(&path).unwrap();
        let m = file.metadata().unwrap();
        let stream = if journal_is_stdout {
            format!("{}:{}", m.dev(), m.ino())
        } else {
            "0:0".to_string()
        };
        // systemd connects stdout and stderr to the same journal stream.
        let status = std::process::Command::new(bin())
            .arg("--config")
            .arg(&app.config)
            .arg("update")
            .env_remove("UPDRAFT_ROOT")
            .env_remove("UPDRAFT_CONFIG")
            .env("JOURNAL_STREAM", stream)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(&path).unwrap()
    };

    let journal = run(true);
    // Each line: the priority prefix journald strips, then one JSON record.
    let records: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| {
            let record = l
                .strip_prefix('<')
                .and_then(|r| r.split_once('>'))
                .map(|(_, r)| r)
                .unwrap_or_else(|| panic!("no <N> priority prefix: {l}"));
            serde_json::from_str(record).unwrap_or_else(|e| panic!("not a record ({e}): {l}"))
        })
        .collect();
    assert!(
        records.iter().any(|r| r["message"]
            .as_str()
            .is_some_and(|m| m.contains("installing 1.0.0"))),
        "{journal}"
    );

    // Elsewhere (a shell, a script) the summary is printed as usual.
    let output = run(false);
    assert!(
        output
            .lines()
            .any(|l| !l.starts_with('{') && l.contains("1.0.0")),
        "{output}"
    );
}

#[test]
fn a_move_back_that_failed_to_download_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", None, &[]);
    reg.ship("2.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    // The operator moves prod back to 1.0.0, but its artifact is damaged in transit.
    let art = reg.dir.join(format!(
        "demo/releases/1.0.0/demo-1.0.0-{}-linux.tar.gz",
        std::env::consts::ARCH
    ));
    let good = std::fs::read(&art).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&art, &bad).unwrap();
    reg.promote("1.0.0", "prod", &[]);
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("2.0.0"));
    // Once the artifact is whole again, the next poll follows the channel back.
    std::fs::write(&art, &good).unwrap();
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
}

#[test]
fn an_unchanged_channel_costs_one_304_from_nginx() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let web = nginx::Nginx::start(&reg.dir);
    let app = App::new(&agent_toml(&reg, &web.base, "prod", ""));
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    // Channel, its signature, release, its signature, block list, artifact.
    let before = web.access_log_with(6).len();
    assert_eq!(before, 6, "{:#?}", web.access_log());
    ok(&app.run(&["update"]));
    ok(&app.run(&["check"]));
    let polls: Vec<String> = web.access_log_with(before + 2)[before..].to_vec();
    assert_eq!(polls.len(), 2, "{polls:#?}");
    for line in &polls {
        assert!(
            line.contains("GET /demo/channels/prod.json HTTP/1.1\" 304 0"),
            "{line}"
        );
    }
    // A new release is a 200 again and is installed.
    reg.ship("1.1.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
}

#[test]
fn an_absolute_artifact_url_is_fetched_at_exactly_its_address() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let art = reg.dir.join(format!(
        "demo/releases/1.0.0/demo-1.0.0-{}-linux.tar.gz",
        std::env::consts::ARCH
    ));
    // A signed download link on another host: an escaped space and plus in the path, a query
    // that is part of the address, not of the file name.
    let target = "/dl/demo%201.0.0%2Bb1.tar.gz?sig=1";
    let cdn = fault_server::FaultServer::only_at(target, std::fs::read(&art).unwrap());
    let url = format!("{}{target}", cdn.base);

    // The publisher signs a release document that points there.
    let doc_path = reg.dir.join("demo/releases/1.0.0/release.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
    for artifact in doc["artifacts"].as_object_mut().unwrap().values_mut() {
        artifact["url"] = url.clone().into();
    }
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    let key = updraft::registry::keys::SecretKey::load_from_file(&reg.secret, None).unwrap();
    let sig = key.sign(&bytes, "release with an absolute URL").unwrap();
    std::fs::write(&doc_path, &bytes).unwrap();
    std::fs::write(
        reg.dir.join("demo/releases/1.0.0/release.json.minisig"),
        sig,
    )
    .unwrap();

    let app = agent_app(&reg, "prod", "");
    let out = app.run(&["update"]);
    let asked: Vec<String> = cdn.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(code(&out), 0, "{}\nasked for {asked:?}", stderr(&out));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert!(
        !asked.is_empty() && asked.iter().all(|p| p == target),
        "{asked:?}"
    );
}

/// The keys of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

#[test]
fn why_json_keeps_its_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    assert_eq!(code(&app.run(&["update"])), 4);
    // A wave that admits nobody yet, then everybody: the machine waits for it.
    reg.ship("1.2.0", "", None, &[]);
    ok(&reg.promote("1.2.0", "prod", &["--waves", "0s=0,1d=100"]));
    ok(&app.run(&["update"]));
    let w = json(&app.run(&["why", "--json"]));
    assert_eq!(
        keys(&w),
        [
            "blocked",
            "channel",
            "channel_sequence",
            "channel_version",
            "current",
            "decision",
            "explanation",
            "history",
            "hostname",
            "last_check",
            "last_error",
            "last_health",
            "last_operation",
            "machine",
            "pinned",
            "rollout",
            "schema_version",
            "state",
            "window",
            "yanked"
        ],
        "{w}"
    );
    assert_eq!(keys(&w["blocked"]["1.1.0"]), ["at", "reason"], "{w}");
    let op = ["at", "kind", "message", "ok", "version"];
    assert_eq!(keys(&w["last_health"]), op, "{w}");
    assert_eq!(w["last_health"]["kind"], "health");
    assert_eq!(keys(&w["last_operation"]), op, "{w}");
    assert_eq!(w["last_operation"]["kind"], "update");
    assert_eq!(
        keys(&w["rollout"]),
        [
            "admitted",
            "admitted_from",
            "machine_bucket_percent",
            "rollout",
            "share_now_percent",
            "version"
        ],
        "{w}"
    );
    assert_eq!(w["rollout"]["version"], "1.2.0");
    assert_eq!(w["rollout"]["admitted"], false);
    assert_eq!(keys(&w["rollout"]["admitted_from"]), ["percent", "start"]);
    assert_eq!(w["rollout"]["admitted_from"]["percent"], 100);
    let history = w["history"].as_array().unwrap();
    assert!(history.len() >= 3, "{w}");
    for h in history {
        assert_eq!(keys(h), ["at", "event", "message", "ok", "version"], "{h}");
    }
    let events: Vec<&str> = history
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"update") && events.contains(&"decision"),
        "{events:?}"
    );
    // One time format everywhere: RFC 3339, UTC, whole seconds.
    for t in [
        &w["last_check"],
        &w["blocked"]["1.1.0"]["at"],
        &w["last_health"]["at"],
        &w["rollout"]["admitted_from"]["start"],
        &history[0]["at"],
    ] {
        let t = t.as_str().unwrap_or_else(|| panic!("not a string: {t}"));
        assert!(
            t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}

#[test]
fn a_zero_limit_in_the_config_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    for key in [
        "max_document_bytes",
        "max_artifact_bytes",
        "max_unpacked_bytes",
        "max_entries",
    ] {
        let app = App::new(&agent_toml(
            &reg,
            &reg.http,
            "prod",
            &format!("[limits]\n{key} = 0\n"),
        ));
        let out = app.run(&["check"]);
        assert_eq!(code(&out), 2, "{key}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("limits.{key} = 0")),
            "{}",
            stderr(&out)
        );
    }
}

/// A registry with 1.0.0 on `prod` whose artifact is served by a misbehaving server
/// (`script`, then well-behaved), and an agent whose `[timeouts]` are `timeouts`.
fn agent_with_faulty_download(
    tmp: &std::path::Path,
    script: Vec<fault_server::Fault>,
    timeouts: &str,
) -> (Registry, fault_server::FaultServer, App) {
    let reg = Registry::new(tmp);
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let server = fault_server::FaultServer::start(reg.artifact_bytes("1.0.0"), script);
    reg.point_artifacts_at("1.0.0", &server.url("/dl/demo-1.0.0.tar.gz"));
    let toml = agent_toml(&reg, &reg.http, "prod", "").replace(
        "[timeouts]\nretries = 2\n",
        &format!("[timeouts]\n{timeouts}\n"),
    );
    (reg, server, App::new(&toml))
}

#[test]
fn a_wrong_content_length_is_retried_like_a_cut_body() {
    let tmp = tempfile::tempdir().unwrap();
    let (_reg, server, app) = agent_with_faulty_download(
        tmp.path(),
        vec![fault_server::Fault::ShortLength(100)],
        "retries = 2",
    );
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(server.seen().len(), 2, "{:?}", server.seen());
}

#[test]
fn a_server_that_sends_a_byte_per_connection_is_given_up_on_after_the_total_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    // Each connection brings one new byte, so the failures-in-a-row budget never runs
    // out; the total bound on attempts (10 x (retries + 1)) does.
    let (_reg, server, app) = agent_with_faulty_download(
        tmp.path(),
        vec![fault_server::Fault::ResetAfter(1); 1000],
        "retries = 1\nartifact = \"10m\"",
    );
    let out = app.run(&["update"]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("gave up downloading"), "{err}");
    assert!(err.contains("too many attempts"), "{err}");
    assert!(err.contains("timeouts.artifact"), "{err}");
    assert_eq!(server.seen().len(), 20, "{:?}", server.seen().len());
    assert_eq!(app.current(), None);
    // The root lock was released: the next command runs.
    ok(&app.run(&["prune", "--dry-run"]));
}

#[test]
fn a_trickling_download_ends_at_the_artifact_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    // One byte every 20 ms: never silent long enough for timeouts.read, but the whole
    // artifact would take minutes.
    let (_reg, server, app) = agent_with_faulty_download(
        tmp.path(),
        vec![fault_server::Fault::Trickle(std::time::Duration::from_millis(20)); 1000],
        "retries = 2\nartifact = \"1s\"",
    );
    let out = app.run(&["update"]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("gave up downloading"), "{err}");
    assert!(err.contains("did not finish in time"), "{err}");
    assert!(err.contains("timeouts.artifact (here 1s)"), "{err}");
    assert_eq!(server.seen().len(), 1, "{:?}", server.seen());
    assert_eq!(app.current(), None);
    ok(&app.run(&["prune", "--dry-run"]));
}
