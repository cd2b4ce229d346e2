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
