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

impl Target {
    /// The target this binary runs on, in the registry's `<arch>-<os>` spelling.
    pub fn host() -> Target {
        Target(format!(
            "{}-{}",
            std::env::consts::ARCH,
            std::env::consts::OS
        ))
    }
}

/// A release version: semver, written without a leading `v` everywhere we write it.
///
/// A leading `v` is accepted on input because the seed's releases (and most git tags)
/// are spelled `v1.2.3`; the canonical form is what names the directory under
/// `releases/`, so `v1.2.3` and `1.2.3` can never become two releases.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(semver::Version);

impl Version {
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl FromStr for Version {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let body = s.strip_prefix('v').unwrap_or(s);
        let v = semver::Version::parse(body).map_err(|_| NameError::Invalid {
            kind: "version",
            value: s.to_string(),
            why: "must be a semantic version such as 1.2.3 (a leading 'v' is allowed)",
        })?;
        // Build metadata may hold '/' or other path-hostile bytes? semver restricts it to
        // [0-9A-Za-z-.], but a version also becomes a directory name, so check the whole.
        let canon = v.to_string();
        if canon.len() > 128 || canon.contains("..") {
            return Err(NameError::Invalid {
                kind: "version",
                value: s.to_string(),
                why: "too long or contains '..'",
            });
        }
        Ok(Version(v))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
        assert!("1.2".parse::<Version>().is_err());
        assert!("../1.2.3".parse::<Version>().is_err());
        let pre: Version = "1.3.0-rc.1".parse().unwrap();
        assert!(pre < "1.3.0".parse::<Version>().unwrap());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"1.2.3\"");
        assert!(serde_json::from_str::<Version>("\"nope\"").is_err());
    }
}
