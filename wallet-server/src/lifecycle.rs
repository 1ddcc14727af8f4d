//! The life of a voucher (DESIGN §10): every change of a voucher's state is decided here, and
//! only here; the store writes what this module decides, with an audit row naming the reason in
//! the same transaction as the change.
//!
//! ```text
//!            ┌── parent activates ──▶ active ──┐
//!   issue ──▶ issued ──────────────────────────┼── revoke (not_eligible, removed, withdrawn,
//!                                              │   operator) ──▶ revoked ── restore, same year ──▶
//!                                              │                   issued or active, as before
//!                                              └── its year ended ──▶ expired
//! ```
//!
//! One voucher per pupil per school year, valid from the year's first to its last day: the
//! database's unique `(pupil_id, school_year)` key holds it, whoever issues. A revoked voucher
//! stays revoked when its year ends (the reason stays visible); an expired one never changes
//! again.

use crate::store::vouchers::{AuditNote, Issue, NewState, NewVoucher, StateChange, Voucher, Which};
use crate::store::{Store, StoreResult};
use chrono::NaiveDate;
use shared::calendar::SchoolYear;
use shared::wire::VoucherStatus;

/// The actor of the changes the server makes on its own (the consent tick, the turn of the
/// year).
pub const SYSTEM: &str = "system";

/// Why a voucher is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueReason {
    /// The parent agreed this school year (`3#1`).
    Consented,
    /// A consent given in an earlier school year stands: the voucher of the new year.
    ConsentStands,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::Consented => "consented",
            IssueReason::ConsentStands => "consent_stands",
        }
    }
}

/// Why a voucher is revoked (stored as its `revoke_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The pupil is no longer in an eligible category.
    NotEligible,
    /// The pupil left the roster (a snapshot import no longer lists them).
    Removed,
    /// The parent withdrew consent.
    Withdrawn,
    /// An operator's decision.
    Operator,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 4] = [
        RevokeReason::NotEligible,
        RevokeReason::Removed,
        RevokeReason::Withdrawn,
        RevokeReason::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::NotEligible => "not_eligible",
            RevokeReason::Removed => "removed",
            RevokeReason::Withdrawn => "withdrawn",
            RevokeReason::Operator => "operator",
        }
    }
}

/// A change of an existing voucher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The parent activates it in the wallet.
    Activate,
    Revoke(RevokeReason),
    /// A revocation undone in the same school year (a removal corrected).
    Restore,
    /// Its school year is over.
    Expire,
}

const ISSUED: &[VoucherStatus] = &[VoucherStatus::Issued];
const LIVE: &[VoucherStatus] = &[VoucherStatus::Issued, VoucherStatus::Active];
const REVOKED: &[VoucherStatus] = &[VoucherStatus::Revoked];

/// The rules: the states an event applies to, the state it leads to, and its audit action.
/// A voucher in any other state is left as it is (a revocation that won a race with the
/// activation is not undone, an expired voucher is never revived).
pub fn rule(event: Event) -> (&'static [VoucherStatus], NewState, &'static str) {
    match event {
        Event::Activate => (ISSUED, NewState::Active, "voucher.activate"),
        Event::Revoke(_) => (LIVE, NewState::Revoked, "voucher.revoke"),
        Event::Restore => (REVOKED, NewState::BeforeRevocation, "voucher.restore"),
        Event::Expire => (LIVE, NewState::Expired, "voucher.expire"),
    }
}

/// The audit detail of an event: its reason, and what the caller adds.
fn reason(event: Event) -> &'static str {
    match event {
        Event::Activate => "activated",
        Event::Revoke(r) => r.as_str(),
        Event::Restore => "restored",
        Event::Expire => "year_ended",
    }
}

fn change<'a>(event: Event, actor: &'a str, detail: &'a str) -> StateChange<'a> {
    let (from, to, action) = rule(event);
    StateChange {
        from,
        to,
        reason: reason(event),
        audit: AuditNote {
            actor,
            action,
            detail,
        },
    }
}

