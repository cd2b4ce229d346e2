//! Publishing a release: artifacts, then the release document, then its signature.
//!
//! Everything here talks to the registry through `&dyn Store`, so `file://` and `s3://`
//! behave identically. Write order is the crash-safety argument: artifacts, then the
//! release document, then its signature, then the channel document and its signature.
//! A crash at any point leaves every channel pointing at a complete, signed release.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::registry::channel::{set_channel, ChannelUpdate};
use crate::registry::manifest::{
    self, Artifact, BlockList, BlocksRef, ChannelDoc, Location, ReleaseDoc, BLOCKS_SUFFIX,
    BLOCK_SIZE, FORMAT_TAR_GZ, SCHEMA_VERSION,
};
use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::rollout::Rollout;
use crate::registry::signed::{load_signed, put_signed, Prior, PublishError, Signer};
use crate::transport::{FetchRequest, Fetched, Store, Transport, TransportError};

pub struct PublishRequest {
    pub app: AppName,
    pub version: Version,
    pub artifacts: Vec<(Target, PathBuf)>,
    pub channel: Option<Channel>,
    pub notes: Option<String>,
    pub rollout: Option<Rollout>,
    pub expires_in: Duration,
    /// The release's data epoch; None: that of the release `channel` points at now,
    /// else 0.
    pub data_epoch: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ArtifactReport {
    pub target: Target,
    pub key: String,
    pub sha256: String,
    pub size: u64,
    /// False when the registry already held these exact bytes.
    pub uploaded: bool,
}

#[derive(Debug, Serialize)]
pub struct PublishReport {
    pub release: String,
    /// False when an identical release was already published (a no-op).
    pub release_written: bool,
    pub artifacts: Vec<ArtifactReport>,
    pub channel: Option<ChannelDoc>,
}

/// The default data epoch of a new release: that of the release the channel it is
/// published to runs now (data formats only move forward with intent), else 0.
async fn previous_epoch(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: &PublishRequest,
) -> Result<u64, PublishError> {
    let Some(channel) = &req.channel else {
        return Ok(0);
    };
    let Some(current) =
        crate::registry::channel::current_channel(store, signer, &req.app, channel).await?
    else {
        return Ok(0);
    };
    let key = manifest::release_key(&req.app, &current.version);
    match load_signed(store, signer, &key).await? {
        Some((bytes, _)) => Ok(manifest::parse_release(&bytes, &key)?.data_epoch),
        None => Ok(0),
    }
}

/// sha256, size and block list of a local file, in one pass.
fn hash_file(path: &Path) -> Result<(BlockList, String, u64), PublishError> {
    let f = std::fs::File::open(path).map_err(|source| PublishError::ReadArtifact {
        path: path.to_path_buf(),
        source,
    })?;
    BlockList::compute(std::io::BufReader::with_capacity(256 * 1024, f), BLOCK_SIZE).map_err(
        |source| PublishError::ReadArtifact {
            path: path.to_path_buf(),
            source,
        },
    )
}

/// sha256 and size of a registry object, streamed (artifacts can be gigabytes).
/// `None` if it does not exist.
pub async fn hash_object(
    t: &dyn Transport,
    key: &str,
    limit: u64,
) -> Result<Option<(String, u64)>, TransportError> {
    let req = FetchRequest::whole(key, limit);
    let mut body = match t.fetch(&req).await {
        Ok(Fetched::Body(b)) => b,
        Ok(Fetched::NotModified) => {
            return Err(TransportError::Io {
                location: t.location(key),
                message: "answered Not Modified to an unconditional request".into(),
                source: None,
            })
        }
        Err(TransportError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut h = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(TransportError::TooLarge {
                location: t.location(key),
                limit,
            });
        }
        h.update(&chunk);
    }
    Ok(Some((hex::encode(h.finalize()), size)))
}

/// Create an artifact that is not in the store yet: `Some(true)` uploaded, `Some(false)`
/// another publisher created it with the same bytes meanwhile, `None` with other bytes.
async fn create_artifact(
    store: &dyn Store,
    key: &str,
    path: &std::path::Path,
    sha: &str,
    size: u64,
) -> Result<Option<bool>, PublishError> {
    for _ in 0..3 {
        match store.put_file_if_absent(key, path).await {
            Ok(()) => return Ok(Some(true)),
            Err(TransportError::Conflict { .. }) => {
                match hash_object(store, key, size.saturating_add(1)).await? {
                    Some((their_sha, their_size)) => {
                        return Ok((their_sha == sha && their_size == size).then_some(false))
                    }
                    // A 409 for a concurrent upload that was then abandoned: try again.
                    None => continue,
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(TransportError::Conflict {
        location: store.location(key),
    }
    .into())
}

/// Upload a new release (artifacts, then its signed document) and optionally point a
/// channel at it. Re-publishing identical bytes is a no-op; different bytes are refused.
pub async fn publish(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: &PublishRequest,
    now: SystemTime,
) -> Result<PublishReport, PublishError> {
    if req.artifacts.is_empty() {
        return Err(PublishError::Invalid("no --artifact given".into()));
    }
    let mut local: BTreeMap<Target, (PathBuf, String, u64)> = BTreeMap::new();
    let mut block_lists: BTreeMap<Target, BlockList> = BTreeMap::new();
    for (target, path) in &req.artifacts {
        let path2 = path.clone();
        let (blocks, sha, size) = tokio::task::spawn_blocking(move || hash_file(&path2))
            .await
            .map_err(|source| PublishError::Hashing {
                path: path.clone(),
                source,
            })??;
        if size == 0 {
            return Err(PublishError::Invalid(format!(
                "artifact {} is empty",
                path.display()
            )));
        }
        block_lists.insert(target.clone(), blocks);
        if local
            .insert(target.clone(), (path.clone(), sha, size))
            .is_some()
        {
            return Err(PublishError::Invalid(format!(
                "target {target} given twice: pass one --artifact per --target"
            )));
        }
    }
    let rkey = manifest::release_key(&req.app, &req.version);
    // Two publishers of one version must not interleave (file://; S3 writes below are
    // conditional instead).
    let _lock = store.lock_for_update(&rkey).await?;
    let existing = load_signed(store, signer, &rkey).await?;
    let existing_doc = match &existing {
        Some((bytes, _)) => {
            let doc = manifest::parse_release(bytes, &rkey)?;
            let same = doc.artifacts.len() == local.len()
                && local.iter().all(|(t, (_, sha, size))| {
                    doc.artifacts
                        .get(t)
                        .is_some_and(|a| &a.sha256 == sha && a.size == *size)
                });
            if let Some(epoch) = req.data_epoch.filter(|e| *e != doc.data_epoch) {
                return Err(PublishError::Immutable {
                    app: req.app.to_string(),
                    version: req.version.to_string(),
                    why: format!(
                        "it is published with data epoch {}, not {epoch}",
                        doc.data_epoch
                    ),
                });
            }
            if !same {
                let theirs: Vec<String> = doc
                    .artifacts
                    .iter()
                    .map(|(t, a)| format!("{t} sha256 {}", a.sha256))
                    .collect();
                return Err(PublishError::Immutable {
                    app: req.app.to_string(),
                    version: req.version.to_string(),
                    why: format!("the registry has {}", theirs.join(", ")),
                });
            }
            Some(doc)
        }
        None => None,
    };

    let mut artifacts = BTreeMap::new();
    let mut reports = Vec::new();
    for (target, (path, sha, size)) in &local {
        let (key, url) = match existing_doc
            .as_ref()
            .map(|d| d.artifact_location(target))
            .transpose()?
        {
            Some((Location::Key(k), a)) => (Some(k), a.url.clone()),
            Some((Location::Url(_), a)) => (None, a.url.clone()),
            None => {
                let name = manifest::artifact_file_name(&req.app, &req.version, target);
                (
                    Some(format!(
                        "{}{name}",
                        manifest::release_dir_key(&req.app, &req.version)
                    )),
                    name,
                )
            }
        };
        let mut uploaded = false;
        if let Some(key) = &key {
            match hash_object(store, key, size.saturating_add(1)).await {
                Ok(Some((their_sha, their_size))) => {
                    if &their_sha != sha || their_size != *size {
                        return Err(PublishError::Immutable {
                            app: req.app.to_string(),
                            version: req.version.to_string(),
                            why: format!(
                                "{} holds sha256 {their_sha} ({their_size} bytes), {} has {sha} ({size} bytes)",
                                store.location(key),
                                path.display()
                            ),
                        });
                    }
                }
                Ok(None) => {
                    uploaded = create_artifact(store, key, path, sha, *size)
                        .await?
                        .ok_or_else(|| PublishError::Immutable {
                            app: req.app.to_string(),
                            version: req.version.to_string(),
                            why: format!(
                                "another publisher uploaded different bytes to {} at the same time",
                                store.location(key)
                            ),
                        })?;
                }
                Err(TransportError::TooLarge { .. }) => {
                    return Err(PublishError::Immutable {
                        app: req.app.to_string(),
                        version: req.version.to_string(),
                        why: format!("{} is larger than {}", store.location(key), path.display()),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A new release gets a block list next to its artifact, written before the
        // document that vouches for it; a published one stays as it was signed.
        let blocks = match (&key, &existing_doc, block_lists.get(target)) {
            (Some(key), None, Some(list)) => {
                let bytes = list.to_bytes()?;
                let reference = BlocksRef {
                    url: format!("{url}{BLOCKS_SUFFIX}"),
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    size: bytes.len() as u64,
                };
                store.put(&format!("{key}{BLOCKS_SUFFIX}"), bytes).await?;
                Some(reference)
            }
            _ => existing_doc
                .as_ref()
                .and_then(|d| d.artifacts.get(target))
                .and_then(|a| a.blocks.clone()),
        };
        artifacts.insert(
            target.clone(),
            Artifact {
                url,
                sha256: sha.clone(),
                size: *size,
                format: FORMAT_TAR_GZ.to_string(),
                blocks,
            },
        );
        reports.push(ArtifactReport {
            target: target.clone(),
            key: key.unwrap_or_default(),
            sha256: sha.clone(),
            size: *size,
            uploaded,
        });
    }

    let release_written = match existing {
        Some((_, Some(_))) => false,
        Some((bytes, None)) => {
            // An earlier publish stopped between the document and its signature: sign
            // the bytes already there (they match our artifacts, checked above).
            let sig = signer.sign(&bytes, &rkey, now)?;
            store
                .put(&manifest::sig_key(&rkey), sig.into_bytes())
                .await?;
            true
        }
        None => {
            let doc = ReleaseDoc {
                schema_version: SCHEMA_VERSION,
                kind: "release".into(),
                app: req.app.clone(),
                version: req.version.clone(),
                issued: crate::time::format_time(now),
                artifacts,
                notes: req.notes.clone(),
                data_epoch: match req.data_epoch {
                    Some(n) => n,
                    None => previous_epoch(store, signer, req).await?,
                },
            };
            match put_signed(store, signer, &rkey, doc.to_bytes()?, now, Prior::Absent).await {
                Ok(()) => true,
                // Another publisher created the release meanwhile: fine if it lists
                // exactly our artifacts (re-runs of one reproducible build), else refused.
                Err(PublishError::Transport(TransportError::Conflict { .. })) => {
                    let theirs = load_signed(store, signer, &rkey).await?;
                    let same = theirs.as_ref().is_some_and(|(b, _)| {
                        manifest::parse_release(b, &rkey)
                            .is_ok_and(|t| t.artifacts == doc.artifacts)
                    });
                    match theirs {
                        Some((_, Some(_))) if same => false,
                        // Theirs, unsigned yet (or its publisher died before signing):
                        // the bytes are what we would have written, so sign them.
                        Some((bytes, None)) if same => {
                            let sig = signer.sign(&bytes, &rkey, now)?;
                            store
                                .put(&manifest::sig_key(&rkey), sig.into_bytes())
                                .await?;
                            true
                        }
                        _ => {
                            return Err(PublishError::Immutable {
                                app: req.app.to_string(),
                                version: req.version.to_string(),
                                why: "another publisher published it at the same time with different artifacts".into(),
                            })
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };

    let channel = match &req.channel {
        Some(c) => Some(
            set_channel(
                store,
                signer,
                ChannelUpdate {
                    app: &req.app,
                    channel: c,
                    version: &req.version,
                    rollout: req.rollout.clone(),
                    notes: None,
                    expires_in: req.expires_in,
                },
                now,
            )
            .await?,
        ),
        None => None,
    };
    Ok(PublishReport {
        release: rkey,
        release_written,
        artifacts: reports,
        channel,
    })
}
