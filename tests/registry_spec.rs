//! Registry spec 1.1 (issue 12), end to end through the real binary: what a second
//! implementation had to guess, decided and followed by updraft's agent and publisher.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use support::app::release_tarball;
use support::plain_http::spawn_python_http;
use support::registry::{agent_toml, Registry};
use support::{code, json, ok, text};

struct Setup {
    tmp: tempfile::TempDir,
    reg: Registry,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::new(tmp.path());
        Setup { tmp, reg }
    }

    fn ship(&self, version: &str, channel: Option<&str>, extra: &[&str]) {
        let tarball = release_tarball(self.tmp.path(), version, "");
        self.reg.publish(version, &tarball, channel, extra);
    }

    /// An agent config (app root `name`) reading the registry at `registry_url`.
    fn agent(&self, name: &str, registry_url: &str) -> PathBuf {
        let root = self.tmp.path().join(name);
        let config = self.tmp.path().join(format!("{name}.toml"));
        let extra = format!("root = \"{}\"\n", root.display());
        std::fs::write(&config, agent_toml(&self.reg, registry_url, "prod", &extra)).unwrap();
        config
    }

    fn run(&self, config: &Path, args: &[&str]) -> Output {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        self.reg.cli(&all)
    }

    fn doc_path(&self, key: &str) -> PathBuf {
        self.reg.dir.join(key)
    }

    /// Replace the document at `key` with `bytes`, signed with the registry's key, as a
    /// publisher (or another implementation) holding that key could.
    fn write_signed(&self, key: &str, bytes: &[u8]) {
        let sk =
            updraft::registry::keys::SecretKey::load_from_file(&self.reg.secret, None).unwrap();
        let sig = sk.sign(bytes, "written by hand").unwrap();
        std::fs::write(self.doc_path(key), bytes).unwrap();
        std::fs::write(self.doc_path(&format!("{key}.minisig")), sig).unwrap();
    }

    fn edit_signed(&self, key: &str, change: impl FnOnce(&mut serde_json::Value)) {
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.doc_path(key)).unwrap()).unwrap();
        change(&mut doc);
        let mut bytes = serde_json::to_vec_pretty(&doc).unwrap();
        bytes.push(b'\n');
        self.write_signed(key, &bytes);
    }

    fn current(&self, name: &str) -> Option<String> {
        std::fs::read_link(self.tmp.path().join(name).join("releases/current"))
            .ok()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
    }
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

const CHANNEL: &str = "demo/channels/prod.json";
const RELEASE: &str = "demo/releases/1.0.0/release.json";

/// Spec §11: behind a server without ETags, a `Last-Modified` within a second of the
/// response's `Date` is weak (RFC 9110 8.8.2.2) and must not be used for
/// `If-Modified-Since`: the document may be replaced within that second by one with
/// the same `Last-Modified`, and the agent would get 304 for the old one forever.
/// The replacement's mtime is set back by hand (as a copy tool that keeps mtimes, or a
/// publisher ignoring the rule, would), so the test does not depend on the clock.
#[test]
fn agents_see_a_new_channel_document_behind_a_server_without_etags() {
    let s = Setup::new();
    let (_server, http) = spawn_python_http(&s.reg.dir);
    let config = s.agent("agent", &http);
    // Served within the second it was written: the server's clock has not passed it.
    let written = SystemTime::now() + Duration::from_secs(3600);

    s.ship("1.0.0", Some("prod"), &[]);
    set_mtime(&s.doc_path(CHANNEL), written);
    ok(&s.run(&config, &["update"]));
    assert_eq!(s.current("agent").as_deref(), Some("1.0.0"));

    s.ship("1.1.0", Some("prod"), &[]);
    set_mtime(&s.doc_path(CHANNEL), written);
    let o = s.run(&config, &["check", "--json"]);
    assert_eq!(code(&o), 10, "update available: {}", text(&o));
    assert_eq!(json(&o)["channel"]["version"], "1.1.0", "{}", text(&o));
}

