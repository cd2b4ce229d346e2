//! Running an operator's command (restart script, health check) so that it cannot hang
//! updraft: bounded in time, killed with everything it started, its output captured.
//!
//! Each command gets its own process group, so a timeout kills the shell *and* the
//! `sleep` or server it forked. Its output is read until it exits, then for a short
//! drain only: a daemon it left running may hold the pipes open forever (restart scripts
//! that start a server in the background), and waiting for their end-of-file would hang.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// How long output is still collected once the command itself has exited.
const DRAIN: Duration = Duration::from_millis(200);
/// Output kept per stream (the tail; the start of a long log says little).
const KEEP: usize = 64 * 1024;

#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("empty command")]
    Empty,
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {} (killed with its process group){}", humantime::format_duration(*after), tail_suffix(stderr))]
    TimedOut { after: Duration, stderr: String },
    #[error("lost track of {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: io::Error,
    },
}

fn tail_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

/// Kills the whole process group when dropped while armed: on timeout, and when the
/// caller's future is cancelled (e.g. the agent is stopped mid-check).
struct GroupKill(Option<libc::pid_t>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: killpg has no memory-safety preconditions; `pgid` is the group
            // this module created for the child (process_group(0) makes it its pid).
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Read `pipe` into a buffer keeping the last `KEEP` bytes. The task ends at end-of-file;
/// if a daemon still holds the pipe it keeps draining in the background (dropping our
/// end instead would kill that daemon with SIGPIPE on its next write).
fn collect<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> (Buffer, JoinHandle<()>) {
    let buf: Buffer = Arc::default();
    let sink = buf.clone();
    let task = tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = vec![0u8; 8192];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut b = sink.lock().unwrap_or_else(|e| e.into_inner());
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > 2 * KEEP {
                        let cut = b.len() - KEEP;
                        b.drain(..cut);
                    }
                }
            }
        }
    });
    (buf, task)
}

async fn drained(buf: &Buffer, task: &mut JoinHandle<()>) -> Vec<u8> {
    let _ = tokio::time::timeout(DRAIN, task).await;
    let b = buf.lock().unwrap_or_else(|e| e.into_inner());
    b[b.len().saturating_sub(KEEP)..].to_vec()
}

/// Run `argv` with `env` added to updraft's environment, stdin from /dev/null, and kill
/// its process group if it has not exited after `timeout`. Processes it leaves running
/// in its group after exiting normally are left alone (they may be the app).
pub async fn run(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Finished, RunError> {
    run_in(argv, env, timeout, None).await
}

/// [`run`], in the directory `cwd` (None: updraft's own).
pub async fn run_in(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
    cwd: Option<&std::path::Path>,
) -> Result<Finished, RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
    let mut cmd = tokio::process::Command::new(program);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
    let mut group = GroupKill(child.id().and_then(|p| libc::pid_t::try_from(p).ok()));
    let (out, mut out_task) = collect(child.stdout.take());
    let (err, mut err_task) = collect(child.stderr.take());
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            return Err(RunError::Wait {
                program: program.clone(),
                source,
            })
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            let stderr = drained(&err, &mut err_task).await;
            return Err(RunError::TimedOut {
                after: timeout,
                stderr: tail(&stderr, 5),
            });
        }
    };
    group.disarm();
    let (stdout, stderr) = tokio::join!(drained(&out, &mut out_task), drained(&err, &mut err_task));
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// "exited with status 3" or "was killed by signal 9", for messages.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => format!("ended with {status}"),
    }
}

/// The last `lines` non-empty lines of `bytes`, joined on one line with " | " so an error
/// message stays one line in logs and in the state file.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    kept[kept.len().saturating_sub(lines)..]
        .iter()
        .map(|l| {
            if l.chars().count() > 300 {
                let short: String = l.chars().take(300).collect();
                format!("{short}…")
            } else {
                (*l).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail(b"a\n\nb\n c \nd\n", 3), "b | c | d");
        assert_eq!(tail(b"", 3), "");
        assert_eq!(tail(&[b'x'; 400], 1).chars().count(), 301);
    }
}
