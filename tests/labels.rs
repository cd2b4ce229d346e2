//! Versions that are not semantic versions: the seed's build names releases by
//! `git rev-parse --short HEAD`, else `date +%Y%m%d%H%M%S`. End to end with the real
//! binary, a real git repository, a registry served over loopback HTTP and the fixture
//! app's real server: pack, publish, promote, agent update, rollback, list, prune, pin,
//! unblock, yank, registry verify, fleet reports; a root mixing seed-era hash directories
//! with updraft's releases; and labels that must be refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::app::*;
use support::registry::*;

/// A git repository of the app's sources, committing with fixed dates so the hashes are
/// the same on every run.
struct Repo {
    dir: PathBuf,
    commits: u32,
}

impl Repo {
    fn new(dir: &Path) -> Repo {
        std::fs::create_dir_all(dir).unwrap();
        let repo = Repo {
            dir: dir.to_path_buf(),
            commits: 0,
        };
        repo.git(&["-c", "init.defaultBranch=main", "init", "--quiet"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let date = format!("2026-11-30T04:{:02}:00Z", self.commits);
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "user.name=CI", "-c", "user.email=ci@example.invalid"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .output()
            .expect("git must be installed (.ci/setup installs it)");
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Commit a change and return what the seed's build script would call the version.
    fn commit(&mut self, message: &str) -> String {
        self.commits += 1;
        std::fs::write(self.dir.join("CHANGES"), format!("{message}\n")).unwrap();
        self.git(&["add", "CHANGES"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "--short", "HEAD"])
    }

    /// Commit until the short hash sorts *before* `than` as a string, so a test passing
    /// with it proves no string comparison decided anything.
    fn commit_sorting_before(&mut self, than: &str) -> String {
        loop {
            let h = self.commit(&format!("change {}", self.commits + 1));
            if h.as_str() < than {
                return h;
            }
        }
    }
}

/// The seed's `inside-build.sh` for the fixture app: a build directory holding the
/// release tree and `VERSION`, then `updraft pack` instead of `tar czf`.
fn build_release(out: &Path, version: &str, mode: &str) -> PathBuf {
    let build = out.join(format!("artifacts/build-{version}"));
    let mut cmd = Command::new(fixtures().join("app/make-release.sh"));
    cmd.arg(&build).arg(version);
    if !mode.is_empty() {
        cmd.arg(mode);
    }
    assert!(cmd.status().unwrap().success(), "make-release.sh");
    let tarball = out.join(format!("artifacts/my-app-{version}.tar.gz"));
    let packed = Command::new(bin())
        .arg("pack")
        .arg(&build)
        .args(["--version", version, "--output"])
        .arg(&tarball)
        .output()
        .unwrap();
    ok(&packed);
    tarball
}

fn publish_and_promote(reg: &Registry, version: &str, tarball: &Path) {
    reg.publish(version, tarball, Some("dev"), &[]);
    let out = reg.cli(&[
        "promote",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--from",
        "dev",
        "--channel",
        "prod",
        "--secret-key",
        reg.secret.to_str().unwrap(),
    ]);
    ok(&out);
}

/// `list --json`'s versions, oldest first.
fn listed(app: &App) -> Vec<String> {
    json(&app.run(&["list", "--json"]))["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap().to_string())
        .collect()
}

/// What the agent would decide now (`check --json` fetches the channel, changes nothing).
fn decision(app: &App) -> String {
    let c = json(&app.run(&["check", "--json"]));
    c["decision"].as_str().unwrap_or_default().to_string()
}

#[test]
fn git_hash_versions_from_build_to_agent_and_back() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let app = App::new(&agent_toml(
        &reg,
        &reg.http,
        "prod",
        "[report]\nenabled = true\nurl = \"REPORTS\"\n"
            .replace("REPORTS", &reg.url)
            .as_str(),
    ));
    let mut repo = Repo::new(&tmp.path().join("src"));

    // First build: published to dev, promoted to prod, installed by the agent.
    let h1 = repo.commit("first");
    assert_eq!(h1.len(), 7, "{h1}");
    publish_and_promote(&reg, &h1, &build_release(tmp.path(), &h1, ""));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h1.as_str()));
    assert_eq!(app.health_body(), Some(format!("ok {h1}")));
    assert_eq!(code(&app.run(&["check"])), 0, "up to date");

    // The next commit's hash sorts before the first one: it is still the newer build,
    // because the channel moved to it.
    let h2 = repo.commit_sorting_before(&h1);
    publish_and_promote(&reg, &h2, &build_release(tmp.path(), &h2, ""));
    let check = app.run(&["check", "--json"]);
    assert_eq!(code(&check), 10, "{}", stderr(&check));
    assert_eq!(json(&check)["decision"], "update");
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h2.as_str()));
    assert_eq!(app.health_body(), Some(format!("ok {h2}")));
    assert_eq!(listed(&app), [h1.clone(), h2.clone()], "install order");

    // A hand rollback goes to the release installed before (not the one before it in
    // the alphabet) and sticks (issue 10): h2 is held back here until unblocked, then
    // the agent takes the channel's build again, as for SemVer.
    let rb = json(&app.run(&["rollback", "--json"]));
    assert_eq!(rb["version"], h1.as_str(), "{rb}");
    assert_eq!(app.current().as_deref(), Some(h1.as_str()));
    assert_eq!(decision(&app), "held-back");
    ok(&app.run(&["update"]));
    assert_eq!(
        app.current().as_deref(),
        Some(h1.as_str()),
        "the rollback sticks"
    );
    ok(&app.run(&["unblock", &h2]));
    assert_eq!(decision(&app), "update");
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h2.as_str()));
    ok(&app.run(&["rollback", "--version", &h1]));
    assert_eq!(app.current().as_deref(), Some(h1.as_str()));
    ok(&app.run(&["update"]));
    assert_eq!(
        app.current().as_deref(),
        Some(h1.as_str()),
        "held back again"
    );
    ok(&app.run(&["unblock", &h2]));

    // A third build, then the operator moves prod back to h2: followed at once.
    let h3 = repo.commit("third");
    publish_and_promote(&reg, &h3, &build_release(tmp.path(), &h3, ""));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h3.as_str()));
    reg.promote(&h2, "prod", &[]);
    assert_eq!(decision(&app), "follow-channel-back");
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h2.as_str()));
    assert_eq!(decision(&app), "up-to-date");
    let why = json(&app.run(&["why", "--json"]));
    assert_eq!(why["decision"], "up-to-date", "{why}");
    assert_eq!(why["current"], h2.as_str(), "{why}");
    let text = stdout(&app.run(&["why"]));
    assert!(text.contains(&format!("running {h2}")), "{text}");

    // Pin the newer build: switched to at once; unpinned, this machine runs a build
    // newer than the channel's, which has not moved since: it stays.
    ok(&app.run(&["pin", &h3]));
    assert_eq!(app.current().as_deref(), Some(h3.as_str()));
    assert_eq!(json(&app.run(&["status", "--json"]))["pinned"], h3.as_str());
    ok(&app.run(&["unpin"]));
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h3.as_str()));
    assert_eq!(decision(&app), "ahead-of-channel");

    // Yank h3 on prod: the agent leaves it for the channel's build at once.
    let out = reg.cli(&[
        "yank",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--channel",
        "prod",
        "--version",
        &h3,
        "--reason",
        "corrupts the cache",
        "--secret-key",
        reg.secret.to_str().unwrap(),
    ]);
    ok(&out);
    assert_eq!(decision(&app), "leave-yanked");
    ok(&app.run(&["update"]));
    assert_eq!(app.current().as_deref(), Some(h2.as_str()));

    // A build whose health check fails: rolled back, blocked, unblocked by its hash.
    let h4 = repo.commit("fourth, broken");
    publish_and_promote(&reg, &h4, &build_release(tmp.path(), &h4, "broken"));
    assert_eq!(code(&app.run(&["update"])), 4);
    assert_eq!(app.current().as_deref(), Some(h2.as_str()));
    app.assert_blocked(&h4, "health");
    assert_eq!(decision(&app), "blocked");
    let unblock = app.run(&["unblock", &h4]);
    ok(&unblock);
    let status = json(&app.run(&["status", "--json"]));
    assert!(status["blocked"].get(&h4).is_none(), "{status}");

    // The fleet report names the builds by their hashes.
    let report_path = reg.dir.join("demo/fleet/prod");
    let report = std::fs::read_dir(&report_path)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .expect("a fleet report");
    let r = updraft::registry::report::Report::parse(&report, &"demo".parse().unwrap())
        .unwrap_or_else(|e| panic!("report refused: {e}"));
    assert_eq!(r.current.map(|v| v.to_string()), Some(h2.clone()));
    let fleet = reg.cli(&[
        "fleet",
        "status",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--json",
    ]);
    ok(&fleet);
    assert!(
        stdout(&fleet).contains(&format!("\"{h2}\"")),
        "{}",
        stdout(&fleet)
    );

    // Prune keeps the newest by install time, never current (h2) or previous (h3).
    assert_eq!(
        listed(&app),
        [h1.clone(), h2.clone(), h3.clone(), h4.clone()]
    );
    let pruned = json(&app.run(&["prune", "--keep", "3", "--json"]));
    assert_eq!(pruned["removed"], serde_json::json!([h1]), "{pruned}");
    assert_eq!(listed(&app), [h2.clone(), h3.clone(), h4.clone()]);

    // The registry holds every build under its hash, all verified.
    let verify = reg.cli(&[
        "registry",
        "verify",
        "--registry",
        &reg.url,
        "--app",
        "demo",
        "--public-key",
        reg.public.to_str().unwrap(),
    ]);
    ok(&verify);
    for h in [&h1, &h2, &h3, &h4] {
        assert!(
            reg.dir
                .join(format!("demo/releases/{h}/release.json"))
                .is_file(),
            "{h}"
        );
    }
}

