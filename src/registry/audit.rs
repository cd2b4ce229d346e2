//! `registry verify`: every signature, checksum and size under an app, checked the way
//! an agent would check them.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::registry::keyring;
use crate::registry::keys::TrustedKeys;
use crate::registry::manifest::{
    self, Location, ManifestError, MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES,
};
use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::publish::hash_object;
use crate::registry::signed::PublishError;
use crate::transport::{Store, TransportError};

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
    audit_min_valid(store, app, keys, now, None).await
}

/// [`audit`], also failing every channel document that expires within `min_valid` of
/// `now` (`registry verify --min-valid`): the alarm before agents refuse it.
pub async fn audit_min_valid(
    store: &dyn Store,
    app: &AppName,
    keys: &TrustedKeys,
    now: SystemTime,
    min_valid: Option<Duration>,
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
            if let Some(reference) = &a.blocks {
                match manifest::resolve_url(app, &version, &reference.url) {
                    Ok(Location::Key(bkey)) => {
                        explained.insert(bkey.clone());
                        let (status, detail) = match store.get(&bkey, reference.size).await {
                            Ok(Some(bytes)) => {
                                match manifest::verify_block_list(&bytes, reference, a, &bkey) {
                                    Ok(_) => (
                                        AuditStatus::Ok,
                                        format!("{target}: block list matches its signed sha256"),
                                    ),
                                    Err(e) => (AuditStatus::Fail, e.to_string()),
                                }
                            }
                            Ok(None) => {
                                (AuditStatus::Fail, format!("{target}: block list missing"))
                            }
                            Err(e) => (AuditStatus::Fail, e.to_string()),
                        };
                        push(&mut items, &bkey, status, detail);
                    }
                    Ok(Location::Url(u)) => push(
                        &mut items,
                        &u,
                        AuditStatus::Warn,
                        format!("{target}: external block list URL, not checked by this audit"),
                    ),
                    Err(e) => push(&mut items, key, AuditStatus::Fail, e.to_string()),
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
            Ok(doc) if expires_too_soon(&doc.expires, now, min_valid) => push(
                &mut items,
                key,
                AuditStatus::Fail,
                format!(
                    "channel {channel} -> {}: expires {}, sooner than --min-valid {}; re-sign it with `updraft refresh --channel {channel}` (or a promotion) before agents refuse it",
                    doc.version,
                    doc.expires,
                    humantime::format_duration(min_valid.unwrap_or_default()),
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

    // The keys document's history: each version signed by the roots of the one before.
    let mut roots: Option<crate::registry::keyring::Roots> = None;
    for n in 1u64.. {
        let vkey = keyring::keys_version_key(app, n);
        if !all.contains(&vkey) {
            break;
        }
        explained.insert(vkey.clone());
        explained.insert(manifest::sig_key(&vkey));
        let checked = async {
            let bytes = store
                .get(&vkey, manifest::MAX_DOCUMENT_BYTES)
                .await?
                .unwrap_or_default();
            let sig = store
                .get(&manifest::sig_key(&vkey), keyring::MAX_KEYS_SIGNATURE_BYTES)
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let doc = keyring::parse_keys_doc(&bytes, &vkey)?;
            let by = match &roots {
                Some(r) => r.clone(),
                None => doc.roots(&vkey)?,
            };
            keyring::verify_threshold(&bytes, &sig, &by, &vkey)?;
            Ok::<_, keyring::KeyringError>(doc)
        }
        .await;
        match checked {
            Ok(doc) if doc.version == n => {
                roots = doc.roots(&vkey).ok();
                push(
                    &mut items,
                    &vkey,
                    AuditStatus::Ok,
                    format!(
                        "keys version {n}: signed by the root threshold, {} publisher key(s), expires {}",
                        doc.keys.len(),
                        doc.expires
                    ),
                );
            }
            Ok(doc) => {
                push(
                    &mut items,
                    &vkey,
                    AuditStatus::Fail,
                    format!("holds version {}, not {n}", doc.version),
                );
                break;
            }
            Err(e) => {
                push(&mut items, &vkey, AuditStatus::Fail, e.to_string());
                break;
            }
        }
    }
    let kkey = keyring::keys_key(app);
    if all.contains(&kkey) {
        explained.insert(kkey.clone());
        explained.insert(manifest::sig_key(&kkey));
        let latest = keyring::load_current(store, app).await;
        let (status, detail) = match latest {
            Ok(Some(doc)) if doc.expires_at() <= now => (
                AuditStatus::Fail,
                format!(
                    "keys version {} expired at {}: renew it with `updraft keys renew`",
                    doc.version, doc.expires
                ),
            ),
            Ok(Some(doc)) => (
                AuditStatus::Ok,
                format!(
                    "keys version {}: signature ok, expires {}",
                    doc.version, doc.expires
                ),
            ),
            Ok(None) => (AuditStatus::Fail, "vanished while auditing".to_string()),
            Err(e) => (AuditStatus::Fail, e.to_string()),
        };
        push(&mut items, &kkey, status, detail);
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
/// Whether a channel document expiring at `expires` (as written in it) expires within
/// `min_valid` of `now`. An unparsable time has already failed verification. Pure.
fn expires_too_soon(expires: &str, now: SystemTime, min_valid: Option<Duration>) -> bool {
    let (Some(min), Ok(at)) = (min_valid, crate::time::parse_time(expires)) else {
        return false;
    };
    at < now + min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_too_soon_table() {
        let now = crate::time::parse_time("2026-11-30T00:00:00Z").unwrap();
        let week = Some(Duration::from_secs(7 * 24 * 3600));
        let cases = [
            ("2026-12-06T23:59:59Z", week, true),
            ("2026-12-07T00:00:00Z", week, false),
            ("2026-12-30T00:00:00Z", week, false),
            ("2026-11-29T00:00:00Z", week, true),
            ("2026-12-01T00:00:00Z", None, false),
            ("not a time", week, false),
        ];
        for (expires, min, want) in cases {
            assert_eq!(
                expires_too_soon(expires, now, min),
                want,
                "{expires} {min:?}"
            );
        }
    }
}
