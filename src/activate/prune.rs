//! Pruning: remove old releases beyond `keep`, never the ones the machine may need
//! (current, previous, pinned), and blocked ones first: a release that failed here (or
//! that an operator rolled back from) will not run again without `unblock`, so it must
//! not cost a healthy release its slot.

use tracing::info;

use super::error::{io_err, DeployError};
use super::journal::LogLine;
use super::Pipeline;
use crate::disk::releases;
use crate::disk::state::State;
use crate::fsutil;
use crate::registry::names::Version;

/// Which releases to delete so that at most `keep` remain, never touching `protected`
/// (current, previous, pinned). `installed` is oldest first (`disk::order`: semantic
/// versions by precedence, labels by install time). Healthy releases are kept before
/// `blocked` ones, newest first within each; protected releases count towards `keep`.
/// The result is oldest first.
pub fn plan_prune(
    installed: &[Version],
    keep: usize,
    protected: &[&Version],
    blocked: &[&Version],
) -> Vec<Version> {
    let mut newest_first: Vec<&Version> = installed.iter().rev().collect();
    // Healthy before blocked (a stable sort keeps newest first within each): the last
    // ones in this order go first.
    newest_first.sort_by_key(|v| blocked.contains(v));
    let mut kept = installed.iter().filter(|v| protected.contains(v)).count();
    let mut remove = Vec::new();
    for v in newest_first {
        if protected.contains(&v) {
            continue;
        }
        if kept < keep {
            kept += 1;
        } else {
            remove.push(v);
        }
    }
    installed
        .iter()
        .filter(|v| remove.contains(v))
        .cloned()
        .collect()
}

impl Pipeline<'_> {
    /// Remove releases beyond `keep`, never current, previous or pinned; blocked first.
    pub async fn prune(
        &self,
        state: &State,
        keep: usize,
        dry_run: bool,
    ) -> Result<Vec<Version>, DeployError> {
        let installed = self.installed_oldest_first(state)?;
        let current = self.current()?;
        let protected: Vec<&Version> = [
            current.as_ref(),
            state.previous.as_ref(),
            state.pinned.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let blocked: Vec<&Version> = state.blocked.keys().collect();
        let doomed = plan_prune(&installed, keep, &protected, &blocked);
        if !dry_run {
            for v in &doomed {
                let (root, version) = (self.root.clone(), v.clone());
                fsutil::blocking(move || releases::remove_release(&root, &version))
                    .await
                    .map_err(io_err(
                        "cannot remove old release",
                        &self.root.release_dir(v),
                    ))?;
                info!(version = %v, "pruned old release");
                self.log(LogLine::Pruned { version: v });
            }
        }
        Ok(doomed)
    }
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
                plan_prune(&all, keep, &p, &[]),
                vs(&want),
                "keep={keep} protected={protected:?}"
            );
        }
    }

    #[test]
    fn blocked_releases_go_before_healthy_ones() {
        let all = vs(&["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"]);
        let v = |s: &str| s.parse::<Version>().unwrap();
        // (keep, protected, blocked, removed)
        type Case = (usize, Vec<Version>, Vec<Version>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            // The newest two are blocked: three healthy ones fill keep = 3.
            (
                3,
                vec![v("1.1.0")],
                vec![v("1.3.0"), v("2.0.0")],
                vec!["1.3.0", "2.0.0"],
            ),
            // Room left after every healthy release: the newest blocked one stays.
            (5, vec![], vec![v("1.3.0"), v("2.0.0")], vec![]),
            (4, vec![], vec![v("1.3.0"), v("2.0.0")], vec!["1.3.0"]),
            // A protected blocked release (current after a failed switch back, pinned)
            // is never removed, and still counts towards keep.
            (
                2,
                vec![v("2.0.0")],
                vec![v("2.0.0"), v("1.0.0")],
                vec!["1.0.0", "1.1.0", "1.2.0"],
            ),
            (5, vec![], vec![], vec![]),
        ];
        for (keep, protected, blocked, want) in cases {
            let p: Vec<&Version> = protected.iter().collect();
            let b: Vec<&Version> = blocked.iter().collect();
            assert_eq!(
                plan_prune(&all, keep, &p, &b),
                vs(&want),
                "keep={keep} protected={protected:?} blocked={blocked:?}"
            );
        }
    }

    /// Labels arrive oldest first by install time (`disk::order`): the newest kept are
    /// the last installed, whatever their letters.
    #[test]
    fn prune_labels_by_install_order() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        // Seed-era hash directories first, then updraft's releases.
        let installed = vs(&["fff0000", "abc1234", "20261129000000", "1.0.0", "1.1.0"]);
        let cases: Vec<(usize, Vec<Version>, Vec<&str>)> = vec![
            (5, vec![], vec![]),
            (
                2,
                vec![v("1.1.0")],
                vec!["fff0000", "abc1234", "20261129000000"],
            ),
            (3, vec![v("1.1.0")], vec!["fff0000", "abc1234"]),
            // A rollback to an old hash keeps it, and it counts towards keep.
            (
                2,
                vec![v("abc1234"), v("1.1.0")],
                vec!["fff0000", "20261129000000", "1.0.0"],
            ),
        ];
        for (keep, protected, want) in cases {
            let p: Vec<&Version> = protected.iter().collect();
            assert_eq!(
                plan_prune(&installed, keep, &p, &[]),
                vs(&want),
                "keep={keep}"
            );
        }
        // A blocked hash goes before older healthy ones.
        let blocked = v("20261129000000");
        assert_eq!(
            plan_prune(&installed, 3, &[&v("1.1.0")], &[&blocked]),
            vs(&["fff0000", "20261129000000"])
        );
    }
}
