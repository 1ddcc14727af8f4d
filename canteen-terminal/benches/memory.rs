//! Resident memory of a terminal (DESIGN §8: ≤ 50 MB): a fresh process opens a data dir with
//! 5,000 vouchers and 100,000 past events, loads its state, scans 1,000 tokens, then reads
//! VmHWM / VmRSS from /proc/self/status.
//!
//! `cargo bench -p canteen-terminal --bench memory`

mod support;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::{Settings, Terminal};
use std::path::Path;
use std::sync::Arc;
use support::*;

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_else(|| "n/a".to_owned())
}

fn measure(dir: &Path, scans: usize) {
    // The same runtime the binary uses.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let now = bench_now();
        let terminal = Terminal::open(dir, Settings::default(), Arc::new(ManualClock::new(now)))
            .await
            .unwrap();
        println!(
            "after loading state:   VmRSS {}  VmHWM {}",
            proc_status("VmRSS:"),
            proc_status("VmHWM:")
        );
        for i in 0..scans {
            let t = token(voucher_id(i), now - 60);
            terminal.scan(&t, None).await.unwrap();
        }
        let report = terminal.report(None).await.unwrap();
        println!(
            "after {scans} scans + report (served today {}): VmRSS {}  VmHWM {}",
            report.served_total,
            proc_status("VmRSS:"),
            proc_status("VmHWM:")
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let scans = args[i + 2].parse().unwrap();
        measure(Path::new(&args[i + 1]), scans);
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let (vouchers, past, scans) = if full {
        (5_000, 100_000, 1_000)
    } else {
        (100, 1_000, 10)
    };
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(seed(dir.path(), vouchers, past));
    println!("== resident memory, fresh process, {vouchers} vouchers, {past} past events");
    // Seeding allocated in this process; measure in a fresh one.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--measure")
        .arg(dir.path())
        .arg(scans.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
