//! Logging: readable text on a terminal, one JSON object per line under systemd (where
//! the journal keeps structure) or when asked.

use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Set up logging on stderr for this process:
/// - on a terminal: compact, coloured text with times;
/// - to the journal (systemd connected stderr to it: `JOURNAL_STREAM` names stderr):
///   each line starts with its syslog priority (`<3>` for errors ... `<7>` for debug),
///   which journald strips and stores, so `journalctl -p warning` works; no time of our
///   own, the journal keeps one;
/// - anywhere else (a file, a pipe): plain text with an RFC 3339 time on every line,
///   because nothing else records when it happened.
///
/// JSON (`--log-format json`, or auto under systemd) is one object per line, with the
/// same priority prefix when it goes to the journal.
pub fn init(format: Option<&str>, verbose: u8) {
    let default = match verbose {
        0 => "updraft=info",
        1 => "updraft=debug",
        _ => "updraft=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let under_systemd =
        std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("JOURNAL_STREAM").is_some();
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        Some("json") => true,
        Some("text") => false,
        _ => under_systemd && !terminal,
    };
    let journal = stderr_is_journal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        let inner = event_format().json().flatten_event(true).with_target(false);
        builder
            .fmt_fields(JsonFields::new())
            .event_format(Priority { inner, journal })
            .try_init()
    } else if terminal {
        let inner = event_format().compact().with_target(false);
        builder.event_format(Priority { inner, journal }).try_init()
    } else if journal {
        let inner = event_format()
            .compact()
            .with_target(false)
            .with_ansi(false)
            .without_time();
        builder
            .with_ansi(false)
            .event_format(Priority { inner, journal })
            .try_init()
    } else {
        let inner = event_format().compact().with_target(false).with_ansi(false);
        builder
            .with_ansi(false)
            .event_format(Priority { inner, journal })
            .try_init()
    };
}

fn event_format() -> format::Format {
    format::Format::default()
}

/// The sd-daemon priority prefix of a level (sd-daemon(3)): journald reads it from the
/// start of each line of a stream and files the line at that priority.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event formatter that puts the priority prefix in front of what `inner` writes,
/// when the log goes to the journal.
struct Priority<F> {
    inner: F,
    journal: bool,
}

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if self.journal {
            write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// Whether stderr goes to the journal (see [`stdout_is_journal`] for the test): the
/// final error line then carries the error priority too.
pub fn stderr_is_journal() -> bool {
    is_journal(std::io::stderr().as_fd())
}

/// The priority prefix (`<N>`, see [`syslog_priority`]) for a line written to stderr
/// outside the logger (the final `error:` line, the seed-style `[deploy] ...` lines)
/// when stderr is the journal; elsewhere nothing.
pub fn priority_prefix(priority: u8) -> String {
    if stderr_is_journal() {
        format!("<{priority}>")
    } else {
        String::new()
    }
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
