//! Safe extraction of untrusted release tarballs.
//!
//! A tarball is untrusted until its hash is compared, and the caller compares the hash
//! while we stream (one pass, no temporary copy), so the extractor itself must be safe
//! against any byte sequence: it never writes outside `dest`, never follows a symlink it
//! created, never creates devices or fifos, never chowns, strips setuid/setgid/sticky bits
//! and group/world write bits, and stops at the configured size, entry and path limits.
//! Its bookkeeping costs time and memory linear in the archive's path bytes.
//!
//! It assumes `dest` is a fresh staging directory nobody else writes to while we unpack
//! (the deploy pipeline creates it under a lock), so a directory we verified stays one.

mod path;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::error::{Classify, ErrorClass};
use tar::EntryType;

pub use path::{check_symlink_target, EntryPath, PathRefusal, TargetRefusal};

/// Bounds on what one tarball may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    /// Entries, counting the directories they imply (`a/b/c` with no `a/` entry).
    pub max_entries: u64,
    /// Components of one entry path (`bin/server` has 2).
    pub max_path_depth: u64,
    /// Bytes of one entry path or link target.
    pub max_path_bytes: u64,
}

impl Limits {
    /// Defaults of the `[limits]` config keys for paths: far beyond real releases
    /// (node_modules trees stay under 50 levels), and a path the kernel can still take
    /// whole (PATH_MAX is 4,096 bytes).
    pub const DEFAULT_MAX_PATH_DEPTH: u64 = 256;
    pub const DEFAULT_MAX_PATH_BYTES: u64 = 4096;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refused tarball entry {entry:?}: {why}; the release was not installed (rebuild it with `updraft pack`)")]
    Refused { entry: String, why: String },
    #[error("tarball exceeds {limit} ({value}) at entry {entry:?}; if this release really is that large, raise `{limit}` in the [limits] section of the config")]
    LimitExceeded {
        entry: String,
        limit: &'static str,
        value: u64,
    },
    #[error("tarball is corrupt or truncated: {0}; fetch it again, or republish it if the registry copy is bad")]
    Corrupt(String),
    /// The underlying reader failed (network, disk, or a size limit the caller enforces);
    /// the caller's own error is the source.
    #[error("cannot read the tarball while unpacking it")]
    Read(#[source] std::io::Error),
    #[error("cannot write {path} while unpacking")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How much we read from the compressed stream at a time: large reads keep the
/// decompressor and the caller's hasher in their fast paths.
const READ_BUFFER: usize = 256 * 1024;
/// Decompressed bytes allowed between the data of one entry and the next header the
/// extractor sees: headers, pax records and GNU long names. The `tar` crate reads long
/// names and pax records into memory, so without this bound one header could claim
/// gigabytes. Real headers need a few KiB.
const METADATA_ALLOWANCE: u64 = 1 << 20;
/// Permission bits an entry keeps: never setuid, setgid or sticky, and never group- or
/// world-writable, so no other user on the machine can change a verified release.
const KEPT_MODE_BITS: u32 = 0o755;
/// Directories an entry's path implies (no entry of their own) get what `updraft pack`
/// would give them.
const IMPLIED_DIR_MODE: u32 = 0o755;
/// Decompressed bytes allowed after the end-of-archive marker (GNU tar pads to 10 KiB).
const TRAILER_ALLOWANCE: u64 = 1 << 20;

/// Unpack a gzip-compressed tarball from `reader` into the existing, empty directory
/// `dest`. Never writes outside `dest`.
///
/// Reads `reader` to its end, including everything after the end-of-archive marker,
/// so a hash computed by the caller covers every byte and the gzip CRC is checked.
/// On error `dest` may hold a partial tree; the caller discards it.
pub fn unpack_tar_gz<R: Read>(
    reader: R,
    dest: &Path,
    limits: &Limits,
) -> Result<Stats, UnpackError> {
    unpack_counted(reader, dest, limits).map(|(stats, _)| stats)
}

/// [`unpack_tar_gz`], also returning how many bytes of path names the extractor's
/// bookkeeping looked at: its cost, which must stay linear in the archive's path bytes.
fn unpack_counted<R: Read>(
    reader: R,
    dest: &Path,
    limits: &Limits,
) -> Result<(Stats, u64), UnpackError> {
    let input_error = Rc::new(RefCell::new(None));
    let tap = InputTap {
        inner: reader,
        error: input_error.clone(),
    };
    let result = unpack_inner(tap, dest, limits);
    // Whatever the decoder or tar reader made of it, a failing input is the real cause.
    if let Some(e) = input_error.borrow_mut().take() {
        return Err(UnpackError::Read(e));
    }
    result
}

fn unpack_inner<R: Read>(
    reader: R,
    dest: &Path,
    limits: &Limits,
) -> Result<(Stats, u64), UnpackError> {
    let mut input = BufReader::with_capacity(READ_BUFFER, reader);
    check_gzip_magic(&mut input)?;
    let meter = Meter::new(flate2::bufread::MultiGzDecoder::new(input));
    let budget = meter.budget.clone();
    let mut archive = tar::Archive::new(meter);
    let mut x = Extractor::new(dest, *limits);
    {
        let entries = archive
            .entries()
            .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| budget.explain(e, &x.last_entry))?;
            x.extract(entry, &budget)?;
        }
    }
    x.finish_dirs()?;

