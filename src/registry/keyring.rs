//! The keys document (`<app>/keys.json`): which publisher keys sign an app's channel
//! and release documents, signed by a threshold of root keys, in the spirit of TUF's
//! root role (spec §7.1). Agents pin the root keys; publisher keys can then be added,
//! revoked and the root keys themselves rotated by publishing a new version, with no
//! change on the machines.
//!
//! Each version is kept at `<app>/keys/<version>.json` too, so an agent that knows an
//! older version walks forward one version at a time, each checked against the root
//! keys of the one before it. Signatures are minisign's, one per root key, concatenated
//! in `keys.json.minisig`.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorClass};
use crate::registry::keys::{KeyError, PublicKey, SecretKey, TrustedKeys};
use crate::registry::manifest::{sig_key, MAX_DOCUMENT_BYTES};
use crate::registry::names::AppName;
use crate::transport::{Store, TransportError};

/// The format of the keys document.
pub const KEYS_SCHEMA_VERSION: u32 = 1;
/// Signatures on a keys document: one `.minisig` per root key, a few hundred bytes each.
pub const MAX_KEYS_SIGNATURE_BYTES: u64 = 64 * 1024;
/// How long a keys document stays valid by default: root keys are used rarely, so a
/// year; renew it before then (`updraft keys renew`).
pub const DEFAULT_KEYS_EXPIRY: Duration = Duration::from_secs(365 * 86_400);

pub fn keys_key(app: &AppName) -> String {
    format!("{app}/keys.json")
}

