//! Leases on outbox rows, one mechanism for the SMS, NOBD and e-Otinish outboxes.
//!
//! A worker claims rows by setting `claimed_by` to its id and `claimed_until` to the database's
//! clock at that moment plus the lease; another worker takes a row only once `claimed_until`
//! has passed on that same clock. The caller's "now" (which may be a `--now` in the past) only
//! decides which rows are due: a lease measured from it could already have run out when it was
//! taken, and every instance would then send the same rows.
//!
//! Why the database's clock: instances on several hosts disagree about the time, but they all
//! ask one PostgreSQL. On SQLite every writer runs on the one host that holds the file, so the
//! clock SQLite reads is that host's.

use super::sql::json_in;
use super::{Backend, StoreResult};
use async_trait::async_trait;

/// One outbox table: its key column and the condition of a row still to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbox {
    pub table: &'static str,
    pub key: &'static str,
    pub open: &'static str,
}

pub const SMS: Outbox = Outbox {
    table: "sms_outbox",
    key: "id",
    open: "sent_at IS NULL",
};

pub const NOBD: Outbox = Outbox {
    table: "nobd_outbox",
    key: "report_id",
    open: "delivered_at IS NULL",
};

pub const COMPLAINTS: Outbox = Outbox {
    table: "complaints",
    key: "id",
    open: "status = 'queued'",
};

pub const ALL: [Outbox; 3] = [SMS, NOBD, COMPLAINTS];

/// Unix seconds by the database's clock at the moment the statement runs. On PostgreSQL
/// `clock_timestamp()`, not `now()`: `now()` is the start of the transaction.
pub fn db_clock(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)",
        Backend::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
    }
}

/// The condition under which a row may be claimed: nobody holds it, or the holder's lease has
/// run out by the database's clock.
pub fn claimable(backend: Backend, alias: &str) -> String {
    let a = if alias.is_empty() {
        String::new()
    } else {
        format!("{alias}.")
    };
    format!(
        "({a}claimed_until IS NULL OR {a}claimed_until <= {})",
        db_clock(backend)
    )
}

#[async_trait]
pub trait LeaseStore {
    /// The database's clock, in Unix seconds.
    async fn db_now(&self) -> StoreResult<i64>;
    /// Extends to `seconds` from now the leases `worker` still holds on `ids`; returns how many
    /// rows it still holds (rows delivered meanwhile or taken over are not counted).
    async fn renew_leases(
        &self,
        outbox: Outbox,
        worker: &str,
        ids: &[String],
        seconds: i64,
    ) -> StoreResult<u64>;
    /// Undelivered rows some worker holds under a lease that has not run out.
    async fn leased(&self, outbox: Outbox) -> StoreResult<i64>;
    /// Gives back the undelivered rows `worker` holds (all of them when `ids` is `None`), so
    /// another instance may take them at once rather than after the lease.
    async fn release_leases(
        &self,
        outbox: Outbox,
        worker: &str,
        ids: Option<&[String]>,
    ) -> StoreResult<u64>;
}

macro_rules! impl_lease {
    ($t:ty) => {
        #[async_trait]
        impl LeaseStore for $t {
            async fn db_now(&self) -> StoreResult<i64> {
                Ok(
                    sqlx::query_scalar(&format!("SELECT {}", db_clock(Self::BACKEND)))
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn leased(&self, outbox: Outbox) -> StoreResult<i64> {
                let sql = format!(
                    "SELECT COUNT(*) FROM {table} WHERE {open} AND claimed_until > {clock}",
                    table = outbox.table,
                    open = outbox.open,
                    clock = db_clock(Self::BACKEND),
                );
                Ok(sqlx::query_scalar(&sql).fetch_one(&self.pool).await?)
            }

            async fn renew_leases(
                &self,
                outbox: Outbox,
                worker: &str,
                ids: &[String],
                seconds: i64,
            ) -> StoreResult<u64> {
                if ids.is_empty() {
                    return Ok(0);
                }
                let sql = format!(
                    "UPDATE {table} SET claimed_until = {clock} + $1
                     WHERE claimed_by = $2 AND claimed_until IS NOT NULL AND {open} AND {ids}",
                    table = outbox.table,
                    clock = db_clock(Self::BACKEND),
                    open = outbox.open,
                    ids = json_in(Self::BACKEND, outbox.key, 3),
                );
                Ok(sqlx::query(&sql)
                    .bind(seconds)
                    .bind(worker)
                    .bind(super::sql::json_array(ids))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn release_leases(
                &self,
                outbox: Outbox,
                worker: &str,
                ids: Option<&[String]>,
            ) -> StoreResult<u64> {
                let only = match ids {
                    Some(_) => format!(" AND {}", json_in(Self::BACKEND, outbox.key, 2)),
                    None => String::new(),
                };
                let sql = format!(
                    "UPDATE {table} SET claimed_until = NULL, claimed_by = NULL
                     WHERE claimed_by = $1 AND claimed_until IS NOT NULL AND {open}{only}",
                    table = outbox.table,
                    open = outbox.open,
                );
                let mut q = sqlx::query(&sql).bind(worker);
                if let Some(ids) = ids {
                    q = q.bind(super::sql::json_array(ids));
                }
                Ok(q.execute(&self.pool).await?.rows_affected())
            }
        }
    };
}
crate::impl_for_backends!(impl_lease);
