//! Publisher-side handlers: keygen, publish, promote, yank, registry verify, serve.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::{
    exit, Ctx, KeygenArgs, PromoteArgs, PublishArgs, RefreshArgs, RegistryVerifyArgs,
    SecretKeyArgs, ServeArgs, UnyankArgs, YankArgs,
};
use crate::archive::version_file;
use crate::registry::audit::{self, AuditStatus};
use crate::registry::channel::{self, PromoteSource, DEFAULT_EXPIRES_IN};
use crate::registry::keys::{self, PublicKey, SecretKey, TrustedKeys};
use crate::registry::names::{Target, Version};
use crate::registry::publish as pubops;
use crate::registry::rollout::Rollout;
use crate::registry::signed::Signer;
use crate::transport::{self, Store, TransportOptions};

/// Transport settings from the config file, so `s3://` publishing uses the same
/// endpoint and credentials settings as the agent.
fn transport_options(ctx: &Ctx) -> TransportOptions {
    ctx.config.transport_options()
}

pub(super) fn open_store(ctx: &Ctx, url: &str) -> anyhow::Result<Box<dyn Store>> {
    Ok(transport::open_store(url, &transport_options(ctx))?)
}

fn env_password(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|p| !p.is_empty())
}

pub(super) fn load_secret_key(a: &SecretKeyArgs) -> anyhow::Result<SecretKey> {
    let password = env_password(&a.password_env);
    if let Some(var) = &a.secret_key_env {
        let text = std::env::var(var).map_err(|_| {
            usage!(
                "environment variable {var} (from --secret-key-env) is not set: put the secret key file's contents in it"
            )
        })?;
        return Ok(SecretKey::load_named(&text, password, &format!("${var}"))?);
    }
    match &a.secret_key {
        Some(p) => Ok(SecretKey::load_from_file(p, password)?),
        None => Err(usage!(
            "no signing key: pass --secret-key FILE or --secret-key-env VAR"
        )),
    }
}

pub(super) fn load_public_keys(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|p| PublicKey::from_file(p).map_err(anyhow::Error::from))
        .collect()
}

pub(super) fn expires_in(s: &Option<String>) -> anyhow::Result<Duration> {
    duration_flag("--expires-in", s)
}

/// A channel validity flag: default 30 days, never zero.
fn duration_flag(flag: &str, s: &Option<String>) -> anyhow::Result<Duration> {
    match s {
        None => Ok(DEFAULT_EXPIRES_IN),
        Some(s) => {
            let d = humantime::parse_duration(s)
                .map_err(|e| usage!("{flag} {s:?}: write e.g. 30d, 12h ({e})"))?;
            if d.is_zero() {
                return Err(usage!("{flag} must be positive"));
            }
            Ok(d)
        }
    }
}

fn percent_rollout(p: Option<u8>) -> anyhow::Result<Option<Rollout>> {
    match p {
        None => Ok(None),
        Some(p) if p > 100 => Err(usage!("--rollout {p}: a percentage must be 0-100")),
        Some(p) => Ok(Some(Rollout {
            percent: Some(p),
            ..Rollout::default()
        })),
    }
}

fn write_new(path: &Path, text: &str, mode: u32, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        return Err(usage!(
            "{} already exists: refusing to overwrite a key (pass --force to replace it)",
            path.display()
        ));
    }
    crate::fsutil::write_atomic(path, text.as_bytes(), mode)
        .with_context(|| format!("cannot write {}", path.display()))
}

pub fn keygen(_ctx: &Ctx, a: KeygenArgs) -> anyhow::Result<u8> {
    let password = match &a.password_env {
        Some(var) => Some(
            env_password(var)
                .ok_or_else(|| usage!("--password-env {var}: the variable is unset or empty"))?,
        ),
        None => None,
    };
    for p in [&a.secret_key, &a.public_key] {
        if p.exists() && !a.force {
            return Err(usage!(
                "{} already exists: refusing to overwrite a key (pass --force to replace it)",
                p.display()
            ));
        }
    }
    let (sk, pk) = keys::generate(password.as_deref())?;
    write_new(&a.secret_key, &sk, 0o600, a.force)?;
    write_new(&a.public_key, &pk, 0o644, a.force)?;
    let public = PublicKey::from_file_text(&pk, "generated key")?;
    outln!(
        "secret key: {} ({})",
        a.secret_key.display(),
        if password.is_some() {
            "encrypted"
        } else {
            "unencrypted: keep it in a CI secret"
        }
    )?;
    outln!(
        "public key: {} (key id {})",
        a.public_key.display(),
        public.key_id()
    )?;
    outln!(
        "trust it on agents with: public_keys = [\"{}\"]",
        public.to_base64_line()
    )?;
    Ok(exit::OK)
}

