//! `updraft demo`: the whole flow on a throw-away registry and app root.
//!
//! The demo runs this very binary with the documented commands (keygen, pack, publish,
//! update, ...) and prints each command before its output, so what a user sees is what
//! they would type; only the registry's HTTP server runs inside this process.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

use crate::cli::Ctx;

struct Demo {
    exe: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    step: usize,
}

impl Demo {
    fn say(&mut self, what: &str) -> anyhow::Result<()> {
        self.step += 1;
        outln!("\n\x1b[1m==> {}. {what}\x1b[0m", self.step)
    }

    /// Run `updraft ARGS`, show it, and return its exit code.
    async fn run(&self, args: &[&str]) -> anyhow::Result<i32> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.replace(&self.dir.display().to_string(), "$DEMO"))
            .collect();
        outln!("$ updraft {}", shown.join(" "))?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        if self.config.exists() {
            cmd.env("UPDRAFT_CONFIG", &self.config);
        } else {
            cmd.env_remove("UPDRAFT_CONFIG");
        }
        let status = cmd
            .args(args)
            .env_remove("UPDRAFT_ROOT")
            .env("UPDRAFT_DEMO", "1")
            .stdin(Stdio::null())
            .status()
            .await
            .with_context(|| format!("running {}", self.exe.display()))?;
        let code = status.code().unwrap_or(-1);
        // The step's own output went to our stdout: its reader left, so do we.
        if code == i32::from(crate::cli::output::EXIT_STDOUT_CLOSED) {
            return Err(crate::cli::output::StdoutClosed.into());
        }
        if code != 0 {
            outln!("(exit code {code})")?;
        }
        Ok(code)
    }

    async fn expect(&self, args: &[&str], want: i32) -> anyhow::Result<()> {
        let got = self.run(args).await?;
        if got != want {
            bail!(
                "demo step `updraft {}` exited {got}, expected {want}",
                args.join(" ")
            );
        }
        Ok(())
    }

    /// CI's two steps for one version: a reproducible pack, then publish to prod.
    async fn pack_and_publish(&self, version: &str, registry: &str) -> anyhow::Result<()> {
        let (src, out) = (
            self.p(&format!("src/{version}")),
            self.p(&format!("out/demo-{version}.tar.gz")),
        );
        let key = self.p("keys/ci.key");
        self.expect(&["pack", &src, "--version", version, "--output", &out], 0)
            .await?;
        self.expect(
            &[
                "publish",
                "--registry",
                registry,
                "--app",
                "demo",
                "--version",
                version,
                "--artifact",
                &out,
                "--channel",
                "prod",
                "--secret-key",
                &key,
            ],
            0,
        )
        .await
    }

    fn p(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

fn write_exec(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A release tree of the demo app: its health check passes unless `broken`.
fn make_app(dir: &Path, version: &str, broken: bool) -> anyhow::Result<()> {
    let health = if broken {
        "#!/bin/sh\necho \"health: /health answered 500 (database migration 42 missing)\" >&2\nexit 1\n"
    } else {
        "#!/bin/sh\necho \"health: ok $(cat \"$(dirname \"$0\")/../VERSION\")\"\n"
    };
    write_exec(&dir.join("bin/health"), health)?;
    write_exec(
        &dir.join("bin/server"),
        &format!("#!/bin/sh\necho \"demo server {version}\"\n"),
    )?;
    std::fs::create_dir_all(dir.join("assets"))?;
    std::fs::write(
        dir.join("assets/index.html"),
        format!("<h1>demo {version}</h1>\n"),
    )?;
    Ok(())
}

pub async fn run(_ctx: &Ctx, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let (dir, keep) = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            (d.canonicalize()?, true)
        }
        None => {
            let d = std::env::temp_dir().join(format!(
                "updraft-demo-{}-{:06x}",
                std::process::id(),
                fastrand::u32(..0xffffff)
            ));
            std::fs::create_dir_all(&d)?;
            (d, false)
        }
    };
    let result = run_in(&dir).await;
    if keep {
        outln!("\nThe demo's files are in {}", dir.display())?;
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the updraft binary")?;
    let registry = dir.join("registry");
    let root = dir.join("app");
    std::fs::create_dir_all(&registry)?;
    std::fs::create_dir_all(dir.join("keys"))?;
    std::fs::create_dir_all(dir.join("out"))?;
    let mut d = Demo {
        exe,
        dir: dir.to_path_buf(),
        config: dir.join("updraft.toml"),
        step: 0,
    };
    outln!(
        "updraft demo: a registry and an app root in {}",
        dir.display()
    )?;

    d.say("CI makes a signing key pair (minisign-compatible)")?;
    d.expect(
        &[
            "keygen",
            "--secret-key",
            &d.p("keys/ci.key"),
            "--public-key",
            &d.p("keys/ci.pub"),
        ],
        0,
    )
    .await?;
    let pubkey = std::fs::read_to_string(dir.join("keys/ci.pub"))?;
    let pubkey_line = pubkey
        .lines()
        .nth(1)
        .context("public key file has no key line")?
        .trim()
        .to_string();

    let listener = crate::registry::serve::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(crate::registry::serve::serve(registry.clone(), listener));
    outln!(
        "   serving the registry {} at http://{addr}",
        registry.display()
    )?;

    std::fs::write(
        &d.config,
        format!(
            r#"# The agent's config: every key is documented in README.md.
app = "demo"
root = "{root}"
registry = "http://{addr}"
channel = "prod"
public_keys = ["{pubkey_line}"]
keep = 5
machine_id = "demo-machine"

[services]
restart = ["sh", "-c", "echo \"restarted $UPDRAFT_VERSION\" >> \"$UPDRAFT_ROOT/logs/service.log\""]

[[health]]
command = ["{root}/releases/current/bin/health"]
timeout = "5s"
retries = 2
interval = "200ms"
"#,
            root = root.display()
        ),
    )?;
    outln!("   agent config written to {}", d.config.display())?;

    for (v, broken) in [("1.0.0", false), ("1.1.0", false), ("1.2.0", true)] {
        make_app(&dir.join(format!("src/{v}")), v, broken)?;
    }

    let reg = format!("file://{}", registry.display());
    d.say("CI packs and publishes 1.0.0 to the prod channel")?;
    d.pack_and_publish("1.0.0", &reg).await?;

    d.say("The agent on the VM polls the channel and installs 1.0.0")?;
    d.expect(&["update"], 0).await?;

    d.say("CI publishes 1.1.0; `check` reports an update (exit code 10)")?;
    d.pack_and_publish("1.1.0", &reg).await?;
    d.expect(&["check"], 10).await?;

    d.say("The agent updates to 1.1.0: verified, unpacked, switched atomically, health-checked")?;
    d.expect(&["update"], 0).await?;
    d.expect(&["check"], 0).await?;

    d.say("CI publishes 1.2.0, whose health check fails")?;
    d.pack_and_publish("1.2.0", &reg).await?;

    d.say("The agent tries 1.2.0, the health check fails: automatic rollback to 1.1.0 and 1.2.0 is blocked (exit code 4)")?;
    d.expect(&["update"], 4).await?;

    d.say("The next poll does not retry the blocked version")?;
    d.expect(&["update"], 0).await?;

    d.say("What is installed, and why this machine runs what it runs")?;
    d.expect(&["list"], 0).await?;
    d.expect(&["why"], 0).await?;

    server.abort();
    outln!("\nDemo complete: 1.0.0 → 1.1.0 updated, 1.2.0 rolled back and blocked.")?;
    Ok(())
}
