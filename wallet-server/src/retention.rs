//! Retention (DESIGN §10): the personal data of a pupil who left the roster is kept for
//! `[retention] days` after the later of the last day of the last school year in which they held
//! a voucher and the day they left, then erased (names, IIN, phones, card). Counts, the NOBD
//! reports already sent (with the IIN replaced), vouchers, meals and the audit of the erasure
//! stay. What is erased where: [`crate::store::retention`]; the policy's reasons:
//! docs/operations.md, "Retention".
//!
//! Run by `wallet-server retention [--now T]` and by the server once a day. Idempotent: an
//! erased pupil is never due again. Erasure goes in batches, each its own transaction, so a
//! large year of leavers never holds the database for long.

use crate::config::Settings;
use crate::store::retention::{Due, Erased, Purge};
use crate::store::{Store, StoreResult};
use chrono::{Days, NaiveDate, NaiveTime};
use shared::ServiceDay;

/// Pupils erased per transaction.
pub const BATCH: i64 = 500;

/// The audit actor of the background job.
pub const JOB_ACTOR: &str = "retention";

/// What is due on the day of `now`: pupils who left on or before `today - days`, with no
/// voucher valid after that day. A pupil who never held a voucher is kept `days` after they
/// left; one who left during a school year in which they held a voucher, `days` after that
/// year's end.
pub fn due(days: i64, now: i64) -> Due {
    let today = ServiceDay::from_unix(now).date();
    let last_kept_for = today
        .checked_sub_days(Days::new(days.max(0) as u64))
        .unwrap_or(NaiveDate::MIN);
    let next = last_kept_for.succ_opt().unwrap_or(last_kept_for);
    Due {
        removed_before: ServiceDay(next).unix_at(NaiveTime::MIN),
        vouchers_ended_by: last_kept_for.to_string(),
    }
}

/// The day a pupil removed at `removed_at` whose last voucher ended on `voucher_end` becomes
/// due (what [`due`] decides, turned around: for docs and the operator).
pub fn erasure_day(days: i64, removed_at: i64, voucher_end: Option<NaiveDate>) -> NaiveDate {
    let left = ServiceDay::from_unix(removed_at).date();
    let kept_from = voucher_end.map_or(left, |end| end.max(left));
    kept_from
        .checked_add_days(Days::new(days.max(0) as u64))
        .unwrap_or(NaiveDate::MAX)
}

/// One run: what was erased and how the files were purged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub due: Option<Due>,
    pub erased: Erased,
    pub batches: usize,
    /// `None` when nothing was erased and no earlier purge is pending.
    pub purge: Option<Purge>,
}

impl Report {
    /// What the run erased, for the operator: counts, then the first pupil ids.
    pub fn summary(&self) -> String {
        let e = &self.erased;
        let mut ids: Vec<String> = e.pupils.iter().take(20).map(i64::to_string).collect();
        if e.pupils.len() > 20 {
            ids.push(format!("and {} more", e.pupils.len() - 20));
        }
        format!(
            "pupils erased {} ({}); consent phones {}, SMS erased {}, unsent SMS deleted {}, \
             login codes {}, wallet sessions {}, ratings {}, complaints {}, NOBD reports {}, \
             audit rows {}",
            e.pupils.len(),
            if ids.is_empty() {
                "none".to_owned()
            } else {
                format!("ids {}", ids.join(", "))
            },
            e.consents,
            e.sms_erased,
            e.sms_deleted,
            e.login_codes,
            e.sessions,
            e.ratings,
            e.complaints,
            e.reports,
            e.audit_rows
        )
    }
}

/// Erases every pupil due at `now`, batch by batch (calling `progress` after each), then
/// purges the erased values from the database files if anything was erased.
pub async fn run(
    store: &dyn Store,
    settings: &Settings,
    actor: &str,
    now: i64,
    progress: &mut (dyn FnMut(&Erased) + Send),
) -> StoreResult<Report> {
    let due = due(settings.retention.days, now);
    let mut report = Report {
        due: Some(due.clone()),
        ..Report::default()
    };
    let mut after = None;
    loop {
        let batch = store
            .erase_due_pupils(&due, after, BATCH, actor, now)
            .await?;
        if batch.pupils.is_empty() {
            break;
        }
        after = batch.cursor;
        report.batches += 1;
        report.erased.add(&batch);
        progress(&report.erased);
    }
    // Also when an earlier run's purge failed or was cut short.
    if !report.erased.pupils.is_empty() || store.purge_pending().await? {
        report.purge = Some(store.purge_erased().await?);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn at(date: &str, hhmm: &str) -> i64 {
        let t = NaiveTime::parse_from_str(hhmm, "%H:%M").unwrap();
        ServiceDay(day(date)).unix_at(t)
    }

    #[test]
    fn due_is_the_erasure_day_turned_around() {
        // Left in March with a voucher of the year that ended on 25 May: 365 days after May.
        let left = at("2027-03-10", "12:00");
        let end = Some(day("2027-05-25"));
        assert_eq!(erasure_day(365, left, end), day("2028-05-24"));
        // Never held one: 365 days after leaving; left after the year's end: the same.
        assert_eq!(erasure_day(365, left, None), day("2028-03-09"));
        assert_eq!(
            erasure_day(365, at("2027-07-01", "08:00"), end),
            day("2028-06-30")
        );
        for (now, removed_at, voucher_end) in [
            (at("2028-05-23", "23:59"), left, end),
            (at("2028-05-24", "00:00"), left, end),
            (at("2028-03-08", "10:00"), left, None),
            (at("2028-03-09", "00:01"), left, None),
            (at("2028-03-09", "00:01"), at("2027-03-10", "23:59"), None),
            (at("2028-03-09", "00:01"), at("2027-03-11", "00:00"), None),
        ] {
            let d = due(365, now);
            let is_due = removed_at < d.removed_before
                && voucher_end.is_none_or(|e| e.to_string() <= d.vouchers_ended_by);
            let today = ServiceDay::from_unix(now).date();
            assert_eq!(
                is_due,
                today >= erasure_day(365, removed_at, voucher_end),
                "{today} {removed_at} {voucher_end:?}: {d:?}"
            );
        }
    }
}
