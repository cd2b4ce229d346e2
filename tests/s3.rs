//! s3:// registries against a real S3-compatible server (s3s-fs on loopback), plus a
//! few canned answers from a raw loopback socket for faults s3s-fs never produces.

mod support;

use std::io::Write;

use futures_util::StreamExt;
use s3support::S3Server;
use support::app::{self, ok};
use support::s3 as s3support;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use updraft::transport::s3::S3Registry;
use updraft::transport::{
    open, open_store, FetchRequest, Fetched, Store, Transport, TransportError,
};

const MIB: usize = 1024 * 1024;

fn req(key: &str) -> FetchRequest {
    FetchRequest {
        key: key.into(),
        limit: 64 * MIB as u64,
        ..FetchRequest::default()
    }
}

async fn fetch_all(t: &dyn Transport, r: &FetchRequest) -> (Vec<u8>, Option<String>, u64) {
    match t.fetch(r).await.unwrap() {
        Fetched::Body(b) => {
            let etag = b.etag.clone();
            let offset = b.offset;
            (
                b.bytes(&t.location(&r.key), r.limit).await.unwrap(),
                etag,
                offset,
            )
        }
        Fetched::NotModified => panic!("unexpected 304 for {}", r.key),
    }
}

/// Deterministic, incompressible-looking bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn put_get_list_round_trip_through_open_store_and_open() {
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let url = "s3://releases/registry";
    let store = open_store(url, &server.options()).unwrap();

    store
        .put("demo/channels/prod.json", b"{\"v\":1}".to_vec())
        .await
        .unwrap();
    store
        .put("demo/1.0.0+build.1/demo.tar.gz", vec![7u8; 1000])
        .await
        .unwrap();
    store
        .put("other/channels/prod.json", b"{}".to_vec())
        .await
        .unwrap();

    assert_eq!(
        store.get("demo/channels/prod.json", 1024).await.unwrap(),
        Some(b"{\"v\":1}".to_vec())
    );
    assert_eq!(
        store.get("demo/channels/none.json", 1024).await.unwrap(),
        None
    );
    assert_eq!(
        store.list("").await.unwrap(),
        vec![
            "demo/1.0.0+build.1/demo.tar.gz",
            "demo/channels/prod.json",
            "other/channels/prod.json"
        ]
    );
    assert_eq!(
        store.list("demo/").await.unwrap(),
        vec!["demo/1.0.0+build.1/demo.tar.gz", "demo/channels/prod.json"]
    );
    assert!(store.list("nothing/").await.unwrap().is_empty());

    // Overwrite is atomic per object: a reader sees the old or the new document.
    store
        .put("demo/channels/prod.json", b"{\"v\":2}".to_vec())
        .await
        .unwrap();

    // Agents read through `open` with the same addressing.
    let reader = open(url, &server.options()).unwrap();
    let (bytes, etag, offset) = fetch_all(reader.as_ref(), &req("demo/channels/prod.json")).await;
    assert_eq!(bytes, b"{\"v\":2}");
    assert!(etag.is_some(), "S3 always sends an ETag");
    assert_eq!(offset, 0);
    assert_eq!(
        reader.location("demo/channels/prod.json"),
        "s3://releases/registry/demo/channels/prod.json"
    );
    let missing = reader.fetch(&req("demo/channels/none.json")).await;
    assert!(
        matches!(missing, Err(TransportError::NotFound { .. })),
        "{:?}",
        missing.err()
    );

    // The prefix isolates registries sharing a bucket.
    let sibling = open_store("s3://releases/elsewhere", &server.options()).unwrap();
    assert!(sibling.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn listing_follows_continuation_tokens_past_one_page() {
    let server = S3Server::start();
    server.create_bucket("many").await;
    let store = S3Registry::new("s3://many/p", &server.options()).unwrap();
    let keys: Vec<String> = (0..1003).map(|i| format!("app/{i:05}")).collect();
    futures_util::stream::iter(keys.iter())
        .map(|k| store.put(k, k.as_bytes().to_vec()))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .unwrap();
    assert_eq!(store.list("app/").await.unwrap(), keys);
}

#[tokio::test]
async fn large_files_go_up_in_parts_and_come_back_identical() {
    let server = S3Server::start();
    server.create_bucket("big").await;
    // s3s-fs, like AWS, refuses parts under 5 MiB (EntityTooSmall) except the last.
    let part = 5 * MIB;
    let store = S3Registry::new("s3://big/r", &server.options())
        .unwrap()
        .with_part_size(part as u64);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.tar.gz");
    let data = pseudo_random(2 * part + 12_345, 42);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();

    store.put_file("app/1.0.0/app.tar.gz", &path).await.unwrap();

    let (back, etag, _) = fetch_all(&store, &req("app/1.0.0/app.tar.gz")).await;
    assert_eq!(back.len(), data.len());
    assert!(back == data, "multipart object differs from the file");
    // A multipart ETag is "<md5 of part md5s>-<parts>" on AWS; s3s-fs follows suit.
    eprintln!("multipart ETag: {etag:?}");

    // Resuming inside the last part.
    let mut r = req("app/1.0.0/app.tar.gz");
    r.offset = (2 * part + 10) as u64;
    let (tail, _, offset) = fetch_all(&store, &r).await;
    assert_eq!(offset, r.offset);
    assert_eq!(tail, &data[2 * part + 10..]);

    // A small file takes the single PutObject path.
    let small = dir.path().join("small");
    std::fs::write(&small, b"tiny").unwrap();
    store.put_file("app/small", &small).await.unwrap();
    assert_eq!(
        store.get("app/small", 100).await.unwrap(),
        Some(b"tiny".to_vec())
    );
    assert_eq!(
        store.list("app/").await.unwrap(),
        vec!["app/1.0.0/app.tar.gz", "app/small"]
    );

    // Create-only uploads (what publishers use for artifacts), both paths: a new key
    // is written, an existing one is refused as a conflict and left as it was.
    store
        .put_file_if_absent("app/1.1.0/app.tar.gz", &path)
        .await
        .unwrap();
    for (key, file) in [("app/1.0.0/app.tar.gz", &small), ("app/small", &path)] {
        let err = store.put_file_if_absent(key, file).await.unwrap_err();
        assert!(
            matches!(err, TransportError::Conflict { .. }),
            "{key}: {err}"
        );
    }
    assert_eq!(
        store.get("app/small", 100).await.unwrap(),
        Some(b"tiny".to_vec())
    );
    let (back, _, _) = fetch_all(&store, &req("app/1.0.0/app.tar.gz")).await;
    assert!(back == data, "a refused upload changed the object");
}

#[tokio::test]
async fn ranged_conditional_and_limited_fetches() {
    let server = S3Server::start();
    server.create_bucket("reads").await;
    let store = S3Registry::new("s3://reads", &server.options()).unwrap();
    store.put("k", b"hello world".to_vec()).await.unwrap();

    let mut r = req("k");
    r.offset = 6;
    let Fetched::Body(body) = store.fetch(&r).await.unwrap() else {
        panic!("304 to an unconditional GET")
    };
    assert_eq!(body.offset, 6, "the server honoured Range with 206");
    assert_eq!(body.len, Some(5));
    assert_eq!(body.bytes("k", 100).await.unwrap(), b"world");

    let (_, etag, _) = fetch_all(&store, &req("k")).await;
    let etag = etag.unwrap();
    let mut r = req("k");
    r.if_none_match = Some(etag.clone());
    match store.fetch(&r).await.unwrap() {
        Fetched::NotModified => {}
        // s3s-fs ignores If-None-Match; the agent treats an equal ETag as unchanged.
        Fetched::Body(b) => assert_eq!(b.etag.as_deref(), Some(etag.as_str())),
    }
    store.put("k", b"hello again".to_vec()).await.unwrap();
    let Fetched::Body(b) = store.fetch(&r).await.unwrap() else {
        panic!("304 after the object changed")
    };
    assert_ne!(b.etag.as_deref(), Some(etag.as_str()));

    let mut r = req("k");
    r.limit = 5;
    let e = store.fetch(&r).await.err().unwrap();
    assert!(
        matches!(e, TransportError::TooLarge { limit: 5, .. }),
        "{e}"
    );
    assert!(matches!(
        store.get("k", 5).await,
        Err(TransportError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn wrong_secret_is_denied_with_a_credentials_hint_and_writes_nothing() {
    let server = S3Server::start();
    server.create_bucket("guarded").await;
    let url = "s3://guarded/reg";
    let bad = S3Registry::new(
        url,
        &server.options_with(Some((s3support::ACCESS_KEY, "not-the-secret"))),
    )
    .unwrap()
    .with_part_size(5 * MIB as u64);

    let e = bad
        .put("app/channels/prod.json", b"{}".to_vec())
        .await
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(
        matches!(e, TransportError::Denied { status: 403, .. }),
        "{msg}"
    );
    assert!(msg.contains("SignatureDoesNotMatch"), "{msg}");
    assert!(msg.contains("s3_secret_access_key"), "{msg}");
    assert!(msg.contains(s3support::ACCESS_KEY), "{msg}");
    assert!(!e.is_retryable());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    std::fs::write(&path, pseudo_random(6 * MIB, 7)).unwrap();
    let e = bad.put_file("app/big", &path).await.err().unwrap();
    assert!(matches!(e, TransportError::Denied { .. }), "{e}");
    let e = bad
        .fetch(&req("app/channels/prod.json"))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, TransportError::Denied { .. }), "{e}");
    let e = bad.list("").await.err().unwrap();
    assert!(matches!(e, TransportError::Denied { .. }), "{e}");

    let good = S3Registry::new(url, &server.options()).unwrap();
    assert!(
        good.list("").await.unwrap().is_empty(),
        "nothing was written"
    );
    assert_eq!(good.get("app/channels/prod.json", 100).await.unwrap(), None);
}

#[tokio::test]
async fn anonymous_reads_of_a_private_bucket_are_denied() {
    let server = S3Server::start();
    server.create_bucket("private").await;
    S3Registry::new("s3://private", &server.options())
        .unwrap()
        .put("app/channels/prod.json", b"{}".to_vec())
        .await
        .unwrap();
    // No credentials in the config; the environment decides (normally none in tests).
    let anon = open("s3://private", &server.options_with(None)).unwrap();
    let e = anon
        .fetch(&req("app/channels/prod.json"))
        .await
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(matches!(e, TransportError::Denied { .. }), "{msg}");
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        assert!(msg.contains("no S3 credentials"), "{msg}");
        assert!(msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
    }
}

#[tokio::test]
async fn a_missing_bucket_is_named_in_the_error() {
    let server = S3Server::start();
    let store = S3Registry::new("s3://no-such-bucket/reg", &server.options()).unwrap();
    let e = store.list("").await.err().unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("bucket \"no-such-bucket\" does not exist"),
        "{msg}"
    );
    assert!(msg.contains(&server.endpoint), "{msg}");
    assert!(!e.is_retryable());
}

/// A loopback socket that answers every request with `response`, for faults a healthy
/// server never produces.
async fn canned(status: &str, headers: &str, body: &str) -> String {
    let response = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    canned_raw(response.into_bytes()).await
}

async fn canned_raw(response: Vec<u8>) -> String {
    let response: &'static [u8] = response.leak();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = sock.write_all(response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn registry_at(endpoint: &str) -> S3Registry {
    let server_less = updraft::transport::TransportOptions {
        s3: updraft::transport::S3Options {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    S3Registry::new("s3://bkt/p", &server_less).unwrap()
}

#[tokio::test]
async fn truncated_bodies_are_errors_not_short_objects() {
    let ep = canned_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nETag: \"x\"\r\nConnection: close\r\n\r\nonly forty bytes of the promised hundred".to_vec()).await;
    let reg = registry_at(&ep);
    let Fetched::Body(body) = reg.fetch(&req("k")).await.unwrap() else {
        panic!("304?")
    };
    let e = body.bytes("k", 1000).await.err().unwrap();
    assert!(e.is_retryable(), "a cut transfer is worth resuming: {e}");
}

/// A listing the server answered 200 but that is no ListBucketResult (a proxy's page,
/// an error document) must fail, not read as "no objects": publish and prune decide
/// on listings.
#[tokio::test]
async fn a_listing_that_is_not_a_list_result_is_an_error_not_an_empty_list() {
    for (body, says) in [
        (
            "<html><body>Service Unavailable</body></html>",
            "got <html>",
        ),
        ("<Error><Code>InternalError</Code></Error>", "got <Error>"),
        (
            "<ListBucketResult><Contents><Key>p/a</Contents></ListBucketResult>",
            "ill-formed",
        ),
    ] {
        let ep = canned("200 OK", "Content-Type: application/xml\r\n", body).await;
        let e = registry_at(&ep).list("").await.err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("unreadable ListObjectsV2 answer") && msg.contains(says),
            "{body}: {msg}"
        );
        assert!(msg.contains("s3://bkt/p/"), "{msg}");
    }
}

#[tokio::test]
async fn slow_down_is_retryable_and_wrong_region_says_which() {
    let ep = canned(
        "503 Slow Down",
        "",
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    )
    .await;
    let e = registry_at(&ep).fetch(&req("k")).await.err().unwrap();
    assert!(
        matches!(e, TransportError::Status { status: 503, .. }) && e.is_retryable(),
        "{e}"
    );
    assert!(e.to_string().contains("SlowDown"), "{e}");

    let ep = canned("400 Bad Request", "", "<Error><Code>AuthorizationQueryParametersError</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-north-1'</Message><Region>eu-north-1</Region></Error>").await;
    let e = registry_at(&ep).fetch(&req("k")).await.err().unwrap();
    assert!(
        matches!(&e, TransportError::WrongRegion { region, .. } if region == "eu-north-1"),
        "{e}"
    );
    assert!(e.to_string().contains("AWS_REGION=eu-north-1"), "{e}");

    let ep = canned(
        "301 Moved Permanently",
        "x-amz-bucket-region: ap-southeast-2\r\n",
        "",
    )
    .await;
    let e = registry_at(&ep).fetch(&req("k")).await.err().unwrap();
    assert!(
        matches!(&e, TransportError::WrongRegion { region, .. } if region == "ap-southeast-2"),
        "{e}"
    );
}

#[tokio::test]
async fn a_failed_multipart_upload_is_aborted_and_leaves_no_object() {
    let server = S3Server::start();
    server.create_bucket("abort").await;
    // 1 MiB parts are below the 5 MiB minimum: the parts go up, completion is refused.
    let store = S3Registry::new("s3://abort/r", &server.options())
        .unwrap()
        .with_part_size(MIB as u64);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, pseudo_random(3 * MIB, 3)).unwrap();
    let e = store.put_file("app/f", &path).await.err().unwrap();
    assert!(
        matches!(e, TransportError::Status { status: 400, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("EntityTooSmall"), "{e}");
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(store.get("app/f", 10 * MIB as u64).await.unwrap(), None);
}

#[tokio::test]
async fn an_upload_that_fails_midway_is_aborted_on_the_server() {
    let server = S3Server::start();
    server.create_bucket("midway").await;
    let store = S3Registry::new("s3://midway/r", &server.options())
        .unwrap()
        .with_part_size(1);
    // A directory has a size but cannot be read: the upload is created, the first part
    // read fails, and the upload must be aborted.
    let dir = tempfile::tempdir().unwrap();
    let unreadable = dir.path().join("not-a-file");
    std::fs::create_dir(&unreadable).unwrap();
    std::fs::write(unreadable.join("padding"), b"x").unwrap();
    let e = store.put_file("app/f", &unreadable).await.err().unwrap();
    assert!(matches!(e, TransportError::Io { .. }), "{e}");
    assert!(e.to_string().contains("not-a-file"), "{e}");
    // s3s-fs keeps an open upload as `.upload-<id>.json` (and metadata, parts) in its
    // data dir; an abort removes them.
    let left: Vec<String> = walk(&server.data_dir())
        .into_iter()
        .filter(|p| p.contains("upload-") || p.contains("upload_id-"))
        .collect();
    assert!(left.is_empty(), "upload not aborted: {left:?}");
    assert!(store.list("").await.unwrap().is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// The real binary: `updraft publish/promote/registry verify` writing to s3:// with
// credentials from the environment, and an agent (`updraft update`) reading s3://.
// ---------------------------------------------------------------------------------

/// The binary with no S3 settings from this machine: no AWS_* variables, and a
/// credentials file that does not exist.
fn hermetic_updraft() -> std::process::Command {
    let mut cmd = std::process::Command::new(app::bin());
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "UPDRAFT_CONFIG",
        "UPDRAFT_ROOT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/updraft-test/credentials",
    )
    .env("AWS_CONFIG_FILE", "/nonexistent/updraft-test/config");
    cmd
}

/// The binary with only this server's S3 settings in its environment.
fn updraft(server: &S3Server, args: &[&str], secret: Option<&str>) -> std::process::Output {
    let mut cmd = hermetic_updraft();
    cmd.envs(server.env());
    if let Some(secret) = secret {
        cmd.env("AWS_SECRET_ACCESS_KEY", secret);
    }
    cmd.args(args).output().unwrap()
}

/// A signing key pair made by `updraft keygen`, and the public key's base64 line.
fn keygen(
    server: &S3Server,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let (sec, public) = (dir.join("ci.key"), dir.join("ci.pub"));
    ok(&updraft(
        server,
        &[
            "keygen",
            "--secret-key",
            sec.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ],
        None,
    ));
    let line = std::fs::read_to_string(&public).unwrap();
    let pubkey = line.lines().nth(1).unwrap().trim().to_string();
    (sec, public, pubkey)
}

fn agent_config(server: &S3Server, pubkey: &str, secret: &str) -> String {
    format!(
        r#"app = "demo"
registry = "s3://releases/registry"
channel = "prod"
public_keys = ["{pubkey}"]
machine_id = "s3-test-machine"
s3_endpoint = "{endpoint}"
s3_region = "{region}"
s3_access_key_id = "{key}"
s3_secret_access_key = "{secret}"
"#,
        endpoint = server.endpoint,
        region = s3support::REGION,
        key = s3support::ACCESS_KEY,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_promote_verify_and_agent_update_over_s3() {
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let tmp = tempfile::tempdir().unwrap();
    let (sec, public, pubkey) = keygen(&server, tmp.path());
    let (sec_s, pub_s) = (sec.to_str().unwrap(), public.to_str().unwrap());
    let reg = "s3://releases/registry";
    let publish = |version: &str, channel: Option<&str>, secret: Option<&str>| {
        let tarball = app::release_tarball(tmp.path(), version, "");
        let mut args = vec![
            "publish",
            "--registry",
            reg,
            "--app",
            "demo",
            "--version",
            version,
            "--artifact",
            tarball.to_str().unwrap(),
            "--secret-key",
            sec_s,
        ];
        if let Some(c) = channel {
            args.extend(["--channel", c]);
        }
        updraft(&server, &args, secret)
    };

    ok(&publish("1.0.0", Some("prod"), None));
    ok(&updraft(
        &server,
        &[
            "registry",
            "verify",
            "--registry",
            reg,
            "--app",
            "demo",
            "--public-key",
            pub_s,
        ],
        None,
    ));
    let store = S3Registry::new(reg, &server.options()).unwrap();
    let keys = store.list("demo/").await.unwrap();
    for want in [
        "demo/channels/prod.json",
        "demo/channels/prod.json.minisig",
        "demo/releases/1.0.0/release.json",
        "demo/releases/1.0.0/release.json.minisig",
    ] {
        assert!(
            keys.iter().any(|k| k == want),
            "{want} missing from {keys:?}"
        );
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with("demo/releases/1.0.0/") && k.ends_with(".tar.gz")),
        "{keys:?}"
    );

    // A wrong secret: refused with a hint, nothing of 1.1.0 written.
    let out = publish("1.1.0", Some("prod"), Some("not-the-secret"));
    assert!(!out.status.success());
    let err = app::stderr(&out);
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(store.list("demo/releases/1.1.0/").await.unwrap().is_empty());

    // The agent reads s3:// with keys from its config.
    let agent = app::App::new(&agent_config(&server, &pubkey, s3support::SECRET_KEY));
    ok(&agent.run(&["update"]));
    assert_eq!(agent.current().as_deref(), Some("1.0.0"));
    assert_eq!(agent.health_body().as_deref(), Some("ok 1.0.0"));

    ok(&publish("1.1.0", None, None));
    ok(&updraft(
        &server,
        &[
            "promote",
            "--registry",
            reg,
            "--app",
            "demo",
            "--version",
            "1.1.0",
            "--channel",
            "prod",
            "--secret-key",
            sec_s,
        ],
        None,
    ));
    ok(&agent.run(&["update"]));
    assert_eq!(agent.current().as_deref(), Some("1.1.0"));
    assert_eq!(agent.health_body().as_deref(), Some("ok 1.1.0"));

    // An agent with a wrong secret changes nothing and says why.
    let bad = app::App::new(&agent_config(&server, &pubkey, "not-the-secret"));
    let out = bad.run(&["update"]);
    assert!(!out.status.success());
    let err = app::stderr(&out);
    assert!(
        err.contains("SignatureDoesNotMatch") && err.contains("s3_secret_access_key"),
        "{err}"
    );
    assert_eq!(bad.current(), None);
}

/// A transparent TCP proxy in front of the S3 server that cuts the first artifact
/// response (a GET of a `.tar.gz` without Range) after `cut_after` bytes, and records
/// whether a ranged artifact request followed. Presigned SigV4 covers the Host the
/// client used, which is the proxy's, so signatures stay valid through it.
struct CutProxy {
    endpoint: String,
    saw_range: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut_done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn cut_proxy(upstream: &str, cut_after: usize) -> CutProxy {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let saw_range = Arc::new(AtomicBool::new(false));
    let cut_done = Arc::new(AtomicBool::new(false));
    let (sr, cd) = (saw_range.clone(), cut_done.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr_, mut sw) = server.into_split();
            // Bytes sent downstream, and the count at which this connection must cut.
            let down = Arc::new(AtomicUsize::new(0));
            let cut_at = Arc::new(AtomicUsize::new(usize::MAX));
            let (saw, done, d1, c1) = (sr.clone(), cd.clone(), down.clone(), cut_at.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                    if text.contains(".tar.gz") && text.starts_with("get ") {
                        if text.contains("\r\nrange: bytes=") {
                            saw.store(true, Ordering::SeqCst);
                        } else if !done.swap(true, Ordering::SeqCst) {
                            c1.store(d1.load(Ordering::SeqCst) + cut_after, Ordering::SeqCst);
                        }
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = sr_.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let sent = down.load(Ordering::SeqCst);
                    let limit = cut_at.load(Ordering::SeqCst);
                    if sent + n > limit {
                        let _ = cw.write_all(&buf[..limit - sent]).await;
                        let _ = cw.shutdown().await;
                        break;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    down.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    CutProxy {
        endpoint,
        saw_range,
        cut_done,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_over_s3_resumes_a_cut_download_polls_unchanged_and_names_a_missing_bucket() {
    use std::sync::atomic::Ordering;
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let tmp = tempfile::tempdir().unwrap();
    let (sec, _, pubkey) = keygen(&server, tmp.path());
    let sec_s = sec.to_str().unwrap();

    // A release big enough (~2 MiB of incompressible padding) to be cut mid-body.
    let tree = tmp.path().join("tree");
    let st = std::process::Command::new(app::fixtures().join("app/make-release.sh"))
        .arg(&tree)
        .arg("1.0.0")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(tree.join("padding.bin"), pseudo_random(2 * MIB, 7)).unwrap();
    let tarball = tmp.path().join("big.tar.gz");
    app::tar_gz(&tree, &tarball);
    ok(&updraft(
        &server,
        &[
            "publish",
            "--registry",
            "s3://releases/registry",
            "--app",
            "demo",
            "--version",
            "1.0.0",
            "--artifact",
            tarball.to_str().unwrap(),
            "--channel",
            "prod",
            "--secret-key",
            sec_s,
        ],
        None,
    ));

    // The agent talks to S3 through the proxy, which cuts the artifact after 256 KiB.
    let proxy = cut_proxy(&server.endpoint, 256 * 1024).await;
    let config = agent_config(&server, &pubkey, s3support::SECRET_KEY)
        .replace(&server.endpoint, &proxy.endpoint);
    let agent = app::App::new(&config);
    let out = tokio::task::spawn_blocking({
        let agent_run = app::bin().to_string();
        let cfg = agent.config.clone();
        move || {
            std::process::Command::new(agent_run)
                .arg("--config")
                .arg(cfg)
                .arg("update")
                .env_remove("UPDRAFT_ROOT")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    ok(&out);
    assert!(
        proxy.cut_done.load(Ordering::SeqCst),
        "the proxy never cut the artifact"
    );
    assert!(
        proxy.saw_range.load(Ordering::SeqCst),
        "the download was not resumed with Range"
    );
    assert_eq!(agent.current().as_deref(), Some("1.0.0"));
    assert_eq!(
        std::fs::read(agent.root.join("releases/1.0.0/padding.bin")).unwrap(),
        pseudo_random(2 * MIB, 7)
    );

    // No change on the channel: s3s-fs answers 200 with the same ETag, which the agent
    // treats as unchanged (no signature refetch, nothing to do).
    let run = |args: &'static [&'static str]| {
        let cfg = agent.config.clone();
        move || {
            std::process::Command::new(app::bin())
                .arg("--config")
                .arg(cfg)
                .args(args)
                .env_remove("UPDRAFT_ROOT")
                .output()
                .unwrap()
        }
    };
    let check = tokio::task::spawn_blocking(run(&["check", "--json"]))
        .await
        .unwrap();
    ok(&check);
    let j: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(j["unchanged"], true, "{j}");
    assert_eq!(j["update_available"], false, "{j}");

    // A bucket that does not exist: a clear error naming it, and nothing changes.
    std::fs::write(
        &agent.config,
        config.replace("s3://releases/registry", "s3://no-such-bucket/registry"),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(run(&["update"])).await.unwrap();
    assert!(!out.status.success());
    assert!(
        app::stderr(&out).contains("no-such-bucket"),
        "{}",
        app::stderr(&out)
    );
    assert_eq!(agent.current().as_deref(), Some("1.0.0"));
}

/// Another publisher: every call goes to the real store, but the first conditional
/// write is preceded by a change of its own, as if a second CI job had acted between
/// our read and our write.
struct RacingPublisher<'a> {
    inner: Box<dyn Store>,
    signer: &'a updraft::registry::signed::Signer<'a>,
    race: Race,
    raced: std::sync::atomic::AtomicU32,
    conditional_writes: std::sync::atomic::AtomicU32,
}

/// What the other publisher does.
enum Race {
    /// Yank 1.0.0 from prod (before our channel document is written).
    Yank,
    /// Publish this artifact as 1.0.0 (before our artifact is created).
    Publish(std::path::PathBuf),
    /// No other publisher: our first conditional write succeeds but its answer is
    /// lost, and the retry meets our own document (412).
    LostAnswer,
}

impl RacingPublisher<'_> {
    async fn race_once(&self) {
        use std::sync::atomic::Ordering;
        self.conditional_writes.fetch_add(1, Ordering::SeqCst);
        if self.raced.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        let now = std::time::SystemTime::now();
        match &self.race {
            Race::Yank => {
                updraft::registry::channel::yank(
                    self.inner.as_ref(),
                    self.signer,
                    yank_request("1.0.0", "found by the other job"),
                    now,
                )
                .await
                .unwrap();
            }
            Race::LostAnswer => {}
            Race::Publish(art) => {
                updraft::registry::publish::publish(
                    self.inner.as_ref(),
                    self.signer,
                    &publish_request("1.0.0", art.clone(), None),
                    now,
                )
                .await
                .unwrap();
            }
        }
    }
}

fn publish_request(
    version: &str,
    artifact: std::path::PathBuf,
    channel: Option<&str>,
) -> updraft::registry::publish::PublishRequest {
    updraft::registry::publish::PublishRequest {
        app: "demo".parse().unwrap(),
        version: version.parse().unwrap(),
        artifacts: vec![("x86_64-linux".parse().unwrap(), artifact)],
        channel: channel.map(|c| c.parse().unwrap()),
        notes: None,
        rollout: None,
        expires_in: std::time::Duration::from_secs(3600),
        data_epoch: None,
    }
}

#[async_trait::async_trait]
impl Transport for RacingPublisher<'_> {
    async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, TransportError> {
        self.inner.fetch(req).await
    }
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}

#[async_trait::async_trait]
impl Store for RacingPublisher<'_> {
    async fn get(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        self.inner.get(key, limit).await
    }
    async fn get_tagged(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, TransportError> {
        self.inner.get_tagged(key, limit).await
    }
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.inner.put(key, bytes).await
    }
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), TransportError> {
        self.inner.put_file(key, path).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, TransportError> {
        self.inner.list(prefix).await
    }
    async fn put_if_unchanged(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
    ) -> Result<(), TransportError> {
        if matches!(self.race, Race::LostAnswer)
            && self.raced.load(std::sync::atomic::Ordering::SeqCst) == 0
        {
            self.race_once().await;
            self.inner.put_if_unchanged(key, bytes, expected).await?;
            return Err(TransportError::Conflict {
                location: self.location(key),
            });
        }
        if matches!(self.race, Race::Yank) {
            self.race_once().await;
        }
        self.inner.put_if_unchanged(key, bytes, expected).await
    }
    async fn put_file_if_absent(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<(), TransportError> {
        if matches!(self.race, Race::Publish(_)) {
            self.race_once().await;
        }
        self.inner.put_file_if_absent(key, path).await
    }
    async fn lock_for_update(
        &self,
        key: &str,
    ) -> Result<updraft::transport::UpdateLock, TransportError> {
        self.inner.lock_for_update(key).await
    }
}

/// A fresh server with a bucket "releases", and a signing key made by updraft.
async fn server_and_key() -> (S3Server, updraft::registry::keys::SecretKey) {
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let (secret, _) = updraft::registry::keys::generate(None).unwrap();
    let key = updraft::registry::keys::SecretKey::load_from_str(&secret, None).unwrap();
    (server, key)
}

fn yank_request(version: &str, reason: &str) -> updraft::registry::channel::YankRequest {
    updraft::registry::channel::YankRequest {
        app: "demo".parse().unwrap(),
        channel: "prod".parse().unwrap(),
        version: version.parse().unwrap(),
        reason: Some(reason.into()),
        expires_in: std::time::Duration::from_secs(3600),
    }
}

/// Channel changes are read-modify-write and a bucket has no lock: the channel
/// document is written with If-Match on the ETag that was read, a change that lost the
/// race starts over from the winner's document, and both yanks are kept.
#[tokio::test]
async fn a_channel_changed_between_read_and_write_is_reread_not_overwritten() {
    use std::sync::atomic::Ordering;
    use updraft::registry::signed::Signer;
    use updraft::registry::{channel, publish};
    let (server, key) = server_and_key().await;
    let store = open_store("s3://releases/registry", &server.options()).unwrap();
    let signer = Signer::new(&key, vec![]);
    let tmp = tempfile::tempdir().unwrap();
    for (v, channel) in [("1.0.0", None), ("1.1.0", None), ("2.0.0", Some("prod"))] {
        let art = tmp.path().join(format!("{v}.tar.gz"));
        std::fs::write(&art, format!("release {v}")).unwrap();
        publish::publish(
            store.as_ref(),
            &signer,
            &publish_request(v, art, channel),
            std::time::SystemTime::now(),
        )
        .await
        .unwrap();
    }

    let racing = RacingPublisher {
        inner: store,
        signer: &signer,
        race: Race::Yank,
        raced: 0.into(),
        conditional_writes: 0.into(),
    };
    let doc = channel::yank(
        &racing,
        &signer,
        yank_request("1.1.0", "ours"),
        std::time::SystemTime::now(),
    )
    .await
    .unwrap();
    // Ours was refused once (the other job's yank came first), then written.
    assert_eq!(racing.conditional_writes.load(Ordering::SeqCst), 2);
    let yanked: Vec<String> = doc.yanked.iter().map(|y| y.version.to_string()).collect();
    assert_eq!(yanked, ["1.0.0", "1.1.0"]);
    assert_eq!(doc.sequence, 3);
    let stored = channel::current_channel(
        racing.inner.as_ref(),
        &signer,
        &"demo".parse().unwrap(),
        &"prod".parse().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stored.sequence, 3);
    assert_eq!(stored.yanked.len(), 2);
}

/// Operators' laptops keep keys in `~/.aws/credentials` profiles, as the AWS CLI does:
/// with nothing in the config or the environment, AWS_PROFILE picks one; a wrong key in
/// it is refused with a hint naming that profile and file.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_a_profile_of_the_shared_credentials_file() {
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let tmp = tempfile::tempdir().unwrap();
    let (sec, public, _) = keygen(&server, tmp.path());
    let art = tmp.path().join("demo.tar.gz");
    std::fs::write(&art, b"release bytes").unwrap();
    let creds = tmp.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = AKIANOTTHISONE\naws_secret_access_key = nope\n\n\
             # the one CI uses\n[releases]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3support::ACCESS_KEY,
            s3support::SECRET_KEY
        ),
    )
    .unwrap();
    let run = |profile: &str, args: &[&str]| {
        let mut cmd = hermetic_updraft();
        cmd.env("AWS_ENDPOINT_URL", &server.endpoint)
            .env("AWS_REGION", s3support::REGION)
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_PROFILE", profile);
        cmd.args(args).output().unwrap()
    };
    let reg = "s3://releases/registry";
    ok(&run(
        "releases",
        &[
            "publish",
            "--registry",
            reg,
            "--app",
            "demo",
            "--version",
            "1.0.0",
            "--artifact",
            art.to_str().unwrap(),
            "--target",
            "x86_64-linux",
            "--channel",
            "prod",
            "--secret-key",
            sec.to_str().unwrap(),
        ],
    ));
    let verify = [
        "registry",
        "verify",
        "--registry",
        reg,
        "--app",
        "demo",
        "--public-key",
        public.to_str().unwrap(),
    ];
    ok(&run("releases", &verify));

    let denied = run("default", &verify);
    assert!(!denied.status.success());
    let err = app::stderr(&denied);
    assert!(
        err.contains("AKIANOTTHISONE")
            && err.contains(&format!("[default] in {}", creds.display())),
        "{err}"
    );
    let missing = run("nope", &verify);
    assert_eq!(missing.status.code(), Some(1), "{}", app::stderr(&missing));
    assert!(
        app::stderr(&missing).contains("no [nope] section"),
        "{}",
        app::stderr(&missing)
    );
}

/// A profile in `~/.aws/config` whose `credential_process` prints temporary
/// credentials (with a session token, sent as x-amz-security-token) signs publishing
/// and verification end to end; a helper that prints a wrong secret or fails is named
/// in the error, and its output (a secret) is never echoed.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_a_profiles_credential_process() {
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let tmp = tempfile::tempdir().unwrap();
    let (sec, public, _) = keygen(&server, tmp.path());
    let art = tmp.path().join("demo.tar.gz");
    std::fs::write(&art, b"release bytes").unwrap();
    let helper = |name: &str, secret: &str, exit: i32| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho 'helper ran' >&2\ncat <<'JSON'\n{{\"Version\": 1, \"AccessKeyId\": \"{}\", \"SecretAccessKey\": \"{secret}\", \"SessionToken\": \"FwoGZXIvYXdzEtemporary==\", \"Expiration\": \"2999-01-01T00:00:00Z\"}}\nJSON\nexit {exit}\n",
                s3support::ACCESS_KEY
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let good = helper("good-helper", s3support::SECRET_KEY, 0);
    let wrong = helper("wrong-helper", "SECRETTHATISWRONG", 0);
    let failing = helper("failing-helper", "SECRETOFAFAILURE", 7);
    let config = tmp.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = {}\n\n[profile ci]\ncredential_process = {}\n\n[profile wrong]\ncredential_process = {}\n\n[profile failing]\ncredential_process = {}\n",
            s3support::REGION,
            good.display(),
            wrong.display(),
            failing.display()
        ),
    )
    .unwrap();
    let run = |profile: &str, args: &[&str]| {
        let mut cmd = hermetic_updraft();
        cmd.env("AWS_ENDPOINT_URL", &server.endpoint)
            .env("AWS_REGION", s3support::REGION)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_PROFILE", profile);
        cmd.args(args).output().unwrap()
    };
    let reg = "s3://releases/registry";
    ok(&run(
        "ci",
        &[
            "publish",
            "--registry",
            reg,
            "--app",
            "demo",
            "--version",
            "1.0.0",
            "--artifact",
            art.to_str().unwrap(),
            "--target",
            "x86_64-linux",
            "--channel",
            "prod",
            "--secret-key",
            sec.to_str().unwrap(),
        ],
    ));
    let verify = [
        "registry",
        "verify",
        "--registry",
        reg,
        "--app",
        "demo",
        "--public-key",
        public.to_str().unwrap(),
    ];
    ok(&run("ci", &verify));

    let denied = run("wrong", &verify);
    assert!(!denied.status.success());
    let err = app::stderr(&denied);
    assert!(
        err.contains("credential_process of profile [wrong]")
            && err.contains(&config.display().to_string())
            && !err.contains("SECRETTHATISWRONG"),
        "{err}"
    );
    let failed = run("failing", &verify);
    assert!(!failed.status.success());
    let err = app::stderr(&failed);
    assert!(
        err.contains("credential_process of profile [failing]")
            && err.contains("exit status: 7")
            && err.contains("helper ran")
            && !err.contains("SECRETOFAFAILURE"),
        "{err}"
    );
}

/// Two CI jobs publish one version with different bytes at the same moment: the
/// artifact is created with If-None-Match: *, so the second job is refused instead of
/// overwriting the first one's artifact under its release document.
#[tokio::test]
async fn a_version_published_twice_at_once_keeps_one_consistent_release() {
    use updraft::registry::signed::Signer;
    use updraft::registry::{audit, publish};
    let (server, key) = server_and_key().await;
    let store = open_store("s3://releases/registry", &server.options()).unwrap();
    let signer = Signer::new(&key, vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let (theirs, ours) = (
        tmp.path().join("theirs.tar.gz"),
        tmp.path().join("ours.tar.gz"),
    );
    std::fs::write(&theirs, b"the other job's build").unwrap();
    std::fs::write(&ours, b"our build, other bytes").unwrap();

    let racing = RacingPublisher {
        inner: store,
        signer: &signer,
        race: Race::Publish(theirs),
        raced: 0.into(),
        conditional_writes: 0.into(),
    };
    let err = publish::publish(
        &racing,
        &signer,
        &publish_request("1.0.0", ours.clone(), Some("prod")),
        std::time::SystemTime::now(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("another publisher uploaded different bytes"),
        "{err}"
    );

    // What the registry holds is the other job's release, whole and verifiable; our
    // refused publish moved no channel.
    let report = audit::audit(
        racing.inner.as_ref(),
        &"demo".parse().unwrap(),
        &signer.trusted,
        std::time::SystemTime::now(),
    )
    .await
    .unwrap();
    assert!(report.ok, "{report:#?}");
    let art = racing
        .inner
        .get(
            "demo/releases/1.0.0/demo-1.0.0-x86_64-linux.tar.gz",
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(art.as_deref(), Some(&b"the other job's build"[..]));
    assert!(racing
        .inner
        .get("demo/channels/prod.json", 1 << 20)
        .await
        .unwrap()
        .is_none());

    // Publishing the same bytes again is the usual no-op.
    let again = publish::publish(
        racing.inner.as_ref(),
        &signer,
        &publish_request("1.0.0", tmp.path().join("theirs.tar.gz"), None),
        std::time::SystemTime::now(),
    )
    .await
    .unwrap();
    assert!(!again.release_written);
}

/// A conditional write that succeeded but whose answer was lost is retried by the
/// transport and then refused (412) by our own document: that is not a lost race. The
/// signature still gets written, for a new release document and for a channel change.
#[tokio::test]
async fn our_own_write_seen_again_on_a_retry_is_not_a_conflict() {
    use updraft::registry::signed::Signer;
    use updraft::registry::{audit, channel, publish};
    let (server, key) = server_and_key().await;
    let signer = Signer::new(&key, vec![]);
    let tmp = tempfile::tempdir().unwrap();
    let racing = |_: ()| RacingPublisher {
        inner: open_store("s3://releases/registry", &server.options()).unwrap(),
        signer: &signer,
        race: Race::LostAnswer,
        raced: 0.into(),
        conditional_writes: 0.into(),
    };
    let now = std::time::SystemTime::now;
    for v in ["1.0.0", "2.0.0"] {
        let art = tmp.path().join(format!("{v}.tar.gz"));
        std::fs::write(&art, format!("release {v}")).unwrap();
        // The first conditional write of each publish is its release document.
        let r = racing(());
        let report = publish::publish(&r, &signer, &publish_request(v, art, Some("prod")), now())
            .await
            .unwrap();
        assert!(report.release_written);
        assert_eq!(
            r.conditional_writes
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }
    // Here the lost answer is the channel document's.
    let r = racing(());
    let doc = channel::yank(&r, &signer, yank_request("1.0.0", "bad"), now())
        .await
        .unwrap();
    assert_eq!(doc.sequence, 3);
    let report = audit::audit(
        r.inner.as_ref(),
        &"demo".parse().unwrap(),
        &signer.trusted,
        now(),
    )
    .await
    .unwrap();
    assert!(report.ok, "{report:#?}");
}

/// `refresh` over S3: the same content re-signed with sequence + 1 and a new expiry,
/// a repeated promotion keeps the rollout, and `registry verify --min-valid` alarms on
/// a channel about to expire.
#[tokio::test(flavor = "multi_thread")]
async fn refresh_re_signs_a_channel_unchanged_over_s3() {
    let server = S3Server::start();
    server.create_bucket("releases").await;
    let tmp = tempfile::tempdir().unwrap();
    let (sec, public, _) = keygen(&server, tmp.path());
    let (sec_s, pub_s) = (sec.to_str().unwrap(), public.to_str().unwrap());
    let reg = "s3://releases/registry";
    let tarball = app::release_tarball(tmp.path(), "1.0.0", "");
    let signed = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend(["--registry", reg, "--app", "demo", "--secret-key", sec_s]);
        updraft(&server, &args, None)
    };
    ok(&signed(&[
        "publish",
        "--version",
        "1.0.0",
        "--artifact",
        tarball.to_str().unwrap(),
        "--channel",
        "prod",
        "--rollout",
        "30",
        "--notes",
        "first",
        "--expires-in",
        "3d",
    ]));
    let store = S3Registry::new(reg, &server.options()).unwrap();
    let channel = || async {
        let bytes = store
            .get("demo/channels/prod.json", 1 << 20)
            .await
            .unwrap()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let before = channel().await;
    assert_eq!(before["rollout"]["percent"], 30, "{before}");

    let verify = |min_valid: &str| {
        updraft(
            &server,
            &[
                "registry",
                "verify",
                "--registry",
                reg,
                "--app",
                "demo",
                "--public-key",
                pub_s,
                "--min-valid",
                min_valid,
            ],
            None,
        )
    };
    let out = verify("7d");
    assert_eq!(out.status.code(), Some(5), "{}", app::text(&out));
    assert!(
        app::stdout(&out).contains("sooner than --min-valid 7days"),
        "{}",
        app::stdout(&out)
    );
    ok(&verify("1d"));

    let out = signed(&["refresh", "--channel", "prod", "--expires", "60d", "--json"]);
    ok(&out);
    let r = app::json(&out);
    assert_eq!(
        r["channel"]["sequence"],
        before["sequence"].as_u64().unwrap() + 1,
        "{r}"
    );
    let after = channel().await;
    assert_eq!(after["sequence"], before["sequence"].as_u64().unwrap() + 1);
    assert_ne!(after["expires"], before["expires"]);
    assert_eq!(r["channel"]["expires_at"], after["expires"]);
    for same in [
        "version", "rollout", "notes", "yanked", "app", "channel", "kind",
    ] {
        assert_eq!(after[same], before[same], "{same}");
    }
    ok(&verify("7d"));

    // Promoting the version the channel already holds keeps its rollout.
    ok(&signed(&[
        "promote",
        "--version",
        "1.0.0",
        "--channel",
        "prod",
    ]));
    let promoted = channel().await;
    assert_eq!(promoted["rollout"]["percent"], 30, "{promoted}");
    assert_eq!(
        promoted["sequence"],
        after["sequence"].as_u64().unwrap() + 1
    );

    // Nothing to refresh: the channel was never published.
    let out = signed(&["refresh", "--channel", "staging"]);
    assert_eq!(out.status.code(), Some(6), "{}", app::text(&out));
}
