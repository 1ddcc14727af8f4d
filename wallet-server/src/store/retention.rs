//! Erasing the personal data of pupils who left the roster long enough ago (DESIGN §10; the
//! policy and its dates are [`crate::retention`]'s, what is erased and why in
//! docs/operations.md, "Retention").
//!
//! A batch of due pupils is erased in one transaction: their row keeps its id, school, class,
//! category and dates, and loses names, IIN, phones, card and income; the same values go
//! wherever else they are stored. The pupils are claimed with row locks (`SKIP LOCKED`) and the
//! `UPDATE` re-checks `erased_at IS NULL`, so two instances never erase one pupil twice and a
//! second run finds nothing. On SQLite the transaction runs with `secure_delete` on, and
//! [`RetentionStore::purge_erased`] rewrites the files afterwards.

use super::nobd::CONSENT_OUTCOMES;
use super::sql::{begin_write, bulk, placeholders, skip_locked};
use super::{Backend, StoreResult};
use async_trait::async_trait;
use sqlx::FromRow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// What an erased value is replaced with where the column must hold something. Unique columns
/// (`pupils.iin`) get `erased:<pupil id>` instead.
pub const ERASED: &str = "erased";

/// The placeholder of an erased pupil's IIN (also their name, and their IIN in NOBD reports).
pub fn erased_iin(pupil_id: i64) -> String {
    format!("{ERASED}:{pupil_id}")
}

/// Which removed pupils are due for erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Removed from the roster before this instant (Unix seconds)...
    pub removed_before: i64,
    /// ... and no voucher of theirs valid after this day (`YYYY-MM-DD`).
    pub vouchers_ended_by: String,
}

/// `(removed_at, id)` of the last pupil a batch erased: the next batch starts after it.
pub type Cursor = (i64, i64);

/// What one batch erased. Counts are rows changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Ids of the pupils erased, in the order they left.
    pub pupils: Vec<i64>,
    /// Consents whose phone was cleared.
    pub consents: u64,
    /// Sent SMS whose number (no pupil lists it any more) or text (it named an erased pupil)
    /// was replaced.
    pub sms_erased: u64,
    /// Unsent SMS of the same kinds, deleted: a message not delivered in the year and more since
    /// the pupil left must not go out now.
    pub sms_deleted: u64,
    /// Wallet login codes and sessions of numbers no pupil lists any more, deleted.
    pub login_codes: u64,
    pub sessions: u64,
    /// Ratings and complaints about the pupils' vouchers: the parent's number replaced (a
    /// complaint keeps its text, less the names, IIN and numbers in it).
    pub ratings: u64,
    pub complaints: u64,
    /// NOBD report revisions whose IINs of these pupils were replaced.
    pub reports: u64,
    /// Audit rows about the pupils' vouchers whose actor or detail held one of their values.
    pub audit_rows: u64,
    pub cursor: Option<Cursor>,
}

impl Erased {
    pub fn add(&mut self, b: &Erased) {
        self.pupils.extend_from_slice(&b.pupils);
        self.consents += b.consents;
        self.sms_erased += b.sms_erased;
        self.sms_deleted += b.sms_deleted;
        self.login_codes += b.login_codes;
        self.sessions += b.sessions;
        self.ratings += b.ratings;
        self.complaints += b.complaints;
        self.reports += b.reports;
        self.audit_rows += b.audit_rows;
        if b.cursor.is_some() {
            self.cursor = b.cursor;
        }
    }
}

/// What [`RetentionStore::purge_erased`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    /// The statements run, for the operator.
    pub done: String,
    /// False when the SQLite log could not be emptied (a reader held it): run again.
    pub complete: bool,
}

#[async_trait]
pub trait RetentionStore {
    /// Erases up to `limit` due pupils, after `after` in `(removed_at, id)` order, in one
    /// transaction with an audit row (`retention.erase`: how many, which ids). Pupils another
    /// instance is erasing are skipped. An empty `pupils` means none is left after `after`.
    async fn erase_due_pupils(
        &self,
        due: &Due,
        after: Option<Cursor>,
        limit: i64,
        actor: &str,
        now: i64,
    ) -> StoreResult<Erased>;

