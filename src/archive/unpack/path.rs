//! Pure checks on archive entry names and symlink targets; no I/O.
//!
//! Every name an archive hands us goes through [`EntryPath::new`] before the extractor
//! sees it, so the extractor cannot be handed `../x` or `/etc/x` at all.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why an entry name (or a hardlink target, which is also an archive name) is unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    #[error("empty name")]
    Empty,
    #[error("name contains a NUL byte")]
    Nul,
    #[error("absolute path (release tarballs hold paths relative to the release directory)")]
    Absolute,
    #[error("'..' component (would leave the release directory)")]
    DotDot,
    /// `.` or `./`: the release directory itself, which the extractor skips.
    #[error("names the release directory itself")]
    ArchiveRoot,
}

/// Why a symlink target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error("empty symlink target")]
    Empty,
    #[error("symlink target contains a NUL byte")]
    Nul,
    #[error("absolute symlink target (only relative targets inside the release are allowed)")]
    Absolute,
    #[error("symlink target leaves the release directory")]
    Escapes,
    /// `a/../b`: `..` after a name resolves against wherever `a` really points, which may
    /// be another symlink, so a lexical check cannot vouch for it.
    #[error("symlink target has '..' after a name (write it without, e.g. 'a/../b' as 'b')")]
    DotDotAfterName,
}

/// A relative archive path made only of normal components (`bin/server`, never `../x`,
/// `/x` or `.`). Leading `./` and repeated or trailing slashes are normalised away.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(PathBuf);

impl EntryPath {
    /// Validate raw name bytes as stored in the archive.
    pub fn new(raw: &[u8]) -> Result<EntryPath, PathRefusal> {
        if raw.is_empty() {
            return Err(PathRefusal::Empty);
        }
        if raw.contains(&0) {
            return Err(PathRefusal::Nul);
        }
        let mut out = PathBuf::new();
        for c in Path::new(OsStr::from_bytes(raw)).components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                Component::ParentDir => return Err(PathRefusal::DotDot),
                Component::RootDir | Component::Prefix(_) => return Err(PathRefusal::Absolute),
            }
        }
        if out.as_os_str().is_empty() {
            return Err(PathRefusal::ArchiveRoot);
        }
        Ok(EntryPath(out))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// Number of components (`bin/server` has 2).
    pub fn depth(&self) -> usize {
        self.0.components().count()
    }

    /// The proper ancestors of this path, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = self
            .0
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        v.reverse();
        v
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.display(), f)
    }
}

/// Check that a symlink at `link` pointing to `target` resolves inside the release.
///
/// The target may climb with leading `..` (through the link's own parent directories,
/// which the extractor has verified are real directories) and then only descend. Every
/// symlink it descends through was checked by this same rule, so resolution stays inside.
pub fn check_symlink_target(link: &EntryPath, target: &[u8]) -> Result<(), TargetRefusal> {
    if target.is_empty() {
        return Err(TargetRefusal::Empty);
    }
    if target.contains(&0) {
        return Err(TargetRefusal::Nul);
    }
    let mut up_budget = link.depth().saturating_sub(1);
    let mut seen_name = false;
    for c in Path::new(OsStr::from_bytes(target)).components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err(TargetRefusal::Absolute),
            Component::CurDir => {}
            Component::ParentDir if seen_name => return Err(TargetRefusal::DotDotAfterName),
            Component::ParentDir => {
                up_budget = up_budget.checked_sub(1).ok_or(TargetRefusal::Escapes)?;
            }
            Component::Normal(_) => seen_name = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        use PathRefusal::*;
        let cases: &[(&str, Result<&str, PathRefusal>)] = &[
            ("bin/server", Ok("bin/server")),
            ("./bin/server", Ok("bin/server")),
            ("bin//server/", Ok("bin/server")),
            ("bin/./server", Ok("bin/server")),
            ("VERSION", Ok("VERSION")),
            ("..foo", Ok("..foo")),
            ("foo..", Ok("foo..")),
            ("...", Ok("...")),
            (".hidden", Ok(".hidden")),
            ("", Err(Empty)),
            (".", Err(ArchiveRoot)),
            ("./", Err(ArchiveRoot)),
            ("./.", Err(ArchiveRoot)),
            ("/etc/passwd", Err(Absolute)),
            ("//etc", Err(Absolute)),
            ("..", Err(DotDot)),
            ("../x", Err(DotDot)),
            ("a/../../x", Err(DotDot)),
            ("a/..", Err(DotDot)),
            ("./../x", Err(DotDot)),
            ("a\0b", Err(Nul)),
        ];
        for (raw, want) in cases {
            let got = EntryPath::new(raw.as_bytes());
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g.as_path(), Path::new(w), "{raw:?}"),
                (Err(w), Err(g)) => assert_eq!(w, g, "{raw:?}"),
                _ => panic!("{raw:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn ancestors_outermost_first() {
        let p = EntryPath::new(b"a/b/c").unwrap();
        assert_eq!(p.ancestors(), vec![Path::new("a"), Path::new("a/b")]);
        assert!(EntryPath::new(b"top").unwrap().ancestors().is_empty());
        assert_eq!(p.depth(), 3);
    }

    #[test]
    fn symlink_targets() {
        use TargetRefusal::*;
        let cases: &[(&str, &str, Result<(), TargetRefusal>)] = &[
            ("current", "bin", Ok(())),
            ("lib/libx.so", "libx.so.1", Ok(())),
            ("bin/tool", "../lib/tool", Ok(())),
            ("a/b/c", "../../x", Ok(())),
            ("a/b/c", "../..", Ok(())),
            ("a/b/c", "./x", Ok(())),
            ("link", ".", Ok(())),
            ("link", "..", Err(Escapes)),
            ("bin/tool", "../../etc/passwd", Err(Escapes)),
            ("a/b/c", "../../../x", Err(Escapes)),
            ("link", "/etc/passwd", Err(Absolute)),
            ("link", "/", Err(Absolute)),
            ("link", "", Err(Empty)),
            ("link", "a\0b", Err(Nul)),
            // `x/..` climbs from wherever x really points; refused even when it looks harmless.
            ("a/b/link", "x/../y", Err(DotDotAfterName)),
            ("a/b/c/link", "../../../up/..", Err(DotDotAfterName)),
        ];
        for (link, target, want) in cases {
            let l = EntryPath::new(link.as_bytes()).unwrap();
            assert_eq!(
                &check_symlink_target(&l, target.as_bytes()),
                want,
                "{link} -> {target}"
            );
        }
    }
}
