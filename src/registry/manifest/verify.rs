//! The checks an agent applies before believing a registry document (spec §9), in the
//! order that matters: the signature over the exact bytes first, so nothing unsigned is
//! ever parsed into a decision; then the document is parsed and matched against what was
//! asked for (app, channel, version), then sequence and freshness. Also which artifact of
//! a verified release to fetch, and from where.

use std::time::SystemTime;

use super::documents::{channel_key, parse_channel, parse_release, release_dir_key, release_key};
use super::{Artifact, ChannelDoc, ManifestError, ReleaseDoc, FORMAT_TAR_GZ};
use crate::registry::keys::TrustedKeys;
use crate::registry::names::{AppName, Channel, Target, Version};

/// Where an artifact's bytes are: a key in the same registry (relative url), or an
/// absolute http(s) URL (a CDN or mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Key(String),
    Url(String),
}

impl ReleaseDoc {
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
        // The URL parser would read `https:///x` as host `x`; the spec wants a host
        // right after `//`, as every other parser reads it.
        if url
            .split_once("://")
            .is_some_and(|(_, rest)| rest.starts_with('/'))
        {
            return Err(bad("absolute URL without a host"));
        }
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

#[cfg(test)]
mod tests {
    use super::super::documents::fixtures::{channel_doc, release_doc};
    use super::super::Yanked;
    use super::*;
    use crate::registry::keys::{generate, KeyError, SecretKey};
    use crate::registry::rollout::Rollout;

    fn key() -> (SecretKey, TrustedKeys) {
        let (sk, _) = generate(None).unwrap();
        let sk = SecretKey::load_from_str(&sk, None).unwrap();
        let keys = TrustedKeys::new(vec![sk.public_key().clone()]);
        (sk, keys)
    }

    fn t(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
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
                |d, _, _, _| d.yanked.push(Yanked::new(d.version.clone(), "bad".into())),
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
            ("https:///x.tar.gz", false),
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
}
