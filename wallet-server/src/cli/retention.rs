//! `retention [--now T]`: runs [`crate::retention::run`] once, with progress on stderr and what
//! it erased on stdout.

use super::server_core::parse_now;
use super::{open_state, Global};
use std::io::Write;

pub async fn run(global: &Global, now: Option<&str>) -> anyhow::Result<()> {
    let clock = parse_now(now)?;
    let state = open_state(global, clock, false).await?;
    let now = state.now();
    let days = state.settings.retention.days;
    let started = std::time::Instant::now();
    let report = crate::retention::run(
        state.store.as_ref(),
        &state.settings,
        "cli",
        now,
        &mut |e| {
            eprint!("\rretention: {} pupils erased", e.pupils.len());
            let _ = std::io::stderr().flush();
        },
    )
    .await?;
    if report.batches > 0 {
        eprintln!();
    }
    let due = report.due.as_ref().expect("a run decides what is due");
    println!(
        "retention at {} (kept {days} days): pupils who left before {} with no voucher valid after {}",
        crate::sms::gateway::rfc3339(now),
        crate::sms::gateway::rfc3339(due.removed_before),
        due.vouchers_ended_by
    );
    println!("{}", report.summary());
    match &report.purge {
        Some(p) if p.complete => println!(
            "erased values purged from the database files: {} ({:.1} s)",
            p.done,
            started.elapsed().as_secs_f64()
        ),
        Some(p) => anyhow::bail!(
            "{} ran, but a reader kept the write-ahead log from being emptied: run `wallet-server retention` again",
            p.done
        ),
        None => println!("nothing to purge"),
    }
    Ok(())
}
