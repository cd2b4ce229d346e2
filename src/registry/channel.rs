//! Channel changes: read the current channel document, make the next one, and write it
//! only if nobody changed it meanwhile (promote, yank, and `publish --channel`).

use std::time::{Duration, SystemTime};

use crate::registry::manifest::{
    self, ChannelDoc, ManifestError, Yanked, MAX_DOCUMENT_BYTES, SCHEMA_VERSION,
};
use crate::registry::names::{AppName, Channel, Version};
use crate::registry::rollout::{Halt, Rollout};
use crate::registry::signed::{
    load_signed, load_signed_tagged, put_signed, Prior, PublishError, Signer,
};
use crate::transport::{Store, TransportError};

/// Default validity of a channel document: long enough to survive a holiday, short
/// enough that a frozen mirror is noticed.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(30 * 24 * 3600);

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
        .map(|(doc, _, _)| doc))
}

/// The current channel document, parsed and as its bytes, and how to write over it.
async fn current_channel_tagged(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
) -> Result<Option<(ChannelDoc, Vec<u8>, Prior)>, PublishError> {
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
    Ok(Some((
        doc,
        bytes,
        etag.map_or(Prior::Untagged, Prior::Tagged),
    )))
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
    let bytes = change_channel_bytes(store, signer, app, channel, now, |current| {
        change(current.map(|(doc, _)| doc))?
            .to_bytes()
            .map_err(Into::into)
    })
    .await?;
    Ok(manifest::parse_channel(&bytes, &key)?)
}

/// [`change_channel`] on the document's bytes: `change` gets the current document
/// parsed and as written, and returns the next one's bytes (checked as an agent would
/// before anything is written). For changes that must keep what this version of
/// updraft does not know (`refresh` keeps unknown fields).
async fn change_channel_bytes(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
    now: SystemTime,
    mut change: impl FnMut(Option<(ChannelDoc, Vec<u8>)>) -> Result<Vec<u8>, PublishError>,
) -> Result<Vec<u8>, PublishError> {
    let key = manifest::channel_key(app, channel);
    let mut lost = 0u32;
    loop {
        let _lock = store.lock_for_update(&key).await?;
        let current = match current_channel_tagged(store, signer, app, channel).await {
            Ok(c) => c,
            // Just after a lost race, the winner may not have written its signature yet.
            Err(
                PublishError::UntrustedExisting { .. } | PublishError::BadExistingSignature { .. },
            ) if lost > 0 && lost < CHANNEL_CHANGE_ATTEMPTS => {
                lost += 1;
                race_pause(lost).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (doc, prior) = match current {
            Some((doc, bytes, prior)) => (Some((doc, bytes)), prior),
            None => (None, Prior::Absent),
        };
        let next = change(doc)?;
        match write_channel(store, signer, &key, next.clone(), now, prior).await {
            Err(PublishError::Transport(TransportError::Conflict { .. }))
                if lost + 1 < CHANNEL_CHANGE_ATTEMPTS =>
            {
                lost += 1;
                tracing::warn!(%key, "another publisher changed the channel first: starting over from its version");
                race_pause(lost).await;
            }
            Err(PublishError::Transport(TransportError::Conflict { location })) => {
                return Err(PublishError::Contended {
                    location,
                    tries: lost,
                    channel: channel.to_string(),
                })
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

pub(crate) struct ChannelUpdate<'a> {
    pub(crate) app: &'a AppName,
    pub(crate) channel: &'a Channel,
    pub(crate) version: &'a Version,
    pub(crate) rollout: Option<Rollout>,
    pub(crate) notes: Option<String>,
    pub(crate) expires_in: Duration,
}

/// Write a new channel document pointing at an existing, signed release; the sequence is
/// one more than the current document's and the yanked list is carried over.
pub(crate) async fn set_channel(
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
        // Re-pointing a channel at the version it already holds (re-signing it, or a
        // promotion repeated by CI) keeps its rollout and notes unless new ones are
        // given: a 30% rollout must not silently become 100%.
        let (rollout, notes) = match &current {
            Some(c) if &c.version == u.version => (
                u.rollout.clone().or_else(|| c.rollout.clone()),
                u.notes.clone().or_else(|| c.notes.clone()),
            ),
            _ => (u.rollout.clone(), u.notes.clone()),
        };
        // What promote does not own (the yanked list, members a newer publisher
        // added) is carried over as it is (spec §8.6).
        let (sequence, yanked, extra) = match current {
            Some(c) => (c.sequence + 1, c.yanked, c.extra),
            None => (1, Vec::new(), manifest::Extra::new()),
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
            rollout,
            yanked,
            notes,
            extra,
        })
    })
    .await
}

async fn write_channel(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
    bytes: Vec<u8>,
    now: SystemTime,
    prior: Prior,
) -> Result<(), PublishError> {
    // Never write what an agent would refuse.
    manifest::parse_channel(&bytes, key)?;
    put_signed(store, signer, key, bytes, now, prior).await
}

/// Which release a promotion points the channel at.
pub enum PromoteSource {
    Version(Version),
    Channel(Channel),
    /// Exactly `version`, and only while channel `from` still points at it: promote what
    /// was approved (e.g. gated on `from`'s reports), not what happens to be there now.
    Approved {
        version: Version,
        from: Channel,
    },
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
        PromoteSource::Approved { version, from } => {
            let holds = current_channel(store, signer, &req.app, &from)
                .await?
                .map(|d| d.version);
            if holds.as_ref() != Some(&version) {
                return Err(PublishError::SourceMoved {
                    from: from.to_string(),
                    holds: holds.map_or_else(|| "nothing".into(), |v| v.to_string()),
                    approved: version.to_string(),
                });
            }
            version
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
            None => doc
                .yanked
                .push(Yanked::new(req.version.clone(), reason.clone())),
        }
        doc.yanked.sort_by(|a, b| a.version.cmp(&b.version));
        doc.sequence += 1;
        doc.issued = crate::time::format_time(now);
        doc.expires = crate::time::format_time(now + req.expires_in);
        Ok(doc)
    })
    .await
}