/// Where version `n` of the keys document stays for agents walking forward.
pub fn keys_version_key(app: &AppName, n: u64) -> String {
    format!("{app}/keys/{n}.json")
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{what} is signed by {valid} of its trusted root keys, {needed} needed (signed by: {signers}; trusted: {trusted}): not accepted; if the root keys were rotated, the registry must hold every version in between under <app>/keys/")]
    Threshold {
        what: String,
        valid: usize,
        needed: u32,
        signers: String,
        trusted: String,
    },
    #[error("{what} is not a valid keys document: {why}")]
    Malformed { what: String, why: String },
    #[error("{what} is for app {found:?}, not {expected:?}: possible mix-and-match attack; check the registry layout")]
    WrongApp {
        what: String,
        expected: String,
        found: String,
    },
    #[error("{what} has version {found}, lower than version {min} this machine already trusts: possible rollback attack (an old keys document replayed, perhaps one listing a revoked key); if the registry was restored from an old copy, publish the keys document again with `updraft keys renew`")]
    Rollback { what: String, found: u64, min: u64 },
    #[error("{what} has version {found} where version {expected} belongs: the registry's keys history is inconsistent")]
    VersionGap {
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{what} (version {version}) expired at {expires}: possible freeze attack, or nobody renewed it; renew it with `updraft keys renew`")]
    Expired {
        what: String,
        version: u64,
        expires: String,
    },
    #[error("root_keys are set in the config but {what} does not exist: publish one with `updraft keys init`, or trust publisher keys with `public_keys` instead")]
    NoKeysDocument { what: String },
    #[error("{what} already exists (version {version}): change it with `updraft keys add|revoke|rotate-root|renew`")]
    Exists { what: String, version: u64 },
    #[error("{what} does not exist: create it with `updraft keys init`")]
    Missing { what: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} was written by another publisher meanwhile: run this again")]
    Conflict { what: String },
    #[error("cannot write the keys document as JSON: {0}")]
    Serialise(#[source] serde_json::Error),
}

impl Classify for KeyringError {
    fn class(&self) -> ErrorClass {
        match self {
            KeyringError::Transport(t) => t.class(),
            KeyringError::Invalid(_)
            | KeyringError::Exists { .. }
            | KeyringError::Missing { .. } => ErrorClass::Usage,
            KeyringError::Serialise(_) | KeyringError::Conflict { .. } => ErrorClass::Other,
            _ => ErrorClass::Verify,
        }
    }
}

/// `<app>/keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysDoc {
    pub schema_version: u32,
    /// Always "keys".
    pub kind: String,
    pub app: AppName,
    /// 1 for the first, one more for each change.
    pub version: u64,
    pub issued: String,
    pub expires: String,
    /// Minisign public keys (base64 lines) that sign the next version of this document.
    pub root_keys: Vec<String>,
    /// How many distinct root keys must sign the next version.
    pub root_threshold: u32,
    /// Minisign public keys trusted for this app's channel and release documents.
    pub keys: Vec<String>,
}

/// Root keys and how many of them must sign.
#[derive(Debug, Clone, PartialEq)]
pub struct Roots {
    keys: Vec<PublicKey>,
    threshold: u32,
}

impl Roots {
    /// `what` names where the keys come from in messages.
    pub fn new(keys: Vec<PublicKey>, threshold: u32, what: &str) -> Result<Roots, KeyringError> {
        let ids: BTreeSet<String> = keys.iter().map(PublicKey::key_id).collect();
        if ids.len() != keys.len() {
            return Err(KeyringError::Invalid(format!(
                "{what}: a root key is listed twice"
            )));
        }
        if threshold == 0 || threshold as usize > keys.len() {
            return Err(KeyringError::Invalid(format!(
                "{what}: root threshold {threshold} must be between 1 and the number of root keys ({})",
                keys.len()
            )));
        }
        Ok(Roots { keys, threshold })
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }
}

fn parse_keys(lines: &[String], what: &str, field: &str) -> Result<Vec<PublicKey>, KeyringError> {
    lines
        .iter()
        .enumerate()
        .map(|(i, k)| {
            PublicKey::from_base64_line(k).map_err(|e| KeyringError::Malformed {
                what: what.to_string(),
                why: format!("{field} entry {}: {e}", i + 1),
            })
        })
        .collect()
}

impl KeysDoc {
    pub fn to_bytes(&self) -> Result<Vec<u8>, KeyringError> {
        let mut out = serde_json::to_vec_pretty(self).map_err(KeyringError::Serialise)?;
        out.push(b'\n');
        Ok(out)
    }

    /// The root keys that must sign the next version.
    pub fn roots(&self, what: &str) -> Result<Roots, KeyringError> {
        let keys = parse_keys(&self.root_keys, what, "root_keys")?;
        Roots::new(keys, self.root_threshold, what).map_err(|e| KeyringError::Malformed {
            what: what.to_string(),
            why: e.to_string(),
        })
    }

    /// The keys channel and release documents must be signed by.
    pub fn publisher_keys(&self, what: &str) -> Result<TrustedKeys, KeyringError> {
        Ok(TrustedKeys::new(parse_keys(&self.keys, what, "keys")?))
    }

    pub fn expires_at(&self) -> SystemTime {
        crate::time::parse_time(&self.expires).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Shape rules every reader applies.
    fn check_shape(&self, what: &str) -> Result<(), KeyringError> {
        let bad = |why: String| KeyringError::Malformed {
            what: what.to_string(),
            why,
        };
        if self.kind != "keys" {
            return Err(bad(format!("kind is {:?}, expected \"keys\"", self.kind)));
        }
        if self.schema_version != KEYS_SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version {} is not {KEYS_SCHEMA_VERSION}: upgrade updraft on this machine",
                self.schema_version
            )));
        }
        if self.version == 0 {
            return Err(bad("version must be at least 1".into()));
        }
        let issued = crate::time::parse_time(&self.issued).map_err(bad)?;
        let expires = crate::time::parse_time(&self.expires).map_err(bad)?;
        if expires <= issued {
            return Err(bad("expires is not after issued".into()));
        }
        self.roots(what)?;
        if self.keys.is_empty() {
            return Err(bad("it lists no publisher keys".into()));
        }
        self.publisher_keys(what)?;
        Ok(())
    }
}

/// Parse a keys document's shape without checking signatures: for the agent's own
/// copy of the version it accepted, and for publishers after [`verify_threshold`].
pub fn parse_keys_doc(bytes: &[u8], what: &str) -> Result<KeysDoc, KeyringError> {
    let doc: KeysDoc = serde_json::from_slice(bytes).map_err(|e| KeyringError::Malformed {
        what: what.to_string(),
        why: e.to_string(),
    })?;
    doc.check_shape(what)?;
    Ok(doc)
}