    /// Takes erased values out of the database's files: on SQLite `VACUUM` (every page written
    /// anew, free space and left-behind copies of cells gone) and a truncating checkpoint (the
    /// write-ahead log, which holds pages as they were, emptied); on PostgreSQL `VACUUM` of the
    /// tables erasure touches (dead row versions removed; docs/operations.md says what stays).
    async fn purge_erased(&self) -> StoreResult<Purge>;

    /// An erasure committed whose purge has not completed since.
    async fn purge_pending(&self) -> StoreResult<bool>;
}

/// The personal values of a pupil being erased.
#[derive(Debug, Clone, FromRow)]
struct Leaver {
    id: i64,
    iin: String,
    school_code: i64,
    removed_at: i64,
    last_name: String,
    first_name: String,
    middle_name: Option<String>,
    mother_name: Option<String>,
    mother_phone: Option<String>,
    father_name: Option<String>,
    father_phone: Option<String>,
    guardian_name: Option<String>,
    guardian_phone: Option<String>,
    contact_name: Option<String>,
    contact_phone: Option<String>,
    card_number: Option<String>,
}

impl Leaver {
    fn full_name(&self) -> String {
        super::roster::full_name(
            &self.last_name,
            &self.first_name,
            self.middle_name.as_deref(),
        )
    }

    fn phones(&self) -> impl Iterator<Item = &str> {
        [
            &self.mother_phone,
            &self.father_phone,
            &self.guardian_phone,
            &self.contact_phone,
        ]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .filter(|p| !p.is_empty())
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        [
            &self.mother_name,
            &self.father_name,
            &self.guardian_name,
            &self.contact_name,
        ]
        .into_iter()
        .filter_map(|n| n.as_deref())
    }
}

/// Replaces the personal values of a batch wherever they occur inside a text.
struct Scrubber {
    /// `(value, replacement)`, longest value first so that a name inside a longer one goes
    /// with the longer.
    pairs: Vec<(String, String)>,
}

impl Scrubber {
    fn new(leavers: &[Leaver], phones: &[String]) -> Scrubber {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for l in leavers {
            pairs.push((l.iin.clone(), erased_iin(l.id)));
            pairs.push((l.full_name(), ERASED.to_owned()));
            // A parent writing about the child may use the first name alone.
            pairs.push((l.first_name.clone(), ERASED.to_owned()));
            pairs.push((l.last_name.clone(), ERASED.to_owned()));
            pairs.extend(l.names().map(|n| (n.to_owned(), ERASED.to_owned())));
            if let Some(card) = &l.card_number {
                pairs.push((card.clone(), ERASED.to_owned()));
            }
        }
        pairs.extend(phones.iter().map(|p| (p.clone(), ERASED.to_owned())));
        // Short values would match inside unrelated words.
        pairs.retain(|(v, _)| v.chars().count() >= 4);
        pairs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Scrubber { pairs }
    }

    fn scrub(&self, text: &str) -> Option<String> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for (value, replacement) in &self.pairs {
            if out.contains(value.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(value.as_str(), replacement));
            }
        }
        match out {
            std::borrow::Cow::Owned(s) => Some(s),
            std::borrow::Cow::Borrowed(_) => None,
        }
    }

    /// Every string of a JSON document scrubbed; `None` when nothing changed.
    fn scrub_json(&self, doc: &str) -> Option<String> {
        fn walk(v: &mut serde_json::Value, s: &Scrubber) -> bool {
            match v {
                serde_json::Value::String(text) => match s.scrub(text) {
                    Some(new) => {
                        *text = new;
                        true
                    }
                    None => false,
                },
                serde_json::Value::Array(items) => {
                    items.iter_mut().fold(false, |hit, i| walk(i, s) | hit)
                }
                serde_json::Value::Object(fields) => {
                    fields.values_mut().fold(false, |hit, f| walk(f, s) | hit)
                }
                _ => false,
            }
        }
        match serde_json::from_str::<serde_json::Value>(doc) {
            Ok(mut v) => walk(&mut v, self).then(|| v.to_string()),
            Err(_) => self.scrub(doc),
        }
    }
}

/// The local day of a Unix time, `YYYY-MM-DD`.
fn day_of(ts: i64) -> String {
    shared::ServiceDay::from_unix(ts).to_string()
}

const LEAVER_COLUMNS: &str = "p.id, p.iin, p.school_code, p.removed_at, p.last_name, \
    p.first_name, p.middle_name, p.mother_name, p.mother_phone, p.father_name, p.father_phone, \
    p.guardian_name, p.guardian_phone, p.contact_name, p.contact_phone, p.card_number";

