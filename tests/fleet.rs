//! Fleet feedback through the real binary: `fleet status` over file:// and the S3 test
//! server with hand-written (and hostile) reports, the promotion gate, `guard` and
//! `rollout resume`.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::registry::Registry;
use support::s3::S3Server;
use support::{code, json as json_of, ok, stdout, text};

const APP: &str = "demo";

fn now_minus(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(secs)).to_string()
}

fn machine(n: u32) -> String {
    format!("{n:064x}")
}

/// A well-formed report of machine `n`, written a minute ago.
fn report(n: u32, channel: &str, current: Option<&str>, state: &str) -> Value {
    json!({
        "kind": "report",
        "schema_version": 1,
        "machine": machine(n),
        "hostname": format!("vm-{n}"),
        "app": APP,
        "channel": channel,
        "target": "x86_64-linux",
        "updraft_version": "0.1.0",
        "current": current,
        "previous": null,
        "pending": null,
        "state": state,
        "channel_version": current,
        "blocked": [],
        "last_health": null,
        "last_error": null,
        "last_poll": now_minus(60),
        "last_activation": now_minus(7200),
        "channel_sequence": 1,
        "channel_expires": null,
        "rollout_bucket": 1234,
        "written": now_minus(60),
    })
}

/// Machine `n` tried `version`, failed its health check and went back to `on`.
fn failed(n: u32, channel: &str, on: &str, version: &str) -> Value {
    let mut r = report(n, channel, Some(on), "failed");
    r["blocked"] = json!([{"version": version, "reason": format!("health check http://127.0.0.1/health failed after {version} was activated"), "at": now_minus(600)}]);
    r["previous"] = json!(version);
    r
}

fn key(channel: &str, n: u32) -> String {
    format!("{APP}/fleet/{channel}/{}.json", machine(n))
}

/// Write objects into a file:// registry directory as a report writer would.
fn put_file(reg: &Path, key: &str, bytes: &[u8]) {
    let path = reg.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The hostile objects every reader must survive, by key, with the word its refusal
/// must contain.
fn hostile() -> Vec<(String, Vec<u8>, &'static str)> {
    let mut wrong_app = report(90, "prod", Some("1.0.0"), "healthy");
    wrong_app["app"] = json!("other-app");
    let mut future = report(91, "prod", Some("1.0.0"), "healthy");
    future["written"] = json!("2099-01-01T00:00:00Z");
    let mut elsewhere = report(92, "prod", Some("1.0.0"), "healthy");
    elsewhere["machine"] = json!(machine(93));
    vec![
        (key("prod", 80), vec![b'x'; 10 << 20], "larger than"),
        (
            key("prod", 81),
            b"{\"kind\": \"report\", ".to_vec(),
            "not a valid report",
        ),
        (
            key("prod", 90),
            serde_json::to_vec(&wrong_app).unwrap(),
            "other-app",
        ),
        (
            key("prod", 91),
            serde_json::to_vec(&future).unwrap(),
            "ahead of now",
        ),
        (
            key("prod", 92),
            serde_json::to_vec(&elsewhere).unwrap(),
            "stored at",
        ),
        (
            format!("{APP}/fleet/prod/notes.txt"),
            b"hello".to_vec(),
            "not a report name",
        ),
    ]
}

/// The well-formed reports of the status tests: 3 healthy on 1.1.0, 2 that failed it,
/// one waiting, one stale, one with a terminal escape sequence in its hostname.
fn honest() -> Vec<(String, Value)> {
    let mut stale = report(7, "prod", Some("0.9.0"), "healthy");
    stale["written"] = json!(now_minus(3 * 86400));
    let mut evil = report(8, "prod", Some("1.1.0"), "healthy");
    evil["hostname"] = json!("evil\u{1b}]0;pwned\u{7}\u{1b}[2J");
    vec![
        (key("prod", 1), report(1, "prod", Some("1.1.0"), "healthy")),
        (key("prod", 2), report(2, "prod", Some("1.1.0"), "healthy")),
        (key("prod", 3), failed(3, "prod", "1.0.0", "1.1.0")),
        (key("prod", 4), failed(4, "prod", "1.0.0", "1.1.0")),
        (
            key("prod", 5),
            report(5, "prod", Some("1.0.0"), "waiting-for-rollout"),
        ),
        (key("prod", 7), stale),
        (key("prod", 8), evil),
        (
            key("staging", 9),
            report(9, "staging", Some("1.2.0"), "healthy"),
        ),
    ]
}

/// What every status test checks on the JSON output.
fn check_status_json(v: &Value) {
    assert_eq!(v["kind"], "fleet-status");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["reports"], 8);
    let prod = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "prod")
        .unwrap();
    assert_eq!(prod["channel_version"], "1.1.0");
    assert_eq!(
        prod["machines"], 6,
        "the stale machine is not counted: {prod:#}"
    );
    let versions = prod["versions"].as_array().unwrap();
    assert_eq!(versions[0]["version"], "1.1.0");
    assert_eq!(versions[0]["machines"], 3);
    assert_eq!(versions[0]["states"]["healthy"], 3);
    assert_eq!(versions[1]["version"], "1.0.0");
    assert_eq!(versions[1]["states"]["failed"], 2);
    assert_eq!(versions[1]["states"]["waiting-for-rollout"], 1);
    assert_eq!(prod["stale"].as_array().unwrap().len(), 1);
    assert_eq!(prod["failure_reasons"][0]["machines"], 2);
    assert_eq!(prod["failure_reasons"][0]["versions"], json!(["1.1.0"]));
    assert_eq!(prod["behind"].as_array().unwrap().len(), 3);
    let bad = v["bad"].as_array().unwrap();
    let bad_text = serde_json::to_string(bad).unwrap();
    for (key, _, why) in hostile() {
        let row = bad
            .iter()
            .find(|b| b["key"] == key.as_str())
            .unwrap_or_else(|| panic!("{key} not listed as bad: {bad_text}"));
        assert!(row["why"].as_str().unwrap().contains(why), "{key}: {row}");
    }
    assert_eq!(bad.len(), hostile().len());
}

