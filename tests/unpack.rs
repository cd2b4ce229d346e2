//! The extractor against the hostile fixtures (fixtures/README.md), through the public
//! library API. Each test unpacks into `<tmp>/dest` beside a `<tmp>/victim` file and
//! checks the refusal names the entry and that nothing outside `dest` changed.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod support;

use support::tarball::{deep_path, tar_gz, Entry};
use updraft::archive::unpack::{unpack_tar_gz, Limits, Stats, UnpackError};

const LIMITS: Limits = Limits {
    max_bytes: 16 << 20,
    max_entries: 100,
    max_path_depth: Limits::DEFAULT_MAX_PATH_DEPTH,
    max_path_bytes: Limits::DEFAULT_MAX_PATH_BYTES,
};

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir)
        .join(format!("{name}.tar.gz"))
}

/// A temp dir holding an empty `dest` and a `victim` file outside it.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("dest")).unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"original\n").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        Sandbox { tmp }
    }
    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }
    fn unpack_file(&self, path: &Path, limits: &Limits) -> Result<Stats, UnpackError> {
        let f = fs::File::open(path).unwrap();
        unpack_tar_gz(f, &self.dest(), limits)
    }
    fn unpack_bytes(&self, bytes: &[u8], limits: &Limits) -> Result<Stats, UnpackError> {
        unpack_tar_gz(bytes, &self.dest(), limits)
    }
    fn unpack(&self, name: &str, limits: &Limits) -> Result<Stats, UnpackError> {
        self.unpack_file(&fixture("hostile", name), limits)
    }
    /// Nothing but `dest` and the untouched `victim` beside it.
    fn assert_outside_untouched(&self) {
        let names: BTreeSet<String> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["dest".to_string(), "victim".to_string()])
        );
        let victim = self.tmp.path().join("victim");
        let m = fs::symlink_metadata(&victim).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        assert_eq!(fs::read(&victim).unwrap(), b"original\n");
        // A hardlink to the victim would raise its link count.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(m.nlink(), 1);
    }
}

/// Assert a refusal naming `entry`, whose message mentions `why_part`.
fn assert_refused(r: Result<Stats, UnpackError>, entry: &str, why_part: &str) {
    if let Err(e) = &r {
        assert!(
            e.to_string().contains(entry),
            "message does not name {entry:?}: {e}"
        );
    }
    match r {
        Err(UnpackError::Refused { entry: e, why }) => {
            assert_eq!(e, entry, "wrong entry named (why: {why})");
            assert!(why.contains(why_part), "{why:?} lacks {why_part:?}");
        }
        other => panic!("expected refusal of {entry:?}, got {other:?}"),
    }
}

#[test]
fn absolute_path_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("abs-path", &LIMITS),
        "/tmp/updraft-hostile-abs-path",
        "absolute path",
    );
    assert!(!Path::new("/tmp/updraft-hostile-abs-path").exists());
    s.assert_outside_untouched();
}

#[test]
fn dotdot_is_refused() {
    let s = Sandbox::new();
    assert_refused(s.unpack("dotdot", &LIMITS), "sub/../../victim", "'..'");
    s.assert_outside_untouched();
    // The entry before it was extracted; the refused one left nothing.
    assert!(s.dest().join("readme.txt").is_file());
    assert!(!s.dest().join("sub").exists());
}

#[test]
fn absolute_symlink_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("symlink-escape-abs", &LIMITS),
        "etc",
        "absolute symlink target",
    );
    assert!(fs::symlink_metadata(s.dest().join("etc")).is_err());
    s.assert_outside_untouched();
}

#[test]
fn relative_symlink_escape_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("symlink-escape-rel", &LIMITS),
        "sub/evil",
        "leaves the release directory",
    );
    assert!(fs::symlink_metadata(s.dest().join("sub/evil")).is_err());
    s.assert_outside_untouched();
}

#[test]
fn symlink_with_dotdot_after_a_name_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("symlink-dotdot-after-name", &LIMITS),
        "deep/er/link",
        "'..' after a name",
    );
    s.assert_outside_untouched();
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("symlink-write-through", &LIMITS),
        "link/payload",
        "symlink",
    );
    assert!(!s.dest().join("sub/payload").exists());
    s.assert_outside_untouched();
}

