//! The CI examples (examples/ci/) run as written: both call examples/ci/release-steps.sh,
//! and this test runs that script's steps, with the environment the examples set, against
//! a file:// registry and the S3 test server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::app::release_tarball;
use support::registry::Registry;
use support::s3::S3Server;
use support::{code, stderr, text};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci")
}

#[test]
fn both_examples_run_every_step_through_the_shared_script() {
    for file in ["github-actions.yml", "gitlab-ci.yml"] {
        let yaml = std::fs::read_to_string(examples().join(file)).unwrap();
        for step in ["publish", "promote", "refresh", "guard"] {
            assert!(
                yaml.contains(&format!("bash examples/ci/release-steps.sh {step}")),
                "{file} does not run the {step} step"
            );
        }
        // Promotion names the approved version, never "whatever dev holds now".
        assert!(yaml.contains("FROM_CHANNEL=dev CHANNEL=prod"), "{file}");
        assert!(yaml.contains("cargo install"), "{file} installs updraft");
        assert!(yaml.contains("UPDRAFT_SECRET_KEY"), "{file} passes the key");
    }
    // Every GitHub job installs updraft and gets the key: four jobs, four of each.
    let gh = std::fs::read_to_string(examples().join("github-actions.yml")).unwrap();
    assert_eq!(gh.matches("name: Install updraft").count(), 4, "{gh}");
    assert_eq!(
        gh.matches("UPDRAFT_SECRET_KEY: ${{ secrets.UPDRAFT_SECRET_KEY }}")
            .count(),
        4,
        "{gh}"
    );
}

/// One run of a step of release-steps.sh, with `updraft` on PATH as the install step
/// puts it there.
fn step(name: &str, env: &[(&str, String)]) -> Output {
    let bin_dir = Path::new(support::bin()).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg(examples().join("release-steps.sh"))
        .arg(name)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", path)
        .env_remove("UPDRAFT_CONFIG")
        .output()
        .unwrap()
}

/// What `channel` of app demo holds: (version, sequence).
fn channel(read: &dyn Fn(&str) -> Vec<u8>, channel: &str) -> (String, u64) {
    let doc: serde_json::Value =
        serde_json::from_slice(&read(&format!("demo/channels/{channel}.json"))).unwrap();
    (
        doc["version"].as_str().unwrap().to_string(),
        doc["sequence"].as_u64().unwrap(),
    )
}

/// publish → promote the approved version → a stale approval refused → refresh → guard.
fn run_the_release_flow(
    tmp: &Path,
    reg: &Registry,
    registry_url: &str,
    extra_env: &[(&'static str, String)],
    read: &dyn Fn(&str) -> Vec<u8>,
) {
    let secret = std::fs::read_to_string(&reg.secret).unwrap();
    let env = |more: &[(&'static str, String)]| {
        let mut e: Vec<(&'static str, String)> = vec![
            ("UPDRAFT_REGISTRY", registry_url.to_string()),
            ("UPDRAFT_APP", "demo".into()),
            ("UPDRAFT_SECRET_KEY", secret.clone()),
            ("UPDRAFT_PUBLIC_KEY", reg.public.display().to_string()),
        ];
        e.extend(extra_env.iter().cloned());
        e.extend(more.iter().cloned());
        e
    };
    let v1 = release_tarball(tmp, "1.0.0", "");
    let v2 = release_tarball(tmp, "1.1.0", "");
    let arch = format!("{}-linux", std::env::consts::ARCH);

    let out = step(
        "publish",
        &env(&[
            ("VERSION", "1.0.0".into()),
            ("ARTIFACT", v1.display().to_string()),
            ("TARGET", arch.clone()),
            ("CHANNEL", "dev".into()),
        ]),
    );
    assert_eq!(code(&out), 0, "publish 1.0.0: {}", text(&out));
    assert_eq!(channel(read, "dev").0, "1.0.0");

    let promote = |version: &str| {
        step(
            "promote",
            &env(&[
                ("VERSION", version.into()),
                ("FROM_CHANNEL", "dev".into()),
                ("CHANNEL", "prod".into()),
            ]),
        )
    };
    let out = promote("1.0.0");
    assert_eq!(code(&out), 0, "promote 1.0.0: {}", text(&out));
    assert_eq!(channel(read, "prod").0, "1.0.0");

    // dev moves on to 1.1.0; a promotion of the 1.0.0 approved before is refused (7)
    // rather than promoting what dev holds now.
    let out = step(
        "publish",
        &env(&[
            ("VERSION", "1.1.0".into()),
            ("ARTIFACT", v2.display().to_string()),
            ("TARGET", arch),
            ("CHANNEL", "dev".into()),
        ]),
    );
    assert_eq!(code(&out), 0, "publish 1.1.0: {}", text(&out));
    let before = channel(read, "prod");
    let out = promote("1.0.0");
    assert_eq!(code(&out), 7, "a stale approval: {}", text(&out));
    assert_eq!(channel(read, "prod"), before, "nothing written");

    let out = step("refresh", &env(&[("CHANNEL", "prod".into())]));
    assert_eq!(code(&out), 0, "refresh: {}", text(&out));
    let after = channel(read, "prod");
    assert_eq!(after.0, "1.0.0", "same content");
    assert_eq!(after.1, before.1 + 1, "sequence + 1");

    // No machine reported: nothing to halt.
    let out = step("guard", &env(&[("CHANNEL", "prod".into())]));
    assert_eq!(code(&out), 0, "guard: {}", stderr(&out));
}

#[test]
fn the_release_steps_run_against_a_file_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let dir = reg.dir.clone();
    let read = move |key: &str| std::fs::read(dir.join(key)).unwrap();
    run_the_release_flow(tmp.path(), &reg, &reg.url.clone(), &[], &read);
}

#[test]
fn the_release_steps_run_against_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let server = S3Server::start();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(server.create_bucket("releases"));
    let data = server.data_dir();
    // s3s-fs keeps each object as a file under <data>/<bucket>/<key>.
    let read = move |key: &str| std::fs::read(data.join("releases/registry").join(key)).unwrap();
    let env: Vec<(&'static str, String)> = server.env();
    run_the_release_flow(tmp.path(), &reg, "s3://releases/registry", &env, &read);
}
