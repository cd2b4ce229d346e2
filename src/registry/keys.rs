//! minisign-compatible signing keys: generate, load, sign, and verify against a set of
//! trusted keys.
//!
//! Files are byte-compatible with the `minisign` CLI in both directions (see
//! registry-spec/README.md "Signatures"). Keys written by `minisign -G -W` (unencrypted)
//! carry an all-zero checksum that the `minisign` crate refuses, so the secret key box is
//! parsed here and only handed to the crate once it is known to be usable.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Classify, ErrorClass};
use base64::Engine as _;

const SIG_ALG: [u8; 2] = *b"Ed";
const SIG_ALG_PREHASHED: [u8; 2] = *b"ED";
const KDF_NONE: [u8; 2] = [0, 0];
const KDF_SCRYPT: [u8; 2] = *b"Sc";
/// sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) opslimit(8) memlimit(8) keynum(8) sk(64) chk(32)
const SECRET_BOX_LEN: usize = 158;
const CHK_OFFSET: usize = SECRET_BOX_LEN - 32;
const PUBLIC_KEY_LEN: usize = 42;
const SIGNATURE_LINE_LEN: usize = 74;
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not a minisign public key: {why} (expected the base64 line of a minisign .pub file, starting with RW)")]
    PublicKeyFormat { what: String, why: String },
    #[error("{what} is not a minisign secret key: {why} (expected a file written by `updraft keygen` or `minisign -G`)")]
    SecretKeyFormat { what: String, why: String },
    #[error("secret key {what} is password-protected: put its password in the environment variable named by --password-env (default UPDRAFT_KEY_PASSWORD)")]
    PasswordRequired { what: String },
    #[error("wrong password for secret key {what} (or the key file is corrupted)")]
    WrongPassword { what: String },
    #[error("secret key {what} is corrupted: its checksum does not match; restore it from backup")]
    Corrupted { what: String },
    #[error("signature for {what} is malformed: {why} (expected a minisign .minisig file)")]
    SignatureFormat { what: String, why: String },
    #[error("signature on {what} uses the legacy non-prehashed algorithm; re-sign it with `updraft` or minisign >= 0.8 (without -l)")]
    LegacySignature { what: String },
    #[error("signature on {what} is by key {signer}, which is not a trusted key (trusted: {trusted}); add its public key to the trusted keys if the key was rotated")]
    NotTrusted {
        what: String,
        signer: KeyId,
        trusted: String,
    },
    #[error("signature on {what} by trusted key {signer} does not match its bytes: the document or its signature was modified after signing")]
    BadSignature { what: String, signer: KeyId },
    #[error("trusted comment must be one line: {comment:?}")]
    BadComment { comment: String },
    #[error("signing failed: {source}")]
    Sign {
        #[source]
        source: minisign::PError,
    },
    #[error("key generation failed: {source}")]
    Generate {
        #[source]
        source: minisign::PError,
    },
}

/// A minisign key id: 8 bytes, printed as minisign prints it (little-endian, upper hex,
/// no leading zeros: `%PRIX64`), so an id in our messages matches the comment line of
/// the operator's `.pub` file character for character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", u64::from_le_bytes(self.0))
    }
}

/// A public key that can verify registry signatures.
#[derive(Clone)]
pub struct PublicKey {
    b64: String,
    id: KeyId,
    inner: minisign_verify::PublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.id, self.b64)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.b64 == other.b64
    }
}

impl PublicKey {
    /// The base64 line of a `.pub` file (`RW...`), as also accepted in the config file.
    pub fn from_base64_line(line: &str) -> Result<PublicKey, KeyError> {
        Self::parse(line.trim(), "public key")
    }

