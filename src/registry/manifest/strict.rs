//! The JSON rules of spec §4 that a general JSON parser leaves open: a signed document
//! whose meaning depends on which duplicate member a parser keeps (serde_json keeps the
//! last, others the first) would make two verifiers act on different documents from
//! the same signed bytes, so duplicates are refused, at every depth.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// Why `bytes` break the strict JSON rules, or Ok when they do not. Only what
/// serde_json would accept is judged here; malformed JSON is left to the real parse,
/// which reports it with its position.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err("it starts with a byte-order mark (documents are UTF-8 without one)".into());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match NoDuplicates.deserialize(&mut de) {
        Err(e) if e.is_data() => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Walks any JSON value and fails on an object with two members of one name.
struct NoDuplicates;

impl<'de> DeserializeSeed<'de> for NoDuplicates {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicates)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(A::Error::custom(format!(
                    "member {name:?} appears twice in one object (duplicate names are refused: readers would disagree on which one counts)"
                )));
            }
            map.next_value_seed(NoDuplicates)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_table() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (br#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#, None),
            (br#"{"a": 1, "a": 1}"#, Some("\"a\" appears twice")),
            (
                br#"{"a": {"x": 1, "y": 2, "x": 3}}"#,
                Some("\"x\" appears twice"),
            ),
            (
                br#"{"a": [{"v": 1}, {"v": 2, "v": 2}]}"#,
                Some("\"v\" appears twice"),
            ),
            // The same name in two objects is fine.
            (br#"[{"v": 1}, {"v": 2}]"#, None),
            (b"\xEF\xBB\xBF{}", Some("byte-order mark")),
            // Not JSON at all: left to the real parse, which says where.
            (b"{", None),
        ];
        for (bytes, want) in cases {
            let got = check(bytes);
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{bytes:?}: {e}"),
                (got, want) => panic!("{bytes:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
