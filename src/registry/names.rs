//! Validated names that travel from untrusted input into paths and URLs.
//!
//! Every name is checked once, in its constructor, and `Deserialize` goes through that
//! constructor, so no code path can hold an app, channel, target or version that would
//! escape a directory or a URL prefix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("invalid {kind} {value:?}: {why}")]
    Invalid {
        kind: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Shared rule for app, channel and target names: they become path segments and URL
/// segments, so only a conservative character set is allowed.
fn check_segment(kind: &'static str, s: &str) -> Result<(), NameError> {
    let bad = |why| {
        Err(NameError::Invalid {
            kind,
            value: s.to_string(),
            why,
        })
    };
    if s.is_empty() {
        return bad("must not be empty");
    }
    if s.len() > 64 {
        return bad("must be at most 64 characters");
    }
    let first = s.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return bad("may contain only letters, digits, '-', '_' and '.'");
    }
    if s.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(())
}

macro_rules! segment_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check_segment($kind, s)?;
                Ok(Self(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

segment_name!(
    /// An application name: one directory in a registry (`<app>/...`).
    AppName,
    "app name"
);
segment_name!(
    /// A channel name such as `dev`, `staging` or `prod`.
    Channel,
    "channel"
);
segment_name!(
    /// An artifact target such as `x86_64-linux`.
    Target,
    "target"
);

/// Architectures a `<arch>-<os>` target may name: Rust's `std::env::consts::ARCH`
/// spellings (what [`Target::host`] writes) and the common distribution ones.
pub const KNOWN_ARCHES: &[&str] = &[
    "x86_64",
    "aarch64",
    "armv7",
    "armv6",
    "arm",
    "i686",
    "i586",
    "x86",
    "riscv64",
    "s390x",
    "ppc64le",
    "ppc64",
    "powerpc64",
    "powerpc",
    "mips64",
    "mips",
    "loongarch64",
    "sparc64",
];

/// Operating systems a target may name (`std::env::consts::OS` spellings).
pub const KNOWN_OSES: &[&str] = &[
    "linux",
    "android",
    "freebsd",
    "netbsd",
    "openbsd",
    "dragonfly",
    "illumos",
    "solaris",
    "macos",
    "windows",
];

/// A target that is not `<arch>-<os>` with a known arch and os: most likely a typo that
/// would publish an artifact no machine ever asks for, under a version number that can
/// then not be reused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("target {target:?} is not <arch>-<os> with a known arch and os{}; known arches: {}; known os: {}; pass --allow-target to use it anyway", suggest(.suggestion), KNOWN_ARCHES.join(", "), KNOWN_OSES.join(", "))]
pub struct UnknownTarget {
    pub target: String,
    pub suggestion: Option<String>,
}

fn suggest(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

impl crate::error::Classify for UnknownTarget {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Usage
    }
}

impl Target {
    /// Refuse a target that is not `<arch>-<os>` with a known arch and os, suggesting
    /// the spelling meant when '-' was typed for '_' (`x86-64-linux`).
    pub fn check_known(&self) -> Result<(), UnknownTarget> {
        let (arch, os) = self.0.rsplit_once('-').unwrap_or((&self.0, ""));
        if KNOWN_ARCHES.contains(&arch) && KNOWN_OSES.contains(&os) {
            return Ok(());
        }
        let fixed_arch = arch.replace('-', "_");
        let suggestion = (KNOWN_ARCHES.contains(&fixed_arch.as_str()) && KNOWN_OSES.contains(&os))
            .then(|| format!("{fixed_arch}-{os}"));
        Err(UnknownTarget {
            target: self.0.clone(),
            suggestion,
        })
    }

    /// The target this binary runs on, in the registry's `<arch>-<os>` spelling.
    pub fn host() -> Target {
        Target(format!(
            "{}-{}",
            std::env::consts::ARCH,
            std::env::consts::OS
        ))
    }
}

/// A release version, as it names `releases/<version>/` on machines and in registries:
/// either a semantic version or an opaque label such as a git hash or a timestamp.
///
/// Teams name builds the way their scripts do (`git rev-parse --short HEAD`,
/// `date +%Y%m%d%H%M%S`, `v1.2.3`), so both kinds are first class. The grammar is
/// normative in `registry-spec/README.md` §2:
///
/// - a string that parses as Semantic Versioning 2.0.0, after an optional leading `v`, is
///   **semantic**; its canonical form has no `v`, so `v1.2.3` and `1.2.3` are one release;
/// - anything else is an **opaque label**: 1-128 characters from `[A-Za-z0-9._+-]`, the
///   first a letter or digit, never containing `..`, and not one of the names reserved
///   in `releases/` (`current`, `lost+found`). It is its own canonical form.
///
/// Either way the canonical form is at most 128 characters and safe as one path segment,
/// one URL segment and one S3 key segment.
///
/// `Ord` is a fixed total order (semantic versions by precedence, then labels by their
/// bytes) so versions can key maps and print stably. It does **not** say which release is
/// newer when a label is involved: a label carries no order of its own. Locally that is
/// install time (`disk::order`); for an agent it is the channel's sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(Label);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Label {
    Semantic(semver::Version),
    Opaque(String),
}

/// The longest canonical version: one path segment with room to spare (names of
/// staging directories and artifacts add to it).
pub const MAX_VERSION_LEN: usize = 128;

/// Directory names under `releases/` that are never a release: the link to the running
/// release, and the directory a filesystem keeps at its root when `releases/` is a mount.
const RESERVED_LABELS: [&str; 2] = ["current", "lost+found"];

impl Version {
    /// The semantic version, or None for an opaque label.
    pub fn semantic(&self) -> Option<&semver::Version> {
        match &self.0 {
            Label::Semantic(v) => Some(v),
            Label::Opaque(_) => None,
        }
    }

    pub fn is_semantic(&self) -> bool {
        self.semantic().is_some()
    }

    /// Whether `name` (a directory under `releases/`) spells this version: its canonical
    /// form, or for a semantic version the seed's `v1.2.3`.
    pub fn is_spelled(&self, name: &str) -> bool {
        let canon = self.to_string();
        name == canon || (self.is_semantic() && name.strip_prefix('v') == Some(&canon))
    }
}

fn check_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > MAX_VERSION_LEN {
        return Err("must be at most 128 characters");
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or digit (a semantic version such as 1.2.3, or a label such as a git hash or a timestamp)");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    {
        return Err("may contain only letters, digits, '.', '_', '+' and '-' (a semantic version such as 1.2.3, or a label such as a git hash or a timestamp)");
    }
    if s.contains("..") {
        return Err("must not contain '..'");
    }
    if RESERVED_LABELS.contains(&s) {
        return Err("is reserved: it names releases/current (the link to the running release) or a filesystem's lost+found");
    }
    Ok(())
}

