//! The channel and release documents as types, their parsing with the shape rules every
//! reader applies, and the canonical bytes a publisher signs. Nothing here checks a
//! signature: that is [`super::verify`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::blocks::BlocksRef;
use super::ManifestError;
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

/// A version that no agent on the channel may run, with the reason shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Yanked {
    pub version: Version,
    pub reason: String,
    /// Members a later revision added: kept when the list is rewritten (spec §8.6).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Yanked {
    pub fn new(version: Version, reason: String) -> Yanked {
        Yanked {
            version,
            reason,
            extra: Extra::new(),
        }
    }
}

/// Members of a document object this version does not know. Ignored when reading
/// (spec §4), but carried over by every command that writes the next document, so an
/// older publisher never deletes what a newer one wrote (spec §8.6).
pub type Extra = serde_json::Map<String, serde_json::Value>;

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
    /// Top-level members this version does not know, carried over (see [`Extra`]).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One downloadable file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub url: String,
    pub sha256: String,
    pub size: u64,
    pub format: String,
    /// Where the artifact's block list is (spec §6.2); absent in releases published
    /// before block lists, which agents download whole and verify before unpacking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlocksRef>,
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
    /// The data format the release needs (registry-spec §6): a machine snapshots its
    /// `data/` before activating a higher epoch. Absent means 0, and 0 is not written,
    /// so documents without epochs keep their exact bytes (and signatures).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data_epoch: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
        if self.sequence > MAX_INTEGER {
            return Err(bad("sequence must be below 2^53".into()));
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
            if a.size == 0 || a.size > MAX_INTEGER {
                return Err(bad(format!(
                    "artifact {t}: size must be positive and below 2^53"
                )));
            }
            // Spec §6: one malformed entry invalidates the whole release, whichever
            // target it is for, so every implementation accepts the same documents.
            // (An unknown `format` is not malformed: only that target is refused.)
            super::verify::resolve_url(&self.app, &self.version, &a.url)
                .map_err(|e| bad(format!("artifact {t}: {e}")))?;
            if let Some(b) = &a.blocks {
                b.check_shape()
                    .map_err(|why| bad(format!("artifact {t}: {why}")))?;
                super::verify::resolve_url(&self.app, &self.version, &b.url)
                    .map_err(|e| bad(format!("artifact {t}: blocks: {e}")))?;
            }
        }
        Ok(())
    }
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
    let malformed = |why: String| ManifestError::Malformed {
        what: what.to_string(),
        kind,
        why,
    };
    super::strict::check(bytes).map_err(malformed)?;
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
    check_canonical_versions(&value).map_err(malformed)?;
    check_no_nulls(&value, kind).map_err(malformed)?;
    serde_json::from_value(value).map_err(|source| ManifestError::Unparsable {
        what: what.to_string(),
        kind,
        source,
    })
}

/// Spec §4: no field of this format is nullable; `null` for an optional field would be
/// "absent" to one reader and a type error to another (the schemas say the latter).
fn check_no_nulls(doc: &serde_json::Value, kind: &str) -> Result<(), String> {
    let optional: &[&str] = match kind {
        "channel" => &["rollout", "yanked", "notes"],
        _ => &["notes"],
    };
    let rollout = doc.get("rollout").filter(|_| kind == "channel");
    let fields = optional.iter().copied().map(|f| (f, doc.get(f))).chain(
        ["percent", "waves", "halted"]
            .into_iter()
            .map(|f| (f, rollout.and_then(|r| r.get(f)))),
    );
    for (name, value) in fields {
        if value.is_some_and(serde_json::Value::is_null) {
            return Err(format!(
                "{name} is null (leave an optional field out instead)"
            ));
        }
    }
    Ok(())
}

/// Integers are below 2^53 (spec §4), so every JSON parser reads them exactly.
const MAX_INTEGER: u64 = (1 << 53) - 1;

