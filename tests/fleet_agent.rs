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

/// HMAC-SHA256(key "test-machine", message "demo"), computed with Python's hmac module.
const REPORT_ID: &str = "5978da80a8347def1d7251e52d133d2d2a8c5e405700159f1a8bb8242655b69a";

fn report_key() -> String {
    format!("demo/fleet/prod/{REPORT_ID}.json")
}

/// Parse a written report the way `fleet status` reads one, checking it never carries
/// the raw machine id.
fn parse_report(bytes: &[u8]) -> updraft::registry::report::Report {
    assert!(
        !String::from_utf8_lossy(bytes).contains("test-machine"),
        "the raw machine id leaked into the report"
    );
    assert!(bytes.len() <= updraft::registry::report::MAX_REPORT_BYTES);
    updraft::registry::report::Report::parse(bytes, &"demo".parse().unwrap())
        .unwrap_or_else(|e| panic!("report refused ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn kernel_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The default report store is the registry itself: a file:// registry gets the report
/// beside its channels, rewritten when something changes and not otherwise.
#[test]
fn reports_go_to_a_file_registry_when_something_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = App::new(&agent_toml(
        &reg,
        &reg.url,
        "prod",
        "[report]\nenabled = true\n",
    ));
    let path = reg.dir.join(report_key());

    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    let r = parse_report(&std::fs::read(&path).unwrap());
    assert_eq!(r.machine.as_str(), REPORT_ID);
    assert_eq!(r.hostname.as_deref(), Some(kernel_hostname().as_str()));
    assert_eq!(r.state.as_str(), "healthy");
    assert_eq!(
        r.current.as_ref().map(|v| v.to_string()).as_deref(),
        Some("1.0.0")
    );
    assert_eq!(r.channel_version, r.current);
    assert_eq!(r.channel_sequence, Some(1));
    assert!(r.last_activation.is_some() && r.channel_expires.is_some());
    assert!(r.rollout_bucket.is_some() && r.last_poll.is_some());
    assert!(r.last_error.is_none() && r.last_health.as_ref().is_some_and(|h| h.ok));
    r.check_key(&report_key()).unwrap();

    // A quiet poll says nothing new: no report is written (the heartbeat is 6h away).
    std::fs::remove_file(&path).unwrap();
    ok(&app.run(&["update"]));
    assert!(!path.exists(), "an unchanged machine rewrote its report");

    // A failed release: the report says so at once.
    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    assert_eq!(code(&app.run(&["update"])), 4);
    let r = parse_report(&std::fs::read(&path).unwrap());
    assert_eq!(r.state.as_str(), "failed");
    assert!(r.blocks(&"1.1.0".parse().unwrap()), "{r:?}");
    assert_eq!(
        r.current.as_ref().map(|v| v.to_string()).as_deref(),
        Some("1.0.0")
    );
    assert!(r.last_health.as_ref().is_some_and(|h| !h.ok), "{r:?}");
    assert!(
        r.last_error
            .as_ref()
            .is_some_and(|e| e.message.contains("1.1.0")),
        "{r:?}"
    );
}

/// A report to a web server that accepts WebDAV PUT (real nginx), without the hostname,
/// and a heartbeat on every run when `every` is zero.
#[test]
fn reports_go_to_nginx_by_put_and_leave_the_hostname_out_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let store = tmp.path().join("collector");
    std::fs::create_dir_all(&store).unwrap();
    let nginx = support::nginx::Nginx::start_accepting_put(&store);
    let extra = format!(
        "[report]\nenabled = true\nurl = \"{}\"\nhostname = false\nevery = \"0s\"\n",
        nginx.url("reports")
    );
    let app = agent_app(&reg, "prod", &extra);
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    let path = store.join("reports").join(report_key());
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\nnginx: {}", path.display(), nginx.error_log()));
    let r = parse_report(&bytes);
    assert_eq!(r.hostname, None);
    assert!(!String::from_utf8_lossy(&bytes).contains("hostname"));
    assert_eq!(r.state.as_str(), "healthy");
    let puts = nginx
        .access_log_with(1)
        .iter()
        .filter(|l| l.contains(&format!("\"PUT /reports/{} ", report_key())))
        .count();
    assert_eq!(puts, 1, "{:?}", nginx.access_log());

    // every = "0s": each run is a heartbeat.
    std::fs::remove_file(&path).unwrap();
    ok(&app.run(&["update"]));
    assert!(path.exists(), "the heartbeat was not written");
}

/// A report store that cannot be written never fails the update: it is logged, and the
/// next run writes the report once the store is back.
#[test]
fn a_report_that_cannot_be_written_does_not_fail_the_update() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    // A file where the store's directory should be: every write fails.
    let blocked = tmp.path().join("reports");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let extra = format!(
        "[report]\nenabled = true\nurl = \"file://{}\"\n",
        blocked.display()
    );
    let app = agent_app(&reg, "prod", &extra);
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let out = app.run(&["update"]);
    ok(&out);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    let err = stderr(&out);
    assert!(
        err.contains("WARN")
            && err.contains("cannot write the fleet report")
            && err.contains("next run"),
        "{err}"
    );

    // The store is back: the next (quiet) run writes the report it owes.
    std::fs::remove_file(&blocked).unwrap();
    std::fs::create_dir(&blocked).unwrap();
    ok(&app.run(&["update"]));
    parse_report(&std::fs::read(blocked.join(report_key())).unwrap());

    // An HTTP store that refuses connections: the update succeeds all the same.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = refused.local_addr().unwrap().port();
    drop(refused);
    let app = agent_app(
        &reg,
        "prod",
        &format!("[report]\nenabled = true\nurl = \"http://127.0.0.1:{port}/r\"\n"),
    );
    let out = app.run(&["update"]);
    ok(&out);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write the fleet report") && err.contains("127.0.0.1"),
        "{err}"
    );
}

