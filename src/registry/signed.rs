//! What every publisher operation shares: its error, who signs, and how a signed
//! document is read from and written to the registry.
//!
//! A document is read with its signature checked against the signer's trusted keys, and
//! written document first, signature last, under a conditional write: a signature
//! file's presence means its document is complete.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Classify, ErrorClass};
use crate::registry::keys::{KeyError, PublicKey, SecretKey, TrustedKeys};
use crate::registry::manifest::{self, ManifestError, MAX_DOCUMENT_BYTES, MAX_SIGNATURE_BYTES};
use crate::transport::{Store, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read artifact {path}: {source}")]
    ReadArtifact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("release {app} {version} is already published with different contents ({why}); releases are immutable: publish a new version")]
    Immutable {
        app: String,
        version: String,
        why: String,
    },
    #[error("{what} exists but {why}; run `updraft registry verify` to investigate, and pass --trusted-key OLD.pub if the signing key was rotated")]
    UntrustedExisting { what: String, why: String },
    #[error("{what} exists but {source}; run `updraft registry verify` to investigate, and pass --trusted-key OLD.pub if the signing key was rotated")]
    BadExistingSignature {
        what: String,
        #[source]
        source: KeyError,
    },
    #[error("{what} does not exist: {hint}")]
    Missing { what: String, hint: String },
    #[error("version {version} is what channel {channel} currently points at: promote another version to {channel} first, then yank {version}")]
    YankCurrent { channel: String, version: String },
    #[error("version {version} is yanked on channel {channel} ({reason}); publish a fixed version instead")]
    PromoteYanked {
        channel: String,
        version: String,
        reason: String,
    },
    #[error("channel {from} now points at {holds}, not the approved {approved}: nothing was promoted; approve (and gate) what {from} holds now, or promote {approved} with --version alone")]
    SourceMoved {
        from: String,
        holds: String,
        approved: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{location} kept changing under this command ({tries} tries): another publisher is changing channel {channel}; run this again when it is done")]
    Contended {
        location: String,
        tries: u32,
        channel: String,
    },
    #[error("hashing artifact {path} stopped: {source}")]
    Hashing {
        path: PathBuf,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Who signs, and which existing signatures the publisher accepts when it builds on what
/// the registry already holds (its own key, plus old keys during a rotation).
pub struct Signer<'a> {
    pub key: &'a SecretKey,
    pub trusted: TrustedKeys,
}

impl<'a> Signer<'a> {
    pub fn new(key: &'a SecretKey, also_trusted: Vec<PublicKey>) -> Signer<'a> {
        let mut keys = vec![key.public_key().clone()];
        keys.extend(also_trusted.into_iter().filter(|k| k != key.public_key()));
        Signer {
            key,
            trusted: TrustedKeys::new(keys),
        }
    }

    pub(crate) fn sign(
        &self,
        bytes: &[u8],
        key: &str,
        now: SystemTime,
    ) -> Result<String, KeyError> {
        let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        self.key.sign(bytes, &format!("timestamp:{ts}\tfile:{key}"))
    }
}

/// What a channel document's rewrite must find in its place.
pub(crate) enum Prior {
    Absent,
    Tagged(String),
    /// The store gave no ETag: the write cannot be conditional.
    Untagged,
}

async fn get_text(
    store: &dyn Store,
    key: &str,
    limit: u64,
) -> Result<Option<String>, PublishError> {
    match store.get(key, limit).await? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| PublishError::UntrustedExisting {
                what: key.to_string(),
                why: "is not UTF-8 text".into(),
            }),
    }
}

/// A document the registry holds, with its signature checked against the signer's
/// trusted keys (never against what the document itself claims).
pub(crate) async fn load_signed(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
) -> Result<Option<(Vec<u8>, Option<String>)>, PublishError> {
    Ok(load_signed_tagged(store, signer, key)
        .await?
        .map(|(bytes, sig, _)| (bytes, sig)))
}

/// [`load_signed`], with the document's ETag for a conditional rewrite.
pub(crate) async fn load_signed_tagged(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
) -> Result<Option<(Vec<u8>, Option<String>, Option<String>)>, PublishError> {
    let Some((bytes, etag)) = store.get_tagged(key, MAX_DOCUMENT_BYTES).await? else {
        return Ok(None);
    };
    let sig_key = manifest::sig_key(key);
    let sig = get_text(store, &sig_key, MAX_SIGNATURE_BYTES).await?;
    if let Some(sig) = &sig {
        signer.trusted.verify(&bytes, sig, key).map_err(|source| {
            PublishError::BadExistingSignature {
                what: key.to_string(),
                source,
            }
        })?;
    }
    Ok(Some((bytes, sig, etag)))
}

