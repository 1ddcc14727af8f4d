//! What the parents' wallet keeps: login codes, sessions, vouchers as a parent sees them,
//! meal history, ratings, complaints and the per-voucher daily token counts.
//!
//! Ownership is part of every voucher query: a voucher is returned only together with the phone
//! that may see it, the pupil's priority phone (`contact_phone`: the mother's, else the father's,
//! else the guardian's, as the last roster import computed it; DESIGN §1.3, §10). A new phone
//! on the roster takes the pupil away from the old number's sessions at the next request. The
//! vouchers of a pupil removed from the roster stay visible (revoked, with the reason) but are
//! never signed for.

use super::sql::{json_array, json_in};
use super::{Backend, StoreResult};
use async_trait::async_trait;
use sqlx::FromRow;

/// A voucher joined with its pupil and school, as the wallet shows it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ParentVoucher {
    pub id: String,
    pub pupil_id: i64,
    pub school_code: i64,
    pub school_year: String,
    pub status: String,
    pub valid_from: String,
    pub valid_to: String,
    pub activated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    pub last_name: String,
    pub first_name: String,
    pub middle_name: Option<String>,
    pub grade: i64,
    pub class_letter: String,
    pub school_bin: String,
    pub school_name: String,
    pub school_district: Option<String>,
}

const PARENT_VOUCHER_SELECT: &str = "SELECT v.id, v.pupil_id, v.school_code, v.school_year, \
    v.status, v.valid_from, v.valid_to, v.activated_at, v.revoked_at, v.revoke_reason, p.last_name, p.first_name, p.middle_name, \
    p.grade, p.class_letter, s.bin AS school_bin, s.name AS school_name, \
    s.district AS school_district \
    FROM vouchers v JOIN pupils p ON p.id = v.pupil_id JOIN schools s ON s.code = v.school_code";

