//! Service restarts (placeholder until the health branch lands).
use crate::config::Services;
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOutcome {
    Skipped,
    Reloaded,
    Restarted,
}
#[derive(Debug, thiserror::Error)]
#[error("service restart failed: {0}")]
pub struct ServiceError(pub String);

async fn run(argv: &[String], env: &[(String, String)]) -> Result<(), ServiceError> {
    let st = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().cloned())
        .status()
        .await
        .map_err(|e| ServiceError(format!("{}: {e}", argv[0])))?;
    if st.success() {
        Ok(())
    } else {
        Err(ServiceError(format!(
            "`{}` exited with {st}",
            argv.join(" ")
        )))
    }
}

pub async fn restart(
    cfg: &Services,
    env: &[(String, String)],
) -> Result<ServiceOutcome, ServiceError> {
    if !cfg.reload.is_empty() && run(&cfg.reload, env).await.is_ok() {
        return Ok(ServiceOutcome::Reloaded);
    }
    if !cfg.restart.is_empty() {
        run(&cfg.restart, env).await?;
        return Ok(ServiceOutcome::Restarted);
    }
    Ok(ServiceOutcome::Skipped)
}
