//! Log output: plain text to standard error, coloured only when that is a terminal (journald
//! and log files get no escape codes), or one JSON object per line for a log shipper.

use crate::config::LogFormat;
use std::io::IsTerminal;

/// What is logged without `RUST_LOG`: the server's own events and the access log.
pub const DEFAULT_FILTER: &str = "wallet_server=info,access=info,tower_http=warn";

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_FILTER.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