    // Drain: the end-of-archive padding, the gzip trailer (CRC and length checked by the
    // decoder), then whatever the underlying reader still holds.
    let mut meter = archive.into_inner();
    budget.allow_more(TRAILER_ALLOWANCE);
    io::copy(&mut meter, &mut io::sink()).map_err(|e| {
        if budget.tripped.get() {
            UnpackError::Corrupt(format!(
                "more than {TRAILER_ALLOWANCE} bytes of data after the end-of-archive marker"
            ))
        } else {
            UnpackError::Corrupt(e.to_string())
        }
    })?;
    let mut rest = meter.inner.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Read)?;
    Ok((x.stats, x.path_work))
}

/// Keeps the underlying reader's own error, which the decoder would otherwise turn into
/// a vague "corrupt" message.
struct InputTap<R> {
    inner: R,
    error: Rc<RefCell<Option<io::Error>>>,
}

impl<R: Read> Read for InputTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let kind = e.kind();
                *self.error.borrow_mut() = Some(e);
                Err(io::Error::new(kind, "reading the tarball failed"))
            }
            other => other,
        }
    }
}

fn check_gzip_magic<R: BufRead>(input: &mut R) -> Result<(), UnpackError> {
    let head = input.fill_buf().map_err(UnpackError::Read)?;
    if head.is_empty() {
        return Err(UnpackError::Corrupt("not a gzip file: it is empty".into()));
    }
    // A short first read may hold only one byte; the decoder checks the rest.
    let n = head.len().min(2);
    if head[..n] != [0x1f, 0x8b][..n] {
        let shown: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(UnpackError::Corrupt(format!(
            "not a gzip file (starts with bytes {}, gzip starts with 1f 8b)",
            shown.join(" ")
        )));
    }
    Ok(())
}

/// Position in the decompressed stream and how far the tar reader may go.
struct Budget {
    pos: Cell<u64>,
    allowed_until: Cell<u64>,
    tripped: Cell<bool>,
}

impl Budget {
    fn allow_more(&self, n: u64) {
        self.allowed_until.set(
            self.pos
                .get()
                .saturating_add(n)
                .max(self.allowed_until.get()),
        );
    }

    /// Turn an error from the tar reader into ours, naming the entry it followed.
    fn explain(&self, e: io::Error, last: &str) -> UnpackError {
        if self.tripped.get() {
            UnpackError::Refused {
                entry: format!("(the header after {last})"),
                why: format!(
                    "more than {METADATA_ALLOWANCE} bytes of headers or long names, or data on an entry that holds none"
                ),
            }
        } else {
            UnpackError::Corrupt(format!("{e} (after {last})"))
        }
    }
}

/// Counts decompressed bytes and refuses to read past the budget.
struct Meter<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R> Meter<R> {
    fn new(inner: R) -> Self {
        Meter {
            inner,
            budget: Rc::new(Budget {
                pos: Cell::new(0),
                allowed_until: Cell::new(METADATA_ALLOWANCE),
                tripped: Cell::new(false),
            }),
        }
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let b = &self.budget;
        let left = b.allowed_until.get().saturating_sub(b.pos.get());
        if left == 0 && !buf.is_empty() {
            b.tripped.set(true);
            return Err(io::Error::other("decompressed stream exceeds its budget"));
        }
        let cap = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        b.pos.set(b.pos.get() + n as u64);
        Ok(n)
    }
}