/// Spec §2.1: documents hold versions in canonical form only (`1.2.3`, never `v1.2.3`);
/// the `v` spelling is a command-line convenience. An agent that canonicalised it would
/// install what another implementation rejects.
fn check_canonical_versions(doc: &serde_json::Value) -> Result<(), String> {
    let yanked = doc
        .get("yanked")
        .and_then(|y| y.as_array())
        .into_iter()
        .flatten()
        .filter_map(|y| y.get("version"));
    for v in doc.get("version").into_iter().chain(yanked) {
        let Some(written) = v.as_str() else { continue };
        if let Ok(parsed) = written.parse::<Version>() {
            let canonical = parsed.to_string();
            if canonical != written {
                return Err(format!(
                    "version {written:?} is not in canonical form: write {canonical:?} (a leading 'v' is accepted on the command line only)"
                ));
            }
        }
    }
    Ok(())
}

/// Parse a channel document without checking its signature: for publishers that have
/// already verified it, and for tests. Agents use [`verify_channel`](super::verify_channel).
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

#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    pub(in crate::registry::manifest) fn channel_doc() -> ChannelDoc {
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
            extra: Extra::new(),
        }
    }

    pub(in crate::registry::manifest) fn release_doc() -> ReleaseDoc {
        let mut artifacts = BTreeMap::new();
        artifacts.insert(
            "x86_64-linux".parse().unwrap(),
            Artifact {
                url: "demo-1.2.0-x86_64-linux.tar.gz".into(),
                sha256: "a".repeat(64),
                size: 10,
                format: "tar.gz".into(),
                blocks: None,
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
            data_epoch: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{channel_doc, release_doc};
    use super::*;
    use crate::error::{Classify, ErrorClass};

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
        channel
            .yanked
            .push(Yanked::new("1.0.0".parse().unwrap(), "r".into()));
        channel.notes = Some("n".into());
        let mut release = release_doc();
        release.notes = Some("n".into());
        for a in release.artifacts.values_mut() {
            a.blocks = Some(BlocksRef {
                url: "demo-1.2.0-x86_64-linux.tar.gz.blocks.json".into(),
                sha256: "b".repeat(64),
                size: 100,
            });
        }
        release.data_epoch = 3;
        for (schema, doc) in [
            (
                include_str!("../../../registry-spec/channel.schema.json"),
                serde_json::to_value(&channel).unwrap(),
            ),
            (
                include_str!("../../../registry-spec/release.schema.json"),
                serde_json::to_value(&release).unwrap(),
            ),
        ] {
            let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
            crate::registry::assert_schema_describes(&schema, &doc, SCHEMA_VERSION);
        }
        // Artifact fields (the block list reference included) are described too.
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../registry-spec/release.schema.json"))
                .unwrap();
        let described = schema["$defs"]["artifact"]["properties"]
            .as_object()
            .unwrap();
        let written = serde_json::to_value(&release).unwrap();
        for a in written["artifacts"].as_object().unwrap().values() {
            for k in a.as_object().unwrap().keys() {
                assert!(
                    described.contains_key(k),
                    "artifact field {k} not in the schema"
                );
            }
        }
        let blocks: serde_json::Value =
            serde_json::from_str(include_str!("../../../registry-spec/blocks.schema.json"))
                .unwrap();
        let (list, _, _) = super::super::BlockList::compute(&[7u8; 5000][..], 4096).unwrap();
        let list: serde_json::Value = serde_json::from_slice(&list.to_bytes().unwrap()).unwrap();
        crate::registry::assert_schema_describes(&blocks, &list, 1);
    }

    /// Epoch 0 is not written, so a release without epochs keeps the bytes (and the
    /// signature) it had before the field existed; a document without it reads as 0.
    #[test]
    fn data_epoch_zero_keeps_the_old_bytes() {
        let doc = release_doc();
        let bytes = doc.to_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("data_epoch"), "{text}");
        assert_eq!(parse_release(&bytes, "r").unwrap().data_epoch, 0);
        let mut raised = doc;
        raised.data_epoch = 2;
        let bytes = raised.to_bytes().unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"data_epoch\": 2"));
        assert_eq!(parse_release(&bytes, "r").unwrap().data_epoch, 2);
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
}
