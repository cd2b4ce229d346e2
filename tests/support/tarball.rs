//! Test support: hostile tarballs built in the test itself, for inputs too large or too
//! parametric to commit as fixtures (deep trees, long paths, odd modes).

use std::io::Write;

/// One entry of a hand-built tarball.
pub enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    /// A character device: every updraft refuses it, so an archive can be made to fail
    /// at a chosen point.
    Device(&'a str),
}

/// A `.tar.gz` of `entries`, in order (GNU long names where a path needs one).
pub fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        let (path, data): (&str, &[u8]) = match *e {
            Entry::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                (p, &[])
            }
            Entry::File(p, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode);
                (p, data)
            }
            Entry::Device(p) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o644);
                (p, &[])
            }
        };
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }
    let mut gz = b.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

/// `d/d/.../d` with `depth` components.
pub fn deep_path(depth: usize) -> String {
    vec!["d"; depth].join("/")
}
