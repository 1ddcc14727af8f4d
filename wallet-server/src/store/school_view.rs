//! What a school sees of its canteen: meals served, duplicates, rejected scans and the consent
//! outcomes to follow up.
//!
//! A meal is one `(voucher, service day, meal kind)` with at least one `ok` scan; further `ok`
//! scans of the same key (two offline terminals serving one child) are duplicates. The NOBD
//! report counts the same way (`store::nobd`), so the page and the report always agree.

use super::StoreResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

/// A class as staff write it: grade and letter, e.g. `3А`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassRef {
    pub grade: i64,
    pub letter: String,
}

impl ClassRef {
    /// Parses `"3А"`, `"11 Б"`, `"0a"`; the letter is kept as written, upper-cased.
    pub fn parse(text: &str) -> Option<ClassRef> {
        let text = text.trim();
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        let letter = text[digits.len()..].trim().to_uppercase();
        let grade: i64 = digits.parse().ok()?;
        if !(0..=11).contains(&grade)
            || letter.is_empty()
            || letter.chars().count() > 3
            || !letter.chars().all(char::is_alphabetic)
        {
            return None;
        }
        Some(ClassRef { grade, letter })
    }
}

impl std::fmt::Display for ClassRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.grade, self.letter)
    }
}

/// Which meals: one school, an inclusive range of service days, optionally one class or one
/// voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MealFilter {
    pub school_code: i64,
    pub from: String,
    pub to: String,
    pub class: Option<ClassRef>,
    pub voucher: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct DayMeals {
    pub service_day: String,
    pub meals: i64,
    pub duplicates: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ClassMeals {
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub pupils: i64,
    pub meals: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct PupilMeals {
    pub voucher_id: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub meals: i64,
    pub first_day: String,
    pub last_day: String,
}

/// One meal, as first served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct MealRow {
    pub service_day: String,
    pub meal_kind: String,
    pub served_at: i64,
    pub voucher_id: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub terminal_label: Option<String>,
    pub source: String,
}

/// An `ok` scan of a key served more than once; `counted` marks the one the meal counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct DuplicateScan {
    pub service_day: String,
    pub meal_kind: String,
    pub scanned_at: i64,
    pub voucher_id: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub terminal_label: Option<String>,
    pub counted: bool,
    /// As marked by the server when the events arrived.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RejectedScan {
    pub service_day: String,
    pub scanned_at: i64,
    pub verdict: String,
    pub meal_kind: String,
    pub voucher_id: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub terminal_label: Option<String>,
    /// `already_served` scans of this voucher in the range: more than one is worth a look.
    pub already_served_count: i64,
    /// Scans this event stands for: the same input repeated within a second at the terminal,
    /// or every rejection of its kind over the terminal's per-minute cap (`capped`).
    pub count: i64,
    pub capped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct VerdictCount {
    pub verdict: String,
    pub scans: i64,
}

/// A voucher refused as `already_served` more than once in the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RepeatedAlreadyServed {
    pub voucher_id: String,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub scans: i64,
    pub days: i64,
    pub last_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ConsentFollowUp {
    /// What the school's form for a consent given in person names the pupil by.
    pub pupil_iin: String,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub grade: i64,
    pub class_letter: String,
    pub status: String,
    pub school_year: String,
    /// When the process ended (or last changed).
    pub at: i64,
}

/// A voucher that moved into or out of the school with its pupil (DESIGN §10), and the school
/// on the other side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct VoucherTransfer {
    pub voucher_id: String,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub grade: i64,
    pub class_letter: String,
    /// Where the pupil came from (transfers in) or went to (transfers out).
    pub other_school_bin: String,
    pub other_school_name: String,
    pub moved_at: i64,
}

/// A revoked voucher of the school, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct VoucherRevocation {
    pub voucher_id: String,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub grade: i64,
    pub class_letter: String,
    /// `not_eligible`, `removed`, `withdrawn` or `operator`.
    pub reason: String,
    pub revoked_at: i64,
}

/// What happened to the school's vouchers in one school year: pupils who came with their
/// voucher, who left with it, and the vouchers revoked (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoucherChanges {
    pub school_year: String,
    pub transfers_in: Vec<VoucherTransfer>,
    pub transfers_out: Vec<VoucherTransfer>,
    pub revocations: Vec<VoucherRevocation>,
}

