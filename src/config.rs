//! The TOML configuration file. Every key is documented in README.md ("Configuration").
//!
//! Unknown keys are an error naming the key: a typo such as `intervall` must not
//! silently fall back to a default on a fleet of machines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Classify, ErrorClass};
use crate::registry::names::{AppName, Channel, Target};
use crate::transport::{S3Options, TransportOptions};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// A duration written the human way: "5s", "200ms", "15m", "1h 30m".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {s:?}: {e} (write e.g. \"5s\", \"200ms\", \"15m\")"
                ))
            })
    }
}

fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub app: Option<AppName>,
    pub root: Option<PathBuf>,
    pub registry: Option<String>,
    pub channel: Option<Channel>,
    #[serde(default)]
    pub public_keys: Vec<String>,
    #[serde(default)]
    pub public_key_files: Vec<PathBuf>,
    /// Pinned root keys of the app's signed keys document (`<app>/keys.json`), which
    /// then says which publisher keys sign channel and release documents.
    #[serde(default)]
    pub root_keys: Vec<String>,
    /// How many of `root_keys` must sign the first keys document this machine accepts.
    #[serde(default = "default_root_threshold")]
    pub root_threshold: u32,
    pub target: Option<Target>,
    #[serde(default = "default_keep")]
    pub keep: usize,
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_jitter")]
    pub jitter: HumanDuration,
    #[serde(default = "default_bake")]
    pub bake: HumanDuration,
    pub machine_id_file: Option<PathBuf>,
    pub machine_id: Option<String>,
    #[serde(default)]
    pub health: Vec<HealthCheck>,
    #[serde(default)]
    pub services: Services,
    /// Command run inside the staged release before it is activated (argv; `{release}`
    /// is replaced by the staged release directory).
    #[serde(default)]
    pub pre_activate: Vec<String>,
    /// Maintenance windows: outside them the agent does not activate updates (README
    /// "Maintenance windows"). Empty: any time.
    #[serde(default)]
    pub window: Vec<crate::window::Window>,
    /// Outside a window, still download and install (stage) the update.
    #[serde(default)]
    pub stage_outside_window: bool,
    /// Data snapshots before a release raises the data epoch (README "Data epochs").
    #[serde(default)]
    pub data: DataConfig,
    /// Lifecycle hooks after activation and around rollbacks (README "Lifecycle hooks").
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: HumanDuration,
    pub log_format: Option<String>,
    // S3 (see README "S3 and CDN").
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    #[serde(default)]
    pub s3_path_style: Option<bool>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_session_token: Option<String>,
    /// Prometheus textfile-collector file written after each agent run (README "Metrics").
    pub metrics_file: Option<PathBuf>,
    /// Fleet reports (README "Configuration", `[report]`).
    #[serde(default)]
    pub report: ReportConfig,
}

/// `[report]`: what this machine tells the registry about itself after its runs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Where reports go; default: the registry itself.
    pub url: Option<String>,
    /// Heartbeat: write at least this often even when nothing changed.
    #[serde(default = "default_report_every")]
    pub every: HumanDuration,
    /// Include the hostname (false keeps it on the host).
    #[serde(default = "default_true")]
    pub hostname: bool,
    /// Separate S3 credentials for writing reports (write-only to `<app>/fleet/*`), so
    /// the registry's read credentials need no write access.
    pub report_s3_access_key_id: Option<String>,
    pub report_s3_secret_access_key: Option<String>,
    pub report_s3_session_token: Option<String>,
}

/// `[data]`: how `data/` is snapshotted and restored around a data-epoch change.
/// Empty: a copy of `<root>/data` (reflinked where the filesystem can).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Command (argv) that saves the data into `$UPDRAFT_SNAPSHOT_DIR` (pg_dump, an
    /// LVM or ZFS snapshot, ...).
    #[serde(default)]
    pub snapshot: Vec<String>,
    /// Command (argv) that puts the data saved in `$UPDRAFT_SNAPSHOT_DIR` back.
    #[serde(default)]
    pub restore: Vec<String>,
}