struct DirMeta {
    path: EntryPath,
    mode: u32,
    mtime: Option<u64>,
}

struct Extractor<'d> {
    dest: &'d Path,
    limits: Limits,
    stats: Stats,
    /// Printable name of the last entry seen, for errors about what follows it.
    last_entry: String,
    /// The directories created so far, as a tree of names: a path is looked up one
    /// component at a time, so the cost is linear in its length however deep it is.
    dirs: DirTree,
    /// Directories created because an entry's path implied them; they count against
    /// `max_entries` like entries do.
    implied_dirs: u64,
    /// Regular files extracted so far: the only valid hardlink targets.
    files: HashSet<EntryPath>,
    /// Directory modes and mtimes, applied last so a read-only directory does not block
    /// its own children and creating children does not bump its mtime.
    dir_meta: Vec<DirMeta>,
    buf: Vec<u8>,
    /// Bytes of path names hashed or compared by the bookkeeping.
    path_work: u64,
}

/// A link's validated target.
enum Link {
    Symlink(Vec<u8>),
    Hard(EntryPath),
}

enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Skip,
}

impl<'d> Extractor<'d> {
    fn new(dest: &'d Path, limits: Limits) -> Self {
        Extractor {
            dest,
            limits,
            stats: Stats::default(),
            last_entry: "the start of the archive".into(),
            dirs: DirTree::default(),
            implied_dirs: 0,
            files: HashSet::new(),
            dir_meta: Vec::new(),
            buf: vec![0; READ_BUFFER],
            path_work: 0,
        }
    }

