//! NOBD daily reports: the day's figures for all schools at once (set-based, one query per
//! section grouped by school), the stored revisions and the delivery outbox.

use super::{Backend, StoreResult};
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

/// One local service day: its date and its `[start, end)` in Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayWindow {
    pub day: String,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct VoucherTotals {
    pub school_code: i64,
    pub issued_total: i64,
    pub activated_total: i64,
    pub revoked_total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ActivationRow {
    pub school_code: i64,
    pub voucher_id: String,
    pub pupil_iin: String,
    pub activated_at: i64,
}

/// Meals of one school, meal kind and pupil category: `meals` distinct meal keys, `oks` all
/// counting `ok` scans behind them (so `oks - meals` are duplicates); of the meals, `card`
/// were counted on a card or look-up event and `unverified` on an event stored before proofs
/// existed (the rest are proven by their token). Refused events are not in any of these.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MealAggregate {
    pub school_code: i64,
    pub meal_kind: String,
    pub category: Option<String>,
    pub meals: i64,
    pub oks: i64,
    pub card: i64,
    pub unverified: i64,
}

/// One meal of one pupil at one school: the distinct (voucher, meal kind) the totals count,
/// with the class of proof of its counted scan (`card` / `unverified` as in
/// [`MealAggregate`]; neither: proven). Meals without a known voucher have no pupil to name.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ServedRow {
    pub school_code: i64,
    pub pupil_iin: String,
    pub meal_kind: String,
    pub card: i64,
    pub unverified: i64,
}

/// Served events of one school the server refused, by reason.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RefusalAggregate {
    pub school_code: i64,
    pub refusal: String,
    pub events: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct VerdictAggregate {
    pub school_code: i64,
    pub verdict: String,
    pub scans: i64,
}

/// A voucher revoked during the day (any reason), at the school it belongs to now.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RevocationRow {
    pub school_code: i64,
    pub voucher_id: String,
    pub pupil_iin: String,
    pub reason: String,
    pub revoked_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ConsentOutcomeRow {
    pub school_code: i64,
    pub pupil_iin: String,
    pub status: String,
    pub at: i64,
}

