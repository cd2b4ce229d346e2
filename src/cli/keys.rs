//! `updraft keys init|add|revoke|rotate-root|renew`: the app's signed keys document,
//! which agents that pin root keys read to know the publisher keys (registry-spec §7.1).

use std::time::{Duration, SystemTime};

use super::publish::{load_public_keys, open_store};
use super::{exit, Ctx, KeysCommand, KeysCommonArgs};
use crate::registry::keyring::{self, KeysChange, KeysDoc, Roots, DEFAULT_KEYS_EXPIRY};
use crate::registry::keys::{PublicKey, SecretKey};

fn root_signers(a: &KeysCommonArgs) -> anyhow::Result<Vec<SecretKey>> {
    let password = std::env::var(&a.password_env)
        .ok()
        .filter(|p| !p.is_empty());
    a.root_secret_key
        .iter()
        .map(|p| Ok(SecretKey::load_from_file(p, password.clone())?))
        .collect()
}

fn expiry(a: &KeysCommonArgs) -> anyhow::Result<Duration> {
    match &a.expires_in {
        None => Ok(DEFAULT_KEYS_EXPIRY),
        Some(s) => {
            let d = humantime::parse_duration(s)
                .map_err(|e| usage!("--expires-in {s:?}: write e.g. 365d, 90d ({e})"))?;
            if d.is_zero() {
                return Err(usage!("--expires-in must be positive"));
            }
            Ok(d)
        }
    }
}

/// `--key` of `revoke`: a `.pub` file, or a key id as minisign prints it.
fn key_id_of(arg: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(arg);
    if path.exists() {
        return Ok(PublicKey::from_file(path)?.key_id());
    }
    if !arg.is_empty() && arg.len() <= 16 && arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(arg.to_ascii_uppercase());
    }
    Err(usage!(
        "--key {arg:?} is neither a .pub file nor a key id (up to 16 hex digits, as `minisign` prints it)"
    ))
}

fn summary(doc: &KeysDoc) -> String {
    let ids = |lines: &[String]| {
        lines
            .iter()
            .filter_map(|l| PublicKey::from_base64_line(l).ok())
            .map(|k| k.key_id())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{}/keys.json version {}: publisher keys {}; root keys {} (threshold {}); expires {}",
        doc.app,
        doc.version,
        ids(&doc.keys),
        ids(&doc.root_keys),
        doc.root_threshold,
        doc.expires
    )
}

pub async fn keys(ctx: &Ctx, cmd: KeysCommand) -> anyhow::Result<u8> {
    let (common, change) = match cmd {
        KeysCommand::Init(a) => {
            let signers = root_signers(&a.common)?;
            let mut roots: Vec<PublicKey> =
                signers.iter().map(|s| s.public_key().clone()).collect();
            for k in load_public_keys(&a.root_public_key)? {
                if !roots.contains(&k) {
                    roots.push(k);
                }
            }
            let roots = Roots::new(roots, a.root_threshold, "the root keys given")?;
            let keys = load_public_keys(&a.key)?;
            (a.common, KeysChange::Init { roots, keys })
        }
        KeysCommand::Add(a) => {
            let key = PublicKey::from_file(&a.key)?;
            (a.common, KeysChange::Add(key))
        }
        KeysCommand::Revoke(a) => {
            let id = key_id_of(&a.key)?;
            (a.common, KeysChange::Revoke(id))
        }
        KeysCommand::RotateRoot(a) => {
            let roots = Roots::new(
                load_public_keys(&a.new_root_key)?,
                a.new_root_threshold,
                "--new-root-key",
            )?;
            (a.common, KeysChange::RotateRoot(roots))
        }
        KeysCommand::Renew(a) => (a, KeysChange::Renew),
    };
    let signers = root_signers(&common)?;
    let expires_in = expiry(&common)?;
    let store = open_store(ctx, &common.registry)?;
    let doc = keyring::change_keys(
        store.as_ref(),
        &common.app,
        &signers,
        &change,
        SystemTime::now(),
        expires_in,
    )
    .await?;
    outln!("{}", summary(&doc))?;
    Ok(exit::OK)
}
