//! The HTTP transport and the retry layer against real servers on loopback: nginx,
//! `updraft serve`, and a scripted server that cuts, stalls and lies on cue. Delays are
//! milliseconds so the suite stays fast; nothing asserts on timing.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::fault_server::{Fault, FaultServer};
use support::nginx;
use updraft::transport::http::HttpRegistry;
use updraft::transport::retry::{fetch_document, resumable_stream, Document, RetryPolicy};
use updraft::transport::{
    ByteStream, FetchRequest, Fetched, Transport, TransportError, TransportOptions,
};

fn opts() -> TransportOptions {
    TransportOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(60),
        artifact: None,
    }
}

/// Incompressible-looking, deterministic bytes.
fn data(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn collect(mut s: ByteStream) -> Result<Vec<u8>, TransportError> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn req(key: &str) -> FetchRequest {
    FetchRequest {
        key: key.into(),
        limit: 1 << 30,
        ..Default::default()
    }
}

fn body(f: Fetched) -> updraft::transport::Body {
    match f {
        Fetched::Body(b) => b,
        Fetched::NotModified => panic!("unexpected 304"),
    }
}

/// What the agent relies on from any static web server.
async fn check_static_server(base: &str, dir: &Path) {
    let doc = br#"{"app":"demo","version":"1.0.0"}"#.to_vec();
    let blob = data(300_000);
    std::fs::create_dir_all(dir.join("demo/channels")).unwrap();
    std::fs::write(dir.join("demo/channels/prod.json"), &doc).unwrap();
    std::fs::write(dir.join("demo/blob 1.bin"), &blob).unwrap();
    // Written a minute ago: its Last-Modified is a strong validator (spec §11).
    let set_mtime = |key: &str, t: std::time::SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(dir.join(key))
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    let now = std::time::SystemTime::now();
    set_mtime("demo/channels/prod.json", now - Duration::from_secs(60));
    let r = HttpRegistry::new(&format!("{base}/"), &opts()).unwrap();

    // A Last-Modified not at least a second before the response's Date is weak and
    // not offered as a validator (it could stay the same over a rewrite).
    std::fs::write(dir.join("demo/channels/new.json"), &doc).unwrap();
    set_mtime("demo/channels/new.json", now + Duration::from_secs(3600));
    let b = body(r.fetch(&req("demo/channels/new.json")).await.unwrap());
    assert_eq!(b.last_modified, None);

    // 200 with validators.
    let b = body(r.fetch(&req("demo/channels/prod.json")).await.unwrap());
    let etag = b.etag.clone().expect("ETag");
    let last_modified = b.last_modified.clone().expect("Last-Modified");
    assert_eq!(b.offset, 0);
    assert_eq!(b.len, Some(doc.len() as u64));
    assert_eq!(b.bytes("doc", 1 << 20).await.unwrap(), doc);

    // Conditional GETs.
    let mut cond = req("demo/channels/prod.json");
    cond.if_none_match = Some(etag.clone());
    assert!(matches!(
        r.fetch(&cond).await.unwrap(),
        Fetched::NotModified
    ));
    let mut cond = req("demo/channels/prod.json");
    cond.if_modified_since = Some(last_modified);
    assert!(matches!(
        r.fetch(&cond).await.unwrap(),
        Fetched::NotModified
    ));
    let mut stale = req("demo/channels/prod.json");
    stale.if_none_match = Some("\"something-else\"".into());
    assert!(matches!(r.fetch(&stale).await.unwrap(), Fetched::Body(_)));
    match fetch_document(&r, &cond, &policy(2)).await.unwrap() {
        Document::NotModified => {}
        Document::Fresh { .. } => panic!("expected NotModified"),
    }

    // Range: a resumed download starts where asked.
    let mut ranged = req("demo/blob 1.bin");
    ranged.offset = 123_456;
    let b = body(r.fetch(&ranged).await.unwrap());
    assert_eq!(b.offset, 123_456);
    assert_eq!(b.len, Some((blob.len() - 123_456) as u64));
    assert_eq!(b.bytes("blob", 1 << 30).await.unwrap(), &blob[123_456..]);

    // 404 and the size limit.
    let err = r
        .fetch(&req("demo/channels/nope.json"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::NotFound { .. }), "{err}");
    let mut small = req("demo/blob 1.bin");
    small.limit = 1000;
    let err = r.fetch(&small).await.err().unwrap();
    assert!(matches!(err, TransportError::TooLarge { .. }), "{err}");

    // The whole object through the resuming stream.
    let t: Arc<dyn Transport> = Arc::new(HttpRegistry::new(base, &opts()).unwrap());
    let got = collect(resumable_stream(
        t,
        "demo/blob 1.bin".into(),
        1 << 30,
        Some(blob.len() as u64),
        policy(3),
    ))
    .await
    .unwrap();
    assert_eq!(sha(&got), sha(&blob));
}

#[tokio::test]
async fn nginx_speaks_what_the_transport_needs() {
    let dir = tempfile::tempdir().unwrap();
    let server = nginx::Nginx::start(dir.path());
    check_static_server(&server.base, dir.path()).await;
}

async fn start_serve(dir: &Path) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = updraft::registry::serve::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(updraft::registry::serve::serve(dir.to_path_buf(), listener));
    (base, task)
}