/// Everything a day's reports are made of; rows of all (or one) schools.
#[derive(Debug, Clone, Default)]
pub struct DayData {
    pub vouchers: Vec<VoucherTotals>,
    pub activations: Vec<ActivationRow>,
    pub revocations: Vec<RevocationRow>,
    pub meals: Vec<MealAggregate>,
    pub served: Vec<ServedRow>,
    pub rejected: Vec<VerdictAggregate>,
    pub refused: Vec<RefusalAggregate>,
    pub consents: Vec<ConsentOutcomeRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LatestReport {
    pub school_code: i64,
    pub revision: i64,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub report_id: String,
    pub school_code: i64,
    pub service_day: String,
    pub revision: i64,
    pub content_hash: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClaimedReport {
    pub report_id: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ReportStatus {
    pub report_id: String,
    pub school_code: i64,
    pub service_day: String,
    pub revision: i64,
    pub built_at: i64,
    pub delivered_at: Option<i64>,
    pub attempts: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

/// Consent statuses that end (or complete) the process and go to NOBD; `withdrawn`: a consent
/// given, then withdrawn by `3#2` (DESIGN §10).
pub const CONSENT_OUTCOMES: [&str; 5] =
    ["no_phone", "refused", "expired", "consented", "withdrawn"];

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's parameter limits.
const INSERT_CHUNK: usize = 500;

fn school_clause(column: &str, school: Option<i64>, param: usize) -> String {
    match school {
        Some(_) => format!(" AND {column} = ${param}"),
        None => String::new(),
    }
}

fn values_list(rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=per_row)
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
pub trait NobdStore {
    /// The figures of one day for every school (or the one given).
    async fn nobd_day_data(&self, day: &DayWindow, school: Option<i64>) -> StoreResult<DayData>;
    /// The newest revision of each school's report for the day.
    async fn nobd_latest(&self, day: &str, school: Option<i64>) -> StoreResult<Vec<LatestReport>>;
    /// Stores new revisions and queues them for delivery, in one transaction. A revision
    /// another instance stored first is skipped; returns the ids stored here.
    async fn nobd_insert_reports(
        &self,
        reports: &[NewReport],
        now: i64,
    ) -> StoreResult<Vec<String>>;
    /// Leases up to `limit` reports due at `now` to `worker` for `lease` seconds of the
    /// database's clock (see [`super::lease`]). A revision waits while an older revision of
    /// the same school and day is undelivered.
    async fn nobd_claim_due(
        &self,
        now: i64,
        lease: i64,
        worker: &str,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedReport>>;
    async fn nobd_report_body(&self, report_id: &str) -> StoreResult<Option<String>>;
    async fn nobd_mark_delivered(&self, report_id: &str, now: i64) -> StoreResult<()>;
    async fn nobd_mark_failed(
        &self,
        report_id: &str,
        worker: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// `(school_code, service_day)` with scans received at or after `since`, for days before
    /// `before_day`.
    async fn nobd_days_with_scans_since(
        &self,
        since: i64,
        before_day: &str,
    ) -> StoreResult<Vec<(i64, String)>>;
    async fn nobd_mark(&self, name: &str) -> StoreResult<Option<String>>;
    async fn set_nobd_mark(&self, name: &str, value: &str) -> StoreResult<()>;
    /// Reports of a school, newest first, with their delivery state.
    async fn nobd_school_reports(
        &self,
        school_code: i64,
        limit: i64,
    ) -> StoreResult<Vec<ReportStatus>>;
    async fn nobd_school_report_body(
        &self,
        school_code: i64,
        report_id: &str,
    ) -> StoreResult<Option<String>>;
    /// Reports not yet accepted, oldest first.
    async fn nobd_undelivered(&self, limit: i64) -> StoreResult<Vec<ReportStatus>>;
}

const STATUS_SELECT: &str =
    "SELECT r.report_id, r.school_code, r.service_day, r.revision, r.built_at,
        o.delivered_at, o.attempts, o.next_attempt_at, o.last_error
     FROM nobd_reports r LEFT JOIN nobd_outbox o ON o.report_id = r.report_id";

macro_rules! impl_nobd {
    ($t:ty) => {
        #[async_trait]
        impl NobdStore for $t {
            async fn nobd_day_data(
                &self,
                d: &DayWindow,
                school: Option<i64>,
            ) -> StoreResult<DayData> {
                // One snapshot for all sections, so a report never mixes two moments.
                let mut tx = self.pool.begin().await?;
                if Self::BACKEND == Backend::Postgres {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                    // The day's aggregates hash a few million rows; the default 4 MB spills them
                    // to disk. Local to this transaction.
                    sqlx::query("SET LOCAL work_mem = '128MB'")
                        .execute(&mut *tx)
                        .await?;
                }
                let vouchers = {
                    let sql = format!(
                        "SELECT school_code,
                            CAST(SUM(CASE WHEN issued_at < $1 THEN 1 ELSE 0 END) AS BIGINT) AS issued_total,
                            CAST(SUM(CASE WHEN activated_at < $1 THEN 1 ELSE 0 END) AS BIGINT) AS activated_total,
                            CAST(SUM(CASE WHEN revoked_at < $1 THEN 1 ELSE 0 END) AS BIGINT) AS revoked_total
                         FROM vouchers
                         WHERE valid_from <= $2 AND valid_to >= $2 {}
                         GROUP BY school_code",
                        school_clause("school_code", school, 3)
                    );
                    let mut q = sqlx::query_as(&sql).bind(d.end).bind(&d.day);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let activations = {
                    let sql = format!(
                        "SELECT v.school_code, v.id AS voucher_id, p.iin AS pupil_iin, v.activated_at
                         FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                         WHERE v.activated_at >= $1 AND v.activated_at < $2 {}",
                        school_clause("v.school_code", school, 3)
                    );
                    let mut q = sqlx::query_as(&sql).bind(d.start).bind(d.end);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let revocations = {
                    // A voucher revoked and restored the same day is not revoked any more: it
                    // has no revocation time, and NOBD is not told of it.
                    let sql = format!(
                        "SELECT v.school_code, v.id AS voucher_id, p.iin AS pupil_iin,
                            COALESCE(v.revoke_reason, 'operator') AS reason, v.revoked_at
                         FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                         WHERE v.revoked_at >= $1 AND v.revoked_at < $2 {}",
                        school_clause("v.school_code", school, 3)
                    );
                    let mut q = sqlx::query_as(&sql).bind(d.start).bind(d.end);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let meals = {
                    let sql = format!(
                        "SELECT m.school_code, m.meal_kind, p.category, COUNT(*) AS meals,
                                CAST(SUM(m.n) AS BIGINT) AS oks,
                                CAST(SUM(m.card) AS BIGINT) AS card,
                                CAST(SUM(m.unverified) AS BIGINT) AS unverified
                         FROM (SELECT e.school_code, e.meal_kind, e.voucher_id, COUNT(*) AS n,
                                      MAX(CASE WHEN e.duplicate = FALSE AND e.proof_class = 'card'
                                               THEN 1 ELSE 0 END) AS card,
                                      MAX(CASE WHEN e.duplicate = FALSE AND e.proof_class = 'unverified'
                                               THEN 1 ELSE 0 END) AS unverified
                               FROM terminal_events e
                               WHERE e.service_day = $1 AND e.verdict = 'ok' AND e.refusal IS NULL {}
                               GROUP BY e.school_code, e.meal_kind, e.voucher_id,
                                        CASE WHEN e.voucher_id IS NULL THEN e.event_id END) m
                         LEFT JOIN vouchers v ON v.id = m.voucher_id
                         LEFT JOIN pupils p ON p.id = v.pupil_id
                         GROUP BY m.school_code, m.meal_kind, p.category",
                        school_clause("e.school_code", school, 2)
                    );
                    let mut q = sqlx::query_as(&sql).bind(&d.day);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let served = {
                    // The meals of the aggregate above, one row each, with their pupil.
                    let sql = format!(
                        "SELECT m.school_code, p.iin AS pupil_iin, m.meal_kind,
                                CAST(m.card AS BIGINT) AS card,
                                CAST(m.unverified AS BIGINT) AS unverified
                         FROM (SELECT e.school_code, e.meal_kind, e.voucher_id,
                                      MAX(CASE WHEN e.duplicate = FALSE AND e.proof_class = 'card'
                                               THEN 1 ELSE 0 END) AS card,
                                      MAX(CASE WHEN e.duplicate = FALSE AND e.proof_class = 'unverified'
                                               THEN 1 ELSE 0 END) AS unverified
                               FROM terminal_events e
                               WHERE e.service_day = $1 AND e.verdict = 'ok' AND e.refusal IS NULL
                                 AND e.voucher_id IS NOT NULL {}
                               GROUP BY e.school_code, e.meal_kind, e.voucher_id) m
                         JOIN vouchers v ON v.id = m.voucher_id
                         JOIN pupils p ON p.id = v.pupil_id",
                        school_clause("e.school_code", school, 2)
                    );
                    let mut q = sqlx::query_as(&sql).bind(&d.day);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let rejected = {
                    let sql = format!(
                        "SELECT school_code, verdict, CAST(SUM(count) AS BIGINT) AS scans
                         FROM terminal_events
                         WHERE service_day = $1 AND verdict <> 'ok' AND is_repeat = FALSE {}
                         GROUP BY school_code, verdict",
                        school_clause("school_code", school, 2)
                    );
                    let mut q = sqlx::query_as(&sql).bind(&d.day);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let refused = {
                    let sql = format!(
                        "SELECT school_code, refusal, COUNT(*) AS events FROM terminal_events
                         WHERE service_day = $1 AND refusal IS NOT NULL {}
                         GROUP BY school_code, refusal",
                        school_clause("school_code", school, 2)
                    );
                    let mut q = sqlx::query_as(&sql).bind(&d.day);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                let consents = {
                    let sql = format!(
                        // `outcome` says more than the status where there is more to say
                        // (`consented_at_school`, `consented_late`: DESIGN §11).
                        "SELECT p.school_code, p.iin AS pupil_iin,
                            COALESCE(t.outcome, t.status) AS status, t.at
                         FROM consent_transitions t
                         JOIN consents c ON c.id = t.consent_id
                         JOIN pupils p ON p.id = c.pupil_id
                         WHERE t.at >= $1 AND t.at < $2
                           AND t.status IN ('no_phone', 'refused', 'expired', 'consented', 'withdrawn') {}",
                        school_clause("p.school_code", school, 3)
                    );
                    let mut q = sqlx::query_as(&sql).bind(d.start).bind(d.end);
                    if let Some(s) = school {
                        q = q.bind(s);
                    }
                    q.fetch_all(&mut *tx).await?
                };
                tx.commit().await?;
                Ok(DayData {
                    vouchers,
                    activations,
                    revocations,
                    meals,
                    served,
                    rejected,
                    refused,
                    consents,
                })
            }

            async fn nobd_latest(
                &self,
                day: &str,
                school: Option<i64>,
            ) -> StoreResult<Vec<LatestReport>> {
                let sql = format!(
                    "SELECT r.school_code, r.revision, r.content_hash FROM nobd_reports r
                     WHERE r.service_day = $1 {}
                       AND r.revision = (SELECT MAX(r2.revision) FROM nobd_reports r2
                                         WHERE r2.school_code = r.school_code
                                           AND r2.service_day = r.service_day)",
                    school_clause("r.school_code", school, 2)
                );
                let mut q = sqlx::query_as(&sql).bind(day);
                if let Some(s) = school {
                    q = q.bind(s);
                }
                Ok(q.fetch_all(&self.pool).await?)
            }

            async fn nobd_insert_reports(
                &self,
                reports: &[NewReport],
                now: i64,
            ) -> StoreResult<Vec<String>> {
                let mut stored = Vec::new();
                let mut tx = self.pool.begin().await?;
                for chunk in reports.chunks(INSERT_CHUNK) {
                    let sql = format!(
                        "INSERT INTO nobd_reports (report_id, school_code, service_day, revision,
                            content_hash, body, built_at)
                         VALUES {} ON CONFLICT DO NOTHING RETURNING report_id",
                        values_list(chunk.len(), 7)
                    );
                    let mut q = sqlx::query_scalar(&sql);
                    for r in chunk {
                        q = q
                            .bind(&r.report_id)
                            .bind(r.school_code)
                            .bind(&r.service_day)
                            .bind(r.revision)
                            .bind(&r.content_hash)
                            .bind(&r.body)
                            .bind(now);
                    }
                    let ids: Vec<String> = q.fetch_all(&mut *tx).await?;
                    let inserted: Vec<&NewReport> =
                        chunk.iter().filter(|r| ids.contains(&r.report_id)).collect();
                    if !inserted.is_empty() {
                        let sql = format!(
                            "INSERT INTO nobd_outbox (report_id, school_code, service_day, revision,
                                created_at, next_attempt_at)
                             VALUES {}",
                            values_list(inserted.len(), 6)
                        );
                        let mut q = sqlx::query(&sql);
                        for r in &inserted {
                            q = q
                                .bind(&r.report_id)
                                .bind(r.school_code)
                                .bind(&r.service_day)
                                .bind(r.revision)
                                .bind(now)
                                .bind(now);
                        }
                        q.execute(&mut *tx).await?;
                    }
                    stored.extend(inserted.into_iter().map(|r| r.report_id.clone()));
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn nobd_claim_due(
                &self,
                now: i64,
                lease: i64,
                worker: &str,
                limit: i64,
            ) -> StoreResult<Vec<ClaimedReport>> {
                let lock = match Self::BACKEND {
                    Backend::Postgres => "FOR UPDATE SKIP LOCKED",
                    // SQLite runs one writer at a time: the UPDATE is atomic on its own.
                    Backend::Sqlite => "",
                };
                let sql = format!(
                    "UPDATE nobd_outbox SET claimed_until = {clock} + $1, claimed_by = $2,
                            attempts = attempts + 1
                     WHERE report_id IN (
                        SELECT o.report_id FROM nobd_outbox o
                        WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $3
                          AND {free}
                          AND NOT EXISTS (
                              SELECT 1 FROM nobd_outbox older
                              WHERE older.school_code = o.school_code
                                AND older.service_day = o.service_day
                                AND older.revision < o.revision
                                AND older.delivered_at IS NULL)
                        ORDER BY o.next_attempt_at, o.service_day, o.school_code, o.revision
                        LIMIT $4 {lock})
                     RETURNING report_id, attempts",
                    clock = super::lease::db_clock(Self::BACKEND),
                    free = super::lease::claimable(Self::BACKEND, "o"),
                );
                Ok(sqlx::query_as(&sql)
                    .bind(lease)
                    .bind(worker)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn nobd_report_body(&self, report_id: &str) -> StoreResult<Option<String>> {
                Ok(
                    sqlx::query_scalar("SELECT body FROM nobd_reports WHERE report_id = $1")
                        .bind(report_id)
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn nobd_mark_delivered(&self, report_id: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE nobd_outbox SET delivered_at = $1, claimed_until = NULL, claimed_by = NULL,
                        last_error = NULL
                     WHERE report_id = $2 AND delivered_at IS NULL",
                )
                .bind(now)
                .bind(report_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn nobd_mark_failed(
                &self,
                report_id: &str,
                worker: &str,
                next_attempt_at: i64,
                error: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE nobd_outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2
                     WHERE report_id = $3 AND claimed_by = $4 AND delivered_at IS NULL",
                )
                .bind(next_attempt_at)
                .bind(error)
                .bind(report_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn nobd_days_with_scans_since(
                &self,
                since: i64,
                before_day: &str,
            ) -> StoreResult<Vec<(i64, String)>> {
                Ok(sqlx::query_as(
                    "SELECT DISTINCT school_code, service_day FROM terminal_events
                     WHERE received_at >= $1 AND service_day < $2
                     ORDER BY service_day, school_code",
                )
                .bind(since)
                .bind(before_day)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn nobd_mark(&self, name: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM nobd_marks WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_nobd_mark(&self, name: &str, value: &str) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO nobd_marks (name, value) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn nobd_school_reports(
                &self,
                school_code: i64,
                limit: i64,
            ) -> StoreResult<Vec<ReportStatus>> {
                Ok(sqlx::query_as(&format!(
                    "{STATUS_SELECT} WHERE r.school_code = $1
                     ORDER BY r.service_day DESC, r.revision DESC LIMIT $2"
                ))
                .bind(school_code)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn nobd_school_report_body(
                &self,
                school_code: i64,
                report_id: &str,
            ) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT body FROM nobd_reports WHERE report_id = $1 AND school_code = $2",
                )
                .bind(report_id)
                .bind(school_code)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn nobd_undelivered(&self, limit: i64) -> StoreResult<Vec<ReportStatus>> {
                Ok(sqlx::query_as(&format!(
                    "{STATUS_SELECT} WHERE o.delivered_at IS NULL AND o.report_id IS NOT NULL
                     ORDER BY r.service_day, r.school_code, r.revision LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_nobd);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_row_by_row() {
        assert_eq!(values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(school_clause("x", Some(1), 3), " AND x = $3");
        assert_eq!(school_clause("x", None, 3), "");
    }
}
