//! Registry documents (channel and release) and the checks an agent applies before
//! believing one. The contract is registry-spec/README.md; this module is its reference
//! implementation.
//!
//! Verification order matters: the signature is checked over the exact bytes first, so
//! nothing unsigned is ever parsed into a decision; then the document is parsed and
//! matched against what was asked for (app, channel, version), then freshness.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorClass};
use crate::registry::keys::{KeyError, TrustedKeys};
use crate::registry::names::{AppName, Channel, Target, Version};
use crate::registry::rollout::Rollout;

/// The document format this implementation writes and understands. A document with a
/// higher `schema_version` may carry restrictions we would silently ignore, so it is
/// rejected rather than half-understood.
pub const SCHEMA_VERSION: u32 = 1;
/// Recommended maximum size of a channel or release document (spec "Size limits").
pub const MAX_DOCUMENT_BYTES: u64 = 1 << 20;
/// Recommended maximum size of a `.minisig` file.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
/// Recommended default maximum size of one artifact; the signed `size` is the real bound.
pub const MAX_ARTIFACT_BYTES: u64 = 4 << 30;
/// The only artifact format this version unpacks.
pub const FORMAT_TAR_GZ: &str = "tar.gz";
/// Suffix of the detached signature of every document.
pub const SIG_SUFFIX: &str = ".minisig";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Signature(#[from] KeyError),
    #[error("{what} is not a valid {kind} document: {why}")]
    Malformed {
        what: String,
        kind: &'static str,
        why: String,
    },
    #[error("{what} is not a valid {kind} document: {source}")]
    Unparsable {
        what: String,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} has schema_version {found}, newer than the {supported} this updraft understands: upgrade updraft on this machine")]
    UnsupportedSchema {
        what: String,
        found: u32,
        supported: u32,
    },
    #[error("{what} is signed for app {found:?}, not {expected:?}: possible mix-and-match attack (a valid document served at the wrong place); check the registry layout")]
    WrongApp {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what} is signed for channel {found:?}, not {expected:?}: possible mix-and-match attack; check the registry layout")]
    WrongChannel {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what} is signed for version {found}, not {expected}: possible mix-and-match attack; check the registry layout")]
    WrongVersion {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what}: channel document sequence {found} is lower than {min} already accepted: possible rollback attack (an old signed document replayed); if instead the registry was restored from an older copy, its channel must be re-signed with a sequence above {min}")]
    Rollback { what: String, found: u64, min: u64 },
    #[error("{what} expired at {expires} (now {now}): possible freeze attack, or nobody re-signed the channel; re-sign it with `updraft promote --from <channel> --channel <channel>`")]
    Expired {
        what: String,
        expires: String,
        now: String,
    },
    #[error("release {version} has no artifact for target {target} (it has: {available}); publish one with `updraft publish --target {target}`")]
    NoArtifact {
        version: String,
        target: String,
        available: String,
    },
    #[error("artifact for {target} in release {version} has format {format:?}; this updraft unpacks only \"tar.gz\"")]
    UnsupportedFormat {
        version: String,
        target: String,
        format: String,
    },
    #[error("artifact url {url:?} in release {version} is not allowed: {why}")]
    BadUrl {
        version: String,
        url: String,
        why: String,
    },
    #[error("cannot write the {kind} document as JSON: {source}")]
    Serialise {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// A version that no agent on the channel may run, with the reason shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Yanked {
    pub version: Version,
    pub reason: String,
}

/// `<app>/channels/<channel>.json`: which release a channel runs, as of `sequence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelDoc {
    pub schema_version: u32,
    /// Always "channel": a release document can never be mistaken for one.
    pub kind: String,
    pub app: AppName,
    pub channel: Channel,
    pub version: Version,
    pub sequence: u64,
    pub issued: String,
    pub expires: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub yanked: Vec<Yanked>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One downloadable file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub url: String,
    pub sha256: String,
    pub size: u64,
    pub format: String,
}

/// `<app>/releases/<version>/release.json`: the immutable description of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseDoc {
    pub schema_version: u32,
    /// Always "release".
    pub kind: String,
    pub app: AppName,
    pub version: Version,
    pub issued: String,
    pub artifacts: BTreeMap<Target, Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

