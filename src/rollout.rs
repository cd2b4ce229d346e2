//! Staged rollout: which share of the fleet may take a release, and when.
//!
//! The types are part of the signed channel document (see registry-spec/). The decision
//! of whether *this* machine is inside the share is pure and deterministic.

use serde::{Deserialize, Serialize};

/// A rollout in a channel document. `percent` alone admits a fixed share; `waves` widen
/// the share over time without re-publishing (Bottlerocket-style update waves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Share of machines (0-100) admitted now. Ignored when `waves` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// From each wave's `start` (RFC 3339), that wave's share of the fleet is admitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// RFC 3339 UTC time, e.g. "2026-11-25T10:00:00Z".
    pub start: String,
    /// Share of the fleet (0-100) admitted from `start` on.
    pub percent: u8,
}

// ---- placeholder logic until the health branch lands ----
use sha2::{Digest, Sha256};
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    NotYet { share_now: u8 },
}

pub fn bucket(machine_id: &str, app: &str, version: &str) -> u32 {
    let d = Sha256::digest(format!("{machine_id}\n{app}\n{version}").as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 10_000
}

pub fn admission(rollout: Option<&Rollout>, bucket: u32, _now: SystemTime) -> Admission {
    let share = rollout.and_then(|r| r.percent).unwrap_or(100);
    if bucket < share as u32 * 100 {
        Admission::Admitted
    } else {
        Admission::NotYet { share_now: share }
    }
}

pub fn machine_id(over: Option<&str>, file: Option<&std::path::Path>) -> std::io::Result<String> {
    if let Some(m) = over {
        return Ok(m.to_string());
    }
    std::fs::read_to_string(file.unwrap_or(std::path::Path::new("/etc/machine-id")))
        .map(|s| s.trim().to_string())
}