/// Consent statuses a school follows up: the process ended without a voucher.
pub const FOLLOW_UP_STATUSES: [&str; 3] = ["no_phone", "refused", "expired"];

/// Builds `WHERE` clauses with `$N` placeholders numbered after the fixed ones.
struct Clauses {
    next: usize,
    sql: String,
}

impl Clauses {
    fn after(fixed: usize) -> Clauses {
        Clauses {
            next: fixed + 1,
            sql: String::new(),
        }
    }

    fn add(&mut self, template: &str, params: usize) {
        let mut clause = template.to_owned();
        for i in 0..params {
            clause = clause.replacen('?', &format!("${}", self.next + i), 1);
        }
        self.next += params;
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause);
    }
}

fn class_clauses(f: &MealFilter, fixed: usize) -> String {
    let mut c = Clauses::after(fixed);
    if f.class.is_some() {
        c.add("p.grade = ? AND p.class_letter = ?", 2);
    }
    if f.voucher.is_some() {
        c.add("ev.voucher_id = ?", 1);
    }
    c.sql
}

/// `ok` scans of the school in the range, each numbered within its meal key. Refused ones
/// (no valid proof) are not meals: they are listed under anomalies only.
fn ok_events_cte() -> &'static str {
    "WITH ev AS (
        SELECT e.terminal_id, e.seq, e.service_day, e.voucher_id, e.meal_kind, e.scanned_at,
               e.source, e.duplicate,
               ROW_NUMBER() OVER (PARTITION BY COALESCE(e.voucher_id, e.event_id), e.service_day, e.meal_kind
                                  ORDER BY e.scanned_at, e.terminal_id, e.seq) AS rn,
               COUNT(*) OVER (PARTITION BY COALESCE(e.voucher_id, e.event_id), e.service_day, e.meal_kind) AS n
        FROM terminal_events e
        WHERE e.school_code = $1 AND e.service_day >= $2 AND e.service_day <= $3 AND e.verdict = 'ok'
          AND e.refusal IS NULL
     )"
}

const PUPIL_JOIN: &str = "LEFT JOIN vouchers v ON v.id = ev.voucher_id
     LEFT JOIN pupils p ON p.id = v.pupil_id";

#[async_trait]
pub trait SchoolViewStore {
    async fn meals_by_day(&self, f: &MealFilter) -> StoreResult<Vec<DayMeals>>;
    async fn meals_by_class(&self, f: &MealFilter) -> StoreResult<Vec<ClassMeals>>;
    async fn meals_by_pupil(&self, f: &MealFilter) -> StoreResult<Vec<PupilMeals>>;
    async fn meal_list(&self, f: &MealFilter, limit: i64) -> StoreResult<Vec<MealRow>>;
    async fn duplicate_scans(&self, f: &MealFilter, limit: i64) -> StoreResult<Vec<DuplicateScan>>;
    async fn rejected_scans(&self, f: &MealFilter, limit: i64) -> StoreResult<Vec<RejectedScan>>;
    async fn verdict_counts(&self, f: &MealFilter) -> StoreResult<Vec<VerdictCount>>;
    async fn repeated_already_served(
        &self,
        f: &MealFilter,
        min_scans: i64,
    ) -> StoreResult<Vec<RepeatedAlreadyServed>>;
    /// Pupils of the school whose consent ended without a voucher; `status` narrows to one.
    async fn consent_follow_ups(
        &self,
        school_code: i64,
        status: Option<&str>,
    ) -> StoreResult<Vec<ConsentFollowUp>>;
    /// The school's transfers in and out and its revoked vouchers of `school_year`.
    async fn voucher_changes(
        &self,
        school_code: i64,
        school_year: &str,
    ) -> StoreResult<VoucherChanges>;
}

/// The moves of a school year into (`side` = `to_school`) or out of (`from_school`) a school,
/// with the school on the other side.
fn transfers_sql(side: &str, other: &str) -> String {
    format!(
        "SELECT m.voucher_id, p.last_name, p.first_name, p.middle_name, p.grade, p.class_letter,
                s.bin AS other_school_bin, s.name AS other_school_name, m.moved_at
         FROM voucher_moves m
         JOIN pupils p ON p.id = m.pupil_id
         JOIN schools s ON s.code = m.{other}
         WHERE m.{side} = $1 AND m.school_year = $2
         ORDER BY m.moved_at DESC, m.id DESC"
    )
}

