//! One run of the consent process: open new requests, repeat unanswered ones after 3 days, end
//! those still unanswered 3 days after the repeat, and issue vouchers to consented pupils.

use super::texts;
use crate::config::{Lang, Settings};
use crate::sms::SmsKind;
use crate::store::consent::{ConsentTarget, TimedStep};
use crate::store::sms::NewSms;
use crate::store::{Store, StoreError, StoreResult};
use serde::Serialize;
use shared::ServiceDay;

/// 3 calendar days, counted in hours: a request sent Monday 09:00 is repeated from Thursday
/// 09:00 (at the first tick after), and the process expires 72 hours after the repeat.
pub const ANSWER_WINDOW_SECONDS: i64 = 3 * 24 * 3600;
/// Consents per transaction.
const BATCH: i64 = 500;

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

/// Runs every step once for the configured school year, as of `now`.
pub async fn tick(store: &dyn Store, settings: &Settings, now: i64) -> StoreResult<TickReport> {
    let year = settings.school_year.label();
    let lang = settings.server.default_lang;
    let mut report = TickReport::default();

    // No new requests once the school year is over: the voucher would be worth nothing.
    if ServiceDay::from_unix(now).date() <= settings.school_year.end {
        let request = |t: &ConsentTarget| request_sms(t, SmsKind::ConsentRequest, lang);
        loop {
            let opened = store.open_consents(&year, now, BATCH, &request).await?;
            for t in &opened {
                match t.phone {
                    Some(_) => report.requested += 1,
                    None => report.no_phone += 1,
                }
            }
            if (opened.len() as i64) < BATCH {
                break;
            }
        }
    }

    let repeat = |t: &ConsentTarget| request_sms(t, SmsKind::ConsentRepeat, lang);
    let none = |_: &ConsentTarget| None;
    let due = now - ANSWER_WINDOW_SECONDS;
    for (step, sms, count) in [
        (
            TimedStep::Repeat,
            &repeat as &(dyn Fn(&ConsentTarget) -> Option<NewSms> + Send + Sync),
            &mut report.repeated,
        ),
        (TimedStep::Expire, &none, &mut report.expired),
    ] {
        loop {
            let moved = store
                .advance_consents(&year, step, due, now, BATCH, sms)
                .await?;
            *count += moved.len();
            if (moved.len() as i64) < BATCH {
                break;
            }
        }
    }

    report.vouchers_issued = issue_vouchers(store, settings, now).await?;
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
    let year = settings.school_year.label();
    let mut issued = 0;
    loop {
        let due = store.consented_without_voucher(&year, BATCH).await?;
        for &(pupil_id, school_code) in &due {
            match store
                .create_voucher(pupil_id, school_code, &settings.school_year, now)
                .await
            {
                Ok(_) => issued += 1,
                // Another instance (or the reply handler) issued it meanwhile: one per year.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if (due.len() as i64) < BATCH {
            return Ok(issued);
        }
    }
}
