//! Signed key rotation end to end (issue 11, item 4): agents pin root keys; the
//! registry's keys document, changed with `updraft keys`, says which publisher keys
//! they trust. A key added, revoked, or a root rotated takes effect on the fleet with
//! no config change. Over nginx (a file:// registry served by it) and the S3 server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::app::{release_tarball, App};
use support::nginx::Nginx;
use support::s3::S3Server;
use support::{code, ok, stderr, text};

/// A key pair made by `updraft keygen`: (secret file, public file, public base64 line).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let (sec, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    let out = Command::new(support::bin())
        .args(["keygen", "--secret-key"])
        .arg(&sec)
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    ok(&out);
    let line = std::fs::read_to_string(&public)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    (sec, public, line)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the publisher's commands against one registry.
struct Publisher<'a> {
    registry: String,
    env: Vec<(&'static str, String)>,
    tmp: &'a Path,
}

impl Publisher<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(support::bin())
            .args(args)
            .env_remove("UPDRAFT_CONFIG")
            .env_remove("UPDRAFT_ROOT")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    }

    /// `updraft keys <sub> --registry R --app demo` with `extra` and each root key.
    fn keys(&self, sub: &str, roots: &[&Path], extra: &[&str]) -> Output {
        let mut args = vec!["keys", sub, "--registry", &self.registry, "--app", "demo"];
        for r in roots {
            args.extend(["--root-secret-key", s(r)]);
        }
        args.extend(extra);
        self.run(&args)
    }

    /// Publish `version` signed by `key` and point prod at it; `trusted` lets the
    /// publisher build on a channel another key signed.
    fn ship(&self, version: &str, key: &Path, trusted: &[&Path]) -> Output {
        let tarball = release_tarball(self.tmp, version, "");
        let mut args = vec![
            "publish",
            "--registry",
            &self.registry,
            "--app",
            "demo",
            "--version",
            version,
            "--artifact",
            s(&tarball),
            "--channel",
            "prod",
            "--secret-key",
            s(key),
        ];
        for t in trusted {
            args.extend(["--trusted-key", s(t)]);
        }
        self.run(&args)
    }
}

/// The version of the keys document an agent has accepted.
fn accepted_version(app: &App) -> u64 {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.root.join(".updraft/keys.json")).unwrap())
            .unwrap();
    let doc: serde_json::Value = serde_json::from_str(file["document"].as_str().unwrap()).unwrap();
    doc["version"].as_u64().unwrap()
}

