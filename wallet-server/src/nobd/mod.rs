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
    let worker = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let delivery = deliver::deliver_due(store, &sink, &worker, &state.clock).await?;
    let undelivered = store.nobd_undelivered(50).await?;
    Ok(CommandOutcome {
        build,
        delivery,
        undelivered,
    })
}