pub struct UnyankRequest {
    pub app: AppName,
    pub channel: Channel,
    pub version: Version,
    pub expires_in: Duration,
}

/// Take a version off a channel's yanked list (a yank made by mistake, or a fix that
/// turned out not to be needed). Returns None, writing nothing, when the version is not
/// listed, so running it twice is harmless. Everything else is carried over.
pub async fn unyank(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: UnyankRequest,
    now: SystemTime,
) -> Result<Option<ChannelDoc>, PublishError> {
    let current = current_channel(store, signer, &req.app, &req.channel).await?;
    let current = must_exist(current, &req.app, &req.channel)?;
    if current.is_yanked(&req.version).is_none() {
        return Ok(None);
    }
    let doc = change_channel(store, signer, &req.app, &req.channel, now, |cur| {
        let mut doc = next_of(
            must_exist(cur, &req.app, &req.channel)?,
            now,
            req.expires_in,
        );
        doc.yanked.retain(|y| y.version != req.version);
        Ok(doc)
    })
    .await?;
    Ok(Some(doc))
}

/// Re-sign a channel document as it is, with the sequence one higher and a new expiry:
/// what a scheduled CI job runs so a channel nobody promoted for a while does not
/// expire under the fleet. Everything else (version, rollout, waves, yanked list,
/// notes, and fields this version of updraft does not know) is kept byte for byte in
/// meaning; only `sequence`, `issued` and `expires` change.
pub async fn refresh(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
    expires_in: Duration,
    now: SystemTime,
) -> Result<ChannelDoc, PublishError> {
    let key = manifest::channel_key(app, channel);
    let bytes = change_channel_bytes(store, signer, app, channel, now, |current| {
        let (doc, bytes) = current.ok_or_else(|| missing_channel(app, channel))?;
        refreshed_bytes(&bytes, &key, doc.sequence + 1, now, expires_in)
    })
    .await?;
    Ok(manifest::parse_channel(&bytes, &key)?)
}

