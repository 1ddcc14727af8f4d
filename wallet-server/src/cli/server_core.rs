//! `import-roster` and `consent tick`: parse nothing, print results; the work is in
//! [`crate::roster`], [`crate::consent`] and [`crate::sms`].

use super::{open_state, Global};
use crate::clock::Clock;
use crate::roster::{self, ImportOptions, ImportRequest, Mode};
use crate::sms;
use anyhow::Context;
use std::io::Write;
use std::path::Path;

pub async fn import_roster(
    global: &Global,
    file: &Path,
    mode: Mode,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let state = open_state(global, Clock::System, false).await?;
    let name = file.display().to_string();
    let request = ImportRequest {
        name: &name,
        actor: "cli",
        bytes: &bytes,
        format: roster::detect_format(Some(file), &bytes),
        options: ImportOptions { mode, skip_invalid },
    };
    // Called once per 500 pupils: cheap enough to redraw every time.
    let progress = |done: usize, total: usize| {
        eprint!("\rimporting: {done}/{total} pupils");
        if done == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    };
    let report = roster::import(
        state.store.as_ref(),
        &state.settings,
        &request,
        state.now(),
        &progress,
    )
    .await
    .with_context(|| format!("import of {name} failed; nothing was imported"))?;
    println!("{}", report.summary());
    for e in &report.errors {
        println!("{e}");
    }
    for c in &report.counts.card_conflicts {
        println!(
            "line {}: card_number: card {} already belongs to another pupil of this school; \
             imported without it (the earlier holder keeps it — correct the roster)",
            c.line, c.card_number
        );
    }
    if !report.applied {
        anyhow::bail!(
            "{} of {} rows rejected; nothing imported (fix them, or pass --skip-invalid to import the good rows)",
            report.rejected_rows,
            report.rows
        );
    }
    Ok(())
}

pub(super) fn parse_now(now: Option<&str>) -> anyhow::Result<Clock> {
    Ok(match now {
        None => Clock::System,
        Some(text) => Clock::manual(
            chrono::DateTime::parse_from_rfc3339(text)
                .with_context(|| {
                    format!("--now {text:?} is not an RFC 3339 time like 2026-11-23T09:00:00+05:00")
                })?
                .timestamp(),
        ),
    })
}

pub async fn consent_tick(global: &Global, now: Option<&str>) -> anyhow::Result<()> {
    let clock = parse_now(now)?;
    let state = open_state(global, clock, false).await?;
    let now = state.now();
    // Redrawn after every batch of 500 on stderr; stdout keeps the two summary lines.
    let report =
        crate::consent::tick_with_progress(state.store.as_ref(), &state.settings, now, &mut |r| {
            eprint!(
                "\rconsent: requested {}, no_phone {}, repeated {}, expired {}, vouchers issued {}",
                r.requested, r.no_phone, r.repeated, r.expired, r.vouchers_issued
            )
        })
        .await?;
    eprintln!();
    let gateway = sms::from_settings(&state.settings, &state.paths)?;
    let worker = crate::lease::Worker::new(
        "cli-sms",
        state.settings.server.lease_seconds as i64,
        crate::lease::Stop::never(),
    );
    let delivery = sms::deliver_due_with_progress(
        state.store.as_ref(),
        gateway.as_ref(),
        now,
        &worker,
        &mut |d| eprint!("\rSMS: sent {}, failed {}", d.sent, d.failed),
    )
    .await?;
    eprintln!();
    println!(
        "consent tick at {} (school year {}): requested {}, no_phone {}, repeated {}, expired {}, vouchers issued {}{}",
        sms::gateway::rfc3339(now),
        state
            .settings
            .year_at(now)
            .map_or_else(|| "none: between school years".to_owned(), |y| y.label()),
        report.requested,
        report.no_phone,
        report.repeated,
        report.expired,
        report.vouchers_issued,
        if report.phones_added > 0 {
            format!(", asked again as a phone was added {}", report.phones_added)
        } else {
            String::new()
        }
    );
    println!(
        "school years: consents carried over {}, new vouchers announced {}, vouchers expired {}, requests closed {}",
        report.consents_carried,
        report.vouchers_announced,
        report.vouchers_expired,
        report.requests_closed
    );
    println!(
        "SMS: sent {}, failed {} ({})",
        delivery.sent,
        delivery.failed,
        gateway.describe()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339() {
        assert_eq!(
            parse_now(Some("2026-11-23T09:00:00+05:00")).unwrap().now(),
            crate::testkit::MONDAY_9AM
        );
        let err = parse_now(Some("2026-11-23 09:00")).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
