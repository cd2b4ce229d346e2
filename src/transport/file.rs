//! `file://` registries: a directory laid out exactly as the registry spec says.
//!
//! Reads behave like an HTTP server would (ETag, conditional fetch, offset, size limit)
//! so agents and tests exercise the same paths as over the network. Writes are atomic
//! (temporary sibling + rename) so a concurrent reader sees the old object or the new
//! one, never a torn one; files are 0644 and directories 0755 whatever the umask, so a
//! web server running as another user can serve the tree.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::headers::file_etag;
use super::key::Key;
use super::limits::Limited;
use super::{Body, FetchRequest, Fetched, Transport, TransportError, UpdateLock};

/// How long a publisher waits for another one changing the same channel documents.
const UPDATE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const CHUNK: usize = 64 * 1024;

mod beneath;

pub struct FileRegistry {
    pub root: PathBuf,
}

impl FileRegistry {
    pub fn from_url(url: &str) -> Result<FileRegistry, TransportError> {
        let parsed = url::Url::parse(url).map_err(|e| TransportError::InvalidUrl {
            url: url.into(),
            why: e.to_string(),
        })?;
        if parsed.scheme() != "file" {
            return Err(TransportError::InvalidUrl {
                url: url.into(),
                why: "not a file:// URL".into(),
            });
        }
        let root = parsed
            .to_file_path()
            .map_err(|()| TransportError::InvalidUrl {
                url: url.into(),
                why: "expected an absolute local path such as file:///srv/registry".into(),
            })?;
        Ok(FileRegistry { root })
    }

    pub fn new(root: impl Into<PathBuf>) -> FileRegistry {
        FileRegistry { root: root.into() }
    }

    /// Map a registry key to a path under the root ([`Key`] refuses anything that
    /// could leave it). A trailing `/` names the directory.
    fn path_of(&self, key: &str) -> Result<PathBuf, TransportError> {
        let key = Key::new(key.strip_suffix('/').unwrap_or(key))?;
        let mut p = self.root.clone();
        p.extend(key.segments());
        Ok(p)
    }

    /// The directory holding `key`, opened (and created) below the root without
    /// following a symlink (see `beneath`), and the object's name in it.
    fn dir_of(&self, key: &str) -> Result<(OwnedFd, String), TransportError> {
        let k = Key::new(key)?;
        let segments: Vec<&str> = k.segments().collect();
        let Some((name, dirs)) = segments.split_last() else {
            return Err(TransportError::InvalidUrl {
                url: self.location(key),
                why: "empty key".into(),
            });
        };
        let fd =
            beneath::open_dir(&self.root, dirs, true, DIR_MODE).map_err(|e| self.io_err(key, e))?;
        Ok((fd, name.to_string()))
    }

    /// [`TransportError::Conflict`] unless `key` has the ETag `expected` (None: unless it
    /// does not exist).
    async fn check_unchanged(
        &self,
        key: &str,
        expected: Option<&str>,
    ) -> Result<(), TransportError> {
        let path = self.path_of(key)?;
        let current = match tokio::fs::metadata(&path).await {
            Ok(meta) => Some(file_etag(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io_err(key, e)),
        };
        if current.as_deref() == expected {
            Ok(())
        } else {
            Err(TransportError::Conflict {
                location: self.location(key),
            })
        }
    }

    fn io_err(&self, key: &str, e: io::Error) -> TransportError {
        if e.kind() == io::ErrorKind::NotFound {
            TransportError::NotFound {
                location: self.location(key),
            }
        } else {
            TransportError::io(self.location(key), e)
        }
    }
}

#[async_trait::async_trait]
impl Transport for FileRegistry {
    async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, TransportError> {
        let path = self.path_of(&req.key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.io_err(&req.key, e))?;
        // Validators come from the open descriptor: a rename after open cannot make
        // the ETag describe bytes other than the ones we stream.
        let meta = file
            .metadata()
            .await
            .map_err(|e| self.io_err(&req.key, e))?;
        if !meta.is_file() {
            return Err(TransportError::NotFound {
                location: self.location(&req.key),
            });
        }
        let etag = file_etag(&meta);
        if req.if_none_match.as_deref() == Some(etag.as_str()) {
            return Ok(Fetched::NotModified);
        }
        let len = meta.len();
        // Like a server answering a Range it cannot satisfy with the whole object.
        let offset = if req.offset <= len { req.offset } else { 0 };
        let remaining = len - offset;
        if offset > 0 {
            file.seek(io::SeekFrom::Start(offset))
                .await
                .map_err(|e| self.io_err(&req.key, e))?;
        }
        let location = self.location(&req.key);
        let chunks = futures_util::stream::try_unfold(
            (file, location.clone()),
            |(mut f, location)| async move {
                let mut buf = vec![0u8; CHUNK];
                let n = f
                    .read(&mut buf)
                    .await
                    .map_err(|e| TransportError::io(location.clone(), e))?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), (f, location))))
            },
        );
        // A file that grows or shrinks while it is read fails like a lying server.
        let stream = Limited::new(
            Box::pin(chunks),
            location,
            offset,
            Some(remaining),
            req.limit,
        )?;
        Ok(Fetched::Body(Body {
            etag: Some(etag),
            last_modified: None,
            date: None,
            len: Some(remaining),
            offset,
            stream: Box::pin(stream),
        }))
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[async_trait::async_trait]
impl super::Store for FileRegistry {
    async fn get(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(self.get_tagged(key, limit).await?.map(|(bytes, _)| bytes))
    }

