//! Vouchers counted by school year and lifecycle state, and pupils erased by retention: what an
//! authority sees of its schools and the metrics of all of them.

use super::sql::{bulk, placeholders};
use super::StoreResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

/// Vouchers of one school year in one state (`issued`, `active`, `revoked`, `expired`); a
/// revoked voucher's reason (`not_eligible`, `removed`, `withdrawn`, `operator`), `None` for
/// the other states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct VoucherStateCount {
    pub school_year: String,
    pub status: String,
    pub reason: Option<String>,
    pub vouchers: i64,
}

#[async_trait]
pub trait StateCountStore {
    /// Vouchers of the schools given (all when `None`) by school year, state and reason,
    /// ordered by those.
    async fn voucher_state_counts(
        &self,
        schools: Option<&[i64]>,
    ) -> StoreResult<Vec<VoucherStateCount>>;
    /// Pupils of those schools whose personal data retention erased.
    async fn erased_pupil_count(&self, schools: Option<&[i64]>) -> StoreResult<i64>;
}

/// ` AND column IN (…)` for the schools given, numbered from `$1`.
fn scope(column: &str, schools: Option<&[i64]>) -> String {
    match schools {
        Some(codes) => format!(" AND {column} IN ({})", placeholders(codes.len(), 1)),
        None => String::new(),
    }
}

macro_rules! impl_state_counts {
    ($t:ty) => {
        #[async_trait]
        impl StateCountStore for $t {
            async fn voucher_state_counts(
                &self,
                schools: Option<&[i64]>,
            ) -> StoreResult<Vec<VoucherStateCount>> {
                if schools.is_some_and(|s| s.is_empty()) {
                    return Ok(Vec::new());
                }
                let sql = bulk(
                    Self::BACKEND,
                    format!(
                        "SELECT school_year, status,
                                CASE WHEN status = 'revoked' THEN revoke_reason END AS reason,
                                COUNT(*) AS vouchers
                         FROM vouchers WHERE 1 = 1{}
                         GROUP BY school_year, status,
                                  CASE WHEN status = 'revoked' THEN revoke_reason END",
                        scope("school_code", schools)
                    ),
                );
                let mut q = sqlx::query_as(&sql);
                for code in schools.unwrap_or_default() {
                    q = q.bind(code);
                }
                let mut rows: Vec<VoucherStateCount> = q.fetch_all(&self.pool).await?;
                // In Rust: the two databases sort NULL apart.
                rows.sort_by(|a, b| {
                    let key = |r: &VoucherStateCount| {
                        (r.school_year.clone(), r.status.clone(), r.reason.clone())
                    };
                    key(a).cmp(&key(b))
                });
                Ok(rows)
            }

            async fn erased_pupil_count(&self, schools: Option<&[i64]>) -> StoreResult<i64> {
                if schools.is_some_and(|s| s.is_empty()) {
                    return Ok(0);
                }
                let sql = bulk(
                    Self::BACKEND,
                    format!(
                        "SELECT COUNT(*) FROM pupils WHERE erased_at IS NOT NULL{}",
                        scope("school_code", schools)
                    ),
                );
                let mut q = sqlx::query_scalar(&sql);
                for code in schools.unwrap_or_default() {
                    q = q.bind(code);
                }
                Ok(q.fetch_one(&self.pool).await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_state_counts);
