//! NOBD daily reports (DESIGN §1.11, §7.3): one JSON document per school per service day,
//! revised when late scans change the day, delivered from a persisted outbox.

pub mod build;
pub mod deliver;
pub mod job;
pub mod report;

use crate::state::AppState;
use anyhow::Context;
use chrono::NaiveDate;
use shared::ServiceDay;

#[derive(Debug, Clone)]
pub struct CommandOutcome {
    pub build: build::BuildOutcome,
    pub delivery: deliver::DeliveryStats,
    /// Reports still waiting in the outbox after this run (any day).
    pub undelivered: Vec<crate::store::nobd::ReportStatus>,
}

/// `wallet-server report nobd --date D [--school BIN]`: builds the day for every school (or
/// one), whatever the calendar says, then delivers everything due.
pub async fn report_command(
    state: &AppState,
    date: NaiveDate,
    school_bin: Option<&str>,
) -> anyhow::Result<CommandOutcome> {
    let now = state.now();
    let today = ServiceDay::from_unix(now).0;
    // An operator may ask for today: that revision is preliminary, and the daily job sends the
    // next revision once the day's meals change it.
    anyhow::ensure!(
        date <= today,
        "{date} has not started yet (today is {today}, local time); reports are built for days that have begun"
    );
    let store = state.store.as_ref();
    let school = match school_bin {
        Some(raw) => {
            let bin = shared::Bin::parse(raw)
                .map_err(|e| anyhow::anyhow!("--school {raw:?} is not a valid BIN: {e}"))?;
            Some(
                store
                    .school_by_bin(bin.as_str())
                    .await?
                    .with_context(|| format!("no school with BIN {bin} in the roster"))?,
            )
        }
        None => None,
    };
    let build = build::build_day(
        store,
        date,
        school.as_ref().map(std::slice::from_ref),
        build::Coverage::AllSchools,
        now,
    )
    .await?;
    let sink = deliver::Sink::from_settings(&state.settings, &state.paths)?;
    let worker = crate::lease::Worker::new(
        "cli",
        state.settings.server.lease_seconds as i64,
        crate::lease::Stop::never(),
    );
    let mut delivery = deliver::deliver_due(store, &sink, &worker, &state.clock).await?;
    // Reports another run or a server holds are being sent right now: what this command reports
    // is whether they got there, so it waits for them (at most a lease; a holder that dies
    // leaves them to this run after it) and takes over what is released or left due.
    // A concurrent run may have committed its reports after this run's first delivery round but
    // before claiming them: nothing is leased then, yet reports wait that no attempt has failed.
    // Those are waited for (and taken over when due) like leased ones.
    let waited_from = std::time::Instant::now();
    let wait_at_most = std::time::Duration::from_secs(worker.lease_seconds as u64 + 5);
    let in_flight = || async {
        Ok::<bool, crate::store::StoreError>(
            store.leased(crate::store::lease::NOBD).await? > 0
                || store
                    .nobd_undelivered(50)
                    .await?
                    .iter()
                    .any(|r| r.last_error.is_none()),
        )
    };
    while in_flight().await? && waited_from.elapsed() < wait_at_most {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let more = deliver::deliver_due(store, &sink, &worker, &state.clock).await?;
        delivery.delivered += more.delivered;
        delivery.failed += more.failed;
        if more.last_error.is_some() {
            delivery.last_error = more.last_error;
        }
    }
    let undelivered = store.nobd_undelivered(50).await?;
    Ok(CommandOutcome {
        build,
        delivery,
        undelivered,
    })
}