/// Issues `year`'s voucher (`issued`, valid `start..=end`) to each pupil of `rows` without one
/// that year; each row's SMS goes out only with a voucher made. Returns the vouchers made.
pub async fn issue(
    store: &dyn Store,
    year: &SchoolYear,
    rows: &[NewVoucher],
    why: IssueReason,
    actor: &str,
    now: i64,
) -> StoreResult<Vec<Voucher>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let label = year.label();
    let issue = Issue {
        school_year: &label,
        valid_from: year.start,
        valid_to: year.end,
        status: VoucherStatus::Issued,
        audit: AuditNote {
            actor,
            action: "voucher.issue",
            detail: why.as_str(),
        },
    };
    store.insert_vouchers(rows, &issue, now).await
}

/// `issued` → `active`. `None` when the voucher was not `issued` any more.
pub async fn activate(
    store: &dyn Store,
    id: &str,
    actor: &str,
    now: i64,
) -> StoreResult<Option<Voucher>> {
    let event = Event::Activate;
    let ids = [id.to_owned()];
    let changed = store
        .change_vouchers(Which::Ids(&ids), &change(event, actor, reason(event)), now)
        .await?;
    Ok(changed.into_iter().next())
}

/// Revokes the vouchers among `ids` that are `issued` or `active`; returns those revoked.
pub async fn revoke(
    store: &dyn Store,
    ids: &[String],
    why: RevokeReason,
    actor: &str,
    now: i64,
) -> StoreResult<Vec<Voucher>> {
    let event = Event::Revoke(why);
    store
        .change_vouchers(Which::Ids(ids), &change(event, actor, reason(event)), now)
        .await
}

/// What a snapshot import does to the vouchers of the pupils it removes, in its own
/// transaction: revoked as `removed`, the audit naming the file (`detail`).
pub fn removal<'a>(actor: &'a str, detail: &'a str) -> StateChange<'a> {
    change(Event::Revoke(RevokeReason::Removed), actor, detail)
}

/// What a parent's withdrawal of consent (`3#2` after consenting) does to the pupils' vouchers
/// of the year, in the transaction that records the withdrawal and queues its confirmation
/// (`WithdrawalStore::withdraw_consents`): revoked as `withdrawn`, the audit naming the reply.
pub fn withdrawal<'a>(actor: &'a str, detail: &'a str) -> StateChange<'a> {
    change(Event::Revoke(RevokeReason::Withdrawn), actor, detail)
}

/// Returns revoked vouchers among `ids` whose school year is not over on `today` to the state
/// they had before (issued, or active if they had been activated). A voucher of a year that
/// ended stays revoked.
pub async fn restore(
    store: &dyn Store,
    ids: &[String],
    actor: &str,
    today: NaiveDate,
    now: i64,
) -> StoreResult<Vec<Voucher>> {
    let mut same_year = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(uuid) = uuid::Uuid::parse_str(id) else {
            continue;
        };
        if let Some(v) = store.voucher(uuid).await? {
            if v.valid_to
                .parse::<NaiveDate>()
                .is_ok_and(|end| today <= end)
            {
                same_year.push(v.id);
            }
        }
    }
    if same_year.is_empty() {
        return Ok(Vec::new());
    }
    let event = Event::Restore;
    store
        .change_vouchers(
            Which::Ids(&same_year),
            &change(event, actor, reason(event)),
            now,
        )
        .await
}

/// Vouchers expired per transaction at the end of a year.
const EXPIRE_BATCH: i64 = 500;

