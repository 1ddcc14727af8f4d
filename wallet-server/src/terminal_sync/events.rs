//! Event batches from terminals: what a batch must look like, and storing it exactly once.
//!
//! A batch is refused whole (nothing written) only for what a correct terminal never sends:
//! seq below 1, a seq or event id twice in one batch, an `ok`/`already_served` without a
//! voucher, a service day that is not the scan's local day (±1 for terminals that correct their
//! clock), a key id that is not 8 hex digits, a `count` below 1 or above `MAX_EVENT_COUNT`, an
//! `ok` that counts more than one scan or is capped, or more than `MAX_BATCH` events. Anything a
//! terminal may legitimately record is stored, including events naming vouchers of another
//! school (a `wrong_school` scan); those are flagged `foreign_voucher`.

use super::proof::{assume_signed, check_tokens, sends_proofs, ProofClass, ProofRules, Refusal};
use crate::store::terminals::{
    BeforeCommit, ClassesFinal, EventBatch, EventClass, EventsOutcome, EventsStored,
    TerminalRecord, VoucherFacts,
};
use crate::store::{Store, StoreError};
use futures::future::{BoxFuture, FutureExt, Shared};
use shared::calendar::{MealWindow, SchoolYears, ServiceDay};
use shared::keys::KeyId;
use shared::trust::KeyRing;
use shared::wire::{EventAck, ScanSource, TerminalEvent, MAX_EVENT_COUNT, PROOF_REQUIRED_SINCE};
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;

/// Events per upload; the terminal sends 500 at a time.
pub const MAX_BATCH: usize = 1000;
/// 9999-12-31T23:59:59Z: later (or negative) times cannot be a scan.
const MAX_TIME: i64 = 253_402_300_799;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch holds at most {MAX_BATCH} events, this one {0}; upload in smaller batches")]
    TooLarge(usize),
    #[error("event {index} (seq {seq}): {reason}; nothing from this batch was stored")]
    Invalid {
        index: usize,
        seq: i64,
        reason: String,
    },
}

pub fn validate(events: &[TerminalEvent]) -> Result<(), BatchError> {
    if events.len() > MAX_BATCH {
        return Err(BatchError::TooLarge(events.len()));
    }
    let mut seqs = HashSet::with_capacity(events.len());
    let mut ids = HashSet::with_capacity(events.len());
    for (index, e) in events.iter().enumerate() {
        let bad = |reason: String| BatchError::Invalid {
            index,
            seq: e.seq,
            reason,
        };
        if e.seq < 1 {
            return Err(bad("seq must be 1 or more".into()));
        }
        if !seqs.insert(e.seq) {
            return Err(bad("the same seq appears twice in the batch".into()));
        }
        if e.event_id.is_nil() {
            return Err(bad("event_id is the nil UUID".into()));
        }
        if !ids.insert(e.event_id) {
            return Err(bad("the same event_id appears twice in the batch".into()));
        }
        if !(0..=MAX_TIME).contains(&e.scanned_at) {
            return Err(bad(format!(
                "scanned_at {} is not a Unix time in seconds",
                e.scanned_at
            )));
        }
        let local = ServiceDay::from_unix(e.scanned_at).date();
        if (e.service_day - local).num_days().abs() > 1 {
            return Err(bad(format!(
                "service_day {} is not the local day of scanned_at ({local})",
                e.service_day
            )));
        }
        if matches!(
            e.verdict,
            shared::Verdict::Ok | shared::Verdict::AlreadyServed
        ) && e.voucher_id.is_none()
        {
            return Err(bad(format!("a {} event must name its voucher", e.verdict)));
        }
        if !(1..=MAX_EVENT_COUNT).contains(&e.count) {
            return Err(bad(format!(
                "count {} is not between 1 and {MAX_EVENT_COUNT}",
                e.count
            )));
        }
        // A meal is one scan: only rejections are counted up or capped.
        if e.verdict == shared::Verdict::Ok && (e.count != 1 || e.capped) {
            return Err(bad("an ok event stands for exactly one scan".into()));
        }
        if let Some(k) = &e.key_id {
            if k.parse::<KeyId>().is_err() || k.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(bad(format!("key_id {k:?} is not 8 lowercase hex digits")));
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("seq {seq} is already stored with another event id (this one is {event_id}): the terminal's log was reset or restored from an old copy; nothing from this batch was stored — tell the operator")]
    SeqTaken { seq: i64, event_id: String },
    #[error(
        "event id {0} is already stored for another terminal; nothing from this batch was stored"
    )]
    EventIdTaken(String),
    #[error("this terminal was revoked by the school; enroll it again with a new code")]
    TerminalGone,
    #[error("this terminal ({}) sends served meals without their QR proof, which the server no longer counts; upgrade canteen-terminal to {PROOF_REQUIRED_SINCE} or later and sync again — its meals stay on the terminal until then, nothing is lost", .0.as_deref().map(|v| format!("version {v}")).unwrap_or_else(|| "a version that does not name itself".into()))]
    UpgradeRequired(Option<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the server checks served events against, besides each event's voucher.
pub struct Checks<'a> {
    pub ring: &'a KeyRing,
    pub years: &'a SchoolYears,
    pub windows: &'a [MealWindow],
    pub skew: u32,
}

