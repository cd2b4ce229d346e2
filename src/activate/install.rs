//! Installing a release: stream a tarball through the hasher and the unpacker into a
//! staging tree, verify it against what the caller vouched for, then rename it into
//! `releases/<version>` so the release appears complete or not at all.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;
use tracing::info;

use super::error::{io_err, is_disk_failure, DeployError};
use super::Pipeline;
use crate::archive::unpack::{self, UnpackError};
use crate::archive::version_file;
use crate::disk::releases::{Download, Staging};
use crate::disk::state::{Installing, State};
use crate::failpoint;
use crate::fsutil;
use crate::registry::manifest::{BlockError, BlockList};
use crate::registry::names::Version;
use crate::transport::source::{HashingReader, Progress, Source, StreamReader};

/// What to install.
pub struct InstallRequest {
    pub version: Version,
    pub source: Source,
    pub expected_sha256: Option<String>,
    pub expected_size: Option<u64>,
    pub force: bool,
    /// Install even when the tarball's root `VERSION` file names another version
    /// (`--allow-version-mismatch`; the agent, whose registry publish already checked).
    pub allow_version_mismatch: bool,
    /// The artifact's verified block list (from a signed release document): each block
    /// is checked before the unpacker sees it. Without one, an artifact with an
    /// expected sha256 is verified whole before it is unpacked.
    pub blocks: Option<BlockList>,
    /// The data epoch the release needs (its signed `data_epoch`, `deploy
    /// --data-epoch`), recorded with it; None keeps what is recorded (else 0).
    pub data_epoch: Option<u64>,
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

/// Nothing to fetch: the release is on disk and the caller vouches for exactly the
/// bytes we recorded when we installed it.
fn already_installed(
    exists: bool,
    recorded: Option<&str>,
    expected: Option<&str>,
    force: bool,
) -> bool {
    exists && !force && expected.is_some() && expected == recorded
}

/// What to do with a verified staging tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Nothing installed under that version: rename the staging tree into place.
    Commit,
    /// The same bytes are already installed: drop the staging tree.
    Reuse,
    /// Different (or unknown) bytes are installed and nothing allows replacing them.
    Refuse,
    /// Swap the staging tree with the installed release.
    Replace,
}

/// Releases are immutable: an installed version is replaced only with `--force`, or
/// when it was installed by another tool (the seed's `v1.2.3`, no recorded checksum)
/// and the caller vouches for the new bytes (a signed release document, or
/// `--sha256`), so the agent can still go back to that version.
fn placement(
    exists: bool,
    recorded: Option<&str>,
    vouched: bool,
    actual: &str,
    force: bool,
) -> Placement {
    if !exists {
        return Placement::Commit;
    }
    if force {
        return Placement::Replace;
    }
    match recorded {
        Some(r) if r == actual => Placement::Reuse,
        None if vouched => Placement::Replace,
        _ => Placement::Refuse,
    }
}

