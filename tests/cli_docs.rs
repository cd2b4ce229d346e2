//! `updraft completions` and `updraft man`: what packages install, checked by the tools
//! that will read it (bash completing a real command line, the roff a man viewer reads).

mod support;

use std::process::Command;

use support::{bin, ok, stdout, text};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// What bash's programmable completion offers for `words` (the cursor after the last).
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("updraft.bash");
    std::fs::write(&path, script).unwrap();
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let driver = format!(
        "source '{}'\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={}\n\
         COMP_LINE='{line}'\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _updraft updraft '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words.last().unwrap(),
        words[words.len() - 2],
    );
    let out = Command::new("bash").arg("-c").arg(driver).output().unwrap();
    ok(&out);
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completion_completes_commands_and_flags() {
    let out = run(&["completions", "bash"]);
    ok(&out);
    let script = stdout(&out);
    let commands = bash_complete(&script, &["updraft", "dep"]);
    assert_eq!(commands, ["deploy"], "completing `updraft dep`");
    let flags = bash_complete(&script, &["updraft", "deploy", "--artifact-"]);
    assert!(
        flags.iter().any(|f| f == "--artifact-path"),
        "completing `updraft deploy --artifact-`: {flags:?}"
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    for shell in ["zsh", "fish"] {
        let out = run(&["completions", shell]);
        ok(&out);
        let script = stdout(&out);
        for cmd in ["deploy", "rollback", "publish", "promote", "why", "man"] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    let fish = stdout(&run(&["completions", "fish"]));
    assert!(fish.contains("complete -c updraft"), "{fish}");
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("bash"),
        "the error lists the shells: {}",
        text(&out)
    );
}

#[test]
fn man_prints_the_page_and_writes_one_per_command() {
    let out = run(&["man"]);
    ok(&out);
    let page = stdout(&out);
    assert!(page.contains(".TH updraft 1"), "{page}");
    assert!(page.contains("deploy"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    ok(&run(&["man", "--dir", man.to_str().unwrap()]));
    for page in [
        "updraft.1",
        "updraft-deploy.1",
        "updraft-registry-verify.1",
        "updraft-man.1",
    ] {
        let body =
            std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(body.contains(".TH"), "{page} is not a man page: {body}");
    }
}