    fn extract<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        budget: &Budget,
    ) -> Result<(), UnpackError> {
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        self.last_entry = format!("entry {shown:?}");
        let refuse = |why: String| UnpackError::Refused {
            entry: shown.clone(),
            why,
        };

        self.stats.entries += 1;
        if self.stats.entries > self.limits.max_entries {
            return Err(UnpackError::LimitExceeded {
                entry: shown,
                limit: "max_entries",
                value: self.limits.max_entries,
            });
        }

        let header = entry.header();
        let etype = header.entry_type();
        let kind = match etype {
            EntryType::Regular | EntryType::Continuous if raw_name.ends_with(b"/") => Kind::Dir,
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Dir,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Link => Kind::Hardlink,
            // pax global headers (git archive writes one) carry no file.
            EntryType::XGlobalHeader => Kind::Skip,
            other => return Err(refuse(describe_type(other))),
        };
        let mode = header
            .mode()
            .map_err(|e| refuse(format!("bad mode field: {e}")))?;
        let mtime = header.mtime().ok();
        let size = entry.size();

        // Data the extractor will read counts against the budget; data on any other kind
        // of entry is skipped by the tar reader and only gets the metadata allowance.
        if matches!(kind, Kind::File) {
            let left = self.limits.max_bytes.saturating_sub(self.stats.bytes);
            if size > left {
                return Err(UnpackError::LimitExceeded {
                    entry: shown.clone(),
                    limit: "max_unpacked_bytes",
                    value: self.limits.max_bytes,
                });
            }
            budget.allow_more(
                size.div_ceil(512)
                    .saturating_mul(512)
                    .saturating_add(METADATA_ALLOWANCE),
            );
        } else {
            budget.allow_more(METADATA_ALLOWANCE);
        }

        if matches!(kind, Kind::Skip) {
            return Ok(());
        }

        let path = match EntryPath::new(&raw_name) {
            Ok(p) => p,
            // `./`: the release directory itself, which already exists.
            Err(PathRefusal::ArchiveRoot) if matches!(kind, Kind::Dir) => return Ok(()),
            Err(e) => return Err(refuse(e.to_string())),
        };
        self.check_path_limits(&shown, path.as_path().as_os_str().len(), path.depth())?;
        // Check link targets before creating anything for this entry.
        let link = match kind {
            Kind::Symlink => {
                let target =
                    link_target(&entry).ok_or_else(|| refuse("symlink without a target".into()))?;
                self.check_path_limits(&shown, target.len(), 0)?;
                check_symlink_target(&path, &target).map_err(|e| {
                    refuse(format!("{e}: -> {:?}", String::from_utf8_lossy(&target)))
                })?;
                Some(Link::Symlink(target))
            }
            Kind::Hardlink => {
                let target = link_target(&entry)
                    .ok_or_else(|| refuse("hardlink without a target".into()))?;
                let shown_target = String::from_utf8_lossy(&target).into_owned();
                let target = EntryPath::new(&target)
                    .map_err(|e| refuse(format!("hardlink target {shown_target:?}: {e}")))?;
                let is_file = fs::symlink_metadata(self.dest.join(target.as_path()))
                    .map(|m| m.file_type().is_file())
                    .unwrap_or(false);
                self.path_work += target.as_path().as_os_str().len() as u64;
                if !self.files.contains(&target) || !is_file {
                    return Err(refuse(format!(
                        "hardlink target {shown_target:?} is not a regular file extracted earlier from this archive"
                    )));
                }
                Some(Link::Hard(target))
            }
            _ => None,
        };
        let parent = self.ensure_parents(&path, &shown)?;
        let full = self.dest.join(path.as_path());
        let existing = match fs::symlink_metadata(&full) {
            Ok(m) => Some(m.file_type()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&shown, e)),
        };
        if let Some(ft) = existing {
            if matches!(kind, Kind::Dir) && ft.is_dir() {
                self.record_dir(path, mode, mtime);
                return Ok(());
            }
            let what = if ft.is_dir() {
                "a directory"
            } else if ft.is_symlink() {
                "a symlink"
            } else {
                "a file"
            };
            return Err(refuse(format!(
                "would replace {what} extracted earlier from this archive (duplicate or conflicting entries are refused)"
            )));
        }

        match kind {
            Kind::Dir => {
                DirBuilder::new()
                    .mode(0o700)
                    .create(&full)
                    .map_err(|e| io_err(&shown, e))?;
                if let Some(name) = path.as_path().file_name() {
                    self.path_work += name.len() as u64;
                    self.dirs.add(parent, name);
                }
                self.record_dir(path, mode, mtime);
            }
            Kind::File => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&full)
                    .map_err(|e| io_err(&shown, e))?;
                let written = self.copy_data(&mut entry, &mut f, &shown, budget)?;
                if written != size {
                    return Err(UnpackError::Corrupt(format!(
                        "entry {shown:?} ends after {written} of its {size} bytes"
                    )));
                }
                f.set_permissions(fs::Permissions::from_mode(mode & KEPT_MODE_BITS))
                    .map_err(|e| io_err(&shown, e))?;
                if let Some(t) = mtime.and_then(to_system_time) {
                    f.set_times(FileTimes::new().set_modified(t))
                        .map_err(|e| io_err(&shown, e))?;
                }
                self.path_work += path.as_path().as_os_str().len() as u64;
                self.files.insert(path);
            }
            Kind::Symlink => {
                if let Some(Link::Symlink(target)) = &link {
                    std::os::unix::fs::symlink(OsStr::from_bytes(target), &full)
                        .map_err(|e| io_err(&shown, e))?;
                }
            }
            Kind::Hardlink => {
                if let Some(Link::Hard(target)) = &link {
                    let target_full = self.dest.join(target.as_path());
                    fs::hard_link(&target_full, &full).map_err(|e| io_err(&shown, e))?;
                }
            }
            Kind::Skip => {}
        }
        Ok(())
    }

    /// Refuse a path (or link target) deeper or longer than the limits allow.
    fn check_path_limits(
        &self,
        shown: &str,
        bytes: usize,
        depth: usize,
    ) -> Result<(), UnpackError> {
        let over = |limit: &'static str, value: u64| UnpackError::LimitExceeded {
            entry: shown.chars().take(200).collect::<String>()
                + if shown.len() > 200 { "…" } else { "" },
            limit,
            value,
        };
        if bytes as u64 > self.limits.max_path_bytes {
            return Err(over("max_path_bytes", self.limits.max_path_bytes));
        }
        if depth as u64 > self.limits.max_path_depth {
            return Err(over("max_path_depth", self.limits.max_path_depth));
        }
        Ok(())
    }

    /// Make sure every parent of `path` is a real directory inside `dest`, creating
    /// missing ones; a symlink or file in the way is refused, never followed. Returns
    /// the parent's node in the directory tree.
    ///
    /// Known directories are found in the tree by name, one component at a time; the
    /// missing ones are created below the deepest known one with `mkdirat`/`openat` on
    /// its descriptor, so neither the bookkeeping nor the kernel walks the whole path
    /// again for each new level.
    fn ensure_parents(&mut self, path: &EntryPath, shown: &str) -> Result<usize, UnpackError> {
        let parents: Vec<&OsStr> = match path.as_path().parent() {
            Some(p) => p.iter().collect(),
            None => Vec::new(),
        };
        let mut node = DirTree::ROOT;
        let mut known = 0;
        for name in &parents {
            self.path_work += name.len() as u64;
            match self.dirs.child(node, name) {
                Some(n) => {
                    node = n;
                    known += 1;
                }
                None => break,
            }
        }
        if known == parents.len() {
            return Ok(node);
        }
        let known_path: PathBuf = parents[..known].iter().collect();
        let mut dir: std::os::fd::OwnedFd = open_dir(&self.dest.join(&known_path))
            .map_err(|e| io_err(shown, e))?
            .into();
        for (i, name) in parents.iter().enumerate().skip(known) {
            self.implied_dirs += 1;
            if self.stats.entries + self.implied_dirs > self.limits.max_entries {
                return Err(UnpackError::LimitExceeded {
                    entry: shown.to_string(),
                    limit: "max_entries",
                    value: self.limits.max_entries,
                });
            }
            let in_the_way = |what: &str| UnpackError::Refused {
                entry: shown.to_string(),
                why: format!(
                    "its parent {:?} is {what}",
                    parents[..=i]
                        .iter()
                        .collect::<PathBuf>()
                        .display()
                        .to_string()
                ),
            };
            match rustix::fs::mkdirat(
                &dir,
                *name,
                rustix::fs::Mode::from_raw_mode(IMPLIED_DIR_MODE),
            ) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::EXIST => {
                    // Not a directory we made (those are all in the tree).
                    let st = rustix::fs::statat(&dir, *name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| io_err(shown, e.into()))?;
                    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                    return Err(in_the_way(if ft == rustix::fs::FileType::Symlink {
                        "a symlink (writing through symlinks is refused)"
                    } else {
                        "not a directory"
                    }));
                }
                Err(e) => return Err(io_err(shown, e.into())),
            }
            let child = rustix::fs::openat(
                &dir,
                *name,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| io_err(shown, e.into()))?;
            // The mode `updraft pack` would have given it, whatever the umask.
            rustix::fs::fchmod(&child, rustix::fs::Mode::from_raw_mode(IMPLIED_DIR_MODE))
                .map_err(|e| io_err(shown, e.into()))?;
            self.path_work += name.len() as u64;
            node = self.dirs.add(node, name);
            dir = child;
        }
        Ok(node)
    }

    fn record_dir(&mut self, path: EntryPath, mode: u32, mtime: Option<u64>) {
        self.dir_meta.push(DirMeta { path, mode, mtime });
    }

    /// Copy an entry's data, counting the bytes actually written against the limit.
    fn copy_data<R: Read>(
        &mut self,
        src: &mut R,
        dst: &mut File,
        shown: &str,
        budget: &Budget,
    ) -> Result<u64, UnpackError> {
        let mut written = 0u64;
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if budget.tripped.get() => {
                    return Err(UnpackError::Corrupt(format!(
                        "entry {shown:?} holds more data than its header says: {e}"
                    )))
                }
                Err(e) => {
                    return Err(UnpackError::Corrupt(format!(
                        "while reading entry {shown:?}: {e}"
                    )))
                }
            };
            written += n as u64;
            self.stats.bytes += n as u64;
            if self.stats.bytes > self.limits.max_bytes {
                return Err(UnpackError::LimitExceeded {
                    entry: shown.to_string(),
                    limit: "max_unpacked_bytes",
                    value: self.limits.max_bytes,
                });
            }
            dst.write_all(&self.buf[..n])
                .map_err(|e| io_err(shown, e))?;
        }
    }

    /// Apply directory modes (owner rwx always kept, so the release can be pruned) and
    /// mtimes, deepest first.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut metas = std::mem::take(&mut self.dir_meta);
        // Later records for the same directory win; stable sort keeps their order.
        metas.sort_by_key(|m| std::cmp::Reverse(m.path.depth()));
        for m in metas {
            let shown = m.path.to_string();
            let d = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(self.dest.join(m.path.as_path()))
                .map_err(|e| io_err(&shown, e))?;
            if let Some(t) = m.mtime.and_then(to_system_time) {
                d.set_times(FileTimes::new().set_modified(t))
                    .map_err(|e| io_err(&shown, e))?;
            }
            d.set_permissions(fs::Permissions::from_mode(
                (m.mode & KEPT_MODE_BITS) | 0o700,
            ))
            .map_err(|e| io_err(&shown, e))?;
        }
        Ok(())
    }
}