pub fn channel_key(app: &AppName, channel: &Channel) -> String {
    format!("{app}/channels/{channel}.json")
}

pub fn release_dir_key(app: &AppName, version: &Version) -> String {
    format!("{app}/releases/{version}/")
}

pub fn release_key(app: &AppName, version: &Version) -> String {
    format!("{}release.json", release_dir_key(app, version))
}

pub fn sig_key(doc_key: &str) -> String {
    format!("{doc_key}{SIG_SUFFIX}")
}

/// The artifact file name `publish` uses: `<app>-<version>-<target>.tar.gz`.
pub fn artifact_file_name(app: &AppName, version: &Version, target: &Target) -> String {
    format!("{app}-{version}-{target}.tar.gz")
}

/// Where an artifact's bytes are: a key in the same registry (relative url), or an
/// absolute http(s) URL (a CDN or mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Key(String),
    Url(String),
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The exact bytes a publisher signs: pretty JSON and a final newline. A failure is an
/// error, never empty bytes: those would be signed and published as a document.
fn document_bytes<T: Serialize>(doc: &T, kind: &'static str) -> Result<Vec<u8>, ManifestError> {
    let mut out = serde_json::to_vec_pretty(doc)
        .map_err(|source| ManifestError::Serialise { kind, source })?;
    out.push(b'\n');
    Ok(out)
}

impl ChannelDoc {
    pub fn is_yanked(&self, v: &Version) -> Option<&Yanked> {
        self.yanked.iter().find(|y| &y.version == v)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        document_bytes(self, "channel")
    }

    /// Rules that hold for every channel document regardless of who reads it.
    fn check_shape(&self, what: &str) -> Result<(), ManifestError> {
        let bad = |why: String| ManifestError::Malformed {
            what: what.to_string(),
            kind: "channel",
            why,
        };
        if self.kind != "channel" {
            return Err(bad(format!(
                "kind is {:?}, expected \"channel\"",
                self.kind
            )));
        }
        if self.sequence == 0 {
            return Err(bad("sequence must be at least 1".into()));
        }
        let issued = crate::time::parse_time(&self.issued).map_err(bad)?;
        let expires = crate::time::parse_time(&self.expires).map_err(bad)?;
        if expires <= issued {
            return Err(bad("expires is not after issued".into()));
        }
        if let Some(y) = self.is_yanked(&self.version) {
            return Err(bad(format!(
                "it points at version {} which it also lists as yanked ({})",
                self.version, y.reason
            )));
        }
        if let Some(r) = &self.rollout {
            if r.percent.is_some_and(|p| p > 100) {
                return Err(bad("rollout.percent is above 100".into()));
            }
            let mut last: Option<SystemTime> = None;
            for w in &r.waves {
                if w.percent > 100 {
                    return Err(bad("a rollout wave's percent is above 100".into()));
                }
                let t = crate::time::parse_time(&w.start).map_err(bad)?;
                if last.is_some_and(|l| t <= l) {
                    return Err(bad("rollout waves must be in increasing start order".into()));
                }
                last = Some(t);
            }
            if let Some(h) = &r.halted {
                crate::time::parse_time(&h.at)
                    .map_err(|e| bad(format!("rollout.halted.at: {e}")))?;
            }
        }
        Ok(())
    }
}

