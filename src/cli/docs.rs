//! Shell completions and manual pages, generated from the same clap definition as the
//! parser so they cannot drift from the real flags. Packages install their output
//! (`updraft completions bash > .../updraft`, `updraft man --dir .../man1`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory, ValueEnum};

use super::{exit, Cli};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (updraft.1, updraft-deploy.1, ...) into DIR instead of
    /// printing the top-level page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Print a completion script on stdout. Install it where the shell looks, for example
/// `/usr/share/bash-completion/completions/updraft`,
/// `/usr/share/zsh/vendor-completions/_updraft` or
/// `/usr/share/fish/vendor_completions.d/updraft.fish`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "updraft", &mut out);
    write_stdout(&out)?;
    Ok(exit::OK)
}

/// Print the top-level manual page on stdout (`updraft man | man -l -`), or write every
/// page into a directory.
pub fn man(args: ManArgs) -> anyhow::Result<u8> {
    let cmd = Cli::command();
    match args.dir {
        Some(dir) => write_pages(cmd, &dir)?,
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("cannot render the manual page")?;
            write_stdout(&out)?;
        }
    }
    Ok(exit::OK)
}

fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create {}: check the path and its permissions",
            dir.display()
        )
    })?;
    clap_mangen::generate_to(cmd, dir).with_context(|| {
        format!(
            "cannot write manual pages into {}: check the directory's permissions and free space",
            dir.display()
        )
    })
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to standard output"),
    }
}
