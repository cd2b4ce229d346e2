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
