//! Test support: a signed registry written by the real `updraft publish`, served over
//! loopback HTTP by `updraft serve`, and an agent config pointing at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::app::{release_tarball, spawn_serve, App};
use super::process::ProcessGroup;
use super::{bin, stderr};

pub struct Registry {
    pub dir: PathBuf,
    pub url: String,
    pub secret: PathBuf,
    pub public: PathBuf,
    pub pubkey_line: String,
    /// `updraft serve` over `dir`, at `http`; stopped when the registry is dropped.
    server: ProcessGroup,
    pub http: String,
}

impl Registry {
    /// Create keys and an empty registry under `tmp`, served on a loopback port.
    pub fn new(tmp: &Path) -> Registry {
        let dir = tmp.join("registry");
        std::fs::create_dir_all(&dir).unwrap();
        let secret = tmp.join("keys/ci.key");
        let public = tmp.join("keys/ci.pub");
        std::fs::create_dir_all(tmp.join("keys")).unwrap();
        let out = Command::new(bin())
            .args([
                "keygen",
                "--secret-key",
                secret.to_str().unwrap(),
                "--public-key",
                public.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", stderr(&out));
        let pubkey_line = std::fs::read_to_string(&public)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        let (server, http) = spawn_serve(&dir);
        Registry {
            url: format!("file://{}", dir.display()),
            dir,
            secret,
            public,
            pubkey_line,
            server,
            http,
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin()).args(args).output().unwrap()
    }

    pub fn publish(
        &self,
        version: &str,
        tarball: &Path,
        channel: Option<&str>,
        extra: &[&str],
    ) -> Output {
        let mut args = vec![
            "publish",
            "--registry",
            &self.url,
            "--app",
            "demo",
            "--version",
            version,
            "--artifact",
            tarball.to_str().unwrap(),
            "--secret-key",
            self.secret.to_str().unwrap(),
        ];
        if let Some(c) = channel {
            args.extend(["--channel", c]);
        }
        args.extend(extra);
        let out = self.cli(&args);
        assert!(out.status.success(), "publish {version}: {}", stderr(&out));
        out
    }

    /// Build the fixture app's release `version` (`mode` as for `release_tarball`) beside
    /// the registry and publish it.
    pub fn ship(&self, version: &str, mode: &str, channel: Option<&str>, extra: &[&str]) -> Output {
        let out = self.dir.parent().unwrap_or(&self.dir);
        self.publish(
            version,
            &release_tarball(out, version, mode),
            channel,
            extra,
        )
    }

    pub fn promote(&self, version: &str, channel: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "promote",
            "--registry",
            &self.url,
            "--app",
            "demo",
            "--version",
            version,
            "--channel",
            channel,
            "--secret-key",
            self.secret.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = self.cli(&args);
        assert!(out.status.success(), "promote {version}: {}", stderr(&out));
        out
    }
}

impl Registry {
    /// The artifact bytes of shipped release `version` for this machine's target.
    pub fn artifact_bytes(&self, version: &str) -> Vec<u8> {
        let art = self.dir.join(format!(
            "demo/releases/{version}/demo-{version}-{}-linux.tar.gz",
            std::env::consts::ARCH
        ));
        std::fs::read(&art).unwrap()
    }

    /// Point every artifact of release `version` at `url` (a download host apart from
    /// the registry) and sign the release document again, as a publisher would.
    pub fn point_artifacts_at(&self, version: &str, url: &str) {
        let dir = self.dir.join(format!("demo/releases/{version}"));
        let doc_path = dir.join("release.json");
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
        for artifact in doc["artifacts"].as_object_mut().unwrap().values_mut() {
            artifact["url"] = url.into();
        }
        let bytes = serde_json::to_vec_pretty(&doc).unwrap();
        let key = updraft::registry::keys::SecretKey::load_from_file(&self.secret, None).unwrap();
        let sig = key.sign(&bytes, "release with an absolute URL").unwrap();
        std::fs::write(&doc_path, &bytes).unwrap();
        std::fs::write(dir.join("release.json.minisig"), sig).unwrap();
    }
}

/// Agent config text for an App following `channel` of the registry.
pub fn agent_toml(reg: &Registry, registry_url: &str, channel: &str, extra: &str) -> String {
    format!(
        r#"app = "demo"
registry = "{registry_url}"
channel = "{channel}"
public_keys = ["{key}"]
machine_id = "test-machine"
{extra}
[timeouts]
retries = 2
"#,
        key = reg.pubkey_line
    )
}

/// An App (fixture server, restart script, HTTP health) that is also an agent.
pub fn agent_app(reg: &Registry, channel: &str, extra: &str) -> App {
    App::new(&agent_toml(reg, &reg.http, channel, extra))
}
