//! What a school and its authority must look at in its canteen's records: served events the
//! server refused, gaps in a terminal's `seq` (events that never arrived), how much of each
//! terminal's serving went by card or look-up (no token proves those), and repeats kept apart
//! from real second attempts.

use super::StoreResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

/// A served event the server refused, with the pupil when the voucher is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RefusedEvent {
    pub service_day: String,
    pub scanned_at: i64,
    pub refusal: String,
    pub source: String,
    pub voucher_id: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub terminal_id: String,
    pub terminal_label: Option<String>,
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RefusalCount {
    pub refusal: String,
    pub events: i64,
}

/// Seqs `from..=to` of a terminal are missing on the server while a later one arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct SeqGap {
    pub terminal_id: String,
    pub terminal_label: String,
    pub from_seq: i64,
    pub to_seq: i64,
}

/// Counted meals of one terminal on one day, and how many of them went by card or look-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct CardShare {
    pub terminal_id: String,
    pub terminal_label: String,
    pub service_day: String,
    pub served: i64,
    pub card: i64,
}

/// Rejections that were `already_served`: repeats (the same token again within the repeat
/// window at the same terminal: a camera or scanner reading twice) and real second attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct SecondScans {
    pub repeats: i64,
    pub second_attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Anomalies {
    pub refused_by_reason: Vec<RefusalCount>,
    /// Rejections over a terminal's per-minute cap (a stuck scanner, a script feeding it):
    /// kept only as counts in capped events.
    pub capped_rejections: i64,
    /// Newest first, at most the limit asked for.
    pub refused: Vec<RefusedEvent>,
    pub seq_gaps: Vec<SeqGap>,
    /// Terminal-days with at least one card or look-up meal, the highest share first.
    pub card_share: Vec<CardShare>,
    pub second_scans: SecondScans,
}

#[async_trait]
pub trait AnomalyStore {
    /// The school's anomalies for service days `from..=to` (`YYYY-MM-DD`); seq gaps are over
    /// each terminal's whole log.
    async fn anomalies(
        &self,
        school_code: i64,
        from: &str,
        to: &str,
        limit: i64,
    ) -> StoreResult<Anomalies>;
}

macro_rules! impl_anomalies {
    ($t:ty) => {
        #[async_trait]
        impl AnomalyStore for $t {
            async fn anomalies(
                &self,
                school_code: i64,
                from: &str,
                to: &str,
                limit: i64,
            ) -> StoreResult<Anomalies> {
                let refused_by_reason = sqlx::query_as(
                    "SELECT refusal, COUNT(*) AS events FROM terminal_events
                     WHERE school_code = $1 AND service_day >= $2 AND service_day <= $3
                       AND refusal IS NOT NULL
                     GROUP BY refusal ORDER BY COUNT(*) DESC, refusal",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let refused = sqlx::query_as(
                    "SELECT e.service_day, e.scanned_at, e.refusal, e.source, e.voucher_id,
                            p.last_name, p.first_name, p.grade, p.class_letter,
                            e.terminal_id, t.label AS terminal_label, e.seq
                     FROM terminal_events e
                     LEFT JOIN vouchers v ON v.id = e.voucher_id AND v.school_code = e.school_code
                     LEFT JOIN pupils p ON p.id = v.pupil_id
                     LEFT JOIN terminals t ON t.id = e.terminal_id
                     WHERE e.school_code = $1 AND e.service_day >= $2 AND e.service_day <= $3
                       AND e.refusal IS NOT NULL
                     ORDER BY e.scanned_at DESC, e.terminal_id, e.seq
                     LIMIT $4",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                // Each stored seq whose successor is missing starts a gap up to the next stored
                // one; a log that does not start at 1 has a gap before its first seq.
                let seq_gaps = sqlx::query_as(
                    "SELECT g.terminal_id, t.label AS terminal_label, g.from_seq, g.to_seq
                     FROM (
                        SELECT terminal_id, seq + 1 AS from_seq, next_seq - 1 AS to_seq
                        FROM (SELECT e.terminal_id, e.seq,
                                     LEAD(e.seq) OVER (PARTITION BY e.terminal_id ORDER BY e.seq) AS next_seq
                              FROM terminal_events e JOIN terminals tt ON tt.id = e.terminal_id
                              WHERE tt.school_code = $1) s
                        WHERE next_seq > seq + 1
                        UNION ALL
                        SELECT e.terminal_id, 1 AS from_seq, MIN(e.seq) - 1 AS to_seq
                        FROM terminal_events e JOIN terminals tt ON tt.id = e.terminal_id
                        WHERE tt.school_code = $1
                        GROUP BY e.terminal_id HAVING MIN(e.seq) > 1
                     ) g JOIN terminals t ON t.id = g.terminal_id
                     ORDER BY t.label, g.terminal_id, g.from_seq
                     LIMIT $2",
                )
                .bind(school_code)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let card_share = sqlx::query_as(
                    "SELECT c.terminal_id, t.label AS terminal_label, c.service_day, c.served, c.card
                     FROM (SELECT terminal_id, service_day, COUNT(*) AS served,
                                  CAST(SUM(CASE WHEN proof_class = 'card' THEN 1 ELSE 0 END) AS BIGINT) AS card
                           FROM terminal_events
                           WHERE school_code = $1 AND service_day >= $2 AND service_day <= $3
                             AND verdict = 'ok' AND duplicate = FALSE AND refusal IS NULL
                           GROUP BY terminal_id, service_day) c
                     JOIN terminals t ON t.id = c.terminal_id
                     WHERE c.card > 0
                     ORDER BY CAST(c.card AS DOUBLE PRECISION) / c.served DESC, c.service_day DESC, t.label
                     LIMIT $4",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let (repeats, second_attempts): (i64, i64) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(CASE WHEN is_repeat THEN count ELSE 0 END), 0) AS BIGINT),
                            CAST(COALESCE(SUM(CASE WHEN is_repeat THEN 0 ELSE count END), 0) AS BIGINT)
                     FROM terminal_events
                     WHERE school_code = $1 AND service_day >= $2 AND service_day <= $3
                       AND verdict = 'already_served'",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?;
                let (capped_rejections,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM terminal_events
                     WHERE school_code = $1 AND service_day >= $2 AND service_day <= $3
                       AND capped = TRUE",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?;
                Ok(Anomalies {
                    capped_rejections,
                    refused_by_reason,
                    refused,
                    seq_gaps,
                    card_share,
                    second_scans: SecondScans {
                        repeats,
                        second_attempts,
                    },
                })
            }
        }
    };
}
crate::impl_for_backends!(impl_anomalies);
