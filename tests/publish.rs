//! The publisher commands end to end, over the real binary and a file:// registry.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{bin, ok as assert_ok, text};

struct Reg {
    _dir: tempfile::TempDir,
    root: PathBuf,
    reg: PathBuf,
}

impl Reg {
    fn new() -> Reg {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let reg = root.join("registry");
        let r = Reg {
            _dir: dir,
            root,
            reg,
        };
        let out = r.run(&[
            "keygen",
            "--secret-key",
            r.p("k.key").to_str().unwrap(),
            "--public-key",
            r.p("k.pub").to_str().unwrap(),
        ]);
        assert_ok(&out);
        r
    }

    fn p(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn url(&self) -> String {
        format!("file://{}", self.reg.display())
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env_remove("UPDRAFT_KEY_PASSWORD")
            .env_remove("UPDRAFT_CONFIG")
            .output()
            .unwrap()
    }

    /// A command taking --registry/--app/--secret-key, plus `extra`.
    fn signed(&self, cmd: &str, extra: &[&str]) -> Output {
        let url = self.url();
        let key = self.p("k.key");
        let mut args = vec![
            cmd,
            "--registry",
            &url,
            "--app",
            "demo",
            "--secret-key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn artifact(&self, name: &str, content: &[u8]) -> String {
        let p = self.p(name);
        fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn publish(&self, version: &str, artifact: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "--version",
            version,
            "--artifact",
            artifact,
            "--target",
            "x86_64-linux",
        ];
        args.extend_from_slice(extra);
        self.signed("publish", &args)
    }

    fn verify(&self) -> Output {
        let url = self.url();
        let pk = self.p("k.pub");
        self.run(&[
            "registry",
            "verify",
            "--registry",
            &url,
            "--app",
            "demo",
            "--public-key",
            pk.to_str().unwrap(),
        ])
    }

    fn channel(&self, c: &str) -> serde_json::Value {
        let bytes = fs::read(self.reg.join(format!("demo/channels/{c}.json"))).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn assert_fails_with(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure: {}", text(o));
    assert!(
        text(o).contains(needle),
        "expected {needle:?} in {}",
        text(o)
    );
}

fn modes_under(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        out.push((e.path(), m.permissions().mode() & 0o777, m.is_dir()));
        if m.is_dir() {
            modes_under(&e.path(), out);
        }
    }
}

#[test]
fn publish_promote_yank_verify_round_trip() {
    let r = Reg::new();
    let a1 = r.artifact("a1.tar.gz", b"release one bytes");
    assert_ok(&r.publish("1.0.0", &a1, &["--channel", "dev"]));
    assert_eq!(r.channel("dev")["sequence"], 1);
    assert_eq!(r.channel("dev")["version"], "1.0.0");

    assert_ok(&r.signed("promote", &["--from", "dev", "--channel", "prod"]));
    assert_eq!(r.channel("prod")["version"], "1.0.0");
    assert_eq!(r.channel("prod")["sequence"], 1);

    let a2 = r.artifact("a2.tar.gz", b"release two bytes");
    assert_ok(&r.publish("1.1.0", &a2, &["--channel", "dev"]));
    assert_eq!(r.channel("dev")["sequence"], 2);

    // Sequence increases on every promote, also when re-signing the same version.
    assert_ok(&r.signed(
        "promote",
        &["--version", "1.1.0", "--channel", "prod", "--rollout", "25"],
    ));
    assert_eq!(r.channel("prod")["sequence"], 2);
    assert_eq!(r.channel("prod")["rollout"]["percent"], 25);
    assert_ok(&r.signed(
        "promote",
        &[
            "--version",
            "1.0.0",
            "--channel",
            "prod",
            "--waves",
            "0s=10,1h=50,1d=100",
        ],
    ));
    let prod = r.channel("prod");
    assert_eq!(prod["sequence"], 3);
    assert_eq!(prod["rollout"]["waves"].as_array().unwrap().len(), 3);

    // The version prod points at cannot be yanked; another can.
    let out = r.signed("yank", &["--channel", "prod", "--version", "1.0.0"]);
    assert_fails_with(&out, "promote another version");
    assert_ok(&r.signed(
        "yank",
        &[
            "--channel",
            "prod",
            "--version",
            "1.1.0",
            "--reason",
            "corrupts data",
        ],
    ));
    let prod = r.channel("prod");
    assert_eq!(prod["sequence"], 4);
    assert_eq!(prod["yanked"][0]["version"], "1.1.0");
    assert_eq!(prod["yanked"][0]["reason"], "corrupts data");
    // Promoting a yanked version to that channel is refused.
    assert_fails_with(
        &r.signed("promote", &["--version", "1.1.0", "--channel", "prod"]),
        "yanked",
    );

    let out = r.verify();
    assert_ok(&out);
    assert!(text(&out).contains("registry ok"), "{}", text(&out));

    // JSON report has a stable shape.
    let url = r.url();
    let pk = r.p("k.pub");
    let out = r.run(&[
        "registry",
        "verify",
        "--registry",
        &url,
        "--app",
        "demo",
        "--public-key",
        pk.to_str().unwrap(),
        "--json",
    ]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["failures"], 0);
    assert!(v["items"].as_array().unwrap().len() >= 6);

    // Files 0644, directories 0755.
    let mut modes = Vec::new();
    modes_under(&r.reg, &mut modes);
    assert!(modes.len() > 10);
    for (p, mode, is_dir) in modes {
        let want = if is_dir { 0o755 } else { 0o644 };
        assert_eq!(mode, want, "{}", p.display());
    }
}

#[test]
fn releases_are_immutable_and_republish_is_a_no_op() {
    let r = Reg::new();
    let a = r.artifact("a.tar.gz", b"original bytes");
    assert_ok(&r.publish("2.0.0", &a, &[]));
    let rel = r.reg.join("demo/releases/2.0.0/release.json");
    let before = fs::read(&rel).unwrap();
    let sig_before = fs::read(r.reg.join("demo/releases/2.0.0/release.json.minisig")).unwrap();

    let out = r.publish("2.0.0", &a, &[]);
    assert_ok(&out);
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
    assert_eq!(fs::read(&rel).unwrap(), before);
    assert_eq!(
        fs::read(r.reg.join("demo/releases/2.0.0/release.json.minisig")).unwrap(),
        sig_before
    );

    let b = r.artifact("b.tar.gz", b"different bytes");
    assert_fails_with(&r.publish("2.0.0", &b, &[]), "immutable");
    assert_eq!(fs::read(&rel).unwrap(), before);
    let art = r
        .reg
        .join("demo/releases/2.0.0/demo-2.0.0-x86_64-linux.tar.gz");
    assert_eq!(fs::read(art).unwrap(), b"original bytes");

    // A publish interrupted between the release document and its signature is finished
    // by running it again: the existing bytes are signed, not rewritten.
    let sig = r.reg.join("demo/releases/2.0.0/release.json.minisig");
    fs::remove_file(&sig).unwrap();
    assert_fails_with(&r.verify(), "release.json.minisig is missing");
    assert_ok(&r.publish("2.0.0", &a, &[]));
    assert_eq!(fs::read(&rel).unwrap(), before);
    assert!(sig.exists());
    assert_ok(&r.verify());

    // An artifact left by an interrupted publish is not overwritten with other bytes.
    fs::create_dir_all(r.reg.join("demo/releases/3.0.0")).unwrap();
    fs::write(
        r.reg
            .join("demo/releases/3.0.0/demo-3.0.0-x86_64-linux.tar.gz"),
        b"leftover",
    )
    .unwrap();
    assert_fails_with(&r.publish("3.0.0", &b, &[]), "immutable");
}

#[test]
fn tampering_is_reported_naming_the_file() {
    type Tamper = fn(&Path);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "artifact byte",
            |reg| flip(&reg.join("demo/releases/1.0.0/demo-1.0.0-x86_64-linux.tar.gz")),
            "demo/releases/1.0.0/demo-1.0.0-x86_64-linux.tar.gz",
        ),
        (
            "release document byte",
            |reg| flip(&reg.join("demo/releases/1.0.0/release.json")),
            "demo/releases/1.0.0/release.json",
        ),
        (
            "channel document byte",
            |reg| flip(&reg.join("demo/channels/prod.json")),
            "demo/channels/prod.json",
        ),
        (
            "signature",
            |reg| {
                // Swap in the signature of another document: valid key, wrong bytes.
                let other = fs::read(reg.join("demo/releases/1.0.0/release.json.minisig")).unwrap();
                fs::write(reg.join("demo/channels/prod.json.minisig"), other).unwrap();
            },
            "demo/channels/prod.json",
        ),
        (
            "missing signature",
            |reg| fs::remove_file(reg.join("demo/releases/1.0.0/release.json.minisig")).unwrap(),
            "demo/releases/1.0.0/release.json",
        ),
    ];
    for (name, tamper, file) in cases {
        let r = Reg::new();
        let a = r.artifact("a.tar.gz", b"some artifact bytes for tampering");
        assert_ok(&r.publish("1.0.0", &a, &["--channel", "prod"]));
        assert_ok(&r.verify());
        tamper(&r.reg);
        let out = r.verify();
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert_eq!(out.status.code(), Some(5), "{name}: {}", text(&out));
        let fail_lines: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("FAIL"))
            .collect();
        assert!(
            fail_lines.iter().any(|l| l.contains(file)),
            "{name}: no FAIL line names {file}: {}",
            text(&out)
        );
    }
}

