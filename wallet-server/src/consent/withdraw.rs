//! Withdrawing consent by SMS (DESIGN §10): a `3#2` from the number a consent was given on,
//! when no request awaits an answer there, revokes that year's vouchers of its children
//! (`withdrawn`), ends their consents as `withdrawn` (the NOBD outcome of the day) and answers
//! with the confirmation `consent_withdrawn` naming each child — one transaction.
//!
//! Decisions where the design is silent:
//! * requests awaiting an answer come first: a `3#2` from a number with a pending request for
//!   one child and a voucher for another refuses the request and leaves the voucher alone (the
//!   parent is most likely answering the request in front of them); the next `3#2` withdraws;
//! * a second `3#2` (or a `3#1`) after a withdrawal changes nothing and gets a short text
//!   saying the consent was already withdrawn and to contact the school (kind `help`, within
//!   the daily help limit), never a second confirmation;
//! * a withdrawal is final for the school year: the way back is the school, not `3#1`.

use super::answer::{answer_help, ReplyOutcome};
use super::texts;
use super::tick::lang_of;
use crate::config::{Lang, Settings};
use crate::lifecycle;
use crate::sms::SmsKind;
use crate::store::consent::ConsentTarget;
use crate::store::sms::NewSms;
use crate::store::{Store, StoreResult};
use shared::phone::Phone;

fn children(targets: &[ConsentTarget]) -> Vec<String> {
    targets.iter().map(ConsentTarget::child_name).collect()
}

fn lang(targets: &[ConsentTarget], default: Lang) -> Lang {
    targets
        .first()
        .map(|t| lang_of(t, default))
        .unwrap_or(default)
}

/// Withdraws the consents of `school_year` given on `from`; `None` when there were none to
/// withdraw.
pub async fn withdraw(
    store: &dyn Store,
    settings: &Settings,
    from: &Phone,
    school_year: &str,
    now: i64,
) -> StoreResult<Option<ReplyOutcome>> {
    let default = settings.server.default_lang;
    let answer = |targets: &[ConsentTarget]| {
        Some(NewSms {
            to: from.as_str().to_owned(),
            text: texts::withdrawn(lang(targets, default), &children(targets)),
            kind: SmsKind::ConsentWithdrawn,
        })
    };
    let actor = format!("sms:{}", from.as_str());
    let detail = "reply 3#2: consent withdrawn";
    let done = store
        .withdraw_consents(
            school_year,
            from.as_str(),
            now,
            detail,
            &lifecycle::withdrawal(&actor, detail),
            &answer,
        )
        .await?;
    if done.consents.is_empty() {
        return Ok(None);
    }
    crate::sms::wake();
    tracing::info!(
        phone = %from.masked(),
        consents = done.consents.len(),
        vouchers = done.vouchers.len(),
        "consent withdrawn by SMS"
    );
    Ok(Some(ReplyOutcome::Withdrawn {
        consents: done.consents.len(),
        vouchers: done.vouchers.len(),
    }))
}

/// The answer to a reply from a number whose consents of `school_year` were withdrawn; `None`
/// when there are none.
pub async fn answer_withdrawn(
    store: &dyn Store,
    settings: &Settings,
    from: &Phone,
    school_year: &str,
    now: i64,
) -> StoreResult<Option<ReplyOutcome>> {
    let targets = store.withdrawn_consents(school_year, from.as_str()).await?;
    if targets.is_empty() {
        return Ok(None);
    }
    let text = texts::already_withdrawn(
        lang(&targets, settings.server.default_lang),
        &children(&targets),
    );
    let answered = answer_help(store, from, text, now).await?;
    Ok(Some(ReplyOutcome::AlreadyWithdrawn { answered }))
}
