//! One run of the consent process: open new requests, repeat unanswered ones after 3 days, end
//! those still unanswered 3 days after the repeat, and issue vouchers to consented pupils.

use super::texts;
use crate::config::{Lang, Settings};
use crate::sms::SmsKind;
use crate::store::consent::{ConsentTarget, Page, TimedStep};
use crate::store::sms::NewSms;
use crate::store::{Store, StoreResult};
use serde::Serialize;
use shared::ServiceDay;

/// 3 calendar days, counted in hours: a request sent Monday 09:00 is repeated from Thursday
/// 09:00 (at the first tick after), and the process expires 72 hours after the repeat.
pub const ANSWER_WINDOW_SECONDS: i64 = 3 * 24 * 3600;
/// Consents per transaction of a timed step.
const BATCH: i64 = 500;
/// Pupil ids per transaction of the open and voucher steps: ids are dense and about half the
/// roster is eligible, so about 500 consents each.
const PUPIL_WINDOW: i64 = 1_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TickReport {
    pub requested: usize,
    pub no_phone: usize,
    pub repeated: usize,
    pub expired: usize,
    pub vouchers_issued: usize,
}

impl TickReport {
    pub fn sms_queued(&self) -> usize {
        self.requested + self.repeated
    }
}

pub fn lang_of(target: &ConsentTarget, default: Lang) -> Lang {
    Lang::parse(&target.lang).unwrap_or(default)
}

fn request_sms(target: &ConsentTarget, kind: SmsKind, default: Lang) -> Option<NewSms> {
    Some(NewSms {
        to: target.phone.clone()?,
        text: texts::request(
            lang_of(target, default),
            target.contact_name.as_deref(),
            &target.child_name(),
        ),
        kind,
    })
}

/// The pupil id windows `(from, to]` of [`PUPIL_WINDOW`] ids from `first`, the lowest id with
/// work to do, to `last`, the highest pupil id; none without work.
fn pupil_windows(first: Option<i64>, last: i64) -> impl Iterator<Item = (i64, i64)> {
    let start = first.map_or(last, |f| f - 1);
    (start..last)
        .step_by(PUPIL_WINDOW as usize)
        .map(|from| (from, from + PUPIL_WINDOW))
}

/// Runs every step once for the configured school year, as of `now`.
pub async fn tick(store: &dyn Store, settings: &Settings, now: i64) -> StoreResult<TickReport> {
    tick_with_progress(store, settings, now, &mut |_| {}).await
}

/// [`tick`], calling `progress` with the counts so far after every batch (a first mailing at
/// pilot scale is a million SMS; the operator's command shows how far it got).
pub async fn tick_with_progress(
    store: &dyn Store,
    settings: &Settings,
    now: i64,
    progress: &mut (dyn FnMut(&TickReport) + Send),
) -> StoreResult<TickReport> {
    let year = settings.school_year.label();
    let lang = settings.server.default_lang;
    let mut report = TickReport::default();

    // No new requests once the school year is over: the voucher would be worth nothing.
    if ServiceDay::from_unix(now).date() <= settings.school_year.end {
        let request = |t: &ConsentTarget| request_sms(t, SmsKind::ConsentRequest, lang);
        let first = store.first_pupil_to_ask(&year).await?;
        for window in pupil_windows(first, store.last_pupil_id().await?) {
            let opened = store.open_consents(&year, now, window, &request).await?;
            for t in &opened {
                match t.phone {
                    Some(_) => report.requested += 1,
                    None => report.no_phone += 1,
                }
            }
            if !opened.is_empty() {
                progress(&report);
            }
        }
    }

    let repeat = |t: &ConsentTarget| request_sms(t, SmsKind::ConsentRepeat, lang);
    let none = |_: &ConsentTarget| None;
    let due = now - ANSWER_WINDOW_SECONDS;
    for (step, sms) in [
        (
            TimedStep::Repeat,
            &repeat as &(dyn Fn(&ConsentTarget) -> Option<NewSms> + Send + Sync),
        ),
        (TimedStep::Expire, &none),
    ] {
        let mut after = 0;
        loop {
            let moved = store
                .advance_consents(
                    &year,
                    step,
                    due,
                    now,
                    Page {
                        after,
                        limit: BATCH,
                    },
                    sms,
                )
                .await?;
            after = moved.iter().map(|t| t.consent_id).max().unwrap_or(after);
            match step {
                TimedStep::Repeat => report.repeated += moved.len(),
                TimedStep::Expire => report.expired += moved.len(),
            }
            progress(&report);
            if (moved.len() as i64) < BATCH {
                break;
            }
        }
    }

    report.vouchers_issued = issue_vouchers_with_progress(store, settings, now, &mut |n| {
        progress(&TickReport {
            vouchers_issued: n,
            ..report
        })
    })
    .await?;
    if report.sms_queued() > 0 {
        crate::sms::wake();
    }
    Ok(report)
}

/// Issues the school year's voucher to every consented pupil still without one. The answer to
/// `3#1` does this at once; the tick catches up after a crash between the two.
pub async fn issue_vouchers(
    store: &dyn Store,
    settings: &Settings,
    now: i64,
) -> StoreResult<usize> {
    issue_vouchers_with_progress(store, settings, now, &mut |_| {}).await
}

async fn issue_vouchers_with_progress(
    store: &dyn Store,
    settings: &Settings,
    now: i64,
    progress: &mut (dyn FnMut(usize) + Send),
) -> StoreResult<usize> {
    let year = settings.school_year.label();
    let mut issued = 0;
    let first = store.first_pupil_owed_voucher(&year).await?;
    for window in pupil_windows(first, store.last_pupil_id().await?) {
        let due = store.consented_without_voucher(&year, window).await?;
        if due.is_empty() {
            continue;
        }
        // Pupils another instance (or the reply handler) served meanwhile are skipped: one
        // voucher per pupil per year.
        issued += store
            .create_vouchers(&due, &settings.school_year, now)
            .await?;
        progress(issued);
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::pupil_windows;

    #[test]
    fn windows_cover_first_to_last_and_nothing_without_work() {
        let w: Vec<_> = pupil_windows(Some(1), 2_500).collect();
        assert_eq!(w, [(0, 1_000), (1_000, 2_000), (2_000, 3_000)]);
        let w: Vec<_> = pupil_windows(Some(1_500), 2_000).collect();
        assert_eq!(w, [(1_499, 2_499)]);
        assert_eq!(pupil_windows(Some(2_000), 2_000).count(), 1);
        assert_eq!(pupil_windows(None, 2_000).count(), 0);
        // A pupil added after the highest id was read waits for the next tick.
        assert_eq!(pupil_windows(Some(2_001), 2_000).count(), 0);
        assert_eq!(pupil_windows(Some(1), 0).count(), 0);
    }
}