/// `[hooks]`: commands (argv) run at the phases of an activation and of a rollback,
/// each bounded by `services.timeout`. `{release}` in an argument is replaced by the
/// release directory the phase is about.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// After the services restarted and the health checks passed, before the bake: a
    /// failure fails the activation (rolled back, blocked).
    #[serde(default)]
    pub post_activate: Vec<String>,
    /// Before `current` moves back (a failed activation, recovery, `rollback`).
    #[serde(default)]
    pub pre_rollback: Vec<String>,
    /// After the release rolled back to was restarted.
    #[serde(default)]
    pub post_rollback: Vec<String>,
    /// After a failed activation was undone, with the reason.
    #[serde(default)]
    pub on_failure: Vec<String>,
    /// Also run the executables a release ships as `hooks/<phase>` (`hooks/post-activate`,
    /// ...). Off by default: a release then runs code before any health check vouched for it.
    #[serde(default)]
    pub release_hooks: bool,
}

fn default_root_threshold() -> u32 {
    1
}

fn default_report_every() -> HumanDuration {
    secs(6 * 3600)
}
fn default_true() -> bool {
    true
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            enabled: false,
            url: None,
            every: default_report_every(),
            hostname: true,
            report_s3_access_key_id: None,
            report_s3_secret_access_key: None,
            report_s3_session_token: None,
        }
    }
}

fn default_keep() -> usize {
    5
}
fn default_interval() -> HumanDuration {
    secs(15 * 60)
}
fn default_jitter() -> HumanDuration {
    secs(60)
}
fn default_bake() -> HumanDuration {
    secs(0)
}
fn default_lock_timeout() -> HumanDuration {
    secs(60)
}

impl Default for Config {
    fn default() -> Self {
        // An empty document yields every default, keeping one source of truth.
        toml::from_str("").expect("empty config must parse")
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Optional label used in messages; defaults to the probe itself.
    pub name: Option<String>,
    pub command: Option<Vec<String>>,
    pub http: Option<String>,
    pub tcp: Option<String>,
    /// Expected HTTP status (default 200).
    pub expect_status: Option<u16>,
    /// Substring the HTTP body must contain.
    pub body_contains: Option<String>,
    /// The version being activated must be in the HTTP body or the `X-Release-Version`
    /// header: a 200 from the old code still running is not a pass.
    #[serde(default)]
    pub expect_version: bool,
    #[serde(default = "default_check_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_check_interval")]
    pub interval: HumanDuration,
    /// Wait this long after the restart before the first attempt.
    #[serde(default = "default_grace")]
    pub grace: HumanDuration,
}

fn default_check_timeout() -> HumanDuration {
    secs(5)
}
fn default_retries() -> u32 {
    3
}
fn default_check_interval() -> HumanDuration {
    secs(1)
}
fn default_grace() -> HumanDuration {
    secs(0)
}

impl HealthCheck {
    /// Exactly one probe kind must be set; anything else is a config error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = [
            self.command.is_some(),
            self.http.is_some(),
            self.tcp.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(ConfigError::Invalid(
                "each [[health]] entry needs exactly one of `command`, `http` or `tcp`".into(),
            ));
        }
        if matches!(&self.command, Some(c) if c.is_empty()) {
            return Err(ConfigError::Invalid(
                "[[health]] command must not be empty".into(),
            ));
        }
        Ok(())
    }

    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(c) = &self.command {
            return format!("command {}", c.join(" "));
        }
        if let Some(u) = &self.http {
            return format!("http {u}");
        }
        format!("tcp {}", self.tcp.as_deref().unwrap_or("?"))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// systemd units: shorthand for `systemctl restart <unit>` each (or reload first,
    /// with `reload_units`); each unit's main process is then checked to run from the
    /// new release.
    #[serde(default)]
    pub units: Vec<String>,
    /// Reload `units` first, restarting only those whose reload fails. Off by default:
    /// a reload that only sends SIGHUP leaves the old code running.
    #[serde(default)]
    pub reload_units: bool,
    /// The systemctl command (argv) used for `units`, e.g. `["systemctl", "--user"]`.
    #[serde(default = "default_systemctl")]
    pub systemctl: Vec<String>,
    /// File holding the pid of the app's main process once `restart` has run: enables
    /// the check that it runs from the new release, as for `units`.
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
    /// Command (argv) tried first; if it fails, `restart` runs.
    #[serde(default)]
    pub reload: Vec<String>,
    /// Command (argv) that restarts the app.
    #[serde(default)]
    pub restart: Vec<String>,
    /// Command (argv) that stops the app, before its data is restored from a snapshot;
    /// unset: `systemctl stop` of `units`.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Command (argv) printing how often the supervisor restarted the app (crash-loop
    /// detection); unset: systemd's NRestarts of `units`; `[]`: off.
    #[serde(default)]
    pub restart_count: Option<Vec<String>>,
    #[serde(default = "default_service_timeout")]
    pub timeout: HumanDuration,
}