#[test]
fn overwriting_a_symlink_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("symlink-then-overwrite", &LIMITS),
        "x",
        "would replace a symlink",
    );
    assert!(!s.dest().join("sub/target").exists());
    s.assert_outside_untouched();
}

#[test]
fn replacing_a_directory_with_a_file_is_refused() {
    let s = Sandbox::new();
    assert_refused(
        s.unpack("dir-replaced-by-file", &LIMITS),
        "bin",
        "would replace a directory",
    );
    assert!(s.dest().join("bin/x").is_file());
    s.assert_outside_untouched();
}

#[test]
fn hardlinks_outside_or_to_non_files_are_refused() {
    for (name, why) in [
        ("hardlink-outside", "'..'"),
        ("hardlink-absolute", "absolute path"),
        (
            "hardlink-to-symlink",
            "not a regular file extracted earlier",
        ),
    ] {
        let s = Sandbox::new();
        assert_refused(s.unpack(name, &LIMITS), "h", why);
        assert!(fs::symlink_metadata(s.dest().join("h")).is_err(), "{name}");
        s.assert_outside_untouched();
    }
}

#[test]
fn devices_and_fifos_are_refused() {
    let s = Sandbox::new();
    assert_refused(s.unpack("device", &LIMITS), "dev/null", "character device");
    assert!(fs::symlink_metadata(s.dest().join("dev/null")).is_err());
    s.assert_outside_untouched();

    let s = Sandbox::new();
    assert_refused(s.unpack("fifo", &LIMITS), "pipe", "fifo");
    assert!(fs::symlink_metadata(s.dest().join("pipe")).is_err());
    s.assert_outside_untouched();
}

#[test]
fn setuid_setgid_sticky_and_group_or_world_write_bits_are_stripped() {
    let s = Sandbox::new();
    let stats = s.unpack("setuid", &LIMITS).unwrap();
    assert_eq!(stats.entries, 4);
    let mode = |p: &str| {
        fs::symlink_metadata(s.dest().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o755);
    assert_eq!(mode("bin/group"), 0o750);
    assert_eq!(mode("bin"), 0o755);
    assert_eq!(mode("tmp"), 0o755);
    // mtimes are kept (the fixtures use 1700000000).
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(s.dest().join("bin/tool")).unwrap().mtime(),
        1700000000
    );
    assert_eq!(
        fs::metadata(s.dest().join("bin")).unwrap().mtime(),
        1700000000
    );
    s.assert_outside_untouched();
}

#[test]
fn entry_limit_is_enforced() {
    let s = Sandbox::new();
    match s.unpack("too-many-entries", &LIMITS) {
        Err(UnpackError::LimitExceeded {
            entry,
            limit,
            value,
        }) => {
            assert_eq!(entry, "f0100");
            assert_eq!(limit, "max_entries");
            assert_eq!(value, 100);
        }
        other => panic!("expected entry limit, got {other:?}"),
    }
    s.assert_outside_untouched();
    // Within a higher limit it unpacks.
    let s = Sandbox::new();
    let limits = Limits {
        max_entries: 1000,
        ..LIMITS
    };
    assert_eq!(s.unpack("too-many-entries", &limits).unwrap().entries, 1000);
}

#[test]
fn gzip_bomb_stops_at_the_byte_limit() {
    let s = Sandbox::new();
    match s.unpack("gzip-bomb", &LIMITS) {
        Err(UnpackError::LimitExceeded { entry, limit, .. }) => {
            // 8 MiB per entry against a 16 MiB limit: the third entry is refused.
            assert_eq!(entry, "zeros02");
            assert_eq!(limit, "max_unpacked_bytes");
        }
        other => panic!("expected byte limit, got {other:?}"),
    }
    assert!(fixture("hostile", "gzip-bomb").metadata().unwrap().len() < 512 * 1024);
    assert!(crate_tree_size(&s.dest()) <= LIMITS.max_bytes);
    s.assert_outside_untouched();
}

