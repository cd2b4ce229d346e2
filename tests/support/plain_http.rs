//! A static web server without ETags: `python3 -m http.server`, which answers
//! `If-Modified-Since` from the file's whole-second mtime and sends `Date`. Registries
//! behind such servers have only `Last-Modified` as a validator (spec §11).

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use super::process::ProcessGroup;

/// Serve `dir` on a loopback port python picks; returns the server (stopped when
/// dropped) and its base URL, read from the line it prints once listening.
pub fn spawn_python_http(dir: &Path) -> (ProcessGroup, String) {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-u",
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
        "--directory",
    ])
    .arg(dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut server = ProcessGroup::spawn(&mut cmd, libc::SIGTERM).expect("python3 on PATH");
    let mut lines = std::io::BufReader::new(server.take_stdout().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let Some(port) = first
        .split(" port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
    else {
        drop(server);
        panic!("python3 -m http.server did not say where it listens: {first:?}");
    };
    std::thread::spawn(move || lines.for_each(drop));
    (server, format!("http://127.0.0.1:{port}"))
}
