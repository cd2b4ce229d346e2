//! The release store: staging directories that clean up after themselves, committed
//! releases, crash-safe removal, and the (pure) pruning plan.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::disk::layout::{AppRoot, STAGING_PREFIX};
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

fn exchange_paths(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Remove an installed release so that a crash half-way never leaves a partial tree
/// under a version name: rename it to a staging name first, then delete.
pub fn remove_release(root: &AppRoot, version: &Version) -> io::Result<()> {
    let dir = root.release_dir(version);
    let doomed = root.releases().join(format!(
        "{STAGING_PREFIX}removed-{version}-{}",
        std::process::id()
    ));
    fs::rename(&dir, &doomed)?;
    fsutil::fsync_dir(&root.releases())?;
    fsutil::remove_tree(&doomed)
}

/// Delete staging trees left by an interrupted run. Only called under the root lock,
/// so no live operation owns them.
pub fn clean_leftovers(root: &AppRoot) -> io::Result<Vec<PathBuf>> {
    let leftovers = root.leftover_staging()?;
    for p in &leftovers {
        if p.is_dir() && !p.is_symlink() {
            fsutil::remove_tree(p)?;
        } else {
            fs::remove_file(p)?;
        }
    }
    Ok(leftovers)
}

/// Which releases to delete so that at most `keep` remain, never touching `protected`
/// (current, previous, pinned). Newest versions (semver order) are kept first; protected
/// releases count towards `keep`.
pub fn plan_prune(installed: &[Version], keep: usize, protected: &[&Version]) -> Vec<Version> {
    let mut newest_first: Vec<&Version> = installed.iter().collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    let mut kept = installed.iter().filter(|v| protected.contains(v)).count();
    let mut remove = Vec::new();
    for v in newest_first {
        if protected.contains(&v) {
            continue;
        }
        if kept < keep {
            kept += 1;
        } else {
            remove.push(v.clone());
        }
    }
    remove.sort();
    remove
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(list: &[&str]) -> Vec<Version> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn prune_table() {
        let all = vs(&["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"]);
        let v = |s: &str| s.parse::<Version>().unwrap();
        let cases: Vec<(usize, Vec<Version>, Vec<&str>)> = vec![
            (5, vec![], vec![]),
            (3, vec![], vec!["1.0.0", "1.1.0"]),
            (
                1,
                vec![v("2.0.0")],
                vec!["1.0.0", "1.1.0", "1.2.0", "1.3.0"],
            ),
            // current is old (rolled back), previous is newest: both kept, count toward keep.
            (
                2,
                vec![v("1.0.0"), v("2.0.0")],
                vec!["1.1.0", "1.2.0", "1.3.0"],
            ),
            // more protected than keep: nothing protected is removed.
            (
                1,
                vec![v("1.0.0"), v("1.1.0"), v("1.2.0")],
                vec!["1.3.0", "2.0.0"],
            ),
            (3, vec![v("1.1.0")], vec!["1.0.0", "1.2.0"]),
        ];
        for (keep, protected, want) in cases {
            let p: Vec<&Version> = protected.iter().collect();
            assert_eq!(
                plan_prune(&all, keep, &p),
                vs(&want),
                "keep={keep} protected={protected:?}"
            );
        }
    }

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
