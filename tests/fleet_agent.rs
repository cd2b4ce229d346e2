//! The machine side of fleet feedback, through the real CLI: the host-side `state`,
//! `check` exit 11, the Prometheus metrics file, and reports written to file://, to a
//! real nginx (WebDAV PUT) and to the S3 test server.

mod support;

use support::app::*;
use support::registry::*;

fn state_of(app: &App, cmd: &str) -> String {
    let out = app.run(&[cmd, "--json"]);
    ok(&out);
    json(&out)["state"].as_str().unwrap_or("<none>").to_string()
}

/// The failure signal persists: after a rolled-back update every later quiet poll still
/// says `failed` and `check` exits 11, until the channel moves on.
#[test]
fn a_blocked_channel_version_stays_failed_and_check_exits_11() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");

    assert_eq!(state_of(&app, "status"), "behind", "never polled");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    assert_eq!(state_of(&app, "status"), "healthy");
    assert_eq!(state_of(&app, "why"), "healthy");
    assert_eq!(code(&app.run(&["check"])), 0);

    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(state_of(&app, "status"), "failed");

    // The next polls change nothing and succeed; the state does not forget.
    for _ in 0..2 {
        ok(&app.run(&["update"]));
        let s = json(&app.run(&["status", "--json"]));
        assert_eq!(s["state"], "failed", "{s}");
        assert_eq!(s["last_error"], serde_json::Value::Null, "{s}");
        assert_eq!(state_of(&app, "why"), "failed");
        let check = app.run(&["check", "--json"]);
        assert_eq!(code(&check), 11, "{}", stderr(&check));
        let c = json(&check);
        assert_eq!(c["state"], "failed", "{c}");
        assert_eq!(c["decision"], "blocked", "{c}");
    }
    let text = stdout(&app.run(&["status"]));
    assert!(text.contains("state:     failed"), "{text}");

    // The channel moves on to a good release: check offers it, update heals.
    reg.ship("1.2.0", "", Some("prod"), &[]);
    assert_eq!(code(&app.run(&["check"])), 10);
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.2.0"));
    assert_eq!(state_of(&app, "status"), "healthy");
    assert_eq!(code(&app.run(&["check"])), 0);

    // A rollout that has not reached this machine is a wait, not a failure.
    reg.ship("1.3.0", "", Some("prod"), &["--rollout", "0"]);
    ok(&app.run(&["update"]));
    assert_eq!(state_of(&app, "status"), "waiting-for-rollout");
    assert_eq!(code(&app.run(&["check"])), 0);

    // A pin says so whatever the channel does.
    ok(&app.run(&["pin", "1.2.0"]));
    assert_eq!(state_of(&app, "status"), "pinned");
    assert_eq!(state_of(&app, "why"), "pinned");
}

/// `unblock` clears the failure: the machine is behind (it will try again), not failed.
#[test]
fn unblocking_clears_the_failed_state() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = agent_app(&reg, "prod", "");
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    assert_eq!(code(&app.run(&["update"])), 4);
    assert_eq!(code(&app.run(&["check"])), 11);
    ok(&app.run(&["unblock", "1.1.0"]));
    assert_eq!(state_of(&app, "status"), "behind");
    assert_eq!(code(&app.run(&["check"])), 10);
}
