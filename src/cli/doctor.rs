//! `updraft doctor`: everything an update needs, checked before an update needs it.
//!
//! A timer run that fails at 3 a.m. on a wrong key, an expired channel or a missing
//! health script is found by the operator hours later in a journal. `doctor` runs the
//! same steps the agent would (config, keys, root, registry, signature and expiry, this
//! machine's artifact, the commands and units an activation runs, the clock) without
//! changing anything, one line per check, so a config can be tried before it is used
//! and a broken machine explains itself. Exit 0 when nothing failed (warnings pass),
//! 1 otherwise.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{exit, Ctx, JsonArgs};
use crate::activate::{preflight, Pipeline};
use crate::agent::{channel_info, Agent, AgentError};
use crate::disk::layout::AppRoot;
use crate::disk::state::State;
use crate::registry::manifest;
use crate::transport::{FetchRequest, Fetched};

/// How long doctor waits for the registry: one attempt, no retries, so an unreachable
/// registry is reported in seconds rather than after the agent's whole retry budget.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);

/// A clock this far from the registry's is worth a warning; HTTP dates have whole
/// seconds, so a second or two is only rounding.
const SKEW_WARN: Duration = Duration::from_secs(30);
/// This far off, expiry checks misjudge documents (a fresh one looks expired, an
/// expired one still valid): a failure.
const SKEW_FAIL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not checked: an earlier check failed, or it does not apply here.
    Skip,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

fn found(check: &'static str, status: Status, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        status,
        detail: detail.into(),
    }
}

/// How far this machine's clock is from the registry's `Date`, judged. Pure: both times
/// are given.
pub fn clock_verdict(local: SystemTime, server: SystemTime) -> (Status, String) {
    let (skew, side) = match local.duration_since(server) {
        Ok(d) => (d, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    let secs = skew.as_secs();
    if skew <= SKEW_WARN {
        (
            Status::Ok,
            format!("within {secs} s of the registry's clock"),
        )
    } else {
        let status = if skew > SKEW_FAIL {
            Status::Fail
        } else {
            Status::Warn
        };
        (
            status,
            format!("{secs} s {side} the registry's clock: expiry checks depend on it; fix time sync (NTP, systemd-timesyncd)"),
        )
    }
}

/// The channel's expiry, judged: a warning within the agent's warning window.
pub fn expiry_verdict(
    channel: &crate::registry::names::Channel,
    expires: SystemTime,
    now: SystemTime,
) -> (Status, String) {
    match channel_info::expiry_warning(channel, expires, now, channel_info::EXPIRY_WARNING) {
        Some(msg) => (Status::Warn, msg),
        None => {
            let days = expires
                .duration_since(now)
                .map_or(0, |d| d.as_secs() / 86_400);
            (Status::Ok, format!("expires in {days} days"))
        }
    }
}

/// 0 when nothing failed, 1 otherwise.
pub fn exit_code(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.status == Status::Fail) {
        exit::ERROR
    } else {
        exit::OK
    }
}

#[derive(Serialize)]
struct DoctorJson<'a> {
    ok: bool,
    checks: &'a [Finding],
}

pub async fn doctor(ctx: &Ctx, a: JsonArgs) -> anyhow::Result<u8> {
    let findings = run(ctx).await;
    let code = exit_code(&findings);
    if a.json {
        super::json::print(&DoctorJson {
            ok: code == exit::OK,
            checks: &findings,
        })?;
    } else {
        for f in &findings {
            outln!("{:<5} {:<10} {}", f.status.word(), f.check, f.detail)?;
        }
        let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
        if failed > 0 {
            outln!("{failed} check(s) failed")?;
        }
    }
    Ok(code)
}