impl ReleaseDoc {
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        document_bytes(self, "release")
    }

    fn check_shape(&self, what: &str) -> Result<(), ManifestError> {
        let bad = |why: String| ManifestError::Malformed {
            what: what.to_string(),
            kind: "release",
            why,
        };
        if self.kind != "release" {
            return Err(bad(format!(
                "kind is {:?}, expected \"release\"",
                self.kind
            )));
        }
        crate::time::parse_time(&self.issued).map_err(bad)?;
        if self.artifacts.is_empty() {
            return Err(bad("it lists no artifacts".into()));
        }
        for (t, a) in &self.artifacts {
            if !is_sha256_hex(&a.sha256) {
                return Err(bad(format!(
                    "artifact {t}: sha256 must be 64 lowercase hex digits"
                )));
            }
            if a.size == 0 {
                return Err(bad(format!("artifact {t}: size must be positive")));
            }
        }
        Ok(())
    }

    /// Resolve where the artifact for `target` lives. A relative url is resolved against
    /// the directory of this release document (spec "URL resolution").
    pub fn artifact_location(
        &self,
        target: &Target,
    ) -> Result<(Location, &Artifact), ManifestError> {
        let a = self
            .artifacts
            .get(target)
            .ok_or_else(|| ManifestError::NoArtifact {
                version: self.version.to_string(),
                target: target.to_string(),
                available: self
                    .artifacts
                    .keys()
                    .map(Target::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        if a.format != FORMAT_TAR_GZ {
            return Err(ManifestError::UnsupportedFormat {
                version: self.version.to_string(),
                target: target.to_string(),
                format: a.format.clone(),
            });
        }
        let loc = resolve_url(&self.app, &self.version, &a.url)?;
        Ok((loc, a))
    }
}

/// Relative references stay inside the release directory: plain path segments only, so
/// a signed document can never point a reader at another app's or version's files by
/// accident, and no percent-decoding or dot-segment rules are needed to agree on a key.
pub fn resolve_url(app: &AppName, version: &Version, url: &str) -> Result<Location, ManifestError> {
    let bad = |why: &str| ManifestError::BadUrl {
        version: version.to_string(),
        url: url.to_string(),
        why: why.to_string(),
    };
    if url.starts_with("https://") || url.starts_with("http://") {
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.host_str().unwrap_or_default().is_empty() {
            return Err(bad("absolute URL without a host"));
        }
        return Ok(Location::Url(url.to_string()));
    }
    if url.contains("://") || url.starts_with('/') {
        return Err(bad(
            "only relative references and http(s):// URLs are allowed",
        ));
    }
    for seg in url.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(bad("empty, '.' or '..' path segment"));
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
        {
            return Err(bad(
                "relative paths may use only letters, digits, '-', '_', '.', '+' and '/'",
            ));
        }
    }
    Ok(Location::Key(format!(
        "{}{url}",
        release_dir_key(app, version)
    )))
}

fn parse_doc<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &str,
    kind: &'static str,
) -> Result<T, ManifestError> {
    // Look at schema_version before the full parse, so a newer document is reported as
    // "upgrade updraft" rather than as a confusing missing-field error.
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Unparsable {
            what: what.to_string(),
            kind,
            source,
        })?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v > u64::from(SCHEMA_VERSION) => {
            return Err(ManifestError::UnsupportedSchema {
                what: what.to_string(),
                found: u32::try_from(v).unwrap_or(u32::MAX),
                supported: SCHEMA_VERSION,
            })
        }
        Some(_) => {}
        None => {
            return Err(ManifestError::Malformed {
                what: what.to_string(),
                kind,
                why: "missing or non-integer schema_version".into(),
            })
        }
    }
    serde_json::from_value(value).map_err(|source| ManifestError::Unparsable {
        what: what.to_string(),
        kind,
        source,
    })
}

/// Parse a channel document without checking its signature: for publishers that have
/// already verified it, and for tests. Agents use [`verify_channel`].
pub fn parse_channel(bytes: &[u8], what: &str) -> Result<ChannelDoc, ManifestError> {
    let doc: ChannelDoc = parse_doc(bytes, what, "channel")?;
    doc.check_shape(what)?;
    Ok(doc)
}

pub fn parse_release(bytes: &[u8], what: &str) -> Result<ReleaseDoc, ManifestError> {
    let doc: ReleaseDoc = parse_doc(bytes, what, "release")?;
    doc.check_shape(what)?;
    Ok(doc)
}

/// Everything an agent must check before acting on a channel document.
pub fn verify_channel(
    bytes: &[u8],
    sig: &str,
    keys: &TrustedKeys,
    app: &AppName,
    channel: &Channel,
    min_sequence: u64,
    now: SystemTime,
) -> Result<ChannelDoc, ManifestError> {
    let what = channel_key(app, channel);
    keys.verify(bytes, sig, &what)?;
    let doc = parse_channel(bytes, &what)?;
    if &doc.app != app {
        return Err(ManifestError::WrongApp {
            what,
            expected: app.to_string(),
            found: doc.app.to_string(),
        });
    }
    if &doc.channel != channel {
        return Err(ManifestError::WrongChannel {
            what,
            expected: channel.to_string(),
            found: doc.channel.to_string(),
        });
    }
    if doc.sequence < min_sequence {
        return Err(ManifestError::Rollback {
            what,
            found: doc.sequence,
            min: min_sequence,
        });
    }
    check_not_expired(&doc, &what, now)?;
    Ok(doc)
}

