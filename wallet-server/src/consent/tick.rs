//! One run of the consent process: the turn of the school year (vouchers of a year that ended
//! expire, its unanswered requests end, standing consents carry over), then open new requests,
//! ask again the `no_phone` families a roster import gave a phone,
//! repeat unanswered ones after 3 days, end those still unanswered 3 days after the repeat, and
//! issue vouchers to consented pupils.

use super::texts;
use crate::config::{Lang, Settings};
use crate::lifecycle::{self, IssueReason};
use crate::sms::SmsKind;
use crate::store::consent::{ConsentTarget, OwedVoucher, Page, TimedStep};
use crate::store::sms::NewSms;
use crate::store::vouchers::NewVoucher;
use crate::store::{Store, StoreResult};
use serde::Serialize;
use shared::calendar::SchoolYear;
use shared::ServiceDay;
use std::collections::HashSet;

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
    /// Consents of an earlier school year that stand for this one (no request sent).
    pub consents_carried: usize,
    /// Of the vouchers issued, those announced by SMS (`voucher_issued`): the new year's
    /// vouchers of pupils whose consent stands.
    pub vouchers_announced: usize,
    /// Vouchers whose school year ended, now `expired`.
    pub vouchers_expired: usize,
    /// Requests of a school year that ended while they awaited an answer, now `expired`.
    pub requests_closed: usize,
    /// Processes that had ended `no_phone` this school year, asked again because a roster
    /// import gave the family a phone (counted apart from `requested`).
    pub phones_added: usize,
}

impl TickReport {
    pub fn sms_queued(&self) -> usize {
        self.requested + self.repeated + self.vouchers_announced + self.phones_added
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

/// Runs every step once for the school year of `now`'s service day, as of `now`.
pub async fn tick(store: &dyn Store, settings: &Settings, now: i64) -> StoreResult<TickReport> {
    tick_with_progress(store, settings, now, &mut |_| {}).await
}

/// [`tick`], calling `progress` with the counts so far after every batch (a first mailing at
/// pilot scale is a million SMS; the operator's command shows how far it got).
///
/// Between school years only the end of the last one is done (its vouchers expire, its open
/// requests end): nothing is asked and nothing issued until the next year begins.
pub async fn tick_with_progress(
    store: &dyn Store,
    settings: &Settings,
    now: i64,
    progress: &mut (dyn FnMut(&TickReport) + Send),
) -> StoreResult<TickReport> {
    let today = ServiceDay::from_unix(now).date();
    let current = settings.year_at(now);
    let mut report = TickReport {
        vouchers_expired: lifecycle::expire_ended(store, today, now).await?,
        ..TickReport::default()
    };
    let label = current.as_ref().map(SchoolYear::label);
    loop {
        let closed = store
            .close_open_consents(label.as_deref(), now, BATCH)
            .await?;
        report.requests_closed += closed.len();
        if (closed.len() as i64) < BATCH {
            break;
        }
        progress(&report);
    }
    let (Some(year), Some(label)) = (current, label) else {
        return Ok(report);
    };
    let lang = settings.server.default_lang;

    // Standing consents first, window by window, so that those pupils are not asked again.
    let request = |t: &ConsentTarget| request_sms(t, SmsKind::ConsentRequest, lang);
    let first = store.first_pupil_to_ask(&label).await?;
    for window in pupil_windows(first, store.last_pupil_id().await?) {
        let carried = store.carry_consents(&label, now, window).await?;
        report.consents_carried += carried.len();
        let opened = store.open_consents(&label, now, window, &request).await?;
        for t in &opened {
            match t.phone {
                Some(_) => report.requested += 1,
                None => report.no_phone += 1,
            }
        }
        if !opened.is_empty() || !carried.is_empty() {
            progress(&report);
        }
    }

    // A phone that appeared later (DESIGN §11): the process that ended `no_phone` starts again.
    loop {
        let restarted = store
            .restart_no_phone_consents(&label, now, BATCH, &request)
            .await?;
        report.phones_added += restarted.len();
        if !restarted.is_empty() {
            progress(&report);
        }
        if (restarted.len() as i64) < BATCH {
            break;
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
                    &label,
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

    let issued = issue_owed(store, settings, &year, now, &mut |n| {
        progress(&TickReport {
            vouchers_issued: n.issued,
            vouchers_announced: n.announced,
            ..report
        })
    })
    .await?;
    report.vouchers_issued = issued.issued;
    report.vouchers_announced = issued.announced;
    if report.sms_queued() > 0 {
        crate::sms::wake();
    }
    Ok(report)
}

/// Issues the school year's voucher to every consented pupil still without one. The answer to
/// `3#1` does this at once; the tick catches up after a crash between the two, and issues the
/// new year's vouchers of pupils whose consent stands. Returns how many were issued.
pub async fn issue_vouchers(
    store: &dyn Store,
    settings: &Settings,
    now: i64,
) -> StoreResult<usize> {
    let Some(year) = settings.year_at(now) else {
        return Ok(0);
    };
    Ok(issue_owed(store, settings, &year, now, &mut |_| {})
        .await?
        .issued)
}

#[derive(Debug, Default, Clone, Copy)]
struct Issued {
    issued: usize,
    announced: usize,
}

async fn issue_owed(
    store: &dyn Store,
    settings: &Settings,
    year: &SchoolYear,
    now: i64,
    progress: &mut (dyn FnMut(Issued) + Send),
) -> StoreResult<Issued> {
    let label = year.label();
    let link = texts::wallet_link(&settings.server.public_url);
    let announce = |o: &OwedVoucher| {
        let lang = Lang::parse(&o.lang).unwrap_or(settings.server.default_lang);
        Some(NewSms {
            to: o.contact_phone.clone()?,
            text: texts::voucher_issued(lang, &o.child_name(), &label, &link),
            kind: SmsKind::VoucherIssued,
        })
    };
    let mut done = Issued::default();
    let first = store.first_pupil_owed_voucher(&label).await?;
    for window in pupil_windows(first, store.last_pupil_id().await?) {
        let due = store.consented_without_voucher(&label, window).await?;
        if due.is_empty() {
            continue;
        }
        // A consent given this year was answered with its confirmation (and the wallet link)
        // already; a consent that stands from an earlier year is told of the new voucher.
        let (stands, given): (Vec<&OwedVoucher>, Vec<&OwedVoucher>) =
            due.iter().partition(|o| o.carried_from.is_some());
        let row = |o: &OwedVoucher, sms: Option<NewSms>| NewVoucher {
            pupil_id: o.pupil_id,
            school_code: o.school_code,
            sms,
        };
        let given: Vec<NewVoucher> = given.into_iter().map(|o| row(o, None)).collect();
        let stands: Vec<NewVoucher> = stands.into_iter().map(|o| row(o, announce(o))).collect();
        // Pupils another instance (or the reply handler) served meanwhile are skipped: one
        // voucher per pupil per year.
        let why = IssueReason::Consented;
        done.issued += lifecycle::issue(store, year, &given, why, lifecycle::SYSTEM, now)
            .await?
            .len();
        let why = IssueReason::ConsentStands;
        let made = lifecycle::issue(store, year, &stands, why, lifecycle::SYSTEM, now).await?;
        done.issued += made.len();
        let told: HashSet<i64> = stands
            .iter()
            .filter(|r| r.sms.is_some())
            .map(|r| r.pupil_id)
            .collect();
        done.announced += made.iter().filter(|v| told.contains(&v.pupil_id)).count();
        progress(done);
    }
    Ok(done)
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
