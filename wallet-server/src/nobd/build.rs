//! Building a day's reports: the figures of every school in a handful of grouped queries, one
//! content per school, and a new revision only where the content changed.

use super::report::{self, NobdReport, ReportContent};
use crate::store::nobd::{DayWindow, NewReport};
use crate::store::roster::School;
use crate::store::Store;
use chrono::{NaiveDate, NaiveTime};
use shared::ServiceDay;
use std::collections::HashMap;

/// Which schools get a report for the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every school asked for (school days, and days asked for by hand).
    AllSchools,
    /// Only schools where something happened (days without lessons: a consent answered on a
    /// Saturday still reaches NOBD, empty weekend reports do not).
    ActiveSchools,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOutcome {
    pub schools: usize,
    /// Ids of the revisions stored by this build.
    pub new_reports: Vec<String>,
    pub unchanged: usize,
}

pub fn day_window(date: NaiveDate) -> DayWindow {
    let start = ServiceDay(date).unix_at(NaiveTime::MIN);
    DayWindow {
        day: date.to_string(),
        start,
        end: start + 86_400,
    }
}

/// Builds the reports of `date` for `schools` (all schools when `None`) and queues the new
/// revisions for delivery.
pub async fn build_day(
    store: &dyn Store,
    date: NaiveDate,
    schools: Option<&[School]>,
    coverage: Coverage,
    now: i64,
) -> anyhow::Result<BuildOutcome> {
    let window = day_window(date);
    let (schools, filter): (Vec<School>, Option<i64>) = match schools {
        Some([one]) => (vec![one.clone()], Some(one.code)),
        Some(some) => (some.to_vec(), None),
        None => (store.schools().await?, None),
    };
    let data = store.nobd_day_data(&window, filter).await?;
    let contents = report::assemble(&window, date, &schools, data);
    let latest: HashMap<i64, (i64, String)> = store
        .nobd_latest(&window.day, filter)
        .await?
        .into_iter()
        .map(|l| (l.school_code, (l.revision, l.content_hash)))
        .collect();
    let generated_at = report::local_rfc3339(now);
    let mut outcome = BuildOutcome {
        schools: schools.len(),
        ..BuildOutcome::default()
    };
    let mut fresh = Vec::new();
    for school in &schools {
        let Some(content) = contents.get(&school.code) else {
            continue;
        };
        let prior = latest.get(&school.code);
        if prior.is_none() && coverage == Coverage::ActiveSchools && !content.has_activity() {
            continue;
        }
        let hash = content.hash();
        let revision = match prior {
            Some((_, h)) if *h == hash => {
                outcome.unchanged += 1;
                continue;
            }
            Some((rev, _)) => rev + 1,
            None => 1,
        };
        fresh.push(new_report(
            school,
            date,
            revision,
            hash,
            content,
            &generated_at,
        ));
    }
    outcome.new_reports = store.nobd_insert_reports(&fresh, now).await?;
    Ok(outcome)
}

fn new_report(
    school: &School,
    date: NaiveDate,
    revision: i64,
    content_hash: String,
    content: &ReportContent,
    generated_at: &str,
) -> NewReport {
    let report_id = report::report_id(&school.bin, date, revision);
    let doc = NobdReport {
        schema: report::SCHEMA.to_owned(),
        report_id: report_id.clone(),
        revision,
        generated_at: generated_at.to_owned(),
        content: content.clone(),
    };
    NewReport {
        report_id,
        school_code: school.code,
        service_day: date.to_string(),
        revision,
        content_hash,
        body: serde_json::to_string(&doc).expect("report serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_window_is_local_midnight_to_midnight() {
        let w = day_window(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        assert_eq!(w.day, "2026-11-23");
        assert_eq!(w.end - w.start, 86_400);
        assert_eq!(w.start, crate::testkit::MONDAY_9AM - 9 * 3600);
        assert_eq!(ServiceDay::from_unix(w.start).to_string(), "2026-11-23");
        assert_eq!(ServiceDay::from_unix(w.end - 1).to_string(), "2026-11-23");
        assert_eq!(ServiceDay::from_unix(w.end).to_string(), "2026-11-24");
    }
}