pub async fn publish(ctx: &Ctx, a: PublishArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    if !a.target.is_empty() && a.target.len() != a.artifact.len() {
        return Err(usage!(
            "{} --artifact but {} --target: give one --target per --artifact, in the same order",
            a.artifact.len(),
            a.target.len()
        ));
    }
    if a.target.is_empty() && a.artifact.len() > 1 {
        return Err(usage!("several --artifact need one --target each"));
    }
    if !a.allow_target {
        for t in &a.target {
            t.check_known()?;
        }
    }
    if !a.allow_version_mismatch {
        for path in &a.artifact {
            check_version_file(path, &a.version)?;
        }
    }
    let targets: Vec<Target> = if a.target.is_empty() {
        vec![ctx.config.target.clone().unwrap_or_else(Target::host)]
    } else {
        a.target.clone()
    };
    if a.rollout.is_some() && a.channel.is_none() {
        return Err(usage!("--rollout applies to a channel: add --channel"));
    }
    let store = open_store(ctx, &a.registry)?;
    let req = pubops::PublishRequest {
        app: a.app.clone(),
        version: a.version.clone(),
        artifacts: targets
            .into_iter()
            .zip(a.artifact.iter().cloned())
            .collect(),
        channel: a.channel.clone(),
        notes: a.notes.clone(),
        rollout: percent_rollout(a.rollout)?,
        expires_in: expires_in(&a.expires_in)?,
        data_epoch: a.data_epoch,
    };
    let r = pubops::publish(store.as_ref(), &signer, &req, SystemTime::now()).await?;
    for art in &r.artifacts {
        outln!(
            "{} {} ({} bytes, sha256 {})",
            if art.uploaded {
                "uploaded"
            } else {
                "unchanged"
            },
            store.location(&art.key),
            art.size,
            art.sha256
        )?;
    }
    if r.release_written {
        outln!("signed {}", store.location(&r.release))?;
    } else {
        outln!(
            "{} {} is already published with identical artifacts: nothing to do",
            a.app,
            a.version
        )?;
    }
    if let Some(c) = &r.channel {
        outln!(
            "channel {} -> {} (sequence {}, expires {})",
            c.channel,
            c.version,
            c.sequence,
            c.expires
        )?;
    }
    Ok(exit::OK)
}

/// Refuse an artifact whose root VERSION file names another version, before anything
/// is uploaded. A file that cannot be read, or is no `.tar.gz`, is left to the upload's
/// own checks and errors.
fn check_version_file(path: &Path, version: &Version) -> anyhow::Result<()> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let found = match version_file::in_tarball(std::io::BufReader::new(file)) {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(path = %path.display(), "VERSION not checked: {e}");
            return Ok(());
        }
    };
    Ok(version_file::check(
        &path.display().to_string(),
        found,
        version,
    )?)
}

pub async fn promote(ctx: &Ctx, a: PromoteArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    let now = SystemTime::now();
    let rollout = match (&a.waves, a.rollout) {
        (Some(w), _) => Some(Rollout {
            percent: None,
            waves: crate::registry::rollout::parse_waves(w, now)
                .map_err(|e| usage!("--waves {w:?}: {e}"))?,
            halted: None,
        }),
        (None, p) => percent_rollout(p)?,
    };
    let mut source = match (&a.version, &a.from) {
        (Some(v), Some(c)) => PromoteSource::Approved {
            version: v.clone(),
            from: c.clone(),
        },
        (Some(v), None) => PromoteSource::Version(v.clone()),
        (None, Some(c)) => PromoteSource::Channel(c.clone()),
        (None, None) => return Err(usage!("give --version V or --from CHANNEL")),
    };
    let store = open_store(ctx, &a.registry)?;
    if let Some(pct) = a.require_healthy {
        let soak = match &a.soak {
            Some(s) => humantime::parse_duration(s)
                .map_err(|e| usage!("--soak {s:?}: write e.g. 30m, 2h, 1d ({e})"))?,
            None => Duration::ZERO,
        };
        let rule = crate::registry::fleet::GateRule {
            require_healthy_percent: pct,
            min_machines: usize::try_from(a.min_machines.unwrap_or(1)).unwrap_or(usize::MAX),
            soak,
        };
        source = super::fleet::gate_promotion(
            store.as_ref(),
            &signer,
            &a.app,
            source,
            &a.channel,
            &rule,
        )
        .await?;
    }
    let doc = channel::promote(
        store.as_ref(),
        &signer,
        channel::PromoteRequest {
            app: a.app.clone(),
            source,
            channel: a.channel.clone(),
            rollout,
            notes: None,
            expires_in: expires_in(&a.expires_in)?,
        },
        now,
    )
    .await?;
    outln!(
        "channel {} -> {} (sequence {}, expires {})",
        doc.channel,
        doc.version,
        doc.sequence,
        doc.expires
    )?;
    Ok(exit::OK)
}