/// Status line and headers of a raw request, bypassing client-side path normalisation.
async fn raw(base: &str, request_line: &str, extra: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{request_line}\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updraft_serve_speaks_what_the_transport_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("registry");
    std::fs::create_dir_all(&dir).unwrap();
    let (base, task) = start_serve(&dir).await;
    check_static_server(&base, &dir).await;

    // JSON is labelled as such; HEAD has the length but no body.
    let (st, text) = raw(&base, "HEAD /demo/channels/prod.json HTTP/1.1", "").await;
    assert_eq!(st, 200, "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{text}");
    assert!(lower.contains("content-length: 32"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "HEAD sent a body: {text}");

    // Bounded and unsatisfiable ranges.
    let (st, text) = raw(
        &base,
        "GET /demo/channels/prod.json HTTP/1.1",
        "Range: bytes=2-4\r\n",
    )
    .await;
    assert_eq!(st, 206, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-range: bytes 2-4/32"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\napp"), "{text}");
    let (st, text) = raw(
        &base,
        "GET /demo/channels/prod.json HTTP/1.1",
        "Range: bytes=32-\r\n",
    )
    .await;
    assert_eq!(st, 416, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-range: bytes */32"),
        "{text}"
    );

    // Nothing outside the directory: not by `..`, encoded or not, nor through a symlink.
    std::fs::write(tmp.path().join("secret"), b"top secret").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), dir.join("link")).unwrap();
    std::os::unix::fs::symlink("channels/prod.json", dir.join("demo/inside")).unwrap();
    for path in [
        "/../secret",
        "/%2e%2e/secret",
        "/demo/..%2f..%2fsecret",
        "/demo%2f..%2f..%2fsecret",
    ] {
        let (st, text) = raw(&base, &format!("GET {path} HTTP/1.1"), "").await;
        assert!(st == 400 || st == 404, "{path}: {text}");
        assert!(!text.contains("top secret"), "{path}: {text}");
    }
    let (st, text) = raw(&base, "GET /link HTTP/1.1", "").await;
    assert_eq!(st, 404, "{text}");
    assert!(!text.contains("top secret"));
    let (st, _) = raw(&base, "GET /demo/inside HTTP/1.1", "").await;
    assert_eq!(st, 200, "a symlink inside the directory is fine");
    let (st, _) = raw(&base, "GET /demo HTTP/1.1", "").await;
    assert_eq!(st, 404, "directories are not listed");
    let (st, text) = raw(&base, "DELETE /demo/channels/prod.json HTTP/1.1", "").await;
    assert_eq!(st, 405, "{text}");
    task.abort();
}

#[tokio::test]
async fn fetch_document_retries_a_503_then_succeeds() {
    let doc = data(5000);
    let server = FaultServer::start(
        doc.clone(),
        vec![
            Fault::Status(503),
            Fault::Status(500),
            Fault::Status(429),
            Fault::CloseAtOnce,
        ],
    );
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    match fetch_document(&r, &req("x/doc.json"), &policy(5))
        .await
        .unwrap()
    {
        Document::Fresh { bytes, etag, .. } => {
            assert_eq!(bytes, doc);
            assert_eq!(etag.as_deref(), Some("\"v1\""));
        }
        Document::NotModified => panic!("304?"),
    }
    assert_eq!(server.seen().len(), 5);
}

