//! `credential_process` of an AWS profile: run the operator's command and read the
//! temporary credentials it prints (the AWS SDKs' "process credentials" JSON).
//!
//! The command's output holds a secret, so no error here ever quotes it: errors name
//! the profile, the command and what was wrong with the answer, never its text.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::credentials::Creds;

/// A credential helper that has not answered by then is hung (waiting for a prompt,
/// a network it cannot reach): fail clearly rather than stall the agent's poll.
pub(super) const TIMEOUT: Duration = Duration::from_secs(30);
/// Credentials JSON is a few KiB; more is not a credentials answer.
const OUTPUT_LIMIT: u64 = 64 * 1024;

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    version: Option<u64>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// The credentials in a `credential_process` answer, checked as the AWS SDKs check
/// them: `Version` 1, both keys, and an `Expiration` (if any) still in the future.
/// Pure; `now` is passed in so the expiry rule is tested.
pub(super) fn parse_answer(stdout: &[u8], now: SystemTime) -> Result<Creds, String> {
    // serde_json's message quotes no input text, only positions and field names.
    let a: Answer = serde_json::from_slice(stdout)
        .map_err(|e| format!("its output is not the credentials JSON ({e})"))?;
    match a.version {
        Some(1) => {}
        Some(v) => {
            return Err(format!(
                "its output has \"Version\": {v}; only 1 is understood"
            ))
        }
        None => return Err("its output has no \"Version\" (expected 1)".into()),
    }
    let non_empty = |v: Option<String>| v.filter(|v| !v.is_empty());
    let (Some(key_id), Some(secret)) = (non_empty(a.access_key_id), non_empty(a.secret_access_key))
    else {
        return Err("its output lacks \"AccessKeyId\" or \"SecretAccessKey\"".into());
    };
    if let Some(exp) = non_empty(a.expiration) {
        let at = crate::time::parse_time(&exp)
            .map_err(|e| format!("its \"Expiration\" {exp:?} is not an RFC 3339 time ({e})"))?;
        if at <= now {
            return Err(format!(
                "the credentials it printed expired at {exp}; check the helper and this machine's clock"
            ));
        }
    }
    Ok(Creds {
        key_id,
        secret,
        token: non_empty(a.session_token),
    })
}

/// Run `command` through `sh -c` (as the AWS SDKs do on Unix), its stderr passed
/// through to ours, and read its answer; the whole process group is killed after
/// [`TIMEOUT`].
pub(super) fn run(command: &str) -> Result<Creds, String> {
    run_within(command, TIMEOUT)
}

pub(super) fn run_within(command: &str, timeout: Duration) -> Result<Creds, String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("cannot read its output")?;
    // Read on a thread so a large answer never blocks the child on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut stdout).take(OUTPUT_LIMIT + 1).read_to_end(&mut buf);
        r.map(|_| buf)
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                // SAFETY: kill(2) on the group we created; no memory is touched.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!(
                    "it did not answer within {} s and was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    // The child is gone; a grandchild could still hold the pipe open, so end the group.
    // SAFETY: as above.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let out = reader
        .join()
        .map_err(|_| "reading its output failed".to_string())?
        .map_err(|e| format!("cannot read its output: {e}"))?;
    if !status.success() {
        return Err(format!("it failed ({status}); its own message is above"));
    }
    if out.len() as u64 > OUTPUT_LIMIT {
        return Err(format!("its output exceeds {OUTPUT_LIMIT} bytes"));
    }
    parse_answer(&out, SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_like_the_sdks_do() {
        let now = crate::time::parse_time("2026-01-01T00:00:00Z").unwrap();
        let ok = parse_answer(
            br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SECRETVALUE","SessionToken":"TOK","Expiration":"2026-01-01T01:00:00Z"}"#,
            now,
        )
        .unwrap();
        assert_eq!(
            (ok.key_id.as_str(), ok.secret.as_str(), ok.token.as_deref()),
            ("AK", "SECRETVALUE", Some("TOK"))
        );
        let long_lived = parse_answer(
            br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"S"}"#,
            now,
        )
        .unwrap();
        assert_eq!(long_lived.token, None);
        for (answer, want) in [
            (&br#"{"Version":2,"AccessKeyId":"AK","SecretAccessKey":"SECRETVALUE"}"#[..], "only 1"),
            (br#"{"AccessKeyId":"AK","SecretAccessKey":"SECRETVALUE"}"#, "no \"Version\""),
            (br#"{"Version":1,"AccessKeyId":"AK"}"#, "lacks"),
            (br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SECRETVALUE","Expiration":"2025-12-31T23:00:00Z"}"#, "expired"),
            (br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SECRETVALUE","Expiration":"soon"}"#, "RFC 3339"),
            (b"SECRETVALUE", "not the credentials JSON"),
            (br#"{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"SECRETVALUE""#, "not the credentials JSON"),
        ] {
            let e = parse_answer(answer, now).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRETVALUE"), "the secret leaked: {e}");
        }
    }

    #[test]
    fn the_command_runs_fails_and_times_out_clearly() {
        let c = run(r#"echo '{"Version":1,"AccessKeyId":"AK","SecretAccessKey":"S"}'"#).unwrap();
        assert_eq!(c.key_id, "AK");
        let e = run("echo SECRETVALUE; exit 3").unwrap_err();
        assert!(
            e.contains("exit status: 3") && !e.contains("SECRETVALUE"),
            "{e}"
        );
        let e = run("echo SECRETVALUE").unwrap_err();
        assert!(
            e.contains("not the credentials JSON") && !e.contains("SECRETVALUE"),
            "{e}"
        );
        // A helper that never answers (its grandchild holding the pipe) is stopped.
        let e = run_within("sleep 600 & sleep 600", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
    }
}
