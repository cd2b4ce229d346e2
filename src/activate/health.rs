//! Health checks: is the release we just switched to serving?
//!
//! Each `[[health]]` check waits its `grace`, then makes up to `1 + retries` attempts
//! `interval` apart, each bounded by `timeout`: an HTTP GET whose status must equal
//! `expect_status` (redirects are not followed, so a 301 can be expected), a TCP connect,
//! or a command that must exit 0 (killed with its process group on timeout). Failures
//! are said in plain words, with the target, so an operator reading `updraft why` knows
//! where to look.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info};

use crate::activate::process::{self, RunError};
use crate::activate::restarts::RestartWatch;
use crate::config::HealthCheck;

/// Body bytes read for `body_contains` (and for the excerpt in failure messages).
const MAX_BODY: usize = 1 << 20;

/// The response header an app can name its version in, for `expect_version`.
pub const RELEASE_VERSION_HEADER: &str = "X-Release-Version";

/// What passed, for logs and `--json` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HealthReport {
    pub checks: Vec<CheckPassed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckPassed {
    pub check: String,
    /// Attempts used, the passing one included.
    pub attempts: u32,
    /// Duration of the passing attempt, in milliseconds.
    pub latency_ms: u64,
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// "HTTP 500 from http://127.0.0.1:3000/health"
    Status {
        url: String,
        status: u16,
        expected: u16,
        body: String,
    },
    BodyMismatch {
        url: String,
        wanted: String,
        body: String,
    },
    /// `expect_version`: neither the body nor `X-Release-Version` names the version.
    VersionMissing {
        url: String,
        version: String,
        header: Option<String>,
        body: String,
    },
    /// Could not talk to the target at all: "connection refused to 127.0.0.1:3000".
    Connect {
        target: String,
        reason: String,
    },
    /// The response started but could not be read to the end.
    Read {
        url: String,
        reason: String,
    },
    CommandFailed {
        status: String,
        stderr: String,
    },
    CannotRun {
        program: String,
        reason: String,
    },
    TimedOut(Duration),
}

impl Failure {
    /// Whether the message names the probe's target itself; if not, the error adds it.
    fn names_target(&self) -> bool {
        matches!(
            self,
            Failure::Status { .. }
                | Failure::BodyMismatch { .. }
                | Failure::VersionMissing { .. }
                | Failure::Connect { .. }
                | Failure::Read { .. }
        )
    }
}