#[test]
fn oversized_long_name_header_is_refused_without_reading_it() {
    let s = Sandbox::new();
    let err = s.unpack("longname-bomb", &LIMITS).unwrap_err();
    assert!(
        matches!(&err, UnpackError::Refused { why, .. } if why.contains("headers or long names")),
        "{err:?}"
    );
    s.assert_outside_untouched();
}

#[test]
fn endless_data_after_the_end_marker_is_refused() {
    let s = Sandbox::new();
    let err = s.unpack("trailing-bomb", &LIMITS).unwrap_err();
    assert!(
        matches!(&err, UnpackError::Corrupt(m) if m.contains("after the end-of-archive marker")),
        "{err:?}"
    );
    s.assert_outside_untouched();
}

#[test]
fn truncated_corrupt_and_non_gzip_input_is_an_error() {
    for (name, part) in [
        ("truncated", ""),
        ("bad-crc", ""),
        ("trailing-garbage", ""),
        ("not-a-gzip", "not a gzip file"),
    ] {
        let s = Sandbox::new();
        let err = s.unpack(name, &LIMITS).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Corrupt(m) if m.contains(part)),
            "{name}: {err:?}"
        );
        s.assert_outside_untouched();
    }
    let s = Sandbox::new();
    let err = unpack_tar_gz(&b""[..], &s.dest(), &LIMITS).unwrap_err();
    assert!(
        matches!(&err, UnpackError::Corrupt(m) if m.contains("empty")),
        "{err:?}"
    );
}

