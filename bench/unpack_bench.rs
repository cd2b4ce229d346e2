//! Unpack a .tar.gz the way the deploy pipeline does, through
//! `updraft::archive::unpack::unpack_tar_gz`, with sha256 computed on the way.
//!
//! Usage: unpack-bench TARBALL DEST [MODE]   (DEST must exist and be empty)
//! MODE: `one-pass` (default; the streaming path before block lists: the unpacker sees
//! bytes before any hash is checked), `blocks` (each 1 MiB block checked against its
//! block list before the unpacker sees it; the list is computed first, untimed, as a
//! publisher would), `whole` (copied to a temporary file beside DEST and verified whole,
//! then unpacked: releases without a block list).
//! Prints: sha256, compressed bytes, unpacked bytes, entries, seconds.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};
use updraft::archive::unpack::{unpack_tar_gz, Limits};
use updraft::registry::manifest::{BlockList, BLOCK_SIZE};

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
        anyhow::bail!("usage: unpack-bench TARBALL DEST [one-pass|blocks|whole]");
    };
    let mode = args
        .next()
        .map(|m| m.to_string_lossy().into_owned())
        .unwrap_or_else(|| "one-pass".into());
    let (tarball, dest) = (PathBuf::from(tarball), PathBuf::from(dest));
    let limits = Limits {
        max_bytes: 64 << 30,
        max_entries: 10_000_000,
        max_path_depth: Limits::DEFAULT_MAX_PATH_DEPTH,
        max_path_bytes: Limits::DEFAULT_MAX_PATH_BYTES,
    };
    let list = match mode.as_str() {
        "blocks" => Some(BlockList::compute(std::fs::File::open(&tarball)?, BLOCK_SIZE)?.0),
        "one-pass" | "whole" => None,
        other => anyhow::bail!("unknown mode {other:?}"),
    };
    let start = Instant::now();
    let file = std::fs::File::open(&tarball)?;
    let spool = dest.with_extension("download");
    let source: Box<dyn Read> = match (mode.as_str(), list) {
        ("blocks", Some(list)) => Box::new(list.reader(file)),
        ("whole", _) => {
            let mut h = Hashing {
                inner: file,
                hasher: Sha256::new(),
                bytes: 0,
            };
            let mut out = std::fs::File::create(&spool)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = h.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            drop(out);
            let _whole = hex::encode(h.hasher.finalize());
            Box::new(std::fs::File::open(&spool)?)
        }
        _ => Box::new(file),
    };
    let mut input = Hashing {
        inner: std::io::BufReader::with_capacity(256 * 1024, source),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let stats = unpack_tar_gz(&mut input, &dest, &limits)?;
    let _ = std::fs::remove_file(&spool);
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
