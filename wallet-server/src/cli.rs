//! The `wallet-server` command line (DESIGN §6.1). Parsing only; the work is in the library.

use crate::clock::Clock;
use crate::config::{Paths, Settings};
use crate::state::AppState;
use crate::store;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

mod retention;
mod server_core;

#[derive(Parser, Debug)]
#[command(
    name = "wallet-server",
    version,
    about = "Tamaq wallet server: school-meal vouchers with dynamic QR codes"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Folder for the SQLite file, keys and outboxes.
    #[arg(long, global = true, default_value = "./data", env = "TAMAQ_DATA_DIR")]
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://...`; default: a SQLite file in the data dir.
    #[arg(long, global = true, env = "TAMAQ_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true, env = "TAMAQ_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API and web pages, and run the background jobs.
    Serve {
        /// Address to listen on (default from config: 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Signing keys for QR tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Import a NOBD roster, CSV or JSON (fields: docs/roster-import.md).
    ImportRoster {
        file: PathBuf,
        /// `snapshot` also removes the listed schools' pupils missing from the file.
        #[arg(long, value_enum, default_value = "incremental")]
        mode: ImportMode,
        /// Import the good rows even if some are rejected.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// The SMS consent process.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Canteen terminals: enrollment codes, listing, revocation.
    #[command(subcommand)]
    Terminal(crate::terminal_sync::cli::TerminalCommand),
    /// Seed a demo school year (schools, pupils, parents, staff, an enrollment code), print
    /// how to try it, then serve.
    Demo {
        /// Address to listen on (default from config: 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// School staff accounts.
    #[command(subcommand)]
    Staff(crate::cli_school::StaffCommand),
    /// Daily reports.
    #[command(subcommand)]
    Report(crate::cli_school::ReportCommand),
    /// Erase the personal data of pupils who left the roster more than `[retention] days` ago
    /// (docs/operations.md, "Retention"); the server also does it once a day.
    Retention {
        /// Act as if it were this time (RFC 3339): decides which pupils are due.
        #[arg(long)]
        now: Option<String>,
    },
    /// Write a consistent copy of the SQLite database while the server keeps running
    /// (PostgreSQL: use pg_dump or base backups, see docs/deploy.md).
    Backup {
        /// The copy to create; an existing file is never overwritten.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ImportMode {
    Incremental,
    Snapshot,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCommand {
    /// Run the consent process once (due requests, repeats, expiries) and send due SMS.
    Tick {
        /// Act as if it were this time (RFC 3339), e.g. 2026-11-26T09:00:00+05:00.
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List signing keys and their validity.
    List,
    /// Start a new signing key; the old one stays trusted until its tokens have expired.
    Rotate,
}

pub fn load_settings(global: &Global) -> anyhow::Result<Settings> {
    Ok(Settings::load(global.config.as_deref(), std::env::vars())?)
}

/// Opens the database, applies migrations and loads the keys.
pub async fn open_state(global: &Global, clock: Clock, demo: bool) -> anyhow::Result<AppState> {
    let settings = load_settings(global)?;
    let paths = Paths::new(global.data_dir.clone(), global.database_url.clone());
    // The database, keys and outboxes hold personal data, login codes and secrets: owner only.
    shared::private_fs::create_private_dir_all(&paths.data_dir)
        .with_context(|| format!("cannot create data dir {}", paths.data_dir.display()))?;
    let store = store::connect(&paths.database_url).await.with_context(|| {
        format!(
            "cannot open database {}",
            store::redact(&paths.database_url)
        )
    })?;
    AppState::assemble(store, settings, paths, clock, demo).await
}

/// `serve` and `demo` on a SQLite database: the data dir's lock, refusing a second server.
fn lock_data_dir(global: &Global) -> anyhow::Result<Option<crate::datadir::DataDirLock>> {
    let paths = Paths::new(global.data_dir.clone(), global.database_url.clone());
    if !paths.database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    std::fs::create_dir_all(&paths.data_dir)
        .with_context(|| format!("cannot create data dir {}", paths.data_dir.display()))?;
    Ok(Some(crate::datadir::DataDirLock::acquire(&paths.data_dir)?))
}

async fn run_demo(global: &Global, listen: Option<String>) -> anyhow::Result<()> {
    let _lock = lock_data_dir(global)?;
    let mut settings = load_settings(global)?;
    let addr = listen.unwrap_or_else(|| settings.server.listen.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {addr}; is another server running there? pick one with --listen"
            )
        })?;
    let base = format!("http://{}", listener.local_addr()?);
    // The consent SMS links to the wallet of this very server.
    settings.server.public_url = base.clone();
    let today = shared::ServiceDay::from_unix(crate::demo::clock().now()).date();
    crate::demo::ensure_school_year(&mut settings, today);
    let paths = Paths::new(global.data_dir.clone(), global.database_url.clone());
    // The database, keys and outboxes hold personal data, login codes and secrets: owner only.
    shared::private_fs::create_private_dir_all(&paths.data_dir)
        .with_context(|| format!("cannot create data dir {}", paths.data_dir.display()))?;
    let store = store::connect(&paths.database_url).await.with_context(|| {
        format!(
            "cannot open database {}",
            store::redact(&paths.database_url)
        )
    })?;
    let state = AppState::assemble(store, settings, paths, crate::demo::clock(), true).await?;
    eprintln!("seeding the demo school year (first run only)...");
    let info = crate::demo::seed(&state).await?;
    let code = crate::demo::enroll_code(&state, &info).await?;
    println!(
        "{}",
        crate::demo::instructions(&base, &state.paths.data_dir, &info, &code)
    );
    crate::app::run_until_signal(state, listener).await
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Staff(cmd) => crate::cli_school::run_staff(&cli.global, cmd).await,
        Command::Report(cmd) => crate::cli_school::run_report(&cli.global, cmd).await,
        Command::Demo { listen } => run_demo(&cli.global, listen).await,
        Command::Backup { to } => {
            let paths = Paths::new(cli.global.data_dir.clone(), cli.global.database_url.clone());
            if !paths.database_url.starts_with("sqlite:") {
                anyhow::bail!(
                    "backup copies SQLite databases; for PostgreSQL use pg_dump or a base backup (docs/deploy.md)"
                );
            }
            let file = paths.database_url.trim_start_matches("sqlite://");
            let file = file.split('?').next().unwrap_or(file);
            // Opening a missing SQLite file would create an empty database and back that up.
            if !std::path::Path::new(file).exists() {
                anyhow::bail!(
                    "no database at {file}; give the server's --data-dir or --database-url"
                );
            }
            let store = store::connect(&paths.database_url).await.with_context(|| {
                format!(
                    "cannot open database {}",
                    store::redact(&paths.database_url)
                )
            })?;
            let started = std::time::Instant::now();
            store
                .backup_to(&to)
                .await
                .with_context(|| format!("backup to {} failed", to.display()))?;
            let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            println!(
                "backup written to {} ({size} bytes, {:.1} s)",
                to.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Serve { listen } => {
            let _lock = lock_data_dir(&cli.global)?;
            let state = open_state(&cli.global, Clock::System, false).await?;
            let addr = listen.unwrap_or_else(|| state.settings.server.listen.clone());
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr}; is another server running there? pick one with --listen"))?;
            println!(
                "wallet-server listening on http://{}",
                listener.local_addr()?
            );
            crate::app::run_until_signal(state, listener).await
        }
        Command::ImportRoster {
            file,
            mode,
            skip_invalid,
        } => {
            let mode = match mode {
                ImportMode::Incremental => crate::roster::Mode::Incremental,
                ImportMode::Snapshot => crate::roster::Mode::Snapshot,
            };
            server_core::import_roster(&cli.global, &file, mode, skip_invalid).await
        }
        Command::Consent(ConsentCommand::Tick { now }) => {
            server_core::consent_tick(&cli.global, now.as_deref()).await
        }
        Command::Retention { now } => retention::run(&cli.global, now.as_deref()).await,
        Command::Terminal(cmd) => {
            let state = open_state(&cli.global, Clock::System, false).await?;
            crate::terminal_sync::cli::run(&state, cmd).await
        }
        Command::Keys(KeysCommand::List) => {
            let state = open_state(&cli.global, Clock::System, false).await?;
            println!(
                "{:<10} {:<12} {:<12} {:<12}",
                "key_id", "not_before", "not_after", "verify_until"
            );
            for k in state.store.key_records().await? {
                let t = |v: Option<i64>| v.map(fmt_time).unwrap_or_else(|| "active".into());
                println!(
                    "{:<10} {:<12} {:<12} {:<12}",
                    k.key_id,
                    fmt_time(k.not_before),
                    t(k.not_after),
                    t(k.verify_until)
                );
            }
            println!("trust list version {}", state.keys.active().trust_version);
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let state = open_state(&cli.global, Clock::System, false).await?;
            let now = state.now();
            let new = state.keys.rotate(state.store.as_ref(), now).await?;
            state
                .store
                .audit(&store::audit::AuditEntry {
                    at: now,
                    actor: "cli".into(),
                    action: "keys.rotate".into(),
                    subject: Some(new.key_id.clone()),
                    detail: None,
                })
                .await?;
            println!(
                "new signing key {}; trust list version {}",
                new.key_id,
                state.keys.active().trust_version
            );
            Ok(())
        }
    }
}

fn fmt_time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_else(|| ts.to_string())
}
