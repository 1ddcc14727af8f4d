//! The report job of `serve`: after `[nobd] daily_at` (local, default 01:00) it builds the day
//! before; at every round it rebuilds days whose scans arrived late (a new revision only if the
//! figures changed) and delivers what is due. Safe with several instances on one database:
//! revisions are unique, builds are idempotent, deliveries are leased.

use super::build::{build_day, Coverage};
use super::deliver::{deliver_due, Sink};
use crate::state::AppState;
use chrono::{Duration, NaiveDate, NaiveTime};
use shared::calendar::local_time;
use shared::ServiceDay;
use std::collections::BTreeMap;

pub const DEFAULT_DAILY_AT: &str = "01:00";
/// Mark: the last day built on schedule.
pub const MARK_DAILY: &str = "daily_built";
/// Mark: scans received from this time on are checked for late changes.
pub const MARK_SCANS: &str = "scans_checked_from";
/// Scans committed while the previous round ran are caught by looking back this far.
const OVERLAP_SECONDS: i64 = 600;
/// After an outage, at most this many missed days are built on schedule (the rest by hand).
const CATCH_UP_DAYS: i64 = 7;
/// Beyond this many changed schools in a day, rebuild the whole day in one go.
const WHOLE_DAY_THRESHOLD: usize = 100;

pub fn daily_at(state: &AppState) -> NaiveTime {
    let text = state
        .settings
        .nobd
        .daily_at
        .as_deref()
        .unwrap_or(DEFAULT_DAILY_AT);
    NaiveTime::parse_from_str(text, "%H:%M").expect("validated with the settings")
}

fn coverage(state: &AppState, date: NaiveDate) -> Coverage {
    if state.settings.school_years.is_school_day(date) {
        Coverage::AllSchools
    } else {
        Coverage::ActiveSchools
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    pub days_built: Vec<NaiveDate>,
    pub new_reports: usize,
    pub delivered: usize,
    pub failed: usize,
}

/// One round of the job.
pub async fn round(
    state: &AppState,
    sink: &Sink,
    worker: &crate::lease::Worker,
) -> anyhow::Result<RoundOutcome> {
    let mut out = RoundOutcome::default();
    let store = state.store.as_ref();
    let now = state.now();
    let today = ServiceDay::from_unix(now).0;

    if local_time(now) >= daily_at(state) {
        let target = today - Duration::days(1);
        let done = store
            .nobd_mark(MARK_DAILY)
            .await?
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        if !matches!(done, Some(d) if d >= target) {
            let first = match done {
                Some(d) => (d + Duration::days(1)).max(target - Duration::days(CATCH_UP_DAYS - 1)),
                None => target,
            };
            let mut day = first;
            while day <= target {
                let b = build_day(store, day, None, coverage(state, day), now).await?;
                out.new_reports += b.new_reports.len();
                out.days_built.push(day);
                day += Duration::days(1);
            }
            store.set_nobd_mark(MARK_DAILY, &target.to_string()).await?;
        }
    }

    match store
        .nobd_mark(MARK_SCANS)
        .await?
        .and_then(|v| v.parse::<i64>().ok())
    {
        None => store.set_nobd_mark(MARK_SCANS, &now.to_string()).await?,
        Some(from) => {
            let changed = store
                .nobd_days_with_scans_since(from - OVERLAP_SECONDS, &today.to_string())
                .await?;
            let mut by_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for (code, day) in changed {
                by_day.entry(day).or_default().push(code);
            }
            for (day, codes) in by_day {
                let Ok(date) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
                    continue;
                };
                if codes.len() > WHOLE_DAY_THRESHOLD {
                    let b = build_day(store, date, None, coverage(state, date), now).await?;
                    out.new_reports += b.new_reports.len();
                } else {
                    for code in codes {
                        let Some(school) = store.school_by_code(code).await? else {
                            continue;
                        };
                        let b = build_day(
                            store,
                            date,
                            Some(std::slice::from_ref(&school)),
                            Coverage::AllSchools,
                            now,
                        )
                        .await?;
                        out.new_reports += b.new_reports.len();
                    }
                }
            }
            store.set_nobd_mark(MARK_SCANS, &now.to_string()).await?;
        }
    }

    let d = deliver_due(store, sink, worker, &state.clock).await?;
    out.delivered = d.delivered;
    out.failed = d.failed;

    // Housekeeping for staff sign-in: expired sessions, attempts past the rate-limit window.
    store.purge_staff_auth(now, now - 86_400).await?;
    Ok(out)
}