macro_rules! bind_filter {
    ($q:expr, $f:expr) => {{
        let mut q = $q.bind($f.school_code).bind(&$f.from).bind(&$f.to);
        if let Some(c) = &$f.class {
            q = q.bind(c.grade).bind(&c.letter);
        }
        if let Some(v) = &$f.voucher {
            q = q.bind(v);
        }
        q
    }};
}

macro_rules! impl_school_view {
    ($t:ty) => {
        #[async_trait]
        impl SchoolViewStore for $t {
            async fn meals_by_day(&self, f: &MealFilter) -> StoreResult<Vec<DayMeals>> {
                let sql = format!(
                    "{cte}
                     SELECT ev.service_day,
                            CAST(SUM(CASE WHEN ev.rn = 1 THEN 1 ELSE 0 END) AS BIGINT) AS meals,
                            CAST(SUM(CASE WHEN ev.rn > 1 THEN 1 ELSE 0 END) AS BIGINT) AS duplicates
                     FROM ev {PUPIL_JOIN}
                     WHERE 1 = 1 {clauses}
                     GROUP BY ev.service_day ORDER BY ev.service_day",
                    cte = ok_events_cte(),
                    clauses = class_clauses(f, 3)
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn meals_by_class(&self, f: &MealFilter) -> StoreResult<Vec<ClassMeals>> {
                let sql = format!(
                    "{cte}
                     SELECT p.grade, p.class_letter,
                            COUNT(DISTINCT COALESCE(ev.voucher_id, '')) AS pupils,
                            COUNT(*) AS meals
                     FROM ev {PUPIL_JOIN}
                     WHERE ev.rn = 1 {clauses}
                     GROUP BY p.grade, p.class_letter ORDER BY p.grade, p.class_letter",
                    cte = ok_events_cte(),
                    clauses = class_clauses(f, 3)
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn meals_by_pupil(&self, f: &MealFilter) -> StoreResult<Vec<PupilMeals>> {
                let sql = format!(
                    "{cte}
                     SELECT ev.voucher_id, MIN(p.last_name) AS last_name, MIN(p.first_name) AS first_name,
                            MIN(p.grade) AS grade, MIN(p.class_letter) AS class_letter,
                            COUNT(*) AS meals, MIN(ev.service_day) AS first_day,
                            MAX(ev.service_day) AS last_day
                     FROM ev {PUPIL_JOIN}
                     WHERE ev.rn = 1 {clauses}
                     GROUP BY ev.voucher_id
                     ORDER BY MIN(p.grade), MIN(p.class_letter), MIN(p.last_name), MIN(p.first_name), ev.voucher_id",
                    cte = ok_events_cte(),
                    clauses = class_clauses(f, 3)
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn meal_list(&self, f: &MealFilter, limit: i64) -> StoreResult<Vec<MealRow>> {
                let clauses = class_clauses(f, 3);
                let limit_param = 4 + usize::from(f.class.is_some()) * 2
                    + usize::from(f.voucher.is_some());
                let sql = format!(
                    "{cte}
                     SELECT ev.service_day, ev.meal_kind, ev.scanned_at AS served_at, ev.voucher_id,
                            p.last_name, p.first_name, p.grade, p.class_letter,
                            t.label AS terminal_label, ev.source
                     FROM ev {PUPIL_JOIN}
                     LEFT JOIN terminals t ON t.id = ev.terminal_id
                     WHERE ev.rn = 1 {clauses}
                     ORDER BY ev.service_day, ev.scanned_at, ev.terminal_id, ev.seq
                     LIMIT ${limit_param}",
                    cte = ok_events_cte(),
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn duplicate_scans(
                &self,
                f: &MealFilter,
                limit: i64,
            ) -> StoreResult<Vec<DuplicateScan>> {
                let clauses = class_clauses(f, 3);
                let limit_param = 4 + usize::from(f.class.is_some()) * 2
                    + usize::from(f.voucher.is_some());
                let sql = format!(
                    "{cte}
                     SELECT ev.service_day, ev.meal_kind, ev.scanned_at, ev.voucher_id,
                            p.last_name, p.first_name, p.grade, p.class_letter,
                            t.label AS terminal_label,
                            CASE WHEN ev.rn = 1 THEN TRUE ELSE FALSE END AS counted,
                            ev.duplicate
                     FROM ev {PUPIL_JOIN}
                     LEFT JOIN terminals t ON t.id = ev.terminal_id
                     WHERE ev.n > 1 {clauses}
                     ORDER BY ev.service_day, ev.voucher_id, ev.meal_kind, ev.rn
                     LIMIT ${limit_param}",
                    cte = ok_events_cte(),
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn rejected_scans(
                &self,
                f: &MealFilter,
                limit: i64,
            ) -> StoreResult<Vec<RejectedScan>> {
                let clauses = class_clauses(f, 3).replace("ev.voucher_id", "r.voucher_id");
                let limit_param = 4 + usize::from(f.class.is_some()) * 2
                    + usize::from(f.voucher.is_some());
                let sql = format!(
                    "WITH r AS (
                        SELECT e.terminal_id, e.seq, e.service_day, e.scanned_at, e.verdict,
                               e.meal_kind, e.voucher_id, e.count, e.capped,
                               CAST(SUM(CASE WHEN e.verdict = 'already_served' AND e.voucher_id IS NOT NULL
                                             THEN e.count ELSE 0 END)
                                    OVER (PARTITION BY COALESCE(e.voucher_id, e.event_id)) AS BIGINT)
                                   AS already_served_count
                        FROM terminal_events e
                        WHERE e.school_code = $1 AND e.service_day >= $2 AND e.service_day <= $3
                          AND e.verdict <> 'ok' AND e.is_repeat = FALSE
                     )
                     SELECT r.service_day, r.scanned_at, r.verdict, r.meal_kind, r.voucher_id,
                            p.last_name, p.first_name, p.grade, p.class_letter,
                            t.label AS terminal_label, r.already_served_count, r.count, r.capped
                     FROM r
                     LEFT JOIN vouchers v ON v.id = r.voucher_id
                     LEFT JOIN pupils p ON p.id = v.pupil_id
                     LEFT JOIN terminals t ON t.id = r.terminal_id
                     WHERE 1 = 1 {clauses}
                     ORDER BY r.service_day DESC, r.scanned_at DESC, r.terminal_id, r.seq
                     LIMIT ${limit_param}"
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn verdict_counts(&self, f: &MealFilter) -> StoreResult<Vec<VerdictCount>> {
                let clauses = class_clauses(f, 3).replace("ev.voucher_id", "e.voucher_id");
                let sql = format!(
                    "SELECT e.verdict, CAST(SUM(e.count) AS BIGINT) AS scans
                     FROM terminal_events e
                     LEFT JOIN vouchers v ON v.id = e.voucher_id
                     LEFT JOIN pupils p ON p.id = v.pupil_id
                     WHERE e.school_code = $1 AND e.service_day >= $2 AND e.service_day <= $3
                       AND e.refusal IS NULL {clauses}
                     GROUP BY e.verdict ORDER BY e.verdict"
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn repeated_already_served(
                &self,
                f: &MealFilter,
                min_scans: i64,
            ) -> StoreResult<Vec<RepeatedAlreadyServed>> {
                let clauses = class_clauses(f, 3).replace("ev.voucher_id", "e.voucher_id");
                let min_param = 4 + usize::from(f.class.is_some()) * 2
                    + usize::from(f.voucher.is_some());
                let sql = format!(
                    "SELECT e.voucher_id, MIN(p.last_name) AS last_name, MIN(p.first_name) AS first_name,
                            MIN(p.grade) AS grade, MIN(p.class_letter) AS class_letter,
                            CAST(SUM(e.count) AS BIGINT) AS scans, COUNT(DISTINCT e.service_day) AS days,
                            MAX(e.scanned_at) AS last_at
                     FROM terminal_events e
                     LEFT JOIN vouchers v ON v.id = e.voucher_id
                     LEFT JOIN pupils p ON p.id = v.pupil_id
                     WHERE e.school_code = $1 AND e.service_day >= $2 AND e.service_day <= $3
                       AND e.verdict = 'already_served' AND e.is_repeat = FALSE
                       AND e.voucher_id IS NOT NULL {clauses}
                     GROUP BY e.voucher_id
                     HAVING SUM(e.count) >= ${min_param}
                     ORDER BY SUM(e.count) DESC, e.voucher_id"
                );
                Ok(bind_filter!(sqlx::query_as(&sql), f)
                    .bind(min_scans)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn consent_follow_ups(
                &self,
                school_code: i64,
                status: Option<&str>,
            ) -> StoreResult<Vec<ConsentFollowUp>> {
                let status_clause = if status.is_some() { "AND c.status = $2" } else { "" };
                let sql = format!(
                    "SELECT p.iin AS pupil_iin, p.last_name, p.first_name, p.middle_name,
                            p.grade, p.class_letter, c.status, c.school_year, COALESCE(c.ended_at, c.updated_at) AS at
                     FROM consents c JOIN pupils p ON p.id = c.pupil_id
                     WHERE p.school_code = $1 AND p.removed_at IS NULL
                       AND c.status IN ('no_phone', 'refused', 'expired') {status_clause}
                     ORDER BY COALESCE(c.ended_at, c.updated_at) DESC, p.last_name, p.first_name"
                );
                let mut q = sqlx::query_as(&sql).bind(school_code);
                if let Some(s) = status {
                    q = q.bind(s);
                }
                Ok(q.fetch_all(&self.pool).await?)
            }

            async fn voucher_changes(
                &self,
                school_code: i64,
                school_year: &str,
            ) -> StoreResult<VoucherChanges> {
                let transfers_in = sqlx::query_as(&transfers_sql("to_school", "from_school"))
                    .bind(school_code)
                    .bind(school_year)
                    .fetch_all(&self.pool)
                    .await?;
                let transfers_out = sqlx::query_as(&transfers_sql("from_school", "to_school"))
                    .bind(school_code)
                    .bind(school_year)
                    .fetch_all(&self.pool)
                    .await?;
                let revocations = sqlx::query_as(
                    "SELECT v.id AS voucher_id, p.last_name, p.first_name, p.middle_name, p.grade,
                            p.class_letter, COALESCE(v.revoke_reason, 'operator') AS reason,
                            COALESCE(v.revoked_at, 0) AS revoked_at
                     FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                     WHERE v.school_code = $1 AND v.school_year = $2 AND v.status = 'revoked'
                     ORDER BY v.revoked_at DESC, p.last_name, p.first_name, v.id",
                )
                .bind(school_code)
                .bind(school_year)
                .fetch_all(&self.pool)
                .await?;
                Ok(VoucherChanges {
                    school_year: school_year.to_owned(),
                    transfers_in,
                    transfers_out,
                    revocations,
                })
            }
        }
    };
}
crate::impl_for_backends!(impl_school_view);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_parses_grade_and_letter() {
        assert_eq!(
            ClassRef::parse("3А"),
            Some(ClassRef {
                grade: 3,
                letter: "А".into()
            })
        );
        assert_eq!(ClassRef::parse(" 11 б ").unwrap().to_string(), "11Б");
        assert_eq!(ClassRef::parse("0a").unwrap().letter, "A");
        for bad in ["", "А", "12А", "3", "3-А", "3АБВГ", "x3"] {
            assert_eq!(ClassRef::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn clauses_number_placeholders_after_fixed_ones() {
        let f = MealFilter {
            school_code: 1,
            from: "a".into(),
            to: "b".into(),
            class: ClassRef::parse("3А"),
            voucher: Some("v".into()),
        };
        assert_eq!(
            class_clauses(&f, 3),
            " AND p.grade = $4 AND p.class_letter = $5 AND ev.voucher_id = $6"
        );
    }

    proptest::proptest! {
        #[test]
        fn class_parse_never_panics(s in "\\PC{0,12}") {
            if let Some(c) = ClassRef::parse(&s) {
                proptest::prop_assert!((0..=11).contains(&c.grade));
                proptest::prop_assert_eq!(ClassRef::parse(&c.to_string()), Some(c));
            }
        }
    }
}