fn excerpt(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    let short: String = line.chars().take(120).collect();
    if short.len() < line.len() {
        format!("{short}…")
    } else {
        short
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status {
                url,
                status,
                expected,
                body,
            } => {
                write!(f, "HTTP {status} from {url}")?;
                if *expected != 200 {
                    write!(f, " (expected {expected})")?;
                }
                if !body.trim().is_empty() {
                    write!(f, ": {:?}", excerpt(body))?;
                }
                Ok(())
            }
            Failure::BodyMismatch { url, wanted, body } => write!(
                f,
                "the body from {url} does not contain {wanted:?} (it starts with {:?})",
                excerpt(body)
            ),
            Failure::VersionMissing {
                url,
                version,
                header,
                body,
            } => {
                write!(
                    f,
                    "{url} does not say it runs {version} (expect_version): the body starts with {:?}",
                    excerpt(body)
                )?;
                match header {
                    Some(h) => write!(f, " and {RELEASE_VERSION_HEADER} is {h:?}")?,
                    None => write!(f, " and there is no {RELEASE_VERSION_HEADER} header")?,
                }
                write!(f, "; the old code may still be running")
            }
            Failure::Connect { target, reason } => {
                if reason == "connection refused" {
                    write!(f, "connection refused to {target}")
                } else {
                    write!(f, "cannot connect to {target}: {reason}")
                }
            }
            Failure::CommandFailed { status, stderr } => {
                write!(f, "command {status}")?;
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            Failure::Read { url, reason } => {
                write!(f, "reading the response from {url} failed: {reason}")
            }
            Failure::CannotRun { program, reason } => write!(f, "cannot run {program}: {reason}"),
            Failure::TimedOut(d) => write!(f, "timed out after {}", humantime::format_duration(*d)),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HealthError {
    #[error("health check {}failed after {attempts} attempt{}: {last}", subject(.check, *.named, .last), if *.attempts == 1 { "" } else { "s" })]
    Failed {
        /// The check's label: its `name`, else its probe ("http http://…").
        check: String,
        /// Whether the check has a `name` of its own.
        named: bool,
        attempts: u32,
        last: Failure,
    },
    #[error("health check {check}: {reason}; fix the [[health]] entry in the config")]
    Invalid { check: String, reason: String },
    #[error(transparent)]
    CrashLoop(#[from] crate::activate::restarts::CrashLoop),
}

/// An unnamed check's label is its probe; when the failure already says the URL or
/// address, saying the label too would repeat it.
fn subject(check: &str, named: bool, last: &Failure) -> String {
    if named || !last.names_target() {
        format!("{check} ")
    } else {
        String::new()
    }
}

impl HealthError {
    fn failed(c: &HealthCheck, attempts: u32, last: Failure) -> HealthError {
        HealthError::Failed {
            check: c.label(),
            named: c.name.is_some(),
            attempts,
            last,
        }
    }
}

/// Walk an error's source chain: reqwest's own message ("error sending request for
/// url") says nothing; the io::Error underneath says "connection refused".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        last = err.to_string();
        cur = err.source();
    }
    last
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

fn host_port(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// A probe, resolved from a check once.
enum Probe<'a> {
    Http {
        url: &'a str,
        expected: u16,
        body_contains: Option<&'a str>,
        /// `expect_version`: the version being activated (UPDRAFT_VERSION).
        version: Option<&'a str>,
    },
    Tcp(&'a str),
    Command(&'a [String]),
}

impl<'a> Probe<'a> {
    fn of(c: &'a HealthCheck, env: &'a [(String, String)]) -> Result<Probe<'a>, HealthError> {
        let invalid = |reason: &str| HealthError::Invalid {
            check: c.label(),
            reason: reason.into(),
        };
        match (&c.http, &c.tcp, &c.command) {
            (Some(url), None, None) => {
                url::Url::parse(url).map_err(|e| invalid(&format!("{url:?} is not a URL: {e}")))?;
                // Without a version (back to a release updraft did not install) there
                // is nothing to expect.
                let version = c
                    .expect_version
                    .then(|| env.iter().find(|(k, _)| k == "UPDRAFT_VERSION"))
                    .flatten()
                    .map(|(_, v)| v.as_str());
                Ok(Probe::Http {
                    url,
                    expected: c.expect_status.unwrap_or(200),
                    body_contains: c.body_contains.as_deref(),
                    version,
                })
            }
            (None, Some(addr), None) => Ok(Probe::Tcp(addr)),
            (None, None, Some(argv)) if !argv.is_empty() => Ok(Probe::Command(argv)),
            _ => Err(invalid(
                "needs exactly one of `command` (non-empty), `http` or `tcp`",
            )),
        }
    }
}

async fn http_attempt(
    client: &reqwest::Client,
    url: &str,
    expected: u16,
    body_contains: Option<&str>,
    version: Option<&str>,
) -> Result<(), Failure> {
    let connect = |e: reqwest::Error| Failure::Connect {
        target: host_port(url),
        reason: root_cause(&e),
    };
    let mut resp = client.get(url).send().await.map_err(connect)?;
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get(RELEASE_VERSION_HEADER)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
    // The body is read for an excerpt on failure, `body_contains` and `expect_version`,
    // bounded.
    let mut body = Vec::new();
    if status != expected || body_contains.is_some() || version.is_some() {
        let read = |e: reqwest::Error| Failure::Read {
            url: url.to_string(),
            reason: root_cause(&e),
        };
        while let Some(chunk) = resp.chunk().await.map_err(read)? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                body.truncate(MAX_BODY);
                break;
            }
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != expected {
        return Err(Failure::Status {
            url: url.to_string(),
            status,
            expected,
            body,
        });
    }
    if let Some(want) = body_contains {
        if !body.contains(want) {
            return Err(Failure::BodyMismatch {
                url: url.to_string(),
                wanted: want.to_string(),
                body,
            });
        }
    }
    if let Some(v) = version {
        let by_header = header
            .as_deref()
            .is_some_and(|h| names_version(h.trim(), v));
        if !by_header && !mentions_version(&body, v) {
            return Err(Failure::VersionMissing {
                url: url.to_string(),
                version: v.to_string(),
                header,
                body,
            });
        }
    }
    Ok(())
}

/// Whether a header value is `version` (a leading `v` allowed). Pure.
fn names_version(value: &str, version: &str) -> bool {
    value.strip_prefix('v').unwrap_or(value) == version
}

/// Whether `text` names `version` as a word of its own: "ok 1.1.0" and
/// `{"version":"v1.1.0"}` do, "11.1.0" and "1.1.0-rc.1" do not. Pure.
fn mentions_version(text: &str, version: &str) -> bool {
    let part_of_version = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+');
    text.match_indices(version).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + version.len()..].chars().next();
        // A leading 'v' (v1.1.0) is still the version, when it starts the word.
        let before_ok = match before {
            None => true,
            Some('v') => text[..at - 1]
                .chars()
                .next_back()
                .is_none_or(|c| !part_of_version(c)),
            Some(c) => !part_of_version(c),
        };
        // A trailing '.' ends a sentence ("runs 1.1.0."), unless more version follows.
        let after_ok = match after {
            None => true,
            Some('.') => text[at + version.len() + 1..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_ascii_alphanumeric()),
            Some(c) => !part_of_version(c),
        };
        before_ok && after_ok
    })
}

async fn tcp_attempt(addr: &str) -> Result<(), Failure> {
    tokio::net::TcpStream::connect(addr)
        .await
        .map(drop)
        .map_err(|e| Failure::Connect {
            target: addr.to_string(),
            reason: io_reason(&e),
        })
}

async fn command_attempt(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), Failure> {
    match process::run(argv, env, timeout).await {
        Ok(done) if done.status.success() => Ok(()),
        Ok(done) => Err(Failure::CommandFailed {
            status: process::describe(done.status),
            stderr: process::tail(&done.stderr, 5),
        }),
        Err(RunError::TimedOut { .. }) => Err(Failure::TimedOut(timeout)),
        Err(RunError::Spawn { program, source }) => Err(Failure::CannotRun {
            program,
            reason: source.to_string(),
        }),
        Err(e) => Err(Failure::CannotRun {
            program: argv.join(" "),
            reason: e.to_string(),
        }),
    }
}

async fn attempt(
    probe: &Probe<'_>,
    client: Option<&reqwest::Client>,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<(), Failure> {
    let fut = async {
        match probe {
            Probe::Http {
                url,
                expected,
                body_contains,
                version,
            } => match client {
                Some(client) => {
                    http_attempt(client, url, *expected, *body_contains, *version).await
                }
                // `http_client` makes one whenever a check has `http`.
                None => Err(Failure::CannotRun {
                    program: url.to_string(),
                    reason: "no HTTP client was set up for this check".into(),
                }),
            },
            Probe::Tcp(addr) => tcp_attempt(addr).await,
            Probe::Command(argv) => command_attempt(argv, env, timeout).await,
        }
    };
    // Commands enforce the timeout themselves (to kill their process group and keep its
    // stderr); this bound covers the network probes, and is only a backstop for commands.
    let bound = match probe {
        Probe::Command(_) => timeout + Duration::from_secs(1),
        _ => timeout,
    };
    match tokio::time::timeout(bound, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::TimedOut(timeout)),
    }
}

/// The client for the `http` checks among `checks`: none when no check speaks HTTP, so
/// command and TCP checks cost no HTTP (or TLS) set-up.
fn http_client(checks: &[HealthCheck]) -> Result<Option<reqwest::Client>, HealthError> {
    let Some(first) = checks.iter().find(|c| c.http.is_some()) else {
        return Ok(None);
    };
    // Health endpoints are local: never through a proxy from the environment. A fresh
    // connection per attempt: a pooled one could outlive the process that accepted it.
    crate::transport::tls::client_builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map(Some)
        .map_err(|e| HealthError::Invalid {
            check: first.label(),
            reason: format!("cannot set up an HTTP client: {}", root_cause(&e)),
        })
}

/// Run one check through its attempts (its grace period is the caller's business).
async fn check_once(
    c: &HealthCheck,
    client: Option<&reqwest::Client>,
    env: &[(String, String)],
) -> Result<CheckPassed, HealthError> {
    let probe = Probe::of(c, env)?;
    let tries = c.retries.saturating_add(1);
    let mut last = None;
    for n in 1..=tries {
        if n > 1 {
            tokio::time::sleep(c.interval.0).await;
        }
        let started = Instant::now();
        match attempt(&probe, client, env, c.timeout.0).await {
            Ok(()) => {
                return Ok(CheckPassed {
                    check: c.label(),
                    attempts: n,
                    latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                })
            }
            Err(f) => {
                debug!(check = %c.label(), attempt = n, "health attempt failed: {f}");
                last = Some(f);
            }
        }
    }
    let last = last.unwrap_or(Failure::TimedOut(Duration::ZERO));
    Err(HealthError::failed(c, tries, last))
}

/// Run every check in order after a restart; the first one that fails all its attempts
/// fails the whole run. `env` goes to command checks.
pub async fn run_checks(
    checks: &[HealthCheck],
    env: &[(String, String)],
) -> Result<HealthReport, HealthError> {
    let client = http_client(checks)?;
    let mut report = HealthReport::default();
    for c in checks {
        if !c.grace.0.is_zero() {
            tokio::time::sleep(c.grace.0).await;
        }
        let passed = check_once(c, client.as_ref(), env).await?;
        info!(
            check = %passed.check,
            attempts = passed.attempts,
            latency_ms = passed.latency_ms,
            "health check passed"
        );
        report.checks.push(passed);
    }
    Ok(report)
}

/// The bake period: keep checking every `every` until `for_duration` has passed. The
/// first check that fails all its attempts, or a restart by the app's supervisor,
/// fails the bake (grace applies after a restart only, so it is not waited here).
pub async fn watch(
    checks: &[HealthCheck],
    restarts: Option<&RestartWatch>,
    env: &[(String, String)],
    for_duration: Duration,
    every: Duration,
) -> Result<(), HealthError> {
    if checks.is_empty() && restarts.is_none() {
        return Ok(());
    }
    let client = http_client(checks)?;
    let deadline = Instant::now() + for_duration;
    let mut rounds = 0u64;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(every.min(left)).await;
        for c in checks {
            check_once(c, client.as_ref(), env).await?;
        }
        if let Some(r) = restarts {
            r.check(env).await?;
        }
        rounds += 1;
    }
    info!(rounds, "bake period passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_version_table() {
        let cases = [
            ("ok 1.1.0", true),
            ("1.1.0", true),
            ("{\"version\":\"1.1.0\"}", true),
            ("{\"version\":\"v1.1.0\"}", true),
            ("running 1.1.0.", true),
            ("version=1.1.0\n", true),
            ("ok 1.0.0", false),
            ("ok 11.1.0", false),
            ("ok 1.1.0-rc.1", false),
            ("ok 1.1.0.1", false),
            ("ok 1.1.0+build", false),
            ("ok x1.1.0", false),
            ("ok vv1.1.0", false),
            ("", false),
        ];
        for (body, want) in cases {
            assert_eq!(mentions_version(body, "1.1.0"), want, "{body:?}");
        }
        assert!(names_version("1.1.0", "1.1.0"));
        assert!(names_version("v1.1.0", "1.1.0"));
        assert!(!names_version("1.1.00", "1.1.0"));
    }
}