/// Reports to the S3 test server with their own credentials: the registry is read over
/// HTTP with none, so only `report_s3_*` can have signed the write.
#[tokio::test(flavor = "multi_thread")]
async fn reports_go_to_s3_with_their_own_credentials() {
    use support::s3::{S3Server, ACCESS_KEY, REGION, SECRET_KEY};
    use updraft::transport::Store;
    let server = S3Server::start();
    server.create_bucket("fleet").await;
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let extra = format!(
        "s3_endpoint = \"{}\"\ns3_region = \"{REGION}\"\n[report]\nenabled = true\nurl = \"s3://fleet/reports\"\nreport_s3_access_key_id = \"{ACCESS_KEY}\"\nreport_s3_secret_access_key = \"{SECRET_KEY}\"\n",
        server.endpoint
    );
    let app = agent_app(&reg, "prod", &extra);
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let out = app.run(&["update"]);
    ok(&out);
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    let store =
        updraft::transport::s3::S3Registry::new("s3://fleet/reports", &server.options()).unwrap();
    let bytes = store
        .get(&report_key(), 1 << 20)
        .await
        .unwrap()
        .expect("no report in the bucket");
    let r = parse_report(&bytes);
    assert_eq!(r.state.as_str(), "healthy");

    // Wrong report credentials: refused by the server, logged, the update still fine.
    let bad = App::new(&agent_toml(
        &reg,
        &reg.http,
        "prod",
        &extra.replace(SECRET_KEY, "not-the-secret"),
    ));
    let out = bad.run(&["update"]);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("cannot write the fleet report") && err.contains("s3://fleet/reports"),
        "{err}"
    );
}

/// The metrics file parses with the Prometheus client library's own text parser, and
/// says what `status` says.
#[test]
fn the_metrics_file_parses_as_prometheus_text() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let metrics = tmp.path().join("textfile/updraft.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let app = agent_app(
        &reg,
        "prod",
        &format!("metrics_file = \"{}\"\n", metrics.display()),
    );
    reg.ship("1.0.0", "", Some("prod"), &[]);
    ok(&app.run(&["update"]));
    reg.ship("1.1.0", "broken", Some("prod"), &[]);
    assert_eq!(code(&app.run(&["update"])), 4);

    let samples = prometheus_samples(&metrics);
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        samples
            .iter()
            .find(|s| {
                s["name"] == name
                    && s["labels"]["app"] == "demo"
                    && label.is_none_or(|(k, v)| s["labels"][k] == v)
            })
            .unwrap_or_else(|| panic!("{name} {label:?} missing: {samples:?}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(value("updraft_info", Some(("version", "1.0.0"))), 1.0);
    assert_eq!(value("updraft_info", Some(("channel", "prod"))), 1.0);
    assert_eq!(value("updraft_state", Some(("state", "failed"))), 1.0);
    assert_eq!(value("updraft_state", Some(("state", "healthy"))), 0.0);
    assert_eq!(value("updraft_behind_channel", None), 1.0);
    assert_eq!(value("updraft_blocked_versions", None), 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_run = value("updraft_last_run_timestamp_seconds", None);
    let last_ok = value("updraft_last_success_timestamp_seconds", None);
    assert!(last_run > 0.0 && last_run <= now, "{last_run}");
    assert!(last_ok > 0.0 && last_ok <= last_run, "{last_ok} {last_run}");
    assert!(value("updraft_channel_expiry_timestamp_seconds", None) > now);
    for s in &samples {
        assert_eq!(s["type"], "gauge", "{s}");
        assert!(!s["doc"].as_str().unwrap_or("").is_empty(), "{s}");
    }
    // Written atomically: no temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(metrics.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("updraft.prom")]);
}

/// Every sample of a textfile as `prometheus_client.parser` reads it (a parse error
/// fails the test).
fn prometheus_samples(path: &std::path::Path) -> Vec<serde_json::Value> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is missing: run .ci/setup (pip install prometheus-client)")
out = []
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in f.samples:
        out.append({"family": f.name, "type": f.type, "doc": f.documentation,
                    "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused {}:\n{}\n{}",
        path.display(),
        stderr(&out),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
