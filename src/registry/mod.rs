//! The registry contract: what CI publishers and agents share.
//!
//! Validated names, signed channel and release documents, keys, rollout buckets, and the
//! publisher's operations (`publish`, `channel` changes, `audit`, on top of `signed`
//! document reads and writes). Nothing here knows about an app root on a machine, so a
//! publisher (or a second implementation reading this code) needs only this folder,
//! `transport/` and `archive/`.

pub mod audit;
pub mod channel;
pub(crate) mod fleet;
pub mod keyring;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod publish;
pub mod report;
pub mod rollout;
pub mod serve;
pub mod signed;

/// The check both document families' tests make: a JSON Schema in registry-spec/ must
/// describe exactly what we write (every required key written, nothing written that the
/// schema does not name, the same schema_version).
#[cfg(test)]
pub(crate) fn assert_schema_describes(
    schema: &serde_json::Value,
    written: &serde_json::Value,
    schema_version: u32,
) {
    let props = schema["properties"].as_object().unwrap();
    let obj = written.as_object().unwrap();
    for req in schema["required"].as_array().unwrap() {
        assert!(obj.contains_key(req.as_str().unwrap()), "{req} not written");
    }
    for k in obj.keys() {
        assert!(props.contains_key(k), "{k} written but not in the schema");
    }
    assert_eq!(
        props["schema_version"]["const"],
        serde_json::json!(schema_version)
    );
}
