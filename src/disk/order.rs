//! Which installed release is newer, on this machine.
//!
//! Semantic versions carry their own order (SemVer precedence); labels such as a git hash
//! or a timestamp carry none, and comparing them as strings would be wrong (`abc1234` vs
//! `9f3e2d1`) or right only by accident (timestamps). So a machine orders releases by
//! what it knows: semantic versions by precedence among themselves, labels by install
//! time among themselves, and the two sequences merged by install time (the earlier
//! installed head goes first). A root holding only semantic versions is ordered exactly
//! as before; one holding only labels, by install time; a seed-era root that switched
//! naming (hash directories, then `1.0.0` releases, or the other way round) keeps each
//! kind in its own order and puts the older kind first.
//!
//! Install time is the state file's record of the install, else (a release updraft did
//! not install, such as the seed's) the release directory's mtime. `list`, `status`,
//! `rollback`, `prune` and the agent's local comparisons use this order.

use std::io;
use std::time::SystemTime;

use crate::disk::layout::AppRoot;
use crate::disk::state::State;
use crate::registry::names::Version;

/// An installed release and when it was installed, as far as this machine knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    pub version: Version,
    pub installed_at: SystemTime,
}

/// The releases oldest first (newest last), by the rule in the module doc. Ties in
/// install time between labels fall back to `Version`'s fixed order, so the result never
/// depends on the directory listing order.
pub fn oldest_first(releases: Vec<Dated>) -> Vec<Version> {
    let (mut semantic, mut labels): (Vec<Dated>, Vec<Dated>) =
        releases.into_iter().partition(|d| d.version.is_semantic());
    semantic.sort_by(|a, b| a.version.cmp(&b.version));
    labels.sort_by(|a, b| {
        a.installed_at
            .cmp(&b.installed_at)
            .then_with(|| a.version.cmp(&b.version))
    });
    let mut out = Vec::with_capacity(semantic.len() + labels.len());
    let (mut s, mut l) = (
        semantic.into_iter().peekable(),
        labels.into_iter().peekable(),
    );
    loop {
        let take_label = match (s.peek(), l.peek()) {
            (Some(a), Some(b)) => b.installed_at < a.installed_at,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_label { l.next() } else { s.next() };
        out.extend(next.map(|d| d.version));
    }
    out
}

/// When `v` was installed here: the state's record, else its directory's mtime, else
/// (unreadable) the epoch, which sorts it as the oldest.
pub fn installed_at(root: &AppRoot, state: &State, v: &Version) -> SystemTime {
    if let Some(rec) = state.releases.get(v) {
        let at = rec.installed_at.system_time();
        // The record keeps whole seconds, so two releases installed within one second
        // would tie and fall back to name order, which says nothing for labels. The
        // directory's ctime, set in nanoseconds when it was renamed into place, orders
        // them when it lies within the record's second.
        if let Some(ctime) = changed_at(&root.release_dir(v)) {
            if ctime >= at && ctime < at + std::time::Duration::from_secs(1) {
                return ctime;
            }
        }
        return at;
    }
    std::fs::metadata(root.release_dir(v))
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The inode change time of `path` (ctime), to the nanosecond.
fn changed_at(path: &std::path::Path) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let secs = u64::try_from(m.ctime()).ok()?;
    let nanos = u32::try_from(m.ctime_nsec()).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// The installed releases of `root`, oldest first.
pub fn installed(root: &AppRoot, state: &State) -> io::Result<Vec<Version>> {
    let dated = root
        .installed()?
        .into_iter()
        .map(|version| Dated {
            installed_at: installed_at(root, state, &version),
            version,
        })
        .collect();
    Ok(oldest_first(dated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// (label, seconds after the epoch it was installed)
    fn dated(list: &[(&str, u64)]) -> Vec<Dated> {
        list.iter()
            .map(|(v, t)| Dated {
                version: v.parse().unwrap(),
                installed_at: SystemTime::UNIX_EPOCH + Duration::from_secs(*t),
            })
            .collect()
    }

    /// (what, installed releases with install times, oldest first)
    type Case = (&'static str, Vec<(&'static str, u64)>, Vec<&'static str>);

    #[test]
    fn order_table() {
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![]),
            (
                "semantic versions keep their precedence whatever the install time",
                vec![("1.10.0", 1), ("1.2.0", 3), ("1.3.0-rc.1", 2), ("1.3.0", 0)],
                vec!["1.2.0", "1.3.0-rc.1", "1.3.0", "1.10.0"],
            ),
            (
                "git hashes by install time, never by their letters",
                vec![("fff0000", 1), ("abc1234", 3), ("0123abc", 2)],
                vec!["fff0000", "0123abc", "abc1234"],
            ),
            (
                "timestamps by install time too (a re-deployed old build stays where it was installed)",
                vec![("20261130041500", 1), ("20251130041500", 2)],
                vec!["20261130041500", "20251130041500"],
            ),
            (
                "same install time: the fixed order decides, so listings are stable",
                vec![("bbb", 5), ("aaa", 5)],
                vec!["aaa", "bbb"],
            ),
            (
                "seed-era hash directories, then updraft's semantic releases",
                vec![("abc1234", 1), ("def5678", 2), ("1.0.0", 10), ("1.1.0", 11)],
                vec!["abc1234", "def5678", "1.0.0", "1.1.0"],
            ),
            (
                "seed-era v1.x directories, then hash releases",
                vec![("1.0.0", 1), ("1.1.0", 2), ("abc1234", 10), ("def5678", 11)],
                vec!["1.0.0", "1.1.0", "abc1234", "def5678"],
            ),
            (
                "interleaved: merged by install time, each kind keeping its own order",
                vec![("1.0.0", 1), ("aaa", 2), ("1.1.0", 3), ("bbb", 4)],
                vec!["1.0.0", "aaa", "1.1.0", "bbb"],
            ),
            (
                // 2.0.0 was installed before 1.0.0 (a downgrade by hand): precedence keeps
                // 1.0.0 first, and the label installed between them goes before both heads
                // that were installed later than it.
                "a hand downgrade among semantic versions",
                vec![("2.0.0", 1), ("x1", 2), ("1.0.0", 3)],
                vec!["x1", "1.0.0", "2.0.0"],
            ),
            (
                "same install time across kinds: the semantic version first",
                vec![("abc", 7), ("1.0.0", 7)],
                vec!["1.0.0", "abc"],
            ),
        ];
        for (what, input, want) in cases {
            let got: Vec<String> = oldest_first(dated(&input))
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{what}");
            // The result does not depend on the order the directory was read in.
            let mut reversed = dated(&input);
            reversed.reverse();
            let again: Vec<String> = oldest_first(reversed)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(again, want, "{what} (reversed input)");
        }
    }

    #[test]
    fn install_time_from_state_else_directory_mtime() {
        let d = tempfile::tempdir().unwrap();
        let root = AppRoot::new(d.path());
        for name in [
            "abc1234",
            "def5678",
            "v1.0.0",
            "not a release",
            ".staging-x",
        ] {
            std::fs::create_dir_all(root.releases().join(name)).unwrap();
        }
        let set_mtime = |name: &str, secs: u64| {
            let f = std::fs::File::open(root.releases().join(name)).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .unwrap();
        };
        // Seed-era directories: abc1234 built after def5678.
        set_mtime("def5678", 1_000);
        set_mtime("abc1234", 2_000);
        set_mtime("v1.0.0", 1_500);
        let mut state = State::default();
        let names = |state: &State| -> Vec<String> {
            installed(&root, state)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(names(&state), ["def5678", "1.0.0", "abc1234"]);
        // A release updraft installed is dated by its record, not its directory.
        state.record_release(&"def5678".parse().unwrap(), "aa", "x.tar.gz");
        assert_eq!(names(&state), ["1.0.0", "abc1234", "def5678"]);
    }
}