/// Spec §2.1: a `v` spelling is accepted on the command line only; a document naming
/// `v1.0.0` is malformed (exit 5, nothing installed), as another implementation says.
#[test]
fn a_v_prefixed_version_in_a_document_is_refused() {
    let s = Setup::new();
    s.ship("1.0.0", Some("prod"), &[]);
    s.edit_signed(CHANNEL, |d| d["version"] = "v1.0.0".into());
    let config = s.agent("agent", &s.reg.url);
    let o = s.run(&config, &["update"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(text(&o).contains("canonical form"), "{}", text(&o));
    assert_eq!(s.current("agent"), None);
}

/// Spec §4: a member twice in one object makes readers disagree on which counts.
#[test]
fn a_signed_document_with_a_duplicate_member_is_refused() {
    let s = Setup::new();
    s.ship("1.0.0", Some("prod"), &[]);
    let doc = std::fs::read_to_string(s.doc_path(CHANNEL)).unwrap();
    let doubled = doc.replacen("{\n", "{\n  \"version\": \"9.9.9\",\n", 1);
    s.write_signed(CHANNEL, doubled.as_bytes());
    let config = s.agent("agent", &s.reg.url);
    let o = s.run(&config, &["update"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(text(&o).contains("appears twice"), "{}", text(&o));
    assert_eq!(s.current("agent"), None);
}

fn other_target() -> &'static str {
    if std::env::consts::ARCH == "x86_64" {
        "aarch64-linux"
    } else {
        "x86_64-linux"
    }
}

/// Spec §6: one malformed artifact entry makes the whole release invalid, whichever
/// target it is for; the verdicts and exit codes of §9 and the README table.
#[test]
fn release_entries_decide_the_verdict_and_the_exit_code() {
    let s = Setup::new();
    s.ship("1.0.0", Some("prod"), &[]);
    let original = std::fs::read(s.doc_path(RELEASE)).unwrap();
    let host = format!("{}-linux", std::env::consts::ARCH);
    type Change = Box<dyn Fn(&mut serde_json::Value)>;
    let entry = |url: &str, format: &str| serde_json::json!({"url": url, "sha256": "a".repeat(64), "size": 10, "format": format});
    let cases: Vec<(&str, Change, i32, &str)> = vec![
        (
            "a file:// url for another target",
            Box::new(move |d| {
                d["artifacts"][other_target()] = entry("file:///etc/passwd", "tar.gz")
            }),
            5,
            "not allowed",
        ),
        (
            "a '..' url for another target",
            Box::new(move |d| {
                d["artifacts"][other_target()] = entry("../2.0.0/x.tar.gz", "tar.gz")
            }),
            5,
            "not allowed",
        ),
        (
            "a bad sha256 for another target",
            Box::new(move |d| {
                d["artifacts"][other_target()] = entry("x.tar.gz", "tar.gz");
                d["artifacts"][other_target()]["sha256"] = "XYZ".into();
            }),
            5,
            "sha256",
        ),
        (
            "an unknown format for this target",
            Box::new({
                let host = host.clone();
                move |d| d["artifacts"][&host]["format"] = "tar.zst".into()
            }),
            5,
            "format",
        ),
        (
            "no artifact for this target",
            Box::new({
                let host = host.clone();
                move |d| {
                    let a = d["artifacts"].as_object_mut().unwrap();
                    let mine = a.remove(&host).unwrap();
                    a.insert(other_target().into(), mine);
                }
            }),
            6,
            "no artifact for target",
        ),
    ];
    for (what, change, want, says) in cases {
        std::fs::write(s.doc_path(RELEASE), &original).unwrap();
        s.edit_signed(RELEASE, |d| change(d));
        let name = what.replace(' ', "-").replace(['/', ':', '\'', '.'], "");
        let config = s.agent(&name, &s.reg.url);
        let o = s.run(&config, &["update"]);
        assert_eq!(code(&o), want, "{what}: {}", text(&o));
        assert!(text(&o).contains(says), "{what}: {}", text(&o));
        assert_eq!(s.current(&name), None, "{what}");
    }
    // An unknown format for another target does not affect this one (forward
    // compatibility: a later revision may add formats).
    std::fs::write(s.doc_path(RELEASE), &original).unwrap();
    s.edit_signed(RELEASE, |d| {
        d["artifacts"][other_target()] = entry("x.tar.zst", "tar.zst");
    });
    let config = s.agent("other-format", &s.reg.url);
    ok(&s.run(&config, &["update"]));
    assert_eq!(s.current("other-format").as_deref(), Some("1.0.0"));
}

/// `unyank` takes a version off the yanked list (next sequence, the rest kept), and is
/// a no-op when the version is not listed.
#[test]
fn unyank_takes_a_version_off_the_list() {
    let s = Setup::new();
    s.ship("1.0.0", Some("prod"), &[]);
    s.ship("1.1.0", Some("prod"), &[]);
    let signed = |cmd: &str, version: &str| {
        s.reg.cli(&[
            cmd,
            "--registry",
            &s.reg.url,
            "--app",
            "demo",
            "--channel",
            "prod",
            "--version",
            version,
            "--secret-key",
            s.reg.secret.to_str().unwrap(),
        ])
    };
    let channel = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(s.doc_path(CHANNEL)).unwrap()).unwrap()
    };
    ok(&signed("yank", "1.0.0"));
    assert_eq!(channel()["yanked"][0]["version"], "1.0.0");
    let seq = channel()["sequence"].as_u64().unwrap();
    let o = signed("unyank", "1.0.0");
    ok(&o);
    assert!(text(&o).contains("unyanked 1.0.0"), "{}", text(&o));
    assert_eq!(channel()["sequence"].as_u64().unwrap(), seq + 1);
    assert!(channel().get("yanked").is_none(), "{}", channel());
    assert_eq!(channel()["version"], "1.1.0");
    let o = signed("unyank", "1.0.0");
    ok(&o);
    assert!(text(&o).contains("nothing written"), "{}", text(&o));
    assert_eq!(channel()["sequence"].as_u64().unwrap(), seq + 1);
    // A channel that does not exist: not found.
    let o = s.reg.cli(&[
        "unyank",
        "--registry",
        &s.reg.url,
        "--app",
        "demo",
        "--channel",
        "nope",
        "--version",
        "1.0.0",
        "--secret-key",
        s.reg.secret.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 6, "{}", text(&o));
}

/// Spec §12: a channel document above the 1 MiB publisher maximum is refused while it
/// is read (exit 5, "too-large" in §9.1), and one of exactly 1 MiB is accepted.
#[test]
fn an_oversized_channel_document_exits_5() {
    let s = Setup::new();
    s.ship("1.0.0", Some("prod"), &[]);
    let doc = std::fs::read(s.doc_path(CHANNEL)).unwrap();
    let padded = |len: usize| {
        let mut d = doc.clone();
        d.resize(len, b' ');
        d
    };
    s.write_signed(CHANNEL, &padded((1 << 20) + 1));
    let config = s.agent("agent", &s.reg.url);
    let o = s.run(&config, &["update"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(text(&o).contains("larger than"), "{}", text(&o));
    assert_eq!(s.current("agent"), None);
    s.write_signed(CHANNEL, &padded(1 << 20));
    ok(&s.run(&config, &["update"]));
    assert_eq!(s.current("agent").as_deref(), Some("1.0.0"));
}
