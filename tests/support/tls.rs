//! Test support: certificates made by the real `openssl` command line, a throw-away CA
//! and server certificates for 127.0.0.1 signed by it, for nginx's `ssl` listener.
//! CI installs it with the Debian package `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority: `cert` is what a client trusts (`SSL_CERT_FILE`).
pub struct Ca {
    pub cert: PathBuf,
    key: PathBuf,
}

/// A server certificate and its key, as nginx's `ssl_certificate(_key)` read them.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install -y openssl"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl Ca {
    /// A new CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (
            dir.join(format!("{name}-ca.pem")),
            dir.join(format!("{name}-ca.key")),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=updraft test CA {name}"),
            "-keyout",
            s(&key),
            "-out",
            s(&cert),
        ]);
        Ca { cert, key }
    }

    /// A certificate for `127.0.0.1` signed by this CA.
    pub fn issue_for_loopback(&self, dir: &Path, name: &str) -> ServerCert {
        let (cert, key, csr, ext) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.ext")),
        );
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
        ]);
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&self.cert),
            "-CAkey",
            s(&self.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-out",
            s(&cert),
        ]);
        ServerCert { cert, key }
    }
}