pub fn check_not_expired(
    doc: &ChannelDoc,
    what: &str,
    now: SystemTime,
) -> Result<(), ManifestError> {
    // check_shape already parsed it; a parse failure here cannot happen, but is
    // treated as expired rather than trusted.
    let expires = crate::time::parse_time(&doc.expires).unwrap_or(SystemTime::UNIX_EPOCH);
    if expires <= now {
        return Err(ManifestError::Expired {
            what: what.to_string(),
            expires: doc.expires.clone(),
            now: crate::time::format_time(now),
        });
    }
    Ok(())
}

/// Everything an agent must check before trusting a release document.
pub fn verify_release(
    bytes: &[u8],
    sig: &str,
    keys: &TrustedKeys,
    app: &AppName,
    version: &Version,
) -> Result<ReleaseDoc, ManifestError> {
    let what = release_key(app, version);
    keys.verify(bytes, sig, &what)?;
    let doc = parse_release(bytes, &what)?;
    if &doc.app != app {
        return Err(ManifestError::WrongApp {
            what,
            expected: app.to_string(),
            found: doc.app.to_string(),
        });
    }
    if &doc.version != version {
        return Err(ManifestError::WrongVersion {
            what,
            expected: version.to_string(),
            found: doc.version.to_string(),
        });
    }
    Ok(doc)
}