#[test]
fn untrusted_keys_are_refused() {
    let r = Reg::new();
    let a = r.artifact("a.tar.gz", b"bytes");
    assert_ok(&r.publish("1.0.0", &a, &["--channel", "prod"]));
    // A second key pair: verifying with it fails, and publishing on top of documents
    // signed by the first key is refused unless the first key is passed as trusted.
    let other_key = r.p("o.key");
    let other_pub = r.p("o.pub");
    assert_ok(&r.run(&[
        "keygen",
        "--secret-key",
        other_key.to_str().unwrap(),
        "--public-key",
        other_pub.to_str().unwrap(),
    ]));
    let url = r.url();
    let out = r.run(&[
        "registry",
        "verify",
        "--registry",
        &url,
        "--app",
        "demo",
        "--public-key",
        other_pub.to_str().unwrap(),
    ]);
    assert_fails_with(&out, "not a trusted key");
    let promote = |extra: &[&str]| {
        let mut args = vec![
            "promote",
            "--registry",
            &url,
            "--app",
            "demo",
            "--version",
            "1.0.0",
            "--channel",
            "prod",
            "--secret-key",
            other_key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        r.run(&args)
    };
    assert_fails_with(&promote(&[]), "--trusted-key");
    let old_pub = r.p("k.pub");
    assert_ok(&promote(&["--trusted-key", old_pub.to_str().unwrap()]));
    // Now the channel is signed by the new key, the release by the old: agents that
    // trust both accept the registry.
    let out = r.run(&[
        "registry",
        "verify",
        "--registry",
        &url,
        "--app",
        "demo",
        "--public-key",
        old_pub.to_str().unwrap(),
        "--public-key",
        other_pub.to_str().unwrap(),
    ]);
    assert_ok(&out);
}

#[test]
fn secret_key_from_environment_and_keygen_refuses_overwrite() {
    let r = Reg::new();
    let out = r.run(&[
        "keygen",
        "--secret-key",
        r.p("k.key").to_str().unwrap(),
        "--public-key",
        r.p("k.pub").to_str().unwrap(),
    ]);
    assert_fails_with(&out, "already exists");
    let key_text = fs::read_to_string(r.p("k.key")).unwrap();
    let mode = fs::metadata(r.p("k.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let a = r.artifact("a.tar.gz", b"bytes");
    let url = r.url();
    let out = Command::new(bin())
        .args([
            "publish",
            "--registry",
            &url,
            "--app",
            "demo",
            "--version",
            "1.0.0",
            "--artifact",
            &a,
            "--target",
            "aarch64-linux",
            "--secret-key-env",
            "CI_SIGNING_KEY",
        ])
        .env("CI_SIGNING_KEY", key_text)
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(r
        .reg
        .join("demo/releases/1.0.0/demo-1.0.0-aarch64-linux.tar.gz")
        .exists());
}

fn flip(p: &Path) {
    let mut b = fs::read(p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x20;
    fs::write(p, b).unwrap();
}

/// Channel changes are read-modify-write; publishers running at once must not lose one
/// another's changes (a lost yank would put a quarantined version back in reach).
#[test]
fn concurrent_yanks_on_one_channel_are_all_kept() {
    let r = Reg::new();
    let versions: Vec<String> = (0..8).map(|i| format!("1.{i}.0")).collect();
    for v in &versions {
        let a = r.artifact(&format!("{v}.tar.gz"), format!("release {v}").as_bytes());
        assert_ok(&r.publish(v, &a, &[]));
    }
    let a = r.artifact("2.0.0.tar.gz", b"release 2.0.0");
    assert_ok(&r.publish("2.0.0", &a, &["--channel", "prod"]));

    let url = r.url();
    let key = r.p("k.key");
    let children: Vec<_> = versions
        .iter()
        .map(|v| {
            Command::new(bin())
                .args(["yank", "--registry", &url, "--app", "demo"])
                .args(["--channel", "prod", "--version", v])
                .arg("--secret-key")
                .arg(&key)
                .env_remove("UPDRAFT_KEY_PASSWORD")
                .env_remove("UPDRAFT_CONFIG")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        assert_ok(&c.wait_with_output().unwrap());
    }
    let prod = r.channel("prod");
    let yanked: Vec<&str> = prod["yanked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|y| y["version"].as_str().unwrap())
        .collect();
    assert_eq!(yanked, versions, "{prod}");
    assert_eq!(prod["sequence"], 1 + versions.len(), "{prod}");
    assert_ok(&r.verify());
}

/// Scripts branch on the documented exit codes: a missing release or channel is 6, a
/// bad key file or password is the operator's input (2), a signature that does not
/// check out is 5, and a change refused as asked is the command line's fault (2).
#[test]
fn publisher_failures_exit_with_their_documented_code() {
    let r = Reg::new();
    let a = r.artifact("a.tar.gz", b"release one bytes");
    assert_ok(&r.publish("1.0.0", &a, &["--channel", "prod"]));
    let b = r.artifact("b.tar.gz", b"release two bytes");
    assert_ok(&r.publish("1.1.0", &b, &[]));
    // A password-protected key pair, and a file that is not a key.
    let locked = r.p("locked.key");
    let out = Command::new(bin())
        .args(["keygen", "--password-env", "KEYGEN_PW", "--secret-key"])
        .arg(&locked)
        .arg("--public-key")
        .arg(r.p("locked.pub"))
        .env("KEYGEN_PW", "right horse battery")
        .output()
        .unwrap();
    assert_ok(&out);
    fs::write(r.p("garbage.key"), "this is not a key\n").unwrap();
    let (other_key, other_pub) = (r.p("o.key"), r.p("o.pub"));
    assert_ok(&r.run(&[
        "keygen",
        "--secret-key",
        other_key.to_str().unwrap(),
        "--public-key",
        other_pub.to_str().unwrap(),
    ]));

    let url = r.url();
    // (what, command after --registry/--app, secret key, password, exit code, message)
    type Case<'a> = (
        &'a str,
        Vec<&'a str>,
        PathBuf,
        Option<&'a str>,
        i32,
        &'a str,
    );
    let promote_1_1 = vec!["promote", "--version", "1.1.0", "--channel", "prod"];
    let cases: Vec<Case> = vec![
        (
            "promote a release never published",
            vec!["promote", "--version", "9.9.9", "--channel", "prod"],
            r.p("k.key"),
            None,
            6,
            "demo/releases/9.9.9/release.json does not exist",
        ),
        (
            "promote from a channel never published",
            vec!["promote", "--from", "beta", "--channel", "prod"],
            r.p("k.key"),
            None,
            6,
            "demo/channels/beta.json does not exist",
        ),
        (
            "yank a release never published",
            vec!["yank", "--channel", "prod", "--version", "9.9.9"],
            r.p("k.key"),
            None,
            6,
            "no release demo 9.9.9",
        ),
        (
            "yank from a channel never published",
            vec!["yank", "--channel", "beta", "--version", "1.1.0"],
            r.p("k.key"),
            None,
            6,
            "demo/channels/beta.json does not exist",
        ),
        (
            "yank what the channel runs",
            vec!["yank", "--channel", "prod", "--version", "1.0.0"],
            r.p("k.key"),
            None,
            2,
            "promote another version",
        ),
        (
            "secret key file missing",
            promote_1_1.clone(),
            r.p("nowhere.key"),
            None,
            2,
            "cannot read",
        ),
        (
            "secret key file malformed",
            promote_1_1.clone(),
            r.p("garbage.key"),
            None,
            2,
            "is not a minisign secret key",
        ),
        (
            "password missing",
            promote_1_1.clone(),
            locked.clone(),
            None,
            2,
            "is password-protected",
        ),
        (
            "password wrong",
            promote_1_1.clone(),
            locked.clone(),
            Some("wrong horse"),
            2,
            "wrong password",
        ),
        (
            "existing documents signed by an untrusted key",
            promote_1_1.clone(),
            other_key.clone(),
            None,
            5,
            "not a trusted key",
        ),
    ];
    for (name, command, key, password, code, needle) in cases {
        let mut cmd = Command::new(bin());
        cmd.arg(command[0])
            .args(["--registry", &url, "--app", "demo", "--secret-key"])
            .arg(&key)
            .args(&command[1..])
            .env_remove("UPDRAFT_KEY_PASSWORD")
            .env_remove("UPDRAFT_CONFIG");
        if let Some(pw) = password {
            cmd.env("UPDRAFT_KEY_PASSWORD", pw);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{name}: {}", text(&out));
        assert!(text(&out).contains(needle), "{name}: {}", text(&out));
    }

    // A release document modified after signing: promoting it is a verification failure.
    flip(&r.reg.join("demo/releases/1.1.0/release.json"));
    let out = r.signed("promote", &["--version", "1.1.0", "--channel", "prod"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("does not match its bytes"),
        "{}",
        text(&out)
    );
}

/// `tar -czf out -C dir .` of a tree holding `VERSION` = `text` and a file.
fn tarball_with_version(r: &Reg, name: &str, text: &str) -> String {
    let tree = r.p(&format!("tree-{name}"));
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::write(tree.join("VERSION"), text).unwrap();
    fs::write(tree.join("bin/app"), b"#!/bin/sh\n").unwrap();
    let out = r.p(name);
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    out.to_str().unwrap().to_string()
}

#[test]
fn a_tarball_naming_another_version_is_not_published() {
    let r = Reg::new();
    let art = tarball_with_version(&r, "a.tar.gz", "1.0.0\n");
    let out = r.publish("1.1.0", &art, &[]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_fails_with(&out, "VERSION file says \"1.0.0\"");
    assert!(!r.reg.join("demo/releases/1.1.0").exists());
    // The same tarball under its own version, and the override.
    assert_ok(&r.publish("v1.0.0", &art, &[]));
    assert_ok(&r.publish("1.1.0", &art, &["--allow-version-mismatch"]));
    assert!(r.reg.join("demo/releases/1.1.0/release.json").exists());
}

#[test]
fn an_unknown_target_is_refused_unless_allowed() {
    let r = Reg::new();
    let art = tarball_with_version(&r, "a.tar.gz", "1.0.0\n");
    let args = |t: &'static str| {
        ["--version", "1.0.0", "--artifact", &art, "--target", t].map(String::from)
    };
    let typo = args("x86-64-linux");
    let typo: Vec<&str> = typo.iter().map(String::as_str).collect();
    let out = r.signed("publish", &typo);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_fails_with(&out, "did you mean x86_64-linux?");
    assert!(
        !r.reg.join("demo/releases/1.0.0").exists(),
        "the version number is not burnt"
    );
    let mut allowed = typo.clone();
    allowed.push("--allow-target");
    assert_ok(&r.signed("publish", &allowed));
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(r.reg.join("demo/releases/1.0.0/release.json")).unwrap())
            .unwrap();
    assert!(doc["artifacts"]["x86-64-linux"].is_object(), "{doc}");
}

/// `refresh` keeps everything in the channel document but `sequence`, `issued` and
/// `expires`, including top-level fields this version of updraft does not know (written
/// here by hand and signed with the real minisign, as a newer publisher might; unknown
/// fields inside `rollout` are refused by agents, so they never get that far).
#[test]
fn refresh_keeps_the_channel_content_including_unknown_fields() {
    let r = Reg::new();
    // A key made by minisign itself, so the hand-edited document can be signed with it.
    let (sk, pk) = (r.p("m.key"), r.p("m.pub"));
    let made = Command::new("minisign")
        .args([
            "-G",
            "-W",
            "-p",
            pk.to_str().unwrap(),
            "-s",
            sk.to_str().unwrap(),
        ])
        .output()
        .expect("minisign on PATH (apt-get install -y minisign)");
    assert!(made.status.success(), "{}", text(&made));
    let with_key = |cmd: &str, extra: &[&str]| {
        let url = r.url();
        let mut args = vec![cmd, "--registry", &url, "--app", "demo", "--secret-key"];
        args.push(sk.to_str().unwrap());
        args.extend_from_slice(extra);
        r.run(&args)
    };
    for v in ["1.0.0", "1.1.0"] {
        let art = tarball_with_version(&r, &format!("{v}.tar.gz"), v);
        let mut extra = vec![
            "--version",
            v,
            "--artifact",
            &art,
            "--target",
            "x86_64-linux",
        ];
        extra.extend(["--channel", "prod", "--notes", "the notes"]);
        assert_ok(&with_key("publish", &extra));
    }
    assert_ok(&with_key(
        "promote",
        &[
            "--version",
            "1.1.0",
            "--channel",
            "prod",
            "--waves",
            "0s=10,1h=50,1d=100",
        ],
    ));
    assert_ok(&with_key(
        "yank",
        &["--channel", "prod", "--version", "1.0.0", "--reason", "bad"],
    ));

    // A newer publisher's fields, signed as it would sign them.
    let doc_path = r.reg.join("demo/channels/prod.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&doc_path).unwrap()).unwrap();
    doc["mirror_hint"] = serde_json::json!({"region": "eu-west-1"});
    fs::write(&doc_path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let signed = Command::new("minisign")
        .args([
            "-S",
            "-s",
            sk.to_str().unwrap(),
            "-m",
            doc_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", text(&signed));
    let before: serde_json::Value = serde_json::from_slice(&fs::read(&doc_path).unwrap()).unwrap();

    let out = with_key("refresh", &["--channel", "prod", "--expires", "90d"]);
    assert_ok(&out);
    assert!(
        text(&out).contains("refreshed channel prod -> 1.1.0"),
        "{}",
        text(&out)
    );
    let mut after: serde_json::Value =
        serde_json::from_slice(&fs::read(&doc_path).unwrap()).unwrap();
    assert_eq!(after["sequence"], before["sequence"].as_u64().unwrap() + 1);
    let expires = after["expires"].as_str().unwrap().to_string();
    assert!(
        expires.as_str() > before["expires"].as_str().unwrap(),
        "{expires}"
    );
    let mut want = before.clone();
    for k in ["sequence", "issued", "expires"] {
        after.as_object_mut().unwrap().remove(k);
        want.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(after, want, "only sequence, issued and expires change");

    // The refreshed document verifies with the minisign public key, and is not about
    // to expire; a short refresh trips `verify --min-valid`.
    let verify = |min: &str| {
        let url = r.url();
        r.run(&[
            "registry",
            "verify",
            "--registry",
            &url,
            "--app",
            "demo",
            "--public-key",
            pk.to_str().unwrap(),
            "--min-valid",
            min,
        ])
    };
    assert_ok(&verify("30d"));
    assert_ok(&with_key(
        "refresh",
        &["--channel", "prod", "--expires", "2d"],
    ));
    let out = verify("7d");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_fails_with(&out, "updraft refresh --channel prod");
}

/// Spec §8.6: every channel-changing command writes the next document from the current
/// one and carries over every member it does not own, including members this version of
/// updraft does not know (an older publisher never deletes a newer publisher's fields),
/// and re-signing (`promote --from prod --channel prod`) keeps the rollout and notes.
#[test]
fn every_channel_change_carries_over_what_it_does_not_own() {
    let r = Reg::new();
    for v in ["1.0.0", "1.0.1", "1.1.0"] {
        let art = tarball_with_version(&r, &format!("{v}.tar.gz"), v);
        assert_ok(&r.publish(v, &art, &["--channel", "prod", "--notes", "n1"]));
    }
    assert_ok(&r.signed(
        "promote",
        &[
            "--version",
            "1.1.0",
            "--channel",
            "prod",
            "--waves",
            "0s=10,1h=50",
        ],
    ));
    assert_ok(&r.signed(
        "yank",
        &["--channel", "prod", "--version", "1.0.0", "--reason", "bad"],
    ));
    // What a newer publisher wrote: a top-level member and one in a yanked entry.
    let doc_path = r.reg.join("demo/channels/prod.json");
    let mut doc = r.channel("prod");
    doc["mirror_hint"] = serde_json::json!({"region": "eu-west-1"});
    doc["yanked"][0]["ticket"] = "INC-231".into();
    doc["notes"] = "keep me".into();
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    let sk = updraft::registry::keys::SecretKey::load_from_file(&r.p("k.key"), None).unwrap();
    fs::write(&doc_path, &bytes).unwrap();
    fs::write(
        r.reg.join("demo/channels/prod.json.minisig"),
        sk.sign(&bytes, "newer publisher").unwrap(),
    )
    .unwrap();
    let rollout = doc["rollout"].clone();
    assert!(rollout["waves"].is_array(), "{doc}");

    let same_version: [(&str, Vec<&str>); 4] = [
        ("promote", vec!["--from", "prod", "--channel", "prod"]),
        ("promote", vec!["--version", "1.1.0", "--channel", "prod"]),
        ("yank", vec!["--channel", "prod", "--version", "1.0.1"]),
        ("unyank", vec!["--channel", "prod", "--version", "1.0.1"]),
    ];
    let mut sequence = doc["sequence"].as_u64().unwrap();
    for (cmd, args) in same_version {
        assert_ok(&r.signed(cmd, &args));
        let after = r.channel("prod");
        let what = format!("{cmd} {args:?}: {after}");
        sequence += 1;
        assert_eq!(after["sequence"].as_u64(), Some(sequence), "{what}");
        assert_eq!(after["mirror_hint"]["region"], "eu-west-1", "{what}");
        assert_eq!(after["yanked"][0]["ticket"], "INC-231", "{what}");
        assert_eq!(after["version"], "1.1.0", "{what}");
        assert_eq!(after["rollout"], rollout, "{what}");
        assert_eq!(after["notes"], "keep me", "{what}");
    }
    // A new version owns its rollout and notes; the rest is still carried over.
    assert_ok(&r.signed("promote", &["--version", "1.0.1", "--channel", "prod"]));
    let after = r.channel("prod");
    assert_eq!(after["version"], "1.0.1", "{after}");
    assert_eq!(after["mirror_hint"]["region"], "eu-west-1", "{after}");
    assert_eq!(after["yanked"][0]["ticket"], "INC-231", "{after}");
    assert!(after.get("rollout").is_none(), "{after}");
}