/// Human output: hostile bytes escaped, never passed to the terminal.
fn check_status_text(out: &str) {
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}'),
        "raw control bytes: {out:?}"
    );
    assert!(out.contains("evil\\u{1b}]0;pwned\\u{7}"), "{out}");
    assert!(out.contains("channel prod -> 1.1.0"), "{out}");
    assert!(out.contains("bad reports (6)"), "{out}");
}

fn setup_file_registry(tmp: &Path) -> Registry {
    let reg = Registry::new(tmp);
    reg.ship("1.0.0", "", Some("prod"), &[]);
    reg.ship("1.1.0", "", Some("staging"), &[]);
    reg.promote("1.1.0", "prod", &[]);
    reg
}

#[test]
fn fleet_status_over_file_counts_reports_and_lists_hostile_ones_as_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = setup_file_registry(tmp.path());
    for (k, r) in honest() {
        put_file(&reg.dir, &k, &serde_json::to_vec(&r).unwrap());
    }
    for (k, bytes, _) in hostile() {
        put_file(&reg.dir, &k, &bytes);
    }
    let base = ["fleet", "status", "--registry", &reg.url, "--app", APP];
    let out = reg.cli(&[&base[..], &["--json"]].concat());
    ok(&out);
    check_status_json(&json_of(&out));

    let out = reg.cli(&[&base[..], &["--machines"]].concat());
    ok(&out);
    check_status_text(&stdout(&out));
    assert!(
        stdout(&out).contains(&machine(1)),
        "--machines lists ids: {}",
        text(&out)
    );

    // One channel, and a shorter stale limit that makes every report stale.
    let out = reg.cli(
        &[
            &base[..],
            &["--channel", "staging", "--stale", "1s", "--json"],
        ]
        .concat(),
    );
    ok(&out);
    let v = json_of(&out);
    assert_eq!(v["channels"].as_array().unwrap().len(), 1);
    assert_eq!(v["channels"][0]["machines"], 0);
    assert_eq!(v["channels"][0]["stale"].as_array().unwrap().len(), 1);

    // Reports must be listed: an HTTP registry is refused with what to use instead, as
    // a usage error (README "Exit codes": a bad command line).
    let out = reg.cli(&["fleet", "status", "--registry", &reg.http, "--app", APP]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("file:///") && text(&out).contains("s3://"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_status_over_s3_reads_reports_from_the_bucket() {
    let server = S3Server::start();
    server.create_bucket("fleet").await;
    let url = "s3://fleet/registry";
    let store = updraft::transport::open_store(url, &server.options()).unwrap();
    // The channel document comes from a real publish through the binary.
    let tmp = tempfile::tempdir().unwrap();
    let keys = Registry::new(tmp.path());
    let tarball = support::app::release_tarball(tmp.path(), "1.1.0", "");
    let mut cmd = std::process::Command::new(support::bin());
    cmd.envs(server.env()).args([
        "publish",
        "--registry",
        url,
        "--app",
        APP,
        "--version",
        "1.1.0",
        "--artifact",
        tarball.to_str().unwrap(),
        "--channel",
        "prod",
        "--secret-key",
        keys.secret.to_str().unwrap(),
    ]);
    ok(&cmd.output().unwrap());
    for (k, r) in honest() {
        store
            .put(&k, serde_json::to_vec(&r).unwrap())
            .await
            .unwrap();
    }
    for (k, bytes, _) in hostile() {
        store.put(&k, bytes).await.unwrap();
    }
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(support::bin());
        cmd.envs(server.env())
            .args(["fleet", "status", "--registry", url, "--app", APP])
            .args(extra);
        cmd.output().unwrap()
    };
    let out = run(&["--json"]);
    ok(&out);
    check_status_json(&json_of(&out));
    let out = run(&["--machines"]);
    ok(&out);
    check_status_text(&stdout(&out));
}

fn channel_doc(reg: &Registry, channel: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(reg.dir.join(format!("{APP}/channels/{channel}.json"))).unwrap(),
    )
    .unwrap()
}

