//! Proof of each meal: the server re-checks every uploaded served event before it may count.
//!
//! A terminal credential alone must not be able to put a meal in a wallet, a school total or a
//! NOBD report. A served QR event therefore carries the token it was served on, and the
//! server checks it as the terminal did — with the trust list, at the event's own time — plus
//! what only the server knows: the voucher's school and its active period. Card events have
//! no token; they are checked for everything else and classed `card`, so their share per
//! terminal can be watched. An event that fails is stored `refused` with the first reason
//! found, kept for the school's anomalies and counted nowhere.
//!
//! Everything here is pure: the store reads the voucher facts inside the upload's
//! transaction and calls [`ProofRules::classify`] per event.

pub use crate::store::terminals::VoucherFacts;
use shared::calendar::{local_time, MealWindow, SchoolYear, ServiceDay};
use shared::token;
use shared::trust::KeyRing;
use shared::verdict::Verdict;
use shared::wire::{ScanSource, TerminalEvent};
use std::collections::HashMap;

/// How far a terminal's clock (as it reports it on the upload) may be from the server's
/// before its card events, which no token dates, are refused.
pub const CLOCK_TOLERANCE_SECONDS: i64 = 300;

/// The class a served event is stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofClass {
    Proven,
    Card,
    Refused(Refusal),
}

impl ProofClass {
    pub fn code(self) -> &'static str {
        match self {
            ProofClass::Proven => "proven",
            ProofClass::Card => "card",
            ProofClass::Refused(_) => "refused",
        }
    }

    pub fn refusal(self) -> Option<Refusal> {
        match self {
            ProofClass::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// Why a served event does not count. The codes are stored and shown; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// A QR event without its token, from a terminal that says it sends proofs.
    NoProof,
    /// The token does not decode, or no trusted key signed it.
    BadProof,
    /// The token names another voucher than the event.
    ProofOtherVoucher,
    /// The token was made for another school.
    ProofOtherSchool,
    /// The event's time lies outside the token's validity (± skew).
    OutsideTokenValidity,
    /// No such voucher.
    UnknownVoucher,
    /// The voucher belongs to another school.
    OtherSchoolVoucher,
    /// The voucher was not active at the event's time (not activated yet, revoked, or the day
    /// lies outside its validity).
    VoucherInactive,
    /// The day is outside the school year.
    OutsideSchoolYear,
    NotASchoolDay,
    OutsideMealWindow,
    /// `scanned_at` is later than the server's clock (plus skew).
    InFuture,
    /// The event's service day is not the local day of its `scanned_at`.
    DayMismatch,
    /// A card event from a terminal that dates meals by its PC clock (before 0.2.0), whose
    /// reported clock is off by more than the tolerance.
    ClockOffset,
}

impl Refusal {
    pub const ALL: [Refusal; 14] = [
        Refusal::NoProof,
        Refusal::BadProof,
        Refusal::ProofOtherVoucher,
        Refusal::ProofOtherSchool,
        Refusal::OutsideTokenValidity,
        Refusal::UnknownVoucher,
        Refusal::OtherSchoolVoucher,
        Refusal::VoucherInactive,
        Refusal::OutsideSchoolYear,
        Refusal::NotASchoolDay,
        Refusal::OutsideMealWindow,
        Refusal::InFuture,
        Refusal::DayMismatch,
        Refusal::ClockOffset,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoProof => "no_proof",
            Refusal::BadProof => "bad_proof",
            Refusal::ProofOtherVoucher => "proof_other_voucher",
            Refusal::ProofOtherSchool => "proof_other_school",
            Refusal::OutsideTokenValidity => "outside_token_validity",
            Refusal::UnknownVoucher => "unknown_voucher",
            Refusal::OtherSchoolVoucher => "other_school_voucher",
            Refusal::VoucherInactive => "voucher_inactive",
            Refusal::OutsideSchoolYear => "outside_school_year",
            Refusal::NotASchoolDay => "not_a_school_day",
            Refusal::OutsideMealWindow => "outside_meal_window",
            Refusal::InFuture => "in_future",
            Refusal::DayMismatch => "day_mismatch",
            Refusal::ClockOffset => "clock_offset",
        }
    }

    pub fn parse(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// Everything the checks need besides the event and its voucher.
pub struct ProofRules<'a> {
    pub ring: &'a KeyRing,
    /// The uploading terminal's school.
    pub school_code: i64,
    pub year: &'a SchoolYear,
    pub windows: &'a [MealWindow],
    pub skew: u32,
    /// The server's clock at the upload.
    pub now: i64,
    /// The terminal's clock minus the server's, as measured on this upload.
    pub clock_offset: Option<i64>,
    /// The terminal dates meals by trusted time (the server's time at its last sync carried
    /// forward), so its PC clock's offset says nothing about its events.
    pub trusted_time: bool,
    /// Token checks made before the upload's transaction, by `seq` ([`check_tokens`]); an
    /// event missing here is checked in place.
    pub tokens: &'a HashMap<i64, Option<Refusal>>,
}

/// What a served QR event's token alone decides, for the batch's served QR events. Signature
/// checks are the upload's largest cost and need no database: done before the transaction
/// (which holds SQLite's one writer), spread over the machine's cores.
pub fn check_tokens(
    ring: &KeyRing,
    school_code: i64,
    skew: u32,
    events: &[TerminalEvent],
) -> HashMap<i64, Option<Refusal>> {
    let served: Vec<&TerminalEvent> = events
        .iter()
        .filter(|e| e.verdict == Verdict::Ok && e.source == ScanSource::Qr)
        .collect();
    let check = |e: &&TerminalEvent| (e.seq, token_refusal(ring, school_code, skew, e));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || served.len() < 64 {
        return served.iter().map(check).collect();
    }
    let chunk = served.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = served
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("token checks do not panic"))
            .collect()
    })
}

