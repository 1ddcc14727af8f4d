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

use crate::config::Lang;
use crate::consent::texts;
use crate::sms::SmsKind;
use crate::store::import::{ListedChange, VoucherPlan};
use crate::store::roster::{full_name, NewPupil};
use crate::store::sms::NewSms;
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
    /// The school's staff recorded a consent given in person on a paper form (DESIGN §11).
    SchoolRecorded,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::Consented => "consented",
            IssueReason::ConsentStands => "consent_stands",
            IssueReason::SchoolRecorded => "school_recorded",
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

/// The voucher of a consent recorded at school (DESIGN §11): issued as `school_recorded` and
/// activated at once by the same staff member, since the family may have no wallet at all and
/// terminals serve `active` vouchers only (by card or staff look-up). `None` when the pupil
/// already had that year's voucher (another path issued it first).
pub async fn issue_at_school(
    store: &dyn Store,
    year: &SchoolYear,
    pupil_id: i64,
    school_code: i64,
    actor: &str,
    now: i64,
) -> StoreResult<Option<Voucher>> {
    let row = NewVoucher {
        pupil_id,
        school_code,
        sms: None,
    };
    let why = IssueReason::SchoolRecorded;
    let Some(made) = issue(store, year, &[row], why, actor, now).await?.pop() else {
        return Ok(None);
    };
    let event = Event::Activate;
    let ids = [made.id.clone()];
    let changed = store
        .change_vouchers(Which::Ids(&ids), &change(event, actor, why.as_str()), now)
        .await?;
    Ok(Some(changed.into_iter().next().unwrap_or(made)))
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

/// What a roster import does with the vouchers of a pupil it lists with changed data (DESIGN
/// §10), decided per voucher inside the import's transaction:
///
/// * a voucher whose school year has not ended follows the pupil to the school the file names
///   (the import moves it when that school differs; an expired or ended one stays where its
///   meals were served);
/// * the pupil is no longer eligible: an `issued` or `active` one is revoked (`not_eligible`);
/// * the pupil is eligible: one revoked as `not_eligible` or `removed` is restored to its state
///   before — never one the parent `withdrew` or an operator revoked.
pub fn listed_plan(v: &Voucher, eligible: bool, today: NaiveDate) -> VoucherPlan {
    let status = v.status();
    let ended = v
        .valid_to
        .parse::<NaiveDate>()
        .map_or(true, |end| end < today);
    if status == VoucherStatus::Expired || ended {
        return VoucherPlan::default();
    }
    let revocable = rule(Event::Revoke(RevokeReason::NotEligible))
        .0
        .contains(&status);
    let restorable = rule(Event::Restore).0.contains(&status)
        && [RevokeReason::NotEligible, RevokeReason::Removed]
            .iter()
            .any(|r| v.revoke_reason.as_deref() == Some(r.as_str()));
    let change = match (eligible, revocable, restorable) {
        (false, true, _) => Some(ListedChange::Revoke),
        (true, _, true) => Some(ListedChange::Restore),
        _ => None,
    };
    VoucherPlan {
        follows: true,
        change,
    }
}

/// The revocation of a listed pupil's voucher by [`listed_plan`], the audit naming the file.
pub fn not_eligible<'a>(actor: &'a str, detail: &'a str) -> StateChange<'a> {
    change(Event::Revoke(RevokeReason::NotEligible), actor, detail)
}

/// The restoration of a listed pupil's voucher by [`listed_plan`], the audit naming the file.
pub fn relisted<'a>(actor: &'a str, detail: &'a str) -> StateChange<'a> {
    change(Event::Restore, actor, detail)
}

/// The audit of a voucher moved by [`listed_plan`] (not a change of state: the voucher keeps
/// it), the detail naming the file.
pub fn moved<'a>(actor: &'a str, detail: &'a str) -> AuditNote<'a> {
    AuditNote {
        actor,
        action: "voucher.move",
        detail,
    }
}

/// The SMS (`voucher_revoked`) to the parent of a pupil whose voucher the import revoked as no
/// longer eligible: to the pupil's priority phone from the roster, in the pupil's language;
/// none without a phone.
pub fn not_eligible_sms(pupil: &NewPupil, school_name: &str) -> Option<NewSms> {
    let lang = Lang::parse(&pupil.lang).unwrap_or_default();
    let child = full_name(
        &pupil.last_name,
        &pupil.first_name,
        pupil.middle_name.as_deref(),
    );
    Some(NewSms {
        to: pupil.contact_phone.clone()?,
        text: texts::voucher_revoked(lang, &child, school_name),
        kind: SmsKind::VoucherRevoked,
    })
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
    fn a_listed_pupils_vouchers_follow_lose_and_regain_by_the_rules() {
        let today: NaiveDate = "2026-11-23".parse().unwrap();
        let voucher = |status: &str, reason: Option<&str>, valid_to: &str| Voucher {
            id: uuid::Uuid::nil().to_string(),
            pupil_id: 1,
            school_code: 1,
            school_year: "2026-2027".into(),
            status: status.into(),
            valid_from: "2026-09-01".into(),
            valid_to: valid_to.into(),
            issued_at: 0,
            activated_at: None,
            revoked_at: reason.map(|_| 1),
            revoke_reason: reason.map(str::to_owned),
            change_seq: 1,
        };
        let plan = |status, reason, eligible| {
            listed_plan(&voucher(status, reason, "2027-05-25"), eligible, today)
        };
        let follows = |change| VoucherPlan {
            follows: true,
            change,
        };
        for status in ["issued", "active"] {
            assert_eq!(plan(status, None, true), follows(None));
            assert_eq!(
                plan(status, None, false),
                follows(Some(ListedChange::Revoke))
            );
        }
        for why in RevokeReason::ALL {
            let r = Some(why.as_str());
            let undone = matches!(why, RevokeReason::NotEligible | RevokeReason::Removed);
            assert_eq!(
                plan("revoked", r, true),
                follows(undone.then_some(ListedChange::Restore)),
                "{why:?}"
            );
            assert_eq!(plan("revoked", r, false), follows(None), "{why:?}");
        }
        // Last year's vouchers stay where they were, as they are.
        assert_eq!(
            listed_plan(&voucher("expired", None, "2026-05-25"), false, today),
            VoucherPlan::default()
        );
        assert_eq!(
            listed_plan(
                &voucher("revoked", Some("removed"), "2026-05-25"),
                true,
                today
            ),
            VoucherPlan::default()
        );
        assert_eq!(
            listed_plan(&voucher("active", None, "2026-11-23"), false, today),
            follows(Some(ListedChange::Revoke)),
            "its last day is still its year"
        );
        let c = not_eligible("office", "not_eligible: by r.csv");
        assert_eq!((c.reason, c.to), ("not_eligible", NewState::Revoked));
        assert_eq!(relisted("a", "d").to, NewState::BeforeRevocation);
        assert_eq!(moved("a", "r.csv").action, "voucher.move");
    }

    #[test]
    fn the_revocation_sms_goes_to_the_priority_phone_in_the_pupils_language() {
        let mut p = NewPupil {
            iin: "1".into(),
            school_code: 1,
            last_name: "Сапаров".into(),
            first_name: "Алихан".into(),
            middle_name: Some("Русланович".into()),
            grade: 3,
            class_letter: "А".into(),
            receives_asp: false,
            per_capita_income_kzt: None,
            orphan: false,
            mother_name: None,
            mother_phone: None,
            father_name: None,
            father_phone: Some("+77010000009".into()),
            guardian_name: None,
            guardian_phone: None,
            card_number: None,
            lang: "kk".into(),
            category: crate::eligibility::Category::NotEligible,
            contact_phone: Some("+77010000009".into()),
            contact_name: None,
        };
        let sms = not_eligible_sms(&p, "Мектеп №1").unwrap();
        assert_eq!(
            (sms.to.as_str(), sms.kind),
            ("+77010000009", SmsKind::VoucherRevoked)
        );
        assert_eq!(
            sms.text,
            texts::voucher_revoked(Lang::Kk, "Сапаров Алихан Русланович", "Мектеп №1")
        );
        p.contact_phone = None;
        assert_eq!(not_eligible_sms(&p, "Мектеп №1"), None);
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