#[derive(Debug, Clone, FromRow)]
struct VoucherDays {
    id: String,
    pupil_id: i64,
    school_code: i64,
    issued_at: i64,
    activated_at: Option<i64>,
    revoked_at: Option<i64>,
    valid_from: String,
    valid_to: String,
}

/// Every date from `from` to `to` (`YYYY-MM-DD`, both included); none when either is not a date.
fn dates_between(from: &str, to: &str) -> Vec<String> {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let (Some(from), Some(to)) = (parse(from), parse(to)) else {
        return Vec::new();
    };
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(|d| d.to_string())
        .collect()
}

/// Vouchers per served-days query: with a school year's days (about 270) as parameters too,
/// well under both backends' parameter limits.
const SERVED_CHUNK: usize = 200;

macro_rules! impl_retention {
    ($t:ty) => {
        impl $t {
            /// The rows of `sql` (its list, `$1…$n`, from [`placeholders`]) for every chunk of
            /// `items`.
            async fn rows_for<R, I>(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                sql: impl Fn(&str) -> String + Send,
                items: &[I],
            ) -> StoreResult<Vec<R>>
            where
                R: for<'r> FromRow<'r, <<$t as super::sql::HasDb>::Db as sqlx::Database>::Row>
                    + Send
                    + Unpin,
                I: for<'x> sqlx::Encode<'x, <$t as super::sql::HasDb>::Db>
                    + sqlx::Type<<$t as super::sql::HasDb>::Db>
                    + Sync,
            {
                let mut out = Vec::new();
                for chunk in items.chunks(super::sql::CHUNK) {
                    let text = bulk(Self::BACKEND, sql(&placeholders(chunk.len(), 1)));
                    let mut q = sqlx::query_as::<_, R>(&text);
                    for item in chunk {
                        q = q.bind(item);
                    }
                    out.extend(q.fetch_all(&mut **tx).await?);
                }
                Ok(out)
            }

            /// Runs `sql` (its list, `$1…$n`) for every chunk of `items`; rows changed.
            async fn exec_for<I>(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                sql: impl Fn(&str) -> String + Send,
                items: &[I],
            ) -> StoreResult<u64>
            where
                I: for<'x> sqlx::Encode<'x, <$t as super::sql::HasDb>::Db>
                    + sqlx::Type<<$t as super::sql::HasDb>::Db>
                    + Sync,
            {
                let mut n = 0;
                for chunk in items.chunks(super::sql::CHUNK) {
                    let text = bulk(Self::BACKEND, sql(&placeholders(chunk.len(), 1)));
                    let mut q = sqlx::query(&text);
                    for item in chunk {
                        q = q.bind(item);
                    }
                    n += q.execute(&mut **tx).await?.rows_affected();
                }
                Ok(n)
            }

            /// For each voucher, the (school, day) of every meal counted on it: the counted
            /// index (day first) is probed for each day of the voucher's validity, as the meal
            /// history reads it, rather than scanning the events of every voucher.
            async fn served_days(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                vouchers: &[VoucherDays],
            ) -> StoreResult<HashMap<String, BTreeSet<(i64, String)>>> {
                let mut by_validity: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
                for v in vouchers {
                    by_validity
                        .entry((v.valid_from.as_str(), v.valid_to.as_str()))
                        .or_default()
                        .push(v.id.as_str());
                }
                let mut out: HashMap<String, BTreeSet<(i64, String)>> = HashMap::new();
                for ((from, to), ids) in by_validity {
                    let days = dates_between(from, to);
                    if days.is_empty() {
                        continue;
                    }
                    for chunk in ids.chunks(SERVED_CHUNK) {
                        let sql = bulk(
                            Self::BACKEND,
                            format!(
                                "SELECT e.voucher_id, e.school_code, e.service_day
                                 FROM terminal_events e
                                 WHERE e.service_day IN ({}) AND e.voucher_id IN ({})
                                   AND e.verdict = 'ok' AND e.duplicate = FALSE
                                   AND e.refusal IS NULL",
                                placeholders(days.len(), 1),
                                placeholders(chunk.len(), 1 + days.len())
                            ),
                        );
                        let mut q = sqlx::query_as::<_, (String, i64, String)>(&sql);
                        for d in &days {
                            q = q.bind(d);
                        }
                        for id in chunk {
                            q = q.bind(*id);
                        }
                        for (voucher, school, day) in q.fetch_all(&mut **tx).await? {
                            out.entry(voucher).or_default().insert((school, day));
                        }
                    }
                }
                Ok(out)
            }

            /// The NOBD report revisions that name the leavers: those of their schools on the
            /// days something of theirs happened; and, for a day their activation or consent
            /// outcome was reported but no such report names them (they moved school since),
            /// every report of that day that does.
            async fn reports_naming(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                leavers: &[Leaver],
                vouchers: &[VoucherDays],
            ) -> StoreResult<HashMap<String, String>> {
                let ids: Vec<i64> = leavers.iter().map(|l| l.id).collect();
                let transitions: Vec<(i64, String, i64)> = Self::rows_for(
                    tx,
                    |list| {
                        format!(
                            "SELECT c.pupil_id, t.status, t.at FROM consents c
                             JOIN consent_transitions t ON t.consent_id = c.id
                             WHERE c.pupil_id IN ({list})"
                        )
                    },
                    &ids,
                )
                .await?;
                let served = Self::served_days(tx, vouchers).await?;
                let mut reports: HashMap<String, String> = HashMap::new();
                for l in leavers {
                    let mine = vouchers.iter().filter(|v| v.pupil_id == l.id);
                    let mut schools: BTreeSet<i64> = BTreeSet::from([l.school_code]);
                    let mut days: BTreeSet<String> = BTreeSet::new();
                    // Days a report names the pupil: checked below.
                    let mut named: BTreeSet<String> = BTreeSet::new();
                    for v in mine {
                        schools.insert(v.school_code);
                        days.insert(day_of(v.issued_at));
                        if let Some(t) = v.revoked_at {
                            days.insert(day_of(t));
                        }
                        if let Some(t) = v.activated_at {
                            days.insert(day_of(t));
                            named.insert(day_of(t));
                        }
                    }
                    // The days they were served name them in the school's list of pupils served
                    // (`meals.served`), at the school where they ate.
                    let theirs = vouchers.iter().filter(|v| v.pupil_id == l.id);
                    for v in theirs {
                        for (school, day) in served.get(&v.id).into_iter().flatten() {
                            schools.insert(*school);
                            days.insert(day.clone());
                            named.insert(day.clone());
                        }
                    }
                    for (_, status, at) in transitions.iter().filter(|(p, _, _)| *p == l.id) {
                        days.insert(day_of(*at));
                        if CONSENT_OUTCOMES.contains(&status.as_str()) {
                            named.insert(day_of(*at));
                        }
                    }
                    if days.is_empty() {
                        // Nothing of theirs ever happened: no report names them.
                        continue;
                    }
                    let schools: Vec<i64> = schools.into_iter().collect();
                    let days: Vec<String> = days.into_iter().collect();
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "SELECT report_id, service_day, body FROM nobd_reports
                             WHERE school_code IN ({}) AND service_day IN ({})",
                            placeholders(schools.len(), 1),
                            placeholders(days.len(), 1 + schools.len())
                        ),
                    );
                    let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
                    for s in &schools {
                        q = q.bind(s);
                    }
                    for d in &days {
                        q = q.bind(d);
                    }
                    for (id, day, body) in q.fetch_all(&mut **tx).await? {
                        if body.contains(l.iin.as_str()) {
                            named.remove(&day);
                            reports.insert(id, body);
                        }
                    }
                    for day in named {
                        let found: Vec<(String, String)> = sqlx::query_as(
                            "SELECT report_id, body FROM nobd_reports
                             WHERE service_day = $1 AND body LIKE $2",
                        )
                        .bind(&day)
                        .bind(format!("%{}%", l.iin))
                        .fetch_all(&mut **tx)
                        .await?;
                        reports.extend(found);
                    }
                }
                Ok(reports)
            }

            /// Takes up to `limit` due pupils after `after`, locked against other instances.
            async fn claim_leavers(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                due: &Due,
                after: Option<Cursor>,
                limit: i64,
            ) -> StoreResult<Vec<Leaver>> {
                let (after_removed, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
                Ok(sqlx::query_as(&format!(
                    "SELECT {LEAVER_COLUMNS} FROM pupils p
                     WHERE p.removed_at IS NOT NULL AND p.erased_at IS NULL
                       AND p.removed_at < $1
                       AND (p.removed_at > $2 OR (p.removed_at = $2 AND p.id > $3))
                       AND NOT EXISTS (SELECT 1 FROM vouchers v
                                       WHERE v.pupil_id = p.id AND v.valid_to > $4)
                     ORDER BY p.removed_at, p.id
                     LIMIT $5{}",
                    skip_locked(Self::BACKEND, "p")
                ))
                .bind(due.removed_before)
                .bind(after_removed)
                .bind(after_id)
                .bind(&due.vouchers_ended_by)
                .bind(limit)
                .fetch_all(&mut **tx)
                .await?)
            }

            /// The NOBD reports that name the leavers keep everything but their IINs, replaced
            /// as a build of the day would replace them now. Returns the revisions changed.
            async fn redact_reports(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                leavers: &[Leaver],
                vouchers: &[VoucherDays],
            ) -> StoreResult<u64> {
                let iins: HashMap<String, String> = leavers
                    .iter()
                    .map(|l| (l.iin.clone(), erased_iin(l.id)))
                    .collect();
                let mut reports: Vec<(String, String)> =
                    Self::reports_naming(tx, leavers, vouchers).await?.into_iter().collect();
                // In one order, so that two instances wait for each other, never deadlock.
                reports.sort();
                let mut changed = 0;
                for (id, body) in &reports {
                    let Some((body, hash)) = crate::nobd::report::replace_iins(body, &iins) else {
                        continue;
                    };
                    sqlx::query(
                        "UPDATE nobd_reports
                         SET body = $1, content_hash = COALESCE($2, content_hash)
                         WHERE report_id = $3",
                    )
                    .bind(&body)
                    .bind(hash)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                    // A receiver's error message may quote the document.
                    sqlx::query("UPDATE nobd_outbox SET last_error = NULL WHERE report_id = $1")
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                    changed += 1;
                }
                Ok(changed)
            }

            /// The pupils' rows keep id, school, class, category, language and dates; their
            /// consents keep status and times, not the number they were asked on.
            async fn erase_rows(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                ids: &[i64],
                now: i64,
            ) -> StoreResult<u64> {
                for chunk in ids.chunks(super::sql::CHUNK) {
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "UPDATE pupils SET iin = 'erased:' || CAST(id AS TEXT),
                                first_name = 'erased:' || CAST(id AS TEXT), last_name = '',
                                middle_name = NULL, mother_name = NULL, mother_phone = NULL,
                                father_name = NULL, father_phone = NULL, guardian_name = NULL,
                                guardian_phone = NULL, contact_name = NULL, contact_phone = NULL,
                                card_number = NULL, per_capita_income_kzt = NULL,
                                erased_at = $1, updated_at = $2
                             WHERE erased_at IS NULL AND id IN ({})",
                            placeholders(chunk.len(), 3)
                        ),
                    );
                    let mut q = sqlx::query(&sql).bind(now).bind(now);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    let n = q.execute(&mut **tx).await?.rows_affected();
                    debug_assert_eq!(n as usize, chunk.len(), "the rows were claimed");
                }
                // The paper forms recorded at school name the parent and their document.
                Self::exec_for(
                    tx,
                    |list| {
                        format!(
                            "UPDATE consent_school_records
                             SET signer_name = NULL, document_number = NULL
                             WHERE signer_name IS NOT NULL AND consent_id IN
                                (SELECT id FROM consents WHERE pupil_id IN ({list}))"
                        )
                    },
                    ids,
                )
                .await?;
                Self::exec_for(
                    tx,
                    |list| {
                        format!(
                            "UPDATE consents SET phone = NULL
                             WHERE phone IS NOT NULL AND pupil_id IN ({list})"
                        )
                    },
                    ids,
                )
                .await
            }

            /// After [`Self::erase_rows`]: numbers no pupil lists any more (none still kept, a
            /// brother still at school) leave the SMS outbox, login codes and sessions; to a
            /// number that stays, the messages that named a leaver lose their text. Returns
            /// the numbers that went.
            async fn erase_numbers(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                leavers: &[Leaver],
                phones: &[String],
                out: &mut Erased,
            ) -> StoreResult<Vec<String>> {
                let mut in_use: HashSet<String> = HashSet::new();
                for (table, col) in [
                    ("pupils", "mother_phone"),
                    ("pupils", "father_phone"),
                    ("pupils", "guardian_phone"),
                    ("consents", "phone"),
                ] {
                    let rows: Vec<(String,)> = Self::rows_for(
                        tx,
                        |list| {
                            format!("SELECT DISTINCT {col} FROM {table} WHERE {col} IN ({list})")
                        },
                        phones,
                    )
                    .await?;
                    in_use.extend(rows.into_iter().map(|(p,)| p));
                }
                let (kept, gone): (Vec<String>, Vec<String>) =
                    phones.iter().cloned().partition(|p| in_use.contains(p));
                out.sms_erased += Self::exec_for(
                    tx,
                    |list| {
                        format!(
                            "UPDATE sms_outbox SET to_phone = '{ERASED}', text = '{ERASED}',
                                last_error = NULL
                             WHERE sent_at IS NOT NULL AND to_phone IN ({list})"
                        )
                    },
                    &gone,
                )
                .await?;
                out.sms_deleted += Self::exec_for(
                    tx,
                    |list| {
                        format!(
                            "DELETE FROM sms_outbox WHERE sent_at IS NULL AND to_phone IN ({list})"
                        )
                    },
                    &gone,
                )
                .await?;
                out.login_codes = Self::exec_for(
                    tx,
                    |list| format!("DELETE FROM login_codes WHERE phone IN ({list})"),
                    &gone,
                )
                .await?;
                out.sessions = Self::exec_for(
                    tx,
                    |list| format!("DELETE FROM wallet_sessions WHERE phone IN ({list})"),
                    &gone,
                )
                .await?;
                // Every text naming a child holds the child's first name.
                let first_names: Vec<&str> = leavers
                    .iter()
                    .map(|l| l.first_name.trim())
                    .filter(|n| n.chars().count() >= 2)
                    .collect();
                let to_kept: Vec<(String, String, Option<i64>)> = Self::rows_for(
                    tx,
                    |list| {
                        format!(
                            "SELECT id, text, sent_at FROM sms_outbox WHERE to_phone IN ({list})"
                        )
                    },
                    &kept,
                )
                .await?;
                for (id, text, sent_at) in to_kept {
                    if !first_names.iter().any(|n| text.contains(n)) {
                        continue;
                    }
                    if sent_at.is_some() {
                        sqlx::query(
                            "UPDATE sms_outbox SET text = $1, last_error = NULL WHERE id = $2",
                        )
                        .bind(ERASED)
                        .bind(&id)
                        .execute(&mut **tx)
                        .await?;
                        out.sms_erased += 1;
                    } else {
                        sqlx::query("DELETE FROM sms_outbox WHERE id = $1")
                            .bind(&id)
                            .execute(&mut **tx)
                            .await?;
                        out.sms_deleted += 1;
                    }
                }
                Ok(gone)
            }

            /// Ratings and complaints about the leavers' vouchers lose the parent's number; a
            /// complaint keeps its words, less the names, IIN and numbers in them.
            async fn erase_feedback(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                voucher_ids: &[String],
                scrubber: &Scrubber,
                out: &mut Erased,
            ) -> StoreResult<()> {
                out.ratings = Self::exec_for(
                    tx,
                    |list| {
                        format!(
                            "UPDATE ratings SET phone = '{ERASED}'
                             WHERE phone <> '{ERASED}' AND voucher_id IN ({list})"
                        )
                    },
                    voucher_ids,
                )
                .await?;
                let complaints: Vec<(String, String, String)> = Self::rows_for(
                    tx,
                    |list| {
                        format!(
                            "SELECT id, text, payload FROM complaints
                             WHERE phone <> '{ERASED}' AND voucher_id IN ({list})"
                        )
                    },
                    voucher_ids,
                )
                .await?;
                for (id, text, payload) in complaints {
                    let text = scrubber.scrub(&text).unwrap_or(text);
                    let payload = scrubber.scrub_json(&payload).unwrap_or(payload);
                    sqlx::query(
                        "UPDATE complaints SET phone = $1, text = $2, payload = $3,
                            last_error = NULL
                         WHERE id = $4",
                    )
                    .bind(ERASED)
                    .bind(&text)
                    .bind(&payload)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await?;
                    out.complaints += 1;
                }
                Ok(())
            }

            /// Audit rows about the leavers (their vouchers, IINs, numbers that went) lose the
            /// values they hold: a parent's number is the actor of an activation, the replying
            /// number that of an issue. Returns the rows changed.
            async fn scrub_audit(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                subjects: &[String],
                scrubber: &Scrubber,
            ) -> StoreResult<u64> {
                let rows: Vec<(i64, String, Option<String>, Option<String>)> = Self::rows_for(
                    tx,
                    |list| {
                        format!(
                            "SELECT id, actor, subject, detail FROM audit_log
                             WHERE subject IN ({list})"
                        )
                    },
                    subjects,
                )
                .await?;
                let mut changed = 0;
                for (id, actor, subject, detail) in rows {
                    let new_actor = scrubber.scrub(&actor);
                    let new_subject = subject.as_deref().and_then(|s| scrubber.scrub(s));
                    let new_detail = detail.as_deref().and_then(|d| scrubber.scrub(d));
                    if new_actor.is_none() && new_subject.is_none() && new_detail.is_none() {
                        continue;
                    }
                    sqlx::query(
                        "UPDATE audit_log SET actor = $1, subject = $2, detail = $3 WHERE id = $4",
                    )
                    .bind(new_actor.unwrap_or(actor))
                    .bind(new_subject.or(subject))
                    .bind(new_detail.or(detail))
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                    changed += 1;
                }
                Ok(changed)
            }
        }

        #[async_trait]
        impl RetentionStore for $t {
            async fn erase_due_pupils(
                &self,
                due: &Due,
                after: Option<Cursor>,
                limit: i64,
                actor: &str,
                now: i64,
            ) -> StoreResult<Erased> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // SQLite overwrites what this transaction frees (old cells, dropped rows) with
                // zeros instead of leaving it in the file's free space. Set back before the
                // commit: the pages are written by then.
                let secure_before: Option<i64> = if Self::BACKEND == Backend::Sqlite {
                    let before = sqlx::query_scalar("PRAGMA secure_delete")
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query("PRAGMA secure_delete = ON")
                        .execute(&mut *tx)
                        .await?;
                    Some(before)
                } else {
                    None
                };
                let leavers = Self::claim_leavers(&mut tx, due, after, limit).await?;
                let mut out = Erased {
                    cursor: leavers.last().map(|l| (l.removed_at, l.id)),
                    ..Erased::default()
                };
                if leavers.is_empty() {
                    tx.rollback().await?;
                    return Ok(out);
                }
                let ids: Vec<i64> = leavers.iter().map(|l| l.id).collect();
                let vouchers: Vec<VoucherDays> = Self::rows_for(
                    &mut tx,
                    |list| {
                        format!(
                            "SELECT id, pupil_id, school_code, issued_at, activated_at, revoked_at,
                                valid_from, valid_to
                             FROM vouchers WHERE pupil_id IN ({list})"
                        )
                    },
                    &ids,
                )
                .await?;
                let voucher_ids: Vec<String> = vouchers.iter().map(|v| v.id.clone()).collect();
                out.reports = Self::redact_reports(&mut tx, &leavers, &vouchers).await?;

                // Their numbers: the roster's and those their consents were asked on.
                let consent_phones: Vec<(String,)> = Self::rows_for(
                    &mut tx,
                    |list| {
                        format!(
                            "SELECT phone FROM consents
                             WHERE phone IS NOT NULL AND pupil_id IN ({list})"
                        )
                    },
                    &ids,
                )
                .await?;
                let phones: Vec<String> = leavers
                    .iter()
                    .flat_map(|l| l.phones().map(str::to_owned))
                    .chain(consent_phones.into_iter().map(|(p,)| p))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let scrubber = Scrubber::new(&leavers, &phones);

                out.consents = Self::erase_rows(&mut tx, &ids, now).await?;
                out.pupils = ids.clone();
                let gone = Self::erase_numbers(&mut tx, &leavers, &phones, &mut out).await?;
                Self::erase_feedback(&mut tx, &voucher_ids, &scrubber, &mut out).await?;
                let subjects: Vec<String> = voucher_ids
                    .into_iter()
                    .chain(leavers.iter().map(|l| l.iin.clone()))
                    .chain(gone)
                    .collect();
                out.audit_rows = Self::scrub_audit(&mut tx, &subjects, &scrubber).await?;

                // The erasure's own audit row: how many and which ids, no personal value.
                let detail = serde_json::json!({
                    "pupils": ids.len(),
                    "pupil_ids": ids,
                    "removed_before": due.removed_before,
                    "vouchers_ended_by": due.vouchers_ended_by,
                });
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, subject, detail)
                     VALUES ($1, $2, 'retention.erase', NULL, $3)",
                )
                .bind(now)
                .bind(actor)
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO retention_purge (name, generation) VALUES ('pending', 1)
                     ON CONFLICT (name) DO UPDATE SET generation = retention_purge.generation + 1",
                )
                .execute(&mut *tx)
                .await?;
                if let Some(before) = secure_before {
                    sqlx::query(&format!("PRAGMA secure_delete = {before}"))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn purge_erased(&self) -> StoreResult<Purge> {
                let pending: Option<i64> = sqlx::query_scalar(
                    "SELECT generation FROM retention_purge WHERE name = 'pending'",
                )
                .fetch_optional(&self.pool)
                .await?;
                let purge = self.purge().await?;
                if let (Some(generation), true) = (pending, purge.complete) {
                    // An erasure that committed during the purge made a new generation: that
                    // one waits for the next purge.
                    sqlx::query(
                        "DELETE FROM retention_purge WHERE name = 'pending' AND generation = $1",
                    )
                    .bind(generation)
                    .execute(&self.pool)
                    .await?;
                }
                Ok(purge)
            }

            async fn purge_pending(&self) -> StoreResult<bool> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM retention_purge")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n > 0)
            }
        }
    };
}
crate::impl_for_backends!(impl_retention);

