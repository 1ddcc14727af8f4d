use clap::Parser;

/// Tamaq canteen terminal.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