/// The document `bytes` with `sequence`, `issued` and `expires` replaced, every other
/// field (known or not) kept. Pure.
fn refreshed_bytes(
    bytes: &[u8],
    key: &str,
    sequence: u64,
    now: SystemTime,
    expires_in: Duration,
) -> Result<Vec<u8>, PublishError> {
    let malformed = |why: String| ManifestError::Malformed {
        what: key.to_string(),
        kind: "channel",
        why,
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let fields = value
        .as_object_mut()
        .ok_or_else(|| malformed("is not a JSON object".into()))?;
    fields.insert("sequence".into(), sequence.into());
    fields.insert("issued".into(), crate::time::format_time(now).into());
    fields.insert(
        "expires".into(),
        crate::time::format_time(now + expires_in).into(),
    );
    let mut out = serde_json::to_vec_pretty(&value).map_err(|e| malformed(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// A rollout change expected one channel version and found another: someone moved the
/// channel after the decision was made, so the decision no longer applies (run again).
fn moved(app: &AppName, channel: &Channel, expected: &Version, found: &Version) -> PublishError {
    tracing::warn!(%channel, %expected, %found, "the channel moved while deciding");
    PublishError::Contended {
        location: manifest::channel_key(app, channel),
        tries: 1,
        channel: channel.to_string(),
    }
}

fn must_exist(
    doc: Option<ChannelDoc>,
    app: &AppName,
    channel: &Channel,
) -> Result<ChannelDoc, PublishError> {
    doc.ok_or_else(|| missing_channel(app, channel))
}

fn missing_channel(app: &AppName, channel: &Channel) -> PublishError {
    PublishError::Missing {
        what: manifest::channel_key(app, channel),
        hint: format!("nothing was published to channel {channel} yet"),
    }
}

fn next_of(mut doc: ChannelDoc, now: SystemTime, expires_in: Duration) -> ChannelDoc {
    doc.sequence += 1;
    doc.issued = crate::time::format_time(now);
    doc.expires = crate::time::format_time(now + expires_in);
    doc
}

/// A rollout change made by `guard` or `rollout resume`.
pub struct RolloutChange {
    pub app: AppName,
    pub channel: Channel,
    /// The version the decision was about; the change is refused if the channel moved.
    pub version: Version,
    pub reason: String,
    pub expires_in: Duration,
}

/// Halt the channel's rollout at its share now (spec 10.1): the next document is the
/// same with `rollout.halted` set. Returns None, writing nothing, when it is already
/// halted, so running the guard again is harmless.
pub async fn halt_rollout(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: &RolloutChange,
    now: SystemTime,
) -> Result<Option<ChannelDoc>, PublishError> {
    let current = current_channel(store, signer, &req.app, &req.channel).await?;
    let current = must_exist(current, &req.app, &req.channel)?;
    if current.rollout.as_ref().is_some_and(|r| r.halted.is_some()) {
        return Ok(None);
    }
    let doc = change_channel(store, signer, &req.app, &req.channel, now, |cur| {
        let doc = must_exist(cur, &req.app, &req.channel)?;
        if doc.version != req.version {
            return Err(moved(&req.app, &req.channel, &req.version, &doc.version));
        }
        let mut doc = next_of(doc, now, req.expires_in);
        doc.rollout.get_or_insert_with(Rollout::default).halted = Some(Halt {
            at: crate::time::format_time(now),
            reason: req.reason.clone(),
        });
        Ok(doc)
    })
    .await?;
    Ok(Some(doc))
}

/// Clear a halt: the rollout's plan applies again from now. Returns None, writing
/// nothing, when the rollout is not halted.
pub async fn resume_rollout(
    store: &dyn Store,
    signer: &Signer<'_>,
    app: &AppName,
    channel: &Channel,
    expires_in: Duration,
    now: SystemTime,
) -> Result<Option<ChannelDoc>, PublishError> {
    let current = current_channel(store, signer, app, channel).await?;
    let current = must_exist(current, app, channel)?;
    if current.rollout.as_ref().is_none_or(|r| r.halted.is_none()) {
        return Ok(None);
    }
    let doc = change_channel(store, signer, app, channel, now, |cur| {
        let mut doc = next_of(must_exist(cur, app, channel)?, now, expires_in);
        if let Some(r) = &mut doc.rollout {
            r.halted = None;
            // A halt written on a channel without a rollout leaves an empty one behind.
            if r.percent.is_none() && r.waves.is_empty() {
                doc.rollout = None;
            }
        }
        Ok(doc)
    })
    .await?;
    Ok(Some(doc))
}

/// Yank the channel's own version: point the channel back at `back_to` (which must be a
/// published, signed release) and list the bad version as yanked, in one document, so
/// machines on it leave it and nobody else takes it.
pub async fn yank_and_fall_back(
    store: &dyn Store,
    signer: &Signer<'_>,
    req: &RolloutChange,
    back_to: &Version,
    now: SystemTime,
) -> Result<ChannelDoc, PublishError> {
    let rkey = manifest::release_key(&req.app, back_to);
    let (rbytes, rsig) =
        load_signed(store, signer, &rkey)
            .await?
            .ok_or_else(|| PublishError::Missing {
                what: rkey.clone(),
                hint: format!("cannot go back to {back_to}: it was never published"),
            })?;
    let rsig = rsig.ok_or_else(|| PublishError::UntrustedExisting {
        what: rkey.clone(),
        why: "has no .minisig signature".into(),
    })?;
    manifest::verify_release(&rbytes, &rsig, &signer.trusted, &req.app, back_to)?;
    change_channel(store, signer, &req.app, &req.channel, now, |cur| {
        let doc = must_exist(cur, &req.app, &req.channel)?;
        if doc.version != req.version {
            return Err(moved(&req.app, &req.channel, &req.version, &doc.version));
        }
        let mut doc = next_of(doc, now, req.expires_in);
        doc.version = back_to.clone();
        // The plan was for the bad version; everyone may go back at once.
        doc.rollout = None;
        if let Some(y) = doc.is_yanked(back_to) {
            return Err(PublishError::PromoteYanked {
                channel: req.channel.to_string(),
                version: back_to.to_string(),
                reason: y.reason.clone(),
            });
        }
        doc.yanked.retain(|y| y.version != req.version);
        doc.yanked
            .push(Yanked::new(req.version.clone(), req.reason.clone()));
        doc.yanked.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(doc)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_changes_only_sequence_issued_and_expires() {
        let doc = br#"{
  "schema_version": 1,
  "kind": "channel",
  "app": "demo",
  "channel": "prod",
  "version": "1.4.0",
  "sequence": 7,
  "issued": "2026-01-01T00:00:00Z",
  "expires": "2026-01-31T00:00:00Z",
  "rollout": {"waves": [{"start": "2026-01-01T00:00:00Z", "percent": 30}], "future_knob": 3},
  "yanked": [{"version": "1.3.0", "reason": "bad"}],
  "notes": "n",
  "mirror_hint": {"region": "eu"}
}"#;
        let now = crate::time::parse_time("2026-02-10T12:00:00Z").unwrap();
        let week = Duration::from_secs(7 * 24 * 3600);
        let out = refreshed_bytes(doc, "demo/channels/prod.json", 8, now, week).unwrap();
        let mut got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let mut want: serde_json::Value = serde_json::from_slice(doc).unwrap();
        assert_eq!(got["sequence"], 8);
        assert_eq!(got["issued"], "2026-02-10T12:00:00Z");
        assert_eq!(got["expires"], "2026-02-17T12:00:00Z");
        for k in ["sequence", "issued", "expires"] {
            got.as_object_mut().unwrap().remove(k);
            want.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(
            got, want,
            "everything else is kept, unknown fields included"
        );
        assert!(refreshed_bytes(b"[1]", "k", 1, now, week).is_err());
        assert!(refreshed_bytes(b"{", "k", 1, now, week).is_err());
    }
}
