//! Tokens from stdin, as a USB keyboard-wedge scanner types them: one per line.

use crate::outcome::{NotRecorded, ScanOutcome};
use crate::terminal::Terminal;
use shared::calendar::MealKind;
use std::io::Write;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line kept; a wedge scanner never sends more, so anything longer is not a token and
/// only its start is needed to say so.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub lines: u64,
    pub served: u64,
    /// Lines whose scan could not be committed (`not_recorded`).
    pub not_recorded: u64,
}

pub fn render(outcome: &ScanOutcome, format: Format) -> String {
    match format {
        Format::Text => outcome.text_line(),
        Format::Json => outcome.json_line(),
    }
}

pub fn render_not_recorded(outcome: &NotRecorded, format: Format) -> String {
    match format {
        Format::Text => outcome.text_line(),
        Format::Json => outcome.json_line(),
    }
}

/// Scans every non-blank input line and prints one verdict line for it, flushed at once so the
/// counter screen (or a pipe) sees it immediately. Blank lines (a stray Enter) are skipped.
pub async fn scan_stream<R: AsyncBufRead + Unpin, W: Write>(
    terminal: &Terminal,
    mut input: R,
    out: &mut W,
    format: Format,
    meal: Option<MealKind>,
) -> std::io::Result<StreamStats> {
    let mut stats = StreamStats::default();
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        let n = read_line_capped(&mut input, &mut buf).await?;
        if n == 0 {
            return Ok(stats);
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim();
        if line.is_empty() {
            continue;
        }
        stats.lines += 1;
        let rendered = match terminal.scan(line, meal).await {
            Ok(outcome) => {
                if outcome.serve {
                    stats.served += 1;
                }
                render(&outcome, format)
            }
            Err(not_recorded) => {
                stats.not_recorded += 1;
                render_not_recorded(&not_recorded, format)
            }
        };
        writeln!(out, "{rendered}")?;
        out.flush()?;
    }
}

/// Reads up to and including `\n`, keeping at most `MAX_LINE` bytes; returns bytes consumed.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    input: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let len = chunk.len();
        input.consume(len);
        consumed += len;
        if done {
            return Ok(consumed);
        }
    }
}
