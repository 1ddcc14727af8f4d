//! The read side of parents' ratings and complaints, as a school and its authority see them.
//!
//! The tables belong to the wallet (migration 0002); this module relies only on these columns:
//! `ratings(voucher_id, service_day, stars, comment, created_at, updated_at)` and
//! `complaints(id, voucher_id, text, status, created_at)`. A rating or complaint belongs to the
//! school of its voucher.

use super::StoreResult;
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct DayRatings {
    pub service_day: String,
    pub ratings: i64,
    pub stars_sum: i64,
}

impl DayRatings {
    pub fn average(&self) -> f64 {
        average(self.stars_sum, self.ratings)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekRatings {
    /// ISO week, e.g. `2026-W48`.
    pub week: String,
    /// Monday of that week.
    pub starts: String,
    pub ratings: i64,
    pub average: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RatingComment {
    pub service_day: String,
    pub stars: i64,
    pub comment: String,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ComplaintRow {
    pub id: String,
    pub text: String,
    pub status: String,
    pub created_at: i64,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub grade: Option<i64>,
    pub class_letter: Option<String>,
}

fn average(sum: i64, n: i64) -> f64 {
    if n == 0 {
        0.0
    } else {
        // Two decimals are all a page shows; rounding here keeps JSON and HTML equal.
        ((sum as f64 / n as f64) * 100.0).round() / 100.0
    }
}

/// Per-ISO-week averages from per-day sums (a week's average weighs every rating once).
pub fn weekly(days: &[DayRatings]) -> Vec<WeekRatings> {
    let mut weeks: Vec<(String, NaiveDate, i64, i64)> = Vec::new();
    for d in days {
        let Ok(date) = NaiveDate::parse_from_str(&d.service_day, "%Y-%m-%d") else {
            continue;
        };
        let iso = date.iso_week();
        let label = format!("{}-W{:02}", iso.year(), iso.week());
        let monday =
            date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()));
        match weeks.iter_mut().find(|w| w.0 == label) {
            Some(w) => {
                w.2 += d.ratings;
                w.3 += d.stars_sum;
            }
            None => weeks.push((label, monday, d.ratings, d.stars_sum)),
        }
    }
    weeks.sort_by_key(|w| w.1);
    weeks
        .into_iter()
        .map(|(week, monday, n, sum)| WeekRatings {
            week,
            starts: monday.to_string(),
            ratings: n,
            average: average(sum, n),
        })
        .collect()
}

#[async_trait]
pub trait FeedbackReadStore {
    /// Ratings per service day in `[from, to]` for the school's vouchers.
    async fn ratings_by_day(
        &self,
        school_code: i64,
        from: &str,
        to: &str,
    ) -> StoreResult<Vec<DayRatings>>;
    async fn rating_comments(
        &self,
        school_code: i64,
        from: &str,
        to: &str,
        limit: i64,
    ) -> StoreResult<Vec<RatingComment>>;
    /// Complaints created in `[since, until)`, newest first.
    async fn school_complaints(
        &self,
        school_code: i64,
        since: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<ComplaintRow>>;
}

macro_rules! impl_feedback_read {
    ($t:ty) => {
        #[async_trait]
        impl FeedbackReadStore for $t {
            async fn ratings_by_day(
                &self,
                school_code: i64,
                from: &str,
                to: &str,
            ) -> StoreResult<Vec<DayRatings>> {
                Ok(sqlx::query_as(
                    "SELECT r.service_day, COUNT(*) AS ratings,
                            CAST(SUM(r.stars) AS BIGINT) AS stars_sum
                     FROM ratings r JOIN vouchers v ON v.id = r.voucher_id
                     WHERE v.school_code = $1 AND r.service_day >= $2 AND r.service_day <= $3
                     GROUP BY r.service_day ORDER BY r.service_day",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn rating_comments(
                &self,
                school_code: i64,
                from: &str,
                to: &str,
                limit: i64,
            ) -> StoreResult<Vec<RatingComment>> {
                Ok(sqlx::query_as(
                    "SELECT r.service_day, CAST(r.stars AS BIGINT) AS stars, r.comment,
                            p.grade, p.class_letter, r.created_at
                     FROM ratings r JOIN vouchers v ON v.id = r.voucher_id
                     LEFT JOIN pupils p ON p.id = v.pupil_id
                     WHERE v.school_code = $1 AND r.service_day >= $2 AND r.service_day <= $3
                       AND r.comment IS NOT NULL AND r.comment <> ''
                     ORDER BY r.service_day DESC, r.created_at DESC
                     LIMIT $4",
                )
                .bind(school_code)
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn school_complaints(
                &self,
                school_code: i64,
                since: i64,
                until: i64,
                limit: i64,
            ) -> StoreResult<Vec<ComplaintRow>> {
                Ok(sqlx::query_as(
                    "SELECT CAST(c.id AS TEXT) AS id, c.text, c.status, c.created_at,
                            p.last_name, p.first_name, p.grade, p.class_letter
                     FROM complaints c JOIN vouchers v ON v.id = c.voucher_id
                     LEFT JOIN pupils p ON p.id = v.pupil_id
                     WHERE v.school_code = $1 AND c.created_at >= $2 AND c.created_at < $3
                     ORDER BY c.created_at DESC
                     LIMIT $4",
                )
                .bind(school_code)
                .bind(since)
                .bind(until)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_feedback_read);

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str, n: i64, sum: i64) -> DayRatings {
        DayRatings {
            service_day: d.into(),
            ratings: n,
            stars_sum: sum,
        }
    }

    #[test]
    fn weeks_weigh_every_rating_once() {
        // Mon 2026-11-23 and Fri 2026-11-27 are one week; Mon 2026-11-30 the next.
        let w = weekly(&[
            day("2026-11-23", 1, 5),
            day("2026-11-27", 3, 6),
            day("2026-11-30", 2, 7),
        ]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].week, "2026-W48");
        assert_eq!(w[0].starts, "2026-11-23");
        assert_eq!(w[0].ratings, 4);
        assert_eq!(w[0].average, 2.75);
        assert_eq!(w[1].average, 3.5);
        assert_eq!(day("x", 0, 0).average(), 0.0);
    }
}
