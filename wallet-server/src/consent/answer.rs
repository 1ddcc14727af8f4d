//! A parent's SMS answer: `3#1` / `3#2` applies to every request awaiting an answer on that
//! number; anything else gets the help text and changes nothing.
//!
//! Decisions where the pilot's rules are silent:
//! * a valid answer from a number with nothing awaiting an answer (unknown, already answered,
//!   expired) changes nothing and gets a short "no request awaits an answer" text;
//! * texts for a number the roster does not know are sent in Kazakh and Russian;
//! * at most [`HELP_PER_DAY`] help texts go to one number in 24 hours, so an auto-responder on
//!   the other end cannot start an endless exchange; later ones are answered with silence;
//! * the agreement and refusal answers go once per reply, not once per child;
//! * a `3#2` with nothing awaiting an answer withdraws a consent given on that number (see
//!   [`super::withdraw`]);
//! * a `3#1` with nothing awaiting an answer, from the number a request of this school year
//!   went to whose process ended `expired` or `refused`, is a late consent (DESIGN §11, outcome
//!   `consented_late`), confirmed and given a voucher as any consent; a withdrawn consent is
//!   not reopened;
//! * an answer from a number listed for a pupil whose request went to another listed number
//!   gets a short text naming that number, masked (kind `help`, within the daily limit).

use super::reply::{parse_reply, Reply};
use super::texts;
use super::tick::lang_of;
use super::withdraw;
use crate::config::{Lang, Settings};
use crate::lifecycle::{self, IssueReason};
use crate::sms::SmsKind;
use crate::store::consent::{ConsentStatus, ConsentTarget};
use crate::store::sms::NewSms;
use crate::store::vouchers::NewVoucher;
use crate::store::{Store, StoreResult};
use serde::Serialize;
use shared::calendar::SchoolYear;
use shared::phone::Phone;

pub const HELP_PER_DAY: i64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReplyOutcome {
    Consented {
        consents: usize,
        vouchers: usize,
    },
    Refused {
        consents: usize,
    },
    /// Not an answer; `answered` is false when the help limit was reached.
    Help {
        answered: bool,
    },
    /// A valid answer, but nothing awaits one on this number.
    NothingPending {
        answered: bool,
    },
    /// A `3#2` that withdrew consents given on this number; `vouchers` revoked.
    Withdrawn {
        consents: usize,
        vouchers: usize,
    },
    /// A valid answer from a number whose consent was withdrawn this school year: nothing
    /// changes; `answered` is false when the help limit was reached.
    AlreadyWithdrawn {
        answered: bool,
    },
    /// A valid answer from a number listed for a pupil whose request went to another listed
    /// number: nothing changes; the answer names that number (masked).
    AskedElsewhere {
        answered: bool,
    },
}

/// The language a number's texts are in: its pupils' (the first listed), or none.
async fn lang_for(store: &dyn Store, phone: &Phone) -> StoreResult<Option<Lang>> {
    Ok(store
        .pupils_by_phone(phone.as_str())
        .await?
        .first()
        .and_then(|p| Lang::parse(&p.lang)))
}

/// Queues a help-kind text unless this number had its share today.
pub(super) async fn answer_help(
    store: &dyn Store,
    phone: &Phone,
    text: String,
    now: i64,
) -> StoreResult<bool> {
    let recent = store
        .sms_count_since(phone.as_str(), SmsKind::Help, now - 24 * 3600)
        .await?;
    if recent >= HELP_PER_DAY {
        tracing::info!(phone = %phone.masked(), "help limit reached; not answering");
        return Ok(false);
    }
    crate::sms::queue(store, phone, &text, SmsKind::Help, now).await?;
    Ok(true)
}