/// Tables whose rows erasure rewrites (PostgreSQL vacuums them after a run).
pub const TOUCHED_TABLES: &[&str] = &[
    "pupils",
    "consents",
    "consent_school_records",
    "sms_outbox",
    "login_codes",
    "wallet_sessions",
    "ratings",
    "complaints",
    "nobd_reports",
    "nobd_outbox",
    "audit_log",
];

impl super::SqliteStore {
    async fn purge(&self) -> StoreResult<Purge> {
        sqlx::query("VACUUM").execute(&self.pool).await?;
        // A reader still on the old pages keeps the log from being emptied; they finish
        // quickly (every request is short), so a few tries are enough.
        let mut complete = false;
        for attempt in 0..20 {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            if busy == 0 {
                complete = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
        }
        Ok(Purge {
            done: "VACUUM; PRAGMA wal_checkpoint(TRUNCATE)".to_owned(),
            complete,
        })
    }
}

impl super::PgStore {
    async fn purge(&self) -> StoreResult<Purge> {
        let sql = format!("VACUUM {}", TOUCHED_TABLES.join(", "));
        sqlx::raw_sql(&sql).execute(&self.pool).await?;
        Ok(Purge {
            done: sql,
            complete: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaver() -> Leaver {
        Leaver {
            id: 7,
            iin: "100101500159".into(),
            school_code: 1,
            removed_at: 0,
            last_name: "Сапаров".into(),
            first_name: "Алихан".into(),
            middle_name: Some("Русланович".into()),
            mother_name: Some("Сапарова Динара".into()),
            mother_phone: Some("+77010000001".into()),
            father_name: None,
            father_phone: None,
            guardian_name: None,
            guardian_phone: None,
            contact_name: Some("Сапарова Динара".into()),
            contact_phone: Some("+77010000001".into()),
            card_number: Some("Ab".into()),
        }
    }

    #[test]
    fn scrubbing_replaces_every_value_and_leaves_the_rest() {
        let l = leaver();
        let s = Scrubber::new(&[l], &["+77010000001".into()]);
        assert_eq!(
            s.scrub("parent:+77010000001").as_deref(),
            Some("parent:erased")
        );
        assert_eq!(
            s.scrub("Сапаров Алихан Русланович ест плохо, ИИН 100101500159")
                .as_deref(),
            Some("erased ест плохо, ИИН erased:7")
        );
        assert_eq!(s.scrub("Ab: the card is too short to look for"), None);
        let doc = r#"{"pupil":{"name":"Сапаров Алихан Русланович"},
                      "applicant":{"phone":"+77010000001"},"n":3}"#;
        let out: serde_json::Value = serde_json::from_str(&s.scrub_json(doc).unwrap()).unwrap();
        assert_eq!(out["pupil"]["name"], "erased");
        assert_eq!(out["applicant"]["phone"], "erased");
        assert_eq!(out["n"], 3);
        assert_eq!(s.scrub_json(r#"{"a":"b"}"#), None);
    }
}