/// The `.minisig` texts in a file of concatenated signatures: each starts with its
/// `untrusted comment:` line.
fn split_signatures(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("untrusted comment:") || out.is_empty() {
            out.push(String::new());
        }
        if let Some(cur) = out.last_mut() {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out
}

/// Check that `bytes` carry valid signatures by at least the threshold of distinct
/// root keys. Signatures by other keys, and ones that do not verify, count for nothing.
pub fn verify_threshold(
    bytes: &[u8],
    signatures: &str,
    roots: &Roots,
    what: &str,
) -> Result<(), KeyringError> {
    let trusted = TrustedKeys::new(roots.keys.clone());
    let mut valid: BTreeSet<String> = BTreeSet::new();
    let mut seen: Vec<String> = Vec::new();
    for sig in split_signatures(signatures) {
        match trusted.verify(bytes, &sig, what) {
            Ok(id) => {
                valid.insert(id.to_string());
                seen.push(id.to_string());
            }
            Err(KeyError::NotTrusted { signer, .. }) => {
                seen.push(format!("{signer} (not a root key)"))
            }
            Err(KeyError::BadSignature { signer, .. }) => {
                seen.push(format!("{signer} (does not match the bytes)"))
            }
            Err(_) => seen.push("a malformed signature".into()),
        }
    }
    if valid.len() >= roots.threshold as usize {
        return Ok(());
    }
    Err(KeyringError::Threshold {
        what: what.to_string(),
        valid: valid.len(),
        needed: roots.threshold,
        signers: if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        },
        trusted: roots
            .keys
            .iter()
            .map(PublicKey::key_id)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// What an agent checks before believing a keys document: a threshold of `roots`
/// signed these exact bytes (before anything is parsed), its shape, its app, and that
/// its version is not below `min_version`. Expiry is checked by the caller on the
/// version it ends up with (an intermediate version may have expired since).
pub fn verify_keys_doc(
    bytes: &[u8],
    signatures: &str,
    roots: &Roots,
    app: &AppName,
    min_version: u64,
    what: &str,
) -> Result<KeysDoc, KeyringError> {
    verify_threshold(bytes, signatures, roots, what)?;
    let doc = parse_keys_doc(bytes, what)?;
    if &doc.app != app {
        return Err(KeyringError::WrongApp {
            what: what.to_string(),
            expected: app.to_string(),
            found: doc.app.to_string(),
        });
    }
    if doc.version < min_version {
        return Err(KeyringError::Rollback {
            what: what.to_string(),
            found: doc.version,
            min: min_version,
        });
    }
    Ok(doc)
}

pub fn check_keys_not_expired(
    doc: &KeysDoc,
    what: &str,
    now: SystemTime,
) -> Result<(), KeyringError> {
    if doc.expires_at() <= now {
        return Err(KeyringError::Expired {
            what: what.to_string(),
            version: doc.version,
            expires: doc.expires.clone(),
        });
    }
    Ok(())
}

/// A change to an app's keys document.
#[derive(Debug, Clone)]
pub enum KeysChange {
    /// The first version: these roots (signed by a threshold of them) and publisher keys.
    Init { roots: Roots, keys: Vec<PublicKey> },
    /// Trust one more publisher key.
    Add(PublicKey),
    /// Stop trusting a publisher key, named by its key id.
    Revoke(String),
    /// New root keys and threshold, signed by a threshold of the previous ones.
    RotateRoot(Roots),
    /// The same keys again, with a new expiry.
    Renew,
}

/// Apply `change` to `current` (None for `Init`): the new document's content. Pure.
pub fn apply_change(
    current: Option<&KeysDoc>,
    app: &AppName,
    change: &KeysChange,
    now: SystemTime,
    expires_in: Duration,
) -> Result<KeysDoc, KeyringError> {
    let lines = |keys: &[PublicKey]| -> Vec<String> {
        keys.iter()
            .map(|k| k.to_base64_line().to_string())
            .collect()
    };
    let mut doc = match (current, change) {
        (Some(c), KeysChange::Init { .. }) => {
            return Err(KeyringError::Exists {
                what: keys_key(app),
                version: c.version,
            })
        }
        (None, KeysChange::Init { roots, keys }) => {
            if keys.is_empty() {
                return Err(KeyringError::Invalid(
                    "keys init needs at least one publisher key (--key)".into(),
                ));
            }
            KeysDoc {
                schema_version: KEYS_SCHEMA_VERSION,
                kind: "keys".into(),
                app: app.clone(),
                version: 0,
                issued: String::new(),
                expires: String::new(),
                root_keys: lines(&roots.keys),
                root_threshold: roots.threshold,
                keys: lines(keys),
            }
        }
        (None, _) => {
            return Err(KeyringError::Missing {
                what: keys_key(app),
            })
        }
        (Some(c), _) => c.clone(),
    };
    match change {
        KeysChange::Init { .. } | KeysChange::Renew => {}
        KeysChange::Add(k) => {
            if !doc.keys.iter().any(|l| l == k.to_base64_line()) {
                doc.keys.push(k.to_base64_line().to_string());
            }
        }
        KeysChange::Revoke(id) => {
            let before = doc.keys.len();
            doc.keys.retain(|l| {
                PublicKey::from_base64_line(l)
                    .map_or(true, |k| !k.key_id().eq_ignore_ascii_case(id))
            });
            if doc.keys.len() == before {
                return Err(KeyringError::Invalid(format!(
                    "key {id} is not a publisher key of {} (it lists {})",
                    keys_key(app),
                    doc.keys
                        .iter()
                        .filter_map(|l| PublicKey::from_base64_line(l).ok())
                        .map(|k| k.key_id())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if doc.keys.is_empty() {
                return Err(KeyringError::Invalid(format!(
                    "key {id} is the last publisher key: add its replacement first (`updraft keys add`), then revoke it"
                )));
            }
        }
        KeysChange::RotateRoot(roots) => {
            doc.root_keys = lines(&roots.keys);
            doc.root_threshold = roots.threshold;
        }
    }
    doc.version += 1;
    doc.issued = crate::time::format_time(now);
    doc.expires = crate::time::format_time(now + expires_in);
    Ok(doc)
}

/// Sign `bytes` with each of `signers`, concatenated.
fn sign_all(
    signers: &[&SecretKey],
    bytes: &[u8],
    key: &str,
    now: SystemTime,
) -> Result<String, KeyError> {
    let ts = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut out = String::new();
    for s in signers {
        out.push_str(&s.sign(bytes, &format!("timestamp:{ts}\tfile:{key}"))?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

async fn get_text(
    store: &dyn Store,
    key: &str,
    limit: u64,
) -> Result<Option<String>, KeyringError> {
    Ok(store
        .get(key, limit)
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The app's current keys document, checked against its own root keys (the registry
/// may be anyone's; a publisher builds only on a document its roots signed).
pub async fn load_current(
    store: &dyn Store,
    app: &AppName,
) -> Result<Option<KeysDoc>, KeyringError> {
    let key = keys_key(app);
    let Some(bytes) = store.get(&key, MAX_DOCUMENT_BYTES).await? else {
        return Ok(None);
    };
    let sig = get_text(store, &sig_key(&key), MAX_KEYS_SIGNATURE_BYTES)
        .await?
        .unwrap_or_default();
    let doc = parse_keys_doc(&bytes, &key)?;
    // The current version must be signed by the roots of the one before it; when that
    // one is gone, by its own (a registry after `keys init`, or a trimmed history).
    let previous = match doc.version {
        1 => None,
        n => match store
            .get(&keys_version_key(app, n - 1), MAX_DOCUMENT_BYTES)
            .await?
        {
            Some(b) => Some(parse_keys_doc(&b, &keys_version_key(app, n - 1))?),
            None => None,
        },
    };
    let roots = previous.as_ref().unwrap_or(&doc).roots(&key)?;
    verify_threshold(&bytes, &sig, &roots, &key)?;
    Ok(Some(doc))
}

/// Publish a new version of the app's keys document, signed by `signers`: at least the
/// threshold of the current root keys (of the new ones for `Init`). Written as
/// `<app>/keys/<version>.json` first (must not exist yet: two publishers cannot both
/// write one version), then `<app>/keys.json`, each document before its signatures.
pub async fn change_keys(
    store: &dyn Store,
    app: &AppName,
    signers: &[SecretKey],
    change: &KeysChange,
    now: SystemTime,
    expires_in: Duration,
) -> Result<KeysDoc, KeyringError> {
    let key = keys_key(app);
    let _lock = store.lock_for_update(&key).await?;
    let current = load_current(store, app).await?;
    let doc = apply_change(current.as_ref(), app, change, now, expires_in)?;
    let roots = match (&current, change) {
        (None, KeysChange::Init { roots, .. }) => roots.clone(),
        (Some(c), _) => c.roots(&key)?,
        (None, _) => {
            return Err(KeyringError::Missing {
                what: key.to_string(),
            })
        }
    };
    let useful: Vec<&SecretKey> = signers
        .iter()
        .filter(|s| roots.keys.iter().any(|r| r == s.public_key()))
        .collect();
    if useful.len() < roots.threshold as usize {
        return Err(KeyringError::Invalid(format!(
            "signing {key} version {} needs {} of its root keys ({}); given {} of them: pass more --root-secret-key",
            doc.version,
            roots.threshold,
            roots
                .keys
                .iter()
                .map(PublicKey::key_id)
                .collect::<Vec<_>>()
                .join(", "),
            useful.len()
        )));
    }
    let bytes = doc.to_bytes()?;
    let vkey = keys_version_key(app, doc.version);
    let sigs = sign_all(&useful, &bytes, &vkey, now)?;
    verify_threshold(&bytes, &sigs, &roots, &key)?;
    match store.put_if_unchanged(&vkey, bytes.clone(), None).await {
        Ok(()) => {}
        Err(TransportError::Conflict { .. }) => {
            return Err(KeyringError::Conflict { what: vkey });
        }
        Err(e) => return Err(e.into()),
    }
    store
        .put(&sig_key(&vkey), sigs.clone().into_bytes())
        .await?;
    store.put(&key, bytes).await?;
    store.put(&sig_key(&key), sigs.into_bytes()).await?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::keys::generate;

    fn key() -> SecretKey {
        let (sk, _) = generate(None).unwrap();
        SecretKey::load_from_str(&sk, None).unwrap()
    }

    fn t(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn app() -> AppName {
        "demo".parse().unwrap()
    }

    fn roots(keys: &[&SecretKey], threshold: u32) -> Roots {
        Roots::new(
            keys.iter().map(|k| k.public_key().clone()).collect(),
            threshold,
            "test",
        )
        .unwrap()
    }

    #[test]
    fn threshold_counts_distinct_valid_root_signatures() {
        let (a, b, c, other) = (key(), key(), key(), key());
        let r = roots(&[&a, &b, &c], 2);
        let doc = b"keys document";
        let now = t("2026-01-01T00:00:00Z");
        let sig = |ks: &[&SecretKey], bytes: &[u8]| sign_all(ks, bytes, "k", now).unwrap();
        // (signatures, accepted)
        let cases = [
            (sig(&[&a], doc), false),
            (sig(&[&a, &b], doc), true),
            (sig(&[&a, &a], doc), false),
            (sig(&[&a, &other], doc), false),
            (sig(&[&other, &c, &b], doc), true),
            (sig(&[&a], b"other bytes") + &sig(&[&b], doc), false),
            (String::new(), false),
            ("garbage\n".to_string() + &sig(&[&a, &c], doc), true),
        ];
        for (i, (sigs, ok)) in cases.iter().enumerate() {
            let got = verify_threshold(doc, sigs, &r, "demo/keys.json");
            assert_eq!(got.is_ok(), *ok, "case {i}: {got:?}");
            if let Err(e) = got {
                assert!(
                    matches!(e, KeyringError::Threshold { needed: 2, .. }),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn roots_refuse_bad_thresholds_and_duplicates() {
        let (a, b) = (key(), key());
        let pk = |k: &SecretKey| k.public_key().clone();
        assert!(Roots::new(vec![pk(&a), pk(&b)], 0, "t").is_err());
        assert!(Roots::new(vec![pk(&a), pk(&b)], 3, "t").is_err());
        assert!(Roots::new(vec![pk(&a), pk(&a)], 1, "t").is_err());
        assert!(Roots::new(vec![pk(&a), pk(&b)], 2, "t").is_ok());
    }

    #[test]
    fn changes_and_their_refusals() {
        let (root, p1, p2) = (key(), key(), key());
        let now = t("2026-01-01T00:00:00Z");
        let init = KeysChange::Init {
            roots: roots(&[&root], 1),
            keys: vec![p1.public_key().clone()],
        };
        let v1 = apply_change(None, &app(), &init, now, DAY).unwrap();
        assert_eq!((v1.version, v1.keys.len()), (1, 1));
        assert_eq!(v1.expires, "2026-01-02T00:00:00Z");
        assert!(matches!(
            apply_change(Some(&v1), &app(), &init, now, DAY),
            Err(KeyringError::Exists { version: 1, .. })
        ));
        assert!(matches!(
            apply_change(None, &app(), &KeysChange::Renew, now, DAY),
            Err(KeyringError::Missing { .. })
        ));
        let v2 = apply_change(
            Some(&v1),
            &app(),
            &KeysChange::Add(p2.public_key().clone()),
            now,
            DAY,
        )
        .unwrap();
        assert_eq!((v2.version, v2.keys.len()), (2, 2));
        let v3 = apply_change(
            Some(&v2),
            &app(),
            &KeysChange::Revoke(p1.public_key().key_id().to_lowercase()),
            now,
            DAY,
        )
        .unwrap();
        assert_eq!(v3.keys, vec![p2.public_key().to_base64_line().to_string()]);
        let e = apply_change(
            Some(&v3),
            &app(),
            &KeysChange::Revoke(p1.public_key().key_id()),
            now,
            DAY,
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not a publisher key"), "{e}");
        let e = apply_change(
            Some(&v3),
            &app(),
            &KeysChange::Revoke(p2.public_key().key_id()),
            now,
            DAY,
        )
        .unwrap_err();
        assert!(e.to_string().contains("last publisher key"), "{e}");
        let (n1, n2) = (key(), key());
        let v4 = apply_change(
            Some(&v3),
            &app(),
            &KeysChange::RotateRoot(roots(&[&n1, &n2], 2)),
            now,
            DAY,
        )
        .unwrap();
        assert_eq!(
            (v4.version, v4.root_threshold, v4.root_keys.len()),
            (4, 2, 2)
        );
        assert_eq!(v4.keys, v3.keys);
    }

    #[test]
    fn documents_are_checked_for_app_version_and_expiry() {
        let (root, p1) = (key(), key());
        let now = t("2026-01-01T00:00:00Z");
        let init = KeysChange::Init {
            roots: roots(&[&root], 1),
            keys: vec![p1.public_key().clone()],
        };
        let doc = apply_change(None, &app(), &init, now, DAY).unwrap();
        let bytes = doc.to_bytes().unwrap();
        let sigs = sign_all(&[&root], &bytes, "k", now).unwrap();
        let r = roots(&[&root], 1);
        assert_eq!(
            verify_keys_doc(&bytes, &sigs, &r, &app(), 1, "w").unwrap(),
            doc
        );
        assert!(matches!(
            verify_keys_doc(&bytes, &sigs, &r, &app(), 2, "w"),
            Err(KeyringError::Rollback {
                found: 1,
                min: 2,
                ..
            })
        ));
        assert!(matches!(
            verify_keys_doc(&bytes, &sigs, &r, &"other".parse().unwrap(), 0, "w"),
            Err(KeyringError::WrongApp { .. })
        ));
        assert!(check_keys_not_expired(&doc, "w", now).is_ok());
        assert!(matches!(
            check_keys_not_expired(&doc, "w", now + DAY),
            Err(KeyringError::Expired { version: 1, .. })
        ));
        let mut bad = doc.clone();
        bad.root_threshold = 2;
        let bb = bad.to_bytes().unwrap();
        let e = verify_keys_doc(
            &bb,
            &sign_all(&[&root], &bb, "k", now).unwrap(),
            &r,
            &app(),
            0,
            "w",
        )
        .unwrap_err();
        assert!(matches!(e, KeyringError::Malformed { .. }), "{e}");
    }
}