pub(crate) async fn put_signed(
    store: &dyn Store,
    signer: &Signer<'_>,
    key: &str,
    bytes: Vec<u8>,
    now: SystemTime,
    prior: Prior,
) -> Result<(), PublishError> {
    let sig = signer.sign(&bytes, key, now)?;
    // Document first, signature last: a signature file's presence means its document
    // is complete (readers racing a rewrite re-fetch both; see the spec). The document
    // only if nobody changed it since it was read.
    let mut tries = 0;
    loop {
        tries += 1;
        let written = match &prior {
            Prior::Absent => store.put_if_unchanged(key, bytes.clone(), None).await,
            Prior::Tagged(etag) => store.put_if_unchanged(key, bytes.clone(), Some(etag)).await,
            Prior::Untagged => store.put(key, bytes.clone()).await,
        };
        match written {
            Ok(()) => break,
            Err(TransportError::Conflict { location }) => {
                // A transport retry of a write that had in fact succeeded meets our own
                // document; a 409 for a concurrent upload that was then abandoned leaves
                // nothing. Only someone else's document is a lost race.
                match store.get(key, MAX_DOCUMENT_BYTES).await? {
                    Some(now_there) if now_there == bytes => break,
                    None if tries < 3 => continue,
                    _ => return Err(TransportError::Conflict { location }.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.put(&manifest::sig_key(key), sig.into_bytes()).await?;
    Ok(())
}

/// What a CI script can do about a failed publisher command: fix the command line
/// (usage), look at the registry (verify), check the names (not found), or run it again
/// later (busy).
impl Classify for PublishError {
    fn class(&self) -> ErrorClass {
        match self {
            PublishError::Transport(t) => t.class(),
            PublishError::Manifest(m) => m.class(),
            PublishError::Key(k) => k.class(),
            // The artifact named on the command line does not exist: not found, like a
            // release or channel that does not (README "Exit codes").
            PublishError::ReadArtifact { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ErrorClass::NotFound
            }
            PublishError::ReadArtifact { .. }
            | PublishError::YankCurrent { .. }
            | PublishError::PromoteYanked { .. }
            | PublishError::Invalid(_) => ErrorClass::Usage,
            PublishError::UntrustedExisting { .. } | PublishError::BadExistingSignature { .. } => {
                ErrorClass::Verify
            }
            PublishError::Missing { .. } => ErrorClass::NotFound,
            PublishError::Contended { .. } => ErrorClass::Busy,
            PublishError::SourceMoved { .. } => ErrorClass::GateNotMet,
            PublishError::Immutable { .. } | PublishError::Hashing { .. } => ErrorClass::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classes scripts see as exit codes (README "Exit codes"); the command-line
    /// test covers the ones a registry can produce on demand, this the rest.
    #[test]
    fn publish_errors_have_the_documented_class() {
        let cases = [
            (
                PublishError::Contended {
                    location: "s3://b/demo/channels/prod.json".into(),
                    tries: 6,
                    channel: "prod".into(),
                },
                ErrorClass::Busy,
            ),
            (
                PublishError::ReadArtifact {
                    path: "a.tar.gz".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                },
                ErrorClass::NotFound,
            ),
            (
                PublishError::ReadArtifact {
                    path: "a.tar.gz".into(),
                    source: std::io::ErrorKind::PermissionDenied.into(),
                },
                ErrorClass::Usage,
            ),
            (
                PublishError::Missing {
                    what: "demo/channels/prod.json".into(),
                    hint: "h".into(),
                },
                ErrorClass::NotFound,
            ),
            (
                PublishError::UntrustedExisting {
                    what: "demo/channels/prod.json".into(),
                    why: "w".into(),
                },
                ErrorClass::Verify,
            ),
            (
                PublishError::Key(KeyError::WrongPassword { what: "k".into() }),
                ErrorClass::Usage,
            ),
            (
                PublishError::BadExistingSignature {
                    what: "demo/channels/prod.json".into(),
                    source: KeyError::LegacySignature {
                        what: "demo/channels/prod.json".into(),
                    },
                },
                ErrorClass::Verify,
            ),
            (
                PublishError::Transport(TransportError::Conflict {
                    location: "l".into(),
                }),
                ErrorClass::Other,
            ),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e}");
        }
        // The signature check's own error stays reachable as the cause.
        let e = PublishError::BadExistingSignature {
            what: "demo/channels/prod.json".into(),
            source: KeyError::LegacySignature {
                what: "demo/channels/prod.json".into(),
            },
        };
        let cause = std::error::Error::source(&e).expect("a source");
        assert!(cause.downcast_ref::<KeyError>().is_some(), "{cause}");
    }
}
