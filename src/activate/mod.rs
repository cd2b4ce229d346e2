//! The deploy pipeline shared by push-mode `deploy`/`rollback` and the agent.
//!
//! Order matters for crash safety: a release directory appears only by renaming a
//! complete, fsynced staging tree; `current` only ever moves to such a directory; an
//! activation is recorded as pending in the state file *before* `current` moves, so a
//! run that finds a pending activation knows the previous process died mid-way and
//! rolls it back.

pub mod health;
pub mod process;
pub mod restarts;
pub mod services;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use crate::activate::restarts::RestartWatch;
use crate::archive::unpack::{self, UnpackError};
use crate::config::Config;
use crate::disk::layout::AppRoot;
use crate::disk::lock::{LockError, RootLock};
use crate::disk::releases::{self, Staging};
use crate::disk::state::{self, Operation, Pending, ReleaseRecord, State, StateError};
use crate::error::{Classify, ErrorClass};
use crate::fsutil;
use crate::registry::names::Version;
use crate::transport::source::{HashingReader, Progress, Source, StreamReader};
use crate::transport::TransportError;
use services::ServiceOutcome;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{what} ({path}): {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fetch(#[from] TransportError),
    #[error("cannot read artifact {location}: {message}")]
    Read { location: String, message: String },
    #[error(
        "refused artifact {location}: {source}; nothing was installed and `current` is unchanged"
    )]
    Unpack {
        location: String,
        #[source]
        source: UnpackError,
    },
    #[error("cannot write {path} while installing {location}: {source}; {}; nothing was installed and `current` is unchanged", write_hint(.source))]
    Write {
        location: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checksum mismatch for {location}: expected sha256 {expected}, got {actual}; the download is corrupt or tampered with, nothing was installed")]
    Checksum {
        location: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {location}: expected {expected} bytes, got {actual}; nothing was installed")]
    Size {
        location: String,
        expected: u64,
        actual: u64,
    },
    #[error("release {version} is already installed with different contents (installed sha256 {installed}, new {new}); releases are immutable: publish a new version, or pass --force to replace it")]
    Exists {
        version: Version,
        installed: String,
        new: String,
    },
    #[error("release {version} is already installed, but not by updraft (the seed's scripts, or by hand), so its checksum is unknown; to run it as it is: updraft rollback --version {version}; to replace it with this tarball: pass its --sha256 (or --force)")]
    ExistsUnrecorded { version: Version },
    #[error("release not found: {version} is not installed; available releases: {available}")]
    NotFound { version: Version, available: String },
    #[error("no release to roll back to (installed: {available}); pass --version to choose one")]
    NoPrevious { available: String },
    #[error("pre-activation check failed for {version}: {message}; the release was not activated")]
    PreActivate { version: Version, message: String },
    #[error("release {version} failed after activation: {reason}; {restored} and {version} is now blocked (`updraft unblock {version}` to allow it again)")]
    RolledBack {
        version: Version,
        reason: String,
        restored: String,
    },
    #[error("rollback to {version} failed: {reason}; switched back to {restored}")]
    RollbackFailed {
        version: Version,
        reason: String,
        restored: String,
    },
    #[error("invalid --sha256 {0:?}: expected 64 hexadecimal characters")]
    BadSha(String),
}

impl Classify for DeployError {
    fn class(&self) -> ErrorClass {
        match self {
            DeployError::Lock(_) => ErrorClass::Busy,
            // A read error inside the unpacker is the network or the disk, not the tarball.
            DeployError::Unpack {
                source: UnpackError::Read(_),
                ..
            } => ErrorClass::Other,
            DeployError::Unpack { .. }
            | DeployError::Checksum { .. }
            | DeployError::Size { .. } => ErrorClass::Verify,
            DeployError::NotFound { .. } | DeployError::NoPrevious { .. } => ErrorClass::NotFound,
            DeployError::Fetch(TransportError::NotFound { .. }) => ErrorClass::NotFound,
            DeployError::RolledBack { .. } | DeployError::RollbackFailed { .. } => {
                ErrorClass::RolledBack
            }
            DeployError::BadSha(_) => ErrorClass::Usage,
            _ => ErrorClass::Other,
        }
    }
}

/// Write errors that are the machine's (space, quotas, limits, permissions, a failing
/// or read-only disk); others while unpacking (a name too long, too many links) come
/// from what the tarball asks for.
fn is_disk_failure(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::StorageFull
            | K::QuotaExceeded
            | K::FileTooLarge
            | K::PermissionDenied
            | K::ReadOnlyFilesystem
    ) || e.raw_os_error() == Some(libc::EIO)
}

