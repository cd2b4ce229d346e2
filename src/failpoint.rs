//! Named failpoints: the critical steps of an operation, where the crash tests kill
//! the process to prove that the next run finishes or undoes what it left.
//!
//! Compiled in only with the `failpoints` feature, which only the tests enable; in a
//! normal build [`hit`] is an empty inline function. With the feature, the environment
//! chooses:
//! - `UPDRAFT_FAILPOINT=NAME` or `NAME#N`: SIGKILL this process at the first (or the
//!   Nth) time it reaches `NAME`, as a power cut or the OOM killer would: no destructor
//!   runs, nothing is flushed.
//! - `UPDRAFT_FAILPOINT_LOG=PATH`: append `NAME#N` to `PATH` at every point reached, so
//!   a test learns which points a command passes and can kill it at each one in turn.

/// Every failpoint, for tests that check that each one is reached by some command.
pub const ALL: &[&str] = &[
    // fsutil: a temporary file or link is complete but not yet renamed into place.
    "fsutil.temp-written",
    "fsutil.link-made",
    // install: verified staging tree; intent on disk; renamed into place; recorded.
    "install.staged",
    "install.intent",
    "install.renamed",
    "install.recorded",
    // activate: the switch and what follows it.
    "activate.pending",
    "activate.switched",
    "activate.commands",
    "activate.restarted",
    "activate.healthy",
    "activate.baking",
    "activate.baked",
    "activate.done",
    // activate, on failure: undo recorded, switched back, old release restarted, saved.
    "activate.undo",
    "activate.switched-back",
    "activate.brought-back",
    "activate.failed",
    // recovery of a killed activation.
    "recover.undo",
    "recover.switched-back",
    "recover.brought-back",
    "recover.done",
    // prune: a release renamed aside, then deleted.
    "prune.renamed",
    "prune.removed",
    // data epochs: data/ snapshotted (before the switch); restored (before switching back).
    "data.snapshotted",
    "data.restored",
    // pin: the pin saved, before switching to it.
    "pin.saved",
    // update: the accepted channel document saved, before the download.
    "update.decided",
];

/// Reached a critical step called `name` (one of [`ALL`]).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}

/// Reached a critical step called `name` (one of [`ALL`]).
#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::Mutex;

    static COUNTS: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);
    debug_assert!(ALL.contains(&name), "unknown failpoint {name}");
    let n = {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts
            .get_or_insert_with(HashMap::new)
            .entry(name)
            .or_insert(0);
        *c += 1;
        *c
    };
    let here = format!("{name}#{n}");
    if let Some(log) = std::env::var_os("UPDRAFT_FAILPOINT_LOG") {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| writeln!(f, "{here}"));
    }
    let Ok(want) = std::env::var("UPDRAFT_FAILPOINT") else {
        return;
    };
    if want == here || (want == name && n == 1) {
        // SAFETY: kill(2) on our own pid with a constant signal; it does not return.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