/// The seed's fallback when the build is not in a git checkout: `date +%Y%m%d%H%M%S`.
/// A build of an older timestamp deployed after a newer one (a hotfix branch built
/// earlier, shipped later) is the newest release on the machine.
#[test]
fn timestamp_versions_deploy_publish_update_rollback_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let stamp = |when: &str| {
        let out = Command::new("date")
            .args(["-u", "-d", when, "+%Y%m%d%H%M%S"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (t1, t2, t3) = (
        stamp("2026-11-30 04:15:00"),
        stamp("2026-11-29 00:00:00"),
        stamp("2026-11-30 09:00:00"),
    );
    assert_eq!(t1, "20261130041500");

    // Push mode, the seed's deploy-release.sh: deploy, list, rollback, prune.
    let push = App::new("");
    for t in [&t1, &t2, &t3] {
        ok(&push.deploy(t, &build_release(tmp.path(), t, "")));
        assert_eq!(push.current().as_deref(), Some(t.as_str()));
        assert_eq!(push.health_body(), Some(format!("ok {t}")));
    }
    assert_eq!(listed(&push), [t1.clone(), t2.clone(), t3.clone()]);
    let text = stdout(&push.run(&["list"]));
    assert!(text.contains(&format!("* {t3}")), "{text}");
    ok(&push.run(&["rollback"]));
    assert_eq!(push.current().as_deref(), Some(t2.as_str()));
    let status = json(&push.run(&["status", "--json"]));
    assert_eq!(status["current"], t2.as_str());
    assert_eq!(status["previous"], t3.as_str());
    assert_eq!(status["rollback_target"], t3.as_str());
    // keep 2: current (t2) and previous (t3) stay; t1, the oldest install, goes.
    let pruned = json(&push.run(&["prune", "--keep", "2", "--json"]));
    assert_eq!(pruned["removed"], serde_json::json!([t1]), "{pruned}");

    // Pull mode: published, promoted, installed by the agent, moving "back" in time.
    let reg = Registry::new(&tmp.path().join("reg"));
    let agent = App::new(&agent_toml(&reg, &reg.http, "prod", ""));
    publish_and_promote(&reg, &t1, &build_release(tmp.path(), &t1, ""));
    ok(&agent.run(&["update"]));
    assert_eq!(agent.current().as_deref(), Some(t1.as_str()));
    publish_and_promote(&reg, &t2, &build_release(tmp.path(), &t2, ""));
    assert_eq!(decision(&agent), "update");
    ok(&agent.run(&["update"]));
    assert_eq!(agent.current().as_deref(), Some(t2.as_str()));
    ok(&agent.run(&["rollback"]));
    assert_eq!(agent.current().as_deref(), Some(t1.as_str()));
}

/// A VM the seed's scripts managed by git hash, taken over by updraft in place: the
/// hash directories are listed, rolled back to and pruned under their own names, ordered
/// by when they were built (directory mtime) before updraft's own installs.
#[test]
fn a_root_mixing_seed_hash_directories_and_updraft_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::new("");
    let releases = app.root.join("releases");
    // The seed's deploys, oldest first: `tar -xzf` into releases/<hash>, then the link.
    let seed = [
        ("9f3e2d1", "2026-11-01 10:00"),
        ("1c0ffee", "2026-11-02 10:00"),
        ("v1.0.0", "2026-11-03 10:00"),
        ("0badf00", "2026-11-04 10:00"),
    ];
    for (name, when) in seed {
        let dir = releases.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let t = release_tarball(tmp.path(), name, "");
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(&t)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("touch")
            .args(["-d", when])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::os::unix::fs::symlink(releases.join("0badf00"), releases.join("current")).unwrap();
    // Not releases: left alone by every command.
    std::fs::create_dir_all(releases.join("lost+found")).unwrap();
    std::fs::create_dir_all(releases.join("old build")).unwrap();

    assert_eq!(listed(&app), ["9f3e2d1", "1c0ffee", "1.0.0", "0badf00"]);
    let status = json(&app.run(&["status", "--json"]));
    assert_eq!(status["current"], "0badf00", "{status}");
    assert_eq!(status["previous"], serde_json::Value::Null, "{status}");
    assert_eq!(status["rollback_target"], "1.0.0", "{status}");
    let text = stdout(&app.run(&["status"]));
    assert!(text.contains("rollback:  1.0.0"), "{text}");

    // Without a recorded previous, rollback goes to the directory built before current.
    ok(&app.run(&["rollback"]));
    assert_eq!(
        app.current().as_deref(),
        Some("v1.0.0"),
        "under its own name"
    );
    assert!(releases.join("v1.0.0").is_dir(), "seed directory renamed");
    ok(&app.run(&["rollback", "--version", "1c0ffee"]));
    assert_eq!(app.current().as_deref(), Some("1c0ffee"));
    assert_eq!(app.health_body().as_deref(), Some("ok 1c0ffee"));

    // updraft's own releases come after every seed-era one, whatever their kind.
    ok(&app.deploy("1.1.0", &release_tarball(tmp.path(), "1.1.0", "")));
    assert_eq!(
        listed(&app),
        ["9f3e2d1", "1c0ffee", "1.0.0", "0badf00", "1.1.0"]
    );
    // The sixth release: the deploy prunes to `keep` (5), and the oldest seed build goes.
    let out = app.deploy("abc1234", &release_tarball(tmp.path(), "abc1234", ""));
    ok(&out);
    assert_eq!(json(&app.run(&["status", "--json"]))["current"], "abc1234");
    assert_eq!(
        listed(&app),
        ["1c0ffee", "1.0.0", "0badf00", "1.1.0", "abc1234"]
    );
    assert!(!releases.join("9f3e2d1").exists());
    ok(&app.run(&["rollback"]));
    assert_eq!(app.current().as_deref(), Some("1.1.0"));

    // Prune keeps the newest: current (1.1.0), previous (abc1234), then the newest
    // seed-era directory; the oldest seed builds go, the `v1.0.0` one under its name.
    let pruned = json(&app.run(&["prune", "--keep", "3", "--json"]));
    assert_eq!(
        pruned["removed"],
        serde_json::json!(["1c0ffee", "1.0.0"]),
        "{pruned}"
    );
    assert!(!releases.join("v1.0.0").exists());
    assert_eq!(listed(&app), ["0badf00", "1.1.0", "abc1234"]);
    assert!(releases.join("lost+found").is_dir() && releases.join("old build").is_dir());
}

#[test]
fn invalid_versions_are_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let app = App::new("");
    let tarball = release_tarball(tmp.path(), "1.0.0", "");
    let packed = tmp.path().join("x.tar.gz");
    let long = "a".repeat(200);
    // (version, what the error must say)
    let cases = [
        ("../x", "must start with a letter or digit"),
        ("a/../x", "may contain only letters, digits"),
        ("", "must not be empty"),
        (long.as_str(), "must be at most 128 characters"),
        ("abc\u{1}def", "may contain only letters, digits"),
        ("abc\ndef", "may contain only letters, digits"),
        ("current", "is reserved"),
        ("a..b", "must not contain '..'"),
    ];
    for (version, says) in cases {
        for args in [
            vec![
                "deploy",
                "--version",
                version,
                "--artifact-path",
                tarball.to_str().unwrap(),
            ],
            vec!["rollback", "--version", version],
            vec!["pin", version],
            vec![
                "pack",
                tmp.path().to_str().unwrap(),
                "--version",
                version,
                "--output",
                packed.to_str().unwrap(),
            ],
        ] {
            let out = app.run(&args);
            let err = stderr(&out);
            assert_eq!(code(&out), 2, "{args:?}: {err}");
            assert!(err.contains("invalid version"), "{args:?}: {err}");
            assert!(err.contains(says), "{args:?}: {err}");
            // The value is shown escaped: a control character never reaches the terminal.
            assert!(!err.contains('\u{1}'), "{args:?}: {err:?}");
        }
    }
    assert!(!app.root.join("releases").exists() || listed(&app).is_empty());
    assert!(!packed.exists());
}