/// Directories by name under their parent: node 0 is `dest`. Each directory's name is
/// stored once, so memory is linear in the names, not in their full paths.
#[derive(Default)]
struct DirTree {
    children: Vec<HashMap<std::ffi::OsString, usize>>,
}

impl DirTree {
    const ROOT: usize = 0;

    fn child(&self, node: usize, name: &OsStr) -> Option<usize> {
        self.children.get(node)?.get(name).copied()
    }

    fn add(&mut self, parent: usize, name: &OsStr) -> usize {
        if self.children.is_empty() {
            self.children.push(HashMap::new());
        }
        let id = self.children.len();
        self.children.push(HashMap::new());
        if let Some(c) = self.children.get_mut(parent) {
            c.insert(name.to_os_string(), id);
        }
        id
    }
}

fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> Option<Vec<u8>> {
    entry
        .link_name_bytes()
        .map(|c| c.into_owned())
        .filter(|t| !t.is_empty())
}

fn describe_type(t: EntryType) -> String {
    let what = match t {
        EntryType::Char => "a character device",
        EntryType::Block => "a block device",
        EntryType::Fifo => "a fifo",
        EntryType::GNUSparse => "a sparse file (pack without --sparse)",
        _ => "an entry type other than file, directory, symlink or hardlink",
    };
    format!(
        "{what} (type {:?}); release tarballs may hold only files, directories and links",
        t.as_byte() as char
    )
}

