//! Logging: readable text on a terminal, one JSON object per line under systemd (where
//! the journal keeps structure) or when asked.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(format: Option<&str>, verbose: u8) {
    let default = match verbose {
        0 => "updraft=info",
        1 => "updraft=debug",
        _ => "updraft=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let under_systemd =
        std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("JOURNAL_STREAM").is_some();
    let json = match format {
        Some("json") => true,
        Some("text") => false,
        _ => under_systemd && !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else if std::io::stderr().is_terminal() {
        builder.compact().try_init()
    } else {
        builder.without_time().with_ansi(false).compact().try_init()
    };
}

/// Whether standard output goes to the journal: systemd sets `JOURNAL_STREAM` to the
/// device and inode of the stream it connected, and the documented test is to compare
/// them with what fd 1 is. There, a summary line on stdout would repeat the log record
/// next to it, so commands that also log what they print can stay quiet.
pub fn stdout_is_journal() -> bool {
    // Only if the log record really goes there too: stderr is the journal as well,
    // and info records are not filtered out.
    tracing::enabled!(tracing::Level::INFO)
        && is_journal(std::io::stdout().as_fd())
        && is_journal(std::io::stderr().as_fd())
}

use std::os::fd::AsFd;

fn is_journal(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let value = value.to_string_lossy();
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = fd.try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}
