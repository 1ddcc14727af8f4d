//! The CLI commands of DESIGN §6.2; `main.rs` only parses arguments and calls these.
//! Each returns the process exit code; errors come back as messages saying what to do next.

use crate::clock::Clock;
use crate::image_input::{self, DEFAULT_DECODER};
use crate::kiosk::Kiosk;
use crate::outcome::ScanOutcome;
use crate::stream::{self, Format};
use crate::sync;
use crate::terminal::Terminal;
use crate::Settings;
use chrono::NaiveDate;
use shared::calendar::MealKind;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Exit code when the server cannot be reached (sync, enroll).
pub const EXIT_UNREACHABLE: i32 = 2;
/// Exit code of `redeem` when the verdict is not `ok`.
pub const EXIT_REFUSED: i32 = 3;
/// Exit code of `scan --image` when a picture could not be read or held no QR code.
pub const EXIT_NO_CODE: i32 = 4;
/// Exit code of `scan` and `redeem` when a scan could not be committed to the log
/// (`not_recorded`): nothing of that scan may be relied on.
pub const EXIT_NOT_RECORDED: i32 = 5;
/// Exit code of `sync` when the server refuses this terminal's version; events stay here.
pub const EXIT_UPGRADE_REQUIRED: i32 = 6;
/// Exit code of `check` when the log fails a check.
pub const EXIT_CHECK_FAILED: i32 = 7;

pub struct Context {
    pub data_dir: PathBuf,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
}

pub type CmdResult = anyhow::Result<i32>;

async fn open(ctx: &Context) -> anyhow::Result<Terminal> {
    Ok(Terminal::open(&ctx.data_dir, ctx.settings.clone(), ctx.clock.clone()).await?)
}

pub async fn enroll(ctx: &Context, server: &str, code: &str, label: Option<&str>) -> CmdResult {
    match sync::enroll(
        &ctx.data_dir,
        server,
        code,
        label,
        &ctx.settings,
        ctx.clock.clone(),
    )
    .await
    {
        Ok(s) => {
            println!(
                "enrolled terminal {} for {} (BIN {}, school code {}): {} vouchers, trust list v{}",
                s.terminal_id,
                s.school_name,
                s.school_bin,
                s.school_code,
                s.vouchers,
                s.trust_version
            );
            println!("data dir: {}", ctx.data_dir.display());
            Ok(0)
        }
        Err(sync::EnrollError::Client(crate::client::ClientError::Unreachable { url, detail })) => {
            eprintln!(
                "error: no answer from the server at {url} ({detail}). The enrollment may or may \
                 not have reached it: check the network and run the same `canteen-terminal enroll` \
                 command again with the same code (repeating it is safe)"
            );
            Ok(EXIT_UNREACHABLE)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn sync(ctx: &Context, json: bool) -> CmdResult {
    let terminal = open(ctx).await?;
    match terminal.sync().await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "synced: {} events uploaded ({} already on the server, server holds up to seq {}), \
                     {} snapshot with {} vouchers, trust list v{}, clock offset {} s",
                    r.uploaded,
                    r.already_had,
                    r.server_last_seq,
                    if r.full_snapshot { "full" } else { "incremental" },
                    r.vouchers_received,
                    r.trust_version,
                    r.server_offset
                );
            }
            for w in terminal.status().await?.warnings {
                eprintln!("warning: {} / {}", w.message_kk, w.message_ru);
            }
            Ok(0)
        }
        Err(e) if e.is_unreachable() => {
            eprintln!("error: {e}");
            Ok(EXIT_UNREACHABLE)
        }
        Err(e) if e.is_upgrade_required() => {
            eprintln!("error: {e}");
            Ok(EXIT_UPGRADE_REQUIRED)
        }
        Err(e) => Err(e.into()),
    }
}

fn print_warnings(status: &crate::terminal::Status) {
    for w in &status.warnings {
        eprintln!("warning: {} / {}", w.message_kk, w.message_ru);
    }
}

