//! Writing inside a `file://` registry without following a symlink below its root.
//!
//! A registry directory is often writable by more than the publisher (a web server's
//! group, a sync job). A symlink there (`releases/<v>` or `channels` pointing elsewhere)
//! would send artifacts, documents and signatures wherever it points. So every
//! directory below the root is opened one component at a time with `O_NOFOLLOW`, and
//! files are created and renamed relative to that descriptor: a symlinked directory is
//! refused, and one swapped in after the check is not followed either. The root itself
//! may be a symlink: it is the operator's choice.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn symlink_refused(shown: &str) -> io::Error {
    io::Error::other(format!(
        "{shown} is a symlink: updraft never writes through a symlink inside a registry; make it a real directory"
    ))
}

/// Open the directory `segments` below `root`, creating missing ones with `dir_mode`
/// when `create`. A component that is a symlink is refused.
pub(crate) fn open_dir(
    root: &Path,
    segments: &[&str],
    create: bool,
    dir_mode: u32,
) -> io::Result<OwnedFd> {
    if create {
        // The root itself, as `updraft publish` to a new registry needs.
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(root)?;
    }
    let mut dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for (i, seg) in segments.iter().enumerate() {
        let shown = || root.join(segments[..=i].join("/")).display().to_string();
        let next = match rustix::fs::openat(&dir, *seg, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if e == rustix::io::Errno::NOENT && create => {
                match rustix::fs::mkdirat(&dir, *seg, Mode::from_raw_mode(dir_mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                let fd = rustix::fs::openat(&dir, *seg, dir_flags(), Mode::empty())
                    .map_err(|e| refusal(&dir, seg, e, &shown()))?;
                // Explicitly: umask must not decide whether a web server can traverse it.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir_mode))?;
                fd
            }
            Err(e) => return Err(refusal(&dir, seg, e, &shown())),
        };
        dir = next;
    }
    Ok(dir)
}

/// Why `seg` could not be opened as a directory: a symlink is named as such.
fn refusal(dir: &OwnedFd, seg: &str, e: rustix::io::Errno, shown: &str) -> io::Error {
    let is_link = rustix::fs::statat(dir, seg, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
        .unwrap_or(false);
    if is_link {
        symlink_refused(shown)
    } else {
        e.into()
    }
}

/// The metadata of `name` in `dir`, if it is a regular file (not followed if a symlink).
pub(crate) fn file_metadata(dir: &OwnedFd, name: &str) -> Option<fs::Metadata> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .ok()?;
    File::from(fd).metadata().ok().filter(|m| m.is_file())
}

/// Replace `name` in `dir` so a reader sees the old file or the new one: a temporary
/// sibling (created exclusively, never through a symlink) is filled by `fill`, given
/// `mode`, synced, passed to `before_rename`, then renamed over `name`.
pub(crate) fn write_atomic_at(
    dir: &OwnedFd,
    name: &str,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    );
    let result = (|| {
        let fd = rustix::fs::openat(
            dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let mut f = File::from(fd);
        fill(&mut f)?;
        f.flush()?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
        f.sync_all()?;
        before_rename(&f)?;
        rustix::fs::renameat(dir, tmp.as_str(), dir, name)?;
        rustix::fs::fsync(dir.as_fd())?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    }
    result
}
