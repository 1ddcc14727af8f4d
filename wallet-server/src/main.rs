use clap::Parser;
use wallet_server::cli::{run, Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A broken configuration is reported by the command itself; logging starts with defaults.
    let format = wallet_server::cli::load_settings(&cli.global)
        .map(|s| s.log.format)
        .unwrap_or_default();
    wallet_server::logging::init(format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
