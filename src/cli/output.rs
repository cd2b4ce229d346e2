//! What updraft prints for its reader, and what happens when the reader goes away.
//!
//! `println!` panics when stdout is a pipe whose reader has exited (`updraft list |
//! head -1`), because Rust ignores SIGPIPE. Every line for the reader goes through
//! [`line`] instead: a closed pipe becomes [`StdoutClosed`], which the caller returns
//! with `?` so destructors (the root lock, the demo's temporary directory) still run,
//! and `main` ends with 141 (128 + SIGPIPE, what a shell reports for a tool the pipe
//! killed) and no message. Diagnostics on stderr are best effort ([`diag`]).

use std::fmt;
use std::io::Write;

/// The reader of stdout went away: the command ends quietly.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// The exit code for [`StdoutClosed`]: 128 + SIGPIPE, as if the pipe had killed us.
pub const EXIT_STDOUT_CLOSED: u8 = 141;

/// Write to stdout; a closed pipe is [`StdoutClosed`], any other failure (a full disk
/// behind a redirect) an error that says so.
pub fn write(args: fmt::Arguments<'_>, newline: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let r = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// Write a diagnostic to stderr; one that cannot be written is dropped, since a
/// diagnostic must never end a command that is working.
pub fn diag(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// True when `e` is (or was caused by) the reader closing stdout.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}
