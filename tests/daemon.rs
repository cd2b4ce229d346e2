//! `updraft agent` as systemd runs it: SIGHUP re-reads the config, the watchdog is
//! petted while runs make progress and no longer once a run counts as hung. systemd is
//! not PID 1 here: the test is the notify socket (`NOTIFY_SOCKET`, a real datagram
//! socket) and sends the signals systemd would send.

mod support;

use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::app::App;
use support::fault_server::{Fault, FaultServer};
use support::registry::{agent_app, agent_toml, Registry};

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Start the daemon with stderr in `log`; with a notify socket, as a watchdog-enabled
/// systemd service (WATCHDOG_PID must be the daemon's own pid: `exec` keeps the shell's).
fn start(app: &App, log: &Path, notify: Option<(&Path, u64)>) -> Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(support::bin())
        .arg("--config")
        .arg(&app.config)
        .arg("agent")
        .env_remove("UPDRAFT_ROOT")
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap());
    if let Some((socket, usec)) = notify {
        cmd.env("NOTIFY_SOCKET", socket)
            .env("WATCHDOG_USEC", usec.to_string());
    }
    cmd.spawn().unwrap()
}

/// Wait (bounded) until `cond` holds; false if it never did.
fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn log_has(log: &Path, text: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|l| l.contains(text))
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    signal(&child, libc::SIGTERM);
    child.wait().unwrap()
}

#[test]
fn sighup_reloads_the_config_and_polls_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    // Following a channel that does not exist, polling only once an hour.
    let app = agent_app(&reg, "dev", "interval = \"1h\"");
    let log = tmp.path().join("agent.log");
    let child = start(&app, &log, None);
    let first = wait_until(|| log_has(&log, "poll failed"));
    let config = std::fs::read_to_string(&app.config).unwrap();
    std::fs::write(
        &app.config,
        config.replace("channel = \"dev\"", "channel = \"prod\""),
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    let followed = wait_until(|| app.current().as_deref() == Some("1.0.0"));
    let status = stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(first, "the first poll of dev fails: {text}");
    assert!(
        followed,
        "after SIGHUP the agent follows prod at once: {text}"
    );
    assert!(text.contains("config reloaded"), "{text}");
    assert!(status.success(), "{status:?}: {text}");
}

#[test]
fn a_config_that_does_not_load_on_sighup_is_reported_and_the_agent_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let app = agent_app(&reg, "prod", "interval = \"1h\"");
    let log = tmp.path().join("agent.log");
    let mut child = start(&app, &log, None);
    let installed = wait_until(|| app.current().as_deref() == Some("1.0.0"));
    std::fs::write(&app.config, "this is = = not toml\n").unwrap();
    signal(&child, libc::SIGHUP);
    let reported = wait_until(|| log_has(&log, "keeping the running config"));
    let alive = child.try_wait().unwrap().is_none();
    let status = stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(installed, "{text}");
    assert!(reported, "{text}");
    assert!(
        alive,
        "a bad config on SIGHUP must not stop the agent: {text}"
    );
    assert!(status.success(), "{status:?}: {text}");
}

#[test]
fn the_watchdog_is_petted_until_a_run_counts_as_hung() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    // A registry that answers with headers and then nothing for a minute: the poll
    // hangs far longer than the configured run limit of one second.
    let server = FaultServer::start(
        b"{}".to_vec(),
        vec![Fault::Stall(0, Duration::from_secs(60))],
    );
    let app = App::new(&agent_toml(&reg, &server.base, "prod", "interval = \"1h\""));
    let config = std::fs::read_to_string(&app.config).unwrap();
    std::fs::write(
        &app.config,
        config.replacen("[timeouts]\n", "[timeouts]\nrun = \"1s\"\n", 1),
    )
    .unwrap();
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let log = tmp.path().join("agent.log");
    // WatchdogSec=200ms: the agent pets every 100 ms.
    let mut child = start(&app, &log, Some((&socket_path, 200_000)));

    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    let petted = wait_until(|| {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen.iter().any(|m| m.contains("WATCHDOG=1"))
    });
    let hung = wait_until(|| log_has(&log, "counts as hung"));
    // Drain what was sent before the limit, then listen: nothing more may come.
    socket.set_nonblocking(true).unwrap();
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
    let after = socket
        .recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    assert!(petted, "pets while the run is young: {seen:?}");
    assert!(hung, "{text}");
    assert!(
        !after.as_deref().is_some_and(|m| m.contains("WATCHDOG=1")),
        "no pet once the run counts as hung, got {after:?}: {text}"
    );
}
