//! Signing QR tokens for parents (DESIGN §3 validity): a fresh token every time, signed with the
//! currently active key (so a key rotation is invisible to parents), counted against the
//! voucher's daily allowance and never stored.

use crate::config::Settings;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::wallet::SigningVoucher;
use chrono::NaiveDate;
use shared::token::{self, TokenRequest};
use shared::wire::{Validity, VoucherStatus};
use shared::ServiceDay;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// When a token asked for at `now` expires.
///
/// `short`: `short_ttl_minutes` from now. `today`: the end of the last meal window of today
/// (local time). A `today` token is refused — not silently shortened — on a day without
/// meals or after the last window: a parent sending a link for the day must know it will not
/// work, rather than find out at the counter.
pub fn expiry(settings: &Settings, now: i64, validity: Validity) -> AppResult<i64> {
    match validity {
        Validity::Short => Ok(now + 60 * i64::from(settings.tokens.short_ttl_minutes)),
        Validity::Today => {
            let day = ServiceDay::from_unix(now);
            if !settings.school_years.is_school_day(day.date()) {
                return Err(AppError::Invalid(
                    "no_meals_today",
                    "There are no school meals today; a code for today cannot be made.".into(),
                ));
            }
            let last_end = settings
                .windows()
                .iter()
                .map(|w| w.end)
                .max()
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no meal windows configured")))?;
            let end = day.unix_at(last_end);
            if now >= end {
                return Err(AppError::Invalid(
                    "no_meals_left_today",
                    "Today's meal times are over; ask for a code tomorrow.".into(),
                ));
            }
            Ok(end)
        }
    }
}

/// The refusal for a voucher whose school year is over: it says when the next school year
/// starts, once one is configured (between years no voucher is valid, so no token is signed).
pub fn year_over(settings: &Settings, today: NaiveDate) -> AppError {
    let message = match settings.school_years.next_after(today) {
        Some(next) => format!(
            "This voucher's school year is over; the next school year starts on {}.",
            next.start
        ),
        None => "This voucher's school year is over.".into(),
    };
    AppError::Invalid("voucher_expired", message)
}

/// A token may be signed only for an active voucher on a day of its validity.
pub fn check_usable(v: &SigningVoucher, settings: &Settings, today: NaiveDate) -> AppResult<()> {
    match v.status_on(today)? {
        VoucherStatus::Active => {}
        VoucherStatus::Issued => {
            return Err(AppError::Invalid(
                "voucher_not_active",
                "Activate the voucher first.".into(),
            ))
        }
        VoucherStatus::Revoked => {
            return Err(AppError::Invalid(
                "voucher_revoked",
                "This voucher has been revoked.".into(),
            ))
        }
        VoucherStatus::Expired => return Err(year_over(settings, today)),
    }
    if today < v.valid_from_date()? {
        return Err(AppError::Invalid(
            "voucher_not_yet_valid",
            format!("This voucher is valid from {}.", v.valid_from),
        ));
    }
    Ok(())
}

/// Checks, counts and signs.
pub async fn issue(state: &AppState, v: &SigningVoucher, validity: Validity) -> AppResult<Issued> {
    let now = state.now();
    let today = ServiceDay::from_unix(now).date();
    check_usable(v, &state.settings, today)?;
    let expires_at = expiry(&state.settings, now, validity)?;
    let voucher_id = v.uuid()?;
    let limit = state.settings.tokens.daily_limit_per_voucher;
    if !state
        .wallet
        .tokens
        .try_take(state.store.as_ref(), voucher_id, today, limit)
        .await?
    {
        return Err(AppError::TooManyRequests(format!(
            "This voucher has had its {limit} QR codes for today. Try again tomorrow."
        )));
    }
    let time = |t: i64| {
        u32::try_from(t).map_err(|_| AppError::Internal(anyhow::anyhow!("time {t} beyond u32")))
    };
    let request = TokenRequest {
        voucher_id,
        school_code: v.school_code_u32()?,
        issued_at: time(now)?,
        expires_at: time(expires_at)?,
    };
    let keys = state.keys.active();
    crate::metrics::record_token_issued();
    Ok(Issued {
        token: token::sign(&request, &keys.signing),
        issued_at: now,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::MONDAY_9AM;

    #[test]
    fn expiry_rules() {
        // An explicit year: the defaults follow the real date, the test must not.
        let s = Settings::from_toml("[school_year]\nstart = \"2026-09-01\"\nend = \"2027-05-25\"")
            .unwrap();
        assert_eq!(
            expiry(&s, MONDAY_9AM, Validity::Short).unwrap(),
            MONDAY_9AM + 600
        );
        // Lunch ends 15:00 local, six hours after 09:00.
        assert_eq!(
            expiry(&s, MONDAY_9AM, Validity::Today).unwrap(),
            MONDAY_9AM + 6 * 3600
        );
        let after = MONDAY_9AM + 6 * 3600;
        assert!(matches!(
            expiry(&s, after, Validity::Today),
            Err(AppError::Invalid("no_meals_left_today", _))
        ));
        assert_eq!(expiry(&s, after, Validity::Short).unwrap(), after + 600);
        let sunday = MONDAY_9AM - 86_400;
        assert!(matches!(
            expiry(&s, sunday, Validity::Today),
            Err(AppError::Invalid("no_meals_today", _))
        ));
    }
}
