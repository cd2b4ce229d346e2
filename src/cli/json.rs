//! `--json` as an interface (README "JSON output"): every document carries
//! `"schema_version": 1` and is described by a JSON Schema under `docs/json/`; a
//! failure is one shape whatever the command. Field names for the same fact are the
//! same across commands: `current`, `channel.{name,version,sequence,expires_at}`,
//! `machine`, `hostname`.

use serde::Serialize;

use crate::agent::{machine, report};
use crate::config::Config;
use crate::disk::state::State;
use crate::error::ErrorClass;
use crate::registry::manifest;
use crate::registry::names::{Channel, Version};

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

/// The channel this machine follows and what its last accepted document said: the
/// same object, under `channel`, in `check`, `status` and `why`.
#[derive(Debug, Serialize)]
pub struct ChannelFacts {
    /// The channel's name (`prod`).
    pub name: Option<Channel>,
    /// The version the channel document points at.
    pub version: Option<Version>,
    /// The channel document's sequence.
    pub sequence: Option<u64>,
    /// When the channel document expires: agents refuse it after (freeze attacks), so
    /// a publisher must re-sign it before.
    pub expires_at: Option<String>,
}

impl ChannelFacts {
    /// From the last document this machine accepted (the state file), for the channel
    /// `configured` (else the one recorded there).
    pub fn seen(state: &State, configured: Option<&Channel>) -> ChannelFacts {
        let seen = state.channel.as_ref();
        ChannelFacts {
            name: configured
                .cloned()
                .or_else(|| seen.and_then(|c| c.channel.clone())),
            version: seen.and_then(|c| c.version.clone()),
            sequence: seen.map(|c| c.sequence),
            // The cached document was verified when it was accepted; only its expiry
            // is read here.
            expires_at: seen
                .and_then(|c| c.document.as_deref())
                .and_then(|d| manifest::parse_channel(d.as_bytes(), "cached channel").ok())
                .map(|doc| doc.expires),
        }
    }
}

/// Which machine a document is about: `machine` is the app-specific id its fleet
/// reports are stored under (never /etc/machine-id itself), `hostname` the kernel's.
#[derive(Debug, Serialize)]
pub struct MachineFacts {
    pub machine: Option<String>,
    pub hostname: Option<String>,
}

impl MachineFacts {
    /// `machine` needs the app's name and a readable machine id; without them it is null.
    pub fn of(config: &Config) -> MachineFacts {
        let id = config.app.as_ref().and_then(|app| {
            machine::machine_id(
                config.machine_id.as_deref(),
                config.machine_id_file.as_deref(),
            )
            .ok()
            .map(|m| machine::app_specific_id(&m, app.as_str()))
        });
        MachineFacts {
            machine: id,
            hostname: report::hostname(),
        }
    }
}
