//! Health checks (placeholder until the health branch lands).
use crate::config::HealthCheck;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct HealthReport {}
#[derive(Debug, thiserror::Error)]
#[error("health check failed: {0}")]
pub struct HealthError(pub String);

async fn once(c: &HealthCheck, env: &[(String, String)]) -> Result<(), String> {
    if let Some(argv) = &c.command {
        let out = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().cloned())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        return Err(format!(
            "{} exited with {}: {}",
            c.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if let Some(url) = &c.http {
        let r = reqwest::get(url).await.map_err(|e| e.to_string())?;
        let want = c.expect_status.unwrap_or(200);
        if r.status().as_u16() != want {
            return Err(format!("HTTP {} from {url}", r.status().as_u16()));
        }
        return Ok(());
    }
    if let Some(addr) = &c.tcp {
        tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub async fn run_checks(
    checks: &[HealthCheck],
    env: &[(String, String)],
) -> Result<HealthReport, HealthError> {
    for c in checks {
        tokio::time::sleep(c.grace.0).await;
        let mut last = String::new();
        let mut ok = false;
        for i in 0..=c.retries {
            if i > 0 {
                tokio::time::sleep(c.interval.0).await;
            }
            match tokio::time::timeout(c.timeout.0, once(c, env)).await {
                Ok(Ok(())) => {
                    ok = true;
                    break;
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = "timed out".into(),
            }
        }
        if !ok {
            return Err(HealthError(format!("{}: {last}", c.label())));
        }
    }
    Ok(HealthReport {})
}

pub async fn watch(
    checks: &[HealthCheck],
    env: &[(String, String)],
    d: Duration,
    every: Duration,
) -> Result<(), HealthError> {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(every).await;
        run_checks(checks, env).await?;
    }
    Ok(())
}