/// Read `reader` to its end, bounded by `max` bytes, copying it to `copy` when given,
/// and check the sha256 and size against what the caller vouched for.
fn check_whole(
    location: &str,
    reader: impl Read,
    expected: &str,
    expected_size: Option<u64>,
    max: u64,
    mut copy: Option<(fs::File, &Path)>,
) -> Result<(), DeployError> {
    let mut hr = HashingReader::new(reader, max);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match hr.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DeployError::Download {
                    location: location.to_string(),
                    source,
                })
            }
        };
        if let Some((f, path)) = &mut copy {
            f.write_all(&buf[..n])
                .map_err(|source| DeployError::Write {
                    location: location.to_string(),
                    path: path.display().to_string(),
                    source,
                })?;
        }
    }
    let (actual, size) = hr.finish();
    if actual != expected {
        return Err(DeployError::Checksum {
            location: location.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    if let Some(exp) = expected_size.filter(|e| *e != size) {
        return Err(DeployError::Size {
            location: location.to_string(),
            expected: exp,
            actual: size,
        });
    }
    Ok(())
}

impl Pipeline<'_> {
    /// Stream a tarball into `releases/<version>`: hash, bound and unpack in one pass
    /// into a staging tree, verify, then rename into place.
    pub async fn install(
        &self,
        state: &mut State,
        req: InstallRequest,
    ) -> Result<Installed, DeployError> {
        let epoch = req.data_epoch;
        let installed = self.install_release(state, req).await?;
        if let Some(e) = epoch {
            if self.epoch(state, Some(&installed.version)) != e {
                state.set_data_epoch(&installed.version, e);
                self.save_state(state).await?;
            }
        }
        Ok(installed)
    }

    async fn install_release(
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
        if already_installed(exists, recorded.as_deref(), expected.as_deref(), req.force) {
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
            max_path_depth: self.config.limits.max_path_depth,
            max_path_bytes: self.config.limits.max_path_bytes,
        };
        let max_artifact = self.config.limits.max_artifact_bytes;
        let target = staging.path().to_path_buf();
        let loc = location.clone();
        let vouched = expected.is_some();
        let force = req.force;
        let expected_size = req.expected_size;
        let check_version = (!req.allow_version_mismatch).then(|| req.version.clone());
        let blocks = req.blocks;
        let label = format!("installing {}", req.version);
        let progress =
            move |reader: Box<dyn Read + Send>, total: Option<u64>| -> Box<dyn Read + Send> {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    Box::new(Progress::new(reader, label, total))
                } else {
                    Box::new(Progress::logged(reader, label, total))
                }
            };
        let spool_root = self.root.clone();
        let spool_version = req.version.clone();
        let source = req.source;
        // Unpack and verify in one blocking task; the staging tree is dropped (deleted)
        // in blocking tasks too, whatever happens, and never on an async worker.
        let (sha256, size, staging) = fsutil::blocking(move || {
            // How the bytes reach the unpacker: only ever verified ones when something
            // vouches for them. A block list checks each block before handing it on;
            // without one, the whole artifact is verified first (a local file in
            // place, a download in a temporary file in the app root).
            let mut spooled = None;
            let input: Box<dyn Read + Send> = match (source, blocks, &expected) {
                (Source::File(p), blocks, expected) => {
                    let open = || {
                        fs::File::open(&p).map_err(|source| DeployError::Read {
                            location: p.display().to_string(),
                            source,
                        })
                    };
                    let f = open()?;
                    let len = f.metadata().ok().map(|m| m.len());
                    match (blocks, expected) {
                        (Some(list), _) => Box::new(list.reader(progress(Box::new(f), len))),
                        (None, Some(exp)) => {
                            check_whole(&loc, f, exp, expected_size, max_artifact, None)?;
                            progress(Box::new(open()?), len)
                        }
                        (None, None) => progress(Box::new(f), len),
                    }
                }
                (Source::Stream { stream, .. }, blocks, expected) => {
                    let reader = progress(Box::new(StreamReader::spawn(stream)), expected_size);
                    match (blocks, expected) {
                        (Some(list), _) => Box::new(list.reader(reader)),
                        (None, Some(exp)) => {
                            let mut d =
                                Download::create(&spool_root, &spool_version).map_err(io_err(
                                    "cannot create a temporary file for the download",
                                    &spool_root.releases(),
                                ))?;
                            let file = d
                                .file()
                                .try_clone()
                                .map_err(io_err("cannot write the download", d.path()))?;
                            check_whole(
                                &loc,
                                reader,
                                exp,
                                expected_size,
                                max_artifact,
                                Some((file, d.path())),
                            )?;
                            let f = fs::File::open(d.path())
                                .map_err(io_err("cannot read the download back", d.path()))?;
                            spooled = Some(d);
                            Box::new(f)
                        }
                        (None, None) => reader,
                    }
                }
            };
            let mut hr = HashingReader::new(
                std::io::BufReader::with_capacity(256 * 1024, input),
                max_artifact,
            );
            let unpacked = unpack::unpack_tar_gz(&mut hr, &target, &limits);
            drop(spooled);
            let (sha256, size) = match unpacked {
                Ok(_) => hr.finish(),
                // Our disk failed us, not the tarball: not a verification failure.
                Err(UnpackError::Io { path, source }) if is_disk_failure(&source) => {
                    return Err(DeployError::Write {
                        location: loc,
                        path,
                        source,
                    })
                }
                // A block that did not match: the unpacker never saw it.
                Err(UnpackError::Read(e)) if e.get_ref().is_some_and(|i| i.is::<BlockError>()) => {
                    let source = e
                        .into_inner()
                        .and_then(|i| i.downcast::<BlockError>().ok())
                        .map(|b| *b)
                        .unwrap_or_else(|| BlockError::Read(std::io::Error::other("unknown")));
                    return Err(DeployError::Blocks {
                        location: loc,
                        source,
                    });
                }
                Err(source) => {
                    return Err(DeployError::Unpack {
                        location: loc,
                        source,
                    })
                }
            };
            if let Some(exp) = expected {
                if exp != sha256 {
                    return Err(DeployError::Checksum {
                        location: loc,
                        expected: exp,
                        actual: sha256,
                    });
                }
            }
            if let Some(exp) = expected_size {
                if exp != size {
                    return Err(DeployError::Size {
                        location: loc,
                        expected: exp,
                        actual: size,
                    });
                }
            }
            if let Some(version) = check_version {
                let found = version_file::in_tree(&target)
                    .map_err(io_err("cannot read VERSION of the staged release", &target))?;
                version_file::check(&loc, found, &version)?;
            }
            Ok((sha256, size, staging))
        })
        .await?;
        failpoint::hit("install.staged");
        let placed = placement(exists, recorded.as_deref(), vouched, &sha256, force);
        let replaced = match placed {
            Placement::Reuse | Placement::Refuse => {
                fsutil::blocking(move || drop(staging)).await;
                if placed == Placement::Reuse {
                    // Same bytes: reuse the installed release.
                    return Ok(Installed {
                        version: req.version,
                        sha256,
                        size,
                        fresh: false,
                        replaced: false,
                    });
                }
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
            Placement::Replace => true,
            Placement::Commit => false,
        };
        // The intent is on disk before the rename: a run that finds it knows whether the
        // tree under the release's name is the one verified here.
        let (dev, ino) = staging
            .identity()
            .map_err(io_err("cannot inspect staging directory", staging.path()))?;
        let dir = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| req.version.to_string());
        state.begin_install(Installing {
            version: req.version.clone(),
            sha256: sha256.clone(),
            source: location.clone(),
            dir,
            dev,
            ino,
        });
        if let Err(e) = self.save_state(state).await {
            fsutil::blocking(move || drop(staging)).await;
            return Err(e);
        }
        failpoint::hit("install.intent");
        let to = dest.clone();
        fsutil::blocking(move || {
            if replaced {
                staging
                    .exchange(&to)
                    .map_err(io_err("cannot replace release", &to))
            } else {
                staging
                    .commit(&to)
                    .map_err(io_err("cannot move staged release into place", &to))
            }
        })
        .await?;
        failpoint::hit("install.renamed");
        state.installed(&req.version, &sha256, &location);
        self.save_state(state).await?;
        failpoint::hit("install.recorded");
        info!(version = %req.version, sha256 = %sha256, bytes = size, "release installed");
        Ok(Installed {
            version: req.version,
            sha256,
            size,
            fresh: true,
            replaced,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_installed_table() {
        let a = "aa";
        let b = "bb";
        // (exists, recorded, expected, force, skip the fetch)
        let cases = [
            (true, Some(a), Some(a), false, true),
            (true, Some(a), Some(b), false, false),
            (true, Some(a), None, false, false),
            (true, None, Some(a), false, false),
            (true, None, None, false, false),
            (true, Some(a), Some(a), true, false),
            (false, Some(a), Some(a), false, false),
        ];
        for (exists, recorded, expected, force, want) in cases {
            assert_eq!(
                already_installed(exists, recorded, expected, force),
                want,
                "exists={exists} recorded={recorded:?} expected={expected:?} force={force}"
            );
        }
    }

    #[test]
    fn placement_table() {
        use Placement::*;
        let a = "aa";
        let b = "bb";
        // (exists, recorded, vouched, actual, force, placement)
        let cases = [
            (false, None, false, a, false, Commit),
            (false, Some(b), true, a, true, Commit),
            (true, Some(a), false, a, false, Reuse),
            (true, Some(a), true, a, false, Reuse),
            (true, Some(a), false, a, true, Replace),
            (true, Some(b), false, a, false, Refuse),
            (true, Some(b), true, a, false, Refuse),
            (true, Some(b), false, a, true, Replace),
            (true, None, false, a, false, Refuse),
            (true, None, true, a, false, Replace),
            (true, None, false, a, true, Replace),
        ];
        for (exists, recorded, vouched, actual, force, want) in cases {
            assert_eq!(
                placement(exists, recorded, vouched, actual, force),
                want,
                "exists={exists} recorded={recorded:?} vouched={vouched} force={force}"
            );
        }
    }
}
