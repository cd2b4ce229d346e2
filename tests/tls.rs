//! https registries and the trust store: certificates are verified against what the
//! machine trusts (`SSL_CERT_FILE` here, a CA made for the test), and the trust store is
//! not needed at all until an https URL is used. Real nginx with its `ssl` listener,
//! certificates made by openssl, the real binary.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::app::*;
use support::nginx::Nginx;
use support::registry::*;
use support::tls::Ca;

/// `updraft --config ... ARGS` for `app` with `SSL_CERT_FILE` set to `trust`.
fn run_trusting(app: &App, trust: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(&app.config)
        .args(args)
        .env_remove("UPDRAFT_ROOT")
        .env_remove("UPDRAFT_CONFIG")
        .env_remove("SSL_CERT_DIR")
        .env("SSL_CERT_FILE", trust)
        .output()
        .unwrap()
}

#[test]
fn an_https_registry_is_used_when_its_ca_is_trusted_and_refused_when_not() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let certs = tmp.path().join("certs");
    let ca = Ca::new(&certs, "registry");
    let server = Nginx::start_tls(&reg.dir, &ca.issue_for_loopback(&certs, "registry"));
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let app = App::new(&agent_toml(&reg, &server.base, "prod", ""));

    // Another CA than the one that signed the server's certificate: the handshake is
    // refused, the error names the document and the certificate problem, nothing changes.
    let stranger = Ca::new(&certs, "stranger");
    let out = run_trusting(&app, &stranger.cert, &["update"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}/demo/channels/prod.json", server.base))
            && err.contains("certificate")
            && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(app.current(), None);
    // No request got past the handshake.
    assert!(server.access_log().is_empty(), "{:?}", server.access_log());

    // Trusting the CA that signed it: the poll, the download and the update go through.
    let out = run_trusting(&app, &ca.cert, &["update"]);
    ok(&out);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    let log = server.access_log_with(1);
    assert!(
        log.iter()
            .any(|l| l.contains("GET /demo/channels/prod.json")),
        "{log:?}"
    );
}

/// A plain-http registry and an http health check never touch the trust store: with
/// `SSL_CERT_FILE` naming a file that does not exist (so no CA could be loaded) the
/// update works over http, and only an https URL says that it has nothing to trust.
#[test]
fn http_needs_no_trust_store_and_https_says_when_there_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    let nothing = tmp.path().join("no-such-ca-bundle.pem");

    let app = agent_app(&reg, "prod", "");
    assert!(reg.http.starts_with("http://"), "{}", reg.http);
    let out = run_trusting(&app, &nothing, &["update"]);
    ok(&out);
    assert_eq!(app.current().as_deref(), Some("1.0.0"));
    // That update ran the fixture's http health check too.
    assert_eq!(app.health_body().as_deref(), Some("ok 1.0.0"));
    ok(&run_trusting(&app, &nothing, &["update"]));

    let certs = tmp.path().join("certs");
    let ca = Ca::new(&certs, "registry");
    let server = Nginx::start_tls(&reg.dir, &ca.issue_for_loopback(&certs, "registry"));
    let app = App::new(&agent_toml(&reg, &server.base, "prod", ""));
    let out = run_trusting(&app, &nothing, &["check"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot load the trusted CA certificates") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );
}
