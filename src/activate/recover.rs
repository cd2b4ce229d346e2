//! Crash recovery: what a run finds left by one that was killed. Staging trees are
//! removed; an activation still pending (its health never confirmed) is undone.

use tracing::{info, warn};

use super::error::{io_err, DeployError};
use super::journal::LogLine;
use super::Pipeline;
use crate::disk::releases;
use crate::disk::state::{Kind, Pending, State};
use crate::fsutil;
use crate::registry::names::Version;

/// What to do with an activation a killed run left pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// Drop the record: `current` never reached the release (the run died before the
    /// switch), or it was a rollback, whose target is an operator's choice.
    Forget,
    /// `current` points at a new release whose health was never confirmed: switch
    /// back, restart what ran before, and block the release.
    RollBack,
}

fn recovery(pending: &Pending, current: Option<&Version>) -> Recovery {
    // State files from before `kind` was recorded have none: treat as a new release.
    let blocks = pending.kind.is_none_or(Kind::blocks_on_failure);
    if blocks && current == Some(&pending.version) {
        Recovery::RollBack
    } else {
        Recovery::Forget
    }
}

impl Pipeline<'_> {
    /// Finish what a killed run left: remove staging trees, and roll back an
    /// activation that was still pending (its health was never confirmed).
    pub async fn recover(&self, state: &mut State) -> Result<(), DeployError> {
        let root = self.root.clone();
        let removed = fsutil::blocking(move || releases::clean_leftovers(&root))
            .await
            .map_err(io_err(
                "cannot remove leftover staging",
                &self.root.releases(),
            ))?;
        for p in removed.removed {
            info!(path = %p.display(), "removed leftover staging directory from an interrupted run");
        }
        for (p, e) in removed.stuck {
            warn!(
                path = %p.display(),
                error = %e,
                "cannot remove a leftover of an interrupted run; it is out of the way and retried on every run (remove it by hand if this repeats: an immutable file or a mount inside it blocks removal)"
            );
        }
        let Some(pending) = state.pending.take() else {
            return Ok(());
        };
        let current = self.current()?;
        if recovery(&pending, current.as_ref()) == Recovery::RollBack {
            let reason = format!(
                "activation of {} was interrupted before its health checks passed (process or machine died)",
                pending.version
            );
            warn!(version = %pending.version, "{reason}; rolling back");
            let what = self
                .switch_back(pending.previous.as_ref(), pending.previous_link.as_deref())
                .await?;
            let how = self
                .bring_back(
                    pending.previous.as_ref(),
                    pending.previous_link.is_some(),
                    &pending.version,
                )
                .await;
            info!("{what}{how}");
            state.recovered(&pending.version, &reason);
            self.log(LogLine::Recovered {
                version: &pending.version,
                restored: pending.previous.as_ref(),
            });
        }
        self.save_state(state).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_table() {
        let v1: Version = "1.0.0".parse().unwrap();
        let v2: Version = "1.1.0".parse().unwrap();
        let pending = |kind: Option<Kind>| Pending {
            kind,
            version: v2.clone(),
            previous: Some(v1.clone()),
            previous_link: None,
            started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            bake_until: None,
        };
        // (pending kind, current, what recovery does)
        let cases = [
            (Some(Kind::Deploy), Some(&v2), Recovery::RollBack),
            (Some(Kind::Update), Some(&v2), Recovery::RollBack),
            // Written before `kind` was recorded.
            (None, Some(&v2), Recovery::RollBack),
            // Died before `current` moved.
            (Some(Kind::Deploy), Some(&v1), Recovery::Forget),
            (Some(Kind::Update), None, Recovery::Forget),
            // A rollback target is not blocked, wherever `current` is.
            (Some(Kind::Rollback), Some(&v2), Recovery::Forget),
            (Some(Kind::Rollback), Some(&v1), Recovery::Forget),
        ];
        for (kind, current, want) in cases {
            assert_eq!(
                recovery(&pending(kind), current),
                want,
                "kind={kind:?} current={current:?}"
            );
        }
    }
}
