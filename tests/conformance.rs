//! The registry-spec conformance suite (registry-spec/conformance/), run against updraft:
//! every vector in `vectors.json`, so a vector added by the generator is tested without
//! touching this file. Documents go through the library's reader (the same calls the
//! agent makes: a size-limited read, then `verify_channel` / `verify_release`), artifacts
//! through the real agent (`updraft update` against a registry built from the vector),
//! buckets through the normative algorithm. The `decide` vectors run next to the pure
//! decision (`agent::decide::tests::conformance_vectors`), which is not public API.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::Value;
use support::{bin, code, text};
use updraft::registry::keys::{PublicKey, SecretKey, TrustedKeys};
use updraft::registry::manifest::{self, Location, ManifestError, MAX_DOCUMENT_BYTES};
use updraft::registry::names::{AppName, Channel, Target, Version};
use updraft::registry::rollout;
use updraft::transport::{Store, TransportError, TransportOptions};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("registry-spec/conformance")
}

/// The suite's folder as a `file://` registry: vectors name their files as keys.
fn open_suite(dir: &Path) -> Box<dyn Store> {
    let url = format!("file://{}", dir.display());
    updraft::transport::open_store(&url, &TransportOptions::default()).unwrap()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {field:?} missing in {v}"))
}

fn time(s: &str) -> SystemTime {
    updraft::time::parse_time(s).unwrap()
}

/// The spec's error class (§9.1) of a document rejection.
fn class_of_manifest(e: &ManifestError) -> &'static str {
    match e {
        ManifestError::Signature(_) => "signature",
        ManifestError::Malformed { .. }
        | ManifestError::Unparsable { .. }
        | ManifestError::BadUrl { .. } => "malformed",
        ManifestError::UnsupportedSchema { .. } => "unsupported-schema",
        ManifestError::WrongApp { .. }
        | ManifestError::WrongChannel { .. }
        | ManifestError::WrongVersion { .. } => "mix-and-match",
        ManifestError::Rollback { .. } => "rollback",
        ManifestError::Expired { .. } => "expired",
        ManifestError::NoArtifact { .. } => "not-found",
        ManifestError::UnsupportedFormat { .. } => "unsupported-format",
        ManifestError::BlockListMismatch { .. } => "mismatch",
        ManifestError::Serialise { .. } => "other",
    }
}

/// What a reader concluded: accepted (with what it found), or the class it rejected with.
type Verdict = Result<Value, (String, String)>;

struct Suite {
    dir: PathBuf,
    keys: TrustedKeys,
    store: Box<dyn Store>,
}

impl Suite {
    /// A document and its signature, read as the agent reads them: within the limits.
    async fn read(&self, v: &Value) -> Result<(Vec<u8>, String), (String, String)> {
        let get = |field: &str, limit: u64| {
            let key = str_of(v, field).to_string();
            async move {
                self.store
                    .get(&key, limit)
                    .await
                    .map(|b| b.unwrap_or_else(|| panic!("{key} missing")))
            }
        };
        let too_large = |e: TransportError| match e {
            TransportError::TooLarge { .. } => ("too-large".to_string(), e.to_string()),
            other => ("other".to_string(), other.to_string()),
        };
        let doc = get("document", MAX_DOCUMENT_BYTES)
            .await
            .map_err(too_large)?;
        let sig = get("signature", manifest::MAX_SIGNATURE_BYTES)
            .await
            .map_err(too_large)?;
        Ok((doc, String::from_utf8_lossy(&sig).into_owned()))
    }

    async fn channel(&self, v: &Value) -> Verdict {
        let (doc, sig) = self.read(v).await?;
        let app: AppName = str_of(v, "app").parse().unwrap();
        let channel: Channel = str_of(v, "channel").parse().unwrap();
        let min = v["min_sequence"].as_u64().unwrap();
        manifest::verify_channel(
            &doc,
            &sig,
            &self.keys,
            &app,
            &channel,
            min,
            time(str_of(v, "now")),
        )
        .map(|d| serde_json::json!({"version": d.version.to_string(), "sequence": d.sequence}))
        .map_err(|e| (class_of_manifest(&e).to_string(), e.to_string()))
    }