/// Init (two roots, both must sign), add, revoke, rotate the roots: each change
/// reaches the agent through the registry alone. `agent_toml` is the agent's config
/// with `root_keys` and `root_threshold` set to the two roots.
fn rotation_scenario(p: &Publisher<'_>, keys_dir: &Path, agent_toml: &dyn Fn(&str) -> String) {
    let (r1, _, r1_line) = keygen(keys_dir, "root1");
    let (r2, _, r2_line) = keygen(keys_dir, "root2");
    let (n1, n1_pub, _) = keygen(keys_dir, "newroot");
    let (p1, p1_pub, _) = keygen(keys_dir, "ci1");
    let (p2, p2_pub, _) = keygen(keys_dir, "ci2");
    let (p3, p3_pub, _) = keygen(keys_dir, "ci3");

    ok(&p.keys(
        "init",
        &[&r1, &r2],
        &["--root-threshold", "2", "--key", s(&p1_pub)],
    ));
    // Only the first version may be initialised.
    let again = p.keys(
        "init",
        &[&r1, &r2],
        &["--root-threshold", "2", "--key", s(&p1_pub)],
    );
    assert_eq!(code(&again), 2, "{}", text(&again));

    let app = App::new(&agent_toml(&format!(
        "root_keys = [\"{r1_line}\", \"{r2_line}\"]\nroot_threshold = 2\n"
    )));
    ok(&p.ship("1.0.0", &p1, &[]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(accepted_version(&app), 1);

    // A second publisher key: one root is not enough to sign it, both are.
    let one = p.keys("add", &[&r1], &["--key", s(&p2_pub)]);
    assert_eq!(code(&one), 2, "{}", text(&one));
    assert!(
        stderr(&one).contains("needs 2 of its root keys"),
        "{}",
        text(&one)
    );
    ok(&p.keys("add", &[&r1, &r2], &["--key", s(&p2_pub)]));
    ok(&p.ship("1.1.0", &p2, &[&p1_pub]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(accepted_version(&app), 2);

    // The first key leaks: revoked, and what it signs is refused fleet-wide.
    ok(&p.keys("revoke", &[&r1, &r2], &["--key", s(&p1_pub)]));
    ok(&p.ship("6.6.6", &p1, &[&p2_pub]));
    let out = app.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(stderr(&out).contains("not a trusted key"), "{}", text(&out));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));
    assert_eq!(accepted_version(&app), 3);

    // New root keys; the next version is signed by the new root alone, so the agent
    // must walk through the rotation (signed by the old roots) to trust it.
    ok(&p.keys("rotate-root", &[&r1, &r2], &["--new-root-key", s(&n1_pub)]));
    let old_roots = p.keys("add", &[&r1, &r2], &["--key", s(&p3_pub)]);
    assert_eq!(code(&old_roots), 2, "{}", text(&old_roots));
    ok(&p.keys("add", &[&n1], &["--key", s(&p3_pub)]));
    ok(&p.ship("1.3.0", &p3, &[&p1_pub, &p2_pub]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some("1.3.0"));
    assert_eq!(accepted_version(&app), 5);

    // A machine set up later, pinning the original roots, walks all the way.
    let fresh = App::new(&agent_toml(&format!(
        "root_keys = [\"{r1_line}\", \"{r2_line}\"]\nroot_threshold = 2\n"
    )));
    ok(&fresh.run(&["update"]));
    assert_eq!(fresh.current().as_deref(), Some("1.3.0"));
    assert_eq!(accepted_version(&fresh), 5);
}

#[test]
fn key_rotation_over_nginx() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let web = Nginx::start(&dir);
    let p = Publisher {
        registry: format!("file://{}", dir.display()),
        env: vec![],
        tmp: tmp.path(),
    };
    let toml = |keys: &str| {
        format!(
            "app = \"demo\"\nregistry = \"{}\"\nchannel = \"prod\"\nmachine_id = \"m1\"\n{keys}\n[timeouts]\nretries = 2\n",
            web.base
        )
    };
    rotation_scenario(&p, tmp.path(), &toml);
    // The audit follows the keys history too, and finds every object explained.
    let pubs: Vec<String> = ["ci1", "ci2", "ci3"]
        .iter()
        .map(|k| tmp.path().join(format!("{k}.pub")).display().to_string())
        .collect();
    let mut args = vec![
        "registry",
        "verify",
        "--registry",
        &p.registry,
        "--app",
        "demo",
        "--json",
    ];
    for k in &pubs {
        args.extend(["--public-key", k]);
    }
    let audit = p.run(&args);
    ok(&audit);
    let report = support::json(&audit);
    assert_eq!(report["warnings"], 0, "{report:#}");
    for n in 1..=5 {
        let key = format!("demo/keys/{n}.json");
        assert!(
            report["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["key"] == key && i["status"] == "ok"),
            "{key}: {report:#}"
        );
    }

    // Replaying an old keys document (one that still trusted a revoked key) is refused:
    // the agent never goes back to a version below the one it accepted.
    let fresh = App::new(&toml(&format!(
        "root_keys = [\"{}\"]\n",
        std::fs::read_to_string(tmp.path().join("newroot.pub"))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
    )));
    // Pinning only the new root: version 5 is signed by it; then version 6.
    ok(&fresh.run(&["update"]));
    ok(&p.keys("renew", &[&tmp.path().join("newroot.key")], &[]));
    ok(&fresh.run(&["update"]));
    assert_eq!(accepted_version(&fresh), 6);
    for (from, to) in [
        ("5.json", "keys.json"),
        ("5.json.minisig", "keys.json.minisig"),
    ] {
        std::fs::copy(dir.join("demo/keys").join(from), dir.join("demo").join(to)).unwrap();
    }
    let out = fresh.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(
        stderr(&out).contains("possible rollback attack"),
        "{}",
        text(&out)
    );
    // A registry without a keys document at all is refused too, not trusted blindly.
    std::fs::remove_file(dir.join("demo/keys.json")).unwrap();
    let out = fresh.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(stderr(&out).contains("keys init"), "{}", text(&out));
}

#[test]
fn key_rotation_over_s3() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = S3Server::start();
    rt.block_on(server.create_bucket("releases"));
    let tmp = tempfile::tempdir().unwrap();
    let p = Publisher {
        registry: "s3://releases/registry".into(),
        env: server.env(),
        tmp: tmp.path(),
    };
    let toml = |keys: &str| {
        format!(
            r#"app = "demo"
registry = "s3://releases/registry"
channel = "prod"
machine_id = "m1"
s3_endpoint = "{endpoint}"
s3_region = "{region}"
s3_access_key_id = "{key}"
s3_secret_access_key = "{secret}"
{keys}
"#,
            endpoint = server.endpoint,
            region = support::s3::REGION,
            key = support::s3::ACCESS_KEY,
            secret = support::s3::SECRET_KEY,
        )
    };
    rotation_scenario(&p, tmp.path(), &toml);
}
