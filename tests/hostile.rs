//! Hostile input through the real binary: what an attacker who can serve artifact bytes,
//! registry files or server answers can make an agent or an operator's command do
//! (issue 11). Each test is the regression test of one hole the attack campaign found.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    tar_gz(&[
        Entry::File("VERSION", 0o644, b"deep\n"),
        Entry::File(&deep, 0o644, b"x"),
    ])
}

/// A hostile archive that builds a deep tree, then fails: before issue 11 its staging
/// tree could not be removed (one open file per level) and blocked every later run.
#[test]
fn deep_trees_never_block_recovery_or_pruning() {
    let r = Root::new("");
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