    async fn release(&self, v: &Value) -> Verdict {
        let (doc, sig) = self.read(v).await?;
        let app: AppName = str_of(v, "app").parse().unwrap();
        let version: Version = str_of(v, "version").parse().unwrap();
        let target: Target = str_of(v, "target").parse().unwrap();
        let fail = |e: ManifestError| (class_of_manifest(&e).to_string(), e.to_string());
        let release =
            manifest::verify_release(&doc, &sig, &self.keys, &app, &version).map_err(fail)?;
        let (location, artifact) = release.artifact_location(&target).map_err(fail)?;
        let location = match location {
            Location::Key(k) => serde_json::json!({"key": k}),
            Location::Url(u) => serde_json::json!({"url": u}),
        };
        Ok(
            serde_json::json!({"location": location, "sha256": artifact.sha256, "size": artifact.size}),
        )
    }

    fn secret_key(&self, v: &Value) -> Verdict {
        let want = std::fs::read_to_string(self.dir.join(str_of(v, "public_key"))).unwrap();
        let want = PublicKey::from_file_text(&want, "public key").unwrap();
        let password = Some(str_of(v, "password").to_string());
        match SecretKey::load_from_file(&self.dir.join(str_of(v, "secret_key")), password) {
            Ok(sk) if sk.public_key() == &want => Ok(Value::Null),
            Ok(_) => Err(("key".into(), "decrypts to another key".into())),
            Err(e) => Err(("key".into(), e.to_string())),
        }
    }

    fn bucket(&self, v: &Value) -> Verdict {
        let b = rollout::bucket(
            str_of(v, "machine_id"),
            str_of(v, "app"),
            str_of(v, "version"),
        );
        Ok(serde_json::json!({ "bucket": b }))
    }

    /// §9 step 8 and §6.1 through the real agent: a registry whose signed release names
    /// the vector's sha256 and size for this artifact, and `updraft update`.
    fn artifact(&self, v: &Value, tmp: &Path) -> Verdict {
        let name = str_of(v, "name");
        let work = tmp.join(name);
        let reg = work.join("registry");
        let version = str_of(v, "version");
        let rel_dir = reg.join(format!("demo/releases/{version}"));
        std::fs::create_dir_all(&rel_dir).unwrap();
        std::fs::create_dir_all(reg.join("demo/channels")).unwrap();
        std::fs::copy(
            self.dir.join(str_of(v, "artifact")),
            rel_dir.join("a.tar.gz"),
        )
        .unwrap();
        let sk = SecretKey::load_from_file(&self.dir.join("keys/trusted.key"), None).unwrap();
        let now = updraft::time::Timestamp::now().system_time();
        let release = serde_json::json!({
            "schema_version": 1, "kind": "release", "app": "demo", "version": version,
            "issued": updraft::time::format_time(now),
            "artifacts": {"x86_64-linux": {"url": "a.tar.gz", "sha256": v["sha256"], "size": v["size"], "format": "tar.gz"}},
        });
        let channel = serde_json::json!({
            "schema_version": 1, "kind": "channel", "app": "demo", "channel": "prod",
            "version": version, "sequence": 1, "issued": updraft::time::format_time(now),
            "expires": updraft::time::format_time(now + std::time::Duration::from_secs(86400)),
        });
        for (path, doc) in [
            (rel_dir.join("release.json"), release),
            (reg.join("demo/channels/prod.json"), channel),
        ] {
            let bytes = serde_json::to_vec_pretty(&doc).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let sig = sk.sign(&bytes, "conformance").unwrap();
            std::fs::write(format!("{}.minisig", path.display()), sig).unwrap();
        }
        let root = work.join("root");
        let limits = match v["max_artifact_bytes"].as_u64() {
            Some(n) => format!("[limits]\nmax_artifact_bytes = {n}\n"),
            None => String::new(),
        };
        let config = work.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "app = \"demo\"\nregistry = \"file://{}\"\nchannel = \"prod\"\npublic_keys = [\"{}\"]\nmachine_id = \"conformance\"\ntarget = \"x86_64-linux\"\nroot = \"{}\"\n{}",
                reg.display(),
                sk.public_key().to_file_text().lines().nth(1).unwrap(),
                root.display(),
                limits
            ),
        )
        .unwrap();
        let o = Command::new(bin())
            .args(["--config", config.to_str().unwrap(), "update"])
            .env_remove("UPDRAFT_CONFIG")
            .output()
            .unwrap();
        let said = text(&o);
        match code(&o) {
            0 => Ok(serde_json::json!({ "tree": tree(&root.join("releases").join(version)) })),
            5 if said.contains("refused tarball entry") => Err(("hostile-archive".into(), said)),
            5 if said.contains("larger than the limit") => Err(("too-large".into(), said)),
            5 if said.contains("mismatch") || said.contains("size") => {
                Err(("mismatch".into(), said))
            }
            other => Err((format!("exit {other}"), said)),
        }
    }
}