/// Every voucher still `issued` or `active` whose school year ended before `today` becomes
/// `expired` (its history stays). Returns how many. Several instances may run it at once: a
/// voucher another one expired first is no longer in a state this change applies to.
pub async fn expire_ended(store: &dyn Store, today: NaiveDate, now: i64) -> StoreResult<usize> {
    let event = Event::Expire;
    let change = change(event, SYSTEM, reason(event));
    let mut expired = 0;
    loop {
        let ids = store
            .vouchers_ended_before(today, change.from, EXPIRE_BATCH)
            .await?;
        if !ids.is_empty() {
            // Those another instance expired meanwhile are no longer in a `from` state.
            expired += store
                .change_vouchers(Which::Ids(&ids), &change, now)
                .await?
                .len();
        }
        if (ids.len() as i64) < EXPIRE_BATCH {
            return Ok(expired);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state an event leads a voucher in `from` to, by the rules; `None`: left as it is.
    fn after(from: VoucherStatus, event: Event, activated: bool) -> Option<VoucherStatus> {
        let (states, to, _) = rule(event);
        if !states.contains(&from) {
            return None;
        }
        Some(match to {
            NewState::Active => VoucherStatus::Active,
            NewState::Revoked => VoucherStatus::Revoked,
            NewState::Expired => VoucherStatus::Expired,
            NewState::BeforeRevocation if activated => VoucherStatus::Active,
            NewState::BeforeRevocation => VoucherStatus::Issued,
        })
    }

    #[test]
    fn the_states_of_design_section_10() {
        use VoucherStatus::*;
        assert_eq!(after(Issued, Event::Activate, false), Some(Active));
        assert_eq!(after(Active, Event::Activate, true), None, "already active");
        assert_eq!(after(Revoked, Event::Activate, false), None);
        for why in RevokeReason::ALL {
            assert_eq!(after(Issued, Event::Revoke(why), false), Some(Revoked));
            assert_eq!(after(Active, Event::Revoke(why), true), Some(Revoked));
            assert_eq!(after(Expired, Event::Revoke(why), true), None);
        }
        assert_eq!(after(Revoked, Event::Restore, true), Some(Active));
        assert_eq!(after(Revoked, Event::Restore, false), Some(Issued));
        assert_eq!(after(Active, Event::Restore, true), None);
        assert_eq!(after(Issued, Event::Expire, false), Some(Expired));
        assert_eq!(after(Active, Event::Expire, true), Some(Expired));
        assert_eq!(
            after(Revoked, Event::Expire, true),
            None,
            "keeps its reason"
        );
        for event in [
            Event::Activate,
            Event::Restore,
            Event::Expire,
            Event::Revoke(RevokeReason::Operator),
        ] {
            assert_eq!(after(Expired, event, true), None, "expired is final");
        }
    }

    /// The absence docs/architecture.md states: no SQL outside the voucher store writes a
    /// voucher, except the roster import's bump of the change number terminals follow.
    #[test]
    fn only_the_voucher_store_writes_vouchers() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        assert!(files.len() > 50, "the sources were found");
        let writes = [
            "UPDATE vouchers",
            "INSERT INTO vouchers",
            "DELETE FROM vouchers",
        ];
        for file in files {
            let rel = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == "store/vouchers.rs" || rel == "lifecycle.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text
                .lines()
                .filter(|l| writes.iter().any(|w| l.contains(w)))
            {
                let bump = rel == "store/import.rs"
                    && line.contains("UPDATE vouchers SET change_seq = $1 WHERE pupil_id IN");
                assert!(bump, "{rel} writes vouchers: {line}");
            }
        }
    }

    #[test]
    fn every_change_is_audited_with_its_reason() {
        let c = change(Event::Revoke(RevokeReason::NotEligible), "a", "d");
        assert_eq!(
            (c.reason, c.audit.action, c.audit.actor, c.audit.detail),
            ("not_eligible", "voucher.revoke", "a", "d")
        );
        let r = removal("import", "removed: roster.csv");
        assert_eq!((r.reason, r.to), ("removed", NewState::Revoked));
        let w = withdrawal("sms:+77010000001", "reply 3#2");
        assert_eq!(
            (w.reason, w.to, w.from, w.audit.action, w.audit.detail),
            (
                "withdrawn",
                NewState::Revoked,
                LIVE,
                "voucher.revoke",
                "reply 3#2"
            )
        );
        assert_eq!(rule(Event::Expire).2, "voucher.expire");
        assert_eq!(reason(Event::Restore), "restored");
    }
}
