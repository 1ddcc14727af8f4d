//! Writes a made-up, valid roster CSV to stdout: `sample_roster [PUPILS] [SCHOOLS]`
//! (defaults 300000 and 1000) — the input of the roster import benchmark.

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let arg = |a: Option<String>, default: usize| -> usize {
        a.map(|s| s.parse().expect("a whole number"))
            .unwrap_or(default)
    };
    let pupils = arg(args.next(), 300_000);
    let schools = arg(args.next(), 1_000);
    std::io::stdout().write_all(wallet_server::roster::sample::csv(pupils, schools).as_bytes())
}