/// Just what signing a token needs, read on every QR request: kept small on purpose.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SigningVoucher {
    pub id: String,
    pub school_code: i64,
    pub status: String,
    pub valid_from: String,
    pub valid_to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SessionRow {
    pub phone: String,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A live login code: its hash and how many guesses it has taken (including this one).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LiveCode {
    pub id: i64,
    pub code_hash: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MealRow {
    pub scanned_at: i64,
    pub meal_kind: String,
    pub service_day: String,
    pub school_bin: String,
    pub school_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RatingRow {
    pub voucher_id: String,
    pub service_day: String,
    pub stars: i64,
    pub comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRating<'a> {
    pub voucher_id: &'a str,
    pub school_code: i64,
    pub service_day: &'a str,
    pub stars: i64,
    pub comment: Option<&'a str>,
    pub phone: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComplaint<'a> {
    pub id: &'a str,
    pub voucher_id: &'a str,
    pub school_code: i64,
    pub phone: &'a str,
    pub text: &'a str,
    pub payload: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ComplaintRow {
    pub id: String,
    pub voucher_id: String,
    pub text: String,
    pub status: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// A complaint claimed for delivery by this instance until its lease ends.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClaimedComplaint {
    pub id: String,
    pub payload: String,
    pub attempts: i64,
}

/// Where a complaint stands in its delivery (operators, tests).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ComplaintDelivery {
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

/// `(voucher_id, service_day, tokens to add)`.
pub type CountDelta = (String, String, i64);

#[async_trait]
pub trait WalletStore {
    /// Login codes stored for this phone since `since` (the per-phone rate limit).
    async fn login_codes_since(&self, phone: &str, since: i64) -> StoreResult<i64>;
    /// Login codes stored for any phone since `since` (the global budget). Codes are kept a
    /// day and only within the budget, so the table this counts stays small.
    async fn login_codes_total_since(&self, since: i64) -> StoreResult<i64>;
    /// Stores a login code and, when `sms_text` is given, queues the SMS in the same transaction.
    async fn insert_login_code(
        &self,
        phone: &str,
        code_hash: &str,
        now: i64,
        expires_at: i64,
        sms: Option<(&str, &str)>,
    ) -> StoreResult<()>;
    /// Counts one guess against every live code of the phone and returns them (attempts
    /// included). Codes that reached `max_attempts` are no longer live.
    async fn take_login_attempt(
        &self,
        phone: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Vec<LiveCode>>;
    /// Marks the code used (false when another request used it first) and every other live
    /// code of the phone with it.
    async fn use_login_code(&self, id: i64, phone: &str, now: i64) -> StoreResult<bool>;

    async fn insert_session(
        &self,
        token_hash: &str,
        phone: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRow>>;
    async fn revoke_session(&self, token_hash: &str, now: i64) -> StoreResult<()>;
    /// Deletes sessions and login codes that can no longer be used; returns rows removed.
    async fn purge_wallet_logins(&self, now: i64) -> StoreResult<u64>;

    /// The vouchers of the pupils whose priority phone this is, of every school year, newest
    /// first.
    async fn parent_vouchers(&self, phone: &str) -> StoreResult<Vec<ParentVoucher>>;
    /// The voucher if this phone may see it; `None` for unknown ids and other families' ids.
    async fn parent_voucher(&self, id: &str, phone: &str) -> StoreResult<Option<ParentVoucher>>;
    /// The hot-path form of [`WalletStore::parent_voucher`], for signing tokens.
    async fn signing_voucher(&self, id: &str, phone: &str) -> StoreResult<Option<SigningVoucher>>;

    /// Served meals (`ok`, not duplicate), newest first.
    async fn meal_history(&self, voucher_id: &str, limit: i64) -> StoreResult<Vec<MealRow>>;

    /// Inserts or replaces the rating of that voucher and day.
    async fn upsert_rating(&self, rating: &NewRating<'_>) -> StoreResult<RatingRow>;
    async fn ratings_for(&self, voucher_id: &str) -> StoreResult<Vec<RatingRow>>;

    async fn insert_complaint(&self, complaint: &NewComplaint<'_>) -> StoreResult<ComplaintRow>;
    async fn complaints_since(&self, phone: &str, since: i64) -> StoreResult<i64>;
    /// The phone's complaints, newest first.
    async fn complaints_of(&self, phone: &str) -> StoreResult<Vec<ComplaintRow>>;
    /// Claims for `worker` complaints due at `now`, for `lease` seconds of the database's
    /// clock (row locks on PostgreSQL, so several instances never claim the same one; see
    /// [`super::lease`]).
    async fn claim_due_complaints(
        &self,
        now: i64,
        worker: &str,
        lease: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedComplaint>>;
    async fn complaint_sent(&self, id: &str, now: i64) -> StoreResult<()>;
    async fn complaint_delivery(&self, id: &str) -> StoreResult<Option<ComplaintDelivery>>;
    /// Records a failed attempt; releases the lease if `worker` still holds it.
    async fn complaint_failed(
        &self,
        id: &str,
        worker: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;

    async fn token_count(&self, voucher_id: &str, service_day: &str) -> StoreResult<i64>;
    /// Adds the deltas in one transaction; returns the new totals in the same order.
    async fn add_token_counts(&self, deltas: &[CountDelta]) -> StoreResult<Vec<i64>>;

    /// Texts queued to this phone with this kind, oldest first (operators and tests).
    async fn sms_texts_to(&self, phone: &str, kind: &str) -> StoreResult<Vec<String>>;
}

/// The service days a voucher valid `from`..=`to` can have a meal on, as stored: its validity
/// and a day either side (a terminal correcting its clock near midnight may record the
/// neighbouring day). Empty if the dates do not parse, which the schema does not allow.
fn history_days(from: &str, to: &str) -> Vec<String> {
    use chrono::{Days, NaiveDate};
    let (Ok(from), Ok(to)) = (from.parse::<NaiveDate>(), to.parse::<NaiveDate>()) else {
        return Vec::new();
    };
    let (Some(first), Some(last)) = (
        from.checked_sub_days(Days::new(1)),
        to.checked_add_days(Days::new(1)),
    ) else {
        return Vec::new();
    };
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| d.to_string())
        .collect()
}

macro_rules! impl_wallet {
    ($t:ty) => {
        #[async_trait]
        impl WalletStore for $t {
            async fn login_codes_since(&self, phone: &str, since: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM login_codes WHERE phone = $1 AND created_at > $2",
                )
                .bind(phone)
                .bind(since)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn login_codes_total_since(&self, since: i64) -> StoreResult<i64> {
                Ok(
                    sqlx::query_scalar("SELECT COUNT(*) FROM login_codes WHERE created_at > $1")
                        .bind(since)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn insert_login_code(
                &self,
                phone: &str,
                code_hash: &str,
                now: i64,
                expires_at: i64,
                sms: Option<(&str, &str)>,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO login_codes (phone, code_hash, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(phone)
                .bind(code_hash)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                if let Some((id, text)) = sms {
                    sqlx::query(
                        "INSERT INTO sms_outbox (id, to_phone, text, kind, created_at, next_attempt_at)
                         VALUES ($1, $2, $3, 'login_code', $4, $4)",
                    )
                    .bind(id)
                    .bind(phone)
                    .bind(text)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn take_login_attempt(
                &self,
                phone: &str,
                now: i64,
                max_attempts: i64,
            ) -> StoreResult<Vec<LiveCode>> {
                Ok(sqlx::query_as(
                    "UPDATE login_codes SET attempts = attempts + 1
                     WHERE phone = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3
                     RETURNING id, code_hash, attempts",
                )
                .bind(phone)
                .bind(now)
                .bind(max_attempts)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn use_login_code(&self, id: i64, phone: &str, now: i64) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let won = sqlx::query(
                    "UPDATE login_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if won {
                    sqlx::query(
                        "UPDATE login_codes SET used_at = $1 WHERE phone = $2 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(phone)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(won)
            }

            async fn insert_session(
                &self,
                token_hash: &str,
                phone: &str,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO wallet_sessions (token_hash, phone, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(phone)
                .bind(now)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session(&self, token_hash: &str) -> StoreResult<Option<SessionRow>> {
                Ok(sqlx::query_as(
                    "SELECT phone, expires_at, revoked_at FROM wallet_sessions WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn revoke_session(&self, token_hash: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE wallet_sessions SET revoked_at = $1
                     WHERE token_hash = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_wallet_logins(&self, now: i64) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                // Codes are kept a day so the daily per-phone limit can count them.
                let codes = sqlx::query("DELETE FROM login_codes WHERE created_at < $1")
                    .bind(now - 86_400)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let sessions = sqlx::query(
                    "DELETE FROM wallet_sessions WHERE expires_at < $1 OR revoked_at < $1",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(codes + sessions)
            }

            async fn parent_vouchers(&self, phone: &str) -> StoreResult<Vec<ParentVoucher>> {
                Ok(sqlx::query_as(&format!(
                    "{PARENT_VOUCHER_SELECT}
                     WHERE p.contact_phone = $1
                     ORDER BY v.valid_from DESC, p.last_name, p.first_name, v.id"
                ))
                .bind(phone)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn parent_voucher(
                &self,
                id: &str,
                phone: &str,
            ) -> StoreResult<Option<ParentVoucher>> {
                Ok(sqlx::query_as(&format!(
                    "{PARENT_VOUCHER_SELECT}
                     WHERE v.id = $1 AND p.contact_phone = $2"
                ))
                .bind(id)
                .bind(phone)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn signing_voucher(
                &self,
                id: &str,
                phone: &str,
            ) -> StoreResult<Option<SigningVoucher>> {
                Ok(sqlx::query_as(
                    "SELECT v.id, v.school_code, v.status, v.valid_from, v.valid_to
                     FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                     WHERE v.id = $1 AND p.contact_phone = $2 AND p.removed_at IS NULL",
                )
                .bind(id)
                .bind(phone)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn meal_history(&self, voucher_id: &str, limit: i64) -> StoreResult<Vec<MealRow>> {
                let validity: Option<(String, String)> =
                    sqlx::query_as("SELECT valid_from, valid_to FROM vouchers WHERE id = $1")
                        .bind(voucher_id)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some((from, to)) = validity else {
                    return Ok(Vec::new());
                };
                // The counted index leads with the day (events have no voucher-led index: see
                // migration 0006), so the voucher is looked up once per day it can have a meal.
                let days = history_days(&from, &to);
                Ok(sqlx::query_as(&format!(
                    "SELECT e.scanned_at, e.meal_kind, e.service_day, s.bin AS school_bin,
                        s.name AS school_name
                     FROM terminal_events e JOIN schools s ON s.code = e.school_code
                     WHERE {} AND e.voucher_id = $2 AND e.verdict = 'ok' AND e.duplicate = FALSE
                       AND e.refusal IS NULL
                     ORDER BY e.scanned_at DESC, e.event_id
                     LIMIT $3",
                    json_in(Self::BACKEND, "e.service_day", 1)
                ))
                .bind(json_array(&days))
                .bind(voucher_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn upsert_rating(&self, r: &NewRating<'_>) -> StoreResult<RatingRow> {
                Ok(sqlx::query_as(
                    "INSERT INTO ratings (voucher_id, school_code, service_day, stars, comment,
                        phone, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (voucher_id, service_day) DO UPDATE SET stars = excluded.stars,
                        comment = excluded.comment, phone = excluded.phone,
                        updated_at = excluded.updated_at
                     RETURNING voucher_id, service_day, stars, comment, created_at, updated_at",
                )
                .bind(r.voucher_id)
                .bind(r.school_code)
                .bind(r.service_day)
                .bind(r.stars)
                .bind(r.comment)
                .bind(r.phone)
                .bind(r.now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn ratings_for(&self, voucher_id: &str) -> StoreResult<Vec<RatingRow>> {
                Ok(sqlx::query_as(
                    "SELECT voucher_id, service_day, stars, comment, created_at, updated_at
                     FROM ratings WHERE voucher_id = $1 ORDER BY service_day DESC",
                )
                .bind(voucher_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_complaint(&self, c: &NewComplaint<'_>) -> StoreResult<ComplaintRow> {
                Ok(sqlx::query_as(
                    "INSERT INTO complaints (id, voucher_id, school_code, phone, text, payload,
                        status, created_at, next_attempt_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7)
                     RETURNING id, voucher_id, text, status, created_at, sent_at",
                )
                .bind(c.id)
                .bind(c.voucher_id)
                .bind(c.school_code)
                .bind(c.phone)
                .bind(c.text)
                .bind(c.payload)
                .bind(c.now)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn complaints_since(&self, phone: &str, since: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM complaints WHERE phone = $1 AND created_at > $2",
                )
                .bind(phone)
                .bind(since)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn complaints_of(&self, phone: &str) -> StoreResult<Vec<ComplaintRow>> {
                Ok(sqlx::query_as(
                    "SELECT id, voucher_id, text, status, created_at, sent_at FROM complaints
                     WHERE phone = $1 ORDER BY created_at DESC, id LIMIT 200",
                )
                .bind(phone)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn claim_due_complaints(
                &self,
                now: i64,
                worker: &str,
                lease: i64,
                limit: i64,
            ) -> StoreResult<Vec<ClaimedComplaint>> {
                let lock = match Self::BACKEND {
                    Backend::Postgres => "FOR UPDATE SKIP LOCKED",
                    Backend::Sqlite => "",
                };
                Ok(sqlx::query_as(&format!(
                    "UPDATE complaints SET claimed_until = {clock} + $1, claimed_by = $2
                     WHERE id IN (
                        SELECT id FROM complaints
                        WHERE status = 'queued' AND next_attempt_at <= $3 AND {free}
                        ORDER BY created_at LIMIT $4 {lock})
                     RETURNING id, payload, attempts",
                    clock = super::lease::db_clock(Self::BACKEND),
                    free = super::lease::claimable(Self::BACKEND, ""),
                ))
                .bind(lease)
                .bind(worker)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn complaint_sent(&self, id: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE complaints SET status = 'sent', sent_at = $1, claimed_until = NULL, claimed_by = NULL,
                        attempts = attempts + 1, last_error = NULL
                     WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn complaint_delivery(&self, id: &str) -> StoreResult<Option<ComplaintDelivery>> {
                Ok(sqlx::query_as(
                    "SELECT status, attempts, next_attempt_at, sent_at, last_error
                     FROM complaints WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn complaint_failed(
                &self,
                id: &str,
                worker: &str,
                next_attempt_at: i64,
                error: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE complaints SET attempts = attempts + 1, next_attempt_at = $1,
                        last_error = $2, claimed_until = NULL, claimed_by = NULL
                     WHERE id = $3 AND status = 'queued' AND claimed_by = $4",
                )
                .bind(next_attempt_at)
                .bind(error)
                .bind(id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn token_count(&self, voucher_id: &str, service_day: &str) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT count FROM token_counts WHERE voucher_id = $1 AND service_day = $2",
                )
                .bind(voucher_id)
                .bind(service_day)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0))
            }

            async fn add_token_counts(&self, deltas: &[CountDelta]) -> StoreResult<Vec<i64>> {
                let mut tx = self.pool.begin().await?;
                let mut totals = Vec::with_capacity(deltas.len());
                for (voucher_id, day, delta) in deltas {
                    let total: i64 = sqlx::query_scalar(
                        "INSERT INTO token_counts (voucher_id, service_day, count) VALUES ($1, $2, $3)
                         ON CONFLICT (voucher_id, service_day)
                         DO UPDATE SET count = token_counts.count + excluded.count
                         RETURNING count",
                    )
                    .bind(voucher_id)
                    .bind(day)
                    .bind(delta)
                    .fetch_one(&mut *tx)
                    .await?;
                    totals.push(total);
                }
                tx.commit().await?;
                Ok(totals)
            }

            async fn sms_texts_to(&self, phone: &str, kind: &str) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT text FROM sms_outbox WHERE to_phone = $1 AND kind = $2
                     ORDER BY created_at, id",
                )
                .bind(phone)
                .bind(kind)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_wallet);

#[cfg(test)]
mod tests {
    use super::history_days;

    #[test]
    fn history_covers_validity_and_a_day_either_side() {
        let days = history_days("2026-09-01", "2027-05-31");
        assert_eq!(days.first().map(String::as_str), Some("2026-08-31"));
        assert_eq!(days.last().map(String::as_str), Some("2027-06-01"));
        assert_eq!(days.len(), 275);
        assert!(history_days("not a day", "2027-05-31").is_empty());
    }
}
