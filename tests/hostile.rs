//! Hostile input through the real binary: what an attacker who can serve artifact bytes,
//! registry files or server answers can make an agent or an operator's command do
//! (issue 11). Each test is the regression test of one hole the attack campaign found.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::fault_server::{Fault, FaultServer};
use support::registry::{agent_app, Registry};
use support::tarball::{deep_path, tar_gz, Entry};
use support::{code, ok, stderr, text};

/// systemd's default open-file limit for services.
const SERVICE_NOFILE: u64 = 1024;

/// An app root driven by `--config` with no services, so each deploy is quick.
struct Root {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Root {
    fn new(extra_toml: &str) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("updraft.toml");
        std::fs::write(
            &config,
            format!(
                "root = \"{}\"\nkeep = 1\n{extra_toml}\n",
                dir.path().join("app").display()
            ),
        )
        .unwrap();
        Root { dir, config }
    }

    fn app(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    fn releases(&self) -> PathBuf {
        self.app().join("releases")
    }

    /// Hidden entries of `releases/`: staging trees and leftovers.
    fn hidden(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.releases())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn tarball(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Run updraft with at most `SERVICE_NOFILE` open files, as under systemd.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(support::bin());
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("UPDRAFT_ROOT")
            .env_remove("UPDRAFT_CONFIG");
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child here.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: SERVICE_NOFILE,
                    rlim_max: SERVICE_NOFILE,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    }

    fn deploy(&self, version: &str, tarball: &Path) -> Output {
        self.run(&[
            "deploy",
            "--version",
            version,
            "--artifact-path",
            tarball.to_str().unwrap(),
        ])
    }
}

/// A release whose tree is deeper than the open-file limit.
fn deep_release(depth: usize) -> Vec<u8> {
    let deep = format!("{}/leaf", deep_path(depth));
    // No VERSION file: deploy checks one against --version, and this tree is deployed
    // under several versions.
    tar_gz(&[Entry::File(&deep, 0o644, b"x")])
}

/// A hostile archive that builds a deep tree, then fails: before issue 11 its staging
/// tree could not be removed (one open file per level) and blocked every later run.
#[test]
fn deep_trees_never_block_recovery_or_pruning() {
    // Deeper than the default `max_path_depth` allows, as an operator may configure.
    let r = Root::new("[limits]\nmax_path_depth = 2000\nmax_entries = 5000");
    let deep = deep_path(1100);
    let hostile = r.tarball(
        "hostile.tar.gz",
        &tar_gz(&[
            Entry::File(&format!("{deep}/leaf"), 0o644, b"x"),
            Entry::Device("dev/null"),
        ]),
    );
    let good = r.tarball("deep.tar.gz", &deep_release(1100));

    // A legitimately installed deep release, then the hostile one.
    ok(&r.deploy("1.0.0", &good));
    let out = r.deploy("1.1.0", &hostile);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(stderr(&out).contains("dev/null"), "{}", text(&out));

    // Whatever the failed run left, the next ones recover and prune.
    ok(&r.deploy("1.2.0", &good));
    ok(&r.deploy("1.3.0", &good));
    let out = r.run(&["prune", "--keep", "1", "--json"]);
    ok(&out);
    assert!(
        !r.releases().join("1.0.0").exists(),
        "the deep 1.0.0 was not pruned: {}",
        text(&out)
    );
    assert_eq!(r.hidden(), Vec::<String>::new());
    ok(&r.run(&["rollback", "--version", "1.2.0"]));
}

/// Sets and clears the immutable flag on a file: a leftover no one can remove (the flag
/// needs CAP_LINUX_IMMUTABLE and an ext4, xfs or btrfs filesystem).
fn immutable(path: &Path, on: bool) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let mut flags = rustix::fs::ioctl_getflags(&f)?;
    flags.set(rustix::fs::IFlags::IMMUTABLE, on);
    Ok(rustix::fs::ioctl_setflags(&f, flags)?)
}