/// A server that says when to come back is believed (up to the policy's cap), for
/// documents and for artifact downloads alike. The backoff here is milliseconds, so
/// only the Retry-After can account for a second between the requests.
#[tokio::test]
async fn retry_after_is_honoured_and_capped() {
    let doc = data(5000);
    let server = FaultServer::start(
        doc.clone(),
        vec![Fault::RetryAfter(503, 1), Fault::RetryAfter(429, 3600)],
    );
    let r = Arc::new(HttpRegistry::new(&server.base, &opts()).unwrap());
    let mut p = policy(5);
    p.max_retry_after = Duration::from_millis(1500);
    match fetch_document(r.as_ref(), &req("x/doc.json"), &p)
        .await
        .unwrap()
    {
        Document::Fresh { bytes, .. } => assert_eq!(bytes, doc),
        Document::NotModified => panic!("304?"),
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    let gap = |i: usize| seen[i + 1].at - seen[i].at;
    assert!(gap(0) >= Duration::from_secs(1), "{:?}", gap(0));
    // Asked for an hour, waited the cap.
    assert!(gap(1) >= Duration::from_millis(1500), "{:?}", gap(1));

    let server = FaultServer::start(
        doc.clone(),
        vec![Fault::ResetAfter(1000), Fault::RetryAfter(503, 1)],
    );
    let r = Arc::new(HttpRegistry::new(&server.base, &opts()).unwrap());
    let got = collect(resumable_stream(
        r,
        "x/a.tar.gz".into(),
        1 << 20,
        Some(doc.len() as u64),
        policy(5),
    ))
    .await
    .unwrap();
    assert_eq!(sha(&got), sha(&doc));
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].at - seen[1].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn fetch_document_gives_up_after_the_bounded_attempts() {
    let server = FaultServer::start(data(10), vec![Fault::Status(503); 10]);
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    let err = fetch_document(&r, &req("x/doc.json"), &policy(3))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, TransportError::Status { status: 503, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("x/doc.json")
            && msg.contains("503")
            && msg.contains("injected failure 503 try again later"),
        "{msg}"
    );
    assert_eq!(server.seen().len(), 3);

    // Permanent answers are not retried.
    let server = FaultServer::start(data(10), vec![Fault::Status(403); 10]);
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    let err = fetch_document(&r, &req("x/doc.json"), &policy(3))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, TransportError::Denied { status: 403, .. }),
        "{err}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn fetch_document_never_returns_a_truncated_document() {
    let doc = data(50_000);
    // Cut every time: an error, never a short success.
    let server = FaultServer::start(
        doc.clone(),
        vec![
            Fault::ShortClose(1000),
            Fault::ResetAfter(2000),
            Fault::ShortClose(0),
        ],
    );
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    let err = fetch_document(&r, &req("x/doc.json"), &policy(3))
        .await
        .err()
        .expect("a truncated body must not be a success");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(server.seen().len(), 3);

    // Cut once: the retry gets the whole document.
    let server = FaultServer::start(doc.clone(), vec![Fault::ShortClose(1000)]);
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    match fetch_document(&r, &req("x/doc.json"), &policy(3))
        .await
        .unwrap()
    {
        Document::Fresh { bytes, .. } => assert_eq!(bytes, doc),
        Document::NotModified => panic!("304?"),
    }

    // A single fetch of a cut body ends in an error, not a clean end of stream.
    let server = FaultServer::start(doc.clone(), vec![Fault::ShortClose(1000)]);
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    let b = body(r.fetch(&req("x/doc.json")).await.unwrap());
    let err = b.bytes("doc", 1 << 20).await.err().unwrap();
    assert!(matches!(err, TransportError::Network { .. }), "{err}");
}

fn artifact_stream(
    server: &FaultServer,
    opts: TransportOptions,
    expected: Option<u64>,
    limit: u64,
    attempts: u32,
) -> ByteStream {
    let t: Arc<dyn Transport> = Arc::new(HttpRegistry::new(&server.base, &opts).unwrap());
    resumable_stream(
        t,
        "app/releases/1.0.0.tar.gz".into(),
        limit,
        expected,
        policy(attempts),
    )
}