fn channel_bytes(reg: &Registry, channel: &str) -> (Vec<u8>, Vec<u8>) {
    let p = reg.dir.join(format!("{APP}/channels/{channel}.json"));
    (
        std::fs::read(&p).unwrap(),
        std::fs::read(p.with_extension("json.minisig")).unwrap(),
    )
}

#[test]
fn promote_with_a_health_gate_exits_7_and_moves_nothing_until_it_is_met() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    reg.ship("1.1.0", "", Some("staging"), &[]);
    // Staging: 4 healthy on 1.1.0 for two hours, 1 rolled back, 1 stale failure.
    for n in 1..=4 {
        put_file(
            &reg.dir,
            &key("staging", n),
            &serde_json::to_vec(&report(n, "staging", Some("1.1.0"), "healthy")).unwrap(),
        );
    }
    put_file(
        &reg.dir,
        &key("staging", 5),
        &serde_json::to_vec(&failed(5, "staging", "1.0.0", "1.1.0")).unwrap(),
    );
    let mut old = failed(6, "staging", "1.0.0", "1.1.0");
    old["written"] = json!(now_minus(5 * 86400));
    put_file(
        &reg.dir,
        &key("staging", 6),
        &serde_json::to_vec(&old).unwrap(),
    );
    let secret = reg.secret.to_str().unwrap().to_string();
    let promote = |extra: &[&str]| {
        let base = [
            "promote",
            "--registry",
            &reg.url,
            "--app",
            APP,
            "--from",
            "staging",
            "--channel",
            "prod",
            "--secret-key",
            &secret,
        ];
        reg.cli(&[&base[..], extra].concat())
    };
    let before = channel_bytes(&reg, "prod");

    // 4 of 5 = 80% < 95%.
    let out = promote(&["--require-healthy", "95"]);
    assert_eq!(code(&out), 7, "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("gate not met")
            && t.contains("4 of 5")
            && t.contains("1 failed")
            && t.contains("1 stale"),
        "{t}"
    );
    assert_eq!(
        channel_bytes(&reg, "prod"),
        before,
        "a refused gate writes nothing"
    );
    // Enough share, too few machines.
    let out = promote(&["--require-healthy", "80", "--min-machines", "5"]);
    assert_eq!(code(&out), 7, "{}", text(&out));
    // Not soaked: they have run it for two hours, a day is required.
    let out = promote(&["--require-healthy", "80", "--soak", "1d"]);
    assert_eq!(code(&out), 7, "{}", text(&out));
    assert!(text(&out).contains("4 still soaking"), "{}", text(&out));
    // The approved version is not what staging holds now.
    let out = promote(&["--version", "1.0.0", "--require-healthy", "80"]);
    assert_eq!(code(&out), 7, "{}", text(&out));
    assert!(
        text(&out).contains("now points at 1.1.0, not the approved 1.0.0"),
        "{}",
        text(&out)
    );
    let out = promote(&["--version", "1.0.0"]);
    assert_eq!(code(&out), 7, "without a gate too: {}", text(&out));
    assert_eq!(channel_bytes(&reg, "prod"), before);

    // Met: prod moves to exactly what was gated.
    let out = promote(&[
        "--version",
        "1.1.0",
        "--require-healthy",
        "80",
        "--min-machines",
        "4",
        "--soak",
        "1h",
    ]);
    ok(&out);
    assert!(
        stdout(&out).contains("gate met on staging"),
        "{}",
        text(&out)
    );
    assert_eq!(channel_doc(&reg, "prod")["version"], "1.1.0");
}