    fn parse(line: &str, what: &str) -> Result<PublicKey, KeyError> {
        let bad = |why: &str| KeyError::PublicKeyFormat {
            what: what.to_string(),
            why: why.to_string(),
        };
        let bytes = b64()
            .decode(line)
            .map_err(|e| bad(&format!("bad base64: {e}")))?;
        if bytes.len() == SECRET_BOX_LEN {
            return Err(bad(
                "it is a minisign SECRET key: remove it from where it was pasted and treat it as leaked (make a new key pair); the public key is the second line of the .pub file",
            ));
        }
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(bad(&format!(
                "decodes to {} bytes instead of {PUBLIC_KEY_LEN}",
                bytes.len()
            )));
        }
        if bytes[0..2] != SIG_ALG {
            return Err(bad("unsupported signature algorithm (only Ed25519 keys)"));
        }
        let inner =
            minisign_verify::PublicKey::from_base64(line).map_err(|e| bad(&format!("{e}")))?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[2..10]);
        Ok(PublicKey {
            b64: line.to_string(),
            id: KeyId(id),
            inner,
        })
    }

    /// A `.pub` file: an untrusted comment line, then the base64 line. A file holding
    /// only the base64 line is accepted too.
    pub fn from_file(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_file_text(&text, &path.display().to_string())
    }

    pub fn from_file_text(text: &str, what: &str) -> Result<PublicKey, KeyError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(UNTRUSTED_PREFIX))
            .ok_or_else(|| KeyError::PublicKeyFormat {
                what: what.to_string(),
                why: "no key line found".into(),
            })?;
        Self::parse(line, what)
    }

    /// Hex key id as minisign prints it (`minisign public key <ID>`).
    pub fn key_id(&self) -> String {
        self.id.to_string()
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The base64 line (`RW...`).
    pub fn to_base64_line(&self) -> &str {
        &self.b64
    }

    /// The contents of a `.pub` file, identical in shape to what `minisign -G` writes.
    pub fn to_file_text(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.id, self.b64
        )
    }

    /// A short form for messages: `RWQf6LRC… (ID 1234ABCD…)`.
    fn short(&self) -> String {
        let head: String = self.b64.chars().take(12).collect();
        format!("{head}… ({})", self.id)
    }
}

/// The keys an agent or auditor accepts. Several at once so keys can be rotated: trust
/// old and new, re-sign with the new, then drop the old.
#[derive(Debug, Clone)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    pub fn new(keys: Vec<PublicKey>) -> TrustedKeys {
        TrustedKeys(keys)
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Verify a detached minisign signature over exactly `bytes`. `what` names the
    /// document in messages (its registry key).
    pub fn verify(
        &self,
        bytes: &[u8],
        signature_text: &str,
        what: &str,
    ) -> Result<KeyId, KeyError> {
        let bad = |why: &str| KeyError::SignatureFormat {
            what: what.to_string(),
            why: why.to_string(),
        };
        let mut lines = signature_text.lines();
        let _untrusted = lines.next().ok_or_else(|| bad("empty"))?;
        let sig_line = lines.next().ok_or_else(|| bad("missing signature line"))?;
        let raw = b64()
            .decode(sig_line.trim())
            .map_err(|e| bad(&format!("bad base64 in signature line: {e}")))?;
        if raw.len() != SIGNATURE_LINE_LEN {
            return Err(bad("signature line has the wrong length"));
        }
        let alg = [raw[0], raw[1]];
        let mut id = [0u8; 8];
        id.copy_from_slice(&raw[2..10]);
        let signer = KeyId(id);
        if alg == SIG_ALG {
            return Err(KeyError::LegacySignature {
                what: what.to_string(),
            });
        }
        if alg != SIG_ALG_PREHASHED {
            return Err(bad("unknown signature algorithm"));
        }
        let sig =
            minisign_verify::Signature::decode(signature_text).map_err(|e| bad(&format!("{e}")))?;
        let Some(key) = self.0.iter().find(|k| k.id == signer) else {
            let trusted = if self.0.is_empty() {
                "none configured".to_string()
            } else {
                self.0
                    .iter()
                    .map(PublicKey::short)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(KeyError::NotTrusted {
                what: what.to_string(),
                signer,
                trusted,
            });
        };
        key.inner
            .verify(bytes, &sig, false)
            .map_err(|_| KeyError::BadSignature {
                what: what.to_string(),
                signer,
            })?;
        Ok(signer)
    }
}

/// A secret key ready to sign (decrypted in memory).
pub struct SecretKey {
    inner: minisign::SecretKey,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public.id)
    }
}

