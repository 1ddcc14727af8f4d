//! The verdict of one scan, in the exact order of DESIGN §4, from memory alone (no I/O).

use crate::state::{normalize_card, State};
use crate::store::PriorMeal;
use chrono::NaiveDate;
use shared::calendar::{local_time, MealKind, ServiceDay};
use shared::keys::KeyId;
use shared::token;
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use uuid::Uuid;

/// What was presented at the counter.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The QR text, as scanned.
    Token(&'a str),
    /// The fallback of §1.9: an ID-card number.
    Card(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub service_day: NaiveDate,
    pub meal_kind: MealKind,
    /// Recorded once the token's signature verified (or the card matched): an unverified
    /// token's voucher id could be anyone's.
    pub voucher_id: Option<Uuid>,
    /// Key id of a token that decoded, kept for audits of key rotation.
    pub key_id: Option<KeyId>,
    /// For `already_served`: the earlier meal.
    pub earlier: Option<PriorMeal>,
}

pub fn decide(
    state: &State,
    credential: Credential<'_>,
    now: i64,
    meal_kind: MealKind,
    skew: u32,
) -> Decision {
    let service_day = ServiceDay::from_unix(now).0;
    let mut d = Decision {
        verdict: Verdict::Ok,
        service_day,
        meal_kind,
        voucher_id: None,
        key_id: None,
        earlier: None,
    };
    if now < state.sync.last_seen_time {
        d.verdict = Verdict::ClockUntrusted;
        return d;
    }
    let voucher_id = match credential {
        Credential::Token(text) => {
            let decoded = match token::decode(text) {
                Ok(decoded) => decoded,
                Err(v) => {
                    d.verdict = v;
                    return d;
                }
            };
            d.key_id = Some(decoded.claims.key_id);
            match token::verify_decoded(
                &decoded,
                &state.ring,
                state.identity.school_code,
                now,
                skew,
            ) {
                Ok(claims) => claims.voucher_id,
                Err(v) => {
                    if !matches!(v, Verdict::UnknownKey | Verdict::BadSignature) {
                        d.voucher_id = Some(decoded.claims.voucher_id);
                    }
                    d.verdict = v;
                    return d;
                }
            }
        }
        Credential::Card(number) => match state.cards.get(&normalize_card(number)) {
            Some(id) => *id,
            None => {
                d.verdict = Verdict::UnknownVoucher;
                return d;
            }
        },
    };
    d.voucher_id = Some(voucher_id);
    let Some(voucher) = state.vouchers.get(&voucher_id) else {
        d.verdict = Verdict::UnknownVoucher;
        return d;
    };
    if voucher.status != VoucherStatus::Active
        || service_day < voucher.valid_from
        || service_day > voucher.valid_to
    {
        d.verdict = Verdict::VoucherInactive;
        return d;
    }
    if !state.is_school_day(service_day) {
        d.verdict = Verdict::NotASchoolDay;
        return d;
    }
    let t = local_time(now);
    let in_window = state
        .meal_windows
        .iter()
        .any(|w| w.kind == meal_kind && w.contains(t));
    if !in_window {
        d.verdict = Verdict::OutsideMealWindow;
        return d;
    }
    if state.today.day == Some(service_day) {
        if let Some(prior) = state.today.meals.get(&(voucher_id, meal_kind)) {
            d.verdict = Verdict::AlreadyServed;
            d.earlier = Some(prior.clone());
            return d;
        }
    }
    d
}

/// Longest time after an `ok` in which the same token shown again at this terminal is a
/// repeat (a camera or wedge scanner reading it twice), not a second attempt.
pub const REPEAT_WINDOW_SECONDS: i64 = 120;

/// Whether a token presented at `at` repeats the one this terminal served at `served_at`:
/// the same token text within [`REPEAT_WINDOW_SECONDS`].
pub fn is_repeat(served_proof: Option<&str>, served_at: i64, token: Option<&str>, at: i64) -> bool {
    matches!((served_proof, token), (Some(a), Some(b)) if a == b)
        && at - served_at <= REPEAT_WINDOW_SECONDS
}

#[cfg(test)]
mod repeat_tests {
    use super::{is_repeat, REPEAT_WINDOW_SECONDS as W};

    #[test]
    fn only_the_same_token_within_the_window_repeats() {
        assert!(is_repeat(Some("t"), 100, Some("t"), 100 + W));
        assert!(
            !is_repeat(Some("t"), 100, Some("t"), 101 + W),
            "after the window"
        );
        assert!(!is_repeat(Some("t"), 100, Some("u"), 101), "another token");
        assert!(!is_repeat(None, 100, Some("t"), 101), "served by card");
        assert!(!is_repeat(Some("t"), 100, None, 101), "a card now");
        assert!(!is_repeat(None, 100, None, 101));
    }
}
