//! The release directories: staging directories that clean up after themselves,
//! committed releases, crash-safe removal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::disk::layout::{AppRoot, STAGING_PREFIX, TRASH_PREFIX};
use crate::fsutil;
use crate::registry::names::Version;

/// A directory under `releases/` being filled. Dropping it without `commit` deletes it,
/// so an error at any step (bad checksum, hostile entry, full disk) leaves nothing behind;
/// a SIGKILL leaves a `.staging-*` name that the next run removes.
pub struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    pub fn create(root: &AppRoot, version: &Version) -> io::Result<Staging> {
        fs::create_dir_all(root.releases())?;
        let path = root.releases().join(format!(
            "{STAGING_PREFIX}{version}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        fs::create_dir(&path)?;
        Ok(Staging {
            path,
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Device and inode of the staging tree: a rename keeps them, so they tell the
    /// tree apart from any other under the release's name after a crash.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        identity(&self.path)
    }

    /// Flush the unpacked tree and rename it to `releases/<version>`: the release
    /// appears complete or not at all.
    pub fn commit(mut self, dest: &Path) -> io::Result<()> {
        fsutil::sync_filesystem_of(&self.path)?;
        fs::rename(&self.path, dest)?;
        self.committed = true;
        fsutil::fsync_dir(dest.parent().unwrap_or(Path::new(".")))
    }

    /// Atomically swap the staged tree with an existing release of the same version
    /// (`--force`): `renameat2(RENAME_EXCHANGE)` means `releases/<version>` never stops
    /// existing, so a `current` link to it never dangles. The old tree is then deleted.
    pub fn exchange(mut self, dest: &Path) -> io::Result<()> {
        fsutil::sync_filesystem_of(&self.path)?;
        exchange_paths(&self.path, dest)?;
        fsutil::fsync_dir(dest.parent().unwrap_or(Path::new(".")))?;
        // `self.path` now holds the old tree; dropping uncommitted removes it.
        self.committed = false;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fsutil::remove_tree(&self.path);
        }
    }
}

/// A temporary file under `releases/` holding an artifact downloaded whole, so it can
/// be verified before anything parses it. Deleted when dropped; a SIGKILL leaves a
/// `.staging-*` name that the next run removes with the staging trees.
pub struct Download {
    path: PathBuf,
    file: fs::File,
}

impl Download {
    pub fn create(root: &AppRoot, version: &Version) -> io::Result<Download> {
        use std::os::unix::fs::OpenOptionsExt;
        fs::create_dir_all(root.releases())?;
        let path = root.releases().join(format!(
            "{STAGING_PREFIX}{version}-{}-{:08x}.download",
            std::process::id(),
            fastrand::u32(..)
        ));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        Ok(Download { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&mut self) -> &mut fs::File {
        &mut self.file
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Device and inode of `path` itself (a symlink is not followed).
pub fn identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// `renameat2` through rustix's raw syscall rather than glibc's wrapper, which only
/// exists since glibc 2.28: the release binary is linked against glibc 2.17
/// (`dist/build`), and the kernel call itself is there since Linux 3.15.
fn exchange_paths(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

/// Remove an installed release so that a crash half-way never leaves a partial tree
/// under a version name: rename it to a staging name first, then delete. Once renamed
/// the release is gone; a tree that cannot be deleted is left to [`clean_leftovers`]
/// (warned about, set aside), never an error that stops a prune or a deploy.
pub fn remove_release(root: &AppRoot, version: &Version) -> io::Result<()> {
    let dir = root.release_dir(version);
    let doomed = root.releases().join(format!(
        "{STAGING_PREFIX}removed-{version}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    fs::rename(&dir, &doomed)?;
    fsutil::fsync_dir(&root.releases())?;
    crate::failpoint::hit("prune.renamed");
    if let Err(e) = fsutil::remove_tree(&doomed) {
        warn!(path = %doomed.display(), error = %e, "cannot delete the removed release's files yet; the next run tries again");
    }
    crate::failpoint::hit("prune.removed");
    // Its data snapshot goes with it (the release it restores data for is gone).
    let snapshot = root.snapshot_dir(version);
    if snapshot.exists() {
        if let Err(e) = fsutil::remove_tree(&snapshot) {
            warn!(path = %snapshot.display(), error = %e, "cannot delete the removed release's data snapshot; remove it by hand");
        }
    }
    Ok(())
}

/// What [`clean_leftovers`] did.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub removed: Vec<PathBuf>,
    /// Leftovers that could not be deleted, where they are now (renamed aside to
    /// `releases/.trash-*` when possible), and why. They never block an operation and
    /// are tried again on every run.
    pub stuck: Vec<(PathBuf, io::Error)>,
}

/// Delete what an interrupted run left: staging trees in `releases/`, and temporary
/// files (`fsutil::temp_sibling` names) in `releases/`, `.updraft/` and `commands/`.
/// Only called under the root lock, so no live operation owns them. A tree that cannot
/// be deleted (an immutable file, a mount inside it) is renamed aside and reported, so
/// recovery is never blocked by it.
pub fn clean_leftovers(root: &AppRoot) -> io::Result<Leftovers> {
    let mut out = Leftovers::default();
    for p in root.leftover_staging()? {
        match fsutil::remove_tree(&p) {
            Ok(()) => out.removed.push(p),
            Err(e) => {
                let aside = set_aside(root, &p).unwrap_or(p);
                out.stuck.push((aside, e));
            }
        }
    }
    for dir in [root.meta(), root.commands()] {
        match fsutil::remove_temp_files(&dir) {
            Ok(removed) => out.removed.extend(removed),
            Err(e) => out.stuck.push((dir, e)),
        }
    }
    Ok(out)
}

/// Rename a leftover to `releases/.trash-*`, unless it already is one.
fn set_aside(root: &AppRoot, p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_string_lossy().into_owned();
    if name.starts_with(TRASH_PREFIX) {
        return None;
    }
    let aside = root.releases().join(format!(
        "{TRASH_PREFIX}{}-{:08x}",
        name.trim_start_matches('.'),
        fastrand::u32(..)
    ));
    fs::rename(p, &aside).ok()?;
    let _ = fsutil::fsync_dir(&root.releases());
    Some(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_removes_itself_unless_committed() {
        let d = tempfile::tempdir().unwrap();
        let root = AppRoot::new(d.path());
        let v: Version = "1.0.0".parse().unwrap();
        let s = Staging::create(&root, &v).unwrap();
        let p = s.path().to_path_buf();
        fs::write(p.join("f"), b"x").unwrap();
        drop(s);
        assert!(!p.exists());
        let s = Staging::create(&root, &v).unwrap();
        fs::write(s.path().join("f"), b"x").unwrap();
        s.commit(&root.release_dir(&v)).unwrap();
        assert_eq!(fs::read(root.release_dir(&v).join("f")).unwrap(), b"x");
        assert!(root.leftover_staging().unwrap().is_empty());
    }

    #[test]
    fn download_removes_itself_and_is_a_leftover_until_then() {
        let dir = tempfile::tempdir().unwrap();
        let root = AppRoot::new(dir.path());
        let mut d = Download::create(&root, &"1.0.0".parse().unwrap()).unwrap();
        std::io::Write::write_all(d.file(), b"x").unwrap();
        assert_eq!(
            root.leftover_staging().unwrap(),
            vec![d.path().to_path_buf()]
        );
        drop(d);
        assert!(root.leftover_staging().unwrap().is_empty());
    }

    #[test]
    fn exchange_keeps_version_dir_present() {
        let d = tempfile::tempdir().unwrap();
        let root = AppRoot::new(d.path());
        let v: Version = "1.0.0".parse().unwrap();
        let s = Staging::create(&root, &v).unwrap();
        fs::write(s.path().join("f"), b"old").unwrap();
        s.commit(&root.release_dir(&v)).unwrap();
        let s = Staging::create(&root, &v).unwrap();
        fs::write(s.path().join("f"), b"new").unwrap();
        s.exchange(&root.release_dir(&v)).unwrap();
        assert_eq!(fs::read(root.release_dir(&v).join("f")).unwrap(), b"new");
        assert!(root.leftover_staging().unwrap().is_empty());
    }
}
