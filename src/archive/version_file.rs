//! The release's own `VERSION` file: `updraft pack` writes one at the tarball's root, and
//! `publish` and `deploy` refuse a tarball whose file names another version than
//! `--version` (a mix-up that would otherwise run under the wrong name, or burn a
//! version number in the registry).

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path};

use flate2::read::GzDecoder;

use crate::registry::names::Version;

/// A tarball whose root VERSION file names another version than the one it is being
/// installed or published as. Nothing was installed or uploaded.
#[derive(Debug, thiserror::Error)]
#[error("refused artifact {location}: its VERSION file says {found:?} but the version is {version}; use the right tarball or fix --version (or pass --allow-version-mismatch); nothing was changed")]
pub struct Mismatch {
    pub location: String,
    pub found: String,
    pub version: Version,
}

impl crate::error::Classify for Mismatch {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Verify
    }
}

/// Refuse `text` (a VERSION file's, from `location`) unless it names `version`.
pub fn check(location: &str, text: Option<String>, version: &Version) -> Result<(), Mismatch> {
    match text {
        Some(found) if !names_version(&found, version) => Err(Mismatch {
            location: location.to_string(),
            found: found.trim().to_string(),
            version: version.clone(),
        }),
        _ => Ok(()),
    }
}

/// A VERSION file holds one version; anything longer is read only this far.
const MAX_VERSION_BYTES: u64 = 256;

/// Whether a VERSION file's text names `version`: surrounding whitespace and a leading
/// `v` are ignored, as they are for `--version`.
pub fn names_version(text: &str, version: &Version) -> bool {
    text.trim()
        .parse::<Version>()
        .is_ok_and(|found| &found == version)
}

/// The text of the regular file `VERSION` (or `./VERSION`) at the root of a `.tar.gz`
/// stream, if it has one. Reads the stream until it finds it, or to its end.
pub fn in_tarball(reader: impl Read) -> io::Result<Option<String>> {
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    for entry in archive.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?;
        let mut parts = path.components().filter(|c| *c != Component::CurDir);
        let at_root = matches!(
            (parts.next(), parts.next()),
            (Some(Component::Normal(n)), None) if n == "VERSION"
        );
        if at_root {
            return read_bounded(entry).map(Some);
        }
    }
    Ok(None)
}

/// The text of `dir/VERSION` when it is a regular file (an unpacked release).
pub fn in_tree(dir: &Path) -> io::Result<Option<String>> {
    let path = dir.join("VERSION");
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => read_bounded(fs::File::open(&path)?).map(Some),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_bounded(r: impl Read) -> io::Result<String> {
    let mut bytes = Vec::new();
    r.take(MAX_VERSION_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn names_version_table() {
        let cases = [
            ("1.2.0\n", "1.2.0", true),
            ("v1.2.0", "1.2.0", true),
            ("  1.2.0  \n\n", "1.2.0", true),
            ("1.2.0-rc.1\n", "1.2.0-rc.1", true),
            ("1.2.1\n", "1.2.0", false),
            ("1.2.0-rc.1", "1.2.0", false),
            ("", "1.2.0", false),
            ("release 1.2.0", "1.2.0", false),
        ];
        for (text, version, want) in cases {
            assert_eq!(
                names_version(text, &v(version)),
                want,
                "{text:?} vs {version}"
            );
        }
    }

    fn tarball(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn finds_only_the_root_version_file() {
        let t = tarball(&[("bin/VERSION", b"9.9.9"), ("./VERSION", b"1.0.0\n")]);
        assert_eq!(in_tarball(&t[..]).unwrap().as_deref(), Some("1.0.0\n"));
        let t = tarball(&[("VERSION", b"2.0.0")]);
        assert_eq!(in_tarball(&t[..]).unwrap().as_deref(), Some("2.0.0"));
        let t = tarball(&[("lib/VERSION", b"9.9.9"), ("bin/app", b"x")]);
        assert_eq!(in_tarball(&t[..]).unwrap(), None);
        assert!(in_tarball(&b"not a gzip"[..]).is_err());
    }
}
