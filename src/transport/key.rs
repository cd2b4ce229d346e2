//! A registry key (`demo/channels/prod.json`): checked once, in its constructor and in
//! `Deserialize`, so a transport never maps an unchecked name onto a path, a URL or a
//! bucket. Like tough's `TargetName`, it deliberately does not act like a `String`
//! (no `Deref`, no `From<String>`): the only way in is [`Key::new`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

/// Why a string is not a registry key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid registry key {key:?}: {why}")]
pub struct BadKey {
    pub key: String,
    pub why: &'static str,
}

impl Key {
    /// A relative path of plain segments: not empty, no leading `/`, no empty, `.` or
    /// `..` segment, no backslash, no control character. Every scheme can then map it
    /// without a rule of its own: a directory cannot be left, a URL cannot be
    /// reinterpreted, a bucket key cannot be normalised into another one.
    pub fn new(key: impl Into<String>) -> Result<Key, BadKey> {
        let key = key.into();
        match why_not(&key) {
            None => Ok(Key(key)),
            Some(why) => Err(BadKey { key, why }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

fn why_not(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("empty");
    }
    if key.starts_with('/') {
        return Some("must be relative (no leading '/')");
    }
    if key.contains('\\') {
        return Some("backslashes are not allowed");
    }
    if key.chars().any(char::is_control) {
        return Some("control characters are not allowed");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("empty, '.' or '..' path segments are not allowed");
    }
    None
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Key::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_keys() {
        for good in [
            "demo/channels/prod.json",
            "demo/releases/1.0.0+build.5/demo 1.tar.gz",
            "a",
            "..a/b..",
            ".hidden",
            "ünïcode/ključ",
            "a%2e%2e/b",
        ] {
            assert_eq!(Key::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "a//b",
            "a/",
            "a/./b",
            ".",
            "..",
            "../x",
            "a/../b",
            "a/..",
            "a\\b",
            "..\\x",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            "a\u{85}b",
        ] {
            assert!(Key::new(bad).is_err(), "{bad:?}");
        }
        let e = Key::new("a/../b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid registry key \"a/../b\": empty, '.' or '..' path segments are not allowed"
        );
    }

    #[test]
    fn deserialize_goes_through_the_constructor() {
        let k: Key = serde_json::from_str("\"demo/channels/prod.json\"").unwrap();
        assert_eq!(
            k.segments().collect::<Vec<_>>(),
            ["demo", "channels", "prod.json"]
        );
        assert!(serde_json::from_str::<Key>("\"../etc/passwd\"").is_err());
        assert!(serde_json::from_str::<Key>("\"\"").is_err());
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            "\"demo/channels/prod.json\""
        );
    }
}
