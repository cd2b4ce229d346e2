//! (stub until the health branch lands)
use crate::config::HealthCheck;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct HealthReport {}
#[derive(Debug, thiserror::Error)]
#[error("health check failed: {0}")]
pub struct HealthError(pub String);
pub async fn run_checks(
    checks: &[HealthCheck],
    _env: &[(String, String)],
) -> Result<HealthReport, HealthError> {
    if checks.is_empty() {
        return Ok(HealthReport {});
    }
    Err(HealthError("not implemented".into()))
}
pub async fn watch(
    _checks: &[HealthCheck],
    _env: &[(String, String)],
    _d: Duration,
    _every: Duration,
) -> Result<(), HealthError> {
    Ok(())
}
