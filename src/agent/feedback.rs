//! After each run: tell the fleet (the report) and the host (the metrics file) where
//! this machine stands. Nothing here can fail or hold up an update beyond the report's
//! own timeout: problems are logged at warn and the next run tries again.

use std::time::SystemTime;

use tracing::{debug, info, warn};

use super::report::{self, Inputs, Sink};
use super::{machine, metrics, Agent};
use crate::activate::Pipeline;
use crate::disk::state::State;
use crate::registry::manifest;
use crate::registry::report::Report;
use crate::registry::rollout;

impl Agent {
    /// The report for this moment, from `state` (as just saved) and the app root.
    pub fn report_now(&self, state: &State) -> Result<Report, String> {
        let machine = machine::app_specific_id(&self.machine_id, self.app.as_str())
            .parse()
            .map_err(|e| format!("{e}"))?;
        let current = self
            .root
            .current()
            .map_err(|e| format!("cannot read the current link: {e}"))?;
        // The link is replaced (never modified) on every switch, so its own mtime is
        // when `current` began pointing where it points.
        let last_activation = current.as_ref().and_then(|_| {
            std::fs::symlink_metadata(self.root.current_link())
                .and_then(|m| m.modified())
                .ok()
                .map(crate::time::format_time)
        });
        let seen = state
            .channel
            .as_ref()
            .filter(|c| c.channel.as_ref() == Some(&self.channel));
        // The cached document was verified when it was accepted; only its expiry is read.
        let channel_expires = seen
            .and_then(|c| c.document.as_deref())
            .and_then(|d| manifest::parse_channel(d.as_bytes(), "cached channel document").ok())
            .map(|doc| doc.expires);
        let rollout_bucket = seen
            .and_then(|c| c.version.as_ref())
            .map(|v| rollout::bucket(&self.machine_id, self.app.as_str(), &v.to_string()));
        Ok(report::build(&Inputs {
            machine,
            hostname: if self.config.report.hostname {
                report::hostname()
            } else {
                None
            },
            app: &self.app,
            channel: &self.channel,
            target: &self.target,
            state,
            current,
            last_activation,
            channel_expires,
            rollout_bucket,
            now: SystemTime::now(),
        }))
    }

    /// Write the metrics file and, when due, the fleet report. `state` is the state as
    /// saved at the end of the run; the report mark is added to it and saved.
    pub(crate) async fn after_run(&self, p: &Pipeline<'_>, state: &mut State, run_failed: bool) {
        if self.config.metrics_file.is_none() && !self.config.report.enabled {
            return;
        }
        let r = match self.report_now(state) {
            Ok(r) => r,
            Err(e) => {
                warn!("cannot describe this machine for its report and metrics: {e}");
                return;
            }
        };
        if let Some(path) = &self.config.metrics_file {
            let text = metrics::render(&r, state.last_success);
            let at = path.clone();
            if let Err(e) = crate::fsutil::blocking(move || metrics::write(&at, &text)).await {
                warn!(
                    "cannot write the metrics file {}: {e} (does the directory exist and is it writable, e.g. in ReadWritePaths=?)",
                    path.display()
                );
            }
        }
        if !self.config.report.enabled {
            return;
        }
        let digest = report::digest(&r);
        let every = self.config.report.every.0;
        if !report::due(
            state.last_report.as_ref(),
            &digest,
            run_failed,
            every,
            SystemTime::now(),
        ) {
            debug!("fleet report unchanged and not yet due");
            return;
        }
        let url = self
            .config
            .report
            .url
            .clone()
            .or_else(|| self.config.registry.clone())
            .unwrap_or_default();
        let written = match Sink::open(&url, &self.config.report_transport_options()) {
            Ok(sink) => report::write(&sink, &r).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(mark) => {
                info!(state = %r.state, "fleet report written");
                state.last_report = Some(mark);
                if let Err(e) = p.save_state(state).await {
                    warn!("fleet report written, but cannot remember that: {e}");
                }
            }
            Err(e) => warn!("{e}; the next run tries again"),
        }
    }
}
