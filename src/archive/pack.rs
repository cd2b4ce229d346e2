//! Reproducible release tarballs: the same directory contents and version give the
//! same bytes (with the same updraft build), whoever packs them and whenever.
//!
//! Entries are sorted by path, component by component (so a directory comes right
//! before its contents, as with `tar --sort=name`), owned by 0:0 with empty user and group
//! names, stamped with one fixed mtime, and get normalised modes (directories 0755,
//! files 0755 if any exec bit is set else 0644). A `VERSION` file holding the canonical
//! version is added at the top. The gzip header carries no mtime and no file name.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::archive::unpack::{check_symlink_target, EntryPath};
use crate::fsutil;
use crate::registry::names::Version;

/// The mtime used when `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_MTIME: u64 = 0;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// Hex sha256 of the tarball, for `publish` and `deploy --sha256`.
    pub sha256: String,
    pub size: u64,
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is a symlink to {target:?}: {why}; release symlinks must be relative and stay inside the release directory")]
    SymlinkEscapes {
        path: PathBuf,
        target: String,
        why: String,
    },
    #[error("{path} is {what}; a release may hold only files, directories and symlinks")]
    SpecialFile { path: PathBuf, what: &'static str },
    #[error("{path} says {found:?} but --version is {version}; remove the file (updraft pack writes VERSION itself) or fix the version")]
    VersionMismatch {
        path: PathBuf,
        found: String,
        version: String,
    },
    #[error(
        "the output {output} is inside the directory being packed ({dir}); write it elsewhere"
    )]
    OutputInsideDir { output: PathBuf, dir: PathBuf },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
}

/// One thing to put in the archive, found by the walk.
enum Item {
    Dir,
    File {
        exec: bool,
        len: u64,
    },
    Symlink(Vec<u8>),
    /// A file we write ourselves (VERSION), sorted in with the rest.
    Generated(Vec<u8>),
}