/// What to do about a failed write under releases/: the disk, not the tarball.
fn write_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "the filesystem holding releases/ is full: free space (`updraft prune --keep 2` removes old releases) and try again"
        }
        std::io::ErrorKind::FileTooLarge => {
            "a file size limit applies (ulimit -f, or LimitFSIZE= in the unit): lift it and try again"
        }
        _ => "check the free space and permissions of the releases/ directory",
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeployError {
    let path = path.to_path_buf();
    move |source| DeployError::Io { what, path, source }
}

/// What to install.
pub struct InstallRequest {
    pub version: Version,
    pub source: Source,
    pub expected_sha256: Option<String>,
    pub expected_size: Option<u64>,
    pub force: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub version: Version,
    pub sha256: String,
    pub size: u64,
    /// False when the release was already installed with the same bytes.
    pub fresh: bool,
    pub replaced: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deploy,
    Update,
    Rollback,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deploy => "deploy",
            Kind::Update => "update",
            Kind::Rollback => "rollback",
        }
    }
    /// A new release that fails is blocked; a rollback target is an operator's choice.
    fn blocks_on_failure(self) -> bool {
        !matches!(self, Kind::Rollback)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Activated {
    pub version: Version,
    pub previous: Option<Version>,
    pub services: String,
    pub pruned: Vec<Version>,
}

/// Operations on one app root under one config. Callers hold the root lock.
pub struct Pipeline<'a> {
    pub root: &'a AppRoot,
    pub config: &'a Config,
}

impl<'a> Pipeline<'a> {
    pub fn new(root: &'a AppRoot, config: &'a Config) -> Self {
        Pipeline { root, config }
    }

    /// Take the root lock (bounded wait), creating the layout if needed.
    pub async fn lock(&self) -> Result<RootLock, DeployError> {
        self.root
            .ensure()
            .map_err(io_err("cannot create app root layout", self.root.path()))?;
        let path = self.root.lock_file();
        let timeout = self.config.lock_timeout.0;
        tokio::task::spawn_blocking(move || RootLock::acquire(&path, timeout))
            .await
            .map_err(|e| DeployError::Read {
                location: "lock".into(),
                message: e.to_string(),
            })?
            .map_err(DeployError::from)
    }

    pub fn load_state(&self) -> Result<State, DeployError> {
        Ok(State::load(&self.root.state_file())?)
    }

    pub fn save_state(&self, state: &State) -> Result<(), DeployError> {
        Ok(state.save(&self.root.state_file())?)
    }

    /// Finish what a killed run left: remove staging trees, and roll back an
    /// activation that was still pending (its health was never confirmed).
    pub async fn recover(&self, state: &mut State) -> Result<(), DeployError> {
        for p in releases::clean_leftovers(self.root).map_err(io_err(
            "cannot remove leftover staging",
            &self.root.releases(),
        ))? {
            info!(path = %p.display(), "removed leftover staging directory from an interrupted run");
        }
        let Some(pending) = state.pending.take() else {
            return Ok(());
        };
        let current = self.current()?;
        let blocks = pending.kind != Kind::Rollback.as_str();
        if blocks && current.as_ref() == Some(&pending.version) {
            let reason = format!(
                "activation of {} was interrupted before its health checks passed (process or machine died)",
                pending.version
            );
            warn!(version = %pending.version, "{reason}; rolling back");
            let what =
                self.switch_back(pending.previous.as_ref(), pending.previous_link.as_deref())?;
            let how = self
                .bring_back(
                    pending.previous.as_ref(),
                    pending.previous_link.is_some(),
                    &pending.version,
                )
                .await;
            info!("{what}{how}");
            state.block(&pending.version, reason.clone());
            state.last_operation = Some(op("recover", Some(&pending.version), false, &reason));
            self.log(&format!(
                "[recover] {} interrupted while pending; restored {}",
                pending.version,
                show(pending.previous.as_ref())
            ));
        }
        self.save_state(state)?;
        Ok(())
    }