pub async fn yank(ctx: &Ctx, a: YankArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    let store = open_store(ctx, &a.registry)?;
    let doc = channel::yank(
        store.as_ref(),
        &signer,
        channel::YankRequest {
            app: a.app.clone(),
            channel: a.channel.clone(),
            version: a.version.clone(),
            reason: a.reason.clone(),
            expires_in: expires_in(&a.expires_in)?,
        },
        SystemTime::now(),
    )
    .await?;
    outln!(
        "yanked {} on channel {} (sequence {}); agents on it will not run {}",
        a.version,
        doc.channel,
        doc.sequence,
        a.version
    )?;
    Ok(exit::OK)
}

pub async fn unyank(ctx: &Ctx, a: UnyankArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    let store = open_store(ctx, &a.registry)?;
    let doc = channel::unyank(
        store.as_ref(),
        &signer,
        channel::UnyankRequest {
            app: a.app.clone(),
            channel: a.channel.clone(),
            version: a.version.clone(),
            expires_in: expires_in(&a.expires_in)?,
        },
        SystemTime::now(),
    )
    .await?;
    match doc {
        Some(doc) => outln!(
            "unyanked {} on channel {} (sequence {}); machines on it may run {} again",
            a.version,
            doc.channel,
            doc.sequence,
            a.version
        )?,
        None => outln!(
            "{} is not yanked on channel {}: nothing written",
            a.version,
            a.channel
        )?,
    }
    Ok(exit::OK)
}

pub async fn refresh(ctx: &Ctx, a: RefreshArgs) -> anyhow::Result<u8> {
    let key = load_secret_key(&a.key)?;
    let signer = Signer::new(&key, load_public_keys(&a.key.trusted_key)?);
    let store = open_store(ctx, &a.registry)?;
    let expires_in = duration_flag("--expires", &a.expires)?;
    let doc = channel::refresh(
        store.as_ref(),
        &signer,
        &a.app,
        &a.channel,
        expires_in,
        SystemTime::now(),
    )
    .await?;
    if a.json {
        let out = serde_json::json!({
            "app": doc.app,
            "channel": {
                "name": doc.channel,
                "version": doc.version,
                "sequence": doc.sequence,
                "expires_at": doc.expires,
            },
            "rollout": doc.rollout,
            "yanked": doc.yanked,
        });
        super::json::print(&out)?;
    } else {
        outln!(
            "refreshed channel {} -> {} (sequence {}, expires {})",
            doc.channel,
            doc.version,
            doc.sequence,
            doc.expires
        )?;
    }
    Ok(exit::OK)
}

pub async fn verify(ctx: &Ctx, a: RegistryVerifyArgs) -> anyhow::Result<u8> {
    let keys = TrustedKeys::new(load_public_keys(&a.public_key)?);
    let store = open_store(ctx, &a.registry)?;
    let min_valid = match &a.min_valid {
        Some(s) => Some(
            humantime::parse_duration(s)
                .map_err(|e| usage!("--min-valid {s:?}: write e.g. 7d, 48h ({e})"))?,
        ),
        None => None,
    };
    let report =
        audit::audit_min_valid(store.as_ref(), &a.app, &keys, SystemTime::now(), min_valid).await?;
    if a.json {
        super::json::print(&report)?;
    } else {
        for i in &report.items {
            let tag = match i.status {
                AuditStatus::Ok => "ok  ",
                AuditStatus::Warn => "warn",
                AuditStatus::Fail => "FAIL",
            };
            outln!("{tag} {}: {}", i.key, i.detail)?;
        }
        outln!(
            "{}: {} checked, {} failed, {} warnings",
            if report.ok {
                "registry ok"
            } else {
                "registry FAILED"
            },
            report.checked,
            report.failures,
            report.warnings
        )?;
    }
    Ok(if report.ok { exit::OK } else { exit::VERIFY })
}

pub async fn serve(_ctx: &Ctx, a: ServeArgs) -> anyhow::Result<u8> {
    crate::registry::serve::run(a.dir, &a.listen).await?;
    Ok(super::exit::OK)
}
