//! Test support: a real nginx serving a directory on a loopback port, everything it
//! writes (config, logs, temp files, pid) inside its own temp dir, stopped on drop.
//! CI installs it with the Debian package `nginx-light`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::process::ProcessGroup;
use super::tls::ServerCert;

pub struct Nginx {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    /// The master and its workers. nginx's manual: SIGQUIT to the master is a graceful
    /// shutdown (workers finish their requests, then exit, then the master).
    server: ProcessGroup,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Serve `root` (which must be readable by the current user).
    pub fn start(root: &Path) -> Nginx {
        Nginx::start_with(root, "", None)
    }

    /// Serve `root` over https (nginx's `ssl` listener) with `cert`; `base` is
    /// `https://127.0.0.1:PORT`.
    pub fn start_tls(root: &Path, cert: &ServerCert) -> Nginx {
        Nginx::start_with(root, "", Some(cert))
    }

    /// Serve `root` and accept uploads into it with WebDAV PUT, as a store for machine
    /// reports would.
    pub fn start_accepting_put(root: &Path) -> Nginx {
        Nginx::start_with(root, "dav_methods PUT; create_full_put_path on;", None)
    }

    /// Serve `root` with `server_extra` added to the `server` block, over https with
    /// `tls`.
    fn start_with(root: &Path, server_extra: &str, tls: Option<&ServerCert>) -> Nginx {
        let bin = which_nginx();
        // A free port can be taken between probing and nginx binding it: try again then.
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let conf = config(dir.path(), root, port, server_extra, tls);
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let p = dir.path();
            let mut cmd = Command::new(&bin);
            cmd.arg("-p")
                .arg(p)
                .arg("-e")
                .arg(p.join("error.log"))
                .arg("-c")
                .arg(p.join("nginx.conf"))
                .arg("-g")
                .arg(format!(
                    "daemon off; pid {};",
                    p.join("nginx.pid").display()
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let server = ProcessGroup::spawn(&mut cmd, libc::SIGQUIT)
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if server.exited() {
                    break;
                }
                // nginx writes its pid file only once it has bound the port: before
                // that, a connection could reach another test's server on that port.
                if p.join("nginx.pid").exists() && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx {
                        base: format!(
                            "{}://127.0.0.1:{port}",
                            if tls.is_some() { "https" } else { "http" }
                        ),
                        server,
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(server);
            last_log = std::fs::read_to_string(p.join("error.log")).unwrap_or_default();
        }
        panic!("nginx did not start; its error log:\n{last_log}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Access log lines (nginx's combined format), one per request.
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The access log once it has at least `n` lines (nginx writes a line after the
    /// response has gone out, so a client can finish before its line is there).
    pub fn access_log_with(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.access_log();
            if log.len() >= n || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

fn which_nginx() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is not installed: apt-get install -y nginx-light");
}

fn config(
    dir: &Path,
    root: &Path,
    port: u16,
    server_extra: &str,
    tls: Option<&ServerCert>,
) -> String {
    let d = dir.display();
    let listen = match tls {
        Some(c) => format!(
            "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {};\n        ssl_certificate_key {};",
            c.cert.display(),
            c.key.display()
        ),
        None => format!("listen 127.0.0.1:{port};"),
    };
    // Workers switch to `user`; as root that would be nobody, who cannot read a 0700
    // temp dir, so stay root (tests only).
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    format!(
        r#"{user}
worker_processes 1;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ application/json json; }}
    default_type application/octet-stream;
    server {{
        {listen}
        root {root};
        {server_extra}
    }}
}}
"#,
        root = root.display()
    )
}