    pub fn current(&self) -> Result<Option<Version>, DeployError> {
        self.root.current().map_err(io_err(
            "cannot read current link",
            &self.root.current_link(),
        ))
    }

    pub fn installed(&self) -> Result<Vec<Version>, DeployError> {
        self.root
            .installed()
            .map_err(io_err("cannot list releases", &self.root.releases()))
    }

    /// Stream a tarball into `releases/<version>`: hash, bound and unpack in one pass
    /// into a staging tree, verify, then rename into place.
    pub async fn install(
        &self,
        state: &mut State,
        req: InstallRequest,
    ) -> Result<Installed, DeployError> {
        if let Some(sha) = &req.expected_sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DeployError::BadSha(sha.clone()));
            }
        }
        let expected = req.expected_sha256.as_ref().map(|s| s.to_ascii_lowercase());
        let dest = self.root.release_dir(&req.version);
        let exists = dest.is_dir();
        let recorded = state.releases.get(&req.version).map(|r| r.sha256.clone());
        // Already installed and the caller vouches for the same bytes: nothing to fetch.
        if exists && !req.force && expected.is_some() && expected == recorded {
            return Ok(Installed {
                version: req.version,
                sha256: recorded.unwrap_or_default(),
                size: 0,
                fresh: false,
                replaced: false,
            });
        }
        let location = req.source.location();
        let staging = Staging::create(self.root, &req.version).map_err(io_err(
            "cannot create staging directory",
            &self.root.releases(),
        ))?;
        let limits = unpack::Limits {
            max_bytes: self.config.limits.max_unpacked_bytes,
            max_entries: self.config.limits.max_entries,
        };
        let max_artifact = self.config.limits.max_artifact_bytes;
        let target = staging.path().to_path_buf();
        let loc = location.clone();
        let (reader, total): (Box<dyn std::io::Read + Send>, Option<u64>) = match req.source {
            Source::File(p) => {
                let f = fs::File::open(&p).map_err(|e| DeployError::Read {
                    location: p.display().to_string(),
                    message: format!("{e}; check the path"),
                })?;
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
            Source::Stream { stream, .. } => {
                (Box::new(StreamReader::spawn(stream)), req.expected_size)
            }
        };
        let reader: Box<dyn std::io::Read + Send> =
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                Box::new(Progress::new(
                    reader,
                    format!("installing {}", req.version),
                    total,
                ))
            } else {
                reader
            };
        let (sha256, size) = tokio::task::spawn_blocking(move || {
            let mut hr = HashingReader::new(
                std::io::BufReader::with_capacity(256 * 1024, reader),
                max_artifact,
            );
            match unpack::unpack_tar_gz(&mut hr, &target, &limits) {
                Ok(_) => Ok(hr.finish()),
                // Our disk failed us, not the tarball: not a verification failure.
                Err(UnpackError::Io { path, source }) if is_disk_failure(&source) => {
                    Err(DeployError::Write {
                        location: loc,
                        path,
                        source,
                    })
                }
                Err(source) => Err(DeployError::Unpack {
                    location: loc,
                    source,
                }),
            }
        })
        .await
        .map_err(|e| DeployError::Read {
            location: location.clone(),
            message: e.to_string(),
        })??;
        if let Some(exp) = &expected {
            if *exp != sha256 {
                return Err(DeployError::Checksum {
                    location,
                    expected: exp.clone(),
                    actual: sha256,
                });
            }
        }
        if let Some(exp) = req.expected_size {
            if exp != size {
                return Err(DeployError::Size {
                    location,
                    expected: exp,
                    actual: size,
                });
            }
        }
        let mut replaced = false;
        if exists {
            if recorded.as_deref() == Some(sha256.as_str()) && !req.force {
                // Same bytes: drop the staging tree and reuse the installed release.
                return Ok(Installed {
                    version: req.version,
                    sha256,
                    size,
                    fresh: false,
                    replaced: false,
                });
            }
            // A release another tool installed (the seed's `v1.2.3`) has no checksum to
            // compare; bytes the caller vouches for (a signed release document, or
            // --sha256) replace it, so the agent can still go back to that version.
            let vouched_over_unknown = recorded.is_none() && expected.is_some();
            if !req.force && !vouched_over_unknown {
                return Err(match recorded {
                    Some(installed) => DeployError::Exists {
                        version: req.version,
                        installed,
                        new: sha256,
                    },
                    None => DeployError::ExistsUnrecorded {
                        version: req.version,
                    },
                });
            }
            staging
                .exchange(&dest)
                .map_err(io_err("cannot replace release", &dest))?;
            replaced = true;
        } else {
            staging
                .commit(&dest)
                .map_err(io_err("cannot move staged release into place", &dest))?;
        }
        state.releases.insert(
            req.version.clone(),
            ReleaseRecord {
                sha256: sha256.clone(),
                installed_at: state::now_rfc3339(),
                source: location,
            },
        );
        self.save_state(state)?;
        info!(version = %req.version, sha256 = %sha256, bytes = size, "release installed");
        Ok(Installed {
            version: req.version,
            sha256,
            size,
            fresh: true,
            replaced,
        })
    }

    /// Run the configured pre-activation check inside the (not yet active) release.
    pub async fn pre_activate(&self, version: &Version) -> Result<(), DeployError> {
        let argv = &self.config.pre_activate;
        if argv.is_empty() {
            return Ok(());
        }
        let dir = self.root.release_dir(version);
        let dir_s = dir.display().to_string();
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("{release}", &dir_s))
            .collect();
        let fail = |message: String| DeployError::PreActivate {
            version: version.clone(),
            message,
        };
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(&dir)
            .envs(self.env(Some(version), None))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(self.config.services.timeout.0, cmd.output())
            .await
            .map_err(|_| fail(format!("`{}` timed out", argv.join(" "))))?
            .map_err(|e| fail(format!("cannot run `{}`: {e}", argv.join(" "))))?;
        if !out.status.success() {
            return Err(fail(format!(
                "`{}` exited with {}: {}",
                argv.join(" "),
                out.status,
                tail(&out.stderr)
            )));
        }
        Ok(())
    }

    fn env(&self, version: Option<&Version>, previous: Option<&Version>) -> Vec<(String, String)> {
        let mut env = vec![(
            "UPDRAFT_ROOT".to_string(),
            self.root.path().display().to_string(),
        )];
        if let Some(v) = version {
            env.push(("UPDRAFT_VERSION".into(), v.to_string()));
            env.push((
                "UPDRAFT_RELEASE_DIR".into(),
                self.root.release_dir(v).display().to_string(),
            ));
        }
        if let Some(p) = previous {
            env.push(("UPDRAFT_PREVIOUS".into(), p.to_string()));
        }
        env
    }

    /// The target of `current` when it points at something that is no release of ours
    /// (a seed release named by a git hash or a date), so a failed activation can put
    /// it back instead of leaving the app with no `current` at all.
    fn unmanaged_current(&self) -> Option<String> {
        let target = fs::read_link(self.root.current_link()).ok()?;
        let resolved = self.root.releases().join(&target);
        resolved
            .is_dir()
            .then(|| target.to_string_lossy().into_owned())
    }

    /// Undo a switch: back to the previous release, else to the unmanaged target
    /// `current` had, else no `current` at all. Says which, for the operator.
    fn switch_back(
        &self,
        previous: Option<&Version>,
        previous_link: Option<&str>,
    ) -> Result<String, DeployError> {
        match (previous, previous_link) {
            (Some(p), _) => {
                self.switch_to(Some(p))?;
                Ok(format!("switched back to {p}"))
            }
            (None, Some(raw)) => {
                let link = self.root.current_link();
                fsutil::replace_symlink(&link, Path::new(raw))
                    .map_err(io_err("cannot switch current link", &link))?;
                Ok(format!(
                    "switched back to {raw} (a release updraft did not install)"
                ))
            }
            (None, None) => {
                self.switch_to(None)?;
                Ok("removed the current link (there was no previous release)".into())
            }
        }
    }

    /// Point `current` at `version`, or remove it when there is nothing to point at
    /// (a first release that failed: better no current than an unhealthy one).
    fn switch_to(&self, version: Option<&Version>) -> Result<(), DeployError> {
        let link = self.root.current_link();
        match version {
            Some(v) => fsutil::replace_symlink(&link, &self.root.link_target(v))
                .map_err(io_err("cannot switch current link", &link)),
            None => match fs::remove_file(&link) {
                Ok(()) => fsutil::fsync_dir(&self.root.releases())
                    .map_err(io_err("cannot sync releases directory", &link)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("cannot remove current link", &link)(e)),
            },
        }
    }

    /// Copy the release's `commands/` scripts into `<root>/commands` (the seed's habit),
    /// each file atomically; symlinks and subdirectories are skipped.
    fn copy_commands(&self, version: &Version) -> Result<(), DeployError> {
        let src = self.root.release_dir(version).join("commands");
        let Ok(rd) = fs::read_dir(&src) else {
            return Ok(());
        };
        let dst = self.root.commands();
        fs::create_dir_all(&dst).map_err(io_err("cannot create commands directory", &dst))?;
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if !ft.is_file() {
                continue;
            }
            let bytes =
                fs::read(entry.path()).map_err(io_err("cannot read command", &entry.path()))?;
            let to = dst.join(entry.file_name());
            fsutil::write_atomic(&to, &bytes, 0o755)
                .map_err(io_err("cannot write command", &to))?;
        }
        Ok(())
    }

    /// Switch to `version`, restart, check health (and bake). On failure switch back,
    /// restart the old release, and (for new releases) block the version.
    pub async fn activate(
        &self,
        state: &mut State,
        version: &Version,
        kind: Kind,
    ) -> Result<Activated, DeployError> {
        let previous = self.current()?;
        let previous_link = match previous {
            Some(_) => None,
            None => self.unmanaged_current(),
        };
        state.pending = Some(Pending {
            kind: kind.as_str().into(),
            version: version.clone(),
            previous: previous.clone(),
            previous_link: previous_link.clone(),
            started_at: state::now_rfc3339(),
            bake_until: None,
        });
        self.save_state(state)?;
        self.switch_to(Some(version))?;
        info!(%version, previous = %show(previous.as_ref()), "switched current");
        let env = self.env(Some(version), previous.as_ref());
        let result = self.bring_up(version, &env, state).await;
        match result {
            Ok(outcome) => {
                state.pending = None;
                if previous.as_ref() != Some(version) {
                    state.previous = previous.clone();
                }
                state.blocked.remove(version);
                let msg = format!(
                    "{version} active ({outcome:?}, previous {})",
                    show(previous.as_ref())
                );
                state.last_operation = Some(op(kind.as_str(), Some(version), true, &msg));
                state.last_health = Some(op("health", Some(version), true, "all checks passed"));
                self.save_state(state)?;
                self.log(&format!(
                    "[{}] {version} activated (previous {}, services {outcome:?})",
                    kind.as_str(),
                    show(previous.as_ref())
                ));
                self.history(kind.as_str(), Some(version), true, &msg);
                Ok(Activated {
                    version: version.clone(),
                    previous,
                    services: format!("{outcome:?}").to_lowercase(),
                    pruned: Vec::new(),
                })
            }
            Err(reason) => {
                warn!(%version, "activation failed: {reason}; switching back to {}", show(previous.as_ref()));
                let mut restored = self.switch_back(previous.as_ref(), previous_link.as_deref())?;
                restored.push_str(
                    &self
                        .bring_back(previous.as_ref(), previous_link.is_some(), version)
                        .await,
                );
                state.pending = None;
                state.last_health = Some(op("health", Some(version), false, &reason));
                state.last_operation = Some(op(kind.as_str(), Some(version), false, &reason));
                if kind.blocks_on_failure() {
                    state.block(version, reason.clone());
                }
                self.save_state(state)?;
                self.log(&format!(
                    "[{}] {version} FAILED: {reason}; {restored}",
                    kind.as_str()
                ));
                self.history(kind.as_str(), Some(version), false, &reason);
                if kind.blocks_on_failure() {
                    Err(DeployError::RolledBack {
                        version: version.clone(),
                        reason,
                        restored,
                    })
                } else {
                    Err(DeployError::RollbackFailed {
                        version: version.clone(),
                        reason,
                        restored: show(previous.as_ref()),
                    })
                }
            }
        }
    }

    /// Restart the release we switched back to and confirm its health, so the
    /// operator learns whether the machine is serving at all. Returns a note for messages.
    /// Restart and re-check what `current` was switched back to: a release of ours,
    /// or (`unmanaged`) one updraft did not install.
    async fn bring_back(
        &self,
        restored: Option<&Version>,
        unmanaged: bool,
        failed: &Version,
    ) -> String {
        if restored.is_none() && !unmanaged {
            return String::new();
        }
        let env = self.env(restored, Some(failed));
        match services::restart(&self.config.services, &env).await {
            Err(e) => format!(" (but restarting it failed: {e})"),
            Ok(_) => match health::run_checks(&self.config.health, &env).await {
                Ok(_) if !self.config.health.is_empty() => " (healthy)".into(),
                Ok(_) => String::new(),
                Err(e) => format!(" (but it is not healthy either: {e})"),
            },
        }
    }

    async fn bring_up(
        &self,
        version: &Version,
        env: &[(String, String)],
        state: &mut State,
    ) -> Result<ServiceOutcome, String> {
        self.copy_commands(version).map_err(|e| e.to_string())?;
        let outcome = services::restart(&self.config.services, env)
            .await
            .map_err(|e| e.to_string())?;
        let restarts = match outcome {
            ServiceOutcome::Skipped => None,
            _ => RestartWatch::start(&self.config.services, env).await,
        };
        health::run_checks(&self.config.health, env)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(r) = &restarts {
            r.check(env).await.map_err(|e| e.to_string())?;
        }
        let bake = self.config.bake.0;
        if bake > Duration::ZERO && (!self.config.health.is_empty() || restarts.is_some()) {
            if let Some(p) = state.pending.as_mut() {
                p.bake_until = Some(
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now() + bake)
                        .to_string(),
                );
            }
            self.save_state(state).map_err(|e| e.to_string())?;
            info!(%version, ?bake, "baking: health checks keep running");
            let every = self
                .config
                .health
                .iter()
                .map(|h| h.interval.0)
                .min()
                .unwrap_or(Duration::from_secs(1));
            health::watch(&self.config.health, restarts.as_ref(), env, bake, every)
                .await
                .map_err(|e| format!("during the bake period: {e}"))?;
        }
        Ok(outcome)
    }

    /// Remove releases beyond `keep`, never current, previous or pinned.
    pub fn prune(
        &self,
        state: &State,
        keep: usize,
        dry_run: bool,
    ) -> Result<Vec<Version>, DeployError> {
        let installed = self.installed()?;
        let current = self.current()?;
        let protected: Vec<&Version> = [
            current.as_ref(),
            state.previous.as_ref(),
            state.pinned.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let doomed = releases::plan_prune(&installed, keep, &protected);
        if !dry_run {
            for v in &doomed {
                releases::remove_release(self.root, v).map_err(io_err(
                    "cannot remove old release",
                    &self.root.release_dir(v),
                ))?;
                info!(version = %v, "pruned old release");
                self.log(&format!("[prune] removed {v}"));
            }
        }
        Ok(doomed)
    }

    /// Append a line to `logs/releases.log` (the seed's audit trail). Failure to log
    /// never fails an operation.
    pub fn log(&self, line: &str) {
        use std::io::Write;
        let path = self.root.release_log();
        let _ = fs::create_dir_all(self.root.logs());
        let res = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{} {line}", state::now_rfc3339()));
        if let Err(e) = res {
            warn!("cannot append to {}: {e}", path.display());
        }
    }

    /// Append one event to `.updraft/history.jsonl` (what `updraft why` reads). Failure
    /// to record history never fails an operation.
    pub fn history(&self, event: &str, version: Option<&Version>, ok: bool, message: &str) {
        let entry = serde_json::json!({
            "at": state::now_rfc3339(),
            "event": event,
            "version": version.map(|v| v.to_string()),
            "ok": ok,
            "message": message,
        });
        if let Err(e) = state::append_history(&self.root.history_file(), &entry) {
            warn!("cannot append to history: {e}");
        }
    }

    pub fn available(&self) -> String {
        match self.installed() {
            Ok(v) if !v.is_empty() => v
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            _ => "none".into(),
        }
    }
}