#[tokio::test]
async fn resumable_stream_resumes_with_range_after_two_cuts() {
    let blob = data(1_000_000);
    let server = FaultServer::start(
        blob.clone(),
        vec![Fault::ShortClose(200_000), Fault::ResetAfter(300_000)],
    );
    let got = collect(artifact_stream(
        &server,
        opts(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await
    .unwrap();
    assert_eq!(sha(&got), sha(&blob));
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].range, None);
    for s in &seen[1..] {
        let r = s.range.as_deref().expect("resumed with Range");
        assert!(r.starts_with("bytes=") && r != "bytes=0-", "{r}");
    }
    assert_eq!(seen[0].path, "/app/releases/1.0.0.tar.gz");
}

#[tokio::test]
async fn resumable_stream_is_exact_when_the_server_ignores_range() {
    let blob = data(500_000);
    let server = FaultServer::start(
        blob.clone(),
        vec![
            Fault::ShortClose(123_457),
            Fault::IgnoreRange,
            Fault::IgnoreRange,
        ],
    );
    // Also without a known length: the skip logic alone keeps it exact.
    let got = collect(artifact_stream(&server, opts(), None, 1 << 30, 3))
        .await
        .unwrap();
    assert_eq!(sha(&got), sha(&blob));
    assert!(server.seen()[1].range.is_some());

    // A server that ignores Range and keeps cutting before the resume point makes no
    // progress: the budget runs out instead of looping forever.
    let mut script = vec![Fault::ShortClose(100_000)];
    script.extend(vec![Fault::IgnoreRangeShort(50_000); 10]);
    let server = FaultServer::start(blob.clone(), script);
    let err = collect(artifact_stream(
        &server,
        opts(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await
    .err()
    .unwrap();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        server.seen().len(),
        3,
        "the cut try, then two retries without progress"
    );

    let server = FaultServer::start(
        blob.clone(),
        vec![Fault::ResetAfter(64_000), Fault::IgnoreRange],
    );
    let got = collect(artifact_stream(
        &server,
        opts(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await
    .unwrap();
    assert_eq!(sha(&got), sha(&blob));
}

#[tokio::test]
async fn a_stall_beyond_the_read_timeout_is_retried() {
    let blob = data(200_000);
    let server = FaultServer::start(
        blob.clone(),
        vec![Fault::Stall(50_000, Duration::from_secs(30))],
    );
    let quick = TransportOptions {
        read_timeout: Duration::from_millis(300),
        ..opts()
    };
    let got = collect(artifact_stream(
        &server,
        quick.clone(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await
    .unwrap();
    assert_eq!(sha(&got), sha(&blob));

    // With no retries left it is a timeout, named as such.
    let server = FaultServer::start(blob.clone(), vec![Fault::Stall(0, Duration::from_secs(30))]);
    let r = HttpRegistry::new(&server.base, &quick).unwrap();
    let err = fetch_document(&r, &req("x/doc.json"), &policy(1))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn more_bytes_than_announced_or_allowed_is_an_error() {
    let blob = data(100_000);
    // Content-Length disagrees with the release document: refused before any byte.
    let server = FaultServer::start(blob.clone(), vec![]);
    let err = collect(artifact_stream(&server, opts(), Some(60_000), 1 << 30, 3))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("60000"), "{err}");

    // No Content-Length: caught while streaming, after at most the announced bytes.
    let server = FaultServer::start(blob.clone(), vec![Fault::NoLength]);
    let mut s = artifact_stream(&server, opts(), Some(60_000), 1 << 30, 3);
    let mut n = 0;
    let err = loop {
        match s.next().await {
            Some(Ok(c)) => n += c.len(),
            Some(Err(e)) => break e,
            None => panic!("a too-long body ended cleanly"),
        }
    };
    assert!(n <= 60_000, "{n}");
    assert!(
        err.to_string().contains("more data than the 60000 bytes"),
        "{err}"
    );
    assert!(s.next().await.is_none(), "nothing after the error");

    // The size limit, up front and while streaming.
    let server = FaultServer::start(blob.clone(), vec![Fault::Serve, Fault::NoLength]);
    let err = collect(artifact_stream(&server, opts(), None, 50_000, 3))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, TransportError::TooLarge { limit: 50_000, .. }),
        "{err}"
    );
    let err = collect(artifact_stream(&server, opts(), None, 50_000, 3))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, TransportError::TooLarge { limit: 50_000, .. }),
        "{err}"
    );

    // Ends short every time: retried, then an error, never a clean end.
    let server = FaultServer::start(blob.clone(), vec![Fault::ShortClose(10_000); 3]);
    let err = collect(artifact_stream(
        &server,
        opts(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await;
    assert!(
        err.is_ok(),
        "progress on every attempt restarts the budget: {:?}",
        err.err()
    );

    let server = FaultServer::start(blob.clone(), vec![Fault::ShortClose(0); 10]);
    let err = collect(artifact_stream(
        &server,
        opts(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await
    .err()
    .unwrap();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn a_partial_response_at_the_wrong_offset_is_refused() {
    let blob = data(100_000);
    let server = FaultServer::start(blob.clone(), vec![Fault::WrongRange]);
    let r = HttpRegistry::new(&server.base, &opts()).unwrap();
    let mut ranged = req("x/a.tar.gz");
    ranged.offset = 500;
    let err = r.fetch(&ranged).await.err().unwrap();
    assert!(
        err.to_string().contains("asked for bytes from 500"),
        "{err}"
    );
}

/// A loopback port that refuses connections for as long as the returned socket lives:
/// bound (so no other test can take it) but never listening.
fn refusing_port() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we own; `addr` outlives the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let p = (&raw mut addr).cast::<libc::sockaddr>();
        assert_eq!(
            libc::bind(fd, p, len),
            0,
            "bind: {}",
            std::io::Error::last_os_error()
        );
        let mut got = len;
        assert_eq!(libc::getsockname(fd, p, &mut got), 0);
        (owned, u16::from_be(addr.sin_port))
    }
}

#[tokio::test]
async fn network_errors_name_their_cause() {
    let (_socket, port) = refusing_port();
    let r = HttpRegistry::new(&format!("http://127.0.0.1:{port}"), &opts()).unwrap();
    let err = fetch_document(&r, &req("x/doc.json"), &policy(2))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::Network { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert_eq!(msg.matches("127.0.0.1").count(), 1, "URL said once: {msg}");
    // The reqwest error is kept as the source, not only quoted.
    let source = std::error::Error::source(&err).expect("a source");
    assert!(
        source.downcast_ref::<reqwest::Error>().is_some(),
        "{source:?}"
    );
}

#[test]
fn deploy_from_a_url_resumes_a_cut_download() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    // Incompressible padding so the tarball is big enough to cut in the middle.
    std::fs::write(tree.join("padding.bin"), data(400_000)).unwrap();
    let tarball = tmp.path().join("app-1.0.0.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&tarball).unwrap();
    let server = FaultServer::start(bytes.clone(), vec![Fault::ShortClose(bytes.len() / 2)]);
    let root = tmp.path().join("root");
    let out = std::process::Command::new(support::bin())
        .arg("--root")
        .arg(&root)
        .args(["deploy", "--version", "1.0.0", "--artifact-url"])
        .arg(server.url("dl/app-1.0.0.tar.gz"))
        .arg("--sha256")
        .arg(sha(&bytes))
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("UPDRAFT_ROOT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let current = std::fs::read_link(root.join("releases/current")).unwrap();
    assert_eq!(current.to_str(), Some("1.0.0"));
    assert_eq!(
        std::fs::read(root.join("releases/1.0.0/bin/hello")).unwrap(),
        b"#!/bin/sh\necho hello\n"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={}-", bytes.len() / 2).as_str())
    );
}

#[tokio::test]
async fn an_object_replaced_mid_download_is_not_spliced() {
    let blob = data(100_000);
    let server = FaultServer::start(
        blob.clone(),
        vec![Fault::ShortClose(30_000), Fault::Replaced],
    );
    let err = collect(artifact_stream(
        &server,
        opts(),
        Some(blob.len() as u64),
        1 << 30,
        3,
    ))
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("changed while it was being downloaded"),
        "{err}"
    );
    assert_eq!(server.seen().len(), 2, "not retried");
}
