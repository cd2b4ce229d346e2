//! The pull agent: poll the channel, verify, decide, apply through the deploy pipeline.
//!
//! One poll is: conditional GET of the channel document (an unchanged channel costs a
//! 304), signature and freshness checks, a pure decision, and, if an update is due, the
//! release document and the artifact streamed into the store. Every rejection is
//! recorded with its reason and leaves the machine as it is.

pub mod channel_info;
pub mod decide;
mod feedback;
pub mod machine;
pub mod machine_state;
pub mod metrics;
pub mod report;
pub mod trust;

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tracing::{info, warn};

use crate::activate::{DeployError, InstallRequest, Kind, Pipeline};
use crate::config::Config;
use crate::disk::history::Event;
use crate::disk::layout::AppRoot;
use crate::disk::state::{ChannelSeen, State};
use crate::error::{Classify, ErrorClass};
use crate::registry::keyring::{self, KeyringError, Roots};
use crate::registry::keys::{KeyError, PublicKey, TrustedKeys};
use crate::registry::manifest::{self, ChannelDoc, Location, ManifestError, ReleaseDoc};
use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::rollout::{self, Rollout};
use crate::time::Timestamp;
use crate::transport::http::HttpRegistry;
use crate::transport::retry::{self, Document, RetryPolicy};
use crate::transport::source::Source;
use crate::transport::{self, FetchRequest, Transport, TransportError};
use crate::window::{self, WindowState};
use decide::Decision;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("config: `{0}` is required for the agent (see README \"Configuration\")")]
    Missing(&'static str),
    #[error("config: no trusted public keys: set `public_keys` or `public_key_files`, or `root_keys` for a registry with a keys document")]
    NoKeys,
    #[error("config: `root_keys` and `public_keys`/`public_key_files` are both set: with root keys, the registry's signed keys document says which publisher keys to trust (so a revoked key stops being trusted everywhere); remove `public_keys` and `public_key_files`")]
    BothKeys,
    #[error("config: {0}")]
    BadRoots(#[source] crate::registry::keyring::KeyringError),
    #[error(transparent)]
    Keys(#[from] crate::registry::keyring::KeyringError),
    /// `what` names the `public_keys` entry or the `public_key_files` file.
    #[error("config: {what}: {source}")]
    BadKey {
        what: String,
        #[source]
        source: crate::registry::keys::KeyError,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("release {version} has no artifact for target {target} (it has: {available}); set `target` in the config if this machine should use another")]
    NoArtifact {
        version: Version,
        target: Target,
        available: String,
    },
    #[error("cannot read machine id: {0}")]
    MachineId(#[source] std::io::Error),
    /// A pinned version failed to activate: the pin is gone, so the machine follows its
    /// channel again instead of retrying (or standing still) on every poll.
    #[error("switching to the pinned {version} failed, so the pin was cleared (this machine follows its channel again; `updraft pin {version}` to try again): {source}")]
    PinCleared {
        version: Version,
        #[source]
        source: Box<DeployError>,
    },
}

impl Classify for AgentError {
    fn class(&self) -> ErrorClass {
        match self {
            AgentError::Missing(_)
            | AgentError::NoKeys
            | AgentError::BothKeys
            | AgentError::BadRoots(_)
            | AgentError::BadKey { .. } => ErrorClass::Usage,
            AgentError::Keys(k) => k.class(),
            AgentError::Manifest(_) => ErrorClass::Verify,
            // Spec §9 step 8: a release without this machine's target is "not found".
            AgentError::NoArtifact { .. } => ErrorClass::NotFound,
            AgentError::Deploy(d) => d.class(),
            AgentError::PinCleared { source, .. } => source.class(),
            AgentError::Transport(t) => t.class(),
            _ => ErrorClass::Other,
        }
    }
}

/// Versions of the keys document one poll walks forward at most; the rest next poll.
const MAX_KEYS_STEPS: u64 = 64;

/// `check`'s decision when the channel's release has no artifact for this target.
pub const NO_ARTIFACT_FOR_TARGET: &str = "no-artifact-for-target";

/// Everything a poll needs, resolved once from the config.
pub struct Agent {
    pub root: AppRoot,
    pub config: Config,
    pub app: AppName,
    pub channel: Channel,
    pub target: Target,
    /// The publisher keys documents must be signed by: from the config, or from the
    /// keys document when `root_keys` are pinned (refreshed on every poll).
    keys: std::sync::RwLock<TrustedKeys>,
    /// The pinned root keys, when the registry's keys document decides the keys.
    roots: Option<trust::Pinned>,
    pub transport: Arc<dyn Transport>,
    pub machine_id: String,
    pub policy: RetryPolicy,
}

/// What the channel says, verified.
#[derive(Debug, Clone)]
pub struct ChannelView {
    pub doc: ChannelDoc,
    /// True when the registry said nothing changed (304, or the same ETag again).
    pub unchanged: bool,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub bytes: Vec<u8>,
    pub signature: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub app: String,
    pub current: Option<Version>,
    pub available: Version,
    pub sequence: u64,
    /// When the channel document expires (RFC 3339).
    pub expires_at: String,
    pub unchanged: bool,
    pub decision: String,
    pub explanation: String,
    pub update_available: bool,
    /// Where this machine stands once this poll's decision is taken into account.
    pub state: machine_state::MachineState,
}

impl Agent {
    pub fn from_config(root: AppRoot, config: &Config) -> Result<Agent, AgentError> {
        let app = config.app.clone().ok_or(AgentError::Missing("app"))?;
        let channel = config
            .channel
            .clone()
            .ok_or(AgentError::Missing("channel"))?;
        let registry = config
            .registry
            .clone()
            .ok_or(AgentError::Missing("registry"))?;
        let mut keys = Vec::new();
        let n = config.public_keys.len();
        for (i, k) in config.public_keys.iter().enumerate() {
            // Named by position, never quoted: a secret key pasted by mistake must not
            // end up in logs.
            keys.push(
                PublicKey::from_base64_line(k).map_err(|source| AgentError::BadKey {
                    what: format!("public_keys entry {} of {n}", i + 1),
                    source,
                })?,
            );
        }
        for f in &config.public_key_files {
            keys.push(
                PublicKey::from_file(f).map_err(|source| AgentError::BadKey {
                    what: f.display().to_string(),
                    source,
                })?,
            );
        }
        let roots = if config.root_keys.is_empty() {
            None
        } else {
            if !keys.is_empty() {
                return Err(AgentError::BothKeys);
            }
            let n = config.root_keys.len();
            let mut parsed = Vec::new();
            for (i, k) in config.root_keys.iter().enumerate() {
                parsed.push(PublicKey::from_base64_line(k).map_err(|source| {
                    AgentError::BadKey {
                        what: format!("root_keys entry {} of {n}", i + 1),
                        source,
                    }
                })?);
            }
            let roots = Roots::new(parsed, config.root_threshold, "root_keys")
                .map_err(AgentError::BadRoots)?;
            let pinned = trust::Pinned {
                roots,
                lines: config.root_keys.clone(),
                threshold: config.root_threshold,
            };
            // Offline commands (`why`) use the version accepted last.
            if let Some(doc) = trust::load(&trust::accepted_path(&root), &pinned) {
                if let Ok(k) = doc.publisher_keys("the accepted keys document") {
                    keys = k.keys().to_vec();
                }
            }
            Some(pinned)
        };
        if keys.is_empty() && roots.is_none() {
            return Err(AgentError::NoKeys);
        }
        let opts = config.transport_options();
        let transport: Arc<dyn Transport> = Arc::from(transport::open(&registry, &opts)?);
        let machine_id = machine::machine_id(
            config.machine_id.as_deref(),
            config.machine_id_file.as_deref(),
        )
        .map_err(AgentError::MachineId)?;
        Ok(Agent {
            root,
            app,
            channel,
            target: config.target.clone().unwrap_or_else(Target::host),
            keys: std::sync::RwLock::new(TrustedKeys::new(keys)),
            roots,
            transport,
            machine_id,
            policy: RetryPolicy::from_timeouts(&config.timeouts),
            config: config.clone(),
        })
    }

    /// The publisher keys documents must be signed by, as of the last refresh.
    pub fn keys(&self) -> TrustedKeys {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many root keys the config pins and their threshold, when it pins any.
    pub fn pinned_roots(&self) -> Option<(usize, u32)> {
        self.roots
            .as_ref()
            .map(|p| (p.roots.keys().len(), p.roots.threshold()))
    }

    /// A small object, or None when the registry does not have it.
    async fn fetch_optional(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, AgentError> {
        match self.fetch_small(key, limit).await {
            Ok(b) => Ok(Some(b)),
            Err(AgentError::Transport(TransportError::NotFound { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// With pinned root keys: fetch the keys document, walk forward from the version
    /// accepted last (each version checked against the root keys of the one before),
    /// refuse an older or expired one, remember the result, and trust its publisher
    /// keys. Without root keys: nothing to do, the config's keys are the keys.
    pub async fn refresh_keys(&self) -> Result<(), AgentError> {
        let Some(pinned) = &self.roots else {
            return Ok(());
        };
        let path = trust::accepted_path(&self.root);
        let accepted = {
            let (path, pinned) = (path.clone(), pinned.clone());
            crate::fsutil::blocking(move || trust::load(&path, &pinned)).await
        };
        let (mut roots, known) = match &accepted {
            Some(d) => (d.roots(&path.display().to_string())?, d.version),
            None => (pinned.roots.clone(), 0),
        };
        let key = keyring::keys_key(&self.app);
        let what = self.transport.location(&key);
        let Some(bytes) = self.fetch_optional(&key, self.limit()).await? else {
            return Err(KeyringError::NoKeysDocument { what }.into());
        };
        let sigs = self
            .fetch_optional(&manifest::sig_key(&key), keyring::MAX_KEYS_SIGNATURE_BYTES)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let adopted = match keyring::verify_keys_doc(&bytes, &sigs, &roots, &self.app, known, &what)
        {
            Ok(doc) => (doc, bytes, sigs),
            Err(e @ KeyringError::Rollback { .. }) => return Err(e.into()),
            // Not signed by the roots we know: they were rotated since. Walk the
            // history forward, one version at a time.
            Err(first) => {
                let mut last = None;
                for n in known + 1..=known + MAX_KEYS_STEPS {
                    let vkey = keyring::keys_version_key(&self.app, n);
                    let vwhat = self.transport.location(&vkey);
                    let Some(b) = self.fetch_optional(&vkey, self.limit()).await? else {
                        break;
                    };
                    let s = self
                        .fetch_optional(
                            &manifest::sig_key(&vkey),
                            keyring::MAX_KEYS_SIGNATURE_BYTES,
                        )
                        .await?
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let doc = keyring::verify_keys_doc(&b, &s, &roots, &self.app, n, &vwhat)?;
                    if doc.version != n {
                        return Err(KeyringError::VersionGap {
                            what: vwhat,
                            expected: n,
                            found: doc.version,
                        }
                        .into());
                    }
                    roots = doc.roots(&vwhat)?;
                    last = Some((doc, b, s));
                }
                last.ok_or(first)?
            }
        };
        let (doc, bytes, sigs) = adopted;
        keyring::check_keys_not_expired(&doc, &what, SystemTime::now())?;
        let publisher = doc.publisher_keys(&what)?;
        if accepted.as_ref().map_or(0, |a| a.version) < doc.version {
            info!(version = doc.version, "keys document accepted");
            let (path, pinned, version) = (path.clone(), pinned.clone(), doc.version);
            crate::fsutil::blocking(move || trust::store(&path, &pinned, &bytes, &sigs, version))
                .await
                .map_err(|source| {
                    AgentError::Deploy(DeployError::Io {
                        what: "cannot remember the accepted keys document",
                        path: trust::accepted_path(&self.root),
                        source,
                    })
                })?;
        }
        match self.keys.write() {
            Ok(mut k) => *k = publisher,
            Err(poisoned) => *poisoned.into_inner() = publisher,
        }
        Ok(())
    }

    /// What the state remembers of *this* channel (a config may switch channels).
    fn seen<'s>(&self, state: &'s State) -> Option<&'s ChannelSeen> {
        state
            .channel
            .as_ref()
            .filter(|c| c.channel.as_ref() == Some(&self.channel))
    }

    fn limit(&self) -> u64 {
        self.config.limits.max_document_bytes
    }

    /// The signature of the document at `doc_key`, as text.
    async fn fetch_signature(&self, doc_key: &str) -> Result<String, AgentError> {
        let key = manifest::sig_key(doc_key);
        let bytes = self
            .fetch_small(&key, manifest::MAX_SIGNATURE_BYTES)
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn fetch_small(&self, key: &str, limit: u64) -> Result<Vec<u8>, AgentError> {
        let req = FetchRequest::whole(key, limit);
        match self
            .with_timeout(
                key,
                retry::fetch_document(self.transport.as_ref(), &req, &self.policy),
            )
            .await?
        {
            Document::Fresh { bytes, .. } => Ok(bytes),
            Document::NotModified => Err(AgentError::Transport(TransportError::Status {
                location: self.transport.location(key),
                status: 304,
                detail: " to an unconditional request".into(),
            })),
        }
    }

    async fn with_timeout<T>(
        &self,
        key: &str,
        fut: impl std::future::Future<Output = Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        let after = self.config.timeouts.document.0 * (self.policy.attempts.max(1));
        tokio::time::timeout(after, fut)
            .await
            .map_err(|_| TransportError::Timeout {
                location: self.transport.location(key),
                after,
            })?
    }

    /// Fetch and verify the channel document, using the cached copy on a 304.
    pub async fn fetch_channel(&self, state: &State) -> Result<ChannelView, AgentError> {
        self.refresh_keys().await?;
        let key = manifest::channel_key(&self.app, &self.channel);
        let cached = self.seen(state).filter(|c| c.document.is_some());
        let req = FetchRequest {
            key: key.clone(),
            if_none_match: cached.and_then(|c| c.etag.clone()),
            if_modified_since: cached.and_then(|c| c.last_modified.clone()),
            limit: self.limit(),
            ..Default::default()
        };
        let min_sequence = self.seen(state).map_or(0, |c| c.sequence);
        let doc = self
            .with_timeout(
                &key,
                retry::fetch_document(self.transport.as_ref(), &req, &self.policy),
            )
            .await?;
        let (bytes, signature, etag, last_modified, unchanged) = match (doc, cached) {
            (Document::NotModified, Some(c)) => (
                c.document.clone().unwrap_or_default().into_bytes(),
                c.signature.clone().unwrap_or_default(),
                c.etag.clone(),
                c.last_modified.clone(),
                true,
            ),
            (Document::NotModified, None) => {
                return Err(AgentError::Transport(TransportError::Status {
                    location: self.transport.location(&key),
                    status: 304,
                    detail: " without a cached copy".into(),
                }))
            }
            (
                Document::Fresh {
                    bytes,
                    etag,
                    last_modified,
                },
                cached,
            ) => {
                // Some S3 servers ignore If-None-Match and answer 200 with the same ETag:
                // that is still "unchanged", and the cached signature still applies.
                let same = cached.is_some_and(|c| {
                    etag.is_some()
                        && c.etag == etag
                        && c.document.as_deref().map(str::as_bytes) == Some(&bytes[..])
                });
                let signature = match (same, cached) {
                    (true, Some(c)) => c.signature.clone().unwrap_or_default(),
                    _ => self.fetch_signature(&key).await?,
                };
                (bytes, signature, etag, last_modified, same)
            }
        };
        // Verified every time, cached or not: expiry (freeze attacks) moves with the clock.
        let keys = self.keys();
        let verify = |bytes: &[u8], sig: &str| {
            manifest::verify_channel(
                bytes,
                sig,
                &keys,
                &self.app,
                &self.channel,
                min_sequence,
                SystemTime::now(),
            )
        };
        let (doc, bytes, signature) = match verify(&bytes, &signature) {
            Ok(doc) => (doc, bytes, signature),
            // The document and its signature are two files: a poll can catch a publisher
            // between writing one and the other. Fetch both once more before rejecting.
            Err(ManifestError::Signature(KeyError::BadSignature { .. })) if !unchanged => {
                warn!("channel signature did not match; fetching document and signature again");
                let bytes = self.fetch_small(&key, self.limit()).await?;
                let signature = self.fetch_signature(&key).await?;
                (verify(&bytes, &signature)?, bytes, signature)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ChannelView {
            doc,
            unchanged,
            etag,
            last_modified,
            bytes,
            signature,
        })
    }

    /// Fetch and verify the release document of `version`.
    pub async fn fetch_release(&self, version: &Version) -> Result<ReleaseDoc, AgentError> {
        let key = manifest::release_key(&self.app, version);
        let bytes = self.fetch_small(&key, self.limit()).await?;
        let sig = self.fetch_signature(&key).await?;
        Ok(manifest::verify_release(
            &bytes,
            &sig,
            &self.keys(),
            &self.app,
            version,
        )?)
    }

    /// The verified block list of `artifact`, when its release has one: fetched at
    /// most as large as signed, and checked against the signed sha256 before parsing.
    async fn fetch_block_list(
        &self,
        release: &ReleaseDoc,
        artifact: &manifest::Artifact,
    ) -> Result<Option<manifest::BlockList>, AgentError> {
        let Some(reference) = &artifact.blocks else {
            return Ok(None);
        };
        let location = manifest::resolve_url(&release.app, &release.version, &reference.url)?;
        let (bytes, what) = match &location {
            Location::Key(key) => (
                self.fetch_small(key, reference.size).await?,
                self.transport.location(key),
            ),
            Location::Url(url) => {
                let (registry, key) = HttpRegistry::for_url(url, &self.config.transport_options())?;
                let req = FetchRequest::whole(&key, reference.size);
                let doc = self
                    .with_timeout(&key, retry::fetch_document(&registry, &req, &self.policy))
                    .await?;
                let Document::Fresh { bytes, .. } = doc else {
                    return Err(AgentError::Transport(TransportError::Status {
                        location: url.clone(),
                        status: 304,
                        detail: " to an unconditional request".into(),
                    }));
                };
                (bytes, url.clone())
            }
        };
        Ok(Some(manifest::verify_block_list(
            &bytes, reference, artifact, &what,
        )?))
    }

    pub fn decide(
        &self,
        state: &State,
        current: Option<&Version>,
        installed: &[Version],
        view: &ChannelView,
    ) -> Decision {
        let doc = &view.doc;
        let bucket = rollout::bucket(
            &self.machine_id,
            self.app.as_str(),
            &doc.version.to_string(),
        );
        let admission = rollout::admission(doc.rollout.as_ref(), bucket, SystemTime::now());
        let followed = self.seen(state).map_or(0, |c| c.followed_sequence);
        let yanked: Vec<Version> = doc.yanked.iter().map(|y| y.version.clone()).collect();
        decide::decide(&decide::Inputs {
            current,
            channel_version: &doc.version,
            channel_sequence: doc.sequence,
            last_sequence: followed,
            pinned: state.pinned.as_ref(),
            blocked: &state.blocked,
            yanked: &yanked,
            installed,
            admission,
            bucket,
        })
    }

    /// The last accepted channel document, re-verified (expiry moves with the clock),
    /// for `why`, which works offline.
    pub fn cached_view(&self, state: &State) -> Result<Option<ChannelView>, AgentError> {
        let Some(c) = self.seen(state) else {
            return Ok(None);
        };
        let (Some(doc), Some(sig)) = (&c.document, &c.signature) else {
            return Ok(None);
        };
        let parsed = manifest::verify_channel(
            doc.as_bytes(),
            sig,
            &self.keys(),
            &self.app,
            &self.channel,
            0,
            SystemTime::now(),
        )?;
        Ok(Some(ChannelView {
            doc: parsed,
            unchanged: true,
            etag: c.etag.clone(),
            last_modified: c.last_modified.clone(),
            bytes: doc.clone().into_bytes(),
            signature: sig.clone(),
        }))
    }

    /// Where this machine stands in the channel's rollout, for `why`.
    pub fn rollout_summary(&self, view: &ChannelView) -> RolloutSummary {
        let version = view.doc.version.clone();
        let bucket = rollout::bucket(&self.machine_id, self.app.as_str(), &version.to_string());
        let now = SystemTime::now();
        let admission = rollout::admission(view.doc.rollout.as_ref(), bucket, now);
        let admitted_from = match &admission {
            rollout::Admission::NotYet {
                next: Some((start, percent)),
                ..
            } => Some(NextWave {
                start: Timestamp::from(*start),
                percent: *percent,
            }),
            _ => None,
        };
        RolloutSummary {
            version,
            rollout: view.doc.rollout.clone(),
            share_now_percent: rollout::share(view.doc.rollout.as_ref(), now),
            machine_bucket_percent: f64::from(bucket) / 100.0,
            admitted: admission == rollout::Admission::Admitted,
            admitted_from,
        }
    }

    fn remember_channel(&self, state: &mut State, view: &ChannelView) {
        let followed_sequence = self.seen(state).map_or(0, |c| c.followed_sequence);
        state.channel = Some(ChannelSeen {
            followed_sequence,
            channel: Some(self.channel.clone()),
            sequence: view.doc.sequence,
            version: Some(view.doc.version.clone()),
            etag: view.etag.clone(),
            last_modified: view.last_modified.clone(),
            yanked: view.doc.yanked.iter().map(|y| y.version.clone()).collect(),
            document: Some(String::from_utf8_lossy(&view.bytes).into_owned()),
            signature: Some(view.signature.clone()),
        });
    }

    /// Poll once and report, changing nothing on disk.
    pub async fn check(&self) -> Result<CheckReport, AgentError> {
        let p = Pipeline::new(&self.root, &self.config);
        let state = p.load_state()?;
        let current = p.current()?;
        let installed = p.installed_oldest_first(&state)?;
        let view = self.fetch_channel(&state).await?;
        self.warn_if_expiring(&view.doc);
        let decision = self.decide(&state, current.as_ref(), &installed, &view);
        // An update this machine cannot take is no update: say so instead of exit 10.
        let (name, explanation, update_available) = match decision.target() {
            Some(to) if !installed.contains(to) => match self.published_for_target(to).await {
                Err(e @ AgentError::NoArtifact { .. }) => {
                    warn!("{e}");
                    let explanation = format!(
                        "{e}; staying on {}",
                        crate::activate::show(current.as_ref())
                    );
                    (NO_ARTIFACT_FOR_TARGET, explanation, false)
                }
                Err(e) => return Err(e),
                Ok(()) => (decision.name(), decision.explain(), true),
            },
            Some(_) => (decision.name(), decision.explain(), true),
            None => (decision.name(), decision.explain(), false),
        };
        let state = machine_state::machine_state(&machine_state::Facts {
            current: current.as_ref(),
            pending: state.pending.as_ref().map(|p| &p.version),
            pinned: state.pinned.as_ref(),
            channel_version: Some(&view.doc.version),
            blocked: &state.blocked,
            last_run_failed: state.last_error.is_some(),
            last_decision: Some(name),
        });
        Ok(CheckReport {
            state,
            app: self.app.to_string(),
            current,
            available: view.doc.version.clone(),
            sequence: view.doc.sequence,
            expires_at: view.doc.expires.clone(),
            unchanged: view.unchanged,
            update_available,
            decision: name.to_string(),
            explanation,
        })
    }

    /// Poll once and apply: what `updraft update` and each daemon tick do.
    pub async fn update(&self) -> Result<UpdateOutcome, AgentError> {
        let p = Pipeline::new(&self.root, &self.config);
        let _lock = p.lock().await?;
        let mut state = p.load_state()?;
        p.recover(&mut state).await?;
        state.last_check = Some(Timestamp::now());
        // One state, loaded once under the lock: the pipeline changes it in place and
        // saves it where crash safety needs that; how the run ended is saved last.
        let result = self.update_locked(&p, &mut state).await;
        let error = match &result {
            Ok(_) => None,
            // Not logged here: `updraft update` prints the error once as its result,
            // and the daemon logs it as the poll's failure.
            Err(e) => Some(e.to_string()),
        };
        state.checked(Timestamp::now(), error);
        p.save_state(&state).await?;
        self.after_run(&p, &mut state, result.is_err()).await;
        result
    }

    async fn update_locked(
        &self,
        p: &Pipeline<'_>,
        state: &mut State,
    ) -> Result<UpdateOutcome, AgentError> {
        let view = match self.fetch_channel(state).await {
            Ok(v) => v,
            Err(e) => {
                self.note(p, Event::Rejected, None, &e.to_string());
                return Err(e);
            }
        };
        if !view.unchanged {
            info!(version = %view.doc.version, sequence = view.doc.sequence, "channel document accepted");
        }
        self.warn_if_expiring(&view.doc);
        // Decide before remembering the document: "the channel moved back" is judged
        // against the sequence accepted before this one.
        let current = p.current()?;
        let installed = p.installed_oldest_first(state)?;
        let decision = self.decide(state, current.as_ref(), &installed, &view);
        self.remember_channel(state, &view);
        state.decided(decision.name());
        let explanation = decision.explain();
        let Some(target) = decision.target().cloned() else {
            // Nothing to apply: saved once, by `update`, with how the run ended.
            state.mark_followed(view.doc.sequence);
            info!("{explanation}");
            if !view.unchanged {
                self.note(p, Event::Decision, Some(&view.doc.version), &explanation);
            }
            return Ok(UpdateOutcome {
                decision: decision.name().into(),
                explanation,
                activated: None,
                current,
                window_opens: None,
            });
        };
        // Outside a maintenance window an update waits (a yank never does).
        let delayed = self.window_delay(&decision, SystemTime::now());
        if let Some(opens) = delayed {
            return self
                .outside_window(p, state, &installed, current, &target, opens, explanation)
                .await;
        }
        // The accepted document (the anti-rollback floor) is on disk before the apply.
        p.save_state(state).await?;
        crate::failpoint::hit("update.decided");
        info!("{explanation}");
        self.note(p, Event::Decision, Some(&target), &explanation);
        self.stage(p, state, &target).await?;
        // A config mistake is not the release's fault: refused, and not blocked.
        p.preflight(&target).await?;
        let to_pin = matches!(decision, Decision::SwitchToPin { .. });
        if let Err(e) = p.pre_activate(&target).await {
            state.block(&target, e.to_string());
            p.save_state(state).await?;
            self.note(p, Event::Blocked, Some(&target), &e.to_string());
            return Err(self.clear_failed_pin(p, state, to_pin, &target, e).await);
        }
        // Following the channel back below the data epoch: the data goes back first
        // (or the update is refused when there is no snapshot to restore).
        let current = p.current()?;
        p.restore_for(state, current.as_ref(), &target, false)
            .await?;
        let activated = match p.activate(state, &target, Kind::Update).await {
            Ok(a) => a,
            Err(e) => return Err(self.clear_failed_pin(p, state, to_pin, &target, e).await),
        };
        let pruned = p.prune(state, self.config.keep, false).await?;
        for v in &pruned {
            info!(version = %v, "pruned");
        }
        // Saved by `update` with how the run ended.
        state.mark_followed(view.doc.sequence);
        Ok(UpdateOutcome {
            decision: decision.name().into(),
            explanation,
            current: Some(activated.version.clone()),
            activated: Some(activated.version),
            window_opens: None,
        })
    }

    /// Download, verify and install `target` (not yet activated).
    async fn stage(
        &self,
        p: &Pipeline<'_>,
        state: &mut State,
        target: &Version,
    ) -> Result<(), AgentError> {
        let release = self.fetch_release(target).await?;
        let (location, artifact) =
            release
                .artifact_location(&self.target)
                .map_err(|e| match e {
                    ManifestError::NoArtifact { .. } => AgentError::NoArtifact {
                        version: target.clone(),
                        target: self.target.clone(),
                        available: release
                            .artifacts
                            .keys()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    },
                    // A refused URL or format: the real reason, not "no artifact".
                    other => AgentError::Manifest(other),
                })?;
        transport::limits::check(
            &format!("artifact of {target} for {}", self.target),
            self.config.limits.max_artifact_bytes,
            artifact.size,
        )?;
        let stream = match &location {
            Location::Key(key) => retry::resumable_stream(
                self.transport.clone(),
                key.clone(),
                self.config.limits.max_artifact_bytes,
                Some(artifact.size),
                self.policy.clone(),
            ),
            Location::Url(url) => {
                // The URL's directory is the registry and its (decoded) file name the
                // key; the query stays with the registry, so it reaches the server as
                // written.
                let (registry, key) = HttpRegistry::for_url(url, &self.config.transport_options())?;
                let t: Arc<dyn Transport> = Arc::new(registry);
                retry::resumable_stream(
                    t,
                    key,
                    self.config.limits.max_artifact_bytes,
                    Some(artifact.size),
                    self.policy.clone(),
                )
            }
        };
        let loc = match &location {
            Location::Key(k) => self.transport.location(k),
            Location::Url(u) => u.clone(),
        };
        let blocks = self.fetch_block_list(&release, artifact).await?;
        let req = InstallRequest {
            version: target.clone(),
            source: Source::Stream {
                stream,
                location: loc,
            },
            expected_sha256: Some(artifact.sha256.clone()),
            expected_size: Some(artifact.size),
            force: false,
            // What the registry signed is what runs: publish checked the VERSION file.
            allow_version_mismatch: true,
            blocks,
            data_epoch: Some(release.data_epoch),
        };
        p.install(state, req).await?;
        Ok(())
    }

    /// When `decision` must wait for a maintenance window: the next opening (None: the
    /// windows allow it now, or it is never delayed). Leaving a yanked version, a first
    /// install (nothing runs to disturb) and an operator's pin are never delayed.
    pub fn window_delay(
        &self,
        decision: &Decision,
        now: SystemTime,
    ) -> Option<Option<jiff::Timestamp>> {
        if !matches!(
            decision,
            Decision::Update { .. } | Decision::FollowBack { .. }
        ) {
            return None;
        }
        let now = jiff::Timestamp::try_from(now).ok()?;
        match window::state(&self.config.window, now) {
            WindowState::Closed { opens } => Some(opens),
            WindowState::Always | WindowState::Open { .. } => None,
        }
    }

    /// Outside every maintenance window: stage the release when allowed
    /// (`stage_outside_window`), activate nothing, and say when the next window opens.
    #[allow(clippy::too_many_arguments)]
    async fn outside_window(
        &self,
        p: &Pipeline<'_>,
        state: &mut State,
        installed: &[Version],
        current: Option<Version>,
        target: &Version,
        opens: Option<jiff::Timestamp>,
        explanation: String,
    ) -> Result<UpdateOutcome, AgentError> {
        let staged = if self.config.stage_outside_window && !installed.contains(target) {
            self.stage(p, state, target).await?;
            "; staged it"
        } else if installed.contains(target) {
            "; it is on disk"
        } else {
            ""
        };
        let explanation = format!(
            "{explanation}; outside the maintenance window ({}){staged}, activating it {}",
            self.config
                .window
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            window::opens_text(opens)
        );
        state.decided(OUTSIDE_WINDOW);
        p.save_state(state).await?;
        info!("{explanation}");
        self.note(p, Event::Decision, Some(target), &explanation);
        Ok(UpdateOutcome {
            decision: OUTSIDE_WINDOW.into(),
            explanation,
            activated: None,
            current,
            window_opens: opens.map(|t| Timestamp::from(SystemTime::from(t))),
        })
    }

    /// Log a warning on every run once the channel document expires within a week.
    fn warn_if_expiring(&self, doc: &ChannelDoc) {
        let Ok(expires) = crate::time::parse_time(&doc.expires) else {
            return;
        };
        if let Some(msg) = channel_info::expiry_warning(
            &self.channel,
            expires,
            SystemTime::now(),
            channel_info::EXPIRY_WARNING,
        ) {
            warn!("{msg}");
        }
    }

    /// The error for a failed activation of `target`; when it was the pinned version
    /// (`to_pin`), the pin is cleared first and the error says so.
    async fn clear_failed_pin(
        &self,
        p: &Pipeline<'_>,
        state: &mut State,
        to_pin: bool,
        target: &Version,
        e: DeployError,
    ) -> AgentError {
        if !to_pin || state.pinned.as_ref() != Some(target) {
            return e.into();
        }
        state.unpin();
        if let Err(save) = p.save_state(state).await {
            warn!("cannot save the state after clearing the pin: {save}");
        }
        p.history(
            Event::Unpin,
            Some(target),
            false,
            &format!("pin cleared: switching to {target} failed"),
        );
        AgentError::PinCleared {
            version: target.clone(),
            source: Box::new(e),
        }
    }

    /// Whether `version` can be pinned without being installed: its release document
    /// is published, signed by a trusted key, and has an artifact for this target.
    pub async fn published_for_target(&self, version: &Version) -> Result<(), AgentError> {
        self.refresh_keys().await?;
        let release = self.fetch_release(version).await?;
        release
            .artifact_location(&self.target)
            .map(|_| ())
            .map_err(|_| AgentError::NoArtifact {
                version: version.clone(),
                target: self.target.clone(),
                available: release
                    .artifacts
                    .keys()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn note(&self, p: &Pipeline<'_>, event: Event, version: Option<&Version>, message: &str) {
        let ok = event != Event::Rejected;
        p.history(event, version, ok, message);
    }
}

/// Where this machine stands in the channel's rollout (`why --json`'s `rollout`).
#[derive(Debug, Clone, Serialize)]
pub struct RolloutSummary {
    pub version: Version,
    pub rollout: Option<Rollout>,
    pub share_now_percent: u8,
    pub machine_bucket_percent: f64,
    pub admitted: bool,
    /// The first announced wave that admits this machine, when it is not admitted yet.
    pub admitted_from: Option<NextWave>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextWave {
    pub start: Timestamp,
    pub percent: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdateOutcome {
    pub decision: String,
    pub explanation: String,
    pub current: Option<Version>,
    pub activated: Option<Version>,
    /// Outside a maintenance window: when the next one opens (the daemon polls then).
    pub window_opens: Option<Timestamp>,
}

/// The outcome's decision when an update waits for a maintenance window.
pub const OUTSIDE_WINDOW: &str = "outside-window";
