//! The block list of an artifact: the sha256 of each fixed-size block, so an agent can
//! check every block before anything parses it (spec §6.2). The list is a separate
//! object, referenced by its sha256 and size from the signed release document, so the
//! document stays small for multi-GiB artifacts; its own hash makes it as trusted as
//! the document.
//!
//! Here: the reference and the object as types, the checks that tie a fetched list to
//! its signed reference and to the artifact, the list a publisher computes, and the
//! reader that hands on a block only once its hash matched.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Artifact, ManifestError};

/// The block size `publish` writes: large enough that the list of a 4 GiB artifact is
/// 280 KB and hashing stays in its fast path, small enough to buffer one block.
pub const BLOCK_SIZE: u64 = 1 << 20;
/// The largest block size an agent accepts: it buffers one whole block in memory.
pub const MAX_BLOCK_SIZE: u64 = 16 << 20;
/// The smallest: a list of tiny blocks would be larger than the artifact is worth.
pub const MIN_BLOCK_SIZE: u64 = 4 << 10;
/// Suffix of the block list object `publish` writes next to the artifact.
pub const BLOCKS_SUFFIX: &str = ".blocks.json";

/// `artifacts.<target>.blocks` in the release document: where the block list is and
/// the sha256 and size it must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksRef {
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// The block list object (`kind: "blocks"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockListDoc {
    pub schema_version: u32,
    pub kind: String,
    pub block_size: u64,
    /// The artifact's size: the last block is the remainder.
    pub size: u64,
    /// Lowercase hex sha256 of each block, in order.
    pub blocks: Vec<String>,
}

/// A block list that matched its signed reference and its artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockList {
    block_size: u64,
    size: u64,
    hashes: Vec<[u8; 32]>,
}

/// Why the bytes of an artifact were refused before the unpacker saw them.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {index} (bytes {start}..{end}) does not match its signed sha256: the download is corrupt or tampered with (a mirror, CDN or proxy serving other bytes); nothing from this block was unpacked")]
    Mismatch { index: usize, start: u64, end: u64 },
    #[error("the artifact ended after {got} bytes, within block {index}; the signed size is {size}: the download was cut short, try again")]
    Truncated { index: usize, got: u64, size: u64 },
    #[error("the artifact is longer than its signed size of {size} bytes: the server sent extra bytes (tampered with, or the wrong object)")]
    Extra { size: u64 },
    #[error("cannot read the artifact")]
    Read(#[source] io::Error),
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl BlocksRef {
    /// Shape rules of the reference inside a release document.
    pub(super) fn check_shape(&self) -> Result<(), String> {
        if !is_hex64(&self.sha256) {
            return Err("blocks.sha256 must be 64 lowercase hex digits".into());
        }
        if self.size == 0 {
            return Err("blocks.size must be positive".into());
        }
        Ok(())
    }
}

/// Number of blocks of `size` bytes in blocks of `block_size` (the last may be short).
fn block_count(size: u64, block_size: u64) -> u64 {
    size.div_ceil(block_size)
}

/// Check a fetched block list against the signed reference (its sha256 and size, first,
/// before parsing) and against the artifact it describes. `what` names it in messages.
pub fn verify_block_list(
    bytes: &[u8],
    reference: &BlocksRef,
    artifact: &Artifact,
    what: &str,
) -> Result<BlockList, ManifestError> {
    let bad = |why: String| ManifestError::Malformed {
        what: what.to_string(),
        kind: "blocks",
        why,
    };
    let actual = hex::encode(Sha256::digest(bytes));
    if bytes.len() as u64 != reference.size || actual != reference.sha256 {
        return Err(ManifestError::BlockListMismatch {
            what: what.to_string(),
            expected: reference.sha256.clone(),
            expected_size: reference.size,
            actual,
            actual_size: bytes.len() as u64,
        });
    }
    let doc: BlockListDoc =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Unparsable {
            what: what.to_string(),
            kind: "blocks",
            source,
        })?;
    if doc.kind != "blocks" {
        return Err(bad(format!("kind is {:?}, expected \"blocks\"", doc.kind)));
    }
    if doc.schema_version != 1 {
        return Err(ManifestError::UnsupportedSchema {
            what: what.to_string(),
            found: doc.schema_version,
            supported: 1,
        });
    }
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&doc.block_size) {
        return Err(bad(format!(
            "block_size {} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}",
            doc.block_size
        )));
    }
    if doc.size != artifact.size {
        return Err(bad(format!(
            "it describes {} bytes, the artifact is {}",
            doc.size, artifact.size
        )));
    }
    let want = block_count(doc.size, doc.block_size);
    if doc.blocks.len() as u64 != want {
        return Err(bad(format!(
            "it lists {} blocks, {} bytes in blocks of {} make {want}",
            doc.blocks.len(),
            doc.size,
            doc.block_size
        )));
    }
    let mut hashes = Vec::with_capacity(doc.blocks.len());
    for (i, h) in doc.blocks.iter().enumerate() {
        let mut raw = [0u8; 32];
        if !is_hex64(h) || hex::decode_to_slice(h, &mut raw).is_err() {
            return Err(bad(format!(
                "block {i}: sha256 must be 64 lowercase hex digits"
            )));
        }
        hashes.push(raw);
    }
    Ok(BlockList {
        block_size: doc.block_size,
        size: doc.size,
        hashes,
    })
}

