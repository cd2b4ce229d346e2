//! `--json` as an interface (README "JSON output"): every document carries
//! `"schema_version": 1` and is described by a JSON Schema under `docs/json/`; a
//! failure is one shape whatever the command. Field names for the same fact are the
//! same across commands: `current`, `channel.{name,version,sequence,expires_at}`,
//! `machine`, `hostname`.

use serde::Serialize;

use crate::error::ErrorClass;

/// The version of every `--json` document's shape. Fields are only ever added within a
/// version; renaming or removing one would be version 2.
pub const SCHEMA_VERSION: u32 = 1;

/// `value`'s fields after `"schema_version"`. `value` must serialize as an object.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    schema_version: u32,
    #[serde(flatten)]
    value: &'a T,
}

/// Print `value` as a versioned JSON document on stdout.
pub fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(&Versioned {
        schema_version: SCHEMA_VERSION,
        value,
    })?;
    outln!("{text}")
}

#[derive(Serialize)]
struct ErrorDocument<'a> {
    schema_version: u32,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    /// The exit code the command ends with.
    code: u8,
    /// The class of failure, stable like the code (`ErrorClass::name`).
    kind: &'static str,
    message: &'a str,
}

/// `{"schema_version": 1, "error": {"code": N, "kind": "...", "message": "..."}}`.
pub fn error_document(code: u8, class: ErrorClass, message: &str) -> String {
    let doc = ErrorDocument {
        schema_version: SCHEMA_VERSION,
        error: ErrorBody {
            code,
            kind: class.name(),
            message,
        },
    };
    // Three plain fields: serialising them cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
