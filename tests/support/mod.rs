//! Test support shared by every test binary (`mod support;` at the top of a test file):
//! the helpers for running the real `updraft` binary and reading its output, defined
//! here once, and the real servers and fixtures in the submodules.
//!
//! Each test binary compiles all of it and uses a part, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod app;
pub mod crash;
pub mod fault_server;
pub mod nginx;
pub mod plain_http;
pub mod process;
pub mod registry;
pub mod s3;
pub mod tarball;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::Output;

/// The `updraft` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_updraft")
}

/// The checkout's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A port for a server that binds it later (the fixture app reads it from its config).
///
/// Probing with `bind(0)` would hand out a port from the kernel's ephemeral range
/// (32768 and up by default), where any other test's `bind(0)` or outgoing connection
/// can take it before our server binds it. Ports below that range are never handed out
/// by the kernel; the counter keeps the tests of one binary apart, and whatever else
/// on the machine holds a port is skipped by the bind check.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries run one after another; the pid spreads them anyway.
    let base = 20_000 + (std::process::id() % 20) * 500;
    for _ in 0..500 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 500;
        let port = u16::try_from(base + n).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {base}..{}", base + 500);
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status and both streams, for assertion messages and for matching either stream.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Assert success, showing both streams on failure.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "{}", text(o));
}