/// Clears the flag on every `releases/.*/sub/file` when the test ends, wherever the
/// leftover was moved, so the temporary directory can be removed.
struct Unfreeze(PathBuf);

impl Drop for Unfreeze {
    fn drop(&mut self) {
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let _ = immutable(&e.path().join("sub/file"), false);
        }
    }
}

#[test]
fn a_leftover_that_cannot_be_removed_is_set_aside_with_a_warning() {
    let r = Root::new("");
    let good = r.tarball("deep.tar.gz", &deep_release(3));
    ok(&r.deploy("1.0.0", &good));
    let stuck = r.releases().join(".staging-1.1.0-1-00000000/sub");
    std::fs::create_dir_all(&stuck).unwrap();
    std::fs::write(stuck.join("file"), b"x").unwrap();
    let _unfreeze = Unfreeze(r.releases());
    immutable(&stuck.join("file"), true).unwrap_or_else(|e| {
        panic!("cannot make a file immutable ({e}): this test needs root with CAP_LINUX_IMMUTABLE on ext4, xfs or btrfs")
    });
    let out = r.deploy("1.2.0", &good);
    ok(&out);
    assert!(
        stderr(&out).contains("cannot remove a leftover"),
        "{}",
        text(&out)
    );
    let hidden = r.hidden();
    assert!(
        hidden.len() == 1 && hidden[0].starts_with(".trash-staging-1.1.0-1-00000000-"),
        "{hidden:?}"
    );
    // Later runs warn again, and remove it once it can be removed.
    let aside = r.releases().join(&hidden[0]).join("sub/file");
    ok(&r.deploy("1.3.0", &good));
    immutable(&aside, false).unwrap();
    ok(&r.deploy("1.4.0", &good));
    assert_eq!(r.hidden(), Vec::<String>::new());
}

/// With the default limits the same deep archive is refused before it creates anything.
#[test]
fn deep_paths_are_refused_by_default() {
    let r = Root::new("");
    let deep = r.tarball("deep.tar.gz", &deep_release(1100));
    let out = r.deploy("1.0.0", &deep);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(stderr(&out).contains("max_path_depth"), "{}", text(&out));
    assert_eq!(r.hidden(), Vec::<String>::new());
    assert!(!r.releases().join("1.0.0").exists());
}

/// Point every artifact of the published `version` at `url`, re-signed by the
/// publisher's key, as a publisher (or a stolen key) could.
fn sign_artifact_url(reg: &Registry, version: &str, url: &str) {
    let dir = reg.dir.join(format!("demo/releases/{version}"));
    let doc_path = dir.join("release.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
    for artifact in doc["artifacts"].as_object_mut().unwrap().values_mut() {
        artifact["url"] = url.into();
    }
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    let key = updraft::registry::keys::SecretKey::load_from_file(&reg.secret, None).unwrap();
    let sig = key.sign(&bytes, "release with another URL").unwrap();
    std::fs::write(&doc_path, &bytes).unwrap();
    std::fs::write(dir.join("release.json.minisig"), sig).unwrap();
}

/// Whether a command's output holds a raw escape, bell or C1 control.
fn has_raw_controls(o: &Output) -> bool {
    let both = [&o.stdout[..], &o.stderr[..]].concat();
    both.iter().any(|b| *b == 0x1b || *b == 0x07)
        || String::from_utf8_lossy(&both).contains('\u{9b}')
}

/// A server's error page with a terminal's escape sequences (clear the screen, set the
/// window title, ring the bell): printed raw before issue 11, and stored for `status`.
#[test]
fn escape_sequences_from_a_server_are_never_printed_or_stored_raw() {
    const PAGE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}all good\u{9b}31m";
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let server = FaultServer::start(Vec::new(), vec![Fault::StatusBody(418, PAGE); 32]);
    sign_artifact_url(&reg, "1.0.0", &format!("{}/app.tar.gz", server.base));
    let app = agent_app(&reg, "prod", "");
    // The artifact's server, then the registry itself.
    let registry_is_hostile = support::app::App::new(&support::registry::agent_toml(
        &reg,
        &server.base,
        "prod",
        "",
    ));
    for app in [&app, &registry_is_hostile] {
        let out = app.run(&["update"]);
        assert_ne!(code(&out), 0, "{}", text(&out));
        assert!(stderr(&out).contains("all good"), "{}", text(&out));
        assert!(stderr(&out).contains("\\u{1b}[2J"), "{}", text(&out));
        assert!(!has_raw_controls(&out), "{}", text(&out));
    }
    // What the failed run left for `status`.
    for args in [&["status"][..], &["status", "--json"][..]] {
        let st = registry_is_hostile.run(args);
        ok(&st);
        assert!(
            support::stdout(&st).contains("all good"),
            "{args:?}: {}",
            text(&st)
        );
        assert!(!has_raw_controls(&st), "{args:?}: {}", text(&st));
    }
}