fn default_service_timeout() -> HumanDuration {
    secs(90)
}

fn default_systemctl() -> Vec<String> {
    vec!["systemctl".to_string()]
}

impl Default for Services {
    fn default() -> Self {
        Services {
            units: Vec::new(),
            reload_units: false,
            systemctl: default_systemctl(),
            pidfile: None,
            reload: Vec::new(),
            restart: Vec::new(),
            stop: Vec::new(),
            restart_count: None,
            timeout: default_service_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_unpacked")]
    pub max_unpacked_bytes: u64,
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
    #[serde(default = "default_max_artifact")]
    pub max_artifact_bytes: u64,
    #[serde(default = "default_max_document")]
    pub max_document_bytes: u64,
    #[serde(default = "default_max_path_depth")]
    pub max_path_depth: u64,
    #[serde(default = "default_max_path_bytes")]
    pub max_path_bytes: u64,
}

fn default_max_unpacked() -> u64 {
    8 << 30
}
fn default_max_entries() -> u64 {
    200_000
}
fn default_max_artifact() -> u64 {
    4 << 30
}
fn default_max_document() -> u64 {
    1 << 20
}
fn default_max_path_depth() -> u64 {
    crate::archive::unpack::Limits::DEFAULT_MAX_PATH_DEPTH
}
fn default_max_path_bytes() -> u64 {
    crate::archive::unpack::Limits::DEFAULT_MAX_PATH_BYTES
}

impl Limits {
    /// A limit of 0 would refuse every document or artifact; there is no "unlimited"
    /// (see `transport::limits`), so 0 is a mistake to report, not a value to use.
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value, default) in [
            (
                "max_unpacked_bytes",
                self.max_unpacked_bytes,
                default_max_unpacked(),
            ),
            ("max_entries", self.max_entries, default_max_entries()),
            (
                "max_artifact_bytes",
                self.max_artifact_bytes,
                default_max_artifact(),
            ),
            (
                "max_document_bytes",
                self.max_document_bytes,
                default_max_document(),
            ),
            (
                "max_path_depth",
                self.max_path_depth,
                default_max_path_depth(),
            ),
            (
                "max_path_bytes",
                self.max_path_bytes,
                default_max_path_bytes(),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.{key} = 0 would refuse everything (there is no \"unlimited\"): set a positive limit, or remove the key for the default of {default}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unpacked_bytes: default_max_unpacked(),
            max_entries: default_max_entries(),
            max_artifact_bytes: default_max_artifact(),
            max_document_bytes: default_max_document(),
            max_path_depth: default_max_path_depth(),
            max_path_bytes: default_max_path_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect")]
    pub connect: HumanDuration,
    /// Longest silence while reading a response body before the transfer is abandoned
    /// (and resumed with Range if the server allows). Guards against slow retrieval.
    #[serde(default = "default_read")]
    pub read: HumanDuration,
    /// Bound on one whole document request (channel or release document).
    #[serde(default = "default_document")]
    pub document: HumanDuration,
    #[serde(default = "default_retries_net")]
    pub retries: u32,
    /// How long one run of the daemon (poll, download, activation, health checks, bake)
    /// may take before it counts as hung: past it the daemon stops petting systemd's
    /// watchdog, so systemd restarts it (and the restart recovers the run).
    #[serde(default = "default_run")]
    pub run: HumanDuration,
    /// Bound on one whole artifact download, every attempt and wait included; unset:
    /// derived from the artifact's size (`transport::retry::artifact_deadline`).
    #[serde(default)]
    pub artifact: Option<HumanDuration>,
}

fn default_connect() -> HumanDuration {
    secs(10)
}
fn default_read() -> HumanDuration {
    secs(30)
}
fn default_document() -> HumanDuration {
    secs(30)
}
fn default_retries_net() -> u32 {
    4
}
fn default_run() -> HumanDuration {
    secs(30 * 60)
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: default_connect(),
            read: default_read(),
            document: default_document(),
            retries: default_retries_net(),
            run: default_run(),
            artifact: None,
        }
    }
}

impl Config {
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        for h in &cfg.health {
            h.validate()?;
        }
        if cfg.keep == 0 {
            return Err(ConfigError::Invalid("`keep` must be at least 1".into()));
        }
        cfg.limits.validate()?;
        if cfg.services.systemctl.is_empty() {
            return Err(ConfigError::Invalid(
                "services.systemctl must name a command (default [\"systemctl\"])".into(),
            ));
        }
        if cfg
            .health
            .iter()
            .any(|h| h.expect_version && h.http.is_none())
        {
            return Err(ConfigError::Invalid(
                "[[health]] expect_version applies to `http` checks only".into(),
            ));
        }
        if let Some(url) = &cfg.report.url {
            let known = ["file://", "http://", "https://", "s3://"];
            if !known
                .iter()
                .any(|k| url.starts_with(k) && url.len() > k.len())
            {
                return Err(ConfigError::Invalid(format!(
                    "[report] url {url:?} must be file:///path, http(s)://host/path (a server that accepts PUT) or s3://bucket/prefix"
                )));
            }
        }
        if cfg.report.report_s3_access_key_id.is_some()
            != cfg.report.report_s3_secret_access_key.is_some()
        {
            return Err(ConfigError::Invalid(
                "[report] report_s3_access_key_id and report_s3_secret_access_key go together: set both or neither".into(),
            ));
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }
}

impl Classify for ConfigError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

impl Config {
    /// Transport settings from the config file.
    pub fn transport_options(&self) -> TransportOptions {
        TransportOptions {
            connect_timeout: self.timeouts.connect.0,
            read_timeout: self.timeouts.read.0,
            s3: S3Options {
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                path_style: self.s3_path_style,
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
                session_token: self.s3_session_token.clone(),
            },
        }
    }

    /// Transport settings for writing reports: the registry's, with the `[report]`
    /// credentials instead when they are set.
    pub fn report_transport_options(&self) -> TransportOptions {
        let mut opts = self.transport_options();
        let r = &self.report;
        if r.report_s3_access_key_id.is_some() {
            opts.s3.access_key_id = r.report_s3_access_key_id.clone();
            opts.s3.secret_access_key = r.report_s3_secret_access_key.clone();
            opts.s3.session_token = r.report_s3_session_token.clone();
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
app = "demo"
root = "/opt/demo"
registry = "http://127.0.0.1:8080"   # also file:///srv/registry, and s3://bucket/prefix once S3 lands
channel = "prod"
public_keys = ["RWQ..."]             # minisign public keys, the base64 line of a .pub file; several for rotation
keep = 5

[[health]]
command = ["/opt/demo/releases/current/bin/health"]   # or: http = "http://127.0.0.1:3000/health", or: tcp = "127.0.0.1:3000"
timeout = "5s"
retries = 2
interval = "200ms"
"#;

    #[test]
    fn issue_example_parses() {
        let c = Config::parse(ISSUE_EXAMPLE, Path::new("t.toml")).unwrap();
        assert_eq!(c.app.unwrap().as_str(), "demo");
        assert_eq!(c.health.len(), 1);
        assert_eq!(c.health[0].interval.0, Duration::from_millis(200));
        assert_eq!(c.health[0].retries, 2);
        assert_eq!(c.keep, 5);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("app = \"x\"\nintervall = \"5m\"\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("intervall"), "{err}");
    }

    #[test]
    fn report_table() {
        let c = Config::parse("", Path::new("t.toml")).unwrap();
        assert_eq!(c.report, ReportConfig::default());
        assert!(!c.report.enabled && c.report.hostname);
        assert_eq!(c.report.every.0, Duration::from_secs(6 * 3600));
        let text = "s3_access_key_id = \"read\"\ns3_secret_access_key = \"r\"\n[report]\nenabled = true\nurl = \"s3://b/reports\"\nevery = \"1h\"\nhostname = false\nreport_s3_access_key_id = \"w\"\nreport_s3_secret_access_key = \"ws\"\n";
        let c = Config::parse(text, Path::new("t.toml")).unwrap();
        assert!(c.report.enabled && !c.report.hostname);
        assert_eq!(c.report.every.0, Duration::from_secs(3600));
        let o = c.report_transport_options();
        assert_eq!(o.s3.access_key_id.as_deref(), Some("w"));
        assert_eq!(o.s3.secret_access_key.as_deref(), Some("ws"));
        assert_eq!(
            c.transport_options().s3.access_key_id.as_deref(),
            Some("read")
        );
        for (bad, says) in [
            ("[report]\nurl = \"ftp://x\"\n", "url"),
            ("[report]\nreport_s3_access_key_id = \"w\"\n", "together"),
            ("[report]\nenable = true\n", "enable"),
        ] {
            let err = Config::parse(bad, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn hooks_table() {
        let c = Config::parse(
            "[hooks]\npost_activate = [\"a\", \"{release}\"]\npre_rollback = [\"b\"]\npost_rollback = [\"c\"]\non_failure = [\"d\"]\nrelease_hooks = true\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.hooks.post_activate, ["a", "{release}"]);
        assert_eq!(
            (
                c.hooks.pre_rollback,
                c.hooks.post_rollback,
                c.hooks.on_failure
            ),
            (
                vec!["b".to_string()],
                vec!["c".to_string()],
                vec!["d".to_string()]
            )
        );
        assert!(c.hooks.release_hooks);
        assert_eq!(Config::default().hooks, Hooks::default());
        let err = Config::parse("[hooks]\npost_activat = []\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("post_activat"), "{err}");
    }

    #[test]
    fn windows_parse_and_a_bad_one_names_itself() {
        let c = Config::parse(
            "window = [\"Sat 02:00-04:00 UTC\", \"daily 23:00-01:00 Europe/Berlin\"]\nstage_outside_window = true\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.window.len(), 2);
        assert_eq!(c.window[1].to_string(), "daily 23:00-01:00 Europe/Berlin");
        assert!(c.stage_outside_window);
        let d = Config::default();
        assert!(d.window.is_empty() && !d.stage_outside_window);
        let err = Config::parse(
            "window = [\"Sat 02:00-04:00 Mars/Base\"]\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Mars/Base"), "{err}");
    }

    #[test]
    fn health_needs_one_probe() {
        let err = Config::parse("[[health]]\ntimeout = \"1s\"\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    #[test]
    fn restart_proof_keys() {
        let c = Config::parse(
            "[services]\nunits = [\"demo\"]\nreload_units = true\nsystemctl = [\"systemctl\", \"--user\"]\npidfile = \"/run/demo.pid\"\n\n[[health]]\nhttp = \"http://127.0.0.1:3000/health\"\nexpect_version = true\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(c.services.reload_units);
        assert_eq!(c.services.systemctl, ["systemctl", "--user"]);
        assert_eq!(
            c.services.pidfile.as_deref(),
            Some(Path::new("/run/demo.pid"))
        );
        assert!(c.health[0].expect_version);
        let d = Config::parse("", Path::new("t.toml")).unwrap();
        assert!(!d.services.reload_units);
        assert_eq!(d.services.systemctl, ["systemctl"]);
        for (bad, says) in [
            ("[services]\nsystemctl = []\n", "services.systemctl"),
            (
                "[[health]]\ntcp = \"127.0.0.1:1\"\nexpect_version = true\n",
                "expect_version applies to `http`",
            ),
        ] {
            let err = Config::parse(bad, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
