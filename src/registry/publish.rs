//! Publisher operations: publish, promote, yank and audit a registry.
//!
//! Everything here talks to the registry through `&dyn Store`, so `file://` and `s3://`
//! behave identically. Write order is the crash-safety argument: artifacts, then the
//! release document, then its signature, then the channel document and its signature.
//! A crash at any point leaves every channel pointing at a complete, signed release.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Classify, ErrorClass};
use crate::registry::keys::{KeyError, SecretKey, TrustedKeys};
use crate::registry::manifest::{
    self, Artifact, ChannelDoc, Location, ManifestError, ReleaseDoc, Yanked, FORMAT_TAR_GZ,
    MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES, SCHEMA_VERSION,
};
use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::rollout::Rollout;
use crate::transport::{FetchRequest, Fetched, Store, Transport, TransportError};

/// Default validity of a channel document: long enough to survive a holiday, short
/// enough that a frozen mirror is noticed.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read artifact {path}: {source}")]
    ReadArtifact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("release {app} {version} is already published with different contents ({why}); releases are immutable: publish a new version")]
    Immutable {
        app: String,
        version: String,
        why: String,
    },
    #[error("{what} exists but {why}; run `updraft registry verify` to investigate, and pass --trusted-key OLD.pub if the signing key was rotated")]
    UntrustedExisting { what: String, why: String },
    #[error("{what} does not exist: {hint}")]
    Missing { what: String, hint: String },
    #[error("version {version} is what channel {channel} currently points at: promote another version to {channel} first, then yank {version}")]
    YankCurrent { channel: String, version: String },
    #[error("version {version} is yanked on channel {channel} ({reason}); publish a fixed version instead")]
    PromoteYanked {
        channel: String,
        version: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Who signs, and which existing signatures the publisher accepts when it builds on what
/// the registry already holds (its own key, plus old keys during a rotation).
pub struct Signer<'a> {
    pub key: &'a SecretKey,
    pub trusted: TrustedKeys,
}

impl<'a> Signer<'a> {
    pub fn new(
        key: &'a SecretKey,
        also_trusted: Vec<crate::registry::keys::PublicKey>,
    ) -> Signer<'a> {
        let mut keys = vec![key.public_key().clone()];
        keys.extend(also_trusted.into_iter().filter(|k| k != key.public_key()));
        Signer {
            key,
            trusted: TrustedKeys::new(keys),
        }
    }

    fn sign(&self, bytes: &[u8], key: &str, now: SystemTime) -> Result<String, KeyError> {
        let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.key.sign(bytes, &format!("timestamp:{ts}\tfile:{key}"))
    }
}

