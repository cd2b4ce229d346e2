//! `updraft pack` through the real binary: reproducible bytes, normalised metadata,
//! refusals, and a result the extractor accepts.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use sha2::Digest;
use updraft::archive::unpack::{unpack_tar_gz, Limits};

fn updraft() -> Command {
    let mut c = Command::new(support::bin());
    c.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("UPDRAFT_ROOT");
    c
}

fn pack(dir: &Path, version: &str, out: &Path) -> Output {
    updraft()
        .arg("pack")
        .arg(dir)
        .args(["--version", version, "--output"])
        .arg(out)
        .output()
        .unwrap()
}

/// Assert success (see `support::ok`); returns stdout.
fn ok(o: Output) -> String {
    support::ok(&o);
    support::stdout(&o)
}

fn set_mtime(p: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A small release tree: an executable, data files, nested dirs, an inside symlink.
fn release_tree(root: &Path) -> PathBuf {
    let d = root.join("rel");
    fs::create_dir_all(d.join("bin")).unwrap();
    fs::create_dir_all(d.join("assets/dist")).unwrap();
    fs::create_dir_all(d.join("a")).unwrap();
    fs::write(d.join("bin/server"), b"#!/bin/sh\necho server\n").unwrap();
    fs::set_permissions(d.join("bin/server"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(d.join("assets/dist/app.js"), b"console.log(1)\n").unwrap();
    fs::set_permissions(
        d.join("assets/dist/app.js"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(d.join("a/b"), b"b\n").unwrap();
    fs::write(d.join("a-c"), b"c\n").unwrap();
    symlink("bin/server", d.join("run")).unwrap();
    d
}

#[test]
fn packing_is_reproducible_and_normalised() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = release_tree(tmp.path());
    let out1 = tmp.path().join("one.tar.gz");
    let out2 = tmp.path().join("two.tar.gz");

    let stdout = ok(pack(&dir, "v1.2.3", &out1));
    let bytes1 = fs::read(&out1).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes1));
    assert!(stdout.contains(&out1.display().to_string()), "{stdout}");
    assert!(stdout.contains(&sha), "{stdout}");
    assert!(stdout.contains(&bytes1.len().to_string()), "{stdout}");

    // Different file and directory mtimes must not change a byte.
    set_mtime(&dir.join("bin/server"), 1_000_000);
    set_mtime(&dir.join("a/b"), 2_000_000);
    fs::File::open(dir.join("bin"))
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(3_000_000))
        .unwrap();
    ok(pack(&dir, "1.2.3", &out2));
    assert_eq!(bytes1, fs::read(&out2).unwrap(), "two packs differ");

    // gzip header: no mtime (bytes 4..8) and no FNAME flag.
    assert_eq!(&bytes1[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(bytes1[3] & 0x08, 0, "gzip header has a file name");
    assert_eq!(&bytes1[4..8], &[0, 0, 0, 0]);

    let listing = Command::new("tar")
        .env("TZ", "UTC")
        .arg("-tvzf")
        .arg(&out1)
        .output()
        .unwrap();
    let listing = ok(listing);
    let lines: Vec<&str> = listing.lines().collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "VERSION",
            "a/",
            "a/b",
            "a-c",
            "assets/",
            "assets/dist/",
            "assets/dist/app.js",
            "bin/",
            "bin/server",
            "run",
        ]
    );
    for l in &lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[1], "0/0", "owner not 0/0: {l}");
        // Default mtime is the epoch.
        assert!(f[3].starts_with("1970-01-01"), "{l}");
        let want = match f[5] {
            n if n.ends_with('/') => "drwxr-xr-x",
            "bin/server" => "-rwxr-xr-x",
            "run" => "lrwxrwxrwx",
            _ => "-rw-r--r--",
        };
        assert_eq!(f[0], want, "{l}");
    }
    assert!(listing.contains("run -> bin/server"), "{listing}");

    let version = Command::new("tar")
        .arg("-xzOf")
        .arg(&out1)
        .arg("VERSION")
        .output()
        .unwrap();
    assert_eq!(ok(version), "1.2.3\n");

    // The extractor accepts what pack writes.
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 100,
        max_path_depth: Limits::DEFAULT_MAX_PATH_DEPTH,
        max_path_bytes: Limits::DEFAULT_MAX_PATH_BYTES,
    };
    let stats = unpack_tar_gz(fs::File::open(&out1).unwrap(), &dest, &limits).unwrap();
    assert_eq!(stats.entries, 10);
    assert_eq!(fs::read_to_string(dest.join("VERSION")).unwrap(), "1.2.3\n");
    assert_eq!(
        fs::read(dest.join("run")).unwrap(),
        b"#!/bin/sh\necho server\n"
    );
    let mode = fs::metadata(dest.join("bin/server"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn source_date_epoch_sets_the_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = release_tree(tmp.path());
    let out = tmp.path().join("r.tar.gz");
    let o = updraft()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .arg("pack")
        .arg(&dir)
        .args(["--version", "2.0.0", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    ok(o);
    let listing = ok(Command::new("tar")
        .env("TZ", "UTC")
        .arg("-tvzf")
        .arg(&out)
        .output()
        .unwrap());
    for l in listing.lines() {
        assert!(l.contains("2023-11-14 22:13"), "{l}");
    }

    let o = updraft()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .arg("pack")
        .arg(&dir)
        .args(["--version", "2.0.0", "--output"])
        .arg(tmp.path().join("bad.tar.gz"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SOURCE_DATE_EPOCH"));
}

fn assert_refused(o: Output, out: &Path, part: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(part), "{stderr:?} lacks {part:?}");
    assert!(!out.exists(), "output written despite the error");
    // No temporary left beside it either.
    let parent = out.parent().unwrap();
    let leftovers: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".pack-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn escaping_symlinks_and_special_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outdir = tmp.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let out = outdir.join("r.tar.gz");

    let dir = release_tree(tmp.path());
    symlink("/etc/passwd", dir.join("bin/passwd")).unwrap();
    assert_refused(pack(&dir, "1.0.0", &out), &out, "bin/passwd");
    fs::remove_file(dir.join("bin/passwd")).unwrap();

    symlink("../../outside", dir.join("bin/up")).unwrap();
    assert_refused(
        pack(&dir, "1.0.0", &out),
        &out,
        "leaves the release directory",
    );
    fs::remove_file(dir.join("bin/up")).unwrap();

    let fifo = dir.join("assets/pipe");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    assert_refused(pack(&dir, "1.0.0", &out), &out, "a fifo");
    fs::remove_file(&fifo).unwrap();

    // An existing VERSION must agree with --version.
    fs::write(dir.join("VERSION"), "v0.9.0\n").unwrap();
    assert_refused(pack(&dir, "1.0.0", &out), &out, "--version is 1.0.0");
    fs::write(dir.join("VERSION"), "v1.0.0\n").unwrap();
    ok(pack(&dir, "1.0.0", &out));

    // Writing the output into the packed directory would pack itself.
    let inside = dir.join("self.tar.gz");
    assert_refused(
        pack(&dir, "1.0.0", &inside),
        &inside,
        "inside the directory",
    );
}

#[test]
fn long_names_and_long_link_targets_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rel");
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(150));
    fs::create_dir_all(dir.join(&long_dir)).unwrap();
    fs::write(dir.join(&long_file), b"deep\n").unwrap();
    symlink(&long_file, dir.join("link")).unwrap();
    let out = tmp.path().join("r.tar.gz");
    ok(pack(&dir, "0.1.0-rc.1+build.5", &out));

    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 100,
        max_path_depth: Limits::DEFAULT_MAX_PATH_DEPTH,
        max_path_bytes: Limits::DEFAULT_MAX_PATH_BYTES,
    };
    let stats = unpack_tar_gz(fs::File::open(&out).unwrap(), &dest, &limits).unwrap();
    assert_eq!(stats.entries, 4);
    assert_eq!(fs::read(dest.join("link")).unwrap(), b"deep\n");
    assert_eq!(
        fs::read_link(dest.join("link")).unwrap(),
        Path::new(&long_file)
    );
    assert_eq!(
        fs::read_to_string(dest.join("VERSION")).unwrap(),
        "0.1.0-rc.1+build.5\n"
    );
}