/// A signed release whose artifact URL is refused (another scheme, a way out of the
/// release directory) names the URL and why; before issue 11 the agent reported "no
/// artifact for target x86_64-linux (it has: x86_64-linux)".
#[test]
fn a_refused_artifact_url_is_reported_as_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let app = agent_app(&reg, "prod", "");
    for url in ["file:///etc/passwd", "../1.0.1/demo.tar.gz"] {
        sign_artifact_url(&reg, "1.0.0", url);
        let out = app.run(&["update"]);
        assert_ne!(code(&out), 0, "{url}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(url) && !err.contains("no artifact for target"),
            "{url}: {}",
            text(&out)
        );
    }
}

/// A secret key pasted into `public_keys` is refused without being echoed (before issue
/// 11 the whole line went to the terminal and the journal).
#[test]
fn a_secret_key_in_public_keys_is_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let secret_line = std::fs::read_to_string(&reg.secret)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let app = support::app::App::new(&format!(
        "app = \"demo\"\nregistry = \"{}\"\nchannel = \"prod\"\npublic_keys = [\"{}\", \"{secret_line}\"]\n",
        reg.http, reg.pubkey_line
    ));
    for args in [&["check"][..], &["update"][..]] {
        let out = app.run(args);
        assert_eq!(code(&out), 2, "{}", text(&out));
        let all = text(&out);
        assert!(
            all.contains("entry 2 of 2") && all.contains("SECRET key"),
            "{all}"
        );
        assert!(!all.contains(&secret_line[..20]), "{all}");
    }
}

/// `--root /`, `root = ""` and system directories were accepted and deployed into
/// (creating releases/, config/, data/ ... in `/` or in the working directory).
#[test]
fn slash_an_empty_root_and_system_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("app.tar.gz");
    std::fs::write(&tarball, deep_release(2)).unwrap();
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let run = |config: Option<&str>, root: Option<&str>| {
        let mut cmd = Command::new(support::bin());
        cmd.current_dir(&cwd)
            .env_remove("UPDRAFT_ROOT")
            .env_remove("UPDRAFT_CONFIG");
        if let Some(c) = config {
            let path = tmp.path().join("updraft.toml");
            std::fs::write(&path, c).unwrap();
            cmd.arg("--config").arg(path);
        }
        if let Some(r) = root {
            cmd.args(["--root", r]);
        }
        cmd.args(["deploy", "--version", "1.0.0", "--artifact-path"])
            .arg(&tarball)
            .output()
            .unwrap()
    };
    for (config, root, says) in [
        (None, Some("/"), "system directory"),
        (None, Some("/usr/"), "system directory"),
        (None, Some("/tmp/../etc"), "system directory"),
        (None, Some("."), "system directory"),
        (Some("root = \"\"\n"), None, "empty"),
        (Some("root = \"/var\"\n"), None, "system directory"),
    ] {
        // `.` is `/` here.
        let out = if root == Some(".") {
            let mut cmd = Command::new(support::bin());
            cmd.current_dir("/")
                .env_remove("UPDRAFT_ROOT")
                .env_remove("UPDRAFT_CONFIG")
                .args(["--root", ".", "status"]);
            cmd.output().unwrap()
        } else {
            run(config, root)
        };
        assert_eq!(code(&out), 2, "{config:?} {root:?}: {}", text(&out));
        assert!(
            stderr(&out).contains(says),
            "{config:?} {root:?}: {}",
            text(&out)
        );
    }
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    assert!(!Path::new("/releases").exists() && !Path::new("/.updraft").exists());
    // A root of its own is fine.
    ok(&run(None, Some(tmp.path().join("app").to_str().unwrap())));
}

