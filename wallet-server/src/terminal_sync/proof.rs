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
use shared::calendar::{local_time, MealWindow, SchoolYears, ServiceDay};
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
    /// The school years: each event is checked against the year of its day.
    pub years: &'a SchoolYears,
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
/// (which holds SQLite's one writer), with Ed25519 batch verification
/// ([`token::verify_many`]), spread over the machine's cores.
pub fn check_tokens(
    ring: &KeyRing,
    school_code: i64,
    skew: u32,
    events: &[TerminalEvent],
) -> HashMap<i64, Option<Refusal>> {
    let served: Vec<&TerminalEvent> = events.iter().filter(|e| served_by_qr(e)).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    // Whole batches per thread: a part shorter than a batch loses the batch's gain.
    let chunk = served
        .len()
        .div_ceil(threads)
        .next_multiple_of(token::BATCH)
        .max(token::BATCH);
    if threads < 2 || served.len() <= chunk {
        return token_refusals(ring, school_code, skew, &served);
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = served
            .chunks(chunk)
            .map(|part| scope.spawn(move || token_refusals(ring, school_code, skew, part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("token checks do not panic"))
            .collect()
    })
}

/// [`check_tokens`] without the signatures: what the tokens' claims decide (missing or
/// malformed token, another voucher, another school, outside validity), each signature taken
/// as good. Microseconds for a batch: the upload classes its events by this while the
/// signatures are checked on another core, and commits only if [`check_tokens`] agrees.
pub fn assume_signed(
    school_code: i64,
    skew: u32,
    events: &[TerminalEvent],
) -> HashMap<i64, Option<Refusal>> {
    let school = token_school(school_code);
    events
        .iter()
        .filter(|e| served_by_qr(e))
        .map(|e| {
            let refusal = match proof_of(e) {
                Err(r) => Some(r),
                Ok(d) => refusal_of(e, token::check_claims(d.claims, school, e.scanned_at, skew)),
            };
            (e.seq, refusal)
        })
        .collect()
}

/// The token refusals of served QR events, by `seq`.
fn token_refusals(
    ring: &KeyRing,
    school_code: i64,
    skew: u32,
    served: &[&TerminalEvent],
) -> HashMap<i64, Option<Refusal>> {
    let mut out = HashMap::with_capacity(served.len());
    let mut decoded = Vec::with_capacity(served.len());
    let mut of = Vec::with_capacity(served.len());
    for e in served {
        match proof_of(e) {
            Err(r) => {
                out.insert(e.seq, Some(r));
            }
            Ok(d) => {
                decoded.push((d, e.scanned_at));
                of.push(*e);
            }
        }
    }
    let verdicts = token::verify_many(&decoded, ring, token_school(school_code), skew);
    for (e, verdict) in of.into_iter().zip(verdicts) {
        out.insert(e.seq, refusal_of(e, verdict));
    }
    out
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
        // Where the voucher was when it was served: a meal served before the pupil moved, and
        // uploaded after, stays with the school that served it.
        if v.school_at(e.scanned_at) != self.school_code {
            return Some(Refusal::OtherSchoolVoucher);
        }
        let active = v.activated_at.is_some_and(|a| a <= e.scanned_at)
            && !matches!(v.revoked_at, Some(r) if r <= e.scanned_at)
            && (v.valid_from..=v.valid_to).contains(&e.service_day);
        if !active {
            return Some(Refusal::VoucherInactive);
        }
        let Some(year) = self.years.year_for(e.service_day) else {
            return Some(Refusal::OutsideSchoolYear);
        };
        if !year.is_school_day(e.service_day) {
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
    match proof_of(e) {
        Err(r) => Some(r),
        Ok(d) => refusal_of(
            e,
            token::verify_decoded(&d, ring, token_school(school_code), e.scanned_at, skew),
        ),
    }
}

/// The events that carry a token to check: served by QR.
fn served_by_qr(e: &TerminalEvent) -> bool {
    e.verdict == Verdict::Ok && e.source == ScanSource::Qr
}

/// A served QR event's token, decoded (its signature not checked), or why there is none.
fn proof_of(e: &TerminalEvent) -> Result<token::Decoded, Refusal> {
    let text = e.proof.as_deref().ok_or(Refusal::NoProof)?;
    token::decode(text).map_err(|_| Refusal::BadProof)
}

/// A school code as tokens carry it; one no token can carry matches none.
fn token_school(school_code: i64) -> u32 {
    u32::try_from(school_code).unwrap_or(u32::MAX)
}

/// The signature first: an unsigned token's voucher id says nothing.
fn refusal_of(e: &TerminalEvent, verdict: Result<token::Claims, Verdict>) -> Option<Refusal> {
    match verdict {
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

    /// The batched checks before the transaction give each event what the check in place
    /// would: honest tokens among forged, foreign, other vouchers', expired and missing ones,
    /// across batch and thread boundaries.
    #[test]
    fn batched_token_checks_agree_with_the_single_check() {
        use shared::calendar::MealKind;
        use shared::KeyPair;
        use uuid::Uuid;
        let key = KeyPair::from_seed([3; 32]);
        let ring = KeyRing::from_public_keys([key.public_bytes()]);
        let at = 1_790_000_000_i64;
        for n in [1, 63, 64, 65, 200, 500] {
            let events: Vec<TerminalEvent> = (0..n)
                .map(|i| {
                    let voucher = Uuid::from_u128(i as u128 + 1);
                    let school = if i % 17 == 5 { 8 } else { 7 };
                    let expires = if i % 19 == 3 { at - 600 } else { at + 300 };
                    let mut proof = token::sign(
                        &token::TokenRequest {
                            voucher_id: voucher,
                            school_code: school,
                            issued_at: u32::try_from(at - 900).unwrap(),
                            expires_at: u32::try_from(expires).unwrap(),
                        },
                        &key,
                    );
                    if i % 23 == 11 {
                        // A forged signature: one character of it changed.
                        let c = if proof.ends_with('A') { "B" } else { "A" };
                        proof.replace_range(130..131, c);
                    }
                    TerminalEvent {
                        event_id: Uuid::from_u128(1000 + i as u128),
                        seq: i as i64 + 1,
                        scanned_at: at,
                        service_day: ServiceDay::from_unix(at).date(),
                        verdict: Verdict::Ok,
                        source: ScanSource::Qr,
                        meal_kind: MealKind::Lunch,
                        voucher_id: Some(if i % 29 == 7 {
                            Uuid::from_u128(999_999)
                        } else {
                            voucher
                        }),
                        key_id: None,
                        proof: (i % 31 != 13).then_some(proof),
                        repeat: false,
                        count: 1,
                        capped: false,
                    }
                })
                .collect();
            let batched = check_tokens(&ring, 7, 120, &events);
            assert_eq!(batched.len(), events.len());
            let mut refused = 0;
            for e in &events {
                let single = token_refusal(&ring, 7, 120, e);
                assert_eq!(batched[&e.seq], single, "event {} of {n}", e.seq);
                refused += usize::from(single.is_some());
            }
            assert!(n < 64 || (refused > 0 && refused < n), "{refused} of {n}");
        }
    }

    #[test]
    fn refusal_codes_round_trip() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::parse(r.code()), Some(r));
        }
    }
}