/// An upload as the terminal sent it.
pub struct Upload<'a> {
    pub events: &'a [TerminalEvent],
    pub now: i64,
    /// Terminal clock minus server clock on this call, when the terminal sent its time.
    pub clock_offset: Option<i64>,
    /// The version the terminal names itself, if any.
    pub version: Option<&'a str>,
}

/// Validates, classes (proof of each meal) and stores one batch for an authenticated terminal.
pub async fn upload(
    store: &dyn Store,
    terminal: &TerminalRecord,
    upload: Upload<'_>,
    checks: &Checks<'_>,
) -> Result<EventAck, UploadError> {
    let Upload {
        events,
        now,
        clock_offset,
        version,
    } = upload;
    validate(events)?;
    // A terminal from before proofs: its meals cannot be counted and must not be lost, so the
    // whole upload is refused and stays on the terminal until it is upgraded.
    let unproven = events
        .iter()
        .any(|e| e.verdict.serves() && e.source == ScanSource::Qr && e.proof.is_none());
    let sends_proofs = sends_proofs(version);
    if unproven && !sends_proofs {
        store
            .note_upgrade_required(terminal.uuid(), version, now)
            .await?;
        tracing::warn!(terminal = %terminal.id, version = version.unwrap_or("-"), "upload refused: terminal must be upgraded");
        return Err(UploadError::UpgradeRequired(version.map(str::to_owned)));
    }
    // The events the server may not hold yet: a retry stores nothing new, so it verifies
    // nothing.
    let unheld: Vec<TerminalEvent> = events
        .iter()
        .filter(|e| e.seq > terminal.last_seq)
        .cloned()
        .collect();
    // Classes first by what the tokens' claims say, each signature taken as good, while the
    // signatures are checked off the async threads on the other cores; the upload commits only
    // if the signatures agree, and is classed again from the full check if one does not.
    let assumed = assume_signed(terminal.school_code, checks.skew, &unheld);
    let signatures = {
        let (ring, school, skew) = (checks.ring.clone(), terminal.school_code, checks.skew);
        let task = tokio::task::spawn_blocking(move || check_tokens(&ring, school, skew, &unheld));
        async move { task.await.map(Arc::new).map_err(|e| e.to_string()) }
            .boxed()
            .shared()
    };
    let batch = EventBatch {
        terminal_id: terminal.uuid(),
        school_code: terminal.school_code,
        events,
        now,
        clock_offset,
        version,
    };
    let rules = |tokens| ProofRules {
        ring: checks.ring,
        school_code: terminal.school_code,
        years: checks.years,
        windows: checks.windows,
        skew: checks.skew,
        now,
        clock_offset,
        // Terminals that send proofs also date meals by trusted time.
        trusted_time: sends_proofs,
        tokens,
    };
    let class_of = |rules: &ProofRules<'_>, e: &TerminalEvent, v: Option<&VoucherFacts>| match rules
        .classify(e, v)
    {
        None => EventClass::NotServed,
        Some(ProofClass::Refused(r)) => EventClass::Refused(r.code()),
        Some(class) => EventClass::Counts(class.code()),
    };
    let optimistic = rules(&assumed);
    let gate = SignaturesAgree {
        assumed: &assumed,
        checked: signatures.clone(),
    };
    let mut outcome = store
        .store_events(&batch, &|e, v| class_of(&optimistic, e, v), &gate)
        .await?;
    if outcome == EventsOutcome::Reclassify {
        let checked = signatures
            .await
            .map_err(|e| StoreError::Db(sqlx::Error::Protocol(format!("token checks: {e}"))))?;
        let full = rules(&checked);
        outcome = store
            .store_events(&batch, &|e, v| class_of(&full, e, v), &ClassesFinal)
            .await?;
    }
    match outcome {
        EventsOutcome::Stored(EventsStored {
            stored,
            already_had,
            refused,
            proven,
            card,
            last_seq,
        }) => {
            crate::metrics::record_events_stored("proven", proven);
            crate::metrics::record_events_stored("card", card);
            crate::metrics::record_events_stored("refused", refused);
            crate::metrics::record_events_stored(
                "rejection",
                stored.saturating_sub(proven + card + refused),
            );
            if stored > 0 {
                tracing::info!(terminal = %terminal.id, stored, already_had, refused, last_seq, "events stored");
            }
            if refused > 0 {
                tracing::warn!(terminal = %terminal.id, refused, "served events refused; the school sees them under anomalies");
            }
            Ok(EventAck {
                last_seq,
                stored,
                already_had,
                refused,
            })
        }
        EventsOutcome::SeqTaken { seq, event_id } => Err(UploadError::SeqTaken { seq, event_id }),
        EventsOutcome::EventIdTaken { event_id } => Err(UploadError::EventIdTaken(event_id)),
        EventsOutcome::TerminalGone => Err(UploadError::TerminalGone),
        EventsOutcome::Reclassify => unreachable!("a final classification always stands"),
    }
}