pub struct PublishRequest {
    pub app: AppName,
    pub version: Version,
    pub artifacts: Vec<(Target, PathBuf)>,
    pub channel: Option<Channel>,
    pub notes: Option<String>,
    pub rollout: Option<Rollout>,
    pub expires_in: Duration,
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

/// sha256 and size of a local file, in one pass.
fn hash_file(path: &Path) -> Result<(String, u64), PublishError> {
    let err = |source| PublishError::ReadArtifact {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
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

async fn get_text(
    store: &dyn Store,
    key: &str,
    limit: u64,
) -> Result<Option<String>, PublishError> {
    match store.get(key, limit).await? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| PublishError::UntrustedExisting {
                what: key.to_string(),
                why: "is not UTF-8 text".into(),
            }),
    }
}

/// A document the registry holds, with its signature checked against the signer's
/// trusted keys (never against what the document itself claims).
async fn load_signed(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
) -> Result<Option<(Vec<u8>, Option<String>)>, PublishError> {
    Ok(load_signed_tagged(store, signer, key)
        .await?
        .map(|(bytes, sig, _)| (bytes, sig)))
}

/// [`load_signed`], with the document's ETag for a conditional rewrite.
async fn load_signed_tagged(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
) -> Result<Option<(Vec<u8>, Option<String>, Option<String>)>, PublishError> {
    let Some((bytes, etag)) = store.get_tagged(key, MAX_DOCUMENT_BYTES).await? else {
        return Ok(None);
    };
    let sig_key = manifest::sig_key(key);
    let sig = get_text(store, &sig_key, MAX_SIGNATURE_BYTES).await?;
    if let Some(sig) = &sig {
        signer
            .trusted
            .verify(&bytes, sig, key)
            .map_err(|e| PublishError::UntrustedExisting {
                what: key.to_string(),
                why: e.to_string(),
            })?;
    }
    Ok(Some((bytes, sig, etag)))
}

async fn put_signed(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
    bytes: Vec<u8>,
    now: SystemTime,
    prior: Prior,
) -> Result<(), PublishError> {
    let sig = signer.sign(&bytes, key, now)?;
    // Document first, signature last: a signature file's presence means its document
    // is complete (readers racing a rewrite re-fetch both; see the spec). The document
    // only if nobody changed it since it was read.
    let mut tries = 0;
    loop {
        tries += 1;
        let written = match &prior {
            Prior::Absent => store.put_if_unchanged(key, bytes.clone(), None).await,
            Prior::Tagged(etag) => store.put_if_unchanged(key, bytes.clone(), Some(etag)).await,
            Prior::Untagged => store.put(key, bytes.clone()).await,
        };
        match written {
            Ok(()) => break,
            Err(TransportError::Conflict { location }) => {
                // A transport retry of a write that had in fact succeeded meets our own
                // document; a 409 for a concurrent upload that was then abandoned leaves
                // nothing. Only someone else's document is a lost race.
                match store.get(key, MAX_DOCUMENT_BYTES).await? {
                    Some(now_there) if now_there == bytes => break,
                    None if tries < 3 => continue,
                    _ => return Err(TransportError::Conflict { location }.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.put(&manifest::sig_key(key), sig.into_bytes()).await?;
    Ok(())
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
    for (target, path) in &req.artifacts {
        let path2 = path.clone();
        let (sha, size) = tokio::task::spawn_blocking(move || hash_file(&path2))
            .await
            .map_err(|e| PublishError::Invalid(e.to_string()))??;
        if size == 0 {
            return Err(PublishError::Invalid(format!(
                "artifact {} is empty",
                path.display()
            )));
        }
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
        artifacts.insert(
            target.clone(),
            Artifact {
                url,
                sha256: sha.clone(),
                size: *size,
                format: FORMAT_TAR_GZ.to_string(),
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
            };
            match put_signed(store, signer, &rkey, doc.to_bytes(), now, Prior::Absent).await {
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

/// The channel document as the registry holds it now, verified by the signer's keys
/// (expiry is not checked: re-signing an expired channel is how it is revived).
pub async fn current_channel(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
) -> Result<Option<ChannelDoc>, PublishError> {
    Ok(current_channel_tagged(store, signer, app, channel)
        .await?
        .map(|(doc, _)| doc))
}

/// What a channel document's rewrite must find in its place.
enum Prior {
    Absent,
    Tagged(String),
    /// The store gave no ETag: the write cannot be conditional.
    Untagged,
}

async fn current_channel_tagged(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
) -> Result<Option<(ChannelDoc, Prior)>, PublishError> {
    let key = manifest::channel_key(app, channel);
    let Some((bytes, sig, etag)) = load_signed_tagged(store, signer, &key).await? else {
        return Ok(None);
    };
    if sig.is_none() {
        return Err(PublishError::UntrustedExisting {
            what: key,
            why: "has no .minisig signature".into(),
        });
    }
    let doc = manifest::parse_channel(&bytes, &key)?;
    if &doc.app != app || &doc.channel != channel {
        return Err(PublishError::UntrustedExisting {
            what: key,
            why: format!("is signed for {}/{}", doc.app, doc.channel),
        });
    }
    Ok(Some((doc, etag.map_or(Prior::Untagged, Prior::Tagged))))
}

/// How many times a channel change starts over after losing a race to another
/// publisher before giving up.
const CHANNEL_CHANGE_ATTEMPTS: u32 = 6;

/// Read-modify-write of one channel document: `change` makes the next document from
/// the current one (pure), and it is written only if the channel is still as read
/// (a `file://` lock, or an S3 conditional write). On a lost race it starts over from
/// the winner's document, so a concurrent yank is never lost to a promotion.
async fn change_channel(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
    now: SystemTime,
    mut change: impl FnMut(Option<ChannelDoc>) -> Result<ChannelDoc, PublishError>,
) -> Result<ChannelDoc, PublishError> {
    let key = manifest::channel_key(app, channel);
    let mut lost = 0u32;
    loop {
        let _lock = store.lock_for_update(&key).await?;
        let current = match current_channel_tagged(store, signer, app, channel).await {
            Ok(c) => c,
            // Just after a lost race, the winner may not have written its signature yet.
            Err(PublishError::UntrustedExisting { .. })
                if lost > 0 && lost < CHANNEL_CHANGE_ATTEMPTS =>
            {
                lost += 1;
                race_pause(lost).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (doc, prior) = match current {
            Some((doc, prior)) => (Some(doc), prior),
            None => (None, Prior::Absent),
        };
        let next = change(doc)?;
        match write_channel(store, signer, &next, now, prior).await {
            Err(PublishError::Transport(TransportError::Conflict { .. }))
                if lost + 1 < CHANNEL_CHANGE_ATTEMPTS =>
            {
                lost += 1;
                tracing::warn!(%key, "another publisher changed the channel first: starting over from its version");
                race_pause(lost).await;
            }
            Err(PublishError::Transport(TransportError::Conflict { location })) => {
                return Err(PublishError::Invalid(format!(
                    "{location} kept changing under this command ({lost} tries): another publisher is changing channel {channel}; run this again when it is done"
                )))
            }
            Err(e) => return Err(e),
            Ok(()) => return Ok(next),
        }
    }
}

/// A short, growing, jittered pause between attempts of racing publishers.
async fn race_pause(attempt: u32) {
    let ms = 100 * u64::from(attempt) + fastrand::u64(0..100);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

struct ChannelUpdate<'a> {
    app: &'a AppName,
    channel: &'a Channel,
    version: &'a Version,
    rollout: Option<Rollout>,
    notes: Option<String>,
    expires_in: Duration,
}

/// Write a new channel document pointing at an existing, signed release; the sequence is
/// one more than the current document's and the yanked list is carried over.
async fn set_channel(
    store: &dyn Store,
    signer: &Signer<'_>,
    u: ChannelUpdate<'_>,
    now: SystemTime,
) -> Result<ChannelDoc, PublishError> {
    let rkey = manifest::release_key(u.app, u.version);
    let (rbytes, rsig) =
        load_signed(store, signer, &rkey)
            .await?
            .ok_or_else(|| PublishError::Missing {
                what: rkey.clone(),
                hint: format!("publish {} {} first (`updraft publish`)", u.app, u.version),
            })?;
    let rsig = rsig.ok_or_else(|| PublishError::UntrustedExisting {
        what: rkey.clone(),
        why: "has no .minisig signature (re-run the same `updraft publish` to finish it)".into(),
    })?;
    manifest::verify_release(&rbytes, &rsig, &signer.trusted, u.app, u.version)?;

    change_channel(store, signer, u.app, u.channel, now, |current| {
        let (sequence, yanked) = match current {
            Some(c) => (c.sequence + 1, c.yanked),
            None => (1, Vec::new()),
        };
        if let Some(y) = yanked.iter().find(|y| &y.version == u.version) {
            return Err(PublishError::PromoteYanked {
                channel: u.channel.to_string(),
                version: u.version.to_string(),
                reason: y.reason.clone(),
            });
        }
        Ok(ChannelDoc {
            schema_version: SCHEMA_VERSION,
            kind: "channel".into(),
            app: u.app.clone(),
            channel: u.channel.clone(),
            version: u.version.clone(),
            sequence,
            issued: crate::time::format_time(now),
            expires: crate::time::format_time(now + u.expires_in),
            rollout: u.rollout.clone(),
            yanked,
            notes: u.notes.clone(),
        })
    })
    .await
}

async fn write_channel(
    store: &dyn Store,
    signer: &Signer<'_>,
    doc: &ChannelDoc,
    now: SystemTime,
    prior: Prior,
) -> Result<(), PublishError> {
    let key = manifest::channel_key(&doc.app, &doc.channel);
    let bytes = doc.to_bytes();
    // Never write what an agent would refuse.
    manifest::parse_channel(&bytes, &key)?;
    put_signed(store, signer, &key, bytes, now, prior).await
}

/// Which release a promotion points the channel at.
pub enum PromoteSource {
    Version(Version),
    Channel(Channel),
}

pub struct PromoteRequest {
    pub app: AppName,
    pub source: PromoteSource,
    pub channel: Channel,
    pub rollout: Option<Rollout>,
    pub notes: Option<String>,
    pub expires_in: Duration,
}

/// Point a channel at an existing release: a new, re-signed channel document. Artifacts
/// are never copied or rebuilt, so what was tested on one channel is byte-for-byte what
/// the next one runs.
pub async fn promote(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: PromoteRequest,
    now: SystemTime,
) -> Result<ChannelDoc, PublishError> {
    let version = match req.source {
        PromoteSource::Version(v) => v,
        PromoteSource::Channel(from) => {
            current_channel(store, signer, &req.app, &from)
                .await?
                .ok_or_else(|| PublishError::Missing {
                    what: manifest::channel_key(&req.app, &from),
                    hint: format!("nothing was published to channel {from} yet"),
                })?
                .version
        }
    };
    set_channel(
        store,
        signer,
        ChannelUpdate {
            app: &req.app,
            channel: &req.channel,
            version: &version,
            rollout: req.rollout,
            notes: req.notes,
            expires_in: req.expires_in,
        },
        now,
    )
    .await
}

pub struct YankRequest {
    pub app: AppName,
    pub channel: Channel,
    pub version: Version,
    pub reason: Option<String>,
    pub expires_in: Duration,
}

/// Add a version to a channel's signed yanked list. Refuses the version the channel
/// points at: agents would be left with nothing valid to run.
pub async fn yank(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: YankRequest,
    now: SystemTime,
) -> Result<ChannelDoc, PublishError> {
    let rkey = manifest::release_key(&req.app, &req.version);
    if store.get(&rkey, MAX_DOCUMENT_BYTES).await?.is_none() {
        return Err(PublishError::Missing {
            what: rkey,
            hint: format!(
                "no release {} {} was published (typo?)",
                req.app, req.version
            ),
        });
    }
    let reason = req
        .reason
        .unwrap_or_else(|| "yanked by the publisher".to_string());
    change_channel(store, signer, &req.app, &req.channel, now, |current| {
        let mut doc = current.ok_or_else(|| PublishError::Missing {
            what: manifest::channel_key(&req.app, &req.channel),
            hint: "nothing to yank from: the channel was never published".into(),
        })?;
        if doc.version == req.version {
            return Err(PublishError::YankCurrent {
                channel: req.channel.to_string(),
                version: req.version.to_string(),
            });
        }
        match doc.yanked.iter_mut().find(|y| y.version == req.version) {
            Some(y) => y.reason = reason.clone(),
            None => doc.yanked.push(Yanked {
                version: req.version.clone(),
                reason: reason.clone(),
            }),
        }
        doc.yanked.sort_by(|a, b| a.version.cmp(&b.version));
        doc.sequence += 1;
        doc.issued = crate::time::format_time(now);
        doc.expires = crate::time::format_time(now + req.expires_in);
        Ok(doc)
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditStatus {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct AuditItem {
    pub key: String,
    pub status: AuditStatus,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub app: AppName,
    pub ok: bool,
    pub checked: usize,
    pub failures: usize,
    pub warnings: usize,
    pub items: Vec<AuditItem>,
}

/// Check every signature, checksum and size under `<app>/`: what an agent would check,
/// for every channel and release at once.
pub async fn audit(
    store: &dyn Store,
    app: &AppName,
    keys: &TrustedKeys,
    now: SystemTime,
) -> Result<AuditReport, PublishError> {
    let prefix = format!("{app}/");
    let all = store.list(&prefix).await?;
    let mut items = Vec::new();
    let mut explained: BTreeSet<String> = BTreeSet::new();
    let push = |items: &mut Vec<AuditItem>, key: &str, status, detail: String| {
        items.push(AuditItem {
            key: key.to_string(),
            status,
            detail,
        })
    };
    let mut released: BTreeSet<Version> = BTreeSet::new();

    for key in &all {
        let Some(rest) = key.strip_prefix(&format!("{prefix}releases/")) else {
            continue;
        };
        let Some(vstr) = rest.strip_suffix("/release.json") else {
            continue;
        };
        explained.insert(key.clone());
        explained.insert(manifest::sig_key(key));
        let version: Version = match vstr.parse() {
            Ok(v) => v,
            Err(e) => {
                push(&mut items, key, AuditStatus::Fail, e.to_string());
                continue;
            }
        };
        let doc = match check_doc(store, key, |b, s| {
            manifest::verify_release(b, s, keys, app, &version)
        })
        .await
        {
            Ok(d) => d,
            Err(msg) => {
                push(&mut items, key, AuditStatus::Fail, msg);
                continue;
            }
        };
        released.insert(version.clone());
        push(
            &mut items,
            key,
            AuditStatus::Ok,
            format!(
                "release {version}: signature ok, targets {}",
                doc.artifacts
                    .keys()
                    .map(Target::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        for target in doc.artifacts.keys() {
            let (loc, a) = match doc.artifact_location(target) {
                Ok(x) => x,
                Err(e) => {
                    push(&mut items, key, AuditStatus::Fail, e.to_string());
                    continue;
                }
            };
            match loc {
                Location::Url(u) => push(
                    &mut items,
                    &u,
                    AuditStatus::Warn,
                    format!("{target}: external URL, not checked by this audit"),
                ),
                Location::Key(akey) => {
                    explained.insert(akey.clone());
                    let (status, detail) = match hash_object(store, &akey, a.size).await {
                        Ok(Some((sha, size))) if sha == a.sha256 && size == a.size => (
                            AuditStatus::Ok,
                            format!("{target}: sha256 and size ({size} bytes) match"),
                        ),
                        Ok(Some((sha, size))) if size != a.size => (
                            AuditStatus::Fail,
                            format!("{target}: size {size} but release.json says {} (sha256 {sha})", a.size),
                        ),
                        Ok(Some((sha, _))) => (
                            AuditStatus::Fail,
                            format!(
                                "{target}: sha256 {sha} but release.json says {}: the artifact was modified",
                                a.sha256
                            ),
                        ),
                        Ok(None) => (AuditStatus::Fail, format!("{target}: artifact missing")),
                        Err(TransportError::TooLarge { .. }) => (
                            AuditStatus::Fail,
                            format!("{target}: larger than the signed size {}", a.size),
                        ),
                        Err(e) => (AuditStatus::Fail, e.to_string()),
                    };
                    push(&mut items, &akey, status, detail);
                }
            }
        }
    }

    for key in &all {
        let Some(rest) = key.strip_prefix(&format!("{prefix}channels/")) else {
            continue;
        };
        let Some(cstr) = rest.strip_suffix(".json") else {
            continue;
        };
        explained.insert(key.clone());
        explained.insert(manifest::sig_key(key));
        let channel: Channel = match cstr.parse() {
            Ok(c) => c,
            Err(e) => {
                push(&mut items, key, AuditStatus::Fail, e.to_string());
                continue;
            }
        };
        match check_doc(store, key, |b, s| {
            manifest::verify_channel(b, s, keys, app, &channel, 0, now)
        })
        .await
        {
            Err(msg) => push(&mut items, key, AuditStatus::Fail, msg),
            Ok(doc) if !released.contains(&doc.version) => push(
                &mut items,
                key,
                AuditStatus::Fail,
                format!(
                    "points at version {} which has no valid release document",
                    doc.version
                ),
            ),
            Ok(doc) => push(
                &mut items,
                key,
                AuditStatus::Ok,
                format!(
                    "channel {channel} -> {}: signature ok, sequence {}, expires {}{}",
                    doc.version,
                    doc.sequence,
                    doc.expires,
                    if doc.yanked.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", yanked: {}",
                            doc.yanked
                                .iter()
                                .map(|y| y.version.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            ),
        }
    }

    for key in &all {
        if !explained.contains(key) {
            let detail = if key.ends_with(manifest::SIG_SUFFIX) {
                "signature without a document".to_string()
            } else {
                "not referenced by any document".to_string()
            };
            push(&mut items, key, AuditStatus::Warn, detail);
        }
    }
    if all.is_empty() {
        push(
            &mut items,
            &prefix,
            AuditStatus::Fail,
            format!("no documents for app {app}: check --registry and --app"),
        );
    }
    let failures = items
        .iter()
        .filter(|i| i.status == AuditStatus::Fail)
        .count();
    let warnings = items
        .iter()
        .filter(|i| i.status == AuditStatus::Warn)
        .count();
    Ok(AuditReport {
        app: app.clone(),
        ok: failures == 0,
        checked: items.len(),
        failures,
        warnings,
        items,
    })
}

/// Fetch a document and its signature (within the spec's limits) and run `verify`.
async fn check_doc<T>(
    store: &dyn Store,
    key: &str,
    verify: impl Fn(&[u8], &str) -> Result<T, ManifestError>,
) -> Result<T, String> {
    let bytes = match store.get(key, MAX_DOCUMENT_BYTES).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err("missing".into()),
        Err(e) => return Err(e.to_string()),
    };
    let sig_key = manifest::sig_key(key);
    let sig = match store.get(&sig_key, MAX_SIGNATURE_BYTES).await {
        Ok(Some(s)) => String::from_utf8_lossy(&s).into_owned(),
        Ok(None) => return Err(format!("signature {sig_key} is missing")),
        Err(e) => return Err(e.to_string()),
    };
    verify(&bytes, &sig).map_err(|e| e.to_string())
}

impl Classify for PublishError {
    fn class(&self) -> ErrorClass {
        match self {
            PublishError::Transport(t) => t.class(),
            PublishError::Manifest(m) => m.class(),
            PublishError::Key(k) => k.class(),
            _ => ErrorClass::Other,
        }
    }
}