async fn run(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    match &ctx.config_path {
        Some(p) => out.push(found("config", Status::Ok, format!("read {}", p.display()))),
        None => out.push(found(
            "config",
            Status::Fail,
            "no config file: pass --config FILE or set UPDRAFT_CONFIG (see README \"Configuration\")",
        )),
    }
    let root = match ctx.app_root() {
        Ok(root) => {
            out.push(check_root(&root));
            root
        }
        Err(e) => {
            out.push(found("root", Status::Fail, super::render_error(&e)));
            return skip_rest(out, "no app root");
        }
    };
    let p = Pipeline::new(&root, &ctx.config);
    let state = p.load_state().unwrap_or_else(|_| State::default());
    let current = p.current().ok().flatten();
    out.extend(check_commands(ctx, &root, current.as_ref()));
    out.push(check_units(ctx).await);

    let agent = match Agent::from_config(root.clone(), &ctx.config) {
        Ok(agent) => {
            out.push(found(
                "keys",
                Status::Ok,
                match agent.pinned_roots() {
                    Some((n, threshold)) => format!(
                        "{n} pinned root key(s), threshold {threshold}: publisher keys come from the registry's keys document"
                    ),
                    None => format!("{} trusted public key(s)", agent.keys().keys().len()),
                },
            ));
            agent
        }
        Err(e) => {
            let check = match e {
                AgentError::BadKey { .. }
                | AgentError::NoKeys
                | AgentError::BothKeys
                | AgentError::BadRoots(_) => "keys",
                AgentError::Transport(_) => "registry",
                _ => "config",
            };
            out.push(found(check, Status::Fail, e.to_string()));
            return skip_rest(out, "the agent cannot start with this config");
        }
    };
    check_registry(&agent, &state, &mut out).await;
    out
}

/// The checks that need what an earlier one could not provide.
fn skip_rest(mut out: Vec<Finding>, why: &str) -> Vec<Finding> {
    for check in [
        "keys", "registry", "channel", "artifact", "clock", "commands", "units",
    ] {
        if !out.iter().any(|f| f.check == check) {
            out.push(found(check, Status::Skip, format!("not checked: {why}")));
        }
    }
    out
}

fn check_root(root: &AppRoot) -> Finding {
    let path = root.path();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return found(
                "root",
                Status::Warn,
                format!(
                    "{} does not exist yet: the first update creates it",
                    path.display()
                ),
            )
        }
        Err(e) => return found("root", Status::Fail, format!("{}: {e}", path.display())),
    };
    if !meta.is_dir() {
        return found(
            "root",
            Status::Fail,
            format!("{} is not a directory", path.display()),
        );
    }
    if rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_err() {
        return found(
            "root",
            Status::Fail,
            format!(
                "{} is not writable by this user: run as the agent's user (root under updraft.service)",
                path.display()
            ),
        );
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return found(
            "root",
            Status::Warn,
            format!(
                "{} is group- or world-writable: another user could plant a release; chmod go-w it",
                path.display()
            ),
        );
    }
    found(
        "root",
        Status::Ok,
        format!("{} is writable", path.display()),
    )
}

/// The commands an activation runs, looked up as the next activation would: in the
/// current release for paths under `releases/current/`; with nothing installed yet,
/// those are checked when the first release is staged.
fn check_commands(
    ctx: &Ctx,
    root: &AppRoot,
    current: Option<&crate::registry::names::Version>,
) -> Vec<Finding> {
    let commands = preflight::commands(&ctx.config);
    if commands.is_empty() {
        return vec![found(
            "commands",
            Status::Skip,
            "no hook, service or health commands configured",
        )];
    }
    let problems = match current {
        Some(v) => preflight::check(&ctx.config, root, &root.release_dir(v)),
        None => preflight::check(&ctx.config, root, &root.releases().join(".none"))
            .into_iter()
            .filter(|p| {
                !(p.program.contains("{release}")
                    || std::path::Path::new(&p.program).starts_with(root.current_link()))
            })
            .collect(),
    };
    if problems.is_empty() {
        let where_ = match current {
            Some(v) => format!("in release {v}"),
            None => "(paths in releases/current/ are checked at the first install)".into(),
        };
        return vec![found(
            "commands",
            Status::Ok,
            format!(
                "{} command(s) found and executable {where_}",
                commands.len()
            ),
        )];
    }
    problems
        .into_iter()
        .map(|p| found("commands", Status::Fail, p.to_string()))
        .collect()
}

async fn check_units(ctx: &Ctx) -> Finding {
    let units = &ctx.config.services.units;
    if units.is_empty() {
        return found("units", Status::Skip, "no services.units configured");
    }
    let problems = preflight::unit_problems(&ctx.config, ctx.config.services.timeout.0).await;
    if problems.is_empty() {
        found(
            "units",
            Status::Ok,
            format!("{} known to systemd", units.join(", ")),
        )
    } else {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        found("units", Status::Fail, text.join("; "))
    }
}

