//! The consent process per pupil and school year (DESIGN §1.4): its current status, every
//! transition with its time, and the SMS each step sends — written in one transaction.
//!
//! Every step claims its rows before changing them, so several server instances on one
//! PostgreSQL never take the same step twice: opening relies on the unique
//! `(pupil_id, school_year)` key with `ON CONFLICT DO NOTHING`, the timed steps lock rows with
//! `FOR UPDATE SKIP LOCKED` and re-check the status in the `UPDATE`. On SQLite every step runs
//! in a `BEGIN IMMEDIATE` transaction: one writer at a time.
//!
//! A consent stands from one school year to the next: a pupil whose latest consent (of an
//! earlier year) is `consented` gets this year's row as `consented` at once, with
//! `carried_from` naming that year, instead of a new request (DESIGN §10).

use super::roster::full_name;
use super::sms::{insert_sms_sql, NewSms};
use super::sql::{begin_write, bulk, placeholders, skip_locked};
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::FromRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentStatus {
    Pending,
    Requested,
    Repeated,
    Consented,
    Refused,
    Expired,
    NoPhone,
    /// Consented, then withdrawn by `3#2` (DESIGN §10): the vouchers were revoked, and the
    /// consent no longer stands (not carried into the next school year).
    Withdrawn,
}

impl ConsentStatus {
    pub const ALL: [ConsentStatus; 8] = [
        ConsentStatus::Pending,
        ConsentStatus::Requested,
        ConsentStatus::Repeated,
        ConsentStatus::Consented,
        ConsentStatus::Refused,
        ConsentStatus::Expired,
        ConsentStatus::NoPhone,
        ConsentStatus::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Pending => "pending",
            ConsentStatus::Requested => "requested",
            ConsentStatus::Repeated => "repeated",
            ConsentStatus::Consented => "consented",
            ConsentStatus::Refused => "refused",
            ConsentStatus::Expired => "expired",
            ConsentStatus::NoPhone => "no_phone",
            ConsentStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<ConsentStatus> {
        ConsentStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A request was sent and no answer has come yet.
    pub fn awaits_answer(self) -> bool {
        matches!(self, ConsentStatus::Requested | ConsentStatus::Repeated)
    }
}

impl TryFrom<String> for ConsentStatus {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ConsentStatus::parse(&s).ok_or(StoreError::Corrupt(format!("consent status {s:?}")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Consent {
    pub id: i64,
    pub pupil_id: i64,
    pub school_year: String,
    pub phone: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ConsentStatus,
    pub requested_at: Option<i64>,
    pub repeated_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
    /// The earlier school year whose consent stands for this one (no request was sent).
    pub carried_from: Option<String>,
}

const CONSENT_COLUMNS: &str = "id, pupil_id, school_year, phone, status, requested_at, \
    repeated_at, ended_at, updated_at, carried_from";

/// A consent that just changed, with what its SMS needs: the pupil's names and language.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ConsentTarget {
    pub consent_id: i64,
    pub pupil_id: i64,
    pub school_code: i64,
    pub phone: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ConsentStatus,
    pub lang: String,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    /// The asked parent's full name as the roster gives it.
    pub contact_name: Option<String>,
}

impl ConsentTarget {
    /// Surname, name, patronymic (where known).
    pub fn child_name(&self) -> String {
        full_name(
            &self.last_name,
            &self.first_name,
            self.middle_name.as_deref(),
        )
    }
}

/// A consented pupil still without the school year's voucher, with what its SMS needs.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OwedVoucher {
    pub pupil_id: i64,
    pub school_code: i64,
    /// Set when the consent stands from an earlier year: the parent was not asked this year
    /// and learns of the new voucher by SMS.
    pub carried_from: Option<String>,
    /// The parent to tell: the pupil's priority guardian now.
    pub contact_phone: Option<String>,
    pub lang: String,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
}

impl OwedVoucher {
    /// Surname, name, patronymic (where known).
    pub fn child_name(&self) -> String {
        full_name(
            &self.last_name,
            &self.first_name,
            self.middle_name.as_deref(),
        )
    }
}

pub(crate) const TARGET_SELECT: &str =
    "SELECT c.id AS consent_id, c.pupil_id, p.school_code, c.phone, \
    c.status, p.lang, p.last_name, p.first_name, p.middle_name, p.contact_name \
    FROM consents c JOIN pupils p ON p.id = c.pupil_id";

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Transition {
    pub consent_id: i64,
    pub status: String,
    pub at: i64,
    pub detail: Option<String>,
}

/// Consents with an id above `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: i64,
    pub limit: i64,
}

/// A timed step of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedStep {
    /// `requested` since `due_before` or earlier → `repeated` (with the repeat SMS).
    Repeat,
    /// `repeated` since `due_before` or earlier → `expired` (the process ends).
    Expire,
}

/// A consent given in person on a paper form, as the school's staff record it (DESIGN §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchoolConsent<'a> {
    pub school_year: &'a str,
    /// The school recording it: the pupil must be listed there.
    pub school_code: i64,
    pub pupil_iin: &'a str,
    /// The staff member's username.
    pub recorded_by: &'a str,
    pub signer_name: &'a str,
    /// `mother`, `father` or `guardian` (a legal representative).
    pub relation: &'a str,
    pub document_number: &'a str,
    /// `YYYY-MM-DD`, the date on the form.
    pub signed_on: &'a str,
}

