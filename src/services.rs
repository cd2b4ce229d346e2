//! (stub until the services branch lands)
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
pub async fn restart(
    cfg: &Services,
    _env: &[(String, String)],
) -> Result<ServiceOutcome, ServiceError> {
    if cfg.units.is_empty() && cfg.restart.is_empty() && cfg.reload.is_empty() {
        return Ok(ServiceOutcome::Skipped);
    }
    Err(ServiceError("not implemented".into()))
}
