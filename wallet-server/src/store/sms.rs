//! The SMS outbox: every SMS is a row first, written in the same transaction as the change that
//! causes it; a delivery job claims due rows with a lease, sends them and marks them sent.

use super::lease::{claimable, db_clock};
use super::sql::{begin_write, bulk, placeholders, skip_locked, values_list};
use super::StoreResult;
use crate::sms::SmsKind;
use async_trait::async_trait;
use sqlx::FromRow;

/// An SMS to be queued: `to` is a normalised `+77…` number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSms {
    pub to: String,
    pub text: String,
    pub kind: SmsKind,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct QueuedSms {
    pub id: String,
    pub to_phone: String,
    pub text: String,
    pub kind: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

pub const SMS_COLUMNS: &str =
    "id, to_phone, text, kind, created_at, sent_at, attempts, next_attempt_at, last_error";

/// `INSERT` of `n` outbox rows; bind each with [`bind_sms!`](crate::bind_sms).
/// Each parameter appears once, in order: pass it through [`super::sql::bulk`].
pub fn insert_sms_sql(n: usize) -> String {
    format!(
        "INSERT INTO sms_outbox (id, to_phone, text, kind, created_at, next_attempt_at) VALUES {}",
        values_list(n, 6, 1)
    )
}

/// Binds the rows of [`insert_sms_sql`] to a query (fresh UUIDs as ids); usable inside any
/// backend's transaction, so an SMS commits with the state change that caused it.
#[macro_export]
macro_rules! bind_sms {
    ($query:expr, $rows:expr, $now:expr) => {{
        let mut q = $query;
        for sms in $rows {
            q = q
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&sms.to)
                .bind(&sms.text)
                .bind(sms.kind.as_str())
                .bind($now)
                .bind($now);
        }
        q
    }};
}

#[async_trait]
pub trait SmsOutboxStore {
    /// Queues one SMS, due at once; returns its id.
    async fn queue_sms(&self, sms: &NewSms, now: i64) -> StoreResult<String>;
    /// Claims for `worker` up to `limit` unsent rows due at `now`, for `lease` seconds of the
    /// database's clock: another instance skips them until the lease runs out (a crashed
    /// sender's rows are retried then). See [`super::lease`].
    async fn claim_due_sms(
        &self,
        now: i64,
        worker: &str,
        lease: i64,
        limit: i64,
    ) -> StoreResult<Vec<QueuedSms>>;
    async fn mark_sms_sent(&self, ids: &[String], now: i64) -> StoreResult<()>;
    /// Records a failed attempt and when to try again; releases the lease if `worker` still
    /// holds it (a row taken over meanwhile is the new holder's business).
    async fn mark_sms_failed(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        retry_at: i64,
    ) -> StoreResult<()>;
    /// SMS of this kind queued to this number at or after `since` (rate limits).
    async fn sms_count_since(&self, to: &str, kind: SmsKind, since: i64) -> StoreResult<i64>;
    /// The outbox, oldest first (tests, operators).
    async fn sms_outbox(&self, limit: i64) -> StoreResult<Vec<QueuedSms>>;
    /// Rows not yet sent.
    async fn unsent_sms_count(&self) -> StoreResult<i64>;
}

macro_rules! impl_sms {
    ($t:ty) => {
        #[async_trait]
        impl SmsOutboxStore for $t {
            async fn queue_sms(&self, sms: &NewSms, now: i64) -> StoreResult<String> {
                let id = uuid::Uuid::new_v4().to_string();
                sqlx::query(
                    "INSERT INTO sms_outbox (id, to_phone, text, kind, created_at, next_attempt_at)
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&id)
                .bind(&sms.to)
                .bind(&sms.text)
                .bind(sms.kind.as_str())
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(id)
            }

            async fn claim_due_sms(
                &self,
                now: i64,
                worker: &str,
                lease: i64,
                limit: i64,
            ) -> StoreResult<Vec<QueuedSms>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The outer conditions repeat the inner ones: on PostgreSQL a row another
                // instance claimed between our SELECT and UPDATE is re-checked and left alone.
                let mut rows: Vec<QueuedSms> = sqlx::query_as(&format!(
                    "UPDATE sms_outbox SET claimed_until = {clock} + $1, claimed_by = $2,
                            attempts = attempts + 1
                     WHERE sent_at IS NULL AND next_attempt_at <= $3 AND {free}
                       AND id IN (SELECT id FROM sms_outbox
                                  WHERE sent_at IS NULL AND next_attempt_at <= $3 AND {free}
                                  ORDER BY created_at, id LIMIT $4{lock})
                     RETURNING {SMS_COLUMNS}",
                    clock = db_clock(Self::BACKEND),
                    free = claimable(Self::BACKEND, ""),
                    lock = skip_locked(Self::BACKEND, "sms_outbox")
                ))
                .bind(lease)
                .bind(worker)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
                Ok(rows)
            }

            async fn mark_sms_sent(&self, ids: &[String], now: i64) -> StoreResult<()> {
                for chunk in ids.chunks(super::sql::CHUNK) {
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "UPDATE sms_outbox SET sent_at = $1, claimed_until = NULL, claimed_by = NULL,
                                    last_error = NULL
                             WHERE id IN ({})",
                            placeholders(chunk.len(), 2)
                        ),
                    );
                    let mut q = sqlx::query(&sql).bind(now);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn mark_sms_failed(
                &self,
                id: &str,
                worker: &str,
                error: &str,
                retry_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE sms_outbox SET last_error = $1, next_attempt_at = $2,
                            claimed_until = NULL, claimed_by = NULL
                     WHERE id = $3 AND claimed_by = $4 AND sent_at IS NULL",
                )
                .bind(error)
                .bind(retry_at)
                .bind(id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn sms_count_since(&self, to: &str, kind: SmsKind, since: i64) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sms_outbox WHERE to_phone = $1 AND kind = $2 AND created_at >= $3",
                )
                .bind(to)
                .bind(kind.as_str())
                .bind(since)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn sms_outbox(&self, limit: i64) -> StoreResult<Vec<QueuedSms>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {SMS_COLUMNS} FROM sms_outbox ORDER BY created_at, id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn unsent_sms_count(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox WHERE sent_at IS NULL")
                    .fetch_one(&self.pool)
                    .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_sms);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_numbers_placeholders_in_order() {
        assert_eq!(
            insert_sms_sql(2),
            "INSERT INTO sms_outbox (id, to_phone, text, kind, created_at, next_attempt_at) VALUES \
             ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)"
        );
    }
}