impl SecretKey {
    pub fn load_from_file(path: &Path, password: Option<String>) -> Result<SecretKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::load_named(&text, password, &path.display().to_string())
    }

    pub fn load_from_str(text: &str, password: Option<String>) -> Result<SecretKey, KeyError> {
        Self::load_named(text, password, "(from environment)")
    }

    /// Parse the secret key box (format in minisign's README):
    /// `Ed` | kdf (`Sc` or zeros) | `B2` | salt | opslimit | memlimit | keynum | sk | chk.
    pub fn load_named(
        text: &str,
        password: Option<String>,
        what: &str,
    ) -> Result<SecretKey, KeyError> {
        let bad = |why: &str| KeyError::SecretKeyFormat {
            what: what.to_string(),
            why: why.to_string(),
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let comment = lines.next().ok_or_else(|| bad("empty file"))?;
        if !comment.starts_with(UNTRUSTED_PREFIX) {
            return Err(bad("first line is not an untrusted comment"));
        }
        let line = lines.next().ok_or_else(|| bad("missing key line"))?;
        let raw = b64()
            .decode(line)
            .map_err(|e| bad(&format!("bad base64: {e}")))?;
        if raw.len() != SECRET_BOX_LEN {
            return Err(bad(&format!(
                "decodes to {} bytes instead of {SECRET_BOX_LEN}",
                raw.len()
            )));
        }
        if raw[0..2] != SIG_ALG {
            return Err(bad("unsupported signature algorithm"));
        }
        let kdf = [raw[2], raw[3]];
        let inner = if kdf == KDF_NONE {
            if raw[CHK_OFFSET..].iter().all(|b| *b == 0) {
                // `minisign -W` writes no checksum; the key material is used as is and
                // checked below by deriving the public key and signing a probe.
                minisign::SecretKey::from_bytes(&raw).map_err(|e| bad(&format!("{e}")))?
            } else {
                let boxed = minisign::SecretKeyBox::from_string(&format!("{comment}\n{line}\n"))
                    .map_err(|e| bad(&format!("{e}")))?;
                minisign::SecretKey::from_unencrypted_box(boxed).map_err(|_| {
                    KeyError::Corrupted {
                        what: what.to_string(),
                    }
                })?
            }
        } else if kdf == KDF_SCRYPT {
            let Some(password) = password else {
                return Err(KeyError::PasswordRequired {
                    what: what.to_string(),
                });
            };
            let boxed = minisign::SecretKeyBox::from_string(&format!("{comment}\n{line}\n"))
                .map_err(|e| bad(&format!("{e}")))?;
            minisign::SecretKey::from_box(boxed, Some(password)).map_err(|e| {
                if matches!(e.kind(), minisign::ErrorKind::Verify) {
                    KeyError::WrongPassword {
                        what: what.to_string(),
                    }
                } else {
                    bad(&format!("{e}"))
                }
            })?
        } else {
            return Err(bad("unsupported key derivation algorithm"));
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(inner.keynum());
        let pk = minisign::PublicKey::from_secret_key(&inner).map_err(|e| bad(&format!("{e}")))?;
        let public = PublicKey::parse(&pk.to_base64(), what)?;
        let key = SecretKey { inner, public };
        // A key whose halves disagree (bit rot in an unchecksummed file) would sign
        // documents no agent accepts: find out now, not on the fleet.
        let probe = key.sign(b"updraft key self-test", "self-test")?;
        TrustedKeys::new(vec![key.public.clone()])
            .verify(b"updraft key self-test", &probe, what)
            .map_err(|_| KeyError::Corrupted {
                what: what.to_string(),
            })?;
        Ok(key)
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Sign `bytes`, returning the text of a `.minisig` file (prehashed Ed25519, as
    /// `minisign -S` writes by default).
    pub fn sign(&self, bytes: &[u8], trusted_comment: &str) -> Result<String, KeyError> {
        if trusted_comment.contains(['\n', '\r']) {
            return Err(KeyError::BadComment {
                comment: trusted_comment.to_string(),
            });
        }
        let sig = minisign::sign(
            None,
            &self.inner,
            bytes,
            Some(trusted_comment),
            Some("signature from updraft secret key"),
        )
        .map_err(|source| KeyError::Sign { source })?;
        Ok(sig.into_string())
    }
}

/// Generate a key pair, returning the texts of the secret and public key files.
/// With a password the secret key is encrypted (scrypt) exactly as `minisign -G` does.
pub fn generate(password: Option<&str>) -> Result<(String, String), KeyError> {
    let gen_err = |source: minisign::PError| KeyError::Generate { source };
    let (pk, sk_text) = match password {
        Some(pw) => {
            let kp = minisign::KeyPair::generate_encrypted_keypair(Some(pw.to_string()))
                .map_err(gen_err)?;
            let sk = kp
                .sk
                .to_box(Some("minisign encrypted secret key"))
                .map_err(gen_err)?;
            (kp.pk, sk.into_string())
        }
        None => {
            let kp = minisign::KeyPair::generate_unencrypted_keypair().map_err(gen_err)?;
            let sk = kp
                .sk
                .to_box(Some("minisign secret key (unencrypted)"))
                .map_err(gen_err)?;
            (kp.pk, sk.into_string())
        }
    };
    let public = PublicKey::parse(&pk.to_base64(), "generated public key")?;
    Ok((sk_text, public.to_file_text()))
}

/// A key file the operator gave (missing, unreadable, malformed, locked by a password
/// they did not give or got wrong) is input to fix, like a bad flag; a signature that
/// does not check out is a verification failure.
impl Classify for KeyError {
    fn class(&self) -> ErrorClass {
        match self {
            KeyError::Read { .. }
            | KeyError::PublicKeyFormat { .. }
            | KeyError::SecretKeyFormat { .. }
            | KeyError::PasswordRequired { .. }
            | KeyError::WrongPassword { .. }
            | KeyError::Corrupted { .. } => ErrorClass::Usage,
            KeyError::SignatureFormat { .. }
            | KeyError::LegacySignature { .. }
            | KeyError::NotTrusted { .. }
            | KeyError::BadSignature { .. } => ErrorClass::Verify,
            KeyError::BadComment { .. } | KeyError::Sign { .. } | KeyError::Generate { .. } => {
                ErrorClass::Other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_print_as_minisign_prints_them() {
        // minisign writes `%PRIX64` of the little-endian id: no zero padding.
        let id = KeyId([0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01]);
        assert_eq!(id.to_string(), "123456789ABCDEF");
        assert_eq!(KeyId([0xFF; 8]).to_string(), "FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let (sk_text, pk_text) = generate(None).unwrap();
        let sk = SecretKey::load_from_str(&sk_text, None).unwrap();
        let pk = PublicKey::from_file_text(&pk_text, "pk").unwrap();
        assert_eq!(&pk, sk.public_key());
        let sig = sk.sign(b"doc", "file:x").unwrap();
        let keys = TrustedKeys::new(vec![pk.clone()]);
        assert_eq!(keys.verify(b"doc", &sig, "x").unwrap(), pk.id());
        assert!(matches!(
            keys.verify(b"doc!", &sig, "x"),
            Err(KeyError::BadSignature { .. })
        ));
        let (_, other) = generate(None).unwrap();
        let other = PublicKey::from_file_text(&other, "o").unwrap();
        let err = TrustedKeys::new(vec![other]).verify(b"doc", &sig, "demo/channels/prod.json");
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("not a trusted key"), "{msg}");
        assert!(msg.contains("demo/channels/prod.json"), "{msg}");
    }

    #[test]
    fn zero_checksum_unencrypted_keys_load() {
        // Shape of `minisign -G -W` output: checksum bytes all zero.
        let (sk_text, _) = generate(None).unwrap();
        let line = sk_text.lines().nth(1).unwrap();
        let mut raw = b64().decode(line).unwrap();
        for b in &mut raw[CHK_OFFSET..] {
            *b = 0;
        }
        let text = format!(
            "untrusted comment: minisign encrypted secret key\n{}\n",
            b64().encode(&raw)
        );
        let sk = SecretKey::load_from_str(&text, None).unwrap();
        let sig = sk.sign(b"x", "t").unwrap();
        TrustedKeys::new(vec![sk.public_key().clone()])
            .verify(b"x", &sig, "x")
            .unwrap();
        // A flipped secret byte is caught by the self-test.
        raw[70] ^= 1;
        let text = format!("untrusted comment: c\n{}\n", b64().encode(&raw));
        assert!(SecretKey::load_from_str(&text, None).is_err());
    }

    #[test]
    fn encrypted_keys_need_the_password() {
        let (sk_text, _) = generate(Some("hunter2")).unwrap();
        assert!(matches!(
            SecretKey::load_from_str(&sk_text, None),
            Err(KeyError::PasswordRequired { .. })
        ));
        assert!(matches!(
            SecretKey::load_from_str(&sk_text, Some("nope".into())),
            Err(KeyError::WrongPassword { .. })
        ));
        SecretKey::load_from_str(&sk_text, Some("hunter2".into())).unwrap();
    }

    #[test]
    fn malformed_inputs_are_named() {
        assert!(PublicKey::from_base64_line("RWnope").is_err());
        let keys = TrustedKeys::new(vec![]);
        let e = keys.verify(b"x", "garbage", "a/b.json").unwrap_err();
        assert!(e.to_string().contains("a/b.json"));
    }
}
