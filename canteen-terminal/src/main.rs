use canteen_terminal::commands::{self, Context};
use canteen_terminal::{Settings, SystemClock};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use shared::calendar::MealKind;
use std::path::PathBuf;
use std::sync::Arc;

/// Tamaq canteen terminal: verifies meal QR codes offline and records every meal durably.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Where the terminal keeps its database and secret.
    #[arg(
        long,
        global = true,
        env = "TAMAQ_TERMINAL_DATA_DIR",
        default_value = "./terminal-data"
    )]
    data_dir: PathBuf,
    /// TOML settings file (`[terminal]` table).
    #[arg(long, global = true, env = "TAMAQ_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this terminal with a one-time code from school staff.
    Enroll {
        #[arg(long)]
        server: String,
        #[arg(long)]
        code: String,
        /// What staff call this counter, e.g. "Canteen 1".
        #[arg(long)]
        label: Option<String>,
    },
    /// Upload scans and fetch the latest vouchers and keys (exit 2 when the server is unreachable).
    Sync {
        #[arg(long)]
        json: bool,
    },
    /// Verify tokens: one per stdin line (wedge scanner), or from QR pictures (exit 5 when a
    /// scan could not be recorded).
    Scan {
        #[arg(long)]
        json: bool,
        #[arg(long = "image", num_args = 1..)]
        images: Vec<PathBuf>,
        /// breakfast, lunch or snack (default: the meal window now).
        #[arg(long)]
        meal: Option<MealKind>,
    },
    /// Serve a pupil by ID-card number (exit 3 when not served).
    Redeem {
        #[arg(long)]
        card: String,
        #[arg(long)]
        meal: Option<MealKind>,
        #[arg(long)]
        json: bool,
    },
    /// Full integrity check of the meal log (exit 7 when it fails).
    Check,
    /// The day's local summary.
    Report {
        /// YYYY-MM-DD, local (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long)]
        json: bool,
    },
    /// Sync, clock, free space and warnings (the kiosk's status line): text, JSON, or
    /// Prometheus text for node-exporter's textfile collector (scans by verdict, unsynced
    /// events, last sync age, free disk).
    Status {
        #[arg(long, value_enum, default_value = "text")]
        format: commands::StatusFormat,
        /// The same as `--format json`.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the meal log while the terminal keeps scanning.
    Backup {
        /// The copy to create; an existing file is never overwritten.
        #[arg(long)]
        to: PathBuf,
    },
    /// The counter screen: a local web page with background sync.
    Kiosk {
        /// Default 127.0.0.1:8090.
        #[arg(long)]
        listen: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    // Escape codes only for a person at a terminal; the journal and log files get plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAMAQ_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let settings = Settings::load(cli.config.as_deref())?;
    let ctx = Context {
        data_dir: cli.data_dir,
        settings,
        clock: Arc::new(SystemClock),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Enroll {
                server,
                code,
                label,
            } => commands::enroll(&ctx, &server, &code, label.as_deref()).await,
            Command::Sync { json } => commands::sync(&ctx, json).await,
            Command::Scan { json, images, meal } => commands::scan(&ctx, json, &images, meal).await,
            Command::Redeem { card, meal, json } => commands::redeem(&ctx, &card, meal, json).await,
            Command::Check => commands::check(&ctx).await,
            Command::Report { date, json } => commands::report(&ctx, date, json).await,
            Command::Status { format, json } => {
                let format = if json {
                    commands::StatusFormat::Json
                } else {
                    format
                };
                commands::status(&ctx, format).await
            }
            Command::Backup { to } => commands::backup(&ctx, &to).await,
            Command::Kiosk { listen } => commands::kiosk(&ctx, listen.as_deref()).await,
        }
    })
}