pub async fn scan(
    ctx: &Context,
    json: bool,
    images: &[PathBuf],
    meal: Option<MealKind>,
) -> CmdResult {
    let terminal = open(ctx).await?;
    print_warnings(&terminal.status().await?);
    let format = if json { Format::Json } else { Format::Text };
    if images.is_empty() {
        let _checkpoints = crate::store::spawn_checkpointer(
            terminal.pool().clone(),
            crate::store::CHECKPOINT_EVERY,
        );
        let stdin = tokio::io::BufReader::new(tokio::io::stdin());
        let mut out = std::io::stdout().lock();
        let stats = stream::scan_stream(&terminal, stdin, &mut out, format, meal).await?;
        return Ok(finish(stats.not_recorded));
    }
    let mut code = 0;
    let mut not_recorded = 0;
    for path in images {
        let (c, failed) = scan_image(&terminal, path, format, meal).await?;
        code = code.max(c);
        not_recorded += failed;
    }
    let after = finish(not_recorded);
    Ok(if after != 0 { after } else { code })
}

/// The exit code after scanning: `EXIT_NOT_RECORDED` when any scan failed to commit.
fn finish(not_recorded: u64) -> i32 {
    if not_recorded == 0 {
        return 0;
    }
    eprintln!(
        "error: {not_recorded} scan(s) were not recorded; do not rely on them. Tell the \
         administrator: free space on the data dir's disk or replace it, then run \
         `canteen-terminal check`"
    );
    EXIT_NOT_RECORDED
}