/// Reachability (with the server's clock), then the channel as the agent would accept
/// it, then this machine's artifact in the release it names.
async fn check_registry(agent: &Agent, state: &State, out: &mut Vec<Finding>) {
    let key = manifest::channel_key(&agent.app, &agent.channel);
    let location = agent.transport.location(&key);
    let req = FetchRequest::whole(&key, agent.config.limits.max_document_bytes);
    let date = match tokio::time::timeout(REGISTRY_TIMEOUT, agent.transport.fetch(&req)).await {
        Err(_) => {
            out.push(found(
                "registry",
                Status::Fail,
                format!("{location}: no answer in {} s", REGISTRY_TIMEOUT.as_secs()),
            ));
            skip_registry(out);
            return;
        }
        Ok(Err(e)) => {
            out.push(found("registry", Status::Fail, e.to_string()));
            skip_registry(out);
            return;
        }
        Ok(Ok(Fetched::NotModified)) => None,
        Ok(Ok(Fetched::Body(body))) => {
            let date = body.date.clone();
            drop(body);
            out.push(found("registry", Status::Ok, format!("reached {location}")));
            date
        }
    };
    let doc = match agent.fetch_channel(state).await {
        Ok(view) => {
            let doc = view.doc;
            let (status, expiry) = match crate::time::parse_time(&doc.expires) {
                Ok(expires) => expiry_verdict(&agent.channel, expires, SystemTime::now()),
                Err(e) => (Status::Fail, format!("expires {:?}: {e}", doc.expires)),
            };
            out.push(found(
                "channel",
                status,
                format!(
                    "{} offers {} (sequence {}), signature good, {expiry}",
                    agent.channel, doc.version, doc.sequence
                ),
            ));
            Some(doc)
        }
        Err(e) => {
            out.push(found("channel", Status::Fail, e.to_string()));
            None
        }
    };
    match doc {
        None => out.push(found(
            "artifact",
            Status::Skip,
            "not checked: the channel document was not accepted",
        )),
        Some(doc) => out.push(match agent.fetch_release(&doc.version).await {
            Err(e) => found("artifact", Status::Fail, e.to_string()),
            Ok(release) => match release.artifact_location(&agent.target) {
                Ok((_, artifact)) => found(
                    "artifact",
                    Status::Ok,
                    format!(
                        "{} has a {} artifact of {} bytes",
                        doc.version, agent.target, artifact.size
                    ),
                ),
                Err(e) => found("artifact", Status::Fail, e.to_string()),
            },
        }),
    }
    out.push(match date.as_deref().map(httpdate::parse_http_date) {
        None => found(
            "clock",
            Status::Skip,
            "the registry sent no Date (a file:// registry shares this machine's clock)",
        ),
        Some(Err(_)) => found(
            "clock",
            Status::Warn,
            format!(
                "the registry's Date {:?} is not an HTTP date",
                date.unwrap_or_default()
            ),
        ),
        Some(Ok(server)) => {
            let (status, detail) = clock_verdict(SystemTime::now(), server);
            found("clock", status, detail)
        }
    });
}

fn skip_registry(out: &mut Vec<Finding>) {
    for check in ["channel", "artifact", "clock"] {
        out.push(found(
            check,
            Status::Skip,
            "not checked: the registry did not answer",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_is_judged_both_ways() {
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (offset, ahead, want) in [
            (0, true, Status::Ok),
            (30, true, Status::Ok),
            (31, true, Status::Warn),
            (31, false, Status::Warn),
            (300, false, Status::Warn),
            (301, false, Status::Fail),
            (3600, true, Status::Fail),
        ] {
            let d = Duration::from_secs(offset);
            let local = if ahead { server + d } else { server - d };
            let (status, detail) = clock_verdict(local, server);
            assert_eq!(status, want, "{offset} {ahead}: {detail}");
            if status != Status::Ok {
                let side = if ahead { "ahead of" } else { "behind" };
                assert!(detail.contains(side), "{detail}");
            }
        }
    }

    #[test]
    fn only_failures_fail() {
        let f = |s| found("x", s, "");
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(
            exit_code(&[f(Status::Ok), f(Status::Warn), f(Status::Skip)]),
            0
        );
        assert_eq!(exit_code(&[f(Status::Ok), f(Status::Fail)]), 1);
    }

    #[test]
    fn expiry_warns_within_a_week() {
        let ch = "prod".parse::<crate::registry::names::Channel>().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(expiry_verdict(&ch, now + 30 * day, now).0, Status::Ok);
        assert_eq!(expiry_verdict(&ch, now + 2 * day, now).0, Status::Warn);
    }
}
