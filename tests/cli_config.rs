//! Settings in the config file are honoured, and a config that cannot be used is
//! reported, by every command (over the real binary).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{bin, ok as assert_ok, stderr, text};

/// The binary with nothing inherited that would change logging or pick a config.
fn updraft(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("UPDRAFT_ROOT")
        .env_remove("RUST_LOG")
        .env_remove("INVOCATION_ID")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

/// A release tarball packed by the CLI, and the arguments that deploy it to `root`.
fn packed_release(dir: &Path) -> String {
    let contents = dir.join("contents");
    std::fs::create_dir_all(contents.join("bin")).unwrap();
    std::fs::write(contents.join("bin/app"), "#!/bin/sh\n").unwrap();
    let tarball = dir.join("app-1.0.0.tar.gz");
    assert_ok(&updraft(&[
        "pack",
        contents.to_str().unwrap(),
        "--version",
        "1.0.0",
        "--output",
        tarball.to_str().unwrap(),
    ]));
    tarball.to_str().unwrap().to_string()
}

/// The log records on stderr that are JSON objects (one per line when JSON is chosen).
fn json_records(o: &Output) -> Vec<serde_json::Value> {
    stderr(o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object())
        .collect()
}

#[test]
fn log_format_in_the_config_is_honoured_and_the_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = packed_release(dir.path());
    let config = dir.path().join("updraft.toml");
    std::fs::write(&config, "log_format = \"json\"\n").unwrap();
    let deploy = |root: &str, extra: &[&str]| {
        let root = dir.path().join(root);
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "deploy",
            "--root",
            root.to_str().unwrap(),
            "--version",
            "1.0.0",
            "--artifact-path",
            &tarball,
        ];
        args.extend_from_slice(extra);
        updraft(&args)
    };

    let out = deploy("from-config", &[]);
    assert_ok(&out);
    let records = json_records(&out);
    assert!(
        records
            .iter()
            .any(|r| r["message"] == "release installed" && r["version"] == "1.0.0"),
        "no JSON log record of the install: {}",
        text(&out)
    );

    let out = deploy("flag-wins", &["--log-format", "text"]);
    assert_ok(&out);
    assert!(json_records(&out).is_empty(), "{}", text(&out));
    assert!(stderr(&out).contains("release installed"), "{}", text(&out));
}

#[test]
fn why_reports_a_config_the_agent_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(&root).unwrap();
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "app = \"demo\"\nroot = \"{}\"\nregistry = \"file://{}\"\nchannel = \"prod\"\npublic_keys = [\"RWQ-not-a-key\"]\n",
            root.display(),
            dir.path().join("registry").display()
        ),
    )
    .unwrap();
    let out = updraft(&["--config", agent_config.to_str().unwrap(), "why"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        // Named by position, never quoted: it could be a secret key pasted by mistake.
        stderr(&out).contains("public_keys entry 1 of 1")
            && !stderr(&out).contains("RWQ-not-a-key"),
        "{}",
        text(&out)
    );
    // `check` says the same about the same file.
    let check = updraft(&["--config", agent_config.to_str().unwrap(), "check"]);
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));

    // A push-mode config (no registry) is not an agent config: `why` explains history.
    let push_config = dir.path().join("push.toml");
    std::fs::write(&push_config, format!("root = \"{}\"\n", root.display())).unwrap();
    assert_ok(&updraft(&[
        "--config",
        push_config.to_str().unwrap(),
        "why",
    ]));
}
