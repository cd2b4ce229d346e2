//! Servers the tests start as processes: each in a process group of its own, stopped the
//! way its manual says, then the whole group ended and the leader reaped, so that nothing
//! a test started outlives it (issue 16: `Child::kill` ended nginx's master and orphaned
//! its workers, which kept running after the suite).
//!
//! PID 1 on a CI machine or in a container may not reap orphans, so "gone" means no
//! process of the group is left in any state but zombie.

use std::io;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How long a server gets to stop after its stop signal before its group is killed.
const GRACE: Duration = Duration::from_secs(10);
/// How long a killed group gets to die before we give up waiting for it (a process in an
/// uninterruptible sleep cannot die sooner; we then leave it rather than hang the test).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A process leading its own process group (everything it starts stays in that group
/// unless it moves out), ended on drop with `stop_signal`, then SIGKILL to the group.
///
/// Nothing but `stop` reaps the leader: until then its pid, which is also the group's id,
/// cannot be reused, so signalling the group never reaches a stranger.
pub struct ProcessGroup {
    child: Child,
    stop_signal: libc::c_int,
    what: String,
    reaped: bool,
}

impl ProcessGroup {
    /// Start `cmd` as the leader of a new process group. `stop_signal` is what its manual
    /// says ends it: SIGTERM for most servers, SIGQUIT for a graceful nginx.
    pub fn spawn(cmd: &mut Command, stop_signal: libc::c_int) -> io::Result<ProcessGroup> {
        use std::os::unix::process::CommandExt;
        let what = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd.process_group(0).spawn()?;
        Ok(ProcessGroup {
            child,
            stop_signal,
            what,
            reaped: false,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The leader's stdout, if it was piped (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Whether the leader has exited (it stays a zombie until `stop` reaps it).
    pub fn exited(&self) -> bool {
        !is_live(self.child.id())
    }

    /// Send the stop signal to the leader, wait (bounded) until no process of the group is
    /// live, SIGKILL the group if one still is, then reap the leader. Idempotent.
    pub fn stop(&mut self) {
        if self.reaped {
            return;
        }
        let pgid = self.child.id();
        if is_live(pgid) {
            signal(pgid as i32, self.stop_signal);
        }
        if !wait_until_gone(pgid, GRACE) {
            eprintln!(
                "{} (pid {pgid}) did not stop within {GRACE:?} of signal {}: killing its process group",
                self.what, self.stop_signal
            );
            signal(-(pgid as i32), libc::SIGKILL);
            if !wait_until_gone(pgid, KILL_WAIT) {
                eprintln!(
                    "process group {pgid} ({}) still has live processes after SIGKILL: {:?}",
                    self.what,
                    live_in_group(pgid)
                );
            }
        }
        // Reap the leader; bounded, since a leader that survived SIGKILL would block wait().
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(None) if Instant::now() <= deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    eprintln!("{} (pid {pgid}) could not be reaped", self.what);
                    return;
                }
                Ok(Some(_)) | Err(_) => break,
            }
        }
        self.reaped = true;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a failure (ESRCH: already
    // gone) needs no handling.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Wait until no process of group `pgid` is live, polling until `limit`; whether it is so.
fn wait_until_gone(pgid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if live_in_group(pgid).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// State and process group of `pid` from /proc/PID/stat, or None once it has gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after it do not.
    let mut fields = s.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether `pid` is running (not gone, not a zombie waiting for a reaper).
pub fn is_live(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The live processes of group `pgid`.
pub fn live_in_group(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| matches!(stat(pid), Some((state, g)) if g == pgid && state != 'Z' && state != 'X'))
        .collect()
}