pub async fn handle_reply(
    store: &dyn Store,
    settings: &Settings,
    from: &Phone,
    text: &str,
    now: i64,
) -> StoreResult<ReplyOutcome> {
    let Some(reply) = parse_reply(text) else {
        let lang = lang_for(store, from).await?;
        let answered = answer_help(store, from, texts::help(lang), now).await?;
        return Ok(ReplyOutcome::Help { answered });
    };
    // Between school years nothing awaits an answer.
    let year = settings.year_at(now);
    let label = year.as_ref().map(|y| y.label()).unwrap_or_default();
    let default = settings.server.default_lang;
    let link = texts::wallet_link(&settings.server.public_url);
    let (status, kind) = match reply {
        Reply::Agree => (ConsentStatus::Consented, SmsKind::ConsentConfirmed),
        Reply::Refuse => (ConsentStatus::Refused, SmsKind::ConsentRefused),
    };
    let answer = |targets: &[ConsentTarget]| {
        let lang = targets
            .first()
            .map(|t| lang_of(t, default))
            .unwrap_or(default);
        let children: Vec<String> = targets.iter().map(ConsentTarget::child_name).collect();
        let base = match reply {
            Reply::Agree => texts::confirmed(lang, &link),
            Reply::Refuse => texts::refused(lang),
        };
        Some(NewSms {
            to: from.as_str().to_owned(),
            text: texts::naming(base, lang, &children),
            kind,
        })
    };
    let detail = format!("reply {}", reply.as_str());
    let changed = store
        .answer_consents(&label, from.as_str(), status, now, &detail, &answer)
        .await?;
    let (Some(year), false) = (year.clone(), changed.is_empty()) else {
        if let Some(year) = &year {
            let label = year.label();
            if reply == Reply::Refuse {
                if let Some(done) = withdraw::withdraw(store, settings, from, &label, now).await? {
                    return Ok(done);
                }
            }
            if reply == Reply::Agree {
                if let Some(done) = late(store, settings, from, year, now).await? {
                    return Ok(done);
                }
            }
            if let Some(done) =
                withdraw::answer_withdrawn(store, settings, from, &label, now).await?
            {
                return Ok(done);
            }
            if let Some(done) = asked_elsewhere(store, settings, from, &label, now).await? {
                return Ok(done);
            }
        }
        let lang = lang_for(store, from).await?;
        let answered = answer_help(store, from, texts::nothing_pending(lang), now).await?;
        return Ok(ReplyOutcome::NothingPending { answered });
    };
    crate::sms::wake();
    match reply {
        Reply::Refuse => Ok(ReplyOutcome::Refused {
            consents: changed.len(),
        }),
        Reply::Agree => consented(store, &year, from, &changed, now).await,
    }
}

/// Issues the vouchers of the consents a `3#1` gave. The confirmation went out with the
/// answer; the vouchers need no SMS of their own.
async fn consented(
    store: &dyn Store,
    year: &SchoolYear,
    from: &Phone,
    changed: &[ConsentTarget],
    now: i64,
) -> StoreResult<ReplyOutcome> {
    let rows: Vec<NewVoucher> = changed
        .iter()
        .map(|t| NewVoucher {
            pupil_id: t.pupil_id,
            school_code: t.school_code,
            sms: None,
        })
        .collect();
    let actor = format!("sms:{}", from.as_str());
    let why = IssueReason::Consented;
    let vouchers = lifecycle::issue(store, year, &rows, why, &actor, now)
        .await?
        .len();
    Ok(ReplyOutcome::Consented {
        consents: changed.len(),
        vouchers,
    })
}

/// A `3#1` after the process ended `expired` or `refused` this school year; `None` when no
/// such process was asked on `from`.
async fn late(
    store: &dyn Store,
    settings: &Settings,
    from: &Phone,
    year: &SchoolYear,
    now: i64,
) -> StoreResult<Option<ReplyOutcome>> {
    let default = settings.server.default_lang;
    let link = texts::wallet_link(&settings.server.public_url);
    let answer = |targets: &[ConsentTarget]| {
        let lang = targets
            .first()
            .map(|t| lang_of(t, default))
            .unwrap_or(default);
        let children: Vec<String> = targets.iter().map(ConsentTarget::child_name).collect();
        Some(NewSms {
            to: from.as_str().to_owned(),
            text: texts::naming(texts::confirmed(lang, &link), lang, &children),
            kind: SmsKind::ConsentConfirmed,
        })
    };
    let detail = "reply 3#1 after the process ended";
    let changed = store
        .answer_late(&year.label(), from.as_str(), now, detail, &answer)
        .await?;
    if changed.is_empty() {
        return Ok(None);
    }
    crate::sms::wake();
    tracing::info!(phone = %from.masked(), consents = changed.len(), "late consent by SMS");
    consented(store, year, from, &changed, now).await.map(Some)
}

/// The answer to a number listed for pupils whose requests went to other listed numbers;
/// `None` when there are none.
async fn asked_elsewhere(
    store: &dyn Store,
    settings: &Settings,
    from: &Phone,
    school_year: &str,
    now: i64,
) -> StoreResult<Option<ReplyOutcome>> {
    let asked = store.asked_elsewhere(school_year, from.as_str()).await?;
    let Some((_, lang)) = asked.first() else {
        return Ok(None);
    };
    let lang = Lang::parse(lang).unwrap_or(settings.server.default_lang);
    let mut numbers: Vec<String> = asked.iter().map(|(p, _)| p.clone()).collect();
    numbers.dedup();
    let text = texts::asked_elsewhere(lang, &numbers);
    let answered = answer_help(store, from, text, now).await?;
    Ok(Some(ReplyOutcome::AskedElsewhere { answered }))
}