impl BlockList {
    /// The list of `bytes` read from `reader` in blocks of `block_size`, with the sha256
    /// and size of the whole: what a publisher writes. Reads `reader` to its end.
    pub fn compute(mut reader: impl Read, block_size: u64) -> io::Result<(BlockList, String, u64)> {
        let mut whole = Sha256::new();
        let mut hashes = Vec::new();
        let mut buf = vec![0u8; block_size as usize];
        let mut size = 0u64;
        loop {
            let n = read_full(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            whole.update(&buf[..n]);
            hashes.push(Sha256::digest(&buf[..n]).into());
            size += n as u64;
            if n < buf.len() {
                break;
            }
        }
        Ok((
            BlockList {
                block_size,
                size,
                hashes,
            },
            hex::encode(whole.finalize()),
            size,
        ))
    }

    /// The block list object's bytes (pretty JSON and a final newline, like documents).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        let doc = BlockListDoc {
            schema_version: 1,
            kind: "blocks".into(),
            block_size: self.block_size,
            size: self.size,
            blocks: self.hashes.iter().map(hex::encode).collect(),
        };
        let mut out =
            serde_json::to_vec_pretty(&doc).map_err(|source| ManifestError::Serialise {
                kind: "blocks",
                source,
            })?;
        out.push(b'\n');
        Ok(out)
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// A reader of `inner` that hands on each block only after its sha256 matched, and
    /// fails on a short or long artifact. It holds at most one block.
    pub fn reader<R: Read>(self, inner: R) -> VerifiedBlocks<R> {
        VerifiedBlocks {
            inner,
            buf: Vec::with_capacity(self.block_size as usize),
            pos: 0,
            next: 0,
            list: self,
        }
    }
}

/// Read until `buf` is full or `reader` ends; the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// See [`BlockList::reader`]. Its errors are [`BlockError`]s inside `io::Error`s, so
/// they reach the caller through any reader stacked on top (gzip, tar).
pub struct VerifiedBlocks<R> {
    inner: R,
    list: BlockList,
    /// The current verified block, and how much of it was handed on.
    buf: Vec<u8>,
    pos: usize,
    /// Index of the next block to fetch.
    next: usize,
}

impl<R: Read> VerifiedBlocks<R> {
    /// Fetch and verify the next block into `buf`; false at the end of the artifact.
    fn fill(&mut self) -> Result<bool, BlockError> {
        let bs = self.list.block_size;
        let index = self.next;
        if index == self.list.hashes.len() {
            // The artifact must end here: one more byte is a lie about the size.
            let mut probe = [0u8; 1];
            return match read_full(&mut self.inner, &mut probe).map_err(BlockError::Read)? {
                0 => Ok(false),
                _ => Err(BlockError::Extra {
                    size: self.list.size,
                }),
            };
        }
        let start = index as u64 * bs;
        let len = bs.min(self.list.size - start) as usize;
        self.buf.resize(len, 0);
        let got = read_full(&mut self.inner, &mut self.buf).map_err(BlockError::Read)?;
        if got < len {
            self.buf.clear();
            return Err(BlockError::Truncated {
                index,
                got: start + got as u64,
                size: self.list.size,
            });
        }
        if Sha256::digest(&self.buf)[..] != self.list.hashes[index] {
            self.buf.clear();
            return Err(BlockError::Mismatch {
                index,
                start,
                end: start + len as u64,
            });
        }
        self.pos = 0;
        self.next += 1;
        Ok(true)
    }
}

