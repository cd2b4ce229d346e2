//! Crash-safe filesystem primitives: every visible change is a rename of something
//! already complete and fsynced, followed by an fsync of the directory that holds it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod remove;

/// Remove a directory tree that may be partly written, of any depth; a missing
/// directory is fine.
pub use remove::remove_tree;

/// The tags [`temp_sibling`] names are made with: what [`is_temp_name`] recognises.
const TEMP_TAGS: &[&str] = &["tmp", "link", "pack"];

/// A name no other process (or earlier crash) is using, in the same directory as `path`
/// so the final rename never crosses filesystems: `.<name>.<tag>-<pid>-<8 hex digits>`,
/// a shape [`is_temp_name`] recognises, so the litter of a killed run can be removed.
pub fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    debug_assert!(TEMP_TAGS.contains(&tag), "unknown temporary tag {tag}");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!(
        ".{name}.{tag}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    );
    path.with_file_name(unique)
}

/// Whether `name` is one [`temp_sibling`] makes: `.<name>.<tag>-<pid>-<8 hex digits>`.
pub fn is_temp_name(name: &str) -> bool {
    let mut parts = name.rsplitn(3, '-');
    let (Some(hex), Some(pid), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let hex_ok = hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    let Some((stem, tag)) = rest.rsplit_once('.') else {
        return false;
    };
    hex_ok && pid_ok && TEMP_TAGS.contains(&tag) && stem.len() > 1 && stem.starts_with('.')
}

/// Remove the temporary files and links a killed run left directly in `dir` (see
/// [`is_temp_name`]); only call it where no live writer can own one (under the root
/// lock). A missing directory has none. Returns what was removed.
pub fn remove_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name();
        if !is_temp_name(&name.to_string_lossy()) || entry.file_type()?.is_dir() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Write `bytes` to `path` so a reader (or a crash) sees the old file or the new one,
/// never a mix. `mode` sets the permission bits explicitly (not subject to umask surprises).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, bytes, mode, |_| Ok(()))
}

/// [`write_atomic`], with `before_rename` run on the complete, synced temporary file
/// just before it replaces `path` (to adjust its metadata while no reader can see it).
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_sibling(path, "tmp");
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        before_rename(&f)?;
        crate::failpoint::hit("fsutil.temp-written");
        fs::rename(&tmp, path)?;
        fsync_dir(parent_of(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Point `link` at `target` atomically: build the new symlink beside it, then rename it
/// over the old one (rename(2) replaces atomically; `ln -sfn` unlinks first).
pub fn replace_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let tmp = temp_sibling(link, "link");
    std::os::unix::fs::symlink(target, &tmp)?;
    crate::failpoint::hit("fsutil.link-made");
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fsync_dir(parent_of(link))
}

/// Flush everything written under `dir` to stable storage in one call.
///
/// `syncfs` flushes the whole filesystem holding `dir`, which costs one system call
/// instead of one fsync per unpacked file; directories are then fsynced by the rename.
pub fn sync_filesystem_of(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `f` keeps open for the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Total size in bytes of regular files under `dir` (symlinks are not followed).
pub fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// Run blocking filesystem work (fsync, syncfs, deleting a tree, unpacking) on tokio's
/// blocking pool. On a 1-vCPU machine the runtime has one worker: work done on it
/// stalls timers, health checks and the systemd watchdog until the disk answers.
///
/// A panic in `f` carries on here, as if `f` had run inline. The task cannot be
/// cancelled while it is awaited (only a runtime shutting down cancels blocking tasks,
/// and that drops the awaiting future too), so that case is an invariant, not an error.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a blocking filesystem task was cancelled while awaited: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_worker() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn blocking_work_leaves_the_only_worker_free() {
        one_worker().block_on(async {
            let (tx, rx) = std::sync::mpsc::channel();
            // Runs only if the single worker is free while `blocking` waits for it.
            let other = tokio::spawn(async move { tx.send(()).unwrap() });
            let got = blocking(move || rx.recv_timeout(std::time::Duration::from_secs(60))).await;
            assert!(got.is_ok(), "the worker was blocked");
            other.await.unwrap();
        });
    }

    #[test]
    fn a_panic_in_blocking_work_carries_on_in_the_caller() {
        let rt = one_worker();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(blocking(|| -> u8 { panic!("disk on fire") }))
        }));
        let panic = caught.unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"disk on fire"));
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // No temporaries left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_names_table() {
        let made = temp_sibling(Path::new("/x/state.json"), "tmp");
        let made = made.file_name().unwrap().to_string_lossy().into_owned();
        let cases: Vec<(&str, bool)> = vec![
            (&made, true),
            (".state.json.tmp-1234-0a1b2c3d", true),
            (".current.link-77-ffffffff", true),
            (".deploy.sh.tmp-1-00000000", true),
            (".x.tar.gz.pack-9-deadbeef", true),
            // Not ours: the user's dotfiles, releases, staging trees, other shapes.
            ("state.json", false),
            (".env", false),
            ("1.0.0", false),
            (".staging-1.0.0-12-0a1b2c3d", false),
            (".state.json.tmp-12-0a1b2c3", false),
            (".state.json.tmp-x2-0a1b2c3d", false),
            (".state.json.bak-12-0a1b2c3d", false),
            ("..tmp-12-0a1b2c3d", false),
            ("state.json.tmp-12-0a1b2c3d", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_temp_name(name), want, "{name}");
        }
    }

    #[test]
    fn temp_files_are_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        for n in [".state.json.tmp-1-0a1b2c3d", "state.json", ".env"] {
            fs::write(d.path().join(n), b"x").unwrap();
        }
        std::os::unix::fs::symlink("1.0.0", d.path().join(".current.link-2-ffffffff")).unwrap();
        let removed = remove_temp_files(d.path()).unwrap();
        assert_eq!(removed.len(), 2);
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".env", "state.json"]);
        assert!(remove_temp_files(&d.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn symlink_replacement_is_a_rename() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("current");
        replace_symlink(&link, Path::new("1.0.0")).unwrap();
        replace_symlink(&link, Path::new("2.0.0")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("2.0.0"));
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