impl FromStr for Version {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let invalid = |why| NameError::Invalid {
            kind: "version",
            value: s.to_string(),
            why,
        };
        let body = s.strip_prefix('v').unwrap_or(s);
        if let Ok(v) = semver::Version::parse(body) {
            // A semantic version also becomes a directory name: the label rules (length,
            // characters) hold for its canonical form too.
            check_label(&v.to_string()).map_err(invalid)?;
            return Ok(Version(Label::Semantic(v)));
        }
        check_label(s).map_err(invalid)?;
        Ok(Version(Label::Opaque(s.to_string())))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Label::Semantic(v) => fmt::Display::fmt(v, f),
            Label::Opaque(s) => f.write_str(s),
        }
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn known_targets() {
        let cases = [
            ("x86_64-linux", Ok(())),
            ("aarch64-linux", Ok(())),
            ("armv7-linux", Ok(())),
            ("riscv64-linux", Ok(())),
            ("s390x-linux", Ok(())),
            ("ppc64le-linux", Ok(())),
            ("x86_64-macos", Ok(())),
            ("x86-64-linux", Err(Some("x86_64-linux"))),
            ("amd64-linux", Err(None)),
            ("x86_64-linx", Err(None)),
            ("x86_64", Err(None)),
            ("linux", Err(None)),
        ];
        for (t, want) in cases {
            let got = t.parse::<Target>().unwrap().check_known();
            assert_eq!(
                got.map_err(|e| e.suggestion),
                want.map_err(|s| s.map(String::from)),
                "{t}"
            );
        }
        assert!(Target::host().check_known().is_ok());
        let msg = "x86-64-linux"
            .parse::<Target>()
            .unwrap()
            .check_known()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("did you mean x86_64-linux?") && msg.contains("--allow-target"),
            "{msg}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_reject_path_tricks() {
        for bad in ["", "..", "a/b", "../x", ".hidden", "a..b", "a b", "-x", "é"] {
            assert!(bad.parse::<AppName>().is_err(), "{bad:?} accepted");
            assert!(bad.parse::<Channel>().is_err(), "{bad:?} accepted");
        }
        for good in ["demo", "my-app", "prod", "x86_64-linux", "a.b"] {
            assert_eq!(good.parse::<AppName>().unwrap().as_str(), good);
        }
    }

    #[test]
    fn versions_are_canonical() {
        let a: Version = "v1.2.3".parse().unwrap();
        let b: Version = "1.2.3".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "1.2.3");
        assert!("../1.2.3".parse::<Version>().is_err());
        let pre: Version = "1.3.0-rc.1".parse().unwrap();
        assert!(pre < "1.3.0".parse::<Version>().unwrap());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"1.2.3\"");
        assert!(serde_json::from_str::<Version>("\"../x\"").is_err());
    }

    /// (input, Ok((canonical, semantic)) or Err(part of the reason))
    type Case<'a> = (&'a str, Result<(&'a str, bool), &'a str>);

    #[test]
    fn version_grammar_table() {
        let long_ok = "a".repeat(128);
        let long_bad = "a".repeat(129);
        let two_hundred = "b".repeat(200);
        let long_semver = format!("1.2.3-{}", "x".repeat(123));
        let cases: Vec<Case<'_>> = vec![
            ("1.2.3", Ok(("1.2.3", true))),
            ("v1.2.3", Ok(("1.2.3", true))),
            ("1.2.3-rc.1+build.5", Ok(("1.2.3-rc.1+build.5", true))),
            ("v2.0.0-beta", Ok(("2.0.0-beta", true))),
            // Git hashes, timestamps and other labels: opaque, spelled as given.
            ("abc1234", Ok(("abc1234", false))),
            ("1234567", Ok(("1234567", false))),
            ("20261130041500", Ok(("20261130041500", false))),
            ("2026-11-30T04.15", Ok(("2026-11-30T04.15", false))),
            ("build_42+linux", Ok(("build_42+linux", false))),
            ("1.2", Ok(("1.2", false))),
            ("V1.2.3", Ok(("V1.2.3", false))),
            ("vv1.2.3", Ok(("vv1.2.3", false))),
            ("01.2.3", Ok(("01.2.3", false))),
            ("v", Ok(("v", false))),
            ("release-2026.11", Ok(("release-2026.11", false))),
            (&long_ok, Ok((&long_ok, false))),
            ("", Err("must not be empty")),
            ("../x", Err("must start with a letter or digit")),
            ("a/../x", Err("may contain only")),
            ("a..b", Err("must not contain '..'")),
            ("1.2.3..4", Err("must not contain '..'")),
            (".hidden", Err("must start with a letter or digit")),
            ("-x", Err("must start with a letter or digit")),
            ("a/b", Err("may contain only")),
            ("a b", Err("may contain only")),
            ("abc\n", Err("may contain only")),
            ("ab\u{7}c", Err("may contain only")),
            ("ab\0c", Err("may contain only")),
            ("é", Err("must start with a letter or digit")),
            ("aé", Err("may contain only")),
            ("a%2e", Err("may contain only")),
            ("current", Err("is reserved")),
            ("lost+found", Err("is reserved")),
            (&long_bad, Err("at most 128 characters")),
            (&two_hundred, Err("at most 128 characters")),
            (&long_semver, Err("at most 128 characters")),
        ];
        for (input, want) in cases {
            let got = input.parse::<Version>();
            match (got, want) {
                (Ok(v), Ok((canon, semantic))) => {
                    assert_eq!(v.to_string(), canon, "{input:?}");
                    assert_eq!(v.is_semantic(), semantic, "{input:?}");
                    // Canonical forms are stable and round-trip through JSON.
                    assert_eq!(canon.parse::<Version>().unwrap(), v, "{input:?}");
                    let json = serde_json::to_string(&v).unwrap();
                    assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v);
                }
                (Err(e), Err(why)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(why), "{input:?}: {msg}");
                    assert!(msg.starts_with("invalid version "), "{input:?}: {msg}");
                    // The offending value is quoted with control characters escaped.
                    assert!(!msg.contains('\n') && !msg.contains('\0'), "{msg:?}");
                    let json = serde_json::to_string(input).unwrap();
                    assert!(serde_json::from_str::<Version>(&json).is_err(), "{input:?}");
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn release_directory_spellings() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("1.2.3").is_spelled("1.2.3"));
        assert!(v("1.2.3").is_spelled("v1.2.3"));
        assert!(!v("1.2.3").is_spelled("V1.2.3"));
        assert!(v("abc1234").is_spelled("abc1234"));
        assert!(!v("abc1234").is_spelled("vabc1234"));
        assert!(v("vabc").is_spelled("vabc"));
        assert!(!v("vabc").is_spelled("abc"));
    }
}