#[test]
fn guard_halts_once_exits_8_and_resume_clears_the_halt() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    reg.ship("1.1.0", "", None, &[]);
    reg.promote("1.1.0", "prod", &["--rollout", "30"]);
    let secret = reg.secret.to_str().unwrap().to_string();
    let guard = |extra: &[&str]| {
        let base = [
            "guard",
            "--registry",
            &reg.url,
            "--app",
            APP,
            "--channel",
            "prod",
            "--max-failed",
            "10",
            "--secret-key",
            &secret,
        ];
        reg.cli(&[&base[..], extra].concat())
    };
    let resume = || {
        reg.cli(&[
            "rollout",
            "resume",
            "--registry",
            &reg.url,
            "--app",
            APP,
            "--channel",
            "prod",
            "--secret-key",
            &secret,
        ])
    };

    // Two failures: too few to judge (3 needed by default).
    for n in 1..=2 {
        put_file(
            &reg.dir,
            &key("prod", n),
            &serde_json::to_vec(&failed(n, "prod", "1.0.0", "1.1.0")).unwrap(),
        );
    }
    let before = channel_bytes(&reg, "prod");
    let out = guard(&["--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json_of(&out)["did"], "nothing");
    assert_eq!(channel_bytes(&reg, "prod"), before);

    // A third failure and five healthy machines: 3 of 8 failed, more than 10%.
    put_file(
        &reg.dir,
        &key("prod", 3),
        &serde_json::to_vec(&failed(3, "prod", "1.0.0", "1.1.0")).unwrap(),
    );
    for n in 10..15 {
        put_file(
            &reg.dir,
            &key("prod", n),
            &serde_json::to_vec(&report(n, "prod", Some("1.1.0"), "healthy")).unwrap(),
        );
    }
    let out = guard(&["--dry-run", "--json"]);
    assert_eq!(code(&out), 8, "{}", text(&out));
    assert_eq!(json_of(&out)["did"], "would-halt");
    assert_eq!(
        channel_bytes(&reg, "prod"),
        before,
        "a dry run writes nothing"
    );

    let out = guard(&[]);
    assert_eq!(code(&out), 8, "{}", text(&out));
    assert!(
        stdout(&out).contains("3 of 8") && stdout(&out).contains("HALTED"),
        "{}",
        text(&out)
    );
    let doc = channel_doc(&reg, "prod");
    assert_eq!(doc["version"], "1.1.0");
    assert_eq!(doc["rollout"]["percent"], 30);
    assert!(
        doc["rollout"]["halted"]["reason"]
            .as_str()
            .unwrap()
            .contains("3 of 8"),
        "{doc}"
    );
    let halted = channel_bytes(&reg, "prod");

    // Idempotent: the halt counts as done.
    let out = guard(&["--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let v = json_of(&out);
    assert_eq!(v["did"], "already-halted");
    assert_eq!(v["verdict"]["counts"]["failed"], 3);
    assert_eq!(
        channel_bytes(&reg, "prod"),
        halted,
        "a second guard writes nothing"
    );
    // Agents verify what guard signed.
    let out = reg.cli(&[
        "registry",
        "verify",
        "--registry",
        &reg.url,
        "--app",
        APP,
        "--public-key",
        reg.public.to_str().unwrap(),
    ]);
    ok(&out);

    let out = resume();
    ok(&out);
    assert!(stdout(&out).contains("resumed"), "{}", text(&out));
    let doc = channel_doc(&reg, "prod");
    assert!(doc["rollout"].get("halted").is_none(), "{doc}");
    assert_eq!(doc["rollout"]["percent"], 30);
    let resumed = channel_bytes(&reg, "prod");
    let out = resume();
    ok(&out);
    assert!(stdout(&out).contains("not halted"), "{}", text(&out));
    assert_eq!(channel_bytes(&reg, "prod"), resumed);
}

#[test]
fn guard_yank_points_the_channel_back_at_what_machines_ran_before() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    reg.ship("1.1.0", "", Some("prod"), &[]);
    for n in 1..=3 {
        put_file(
            &reg.dir,
            &key("prod", n),
            &serde_json::to_vec(&failed(n, "prod", "1.0.0", "1.1.0")).unwrap(),
        );
    }
    let mut on_it = report(4, "prod", Some("1.1.0"), "healthy");
    on_it["previous"] = json!("1.0.0");
    put_file(
        &reg.dir,
        &key("prod", 4),
        &serde_json::to_vec(&on_it).unwrap(),
    );
    let secret = reg.secret.to_str().unwrap().to_string();
    let guard = || {
        reg.cli(&[
            "guard",
            "--registry",
            &reg.url,
            "--app",
            APP,
            "--channel",
            "prod",
            "--max-failed",
            "50",
            "--action",
            "yank",
            "--secret-key",
            &secret,
            "--json",
        ])
    };
    let out = guard();
    assert_eq!(code(&out), 8, "{}", text(&out));
    assert_eq!(json_of(&out)["back_to"], "1.0.0");
    let doc = channel_doc(&reg, "prod");
    assert_eq!(doc["version"], "1.0.0");
    assert_eq!(doc["yanked"][0]["version"], "1.1.0");
    let after = channel_bytes(&reg, "prod");
    // The channel's version is now 1.0.0, which nobody failed: nothing to do.
    let out = guard();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(channel_bytes(&reg, "prod"), after);
}

/// A halt an hour ago froze a 30% wave; the 100% wave started during the halt. The
/// agents' view (`why`) stays at 30% until `rollout resume`, then widens at once.
#[tokio::test(flavor = "multi_thread")]
async fn resume_lets_the_waves_that_started_during_the_halt_apply() {
    use updraft::registry::channel::{promote, PromoteRequest, PromoteSource};
    use updraft::registry::keys::SecretKey;
    use updraft::registry::rollout::{Halt, Rollout, Wave};
    use updraft::registry::signed::Signer;
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    reg.ship("1.1.0", "", None, &[]);
    let key = SecretKey::load_from_file(&reg.secret, None).unwrap();
    let signer = Signer::new(&key, vec![]);
    let store = updraft::transport::open_store(&reg.url, &Default::default()).unwrap();
    let rollout = Rollout {
        percent: None,
        waves: vec![
            Wave {
                start: now_minus(7200),
                percent: 30,
            },
            Wave {
                start: now_minus(1800),
                percent: 100,
            },
        ],
        halted: Some(Halt {
            at: now_minus(3600),
            reason: "3 of 8 failed".into(),
        }),
    };
    promote(
        store.as_ref(),
        &signer,
        PromoteRequest {
            app: APP.parse().unwrap(),
            source: PromoteSource::Version("1.1.0".parse().unwrap()),
            channel: "prod".parse().unwrap(),
            rollout: Some(rollout),
            notes: None,
            expires_in: Duration::from_secs(86400),
        },
        SystemTime::now(),
    )
    .await
    .unwrap();
    let share = || {
        let doc: updraft::registry::manifest::ChannelDoc =
            serde_json::from_value(channel_doc(&reg, "prod")).unwrap();
        updraft::registry::rollout::share(doc.rollout.as_ref(), SystemTime::now())
    };
    assert_eq!(share(), 30, "halted: the later wave does not apply");
    let out = reg.cli(&[
        "rollout",
        "resume",
        "--registry",
        &reg.url,
        "--app",
        APP,
        "--channel",
        "prod",
        "--secret-key",
        reg.secret.to_str().unwrap(),
    ]);
    ok(&out);
    assert!(
        stdout(&out).contains("100% of machines admitted now"),
        "{}",
        text(&out)
    );
    assert_eq!(share(), 100);
    let doc = channel_doc(&reg, "prod");
    assert_eq!(
        doc["rollout"]["waves"].as_array().unwrap().len(),
        2,
        "the plan is kept: {doc}"
    );
}

/// One simulated machine: its own app root and machine id, following prod of the shared
/// file:// registry, writing reports there.
struct Agent {
    n: u32,
    config: std::path::PathBuf,
    root: std::path::PathBuf,
    /// Its health check fails on 1.1.0.
    fails: bool,
}

impl Agent {
    fn new(reg: &Registry, base: &Path, n: u32, fails: bool) -> Agent {
        let dir = base.join(format!("agent-{n:03}"));
        let root = dir.join("app");
        std::fs::create_dir_all(&root).unwrap();
        // A command probe instead of the fixture's HTTP server: 100 python servers would
        // cost gigabytes and minutes; the probe is just as real a health check, and
        // fails on 1.1.0 for the machines configured to. The same text on every machine,
        // so their failures group as one reason, as they would in a real fleet.
        let probe = if fails {
            r#"! grep -qx 1.1.0 "$UPDRAFT_RELEASE_DIR/VERSION""#
        } else {
            "true"
        };
        let config = dir.join("updraft.toml");
        std::fs::write(
            &config,
            format!(
                r#"app = "demo"
root = "{root}"
registry = "{url}"
channel = "prod"
public_keys = ["{key}"]
machine_id = "fleet-machine-{n:03}"
keep = 3

[report]
enabled = true

[[health]]
command = ['sh', '-c', '{probe}']
retries = 0
timeout = "10s"
"#,
                root = root.display(),
                url = reg.url,
                key = reg.pubkey_line,
            ),
        )
        .unwrap();
        Agent {
            n,
            config,
            root,
            fails,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    fn current(&self) -> Option<String> {
        std::fs::read_link(self.root.join("releases/current"))
            .ok()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
    }

    /// Whether the rollout of `version` at `percent` admits this machine.
    fn admitted(&self, version: &str, percent: u32) -> bool {
        let id = format!("fleet-machine-{:03}", self.n);
        updraft::registry::rollout::bucket(&id, APP, version) < percent * 100
    }
}

/// Run `updraft update` on every agent, a few at a time, and return the exit codes.
fn update_all(agents: &[&Agent]) -> Vec<i32> {
    let mut codes = vec![0; agents.len()];
    for (chunk, out) in agents.chunks(4).zip(codes.chunks_mut(4)) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|a| s.spawn(|| a.run(&["update"])))
                .collect();
            for (h, c) in handles.into_iter().zip(out.iter_mut()) {
                let o = h.join().unwrap();
                *c = code(&o);
                assert!(matches!(*c, 0 | 4), "update: {}", text(&o));
            }
        });
    }
    codes
}

