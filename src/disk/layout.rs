//! The on-disk layout of an app root, the seed's plus a `.updraft/` directory of ours.
//!
//! ```text
//! <root>/releases/<version>/      immutable, complete releases (the seed's
//!                                 `v<version>`, git-hash and timestamp names too)
//! <root>/releases/current -> <version>   (relative link, so the root can move)
//! <root>/releases/.staging-*      in-progress unpacks, removed on the next run
//! <root>/releases/.trash-*        leftovers that could not be removed (retried)
//! <root>/config/ data/ uploads/ commands/ logs/releases.log
//! <root>/.updraft/state.json      our state (atomic writes)
//! <root>/.updraft/history.jsonl   append-only history of decisions and outcomes
//! <root>/.updraft/lock            serialises operations
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::registry::names::Version;

/// Why a directory cannot be an app root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootRefusal {
    #[error("the app root is empty: it would be the working directory, whatever that is")]
    Empty,
    #[error("the app root {0} is a system directory: a deploy would create releases/, config/, data/, logs/ and .updraft/ in it (use a directory of its own, such as /opt/<app>)")]
    System(String),
}

impl crate::error::Classify for RootRefusal {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Usage
    }
}

/// Directories that are never an app root: `/` and the system's own (the FHS ones and
/// the usual merged-/usr and /var ones). An app root lives inside one of them.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

/// `path` with `.`, repeated slashes and `..` resolved by name (no filesystem access).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Refuse an empty root, `/` and system directories, by name and, when `resolved` (the
/// root with its symlinks resolved, if it exists) is given, by what it really is.
pub fn check_root(path: &Path, resolved: Option<&Path>) -> Result<(), RootRefusal> {
    if path.as_os_str().is_empty() {
        return Err(RootRefusal::Empty);
    }
    for p in [Some(lexically_normal(path)), resolved.map(lexically_normal)]
        .into_iter()
        .flatten()
    {
        if SYSTEM_DIRS.iter().any(|s| p == Path::new(s)) {
            return Err(RootRefusal::System(if p == path {
                p.display().to_string()
            } else {
                format!("{} (that is {})", path.display(), p.display())
            }));
        }
    }
    Ok(())
}

pub const STAGING_PREFIX: &str = ".staging-";
/// Leftovers that could not be deleted, renamed out of the way; retried on every run.
pub const TRASH_PREFIX: &str = ".trash-";

#[derive(Debug, Clone)]
pub struct AppRoot {
    root: PathBuf,
}

impl AppRoot {
    pub fn new(root: impl Into<PathBuf>) -> AppRoot {
        AppRoot { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }
    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }
    pub fn current_link(&self) -> PathBuf {
        self.releases().join("current")
    }
    /// Where release `v` lives: `releases/<v>`, or `releases/v<v>` when only that exists
    /// for a semantic version
    /// (a root first managed by the seed's scripts, which name releases `v1.2.3`). New
    /// releases always get the plain name; seed-era ones are used where they are, never
    /// renamed, because a running service may hold paths inside them.
    pub fn release_dir(&self, v: &Version) -> PathBuf {
        let plain = self.releases().join(v.to_string());
        if v.is_semantic() && !plain.is_dir() {
            let seed = self.releases().join(format!("v{v}"));
            if seed.is_dir() {
                return seed;
            }
        }
        plain
    }

    /// What `current` should hold to point at `v`: the release directory's own name,
    /// relative, so the root can move.
    pub fn link_target(&self, v: &Version) -> PathBuf {
        match self.release_dir(v).file_name() {
            Some(name) => PathBuf::from(name),
            None => PathBuf::from(v.to_string()),
        }
    }
    pub fn commands(&self) -> PathBuf {
        self.root.join("commands")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn release_log(&self) -> PathBuf {
        self.logs().join("releases.log")
    }
    pub fn meta(&self) -> PathBuf {
        self.root.join(".updraft")
    }
    /// Where `data/` was saved before release `v` raised the data epoch.
    pub fn snapshot_dir(&self, v: &Version) -> PathBuf {
        self.meta().join("snapshots").join(v.to_string())
    }
    pub fn state_file(&self) -> PathBuf {
        self.meta().join("state.json")
    }
    pub fn history_file(&self) -> PathBuf {
        self.meta().join("history.jsonl")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.meta().join("lock")
    }

    /// Create the seed's directories. Existing ones (and their contents: config, data)
    /// are left exactly as they are.
    pub fn ensure(&self) -> io::Result<()> {
        for d in [
            self.releases(),
            self.root.join("config"),
            self.root.join("data"),
            self.root.join("uploads"),
            self.commands(),
            self.logs(),
            self.meta(),
        ] {
            fs::create_dir_all(&d)?;
        }
        Ok(())
    }

    /// The version `current` points at, if it points at a release directory that exists.
    pub fn current(&self) -> io::Result<Option<Version>> {
        match fs::read_link(self.current_link()) {
            Ok(target) => {
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(name
                    .parse::<Version>()
                    .ok()
                    .filter(|v| self.release_dir(v).is_dir()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The entries of `releases/`, or None before the first install created it.
    fn read_releases(&self) -> io::Result<Option<fs::ReadDir>> {
        match fs::read_dir(self.releases()) {
            Ok(rd) => Ok(Some(rd)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Installed releases: directories under `releases/` whose name is a version (a
    /// semantic version or a label, see `Version`), in `Version`'s fixed order, which says
    /// nothing about age: `disk::order` has the machine's newest-last order. Staging
    /// directories and anything else are ignored.
    pub fn installed(&self) -> io::Result<Vec<Version>> {
        let mut out = Vec::new();
        let Some(rd) = self.read_releases()? else {
            return Ok(out);
        };
        for entry in rd {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(v) = name.parse::<Version>() {
                // `1.2.3`, the seed's `v1.2.3`, or a label (`abc1234`, `20261130041500`);
                // not other spellings of the same version.
                if v.is_spelled(&name) {
                    out.push(v);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Staging directories left by an interrupted run, and leftovers set aside earlier.
    pub fn leftover_staging(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let Some(rd) = self.read_releases()? else {
            return Ok(out);
        };
        for entry in rd {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(STAGING_PREFIX)
                || name.starts_with(TRASH_PREFIX)
                || name.starts_with(".current.")
            {
                out.push(entry.path());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_that_are_refused() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("/opt/app", None, true),
            ("/srv/app/", None, true),
            ("relative/app", Some("/home/me/relative/app"), true),
            ("", None, false),
            ("/", None, false),
            ("//", None, false),
            ("/usr/", None, false),
            ("/usr/./local", None, false),
            ("/tmp/../etc", None, false),
            ("/opt/app/..", None, false),
            ("/var", None, false),
            ("/home", None, false),
            ("/bin", Some("/usr/bin"), false),
            (".", Some("/"), false),
            ("/opt/link", Some("/etc"), false),
        ];
        for (path, resolved, ok) in cases {
            let got = check_root(Path::new(path), resolved.map(Path::new));
            assert_eq!(got.is_ok(), *ok, "{path:?} ({resolved:?}): {got:?}");
        }
    }
}
