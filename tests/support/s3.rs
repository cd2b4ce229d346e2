//! A real S3-compatible server (s3s-fs) for tests: one process per `S3Server`, on a free
//! loopback port, over its own temp dir, stopped on drop. Install it with
//! `.ci/s3-server --install`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use updraft::transport::{S3Options, TransportOptions};

use super::process::ProcessGroup;

pub const ACCESS_KEY: &str = "updraft-test";
pub const SECRET_KEY: &str = "updraft-test-secret";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    /// Stopped with SIGTERM (s3s-fs has no other shutdown), then its group is killed.
    server: ProcessGroup,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn find_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("s3s-fs");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let candidate = PathBuf::from(home).join(".cargo/bin/s3s-fs");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("s3s-fs (the S3 test server) is not installed: run `.ci/s3-server --install`");
}

impl S3Server {
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let mut cmd = Command::new(find_binary());
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&data)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut server = ProcessGroup::spawn(&mut cmd, libc::SIGTERM).expect("start s3s-fs");
        // The server logs the address it bound; read until then, then keep draining so
        // its log never fills the pipe.
        let mut lines = BufReader::new(server.take_stdout().unwrap()).lines();
        let mut endpoint = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(at) = line.find("server is running at ") {
                endpoint = Some(
                    line[at + "server is running at ".len()..]
                        .trim()
                        .to_string(),
                );
                break;
            }
        }
        let Some(endpoint) = endpoint else {
            drop(server);
            panic!("s3s-fs exited without reporting its address (see its output above)");
        };
        std::thread::spawn(move || for _ in lines {});
        S3Server {
            server,
            endpoint,
            _dir: dir,
        }
    }

    /// Where the server keeps objects: one directory per bucket.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// Options for a publisher or agent holding the test credentials.
    pub fn options(&self) -> TransportOptions {
        self.options_with(Some((ACCESS_KEY, SECRET_KEY)))
    }

    /// `None`: no credentials in the config (environment variables still apply).
    pub fn options_with(&self, creds: Option<(&str, &str)>) -> TransportOptions {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            s3: S3Options {
                endpoint: Some(self.endpoint.clone()),
                region: Some(REGION.into()),
                path_style: Some(true),
                access_key_id: creds.map(|c| c.0.to_string()),
                secret_access_key: creds.map(|c| c.1.to_string()),
                session_token: None,
            },
        }
    }

    /// Environment for running the `updraft` binary against this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }

    /// CreateBucket through the S3 API, as an operator would.
    pub async fn create_bucket(&self, name: &str) {
        let bucket = Bucket::new(
            self.endpoint.parse().unwrap(),
            UrlStyle::Path,
            name.to_string(),
            REGION,
        )
        .unwrap();
        let creds = Credentials::new(ACCESS_KEY, SECRET_KEY);
        let url = bucket.create_bucket(&creds).sign(Duration::from_secs(600));
        let resp = reqwest::Client::new().put(url).send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "CreateBucket {name}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
}
