//! Interoperability with the real `minisign` CLI, in both directions: keys it makes sign
//! with updraft, signatures updraft makes verify with it, and the reverse.
//!
//! These tests need `minisign` on PATH (Debian/Ubuntu: `apt-get install -y minisign`).
//! They fail, rather than skip, when it is missing: a skipped interop test proves nothing.

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use updraft::registry::keys::{PublicKey, SecretKey, TrustedKeys};

use support::{bin, ok as assert_ok, text};

fn minisign() -> Command {
    let found = Command::new("minisign")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the `minisign` CLI is required for tests/minisign_interop.rs but was not found on PATH; \
         install it (Debian/Ubuntu: apt-get install -y minisign)"
    );
    Command::new("minisign")
}

/// Run minisign with `stdin` fed to it (how it reads passwords without a terminal).
fn minisign_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = minisign()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn publish(dir: &Path, key: &Path, password: Option<&str>) -> Output {
    let artifact = dir.join("a.tar.gz");
    fs::write(&artifact, b"artifact bytes").unwrap();
    let url = format!("file://{}", dir.join("reg").display());
    let mut cmd = Command::new(bin());
    cmd.args([
        "publish",
        "--registry",
        &url,
        "--app",
        "demo",
        "--version",
        "1.0.0",
        "--artifact",
        s(&artifact),
        "--target",
        "x86_64-linux",
        "--channel",
        "prod",
        "--secret-key",
        s(key),
    ])
    .env_remove("UPDRAFT_KEY_PASSWORD");
    if let Some(pw) = password {
        cmd.env("UPDRAFT_KEY_PASSWORD", pw);
    }
    cmd.output().unwrap()
}

fn registry_verify(dir: &Path, public: &Path) -> Output {
    let url = format!("file://{}", dir.join("reg").display());
    Command::new(bin())
        .args([
            "registry",
            "verify",
            "--registry",
            &url,
            "--app",
            "demo",
            "--public-key",
            s(public),
        ])
        .output()
        .unwrap()
}

/// `minisign -V` accepts every document updraft signed.
fn minisign_verifies_registry(dir: &Path, public: &Path) {
    for doc in [
        "demo/releases/1.0.0/release.json",
        "demo/channels/prod.json",
    ] {
        let doc: PathBuf = dir.join("reg").join(doc);
        let sig = PathBuf::from(format!("{}.minisig", doc.display()));
        let out = minisign()
            .args(["-V", "-p", s(public), "-m", s(&doc), "-x", s(&sig)])
            .output()
            .unwrap();
        assert_ok(&out);
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("Signature and comment signature verified"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn unencrypted_minisign_key_signs_with_updraft() {
    let d = tempfile::tempdir().unwrap();
    let (sk, pk) = (d.path().join("m.key"), d.path().join("m.pub"));
    assert_ok(
        &minisign()
            .args(["-G", "-W", "-p", s(&pk), "-s", s(&sk)])
            .output()
            .unwrap(),
    );
    // Sanity: this is the all-zero-checksum shape the minisign crate refuses.
    let line = fs::read_to_string(&sk).unwrap();
    assert!(line
        .lines()
        .nth(1)
        .unwrap()
        .ends_with("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));

    assert_ok(&publish(d.path(), &sk, None));
    minisign_verifies_registry(d.path(), &pk);
    assert_ok(&registry_verify(d.path(), &pk));
    // Key ids agree with what minisign wrote in the .pub comment.
    let public = PublicKey::from_file(&pk).unwrap();
    assert!(fs::read_to_string(&pk)
        .unwrap()
        .contains(&format!("minisign public key {}", public.key_id())));
}

#[test]
fn password_protected_minisign_key_signs_with_updraft() {
    let d = tempfile::tempdir().unwrap();
    let (sk, pk) = (d.path().join("m.key"), d.path().join("m.pub"));
    // Without a terminal, minisign reads the password (twice) from stdin.
    assert_ok(&minisign_with_stdin(
        &["-G", "-p", s(&pk), "-s", s(&sk)],
        "correct horse\ncorrect horse\n",
    ));

    let out = publish(d.path(), &sk, None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("UPDRAFT_KEY_PASSWORD"),
        "{}",
        text(&out)
    );
    let out = publish(d.path(), &sk, Some("wrong"));
    assert!(text(&out).contains("wrong password"), "{}", text(&out));

    assert_ok(&publish(d.path(), &sk, Some("correct horse")));
    minisign_verifies_registry(d.path(), &pk);
    assert_ok(&registry_verify(d.path(), &pk));
}

#[test]
fn updraft_verifies_what_minisign_signs() {
    let d = tempfile::tempdir().unwrap();
    // A registry published by updraft with an updraft key...
    let (sk, pk) = (d.path().join("u.key"), d.path().join("u.pub"));
    assert_ok(
        &Command::new(bin())
            .args(["keygen", "--secret-key", s(&sk), "--public-key", s(&pk)])
            .output()
            .unwrap(),
    );
    assert_ok(&publish(d.path(), &sk, None));
    // ...whose signatures are then replaced by ones the minisign CLI makes with the same
    // key: updraft's key files are minisign's format, and its verifier accepts them.
    for doc in [
        "demo/releases/1.0.0/release.json",
        "demo/channels/prod.json",
    ] {
        let doc = d.path().join("reg").join(doc);
        let sig = PathBuf::from(format!("{}.minisig", doc.display()));
        fs::remove_file(&sig).unwrap();
        assert_ok(
            &minisign()
                .args([
                    "-S",
                    "-s",
                    s(&sk),
                    "-m",
                    s(&doc),
                    "-x",
                    s(&sig),
                    "-t",
                    "signed by minisign",
                ])
                .output()
                .unwrap(),
        );
        assert!(fs::read_to_string(&sig)
            .unwrap()
            .contains("signed by minisign"));
    }
    let out = registry_verify(d.path(), &pk);
    assert_ok(&out);

    // And through the library, with a password-protected key made by updraft and used
    // by minisign (password on stdin).
    let (esk, epk) = (d.path().join("e.key"), d.path().join("e.pub"));
    assert_ok(
        &Command::new(bin())
            .args([
                "keygen",
                "--secret-key",
                s(&esk),
                "--public-key",
                s(&epk),
                "--password-env",
                "KEYPW",
            ])
            .env("KEYPW", "s3cret")
            .output()
            .unwrap(),
    );
    let msg = d.path().join("msg.json");
    fs::write(&msg, b"{\"any\": \"bytes\"}\n").unwrap();
    assert_ok(&minisign_with_stdin(
        &["-S", "-s", s(&esk), "-m", s(&msg)],
        "s3cret\n",
    ));
    let sig = fs::read_to_string(d.path().join("msg.json.minisig")).unwrap();
    let keys = TrustedKeys::new(vec![PublicKey::from_file(&epk).unwrap()]);
    keys.verify(&fs::read(&msg).unwrap(), &sig, "msg.json")
        .unwrap();
    assert!(keys.verify(b"other bytes", &sig, "msg.json").is_err());
    // updraft loads its own encrypted key with the password too.
    SecretKey::load_from_file(&esk, Some("s3cret".into())).unwrap();
}
