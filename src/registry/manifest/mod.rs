//! Registry documents (channel and release) and the checks an agent applies before
//! believing one. The contract is registry-spec/README.md; this module is its reference
//! implementation, in two halves: [`documents`] (the types, parsing and the canonical
//! bytes a publisher signs) and [`verify`] (what an agent checks before believing a
//! document: signature, what was asked for, sequence, expiry, and which artifact to
//! fetch from where).

mod blocks;
mod documents;
mod strict;
mod verify;

pub use blocks::{
    verify_block_list, BlockError, BlockList, BlockListDoc, BlocksRef, VerifiedBlocks,
    BLOCKS_SUFFIX, BLOCK_SIZE, MAX_BLOCK_SIZE,
};
pub use documents::{
    artifact_file_name, channel_key, parse_channel, parse_release, release_dir_key, release_key,
    sig_key, Artifact, ChannelDoc, Extra, ReleaseDoc, Yanked, FORMAT_TAR_GZ, MAX_ARTIFACT_BYTES,
    MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES, SCHEMA_VERSION, SIG_SUFFIX,
};
pub use verify::{check_not_expired, resolve_url, verify_channel, verify_release, Location};

use crate::error::{Classify, ErrorClass};
use crate::registry::keys::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Signature(#[from] KeyError),
    #[error("{what} is not a valid {kind} document: {why}")]
    Malformed {
        what: String,
        kind: &'static str,
        why: String,
    },
    #[error("{what} is not a valid {kind} document: {source}")]
    Unparsable {
        what: String,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} has schema_version {found}, newer than the {supported} this updraft understands: upgrade updraft on this machine")]
    UnsupportedSchema {
        what: String,
        found: u32,
        supported: u32,
    },
    #[error("{what} is signed for app {found:?}, not {expected:?}: possible mix-and-match attack (a valid document served at the wrong place); check the registry layout")]
    WrongApp {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what} is signed for channel {found:?}, not {expected:?}: possible mix-and-match attack; check the registry layout")]
    WrongChannel {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what} is signed for version {found}, not {expected}: possible mix-and-match attack; check the registry layout")]
    WrongVersion {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what}: channel document sequence {found} is lower than {min} already accepted: possible rollback attack (an old signed document replayed); if instead the registry was restored from an older copy, its channel must be re-signed with a sequence above {min}")]
    Rollback { what: String, found: u64, min: u64 },
    #[error("{what} expired at {expires} (now {now}): possible freeze attack, or nobody re-signed the channel; re-sign it with `updraft promote --from <channel> --channel <channel>`")]
    Expired {
        what: String,
        expires: String,
        now: String,
    },
    #[error("release {version} has no artifact for target {target} (it has: {available}); publish one with `updraft publish --target {target}`")]
    NoArtifact {
        version: String,
        target: String,
        available: String,
    },
    #[error("artifact for {target} in release {version} has format {format:?}; this updraft unpacks only \"tar.gz\"")]
    UnsupportedFormat {
        version: String,
        target: String,
        format: String,
    },
    #[error("artifact url {url:?} in release {version} is not allowed: {why}")]
    BadUrl {
        version: String,
        url: String,
        why: String,
    },
    #[error("{what} does not match its signed reference: expected sha256 {expected} ({expected_size} bytes), got {actual} ({actual_size} bytes); the registry or a mirror serves another block list: republish the release, or check what serves it")]
    BlockListMismatch {
        what: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
    #[error("cannot write the {kind} document as JSON: {source}")]
    Serialise {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Classify for ManifestError {
    fn class(&self) -> ErrorClass {
        match self {
            ManifestError::Serialise { .. } => ErrorClass::Other,
            _ => ErrorClass::Verify,
        }
    }
}
