//! The update decision (placeholder until the health branch lands).

use std::collections::BTreeMap;

use crate::names::Version;
use crate::rollout::Admission;
use crate::state::Blocked;

pub struct Inputs<'a> {
    pub current: Option<&'a Version>,
    pub channel_version: &'a Version,
    pub channel_sequence: u64,
    pub last_sequence: u64,
    pub pinned: Option<&'a Version>,
    pub blocked: &'a BTreeMap<Version, Blocked>,
    pub yanked: &'a [Version],
    pub installed: &'a [Version],
    pub admission: Admission,
    pub bucket: u32,
}

#[derive(Debug, Clone)]
pub enum Decision {
    UpToDate(Version),
    Stay(String),
    Update { to: Version, why: String },
}

impl Decision {
    pub fn target(&self) -> Option<&Version> {
        match self {
            Decision::Update { to, .. } => Some(to),
            _ => None,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Decision::UpToDate(_) => "up-to-date",
            Decision::Stay(_) => "stay",
            Decision::Update { .. } => "update",
        }
    }
    pub fn explain(&self) -> String {
        match self {
            Decision::UpToDate(v) => format!("up to date on {v}"),
            Decision::Stay(s) => s.clone(),
            Decision::Update { why, .. } => why.clone(),
        }
    }
}

pub fn decide(i: &Inputs) -> Decision {
    let ch = i.channel_version;
    if let Some(p) = i.pinned {
        if i.current == Some(p) {
            return Decision::Stay(format!("pinned to {p}"));
        }
        return Decision::Update {
            to: p.clone(),
            why: format!("pinned to {p}"),
        };
    }
    let cur_yanked = i.current.is_some_and(|c| i.yanked.contains(c));
    if i.yanked.contains(ch) {
        return Decision::Stay(format!("channel version {ch} is yanked"));
    }
    if let Some(b) = i.blocked.get(ch) {
        return Decision::Stay(format!("{ch} is blocked: {}", b.reason));
    }
    if i.current == Some(ch) {
        return Decision::UpToDate(ch.clone());
    }
    if cur_yanked {
        return Decision::Update {
            to: ch.clone(),
            why: format!("leaving yanked version for {ch}"),
        };
    }
    if i.admission != Admission::Admitted {
        return Decision::Stay(format!(
            "waiting for the rollout to reach this machine ({ch})"
        ));
    }
    Decision::Update {
        to: ch.clone(),
        why: format!("updating to {ch}"),
    }
}
