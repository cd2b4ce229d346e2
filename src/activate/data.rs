//! Data epochs: code rolls back in milliseconds, data does not. A release declares the
//! data format it needs (`data_epoch`, signed in its release document, or
//! `deploy --data-epoch`); before activating a release of a higher epoch than the
//! running one, `data/` is snapshotted into `.updraft/snapshots/<version>/` (a
//! reflink copy where the filesystem has them, else a copy, or the configured
//! `data.snapshot` command). Going back to a lower epoch (a failed activation, crash
//! recovery, `rollback`) stops the services, restores that snapshot, then starts the
//! old release; without a snapshot of that epoch it is refused (`--force-data` rolls
//! back the code only). Releases of one epoch share `data/` as it is.
//!
//! Crash safety: a snapshot appears only by renaming a complete copy into place, and
//! the activation that needs it records it as pending before `current` moves, so a
//! run that finds the activation interrupted restores it (again, if a restore was
//! interrupted: a restore replaces `data/` by a fresh copy of the snapshot each time).

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::error::{io_err, DeployError};
use super::process;
use super::Pipeline;
use crate::disk::layout::AppRoot;
use crate::disk::state::State;
use crate::fsutil;
use crate::registry::names::Version;

/// The file in a snapshot naming the epoch its data is in.
const EPOCH_FILE: &str = "epoch";

/// Why data could not be kept safe.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot snapshot {data} before activating {version} (data epoch {from} → {to}): {why}; nothing was activated: free space or fix [data] snapshot, and run again")]
    Snapshot {
        data: PathBuf,
        version: Version,
        from: u64,
        to: u64,
        why: String,
    },
    #[error("cannot restore the data snapshot {snapshot}: {why}; the data is left as it was found: restore it by hand (or fix [data] restore) before starting the app")]
    Restore { snapshot: PathBuf, why: String },
    #[error("{target} needs data epoch {want}, but the data is in epoch {have} (from {current}) and there is no snapshot of epoch {want} to restore ({looked}); refusing to run old code on data it cannot read: restore the data by hand and pass --force-data to roll back the code only")]
    NoSnapshot {
        target: Version,
        current: Version,
        want: u64,
        have: u64,
        looked: String,
    },
}

