//! The id a machine reports under: derived from the machine id, never the id itself.
//!
//! /etc/machine-id is a secret of the host (systemd's machine-id(5) says it must not be
//! exposed to untrusted parties), while reports land in a store many people can list. So,
//! like `sd_id128_get_machine_app_specific`, the report id is an HMAC-SHA256 keyed by the
//! machine id over the app name: stable per machine and app, unlinkable across apps, and
//! the raw id cannot be recovered from it.

use std::io;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// HMAC-SHA256(key = `machine_id`, message = `app`), as 64 lowercase hex digits.
pub fn app_specific_id(machine_id: &str, app: &str) -> String {
    // HMAC accepts keys of any length (longer ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(machine_id.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(app.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The id that places this machine in rollouts: `over` (the `machine_id` config key),
/// else the contents of `file` (default /etc/machine-id), trimmed.
pub fn machine_id(over: Option<&str>, file: Option<&Path>) -> io::Result<String> {
    if let Some(m) = over {
        let m = m.trim();
        if m.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the `machine_id` config key is empty: set it to a stable, unique id or remove it to use /etc/machine-id",
            ));
        }
        return Ok(m.to_string());
    }
    let path = file.unwrap_or(Path::new("/etc/machine-id"));
    let text = std::fs::read_to_string(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e} (set `machine_id` or `machine_id_file` in the config)",
                path.display()
            ),
        )
    })?;
    let id = text.trim();
    if id.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is empty (run `systemd-machine-id-setup`, or set `machine_id` in the config)",
                path.display()
            ),
        ));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed independently with Python's hmac module:
    /// `hmac.new(machine_id, app, hashlib.sha256).hexdigest()`.
    #[test]
    fn matches_an_independent_hmac_sha256() {
        let cases = [
            (
                "4f8a2c1e9b7d4e6f8a1b2c3d4e5f6a7b",
                "my-app",
                "5df9d32e2c9dc147c8da96725bbe76ef70c55887f36efe25737458053792d82a",
            ),
            (
                "m",
                "demo",
                "c0609679579fe95bc7c3dca0925425dd771be0315d30cb2806e3c7956e28e74b",
            ),
        ];
        for (id, app, want) in cases {
            assert_eq!(app_specific_id(id, app), want, "id {id:?} app {app:?}");
        }
    }

    #[test]
    fn differs_per_app_and_hides_the_machine_id() {
        let id = "4f8a2c1e9b7d4e6f8a1b2c3d4e5f6a7b";
        let a = app_specific_id(id, "a");
        let b = app_specific_id(id, "b");
        assert_ne!(a, b);
        assert!(!a.contains(id));
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }

    #[test]
    fn machine_id_sources() {
        let dir = std::env::temp_dir().join(format!("updraft-mid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("machine-id");
        std::fs::write(&f, "abc123\n").unwrap();
        assert_eq!(machine_id(None, Some(&f)).unwrap(), "abc123");
        assert_eq!(machine_id(Some(" over "), Some(&f)).unwrap(), "over");
        assert!(machine_id(Some("  "), Some(&f)).is_err());
        std::fs::write(&f, "\n").unwrap();
        let e = machine_id(None, Some(&f)).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let missing = dir.join("nope");
        let e = machine_id(None, Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("machine_id"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