/// Pack `dir` into the gzip-compressed tarball `output`, written atomically.
pub fn pack_dir(
    dir: &Path,
    version: &Version,
    output: &Path,
    mtime: u64,
) -> Result<PackInfo, PackError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Read { path, source }
    };
    let meta = fs::metadata(dir).map_err(read_err(dir))?;
    if !meta.is_dir() {
        return Err(PackError::NotADirectory(dir.to_path_buf()));
    }
    refuse_output_inside(dir, output)?;

    let mut items = walk(dir)?;
    let version_path =
        EntryPath::new(b"VERSION").map_err(|_| PackError::NotADirectory(dir.into()))?;
    let version_file = Item::Generated(format!("{version}\n").into_bytes());
    if let Some(existing) = items.insert(version_path, version_file) {
        let p = dir.join("VERSION");
        let found = match existing {
            Item::File { .. } => fs::read_to_string(&p).map_err(read_err(&p))?,
            _ => String::from("(not a regular file)"),
        };
        // The seed writes `v1.2.3` or a bare git hash; either names this version when it
        // parses to it (`v` is dropped only from a semantic version, never from a label).
        if found.trim().parse::<Version>().as_ref() != Ok(version) {
            return Err(PackError::VersionMismatch {
                path: p,
                found,
                version: version.to_string(),
            });
        }
    }

    let tmp = fsutil::temp_sibling(output, "pack");
    let write_err = |source| PackError::Write {
        path: output.to_path_buf(),
        source,
    };
    let result = (|| {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(write_err)?;
        let hashing = HashingWriter {
            inner: BufWriter::with_capacity(256 * 1024, f),
            hasher: Sha256::new(),
            size: 0,
        };
        // No mtime and no file name in the gzip header: the bytes depend only on content.
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(hashing, flate2::Compression::default());
        let mut builder = tar::Builder::new(gz);
        let mut entries = 0u64;

        for (path, item) in &items {
            let src = dir.join(path.as_path());
            match item {
                Item::Dir => {
                    let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                    let mut name = path.as_path().as_os_str().as_bytes().to_vec();
                    name.push(b'/');
                    builder
                        .append_data(&mut h, Path::new(OsStr::from_bytes(&name)), io::empty())
                        .map_err(write_err)?;
                }
                Item::File { exec, len } => {
                    let f = File::open(&src).map_err(read_err(&src))?;
                    let data = ExactReader {
                        inner: f.take(*len),
                        left: *len,
                    };
                    let mode = if *exec { 0o755 } else { 0o644 };
                    let mut h = header(tar::EntryType::Regular, mode, *len, mtime);
                    builder
                        .append_data(&mut h, path.as_path(), data)
                        .map_err(|e| {
                            if e.kind() == io::ErrorKind::UnexpectedEof {
                                PackError::Read {
                                    path: src.clone(),
                                    source: e,
                                }
                            } else {
                                write_err(e)
                            }
                        })?;
                }
                Item::Generated(data) => {
                    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64, mtime);
                    builder
                        .append_data(&mut h, path.as_path(), data.as_slice())
                        .map_err(write_err)?;
                }
                Item::Symlink(target) => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
                    builder
                        .append_link(&mut h, path.as_path(), Path::new(OsStr::from_bytes(target)))
                        .map_err(write_err)?;
                }
            }
            entries += 1;
        }
        let gz = builder.into_inner().map_err(write_err)?;
        let hashing = gz.finish().map_err(write_err)?;
        let HashingWriter {
            inner,
            hasher,
            size,
        } = hashing;
        let f = inner.into_inner().map_err(|e| write_err(e.into_error()))?;
        f.sync_all().map_err(write_err)?;
        drop(f);
        fs::rename(&tmp, output).map_err(write_err)?;
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fsutil::fsync_dir(parent).map_err(write_err)?;
        Ok(PackInfo {
            sha256: hex::encode(hasher.finalize()),
            size,
            entries,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    // Empty names cannot fail; ignore the Result rather than unwrap.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// Refuse an output inside `dir`: the walk would pack the half-written tarball.
fn refuse_output_inside(dir: &Path, output: &Path) -> Result<(), PackError> {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (Ok(d), Ok(p)) = (dir.canonicalize(), parent.canonicalize()) else {
        // A missing output directory fails later with a clear write error.
        return Ok(());
    };
    if p.starts_with(&d) {
        return Err(PackError::OutputInsideDir {
            output: output.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Every entry under `dir`, keyed (and so sorted) by its relative path. Symlinks are
/// recorded, never followed.
fn walk(dir: &Path) -> Result<BTreeMap<EntryPath, Item>, PackError> {
    let mut items = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let rd = fs::read_dir(&abs).map_err(|source| PackError::Read {
            path: abs.clone(),
            source,
        })?;
        for ent in rd {
            let ent = ent.map_err(|source| PackError::Read {
                path: abs.clone(),
                source,
            })?;
            let rel_child = rel.join(ent.file_name());
            let abs_child = ent.path();
            let read_err = |source| PackError::Read {
                path: abs_child.clone(),
                source,
            };
            let m = fs::symlink_metadata(&abs_child).map_err(read_err)?;
            let ft = m.file_type();
            // Names from read_dir are single normal components, so this cannot fail.
            let Ok(entry) = EntryPath::new(rel_child.as_os_str().as_bytes()) else {
                continue;
            };
            let item = if ft.is_dir() {
                stack.push(rel_child);
                Item::Dir
            } else if ft.is_file() {
                Item::File {
                    exec: m.permissions().mode() & 0o111 != 0,
                    len: m.len(),
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(&abs_child).map_err(read_err)?;
                let target = target.as_os_str().as_bytes().to_vec();
                if let Err(why) = check_symlink_target(&entry, &target) {
                    return Err(PackError::SymlinkEscapes {
                        path: abs_child,
                        target: String::from_utf8_lossy(&target).into_owned(),
                        why: why
                            .to_string()
                            .trim_start_matches("symlink target ")
                            .to_string(),
                    });
                }
                Item::Symlink(target)
            } else {
                use std::os::unix::fs::FileTypeExt;
                let what = if ft.is_fifo() {
                    "a fifo"
                } else if ft.is_socket() {
                    "a socket"
                } else if ft.is_char_device() {
                    "a character device"
                } else if ft.is_block_device() {
                    "a block device"
                } else {
                    "not a regular file"
                };
                return Err(PackError::SpecialFile {
                    path: abs_child,
                    what,
                });
            };
            items.insert(entry, item);
        }
    }
    Ok(items)
}

/// Yields exactly the length written in the header, or fails if the file shrank while
/// being packed (the tar writer would otherwise emit a corrupt archive).
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sort_by_full_path_bytes() {
        let mut names: Vec<EntryPath> = ["a/b", "a-c", "a", "VERSION", "B"]
            .iter()
            .map(|s| EntryPath::new(s.as_bytes()).unwrap())
            .collect();
        names.sort();
        let got: Vec<String> = names.iter().map(|p| p.to_string()).collect();
        // Path ordering compares component by component: a directory sorts right before
        // its contents, so parents always precede children.
        assert_eq!(got, ["B", "VERSION", "a", "a/b", "a-c"]);
    }
}