/// The file:// publisher followed symlinked directories inside the registry, so a
/// `releases/<v>` or `channels` link pointing elsewhere received artifacts, documents
/// and signatures.
#[test]
fn the_file_publisher_never_writes_through_a_symlinked_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let tarball = support::app::release_tarball(tmp.path(), "1.0.0", "");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let publish = |version: &str, channel: Option<&str>| {
        let mut args = vec![
            "publish",
            "--registry",
            &reg.url,
            "--app",
            "demo",
            "--version",
            version,
            "--artifact",
            tarball.to_str().unwrap(),
            "--secret-key",
            reg.secret.to_str().unwrap(),
            // One tarball (VERSION 1.0.0) published under several versions.
            "--allow-version-mismatch",
        ];
        if let Some(c) = channel {
            args.extend(["--channel", c]);
        }
        reg.cli(&args)
    };

    std::fs::create_dir_all(reg.dir.join("demo/releases")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, reg.dir.join("demo/releases/1.0.0")).unwrap();
    let out = publish("1.0.0", None);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(stderr(&out).contains("symlink"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    std::fs::create_dir_all(reg.dir.join("demo")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, reg.dir.join("demo/channels")).unwrap();
    let out = publish("1.1.0", Some("prod"));
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(stderr(&out).contains("symlink"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // Real directories work as before.
    std::fs::remove_file(reg.dir.join("demo/channels")).unwrap();
    ok(&publish("1.1.0", Some("prod")));
    assert!(reg.dir.join("demo/channels/prod.json").is_file());
}

/// `logs/releases.log` is in a directory the app may write: a symlink there made root
/// append to a file of the app's choosing.
#[test]
fn the_release_log_is_never_followed_through_a_symlink() {
    let r = Root::new("");
    let victim = r.dir.path().join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    std::fs::create_dir_all(r.app().join("logs")).unwrap();
    std::os::unix::fs::symlink(&victim, r.app().join("logs/releases.log")).unwrap();
    let good = r.tarball("app.tar.gz", &deep_release(2));
    let out = r.deploy("1.0.0", &good);
    ok(&out);
    assert!(stderr(&out).contains("releases.log"), "{}", text(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
}

/// A gzip of `tar` with no compression, so a byte changed in the tar stream changes
/// the same byte of the artifact (and the gzip CRC at its end).
fn gzip_stored(tar: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

/// A release whose second entry starts past the first MiB of the artifact (in its
/// block 1): `(good artifact, hostile artifact)`. The hostile one differs only in that
/// entry's header, renamed `../evil.tx` (checksum fixed), which any unpacker that sees
/// it refuses by name; so the name in an error proves the parser saw the block.
fn release_with_hostile_block_1(version: &str) -> (Vec<u8>, Vec<u8>) {
    let pad: Vec<u8> = (0..1_300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let vfile = format!("{version}\n");
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("VERSION", vfile.as_bytes()),
        ("pad.bin", &pad[..]),
        ("second.txt", b"x"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }
    let good = b.into_inner().unwrap();
    let at = good.windows(11).position(|w| w == b"second.txt\0").unwrap();
    assert_eq!(at % 512, 0);
    let mut evil = good.clone();
    evil[at..at + 10].copy_from_slice(b"../evil.tx");
    let header = &mut evil[at..at + 512];
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let (good, evil) = (gzip_stored(&good), gzip_stored(&evil));
    assert_eq!(good.len(), evil.len());
    let first_diff = good.iter().zip(&evil).position(|(a, b)| a != b).unwrap();
    assert!(
        first_diff >= 1 << 20 && good.len() < 2 << 20,
        "{first_diff} {}",
        good.len()
    );
    (good, evil)
}

/// The published artifact of `version` in the registry's files, as served by it.
fn artifact_path(reg: &Registry, version: &str) -> PathBuf {
    reg.dir.join(format!(
        "demo/releases/{version}/demo-{version}-{}-linux.tar.gz",
        std::env::consts::ARCH
    ))
}

/// An agent (no services) following `prod` of `reg` over HTTP.
fn agent_root(reg: &Registry) -> Root {
    Root::new(&support::registry::agent_toml(reg, &reg.http, "prod", ""))
}

/// A mirror serving a tampered block: refused by its block hash before the unpacker
/// sees a byte of it. The same bytes deployed unverified reach the unpacker, which
/// names the hostile entry: that name never appears on the agent's path.
#[test]
fn a_tampered_block_never_reaches_the_unpacker() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let (good, evil) = release_with_hostile_block_1("1.0.0");
    let r = agent_root(&reg);
    reg.publish("1.0.0", &r.tarball("good.tar.gz", &good), Some("prod"), &[]);
    std::fs::write(artifact_path(&reg, "1.0.0"), &evil).unwrap();

    let out = r.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("block 1 (bytes 1048576..")
            && err.contains("does not match its signed sha256"),
        "{}",
        text(&out)
    );
    assert!(
        !err.contains("evil"),
        "the unpacker saw the tampered block: {}",
        text(&out)
    );
    assert!(!r.releases().join("1.0.0").exists());
    assert_eq!(r.hidden(), Vec::<String>::new());

    // Control: unverified, the same bytes reach the parser, which names the entry.
    let other = Root::new("");
    let out = other.deploy("1.0.0", &other.tarball("evil.tar.gz", &evil));
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(stderr(&out).contains("../evil.tx"), "{}", text(&out));

    // The good bytes back in place install.
    std::fs::write(artifact_path(&reg, "1.0.0"), &good).unwrap();
    ok(&r.run(&["update"]));
    assert!(r.releases().join("1.0.0/second.txt").is_file());
}

/// Cut short, or longer than signed: refused, nothing installed, nothing left behind.
#[test]
fn a_truncated_or_extended_artifact_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let (good, _) = release_with_hostile_block_1("1.0.0");
    let r = agent_root(&reg);
    reg.publish("1.0.0", &r.tarball("good.tar.gz", &good), Some("prod"), &[]);
    let mut longer = good.clone();
    longer.extend_from_slice(b"more");
    for (what, bytes) in [
        ("truncated", &good[..good.len() - 4096]),
        ("extended", &longer[..]),
    ] {
        std::fs::write(artifact_path(&reg, "1.0.0"), bytes).unwrap();
        let out = r.run(&["update"]);
        assert_ne!(code(&out), 0, "{what}: {}", text(&out));
        assert!(!stderr(&out).contains("evil"), "{what}: {}", text(&out));
        assert!(!r.releases().join("1.0.0").exists(), "{what}");
        assert_eq!(r.hidden(), Vec::<String>::new(), "{what}");
    }
}

/// A block list that is not the one the release document signs is refused before it
/// is parsed, even when it lists the hashes of the served (tampered) artifact.
#[test]
fn a_block_list_that_does_not_match_its_signed_hash_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let (good, evil) = release_with_hostile_block_1("1.0.0");
    let r = agent_root(&reg);
    reg.publish("1.0.0", &r.tarball("good.tar.gz", &good), Some("prod"), &[]);
    let art = artifact_path(&reg, "1.0.0");
    let list_path = PathBuf::from(format!("{}.blocks.json", art.display()));
    let signed = std::fs::read(&list_path).unwrap();
    // The attacker's list, for the attacker's artifact, in the same format.
    let (list, _, _) = updraft::registry::manifest::BlockList::compute(&evil[..], 1 << 20).unwrap();
    let forged = list.to_bytes().unwrap();
    assert_eq!(forged.len(), signed.len());
    std::fs::write(&list_path, &forged).unwrap();
    std::fs::write(&art, &evil).unwrap();
    let out = r.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(
        stderr(&out).contains("does not match its signed reference"),
        "{}",
        text(&out)
    );
    assert!(!stderr(&out).contains("evil"), "{}", text(&out));
    assert!(!r.releases().join("1.0.0").exists());
    // The publisher's audit finds it too.
    let audit = reg.cli(&[
        "registry",
        "verify",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--public-key",
        reg.public.to_str().unwrap(),
    ]);
    assert_eq!(code(&audit), 5, "{}", text(&audit));
    assert!(
        text(&audit).contains("does not match its signed reference"),
        "{}",
        text(&audit)
    );
}

/// Strip the block list from a published release, as a release published before
/// block lists looks, re-signed by the publisher's key.
fn without_block_list(reg: &Registry, version: &str) {
    let dir = reg.dir.join(format!("demo/releases/{version}"));
    let doc_path = dir.join("release.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
    for artifact in doc["artifacts"].as_object_mut().unwrap().values_mut() {
        let list = artifact.as_object_mut().unwrap().remove("blocks").unwrap();
        std::fs::remove_file(dir.join(list["url"].as_str().unwrap())).unwrap();
    }
    let bytes = serde_json::to_vec_pretty(&doc).unwrap();
    let key = updraft::registry::keys::SecretKey::load_from_file(&reg.secret, None).unwrap();
    let sig = key.sign(&bytes, "release without a block list").unwrap();
    std::fs::write(&doc_path, &bytes).unwrap();
    std::fs::write(dir.join("release.json.minisig"), sig).unwrap();
}

/// A release without a block list (published before them) still installs; its
/// artifact is downloaded whole and verified first, so a tampered one never reaches
/// the unpacker either, and the temporary download does not outlive the run.
#[test]
fn a_release_without_a_block_list_is_verified_whole_before_unpacking() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let (good, evil) = release_with_hostile_block_1("1.0.0");
    let r = agent_root(&reg);
    reg.publish("1.0.0", &r.tarball("good.tar.gz", &good), Some("prod"), &[]);
    without_block_list(&reg, "1.0.0");
    std::fs::write(artifact_path(&reg, "1.0.0"), &evil).unwrap();
    let out = r.run(&["update"]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(stderr(&out).contains("checksum mismatch"), "{}", text(&out));
    assert!(!stderr(&out).contains("evil"), "{}", text(&out));
    assert_eq!(r.hidden(), Vec::<String>::new());

    std::fs::write(artifact_path(&reg, "1.0.0"), &good).unwrap();
    ok(&r.run(&["update"]));
    assert!(r.releases().join("1.0.0/second.txt").is_file());
    assert_eq!(r.hidden(), Vec::<String>::new());

    // `deploy --sha256` of a local file: verified whole first too.
    let other = Root::new("");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&good));
    let out = other.run(&[
        "deploy",
        "--version",
        "1.0.0",
        "--artifact-path",
        other.tarball("evil.tar.gz", &evil).to_str().unwrap(),
        "--sha256",
        &sha,
    ]);
    assert_eq!(code(&out), 5, "{}", text(&out));
    assert!(
        stderr(&out).contains("checksum mismatch") && !stderr(&out).contains("evil.tx"),
        "{}",
        text(&out)
    );
}