impl Classify for ManifestError {
    fn class(&self) -> ErrorClass {
        match self {
            ManifestError::Serialise { .. } => ErrorClass::Other,
            _ => ErrorClass::Verify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::keys::{generate, SecretKey};

    fn key() -> (SecretKey, TrustedKeys) {
        let (sk, _) = generate(None).unwrap();
        let sk = SecretKey::load_from_str(&sk, None).unwrap();
        let keys = TrustedKeys::new(vec![sk.public_key().clone()]);
        (sk, keys)
    }

    fn t(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn channel_doc() -> ChannelDoc {
        ChannelDoc {
            schema_version: 1,
            kind: "channel".into(),
            app: "demo".parse().unwrap(),
            channel: "prod".parse().unwrap(),
            version: "1.2.0".parse().unwrap(),
            sequence: 5,
            issued: "2026-01-01T00:00:00Z".into(),
            expires: "2026-02-01T00:00:00Z".into(),
            rollout: None,
            yanked: vec![],
            notes: None,
        }
    }

    fn release_doc() -> ReleaseDoc {
        let mut artifacts = BTreeMap::new();
        artifacts.insert(
            "x86_64-linux".parse().unwrap(),
            Artifact {
                url: "demo-1.2.0-x86_64-linux.tar.gz".into(),
                sha256: "a".repeat(64),
                size: 10,
                format: "tar.gz".into(),
            },
        );
        ReleaseDoc {
            schema_version: 1,
            kind: "release".into(),
            app: "demo".parse().unwrap(),
            version: "1.2.0".parse().unwrap(),
            issued: "2026-01-01T00:00:00Z".into(),
            artifacts,
            notes: None,
        }
    }

    #[test]
    fn channel_rejections() {
        let (sk, keys) = key();
        let (other_sk, _) = key();
        let now = t("2026-01-15T00:00:00Z");
        let app: AppName = "demo".parse().unwrap();
        let prod: Channel = "prod".parse().unwrap();
        type Mutate = fn(&mut ChannelDoc, &mut Vec<u8>, &mut u64, &mut SystemTime);
        type Expect = fn(&ManifestError) -> bool;
        let cases: Vec<(&str, Mutate, Expect)> = vec![
            ("valid", |_, _, _, _| {}, |_| false),
            (
                "tampered byte",
                |_, _, _, _| {},
                |e| matches!(e, ManifestError::Signature(KeyError::BadSignature { .. })),
            ),
            (
                "other app",
                |d, _, _, _| d.app = "other".parse().unwrap(),
                |e| matches!(e, ManifestError::WrongApp { .. }),
            ),
            (
                "other channel",
                |d, _, _, _| d.channel = "dev".parse().unwrap(),
                |e| matches!(e, ManifestError::WrongChannel { .. }),
            ),
            (
                "rollback",
                |_, _, min, _| *min = 7,
                |e| {
                    matches!(
                        e,
                        ManifestError::Rollback {
                            found: 5,
                            min: 7,
                            ..
                        }
                    )
                },
            ),
            (
                "expired",
                |_, _, _, now| *now = t("2026-02-01T00:00:00Z"),
                |e| matches!(e, ManifestError::Expired { .. }),
            ),
            (
                "newer schema",
                |d, _, _, _| d.schema_version = 2,
                |e| matches!(e, ManifestError::UnsupportedSchema { found: 2, .. }),
            ),
            (
                "release posing as channel",
                |d, _, _, _| d.kind = "release".into(),
                |e| matches!(e, ManifestError::Malformed { .. }),
            ),
            (
                "points at yanked",
                |d, _, _, _| {
                    d.yanked.push(Yanked {
                        version: d.version.clone(),
                        reason: "bad".into(),
                    })
                },
                |e| matches!(e, ManifestError::Malformed { .. }),
            ),
            (
                "expires before issued",
                |d, _, _, _| d.expires = "2025-01-01T00:00:00Z".into(),
                |e| matches!(e, ManifestError::Malformed { .. }),
            ),
            (
                "non-UTC time",
                |d, _, _, _| d.expires = "2026-02-01T00:00:00+01:00".into(),
                |e| matches!(e, ManifestError::Malformed { .. }),
            ),
            (
                "rollout over 100",
                |d, _, _, _| {
                    d.rollout = Some(Rollout {
                        percent: Some(101),
                        ..Rollout::default()
                    })
                },
                |e| matches!(e, ManifestError::Malformed { .. }),
            ),
            (
                "halted at a time that is not one",
                |d, _, _, _| {
                    d.rollout = Some(Rollout {
                        percent: Some(10),
                        halted: Some(crate::registry::rollout::Halt {
                            at: "when it broke".into(),
                            reason: "r".into(),
                        }),
                        ..Rollout::default()
                    })
                },
                |e| matches!(e, ManifestError::Malformed { .. }),
            ),
        ];
        for (name, mutate, expect) in cases {
            let mut doc = channel_doc();
            let mut tamper = Vec::new();
            let mut min = 3;
            let mut at = now;
            mutate(&mut doc, &mut tamper, &mut min, &mut at);
            let bytes = doc.to_bytes().unwrap();
            let sig = sk.sign(&bytes, "t").unwrap();
            let mut served = bytes.clone();
            if name == "tampered byte" {
                let i = served.len() / 2;
                served[i] ^= 0x01;
            }
            let r = verify_channel(&served, &sig, &keys, &app, &prod, min, at);
            if name == "valid" {
                assert_eq!(r.unwrap(), doc, "{name}");
            } else {
                let e = r.expect_err(name);
                assert!(expect(&e), "{name}: unexpected {e}");
                assert!(
                    e.to_string().contains("demo/channels/prod.json"),
                    "{name}: {e}"
                );
            }
        }
        // Signed by a key nobody trusts.
        let bytes = channel_doc().to_bytes().unwrap();
        let sig = other_sk.sign(&bytes, "t").unwrap();
        let e = verify_channel(&bytes, &sig, &keys, &app, &prod, 0, now).unwrap_err();
        assert!(
            matches!(e, ManifestError::Signature(KeyError::NotTrusted { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("not a trusted key"));
    }

    #[test]
    fn release_rejections_and_urls() {
        let (sk, keys) = key();
        let app: AppName = "demo".parse().unwrap();
        let v: Version = "1.2.0".parse().unwrap();
        let doc = release_doc();
        let bytes = doc.to_bytes().unwrap();
        let sig = sk.sign(&bytes, "t").unwrap();
        let ok = verify_release(&bytes, &sig, &keys, &app, &v).unwrap();
        let (loc, a) = ok
            .artifact_location(&"x86_64-linux".parse().unwrap())
            .unwrap();
        assert_eq!(
            loc,
            Location::Key("demo/releases/1.2.0/demo-1.2.0-x86_64-linux.tar.gz".into())
        );
        assert_eq!(a.size, 10);
        assert!(matches!(
            ok.artifact_location(&"aarch64-linux".parse().unwrap()),
            Err(ManifestError::NoArtifact { .. })
        ));
        // Served as another version's release document.
        let e = verify_release(&bytes, &sig, &keys, &app, &"1.3.0".parse().unwrap()).unwrap_err();
        assert!(matches!(e, ManifestError::WrongVersion { .. }), "{e}");
        let e = verify_release(&bytes, &sig, &keys, &"other".parse().unwrap(), &v).unwrap_err();
        assert!(matches!(
            e,
            ManifestError::Signature(_) | ManifestError::WrongApp { .. }
        ));
        // Bad sha256 is malformed.
        let mut bad = release_doc();
        bad.artifacts
            .values_mut()
            .for_each(|a| a.sha256 = "XYZ".into());
        let b = bad.to_bytes().unwrap();
        let s = sk.sign(&b, "t").unwrap();
        assert!(matches!(
            verify_release(&b, &s, &keys, &app, &v),
            Err(ManifestError::Malformed { .. })
        ));
        // URL rules.
        for (url, ok) in [
            ("a.tar.gz", true),
            ("sub/a.tar.gz", true),
            ("https://cdn.example.com/a.tar.gz", true),
            ("../1.0.0/a.tar.gz", false),
            ("/etc/passwd", false),
            ("file:///etc/passwd", false),
            ("s3://b/a", false),
            ("a//b", false),
            ("a%2e%2e/b", false),
            ("a?x=1", false),
        ] {
            assert_eq!(resolve_url(&app, &v, url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let (sk, keys) = key();
        let mut v: serde_json::Value = serde_json::to_value(channel_doc()).unwrap();
        v["future_field"] = serde_json::json!("x");
        let bytes = serde_json::to_vec(&v).unwrap();
        let sig = sk.sign(&bytes, "t").unwrap();
        verify_channel(
            &bytes,
            &sig,
            &keys,
            &"demo".parse().unwrap(),
            &"prod".parse().unwrap(),
            0,
            t("2026-01-02T00:00:00Z"),
        )
        .unwrap();
    }

    /// The JSON Schemas in registry-spec/ must describe what we write: every required
    /// field is written, and every field we write is described.
    #[test]
    fn schemas_match_what_we_write() {
        let mut channel = channel_doc();
        channel.rollout = Some(Rollout {
            percent: Some(5),
            waves: vec![],
            halted: Some(crate::registry::rollout::Halt {
                at: "2026-01-01T00:00:00Z".into(),
                reason: "r".into(),
            }),
        });
        channel.yanked.push(Yanked {
            version: "1.0.0".parse().unwrap(),
            reason: "r".into(),
        });
        channel.notes = Some("n".into());
        let mut release = release_doc();
        release.notes = Some("n".into());
        for (schema, doc) in [
            (
                include_str!("../../registry-spec/channel.schema.json"),
                serde_json::to_value(&channel).unwrap(),
            ),
            (
                include_str!("../../registry-spec/release.schema.json"),
                serde_json::to_value(&release).unwrap(),
            ),
        ] {
            let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
            crate::registry::assert_schema_describes(&schema, &doc, SCHEMA_VERSION);
        }
    }

    /// A document that cannot be serialised must not be signed as an empty one.
    #[test]
    fn unserialisable_documents_are_not_signed_as_empty_bytes() {
        // JSON object keys must be strings: serde_json refuses this map.
        let bad: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
        let e = document_bytes(&bad, "channel").unwrap_err();
        assert!(
            matches!(
                e,
                ManifestError::Serialise {
                    kind: "channel",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.class(), ErrorClass::Other);
    }

    #[test]
    fn waves_parse_relative_to_now() {
        let now = t("2026-01-01T00:00:00Z");
        let w = crate::registry::rollout::parse_waves("0s=10,1h=50,1d=100", now).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w[1].start, "2026-01-01T01:00:00Z");
        assert_eq!(w[2].percent, 100);
        assert!(crate::registry::rollout::parse_waves("1h=10,0s=50", now).is_err());
        assert!(crate::registry::rollout::parse_waves("0s=101", now).is_err());
        assert!(crate::registry::rollout::parse_waves("", now).is_err());
    }
}