async fn scan_image(
    terminal: &Terminal,
    path: &Path,
    format: Format,
    meal: Option<MealKind>,
) -> anyhow::Result<(i32, u64)> {
    let owned = path.to_owned();
    let decoded =
        tokio::task::spawn_blocking(move || image_input::decode_file(&owned, DEFAULT_DECODER))
            .await?;
    let mut out = std::io::stdout().lock();
    let tokens = match decoded {
        Ok(tokens) => tokens,
        Err(e) => {
            writeln!(out, "{}", no_code_line(path, &e.to_string(), format))?;
            return Ok((EXIT_NO_CODE, 0));
        }
    };
    if tokens.is_empty() {
        writeln!(out, "{}", no_code_line(path, "no QR code found", format))?;
        return Ok((EXIT_NO_CODE, 0));
    }
    let mut not_recorded = 0;
    for token in tokens {
        let line = match terminal.scan(&token, meal).await {
            Ok(outcome) => stream::render(&outcome, format),
            Err(failed) => {
                not_recorded += 1;
                stream::render_not_recorded(&failed, format)
            }
        };
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok((0, not_recorded))
}

fn no_code_line(path: &Path, reason: &str, format: Format) -> String {
    let kk = "Суретте QR-код табылмады.";
    let ru = "На снимке не найден QR-код.";
    match format {
        Format::Text => format!("no_code | {} | {kk} | {ru} ({reason})", path.display()),
        Format::Json => serde_json::json!({
            "verdict": "no_code", "serve": false, "voucher_id": null, "display_name": null,
            "served_at": null, "image": path.display().to_string(), "error": reason,
            "message_kk": kk, "message_ru": ru,
        })
        .to_string(),
    }
}

pub async fn redeem(ctx: &Context, card: &str, meal: Option<MealKind>, json: bool) -> CmdResult {
    if card.trim().is_empty() {
        anyhow::bail!("the card number is empty; type the number printed on the pupil's ID card");
    }
    let terminal = open(ctx).await?;
    print_warnings(&terminal.status().await?);
    let format = if json { Format::Json } else { Format::Text };
    let outcome: ScanOutcome = match terminal.redeem_card(card, meal).await {
        Ok(outcome) => outcome,
        Err(failed) => {
            println!("{}", stream::render_not_recorded(&failed, format));
            return Ok(finish(1));
        }
    };
    println!("{}", stream::render(&outcome, format));
    Ok(if outcome.serve { 0 } else { EXIT_REFUSED })
}

/// The terminal's state for staff: sync, clock, free space, warnings.
async fn print_status(ctx: &Context, terminal: &Terminal) -> CmdResult {
    let status = terminal.status().await?;
    println!(
        "terminal {} ({}) of {} (BIN {})",
        status.terminal_id,
        status.label.as_deref().unwrap_or("-"),
        status.school_name,
        status.school_bin
    );
    println!("server: {}", status.server_url);
    println!(
        "last sync: {}; events not yet uploaded: {}",
        status.last_sync_local.as_deref().unwrap_or("never"),
        status.unsynced_events
    );
    if let Some(e) = &status.last_sync_error {
        println!("last sync error: {e}");
    }
    match status.free_bytes {
        Some(b) => println!(
            "free space in {}: {} MB (warning below {} MB)",
            ctx.data_dir.display(),
            b / (1024 * 1024),
            ctx.settings.low_space_warning_mb
        ),
        None => println!("free space in {}: unknown", ctx.data_dir.display()),
    }
    println!("vouchers: {}", status.vouchers);
    for w in &status.warnings {
        println!("warning [{}]: {} / {}", w.code, w.message_kk, w.message_ru);
    }
    Ok(0)
}

/// Full `PRAGMA integrity_check` of the log and its own invariants (seq contiguous, every `ok`
/// with its meal row). Opening already refuses a log that fails the quick check.
pub async fn check(ctx: &Context) -> CmdResult {
    let terminal = open(ctx).await?;
    let mut problems = crate::store::check_integrity(terminal.pool(), true).await?;
    problems.extend(crate::store::check_log(terminal.pool()).await?);
    let events = crate::store::last_seq(terminal.pool()).await?;
    if problems.is_empty() {
        println!(
            "ok: {} passes integrity_check; {events} events, seq contiguous, every meal with its event",
            terminal.data_dir().join(crate::store::DB_FILE).display()
        );
        return Ok(0);
    }
    for p in &problems {
        println!("problem: {p}");
    }
    eprintln!(
        "error: the meal log failed its check. Stop the terminal; restore terminal.db from the \
         latest backup, or, knowing that meals not yet sent to the server are lost, move the data \
         dir aside and enroll again with a new code"
    );
    Ok(EXIT_CHECK_FAILED)
}

pub async fn report(ctx: &Context, date: Option<NaiveDate>, json: bool) -> CmdResult {
    let terminal = open(ctx).await?;
    let report = terminal.report(date).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(0)
}

pub async fn kiosk(ctx: &Context, listen: Option<&str>) -> CmdResult {
    let terminal = Arc::new(open(ctx).await?);
    let addr = listen.unwrap_or(&ctx.settings.listen).to_owned();
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e}; pick another --listen address")
    })?;
    println!(
        "kiosk for {} at http://{} (sync every {} s; Ctrl+C to stop)",
        terminal.data_dir().display(),
        listener.local_addr()?,
        ctx.settings.sync_interval_seconds
    );
    Kiosk::new(terminal).serve(listener).await?;
    Ok(0)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum StatusFormat {
    Text,
    Json,
    Prometheus,
}

pub async fn status(ctx: &Context, format: StatusFormat) -> CmdResult {
    let terminal = open(ctx).await?;
    match format {
        StatusFormat::Prometheus => {
            let figures = crate::ops::figures(&terminal).await?;
            print!("{}", crate::ops::exposition(&figures));
            Ok(0)
        }
        StatusFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&terminal.status().await?)?
            );
            Ok(0)
        }
        StatusFormat::Text => print_status(ctx, &terminal).await,
    }
}

pub async fn backup(ctx: &Context, to: &Path) -> CmdResult {
    let terminal = open(ctx).await?;
    crate::ops::backup(&terminal, to).await?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!("backup written to {} ({size} bytes)", to.display());
    Ok(0)
}