impl Pipeline<'_> {
    /// The data epoch of an installed release (0: none recorded).
    pub fn epoch(&self, state: &State, v: Option<&Version>) -> u64 {
        v.and_then(|v| state.releases.get(v))
            .map_or(0, |r| r.data_epoch)
    }

    pub fn snapshot_dir(&self, v: &Version) -> PathBuf {
        self.root.snapshot_dir(v)
    }

    /// The epoch the snapshot taken before activating `v` holds, if there is one.
    pub fn snapshot_epoch(&self, v: &Version) -> Option<u64> {
        snapshot_epoch(&self.snapshot_dir(v))
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Before activating `version` over `previous`: when the epoch rises, snapshot
    /// `data/` as it is now. Returns whether it did.
    pub(super) async fn snapshot_before(
        &self,
        state: &State,
        previous: Option<&Version>,
        version: &Version,
    ) -> Result<bool, DeployError> {
        let (from, to) = (
            self.epoch(state, previous),
            self.epoch(state, Some(version)),
        );
        if previous.is_none() || to <= from {
            return Ok(false);
        }
        let dir = self.snapshot_dir(version);
        let tmp = dir.with_file_name(format!(".tmp-{version}"));
        let data = self.data_dir();
        let fail = |why: String| DataError::Snapshot {
            data: data.clone(),
            version: version.clone(),
            from,
            to,
            why,
        };
        let t = tmp.clone();
        fsutil::blocking(move || {
            let _ = fsutil::remove_tree(&t);
            std::fs::create_dir_all(&t).map_err(io_err("cannot create snapshot directory", &t))
        })
        .await?;
        if self.config.data.snapshot.is_empty() {
            if data.exists() {
                copy_tree(&data, &tmp.join("data"))
                    .await
                    .map_err(|why| DeployError::from(fail(why)))?;
            }
        } else {
            self.run_data_command(&self.config.data.snapshot, &tmp)
                .await
                .map_err(|why| DeployError::from(fail(why)))?;
        }
        let d = dir.clone();
        fsutil::blocking(move || {
            let epoch_file = tmp.join(EPOCH_FILE);
            fsutil::write_atomic(&epoch_file, format!("{from}\n").as_bytes(), 0o644)
                .map_err(io_err("cannot write snapshot epoch", &epoch_file))?;
            let _ = fsutil::remove_tree(&d);
            std::fs::rename(&tmp, &d).map_err(io_err("cannot move snapshot into place", &d))?;
            if let Some(parent) = d.parent() {
                let _ = fsutil::fsync_dir(parent);
            }
            Ok::<(), DeployError>(())
        })
        .await?;
        crate::failpoint::hit("data.snapshotted");
        info!(%version, from, to, "data snapshotted before raising its epoch");
        Ok(true)
    }

    /// Stop the services and put the snapshot taken before `version` back as `data/`.
    /// Returns a note for messages.
    pub(super) async fn restore_snapshot(&self, version: &Version) -> Result<String, DeployError> {
        let dir = self.snapshot_dir(version);
        let fail = |why: String| {
            DeployError::from(DataError::Restore {
                snapshot: dir.clone(),
                why,
            })
        };
        self.stop_services().await;
        if !self.config.data.restore.is_empty() {
            self.run_data_command(&self.config.data.restore, &dir)
                .await
                .map_err(fail)?;
        } else {
            let data = self.data_dir();
            let incoming = self.root.path().join(".data.restoring");
            let outgoing = self.root.path().join(".data.replaced");
            let (i, o) = (incoming.clone(), outgoing.clone());
            fsutil::blocking(move || {
                let _ = fsutil::remove_tree(&i);
                let _ = fsutil::remove_tree(&o);
            })
            .await;
            let saved = dir.join("data");
            if saved.exists() {
                copy_tree(&saved, &incoming).await.map_err(fail)?;
            }
            let root = self.root.path().to_path_buf();
            fsutil::blocking(move || {
                match std::fs::rename(&data, &outgoing) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot move {} aside: {e}", data.display())),
                }
                if saved.exists() {
                    std::fs::rename(&incoming, &data)
                        .map_err(|e| format!("cannot move the copy into place: {e}"))?;
                }
                let _ = fsutil::fsync_dir(&root);
                let _ = fsutil::remove_tree(&outgoing);
                Ok(())
            })
            .await
            .map_err(fail)?;
        }
        crate::failpoint::hit("data.restored");
        let epoch = self.snapshot_epoch(version).unwrap_or(0);
        info!(%version, epoch, "data restored from the snapshot taken before {version}");
        Ok(format!(
            ", restored the data (epoch {epoch}) from the snapshot taken before {version}"
        ))
    }

    /// Going from `current` back to `target`: when `target` needs a lower data epoch,
    /// restore the snapshot taken before `current` if it holds that epoch, or refuse
    /// (`force`: roll back the code only). Returns a note for messages.
    pub async fn restore_for(
        &self,
        state: &State,
        current: Option<&Version>,
        target: &Version,
        force: bool,
    ) -> Result<String, DeployError> {
        let Some(current) = current else {
            return Ok(String::new());
        };
        let (have, want) = (
            self.epoch(state, Some(current)),
            self.epoch(state, Some(target)),
        );
        if want >= have {
            return Ok(String::new());
        }
        if self.snapshot_epoch(current) == Some(want) {
            return self.restore_snapshot(current).await;
        }
        if force {
            warn!(%target, "rolling back the code only (--force-data): {target} needs data epoch {want}, the data is in epoch {have}");
            return Ok(format!(
                ", code only: the data stays in epoch {have} (--force-data)"
            ));
        }
        Err(DeployError::from(DataError::NoSnapshot {
            target: target.clone(),
            current: current.clone(),
            want,
            have,
            looked: self.snapshot_dir(current).display().to_string(),
        }))
    }

    /// Stop the app before its data is replaced: `services.stop`, else
    /// `systemctl stop` of `services.units`. A failure is logged: the restore goes on.
    async fn stop_services(&self) {
        let s = &self.config.services;
        let mut commands: Vec<Vec<String>> = Vec::new();
        if !s.stop.is_empty() {
            commands.push(s.stop.clone());
        } else if !s.units.is_empty() {
            let mut argv = s.systemctl.clone();
            argv.push("stop".into());
            argv.extend(s.units.iter().cloned());
            commands.push(argv);
        }
        let env = self.env(None, None);
        for argv in commands {
            match process::run(&argv, &env, s.timeout.0).await {
                Ok(f) if f.status.success() => {}
                Ok(f) => {
                    warn!(command = %argv.join(" "), "stopping the app before restoring its data {}", process::describe(f.status))
                }
                Err(e) => {
                    warn!(command = %argv.join(" "), "stopping the app before restoring its data failed: {e}")
                }
            }
        }
    }

    /// Run `data.snapshot` or `data.restore` with `UPDRAFT_SNAPSHOT_DIR` and
    /// `UPDRAFT_DATA_DIR`, bounded by `services.timeout`.
    async fn run_data_command(&self, argv: &[String], snapshot: &Path) -> Result<(), String> {
        let mut env = self.env(None, None);
        env.push((
            "UPDRAFT_SNAPSHOT_DIR".into(),
            snapshot.display().to_string(),
        ));
        env.push((
            "UPDRAFT_DATA_DIR".into(),
            self.data_dir().display().to_string(),
        ));
        let command = argv.join(" ");
        match process::run(argv, &env, self.config.services.timeout.0).await {
            Ok(f) if f.status.success() => Ok(()),
            Ok(f) => Err(format!(
                "`{command}` {}: {}",
                process::describe(f.status),
                process::tail(&f.stderr, 5)
            )),
            Err(e) => Err(format!("`{command}`: {e}")),
        }
    }
}

/// Remove the half-made snapshots (`.tmp-*`) and half-done restores a killed run left
/// (blocking; recovery runs it with its other cleanup): a snapshot is only ever used
/// once renamed into place complete, and a restore starts from a fresh copy.
pub(super) fn clean_leftovers(root: &AppRoot) {
    let snapshots = root.meta().join("snapshots");
    let mut doomed: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    doomed.push(root.path().join(".data.restoring"));
    doomed.push(root.path().join(".data.replaced"));
    for d in doomed.iter().filter(|d| d.exists()) {
        if let Err(e) = fsutil::remove_tree(d) {
            warn!(path = %d.display(), error = %e, "cannot remove what an interrupted data snapshot or restore left");
        }
    }
}

/// The epoch the snapshot in `dir` holds (None: no complete snapshot there).
pub fn snapshot_epoch(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(EPOCH_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `cp -a --reflink=auto src dst`: GNU cp clones the blocks where the filesystem can
/// (btrfs, XFS), and copies them otherwise, keeping modes, owners and times.
async fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    let out = tokio::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg("--")
        .arg(src)
        .arg(dst)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cp -a {} {} {}: {}",
            src.display(),
            dst.display(),
            process::describe(out.status),
            process::tail(&out.stderr, 3)
        ))
    }
}