/// The unpacked release as the vectors describe it: every path, sorted, with its type,
/// and for files the sha256 and permission bits, for symlinks the target.
fn tree(dir: &Path) -> Value {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, dir: &Path, out: &mut Vec<Value>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.push(serde_json::json!({"path": rel, "type": "symlink", "target": target.to_string_lossy()}));
            } else if meta.is_dir() {
                out.push(serde_json::json!({"path": rel, "type": "dir"}));
                walk(base, &p, out);
            } else {
                use sha2::Digest;
                let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap()));
                let mode = format!("{:o}", meta.permissions().mode() & 0o7777);
                out.push(
                    serde_json::json!({"path": rel, "type": "file", "sha256": sha, "mode": mode}),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Value::Array(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_vector_gets_its_expected_verdict() {
    let dir = suite_dir();
    let suite: Value =
        serde_json::from_slice(&std::fs::read(dir.join("vectors.json")).unwrap()).unwrap();
    assert_eq!(suite["format"], "updraft-registry-conformance");
    let keys = suite["trusted_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let text = std::fs::read_to_string(dir.join(k.as_str().unwrap())).unwrap();
            PublicKey::from_file_text(&text, "trusted key").unwrap()
        })
        .collect();
    let s = Suite {
        keys: TrustedKeys::new(keys),
        store: open_suite(&dir),
        dir: dir.clone(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let vectors = suite["vectors"].as_array().unwrap();
    let mut failures = Vec::new();
    let mut seen = BTreeMap::<String, usize>::new();
    for v in vectors {
        let name = str_of(v, "name");
        let check = str_of(v, "check");
        *seen.entry(check.to_string()).or_default() += 1;
        let got = match check {
            "channel" => s.channel(v).await,
            "release" => s.release(v).await,
            "secret-key" => s.secret_key(v),
            "artifact" => {
                let tmp = tmp.path().to_path_buf();
                let v = v.clone();
                let dir = dir.clone();
                let keys = s.keys.clone();
                tokio::task::spawn_blocking(move || {
                    Suite {
                        keys,
                        store: open_suite(&dir),
                        dir: dir.clone(),
                    }
                    .artifact(&v, &tmp)
                })
                .await
                .unwrap()
            }
            // The decision is machine-side code, not public: its vectors run in the
            // unit test next to it (agent::decide::tests::conformance_vectors).
            "decide" => continue,
            "bucket" => s.bucket(v),
            other => panic!("vector {name}: unknown check {other:?} (update this runner)"),
        };
        let verdict = v["verdict"].as_str().unwrap_or("accept");
        match (verdict, got) {
            ("accept", Ok(found)) => {
                if let Some(expect) = v.get("expect") {
                    for (field, want) in expect.as_object().unwrap() {
                        if &found[field] != want {
                            failures.push(format!(
                                "{name}: {field} is {}, expected {want}",
                                found[field]
                            ));
                        }
                    }
                }
            }
            ("accept", Err((class, why))) => failures.push(format!(
                "{name}: rejected ({class}), expected accept: {why}"
            )),
            ("reject", Ok(found)) => failures.push(format!(
                "{name}: accepted ({found}), expected {}",
                v["class"]
            )),
            ("reject", Err((class, why))) => {
                if v["class"] != class.as_str() {
                    failures.push(format!(
                        "{name}: rejected as {class}, expected {}: {why}",
                        v["class"]
                    ));
                }
            }
            (other, _) => panic!("vector {name}: verdict {other:?}"),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    for check in [
        "channel",
        "release",
        "artifact",
        "decide",
        "bucket",
        "secret-key",
    ] {
        assert!(
            seen.get(check).is_some_and(|n| *n > 0),
            "no {check} vectors: {seen:?}"
        );
    }
}