fn to_system_time(secs: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn io_err(entry: &str, source: io::Error) -> UnpackError {
    UnpackError::Io {
        path: entry.to_string(),
        source,
    }
}

impl Classify for UnpackError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Verify
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 1 << 30,
        max_entries: 100_000,
        max_path_depth: 10_000,
        max_path_bytes: 100_000,
    };

    fn tar_gz(paths: &[String]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for p in paths {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if p.ends_with('/') {
                EntryType::Directory
            } else {
                EntryType::Regular
            });
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, p, &[][..]).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    /// The bookkeeping looks at each path byte a bounded number of times, however deep
    /// the tree: before issue 11 every entry re-hashed the full path of each of its
    /// ancestors, quadratic in the depth (10 ms an entry at depth 1,800).
    #[test]
    fn path_bookkeeping_is_linear_in_path_bytes() {
        for (what, paths) in [
            (
                "a chain of explicit directories",
                (1..=400)
                    .map(|d| format!("{}/", vec!["d"; d].join("/")))
                    .collect::<Vec<_>>(),
            ),
            (
                "files at every level of an implied chain",
                (1..=400)
                    .map(|d| format!("{}/f", vec!["d"; d].join("/")))
                    .collect(),
            ),
            (
                "one deep file",
                vec![format!("{}/f", vec!["dd"; 1300].join("/"))],
            ),
        ] {
            let total: u64 = paths.iter().map(|p| p.len() as u64).sum();
            let d = tempfile::tempdir().unwrap();
            let (stats, work) = unpack_counted(&tar_gz(&paths)[..], d.path(), &LIMITS).unwrap();
            assert_eq!(stats.entries, paths.len() as u64, "{what}");
            assert!(
                work <= 2 * total,
                "{what}: looked at {work} bytes of names for {total} bytes of paths"
            );
        }
    }
}