/// The issue's fleet test. 100 machines (the issue's minimum) with separate roots and
/// machine ids on one file:// registry (the fastest store; S3 and HTTP report writing
/// are covered by tests/fleet_agent.rs), sharing one published release per version,
/// each running the real `updraft update`. Machines 0, 5, 10, ... (20%) fail the health
/// check of 1.1.0. 1.1.0 goes to half the fleet; every count below is computed from the
/// rollout buckets and the agents' own outcomes, and must match `fleet status` exactly.
#[test]
fn a_fleet_of_100_agents_gates_halts_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    reg.ship("1.0.0", "", Some("prod"), &[]);
    reg.ship("1.1.0", "", None, &[]);
    let agents: Vec<Agent> = (0..100)
        .map(|n| Agent::new(&reg, tmp.path(), n, n % 5 == 0))
        .collect();
    let all: Vec<&Agent> = agents.iter().collect();
    assert!(update_all(&all).iter().all(|c| *c == 0));
    assert!(agents
        .iter()
        .all(|a| a.current().as_deref() == Some("1.0.0")));

    reg.promote("1.1.0", "prod", &["--waves", "0s=50,1d=100"]);
    let codes = update_all(&all);
    let mut want = (0, 0, 0); // healthy on 1.1.0, rolled back, waiting
    for (a, c) in agents.iter().zip(&codes) {
        match (a.admitted("1.1.0", 50), a.fails) {
            (true, false) => {
                assert_eq!(
                    (*c, a.current().as_deref()),
                    (0, Some("1.1.0")),
                    "agent {}",
                    a.n
                );
                want.0 += 1;
            }
            (true, true) => {
                assert_eq!(
                    (*c, a.current().as_deref()),
                    (4, Some("1.0.0")),
                    "agent {}",
                    a.n
                );
                want.1 += 1;
            }
            (false, _) => {
                assert_eq!(
                    (*c, a.current().as_deref()),
                    (0, Some("1.0.0")),
                    "agent {}",
                    a.n
                );
                want.2 += 1;
            }
        }
    }
    assert!(
        want.1 >= 3 && want.1 * 10 > want.0 + want.1,
        "the buckets give the guard something to do: {want:?}"
    );

    // fleet status counts exactly.
    let out = reg.cli(&[
        "fleet",
        "status",
        "--registry",
        &reg.url,
        "--app",
        APP,
        "--json",
    ]);
    ok(&out);
    let v = json_of(&out);
    assert_eq!(v["reports"], 100, "{v:#}");
    assert_eq!(v["bad"], json!([]));
    let prod = &v["channels"][0];
    assert_eq!(prod["channel"], "prod");
    assert_eq!(prod["machines"], 100);
    let row = |ver: &str| {
        prod["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == ver)
            .unwrap()
            .clone()
    };
    assert_eq!(row("1.1.0")["machines"], want.0);
    assert_eq!(row("1.1.0")["states"]["healthy"], want.0);
    assert_eq!(row("1.0.0")["machines"], want.1 + want.2);
    assert_eq!(row("1.0.0")["states"]["failed"], want.1);
    assert_eq!(row("1.0.0")["states"]["waiting-for-rollout"], want.2);
    assert_eq!(prod["failure_reasons"][0]["machines"], want.1);
    assert_eq!(prod["behind"].as_array().unwrap().len(), want.1 + want.2);

    // The gate refuses to take 1.1.0 further, and moves nothing.
    let secret = reg.secret.to_str().unwrap().to_string();
    let out = reg.cli(&[
        "promote",
        "--registry",
        &reg.url,
        "--app",
        APP,
        "--from",
        "prod",
        "--channel",
        "stable",
        "--require-healthy",
        "95",
        "--secret-key",
        &secret,
    ]);
    assert_eq!(code(&out), 7, "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{} of {}", want.0, want.0 + want.1)),
        "{}",
        text(&out)
    );
    assert!(
        !reg.dir.join("demo/channels/stable.json").exists(),
        "nothing was promoted"
    );

    // The guard halts the rollout at 50%.
    let guard = || {
        reg.cli(&[
            "guard",
            "--registry",
            &reg.url,
            "--app",
            APP,
            "--channel",
            "prod",
            "--max-failed",
            "10",
            "--secret-key",
            &secret,
            "--json",
        ])
    };
    let out = guard();
    assert_eq!(code(&out), 8, "{}", text(&out));
    let g = json_of(&out);
    assert_eq!(g["did"], "halted");
    assert_eq!(g["verdict"]["counts"]["tried"], want.0 + want.1);
    assert_eq!(g["verdict"]["counts"]["failed"], want.1);
    let halted = channel_bytes(&reg, "prod");

    // Machines not admitted stay on 1.0.0, and are no longer promised the 100% wave.
    let waiting: Vec<&Agent> = agents.iter().filter(|a| !a.admitted("1.1.0", 50)).collect();
    assert!(update_all(&waiting).iter().all(|c| *c == 0));
    assert!(waiting
        .iter()
        .all(|a| a.current().as_deref() == Some("1.0.0")));
    let why = json_of(&waiting[0].run(&["why", "--json"]));
    assert_eq!(why["rollout"]["share_now_percent"], 50, "{why:#}");
    assert_eq!(
        why["rollout"]["admitted_from"],
        Value::Null,
        "a halted rollout announces no wave: {why:#}"
    );

    // A second guard sees the halt and writes nothing.
    let out = guard();
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json_of(&out)["did"], "already-halted");
    assert_eq!(channel_bytes(&reg, "prod"), halted);

    // Resume: the plan applies again, and the machines are promised the 100% wave.
    let out = reg.cli(&[
        "rollout",
        "resume",
        "--registry",
        &reg.url,
        "--app",
        APP,
        "--channel",
        "prod",
        "--secret-key",
        &secret,
    ]);
    ok(&out);
    assert!(update_all(&waiting).iter().all(|c| *c == 0));
    let why = json_of(&waiting[0].run(&["why", "--json"]));
    assert_eq!(why["rollout"]["admitted_from"]["percent"], 100, "{why:#}");
}