impl ProofRules<'_> {
    /// The class of a served event; `None` for every other event (rejections are not meals).
    pub fn classify(
        &self,
        e: &TerminalEvent,
        voucher: Option<&VoucherFacts>,
    ) -> Option<ProofClass> {
        if e.verdict != Verdict::Ok {
            return None;
        }
        Some(match self.first_refusal(e, voucher) {
            Some(r) => ProofClass::Refused(r),
            None if e.source == ScanSource::Card => ProofClass::Card,
            None => ProofClass::Proven,
        })
    }

    fn first_refusal(&self, e: &TerminalEvent, voucher: Option<&VoucherFacts>) -> Option<Refusal> {
        if e.scanned_at > self.now + i64::from(self.skew) {
            return Some(Refusal::InFuture);
        }
        if ServiceDay::from_unix(e.scanned_at).date() != e.service_day {
            return Some(Refusal::DayMismatch);
        }
        if e.source == ScanSource::Qr {
            let checked = match self.tokens.get(&e.seq) {
                Some(r) => *r,
                None => token_refusal(self.ring, self.school_code, self.skew, e),
            };
            if let Some(r) = checked {
                return Some(r);
            }
        } else if !self.trusted_time
            && self
                .clock_offset
                .is_some_and(|o| o.abs() > CLOCK_TOLERANCE_SECONDS)
        {
            return Some(Refusal::ClockOffset);
        }
        let Some(v) = voucher else {
            return Some(Refusal::UnknownVoucher);
        };
        if v.school_code != self.school_code {
            return Some(Refusal::OtherSchoolVoucher);
        }
        let active = v.activated_at.is_some_and(|a| a <= e.scanned_at)
            && !matches!(v.revoked_at, Some(r) if r <= e.scanned_at)
            && (v.valid_from..=v.valid_to).contains(&e.service_day);
        if !active {
            return Some(Refusal::VoucherInactive);
        }
        if !self.year.contains(e.service_day) {
            return Some(Refusal::OutsideSchoolYear);
        }
        if !self.year.is_school_day(e.service_day) {
            return Some(Refusal::NotASchoolDay);
        }
        let at = local_time(e.scanned_at);
        if !self
            .windows
            .iter()
            .any(|w| w.kind == e.meal_kind && w.contains(at))
        {
            return Some(Refusal::OutsideMealWindow);
        }
        None
    }
}

/// The refusal a served QR event's token alone gives, if any.
fn token_refusal(
    ring: &KeyRing,
    school_code: i64,
    skew: u32,
    e: &TerminalEvent,
) -> Option<Refusal> {
    let Some(text) = e.proof.as_deref() else {
        return Some(Refusal::NoProof);
    };
    let Ok(decoded) = token::decode(text) else {
        return Some(Refusal::BadProof);
    };
    // The signature first: an unsigned token's voucher id says nothing.
    let school = u32::try_from(school_code).unwrap_or(u32::MAX);
    match token::verify_decoded(&decoded, ring, school, e.scanned_at, skew) {
        Ok(claims) if Some(claims.voucher_id) != e.voucher_id => Some(Refusal::ProofOtherVoucher),
        Ok(_) => None,
        Err(Verdict::WrongSchool) => Some(Refusal::ProofOtherSchool),
        Err(Verdict::NotYetValid | Verdict::Expired) => Some(Refusal::OutsideTokenValidity),
        Err(_) => Some(Refusal::BadProof),
    }
}

/// Whether a terminal that names `version` (or none) sends proofs with its served QR events.
pub fn sends_proofs(version: Option<&str>) -> bool {
    fn parse(v: &str) -> Option<(u64, u64, u64)> {
        let core = v.trim().split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next().unwrap_or(Some(0))?))
    }
    match (
        version.and_then(parse),
        parse(shared::wire::PROOF_REQUIRED_SINCE),
    ) {
        (Some(v), Some(min)) => v >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_that_send_proofs() {
        assert!(!sends_proofs(None));
        assert!(!sends_proofs(Some("0.1.0")));
        assert!(!sends_proofs(Some("garbage")));
        assert!(sends_proofs(Some("0.2.0")));
        assert!(sends_proofs(Some("0.10.1-rc1")));
        assert!(sends_proofs(Some("1.0")));
    }

    #[test]
    fn refusal_codes_round_trip() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::parse(r.code()), Some(r));
        }
    }
}