pub fn show(v: Option<&Version>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

fn op(kind: &str, version: Option<&Version>, ok: bool, message: &str) -> Operation {
    Operation {
        kind: kind.into(),
        version: version.cloned(),
        at: state::now_rfc3339(),
        ok,
        message: message.into(),
    }
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub installed: Installed,
    pub activated: Activated,
}

/// The whole push-mode deploy: lock, recover, install, check, activate, prune.
pub async fn deploy(
    root: &AppRoot,
    config: &Config,
    req: InstallRequest,
) -> Result<DeployReport, DeployError> {
    let p = Pipeline::new(root, config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    p.recover(&mut state).await?;
    let version = req.version.clone();
    let installed = p.install(&mut state, req).await?;
    if let Err(e) = p.pre_activate(&version).await {
        if installed.fresh && !installed.replaced && p.current()?.as_ref() != Some(&version) {
            let _ = releases::remove_release(root, &version);
            state.releases.remove(&version);
            p.save_state(&state)?;
        }
        p.log(&format!(
            "[deploy] {version} refused by pre-activation check: {e}"
        ));
        return Err(e);
    }
    let mut activated = p.activate(&mut state, &version, Kind::Deploy).await?;
    activated.pruned = p.prune(&state, config.keep, false)?;
    Ok(DeployReport {
        installed,
        activated,
    })
}

/// Switch to an installed release (default: the previous one).
pub async fn rollback(
    root: &AppRoot,
    config: &Config,
    version: Option<Version>,
) -> Result<Activated, DeployError> {
    let p = Pipeline::new(root, config);
    let _lock = p.lock().await?;
    let mut state = p.load_state()?;
    p.recover(&mut state).await?;
    let installed = p.installed()?;
    let current = p.current()?;
    let target = match version {
        Some(v) => {
            if !installed.contains(&v) {
                return Err(DeployError::NotFound {
                    version: v,
                    available: p.available(),
                });
            }
            v
        }
        None => {
            let prev = state
                .previous
                .clone()
                .filter(|v| installed.contains(v) && Some(v) != current.as_ref());
            // Without a recorded previous, take the newest release older than current.
            let fallback = || {
                installed
                    .iter()
                    .rev()
                    .find(|v| current.as_ref().is_none_or(|c| *v < c))
                    .cloned()
            };
            match prev.or_else(fallback) {
                Some(v) => v,
                None => {
                    return Err(DeployError::NoPrevious {
                        available: p.available(),
                    })
                }
            }
        }
    };
    p.activate(&mut state, &target, Kind::Rollback).await
}
