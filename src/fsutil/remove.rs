//! Removing a directory tree of any depth with a fixed number of open files.
//!
//! `std::fs::remove_dir_all` descends with one open directory per level, so a tree
//! deeper than the open-file limit (1,024 under systemd by default) cannot be removed,
//! and a hostile tarball can make one. Here the tree is flattened instead: a directory
//! that is not empty has its subdirectories moved up into the top directory (files are
//! unlinked where they are), then it is removed, until the top directory is empty. At
//! most three directories are open at a time, every step works on descriptors (a
//! symlink swapped in is never followed), and the work is one rename per directory and
//! level above it, so linear in the tree's total path length.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, RenameFlags};

fn open_dir(at: impl AsFd, name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The entries of a directory, without `.` and `..`; a directory is "unknown" when the
/// filesystem does not say, and then found out with a stat that does not follow links.
fn entries(dir: impl AsFd) -> io::Result<Vec<(CString, bool)>> {
    let mut out = Vec::new();
    for e in Dir::read_from(&dir)? {
        let e = e?;
        let name = e.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let is_dir = match e.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
            _ => false,
        };
        out.push((name.to_owned(), is_dir));
    }
    Ok(out)
}

fn is_not_found(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::NOENT
}

/// Remove the directory tree at `path` (or the file or symlink at `path`). A missing
/// `path` is fine.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let top = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    empty_flat(&top)?;
    drop(top);
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Empty the directory `top` by flattening, as the module says.
fn empty_flat(top: &OwnedFd) -> io::Result<()> {
    let mut fresh = 0u64;
    loop {
        let names = entries(top)?;
        if names.is_empty() {
            return Ok(());
        }
        for (name, is_dir) in names {
            if !is_dir {
                match rustix::fs::unlinkat(top, &name, AtFlags::empty()) {
                    Err(e) if is_not_found(&e) => {}
                    other => other?,
                }
                continue;
            }
            match rustix::fs::unlinkat(top, &name, AtFlags::REMOVEDIR) {
                Ok(()) => continue,
                Err(e) if is_not_found(&e) => continue,
                Err(e) if e == rustix::io::Errno::NOTEMPTY || e == rustix::io::Errno::EXIST => {}
                Err(e) => return Err(e.into()),
            }
            let child = open_dir(top, &name)?;
            for (inner, inner_is_dir) in entries(&child)? {
                if !inner_is_dir {
                    rustix::fs::unlinkat(&child, &inner, AtFlags::empty())?;
                    continue;
                }
                match rustix::fs::unlinkat(&child, &inner, AtFlags::REMOVEDIR) {
                    Ok(()) => continue,
                    Err(e) if e == rustix::io::Errno::NOTEMPTY || e == rustix::io::Errno::EXIST => {
                    }
                    Err(e) => return Err(e.into()),
                }
                move_up(&child, &inner, top, &mut fresh)?;
            }
            drop(child);
            rustix::fs::unlinkat(top, &name, AtFlags::REMOVEDIR)?;
        }
    }
}

/// Move the directory `name` of `from` into `top` under a name not yet used there.
fn move_up(from: &OwnedFd, name: &CString, top: &OwnedFd, fresh: &mut u64) -> io::Result<()> {
    loop {
        *fresh += 1;
        let new = CString::new(format!(".rm-{fresh}")).map_err(io::Error::other)?;
        match rustix::fs::renameat_with(from, name, top, &new, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::EXIST => continue,
            // Filesystems without RENAME_NOREPLACE: check, then rename (only we write here).
            Err(e) if e == rustix::io::Errno::INVAL => {
                match rustix::fs::statat(top, &new, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(_) => continue,
                    Err(e) if is_not_found(&e) => {
                        rustix::fs::renameat(from, name, top, &new)?;
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A chain `d/d/d/...` of `depth` directories with a file at each level, built
    /// with relative steps so no path grows past PATH_MAX.
    fn chain(top: &Path, depth: usize) {
        let mut dir = open_dir(
            rustix::fs::CWD,
            &CString::new(top.as_os_str().as_encoded_bytes()).unwrap(),
        )
        .unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o700)).unwrap();
            let f = rustix::fs::openat(
                &dir,
                "f",
                OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .unwrap();
            drop(f);
            dir = open_dir(&dir, c"d").unwrap();
        }
    }

    #[test]
    fn removes_deep_trees_files_symlinks_and_missing_paths() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("tree");
        fs::create_dir(&top).unwrap();
        // Deeper than PATH_MAX allows to name in one path.
        chain(&top, 2100);
        fs::create_dir_all(top.join("a/b/c")).unwrap();
        fs::write(top.join("a/b/c/x"), b"x").unwrap();
        // Names the flattening would pick, already taken.
        fs::create_dir_all(top.join(".rm-1/.rm-2/.rm-3")).unwrap();
        fs::create_dir_all(top.join("e/.rm-1/q")).unwrap();
        std::os::unix::fs::symlink(t.path(), top.join("a/escape")).unwrap();
        fs::write(t.path().join("keep"), b"keep").unwrap();
        remove_tree(&top).unwrap();
        assert!(!top.exists());
        assert_eq!(fs::read(t.path().join("keep")).unwrap(), b"keep");
        remove_tree(&top).unwrap();
        let file = t.path().join("keep");
        remove_tree(&file).unwrap();
        assert!(!file.exists());
    }
}