#[test]
fn long_names_links_and_hardlinks_work_in_gnu_and_pax_archives() {
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    for name in ["gnu-longnames", "pax-longnames"] {
        let s = Sandbox::new();
        let stats = s.unpack_file(&fixture("benign", name), &LIMITS).unwrap();
        assert_eq!(stats.entries, 9, "{name}");
        let d = s.dest();
        assert_eq!(fs::read(d.join(&long)).unwrap(), b"long\n");
        assert_eq!(
            fs::read_link(d.join("lib/libx.so")).unwrap(),
            Path::new("libx.so.1")
        );
        assert_eq!(
            fs::read_link(d.join("bin/lib")).unwrap(),
            Path::new("../lib")
        );
        assert_eq!(
            fs::read_link(d.join("long-link")).unwrap(),
            Path::new(&long)
        );
        assert_eq!(fs::read(d.join("lib/hard")).unwrap(), b"lib\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(d.join("lib/hard")).unwrap().nlink(), 2);
        assert_eq!(
            fs::metadata(d.join("bin/app"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        s.assert_outside_untouched();
    }
}

/// The caller hashes the stream as we read it: every byte must be consumed.
#[test]
fn reader_is_drained_to_the_end() {
    struct Counting<R>(R, u64);
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            // One byte at a time, like the slowest network stream.
            let one = b.len().min(1);
            let n = self.0.read(&mut b[..one])?;
            self.1 += n as u64;
            Ok(n)
        }
    }
    let path = fixture("benign", "pax-longnames");
    let bytes = fs::read(&path).unwrap();
    let s = Sandbox::new();
    let mut c = Counting(&bytes[..], 0);
    unpack_tar_gz(&mut c, &s.dest(), &LIMITS).unwrap();
    assert_eq!(c.1, bytes.len() as u64);
}

fn crate_tree_size(d: &Path) -> u64 {
    updraft::fsutil::tree_size(d).unwrap()
}

/// A failing input (network, size cap) surfaces as the caller's own error, not "corrupt".
#[test]
fn input_errors_are_passed_through() {
    struct FailAfter(Vec<u8>, usize);
    impl Read for FailAfter {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            if self.1 >= self.0.len() / 2 {
                return Err(std::io::Error::other("artifact exceeds max_artifact_bytes"));
            }
            let n = b.len().min(self.0.len() / 2 - self.1).min(64);
            b[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    let bytes = fs::read(fixture("benign", "pax-longnames")).unwrap();
    let s = Sandbox::new();
    let err = unpack_tar_gz(FailAfter(bytes, 0), &s.dest(), &LIMITS).unwrap_err();
    match &err {
        UnpackError::Read(e) => assert_eq!(e.to_string(), "artifact exceeds max_artifact_bytes"),
        other => panic!("expected Read, got {other:?}"),
    }
}

#[test]
fn pax_global_header_is_skipped() {
    let s = Sandbox::new();
    let stats = s
        .unpack_file(&fixture("benign", "pax-global-header"), &LIMITS)
        .unwrap();
    assert_eq!(stats.entries, 2);
    assert_eq!(fs::read(s.dest().join("VERSION")).unwrap(), b"1.0.0\n");
    let names: Vec<_> = fs::read_dir(s.dest()).unwrap().collect();
    assert_eq!(names.len(), 1);
    s.assert_outside_untouched();
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Before issue 11, files at 0666/0777 and directories at 0777 landed as they were, so
/// any local user could change a release that was verified.
#[test]
fn group_and_world_writable_modes_are_not_kept() {
    let s = Sandbox::new();
    let bytes = tar_gz(&[
        Entry::Dir("open/", 0o777),
        Entry::Dir("group/", 0o770),
        Entry::File("open/any", 0o666, b"x"),
        Entry::File("open/run", 0o777, b"x"),
        Entry::File("group/run", 0o775, b"x"),
        Entry::File("implied/deeper/f", 0o620, b"x"),
    ]);
    s.unpack_bytes(&bytes, &LIMITS).unwrap();
    let d = s.dest();
    for (path, want) in [
        ("open", 0o755),
        ("group", 0o750),
        ("open/any", 0o644),
        ("open/run", 0o755),
        ("group/run", 0o755),
        ("implied", 0o755),
        ("implied/deeper", 0o755),
        ("implied/deeper/f", 0o600),
    ] {
        assert_eq!(mode_of(&d.join(path)), want, "{path}");
    }
    s.assert_outside_untouched();
}

/// Paths deeper or longer than `max_path_depth` / `max_path_bytes` are refused before
/// anything is created for them, and directories a path implies count as entries.
#[test]
fn path_depth_length_and_implied_directories_are_bounded() {
    let at_limit = format!("{}/f", deep_path(255));
    let too_deep = format!("{}/f", deep_path(256));
    let s = Sandbox::new();
    s.unpack_bytes(
        &tar_gz(&[Entry::File(&at_limit, 0o644, b"x")]),
        &Limits {
            max_entries: 1000,
            ..LIMITS
        },
    )
    .unwrap();
    assert!(s.dest().join(&at_limit).is_file());

    let s = Sandbox::new();
    let bytes = tar_gz(&[
        Entry::File("ok", 0o644, b"x"),
        Entry::File(&too_deep, 0o644, b"x"),
    ]);
    match s.unpack_bytes(
        &bytes,
        &Limits {
            max_entries: 1000,
            ..LIMITS
        },
    ) {
        Err(UnpackError::LimitExceeded { limit, value, .. }) => {
            assert_eq!((limit, value), ("max_path_depth", 256));
        }
        other => panic!("expected max_path_depth, got {other:?}"),
    }
    assert!(
        !s.dest().join("d").exists(),
        "created part of the refused path"
    );
    s.assert_outside_untouched();

    // 17 names of 250 bytes: 4,266 bytes at depth 17.
    let long = vec!["n".repeat(250); 17].join("/");
    let s = Sandbox::new();
    match s.unpack_bytes(&tar_gz(&[Entry::File(&long, 0o644, b"x")]), &LIMITS) {
        Err(UnpackError::LimitExceeded { limit, value, .. }) => {
            assert_eq!((limit, value), ("max_path_bytes", 4096));
        }
        other => panic!("expected max_path_bytes, got {other:?}"),
    }
    s.assert_outside_untouched();

    // One entry implying 150 directories, with max_entries = 100.
    let s = Sandbox::new();
    let implied = format!("{}/f", deep_path(150));
    match s.unpack_bytes(&tar_gz(&[Entry::File(&implied, 0o644, b"x")]), &LIMITS) {
        Err(UnpackError::LimitExceeded { limit, value, .. }) => {
            assert_eq!((limit, value), ("max_entries", 100));
        }
        other => panic!("expected max_entries, got {other:?}"),
    }
    s.assert_outside_untouched();
}