    async fn get_tagged(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError> {
        let fetched = self.fetch(&FetchRequest::whole(key, limit)).await;
        super::whole_object(self.location(key), limit, fetched).await
    }

    /// Compares the file's current ETag with `expected`, then writes. The check and
    /// the rename are two steps: publishers hold [`Store::lock_for_update`] around their
    /// read-modify-write, so no other updraft publisher runs between them.
    async fn put_if_unchanged(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<(), TransportError> {
        self.check_unchanged(key, expected).await?;
        self.put(key, bytes).await
    }

    /// Like [`FileRegistry::put_if_unchanged`]: exact under the publisher's lock.
    async fn put_file_if_absent(&self, key: &str, path: &Path) -> Result<(), TransportError> {
        self.check_unchanged(key, None).await?;
        self.put_file(key, path).await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TransportError> {
        let this = FileRegistry::new(self.root.clone());
        let k = key.to_string();
        tokio::task::spawn_blocking(move || {
            let (dir, name) = this.dir_of(&k)?;
            let old = beneath::file_metadata(&dir, &name);
            beneath::write_atomic_at(
                &dir,
                &name,
                FILE_MODE,
                |f| f.write_all(&bytes),
                |new| distinct_validators(old.as_ref(), new),
            )
            .map_err(|e| this.io_err(&k, e))
        })
        .await
        .map_err(|e| TransportError::io(self.location(key), e))?
    }

    async fn put_file(&self, key: &str, src: &Path) -> Result<(), TransportError> {
        let this = FileRegistry::new(self.root.clone());
        let k = key.to_string();
        let src = src.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let (dir, name) = this.dir_of(&k)?;
            beneath::write_atomic_at(
                &dir,
                &name,
                FILE_MODE,
                |out| io::copy(&mut File::open(&src)?, out).map(drop),
                |_| Ok(()),
            )
            .map_err(|e| TransportError::Io {
                location: this.location(&k),
                message: format!("copying {}", src.display()),
                source: Some(e.into()),
            })
        })
        .await
        .map_err(|e| TransportError::io(self.location(key), e))?
    }

    /// An flock on the directory holding `key`: no lock file appears in the web root,
    /// and the kernel releases it if the publisher dies.
    async fn lock_for_update(&self, key: &str) -> Result<UpdateLock, TransportError> {
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let this = FileRegistry::new(self.root.clone());
        let k = key.to_string();
        tokio::task::spawn_blocking(move || {
            let (fd, _) = this.dir_of(&k)?;
            let f = File::from(fd);
            match crate::disk::lock::lock_within(&f, UPDATE_LOCK_WAIT) {
                Ok(true) => Ok(UpdateLock::holding(f)),
                Ok(false) => Err(TransportError::Io {
                    location: this.location(&k),
                    message: format!(
                        "another publisher has been changing {} for over {}s; try again when it finishes",
                        dir.display(),
                        UPDATE_LOCK_WAIT.as_secs()
                    ),
                    source: None,
                }),
                // NFS emulates flock with fcntl, which refuses a read-only descriptor
                // (a directory cannot be opened for writing): go on unlocked there, as
                // on S3 without conditional writes.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBADF | libc::ENOLCK | libc::EOPNOTSUPP)
                    ) =>
                {
                    tracing::warn!(
                        "cannot lock {} ({e}); publishing without the lock: run one publisher at a time",
                        dir.display()
                    );
                    Ok(UpdateLock::default())
                }
                Err(e) => Err(this.io_err(&k, e)),
            }
        })
        .await
        .map_err(|e| TransportError::io(self.location(key), e))?
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        // Walk the deepest directory the prefix names, then filter by the full prefix,
        // matching S3's string-prefix semantics.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path_of(dir_part)?
        };
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let location = self.location(dir_part);
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![start];
            while let Some(d) = stack.pop() {
                let entries = match fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(TransportError::io(d.display().to_string(), e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| TransportError::io(location.clone(), e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // In-flight temporaries (".name.tmp-...") are not objects.
                    if name.starts_with('.') {
                        continue;
                    }
                    let ft = entry
                        .file_type()
                        .map_err(|e| TransportError::io(entry.path().display().to_string(), e))?;
                    if ft.is_dir() {
                        stack.push(entry.path());
                    } else if ft.is_file() {
                        let rel = entry.path();
                        let Ok(rel) = rel.strip_prefix(&root) else {
                            continue;
                        };
                        let key = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/");
                        if key.starts_with(&prefix) {
                            out.push(key);
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| TransportError::io(self.location(""), e))?
    }
}

/// Static web servers derive validators from size and mtime in whole seconds (nginx's
/// ETag is `"<mtime s>-<size>"`, Last-Modified has one-second resolution, and servers
/// without ETags, such as `python3 -m http.server`, have only Last-Modified). A document
/// replaced within the same second, whatever its size, would look unchanged to an
/// `If-Modified-Since` poll, and agents behind such a server would miss a promotion.
///
/// So when the replacement's mtime falls in the old file's second (or before it), its
/// mtime is moved to the start of the next second (spec §11). The comparison uses the
/// file timestamps themselves: the filesystem's clock can lag `SystemTime::now()` (a
/// coarse kernel clock, or a sandbox's own), so deciding from `now()` and sleeping was
/// not enough. The new mtime is at most one second ahead of the wall clock per rewrite.
fn distinct_validators(old: Option<&fs::Metadata>, new: &File) -> io::Result<()> {
    let Some(old) = old else { return Ok(()) };
    let meta = new.metadata()?;
    if meta.mtime() > old.mtime() {
        return Ok(());
    }
    let next = u64::try_from(old.mtime().saturating_add(1)).unwrap_or(0);
    new.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Store;
    use std::os::unix::fs::PermissionsExt;

    /// What nginx would use as the ETag: whole-second mtime and size.
    fn nginx_etag(path: &Path) -> (i64, u64) {
        let m = fs::metadata(path).unwrap();
        (m.mtime(), m.len())
    }

    #[tokio::test]
    async fn same_size_rewrites_get_a_new_whole_second_validator() {
        let d = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(d.path()).unwrap().to_string();
        let reg = FileRegistry::from_url(&url).unwrap();
        let path = d.path().join("demo/channels/prod.json");
        let mut seen = Vec::new();
        for body in ["sequence 1", "sequence 2", "sequence 3"] {
            reg.put("demo/channels/prod.json", body.as_bytes().to_vec())
                .await
                .unwrap();
            assert_eq!(fs::read(&path).unwrap(), body.as_bytes());
            seen.push(nginx_etag(&path));
        }
        // A different size too: servers without ETags have only Last-Modified.
        reg.put("demo/channels/prod.json", b"a longer document".to_vec())
            .await
            .unwrap();
        seen.push(nginx_etag(&path));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        let (mtime, _) = *seen.last().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Each rewrite moves at most one second ahead of the wall clock.
        assert!(u64::try_from(mtime).unwrap() <= now + 4, "{mtime} vs {now}");
    }

    #[tokio::test]
    async fn conditional_writes_refuse_a_changed_or_existing_object() {
        let d = tempfile::tempdir().unwrap();
        let reg = FileRegistry::new(d.path());
        let key = "demo/channels/prod.json";
        let conflict = |r: Result<(), TransportError>| {
            assert!(matches!(r, Err(TransportError::Conflict { .. })), "{r:?}")
        };
        reg.put_if_unchanged(key, b"one".to_vec(), None)
            .await
            .unwrap();
        conflict(reg.put_if_unchanged(key, b"two".to_vec(), None).await);
        let (_, etag) = reg.get_tagged(key, 100).await.unwrap().unwrap();
        let etag = etag.unwrap();
        reg.put_if_unchanged(key, b"two".to_vec(), Some(&etag))
            .await
            .unwrap();
        // Someone else's write came in between: the old ETag no longer matches.
        conflict(
            reg.put_if_unchanged(key, b"three".to_vec(), Some(&etag))
                .await,
        );
        assert_eq!(reg.get(key, 100).await.unwrap().unwrap(), b"two");

        let src = d.path().join("src.bin");
        fs::write(&src, b"artifact").unwrap();
        let art = "demo/releases/1.0.0/a.tar.gz";
        reg.put_file_if_absent(art, &src).await.unwrap();
        fs::write(&src, b"other").unwrap();
        conflict(reg.put_file_if_absent(art, &src).await);
        assert_eq!(reg.get(art, 100).await.unwrap().unwrap(), b"artifact");
    }

    #[tokio::test]
    async fn round_trip_conditional_and_ranges() {
        let d = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(d.path()).unwrap().to_string();
        let reg = FileRegistry::from_url(&url).unwrap();
        reg.put("demo/channels/prod.json", b"hello world".to_vec())
            .await
            .unwrap();
        let meta = fs::metadata(d.path().join("demo/channels/prod.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let dmeta = fs::metadata(d.path().join("demo/channels")).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o777, 0o755);

        let mut req = FetchRequest {
            key: "demo/channels/prod.json".into(),
            limit: 100,
            ..Default::default()
        };
        let Fetched::Body(b) = reg.fetch(&req).await.unwrap() else {
            panic!("expected a body")
        };
        let etag = b.etag.clone().unwrap();
        assert_eq!(b.bytes("x", 100).await.unwrap(), b"hello world");
        req.if_none_match = Some(etag.clone());
        assert!(matches!(
            reg.fetch(&req).await.unwrap(),
            Fetched::NotModified
        ));
        req.if_none_match = None;
        req.offset = 6;
        let Fetched::Body(b) = reg.fetch(&req).await.unwrap() else {
            panic!()
        };
        assert_eq!(b.offset, 6);
        assert_eq!(b.bytes("x", 100).await.unwrap(), b"world");
        req.offset = 0;
        req.limit = 5;
        assert!(matches!(
            reg.fetch(&req).await,
            Err(TransportError::TooLarge { .. })
        ));
        assert!(matches!(
            reg.fetch(&FetchRequest {
                key: "demo/nope".into(),
                limit: 10,
                ..Default::default()
            })
            .await,
            Err(TransportError::NotFound { .. })
        ));
        assert!(reg.get("../etc/passwd", 10).await.is_err());
        assert_eq!(reg.get("demo/missing", 10).await.unwrap(), None);

        let src = d.path().join("src.bin");
        fs::write(&src, b"artifact").unwrap();
        reg.put_file("demo/releases/1.0.0/a.tar.gz", &src)
            .await
            .unwrap();
        assert_eq!(
            reg.list("demo/").await.unwrap(),
            vec!["demo/channels/prod.json", "demo/releases/1.0.0/a.tar.gz"]
        );
        assert_eq!(
            reg.list("demo/releases/").await.unwrap(),
            vec!["demo/releases/1.0.0/a.tar.gz"]
        );
        assert!(reg.list("other/").await.unwrap().is_empty());
    }
}