/// What recording a consent at school did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchoolConsentOutcome {
    /// The consent is `consented` with the form stored; the voucher is to be issued.
    Recorded {
        consent_id: i64,
        pupil_id: i64,
        school_code: i64,
    },
    /// No listed pupil with that IIN at the school.
    UnknownPupil,
    /// The pupil is listed but in no eligible category.
    NotEligible,
    /// The pupil has a voucher of the school year already (in any state).
    HasVoucher,
}

/// The NOBD outcome of a transition, where it says more than the status reached.
pub const CONSENTED_AT_SCHOOL: &str = "consented_at_school";
/// A `3#1` after the process ended `expired` or `refused` (DESIGN §11).
pub const CONSENTED_LATE: &str = "consented_late";

/// The SMS a consent that changed sends (`None`: none), written in the same transaction.
pub type SmsFor<'a> = &'a (dyn Fn(&ConsentTarget) -> Option<NewSms> + Send + Sync);
/// The one answer to a reply, given every consent it changed.
pub type AnswerSms<'a> = &'a (dyn Fn(&[ConsentTarget]) -> Option<NewSms> + Send + Sync);

#[async_trait]
pub trait ConsentStore {
    /// Opens the process for the eligible, listed pupils with none this school year whose id is
    /// in `pupils` (`(from, to]`): `no_phone` (ended at once) when the roster has no phone for
    /// the family, else `requested` with the SMS `sms` writes. Returns the consents opened, by
    /// id. Callers walk all pupils in windows of ids (see [`ConsentStore::last_pupil_id`]).
    async fn open_consents(
        &self,
        school_year: &str,
        now: i64,
        pupils: (i64, i64),
        sms: SmsFor<'_>,
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// Carries standing consents over into `school_year` for the eligible, listed pupils
    /// without a consent this year whose id is in `pupils` (`(from, to]`) and whose latest
    /// consent of an earlier year is `consented`: their row of this year is `consented` at once
    /// (`carried_from` names the earlier year). Run before [`ConsentStore::open_consents`] on
    /// the same window, so that they are not asked again. Returns the consents carried.
    async fn carry_consents(
        &self,
        school_year: &str,
        now: i64,
        pupils: (i64, i64),
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// Starts the SMS process again for up to `limit` pupils whose process of `school_year`
    /// ended `no_phone` and who now have a phone (a roster import gave them one; DESIGN §11):
    /// the consent is `requested` again on that phone, with the request SMS `sms` writes, a
    /// transition saying why, and an audit entry (`consent.phone_added`). Eligible, listed
    /// pupils only. Returns the consents restarted, by id.
    async fn restart_no_phone_consents(
        &self,
        school_year: &str,
        now: i64,
        limit: i64,
        sms: SmsFor<'_>,
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// Ends as `expired` up to `limit` processes still awaiting an answer of a school year
    /// before `current` (labels sort as the years do; `None` between years: every one), without
    /// an SMS: their year is over.
    async fn close_open_consents(
        &self,
        current: Option<&str>,
        now: i64,
        limit: i64,
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// Takes `step` for up to `page.limit` consents whose clock started at `due_before` or
    /// earlier and whose id is above `page.after` (the highest id of the caller's last batch).
    async fn advance_consents(
        &self,
        school_year: &str,
        step: TimedStep,
        due_before: i64,
        now: i64,
        page: Page,
        sms: SmsFor<'_>,
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// Applies a reply from `phone` to every consent awaiting an answer on that number:
    /// `outcome` is `Consented` or `Refused`. Writes one answer SMS for them all.
    async fn answer_consents(
        &self,
        school_year: &str,
        phone: &str,
        outcome: ConsentStatus,
        now: i64,
        detail: &str,
        sms: AnswerSms<'_>,
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// A late `3#1` (DESIGN §11): the consents of `school_year` asked on `phone` whose process
    /// ended `expired` or `refused`, of pupils still listed and eligible without a voucher of
    /// the year, become `consented` (transition outcome `consented_late`), with one answer SMS
    /// for them all. A `withdrawn` consent is never reopened here.
    async fn answer_late(
        &self,
        school_year: &str,
        phone: &str,
        now: i64,
        detail: &str,
        sms: AnswerSms<'_>,
    ) -> StoreResult<Vec<ConsentTarget>>;

    /// Which numbers the consents of `school_year` of the pupils that list `phone` as a
    /// parent's (mother, father or guardian) but were asked on another number were asked on,
    /// with the pupil's language: processes awaiting an answer or ended `expired` or `refused`.
    async fn asked_elsewhere(
        &self,
        school_year: &str,
        phone: &str,
    ) -> StoreResult<Vec<(String, String)>>;

    /// Records a consent given in person at school: the pupil's consent of the year becomes
    /// `consented` (opened so if there was none), with a transition whose NOBD outcome is
    /// `consented_at_school` and the form in `consent_school_records`, in one transaction.
    /// Writes nothing unless the outcome is [`SchoolConsentOutcome::Recorded`].
    async fn record_school_consent(
        &self,
        form: &SchoolConsent<'_>,
        now: i64,
    ) -> StoreResult<SchoolConsentOutcome>;

    /// Consented pupils (still listed) of the school year without a voucher for it whose id is
    /// in `pupils` (`(from, to]`), by id.
    async fn consented_without_voucher(
        &self,
        school_year: &str,
        pupils: (i64, i64),
    ) -> StoreResult<Vec<OwedVoucher>>;

    /// The highest pupil id (0 without pupils): where a walk over the pupils in id windows ends.
    ///
    /// Why windows rather than `ORDER BY id LIMIT n` with a "not done yet" condition: every
    /// statement then joins a bounded range of pupils, consents and vouchers whatever plan the
    /// database picks. PostgreSQL, with statistics from before a mass mailing, planned the
    /// open step as a scan of every consent of the year per pupil (300–600 ms per batch).
    async fn last_pupil_id(&self) -> StoreResult<i64>;

    /// The lowest id of an eligible, listed pupil without a consent this school year, if any:
    /// where the open step's walk starts (one pass over the pupils, so that a tick with nothing
    /// to open does not walk the windows).
    async fn first_pupil_to_ask(&self, school_year: &str) -> StoreResult<Option<i64>>;

    /// The lowest id of a consented, listed pupil without a voucher this school year, if any.
    async fn first_pupil_owed_voucher(&self, school_year: &str) -> StoreResult<Option<i64>>;

    async fn consent_for_pupil(
        &self,
        pupil_id: i64,
        school_year: &str,
    ) -> StoreResult<Option<Consent>>;

    /// Oldest first.
    async fn consent_transitions(&self, consent_id: i64) -> StoreResult<Vec<Transition>>;

    /// How many consents of the school year are in each status.
    async fn consent_counts(&self, school_year: &str) -> StoreResult<Vec<(String, i64)>>;
}

/// Whether the tick's statements are kept prepared: no, they are planned at every execution.
/// They run once per batch, so planning costs nothing worth counting, while a plan kept from
/// the first batch of a mass mailing was made when the consents or vouchers of the year were
/// few: PostgreSQL then chose to scan the whole table for every pupil of a window, and kept
/// that plan while the table grew to hundreds of thousands of rows (the voucher step took 61 s
/// for 441,215 vouchers at half the pilot; docs/benchmarks.md, "Pilot scale").
const KEEP_PLAN: bool = false;

/// Who the open step asks: eligible, listed pupils without a consent this school year (`$1`),
/// optionally only those with an id in `($lo, $hi]`. The bounds are repeated inside the
/// subquery so that any plan joins only the window's consents.
fn to_ask(window: Option<(&str, &str)>) -> String {
    let (outer, inner) = match window {
        Some((lo, hi)) => (
            format!("p.id > {lo} AND p.id <= {hi} AND "),
            format!(" AND c.pupil_id > {lo} AND c.pupil_id <= {hi}"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "{outer}p.category <> 'not_eligible' AND p.removed_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM consents c
                         WHERE c.pupil_id = p.id AND c.school_year = $1{inner})"
    )
}

/// The SQL of a timed step: `(from, to, clock column, sets)`.
fn step_sql(step: TimedStep) -> (&'static str, &'static str, &'static str, &'static str) {
    match step {
        TimedStep::Repeat => ("requested", "repeated", "requested_at", "repeated_at = $1"),
        TimedStep::Expire => ("repeated", "expired", "repeated_at", "ended_at = $1"),
    }
}

macro_rules! impl_consent {
    ($t:ty) => {
        impl $t {
            /// Loads the targets of the changed consents, writes their transitions and SMS.
            pub(crate) async fn record_changes(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                ids: &[i64],
                now: i64,
                detail: Option<&str>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                Self::record_changes_as(tx, ids, now, detail, None).await
            }

            /// [`Self::record_changes`], the transitions carrying the NOBD `outcome` where it
            /// says more than the status.
            pub(crate) async fn record_changes_as(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                ids: &[i64],
                now: i64,
                detail: Option<&str>,
                outcome: Option<&str>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut targets: Vec<ConsentTarget> = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(super::sql::CHUNK) {
                    let sql = bulk(
                        <$t>::BACKEND,
                        format!("{TARGET_SELECT} WHERE c.id IN ({})", placeholders(chunk.len(), 1)),
                    );
                    let mut q = sqlx::query_as(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    targets.extend(q.fetch_all(&mut **tx).await?);
                    let sql = bulk(
                        <$t>::BACKEND,
                        format!(
                            "INSERT INTO consent_transitions (consent_id, status, at, detail, outcome)
                             SELECT id, status, $1, $2, $3 FROM consents WHERE id IN ({})",
                            placeholders(chunk.len(), 4)
                        ),
                    );
                    let mut q = sqlx::query(&sql).bind(now).bind(detail).bind(outcome);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut **tx).await?;
                }
                targets.sort_by_key(|t| t.consent_id);
                Ok(targets)
            }

            pub(crate) async fn insert_sms(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                rows: &[NewSms],
                now: i64,
            ) -> StoreResult<()> {
                for chunk in rows.chunks(super::sql::CHUNK) {
                    let sql = bulk(<$t>::BACKEND, insert_sms_sql(chunk.len()));
                    $crate::bind_sms!(sqlx::query(&sql), chunk, now)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }
        }

        #[async_trait]
        impl ConsentStore for $t {
            async fn open_consents(
                &self,
                school_year: &str,
                now: i64,
                (from, to): (i64, i64),
                sms: SmsFor<'_>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The unique (pupil_id, school_year) key decides which instance opens a
                // pupil's process: only rows this statement inserted come back.
                let ids: Vec<i64> = sqlx::query_scalar(&format!(
                    "INSERT INTO consents (pupil_id, school_year, phone, status, requested_at,
                        ended_at, updated_at)
                     SELECT p.id, $1, p.contact_phone,
                        CASE WHEN p.contact_phone IS NULL THEN 'no_phone' ELSE 'requested' END,
                        CASE WHEN p.contact_phone IS NULL THEN NULL ELSE $2 END,
                        CASE WHEN p.contact_phone IS NULL THEN $2 ELSE NULL END,
                        $2
                     FROM pupils p
                     WHERE {}
                     ORDER BY p.id{}
                     ON CONFLICT (pupil_id, school_year) DO NOTHING
                     RETURNING id",
                    to_ask(Some(("$3", "$4"))),
                    skip_locked(Self::BACKEND, "p")
                ))
                .persistent(KEEP_PLAN)
                .bind(school_year)
                .bind(now)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let targets = Self::record_changes(&mut tx, &ids, now, None).await?;
                let outgoing: Vec<NewSms> = targets
                    .iter()
                    .filter(|t| t.status == ConsentStatus::Requested)
                    .filter_map(sms)
                    .collect();
                Self::insert_sms(&mut tx, &outgoing, now).await?;
                tx.commit().await?;
                Ok(targets)
            }

            async fn carry_consents(
                &self,
                school_year: &str,
                now: i64,
                (from, to): (i64, i64),
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The latest earlier consent decides: one refused or expired since the
                // agreement means it no longer stands. Labels ("2026-2027") sort as years do.
                let ids: Vec<i64> = sqlx::query_scalar(&format!(
                    "INSERT INTO consents (pupil_id, school_year, phone, status, ended_at,
                        updated_at, carried_from)
                     SELECT p.id, $1, p.contact_phone, 'consented', $2, $2, earlier.school_year
                     FROM pupils p JOIN consents earlier ON earlier.pupil_id = p.id
                     WHERE {} AND earlier.pupil_id > $3 AND earlier.pupil_id <= $4
                       AND earlier.status = 'consented'
                       AND earlier.school_year = (SELECT MAX(e.school_year) FROM consents e
                                                  WHERE e.pupil_id = p.id AND e.school_year < $1)
                     ORDER BY p.id{}
                     ON CONFLICT (pupil_id, school_year) DO NOTHING
                     RETURNING id",
                    to_ask(Some(("$3", "$4"))),
                    skip_locked(Self::BACKEND, "p")
                ))
                .persistent(KEEP_PLAN)
                .bind(school_year)
                .bind(now)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let detail = "a consent of an earlier school year stands";
                let targets = Self::record_changes(&mut tx, &ids, now, Some(detail)).await?;
                tx.commit().await?;
                Ok(targets)
            }

            async fn restart_no_phone_consents(
                &self,
                school_year: &str,
                now: i64,
                limit: i64,
                sms: SmsFor<'_>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The outer status check makes a row another instance restarted meanwhile a
                // no-op. The clocks start again: the 3 days count from this request.
                let ids: Vec<i64> = sqlx::query_scalar(&format!(
                    "UPDATE consents SET status = 'requested',
                        phone = (SELECT p.contact_phone FROM pupils p WHERE p.id = consents.pupil_id),
                        requested_at = $1, repeated_at = NULL, ended_at = NULL, updated_at = $1
                     WHERE status = 'no_phone' AND id IN (
                        SELECT c.id FROM consents c JOIN pupils p ON p.id = c.pupil_id
                        WHERE c.school_year = $2 AND c.status = 'no_phone'
                          AND p.contact_phone IS NOT NULL AND p.removed_at IS NULL
                          AND p.category <> 'not_eligible'
                        ORDER BY c.id LIMIT $3{})
                     RETURNING id",
                    skip_locked(Self::BACKEND, "c")
                ))
                .persistent(KEEP_PLAN)
                .bind(now)
                .bind(school_year)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let detail = "a phone appeared in the roster: the SMS process starts again";
                let targets = Self::record_changes(&mut tx, &ids, now, Some(detail)).await?;
                for chunk in ids.chunks(super::sql::CHUNK) {
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "INSERT INTO audit_log (at, actor, action, subject, detail)
                             SELECT $1, 'consent-tick', 'consent.phone_added',
                                'consent ' || CAST(id AS TEXT), $2
                             FROM consents WHERE id IN ({})",
                            placeholders(chunk.len(), 3)
                        ),
                    );
                    let mut q = sqlx::query(&sql).bind(now).bind(detail);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut *tx).await?;
                }
                let outgoing: Vec<NewSms> = targets.iter().filter_map(sms).collect();
                Self::insert_sms(&mut tx, &outgoing, now).await?;
                tx.commit().await?;
                Ok(targets)
            }

            async fn close_open_consents(
                &self,
                current: Option<&str>,
                now: i64,
                limit: i64,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The status condition as the partial index `consents_open_year` states it; the
                // year's as a range on it.
                let (year, n) = match current {
                    Some(_) => ("AND c.school_year < $2", 3),
                    None => ("", 2),
                };
                let sql = format!(
                    "UPDATE consents SET status = 'expired', ended_at = $1, updated_at = $1
                     WHERE status IN ('requested', 'repeated') AND id IN (
                        SELECT c.id FROM consents c
                        WHERE status IN ('requested', 'repeated') {year}
                        ORDER BY c.id LIMIT ${n}{})
                     RETURNING id",
                    skip_locked(Self::BACKEND, "c")
                );
                let mut q = sqlx::query_scalar(&sql).bind(now);
                if let Some(label) = current {
                    q = q.bind(label);
                }
                let ids: Vec<i64> = q.bind(limit).fetch_all(&mut *tx).await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let detail = "the school year ended before an answer";
                let targets = Self::record_changes(&mut tx, &ids, now, Some(detail)).await?;
                tx.commit().await?;
                Ok(targets)
            }

            async fn advance_consents(
                &self,
                school_year: &str,
                step: TimedStep,
                due_before: i64,
                now: i64,
                page: Page,
                sms: SmsFor<'_>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let (from, to, clock, sets) = step_sql(step);
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The outer status check makes a row another instance moved meanwhile a no-op.
                let ids: Vec<i64> = sqlx::query_scalar(&format!(
                    "UPDATE consents SET status = '{to}', {sets}, updated_at = $1
                     WHERE status = '{from}' AND id IN (
                        SELECT c.id FROM consents c JOIN pupils p ON p.id = c.pupil_id
                        WHERE c.school_year = $2 AND c.status = '{from}' AND c.{clock} <= $3
                          AND c.id > $4 AND p.removed_at IS NULL
                        ORDER BY c.id LIMIT $5{})
                     RETURNING id",
                    skip_locked(Self::BACKEND, "c")
                ))
                .persistent(KEEP_PLAN)
                .bind(now)
                .bind(school_year)
                .bind(due_before)
                .bind(page.after)
                .bind(page.limit)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let detail = match step {
                    TimedStep::Repeat => "no answer in 3 days: request repeated",
                    TimedStep::Expire => "no answer in 3 days after the repeat",
                };
                let targets = Self::record_changes(&mut tx, &ids, now, Some(detail)).await?;
                let outgoing: Vec<NewSms> = targets.iter().filter_map(sms).collect();
                Self::insert_sms(&mut tx, &outgoing, now).await?;
                tx.commit().await?;
                Ok(targets)
            }

            async fn answer_consents(
                &self,
                school_year: &str,
                phone: &str,
                outcome: ConsentStatus,
                now: i64,
                detail: &str,
                sms: AnswerSms<'_>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // No SKIP LOCKED here: a reply waits for a tick holding the row, then applies.
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE consents SET status = $1, ended_at = $2, updated_at = $2
                     WHERE phone = $3 AND school_year = $4 AND status IN ('requested', 'repeated')
                       AND EXISTS (SELECT 1 FROM pupils p
                                   WHERE p.id = consents.pupil_id AND p.removed_at IS NULL)
                     RETURNING id",
                )
                .bind(outcome.as_str())
                .bind(now)
                .bind(phone)
                .bind(school_year)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let targets = Self::record_changes(&mut tx, &ids, now, Some(detail)).await?;
                if let Some(answer) = sms(&targets) {
                    Self::insert_sms(&mut tx, std::slice::from_ref(&answer), now).await?;
                }
                tx.commit().await?;
                Ok(targets)
            }

            async fn answer_late(
                &self,
                school_year: &str,
                phone: &str,
                now: i64,
                detail: &str,
                sms: AnswerSms<'_>,
            ) -> StoreResult<Vec<ConsentTarget>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE consents SET status = 'consented', ended_at = $1, updated_at = $1
                     WHERE phone = $2 AND school_year = $3 AND status IN ('expired', 'refused')
                       AND EXISTS (SELECT 1 FROM pupils p
                                   WHERE p.id = consents.pupil_id AND p.removed_at IS NULL
                                     AND p.category <> 'not_eligible')
                       AND NOT EXISTS (SELECT 1 FROM vouchers v
                                       WHERE v.pupil_id = consents.pupil_id
                                         AND v.school_year = consents.school_year)
                     RETURNING id",
                )
                .bind(now)
                .bind(phone)
                .bind(school_year)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let targets =
                    Self::record_changes_as(&mut tx, &ids, now, Some(detail), Some(CONSENTED_LATE))
                        .await?;
                if let Some(answer) = sms(&targets) {
                    Self::insert_sms(&mut tx, std::slice::from_ref(&answer), now).await?;
                }
                tx.commit().await?;
                Ok(targets)
            }

            async fn asked_elsewhere(
                &self,
                school_year: &str,
                phone: &str,
            ) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT DISTINCT c.phone, p.lang FROM pupils p
                     JOIN consents c ON c.pupil_id = p.id AND c.school_year = $1
                     WHERE (p.mother_phone = $2 OR p.father_phone = $2 OR p.guardian_phone = $2)
                       AND p.removed_at IS NULL AND c.phone IS NOT NULL AND c.phone <> $2
                       AND c.status IN ('requested', 'repeated', 'expired', 'refused')
                     ORDER BY c.phone",
                )
                .bind(school_year)
                .bind(phone)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn record_school_consent(
                &self,
                form: &SchoolConsent<'_>,
                now: i64,
            ) -> StoreResult<SchoolConsentOutcome> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                let pupil: Option<(i64, String)> = sqlx::query_as(
                    "SELECT id, category FROM pupils
                     WHERE iin = $1 AND school_code = $2 AND removed_at IS NULL",
                )
                .bind(form.pupil_iin)
                .bind(form.school_code)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((pupil_id, category)) = pupil else {
                    return Ok(SchoolConsentOutcome::UnknownPupil);
                };
                if category == "not_eligible" {
                    return Ok(SchoolConsentOutcome::NotEligible);
                }
                let vouchers: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM vouchers WHERE pupil_id = $1 AND school_year = $2",
                )
                .bind(pupil_id)
                .bind(form.school_year)
                .fetch_one(&mut *tx)
                .await?;
                if vouchers > 0 {
                    return Ok(SchoolConsentOutcome::HasVoucher);
                }
                // A process awaiting an answer, ended, or not yet opened: the form decides. The
                // number asked (if any) stays with the row.
                let consent_id: i64 = sqlx::query_scalar(
                    "INSERT INTO consents (pupil_id, school_year, phone, status, ended_at,
                        updated_at)
                     VALUES ($1, $2, NULL, 'consented', $3, $3)
                     ON CONFLICT (pupil_id, school_year) DO UPDATE
                        SET status = 'consented', ended_at = $3, updated_at = $3
                     RETURNING id",
                )
                .bind(pupil_id)
                .bind(form.school_year)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                // One form per consent: a second record (after a failure between this
                // transaction and the voucher's) keeps the first form.
                sqlx::query(
                    "INSERT INTO consent_school_records (consent_id, school_code, recorded_by,
                        signer_name, relation, document_number, signed_on, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (consent_id) DO NOTHING",
                )
                .bind(consent_id)
                .bind(form.school_code)
                .bind(form.recorded_by)
                .bind(form.signer_name)
                .bind(form.relation)
                .bind(form.document_number)
                .bind(form.signed_on)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO consent_transitions (consent_id, status, at, detail, outcome)
                     VALUES ($1, 'consented', $2, $3, $4)",
                )
                .bind(consent_id)
                .bind(now)
                .bind(format!("consent recorded at school by {}", form.recorded_by))
                .bind(CONSENTED_AT_SCHOOL)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(SchoolConsentOutcome::Recorded {
                    consent_id,
                    pupil_id,
                    school_code: form.school_code,
                })
            }

            async fn consented_without_voucher(
                &self,
                school_year: &str,
                (from, to): (i64, i64),
            ) -> StoreResult<Vec<OwedVoucher>> {
                Ok(sqlx::query_as(
                    "SELECT p.id AS pupil_id, p.school_code, c.carried_from, p.contact_phone,
                        p.lang, p.last_name, p.first_name, p.middle_name
                     FROM pupils p JOIN consents c ON c.pupil_id = p.id AND c.school_year = $1
                     WHERE p.id > $2 AND p.id <= $3 AND p.removed_at IS NULL
                       AND c.pupil_id > $2 AND c.pupil_id <= $3 AND c.status = 'consented'
                       AND NOT EXISTS (SELECT 1 FROM vouchers v
                                       WHERE v.pupil_id = p.id AND v.school_year = $1
                                         AND v.pupil_id > $2 AND v.pupil_id <= $3)
                     ORDER BY p.id",
                )
                .persistent(KEEP_PLAN)
                .bind(school_year)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn first_pupil_to_ask(&self, school_year: &str) -> StoreResult<Option<i64>> {
                Ok(sqlx::query_scalar(&format!(
                    "SELECT MIN(p.id) FROM pupils p WHERE {}",
                    to_ask(None)
                ))
                .persistent(KEEP_PLAN)
                .bind(school_year)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn first_pupil_owed_voucher(&self, school_year: &str) -> StoreResult<Option<i64>> {
                // Led by the consented rows (the status index), not by the pupils as the window
                // query is: in the steady state there are none without a voucher, and this
                // finds that without reading every pupil (0.11 s against 0.28 s for a tick with
                // nothing due at 300,000 pupils).
                Ok(sqlx::query_scalar(
                    "SELECT MIN(c.pupil_id) FROM consents c JOIN pupils p ON p.id = c.pupil_id
                     WHERE c.school_year = $1 AND c.status = 'consented' AND p.removed_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM vouchers v
                                       WHERE v.pupil_id = c.pupil_id AND v.school_year = $1)",
                )
                .persistent(KEEP_PLAN)
                .bind(school_year)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn last_pupil_id(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM pupils")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn consent_for_pupil(
                &self,
                pupil_id: i64,
                school_year: &str,
            ) -> StoreResult<Option<Consent>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {CONSENT_COLUMNS} FROM consents WHERE pupil_id = $1 AND school_year = $2"
                ))
                .bind(pupil_id)
                .bind(school_year)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn consent_transitions(&self, consent_id: i64) -> StoreResult<Vec<Transition>> {
                Ok(sqlx::query_as(
                    "SELECT consent_id, status, at, detail FROM consent_transitions
                     WHERE consent_id = $1 ORDER BY id",
                )
                .bind(consent_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn consent_counts(&self, school_year: &str) -> StoreResult<Vec<(String, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT status, COUNT(*) FROM consents WHERE school_year = $1
                     GROUP BY status ORDER BY status",
                )
                .bind(school_year)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_consent);