impl<R: Read> Read for VerifiedBlocks<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            let more = self.fill().map_err(|e| match e {
                // The transport's own error (a timeout, a size limit) stays what it is.
                BlockError::Read(e) => e,
                e => io::Error::new(io::ErrorKind::InvalidData, e),
            })?;
            if !more {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(size: u64) -> Artifact {
        Artifact {
            url: "a.tar.gz".into(),
            sha256: "a".repeat(64),
            size,
            format: "tar.gz".into(),
            blocks: None,
        }
    }

    fn listed(data: &[u8], bs: u64) -> (BlockList, Vec<u8>, BlocksRef) {
        let (list, _, _) = BlockList::compute(data, bs).unwrap();
        let bytes = list.to_bytes().unwrap();
        let r = BlocksRef {
            url: "a.tar.gz.blocks.json".into(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
        };
        (list, bytes, r)
    }

    fn read_all(list: BlockList, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        list.reader(input)
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| e.into_inner().map(|i| i.to_string()).unwrap_or_default())
    }

    #[test]
    fn compute_then_verify_round_trips() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for (len, bs, blocks) in [(10_000, 4096, 3), (8192, 4096, 2), (1, 4096, 1)] {
            let (list, bytes, r) = listed(&data[..len], bs);
            assert_eq!(list.hashes.len(), blocks, "len {len}");
            let got = verify_block_list(&bytes, &r, &artifact(len as u64), "b").unwrap();
            assert_eq!(got, list);
            assert_eq!(read_all(got, &data[..len]).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn reader_refusals() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
        let (list, _, _) = listed(&data, 4096);
        let mut tampered = data.clone();
        tampered[5000] ^= 1;
        let mut longer = data.clone();
        longer.push(0);
        // (input, expected error text, bytes handed on before the error)
        let cases: [(&[u8], &str); 4] = [
            (&tampered, "block 1 (bytes 4096..8192) does not match"),
            (&data[..9_999], "ended after 9999 bytes, within block 2"),
            (&data[..4096], "ended after 4096 bytes, within block 1"),
            (&longer, "longer than its signed size of 10000"),
        ];
        for (input, want) in cases {
            let err = read_all(list.clone(), input).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        // Nothing of a bad block is handed on: only the verified first block.
        let mut r = list.reader(&tampered[..]);
        let mut out = vec![0u8; 20_000];
        let mut got = 0;
        loop {
            match r.read(&mut out[got..]) {
                Ok(0) => panic!("no error"),
                Ok(n) => got += n,
                Err(_) => break,
            }
        }
        assert_eq!(got, 4096);
    }

    #[test]
    fn list_refusals() {
        let data = vec![1u8; 10_000];
        let (_, bytes, r) = listed(&data, 4096);
        let art = artifact(10_000);
        let reref = |b: &[u8]| BlocksRef {
            url: r.url.clone(),
            sha256: hex::encode(Sha256::digest(b)),
            size: b.len() as u64,
        };
        let text = String::from_utf8(bytes.clone()).unwrap();
        let edited = |from: &str, to: &str| text.replacen(from, to, 1).into_bytes();
        let short_list = {
            let mut d: BlockListDoc = serde_json::from_slice(&bytes).unwrap();
            d.blocks.pop();
            serde_json::to_vec(&d).unwrap()
        };
        let huge_block = edited("\"block_size\": 4096", "\"block_size\": 1073741824");
        let other_size = edited("\"size\": 10000", "\"size\": 10001");
        let wrong_kind = edited("\"kind\": \"blocks\"", "\"kind\": \"release\"");
        // (bytes, reference, artifact size, what the error says)
        let cases: Vec<(&[u8], BlocksRef, u64, &str)> = vec![
            (
                &bytes,
                BlocksRef {
                    sha256: "b".repeat(64),
                    ..r.clone()
                },
                10_000,
                "does not match its signed",
            ),
            (
                &bytes,
                BlocksRef {
                    size: r.size + 1,
                    ..r.clone()
                },
                10_000,
                "does not match its signed",
            ),
            (&bytes, r.clone(), 9_999, "the artifact is 9999"),
            (&short_list, reref(&short_list), 10_000, "lists 2 blocks"),
            (&huge_block, reref(&huge_block), 10_000, "outside"),
            (
                &other_size,
                reref(&other_size),
                10_000,
                "describes 10001 bytes",
            ),
            (
                &wrong_kind,
                reref(&wrong_kind),
                10_000,
                "kind is \"release\"",
            ),
        ];
        for (b, reference, size, want) in cases {
            let a = Artifact {
                size,
                ..art.clone()
            };
            let err = verify_block_list(b, &reference, &a, "b")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
