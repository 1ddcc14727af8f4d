use clap::Parser;

/// Tamaq wallet server.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