type TokenRefusals = HashMap<i64, Option<Refusal>>;

/// The upload's classes stand if every signature checked gives what was assumed.
struct SignaturesAgree<'a> {
    assumed: &'a TokenRefusals,
    checked: Shared<BoxFuture<'static, Result<Arc<TokenRefusals>, String>>>,
}

#[async_trait::async_trait]
impl BeforeCommit for SignaturesAgree<'_> {
    async fn classes_stand(&self) -> bool {
        matches!(self.checked.clone().await, Ok(checked) if *checked == *self.assumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use shared::calendar::MealKind;
    use shared::wire::ScanSource;
    use shared::Verdict;
    use uuid::Uuid;

    const NOON: i64 = 1_795_424_400; // 2026-11-23 14:00 local

    fn ev(seq: i64) -> TerminalEvent {
        TerminalEvent {
            event_id: Uuid::new_v4(),
            seq,
            scanned_at: NOON,
            service_day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            verdict: Verdict::Ok,
            source: ScanSource::Qr,
            meal_kind: MealKind::Lunch,
            voucher_id: Some(Uuid::new_v4()),
            key_id: Some("0a1b2c3d".into()),
            proof: None,
            repeat: false,
            count: 1,
            capped: false,
        }
    }

    #[test]
    fn good_batches_pass() {
        validate(&[]).unwrap();
        validate(&(1..=MAX_BATCH as i64).map(ev).collect::<Vec<_>>()).unwrap();
        let mut rejected = ev(1);
        rejected.verdict = Verdict::BadFormat;
        rejected.voucher_id = None;
        rejected.key_id = None;
        validate(&[rejected.clone()]).unwrap();
        // A rejection repeated, or over the terminal's cap, counts several scans.
        rejected.count = 10_000;
        rejected.capped = true;
        validate(&[rejected]).unwrap();
    }

    #[test]
    fn bad_batches_say_why() {
        let too_many: Vec<_> = (1..=MAX_BATCH as i64 + 1).map(ev).collect();
        assert_eq!(
            validate(&too_many),
            Err(BatchError::TooLarge(MAX_BATCH + 1))
        );
        let cases: Vec<(Vec<TerminalEvent>, &str)> = vec![
            (vec![ev(0)], "seq must be"),
            (vec![ev(1), ev(1)], "same seq"),
            (
                {
                    let a = ev(1);
                    let mut b = ev(2);
                    b.event_id = a.event_id;
                    vec![a, b]
                },
                "same event_id",
            ),
            (
                {
                    let mut e = ev(1);
                    e.voucher_id = None;
                    vec![e]
                },
                "must name its voucher",
            ),
            (
                {
                    let mut e = ev(1);
                    e.service_day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
                    vec![e]
                },
                "not the local day",
            ),
            (
                {
                    let mut e = ev(1);
                    e.scanned_at = -5;
                    vec![e]
                },
                "not a Unix time",
            ),
            (
                {
                    let mut e = ev(1);
                    e.key_id = Some("XYZ".into());
                    vec![e]
                },
                "key_id",
            ),
            (
                {
                    let mut e = ev(1);
                    e.event_id = Uuid::nil();
                    vec![e]
                },
                "nil",
            ),
            (
                {
                    let mut e = ev(1);
                    e.count = 2;
                    vec![e]
                },
                "exactly one scan",
            ),
            (
                {
                    let mut e = ev(1);
                    e.capped = true;
                    vec![e]
                },
                "exactly one scan",
            ),
            (
                {
                    let mut e = ev(1);
                    e.verdict = Verdict::BadFormat;
                    e.count = 0;
                    vec![e]
                },
                "count 0",
            ),
            (
                {
                    let mut e = ev(1);
                    e.verdict = Verdict::BadFormat;
                    e.count = MAX_EVENT_COUNT + 1;
                    vec![e]
                },
                "is not between",
            ),
        ];
        for (batch, needle) in cases {
            let err = validate(&batch).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        // A service day one off (a terminal correcting its clock near midnight) is accepted.
        let mut e = ev(1);
        e.service_day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        validate(&[e]).unwrap();
    }
}
