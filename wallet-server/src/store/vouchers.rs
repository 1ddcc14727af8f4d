//! Vouchers: one per pupil per school year (a unique constraint), with a change sequence that
//! terminals follow with their snapshot cursor.

use super::sql::{begin_write, bulk, values_list, CHUNK};
use super::StoreResult;
use async_trait::async_trait;
use shared::calendar::SchoolYear;
use shared::wire::VoucherStatus;
use sqlx::FromRow;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Voucher {
    pub id: String,
    pub pupil_id: i64,
    pub school_code: i64,
    pub school_year: String,
    pub status: String,
    pub valid_from: String,
    pub valid_to: String,
    pub issued_at: i64,
    pub activated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    pub change_seq: i64,
}

impl Voucher {
    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).expect("voucher ids are written as UUIDs")
    }

    pub fn status(&self) -> VoucherStatus {
        VoucherStatus::parse(&self.status).expect("status is checked by the schema")
    }
}

pub const VOUCHER_COLUMNS: &str = "id, pupil_id, school_code, school_year, status, valid_from, \
    valid_to, issued_at, activated_at, revoked_at, revoke_reason, change_seq";

/// Counter name behind `vouchers.change_seq`.
pub const VOUCHER_CHANGE: &str = "voucher_change";

#[async_trait]
pub trait VoucherStore {
    /// Issues the pupil's voucher for the school year; `Conflict` if it already has one.
    async fn create_voucher(
        &self,
        pupil_id: i64,
        school_code: i64,
        year: &SchoolYear,
        now: i64,
    ) -> StoreResult<Voucher>;
    /// Issues the school year's voucher to each `(pupil_id, school_code)` in one transaction,
    /// skipping pupils that have one; returns how many were issued. The consent tick's path:
    /// one commit per voucher made a first mailing's catch-up take minutes.
    async fn create_vouchers(
        &self,
        due: &[(i64, i64)],
        year: &SchoolYear,
        now: i64,
    ) -> StoreResult<usize>;
    async fn voucher(&self, id: Uuid) -> StoreResult<Option<Voucher>>;
    async fn voucher_for_pupil(
        &self,
        pupil_id: i64,
        school_year: &str,
    ) -> StoreResult<Option<Voucher>>;
    /// Changes the status (and bumps the change sequence); sets `activated_at` / `revoked_at`.
    async fn set_voucher_status(
        &self,
        id: Uuid,
        status: VoucherStatus,
        now: i64,
        reason: Option<&str>,
    ) -> StoreResult<Voucher>;
}

macro_rules! impl_vouchers {
    ($t:ty) => {
        impl $t {
            /// Reserves `n` voucher change numbers and returns the last. The counter row stays
            /// locked until `tx` commits, so change_seq order is commit order and a terminal's
            /// cursor never skips a change that commits late.
            pub(crate) async fn reserve_voucher_changes(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                n: i64,
            ) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO counters (name, value) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET value = counters.value + $2
                     RETURNING value",
                )
                .bind(VOUCHER_CHANGE)
                .bind(n)
                .fetch_one(&mut **tx)
                .await?)
            }
        }

        #[async_trait]
        impl VoucherStore for $t {
            async fn create_voucher(
                &self,
                pupil_id: i64,
                school_code: i64,
                year: &SchoolYear,
                now: i64,
            ) -> StoreResult<Voucher> {
                let mut tx = self.pool.begin().await?;
                let seq = Self::reserve_voucher_changes(&mut tx, 1).await?;
                let v: Voucher = sqlx::query_as(&format!(
                    "INSERT INTO vouchers (id, pupil_id, school_code, school_year, status, valid_from,
                        valid_to, issued_at, change_seq)
                     VALUES ($1, $2, $3, $4, 'issued', $5, $6, $7, $8)
                     RETURNING {VOUCHER_COLUMNS}"
                ))
                .bind(Uuid::new_v4().to_string())
                .bind(pupil_id)
                .bind(school_code)
                .bind(year.label())
                .bind(year.start.to_string())
                .bind(year.end.to_string())
                .bind(now)
                .bind(seq)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(v)
            }

            async fn create_vouchers(
                &self,
                due: &[(i64, i64)],
                year: &SchoolYear,
                now: i64,
            ) -> StoreResult<usize> {
                let mut issued = 0;
                for chunk in due.chunks(CHUNK) {
                    let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                    // One change number per voucher; numbers of skipped pupils stay unused
                    // (cursors only need them to grow).
                    let last = Self::reserve_voucher_changes(&mut tx, chunk.len() as i64).await?;
                    let first = last - chunk.len() as i64 + 1;
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "INSERT INTO vouchers (id, pupil_id, school_code, school_year, status,
                                valid_from, valid_to, issued_at, change_seq)
                             VALUES {}
                             ON CONFLICT (pupil_id, school_year) DO NOTHING",
                            values_list(chunk.len(), 9, 1)
                        ),
                    );
                    let mut q = sqlx::query(&sql);
                    for (i, &(pupil_id, school_code)) in chunk.iter().enumerate() {
                        q = q
                            .bind(Uuid::new_v4().to_string())
                            .bind(pupil_id)
                            .bind(school_code)
                            .bind(year.label())
                            .bind("issued")
                            .bind(year.start.to_string())
                            .bind(year.end.to_string())
                            .bind(now)
                            .bind(first + i as i64);
                    }
                    issued += q.execute(&mut *tx).await?.rows_affected() as usize;
                    tx.commit().await?;
                }
                Ok(issued)
            }

            async fn voucher(&self, id: Uuid) -> StoreResult<Option<Voucher>> {
                Ok(sqlx::query_as(&format!("SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn voucher_for_pupil(
                &self,
                pupil_id: i64,
                school_year: &str,
            ) -> StoreResult<Option<Voucher>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE pupil_id = $1 AND school_year = $2"
                ))
                .bind(pupil_id)
                .bind(school_year)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn set_voucher_status(
                &self,
                id: Uuid,
                status: VoucherStatus,
                now: i64,
                reason: Option<&str>,
            ) -> StoreResult<Voucher> {
                let mut tx = self.pool.begin().await?;
                let seq = Self::reserve_voucher_changes(&mut tx, 1).await?;
                let v: Voucher = sqlx::query_as(&format!(
                    "UPDATE vouchers SET status = $1, change_seq = $2,
                        activated_at = CASE WHEN $1 = 'active' THEN COALESCE(activated_at, $3) ELSE activated_at END,
                        revoked_at = CASE WHEN $1 = 'revoked' THEN $3 ELSE revoked_at END,
                        revoke_reason = CASE WHEN $1 = 'revoked' THEN $4 ELSE revoke_reason END
                     WHERE id = $5
                     RETURNING {VOUCHER_COLUMNS}"
                ))
                .bind(status.as_str())
                .bind(seq)
                .bind(now)
                .bind(reason)
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(v)
            }
        }
    };
}
crate::impl_for_backends!(impl_vouchers);
