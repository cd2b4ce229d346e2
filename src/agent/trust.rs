//! Which publisher keys this machine trusts when its config pins root keys: the keys
//! document it last accepted, kept in `.updraft/keys.json` so the next poll walks
//! forward from that version (never back to an older one), and the file's format.
//!
//! The copy is only ever written after the document passed every check, by root, in a
//! directory only root writes; it is re-read with its shape checked, not re-verified
//! (after a root rotation the pinned keys no longer sign the current version).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::disk::layout::AppRoot;
use crate::registry::keyring::{parse_keys_doc, KeysDoc, Roots};

/// The root keys and threshold pinned in the config, as written there.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub roots: Roots,
    pub lines: Vec<String>,
    pub threshold: u32,
}

/// `.updraft/keys.json`: the accepted keys document, with the pins it was reached from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Accepted {
    pinned_root_keys: Vec<String>,
    pinned_root_threshold: u32,
    document: String,
    signatures: String,
}

pub fn accepted_path(root: &AppRoot) -> PathBuf {
    root.meta().join("keys.json")
}

/// The keys document accepted before, if it was reached from the same pins (an
/// operator who changes `root_keys` starts over from the new ones). A missing or
/// unreadable copy is "none": the pins are the trust anchor either way.
pub fn load(path: &Path, pinned: &Pinned) -> Option<KeysDoc> {
    let bytes = std::fs::read(path).ok()?;
    let a: Accepted = serde_json::from_slice(&bytes).ok()?;
    if a.pinned_root_keys != pinned.lines || a.pinned_root_threshold != pinned.threshold {
        return None;
    }
    parse_keys_doc(a.document.as_bytes(), &path.display().to_string()).ok()
}

/// Remember `document` as accepted, unless a newer version was stored meanwhile (by a
/// `check` running beside the daemon).
pub fn store(
    path: &Path,
    pinned: &Pinned,
    document: &[u8],
    signatures: &str,
    version: u64,
) -> std::io::Result<()> {
    if load(path, pinned).is_some_and(|d| d.version >= version) {
        return Ok(());
    }
    let a = Accepted {
        pinned_root_keys: pinned.lines.clone(),
        pinned_root_threshold: pinned.threshold,
        document: String::from_utf8_lossy(document).into_owned(),
        signatures: signatures.to_string(),
    };
    let bytes = serde_json::to_vec_pretty(&a).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_atomic(path, &bytes, 0o644)
}
