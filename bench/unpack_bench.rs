//! Unpack a .tar.gz the way the deploy pipeline does: one pass over the bytes, sha256
//! computed on the way, extraction through `updraft::archive::unpack::unpack_tar_gz`.
//!
//! Usage: unpack-bench TARBALL DEST   (DEST must exist and be empty)
//! Prints: sha256, compressed bytes, unpacked bytes, entries, seconds.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};
use updraft::archive::unpack::{unpack_tar_gz, Limits};

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(tarball), Some(dest)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: unpack-bench TARBALL DEST");
    };
    let (tarball, dest) = (PathBuf::from(tarball), PathBuf::from(dest));
    let start = Instant::now();
    let mut input = Hashing {
        inner: std::fs::File::open(&tarball)?,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let limits = Limits {
        max_bytes: 64 << 30,
        max_entries: 10_000_000,
        max_path_depth: Limits::DEFAULT_MAX_PATH_DEPTH,
        max_path_bytes: Limits::DEFAULT_MAX_PATH_BYTES,
    };
    let stats = unpack_tar_gz(&mut input, &dest, &limits)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sha256={} compressed={} unpacked={} entries={} seconds={secs:.3}",
        hex::encode(input.hasher.finalize()),
        input.bytes,
        stats.bytes,
        stats.entries
    );
    Ok(())
}
