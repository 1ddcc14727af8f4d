//! Withdrawal of consent (DESIGN §10): a `3#2` from the number a consent was given on, while
//! its pupils hold this school year's voucher. The consents become `withdrawn` (with their
//! transition), the vouchers change as the lifecycle decided (revoked, `withdrawn`), and the
//! confirmation SMS is queued — one transaction, so a withdrawal is never half done.
//!
//! Which consents: `consented` ones of the school year whose request went to `phone` (the
//! number the parent answered from), of pupils still listed, whose voucher of the year is
//! `issued` or `active` — or not made yet (a consent the tick still owes a voucher for is
//! withdrawn too, so no voucher is made after the parent said no). A consent whose voucher was
//! revoked for another reason, or has expired, is left as it is: there is nothing to stop.

use super::consent::{AnswerSms, ConsentTarget, TARGET_SELECT};
use super::sql::{begin_write, bulk, placeholders, CHUNK};
use super::vouchers::{StateChange, Voucher, Which};
use super::StoreResult;
use async_trait::async_trait;

/// What a withdrawal changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withdrawal {
    /// The consents now `withdrawn`, with what the confirmation needs (children's names).
    pub consents: Vec<ConsentTarget>,
    /// The vouchers the change applied to.
    pub vouchers: Vec<Voucher>,
}

#[async_trait]
pub trait WithdrawalStore {
    /// Withdraws the consents of `school_year` given on `phone` (see the module), applies
    /// `revoke` to their vouchers of that year, and writes the one SMS `sms` makes of the
    /// consents withdrawn — all in one transaction. Nothing to withdraw: nothing is written.
    async fn withdraw_consents(
        &self,
        school_year: &str,
        phone: &str,
        now: i64,
        detail: &str,
        revoke: &StateChange<'_>,
        sms: AnswerSms<'_>,
    ) -> StoreResult<Withdrawal>;

    /// Consents of `school_year` given on `phone` and withdrawn, of pupils still listed (what a
    /// repeated `3#2` is answered with).
    async fn withdrawn_consents(
        &self,
        school_year: &str,
        phone: &str,
    ) -> StoreResult<Vec<ConsentTarget>>;
}

macro_rules! impl_withdrawal {
    ($t:ty) => {
        #[async_trait]
        impl WithdrawalStore for $t {
            async fn withdraw_consents(
                &self,
                school_year: &str,
                phone: &str,
                now: i64,
                detail: &str,
                revoke: &StateChange<'_>,
                sms: AnswerSms<'_>,
            ) -> StoreResult<Withdrawal> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                // The status in the WHERE makes a second `3#2` racing this one find nothing:
                // PostgreSQL re-checks it on the row it waited for.
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE consents SET status = 'withdrawn', ended_at = $1, updated_at = $1
                     WHERE phone = $2 AND school_year = $3 AND status = 'consented'
                       AND EXISTS (SELECT 1 FROM pupils p
                                   WHERE p.id = consents.pupil_id AND p.removed_at IS NULL)
                       AND NOT EXISTS (SELECT 1 FROM vouchers v
                                       WHERE v.pupil_id = consents.pupil_id
                                         AND v.school_year = $3
                                         AND v.status NOT IN ('issued', 'active'))
                     RETURNING id",
                )
                .bind(now)
                .bind(phone)
                .bind(school_year)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(Withdrawal::default());
                }
                let consents = Self::record_changes(&mut tx, &ids, now, Some(detail)).await?;
                let pupils: Vec<i64> = consents.iter().map(|c| c.pupil_id).collect();
                let mut voucher_ids: Vec<String> = Vec::new();
                for chunk in pupils.chunks(CHUNK) {
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "SELECT id FROM vouchers WHERE school_year = $1 AND pupil_id IN ({})
                             ORDER BY id",
                            placeholders(chunk.len(), 2)
                        ),
                    );
                    let mut q = sqlx::query_scalar(&sql).bind(school_year);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    voucher_ids.extend(q.fetch_all(&mut *tx).await?);
                }
                let mut vouchers = Vec::new();
                if !voucher_ids.is_empty() {
                    let seq = Self::reserve_voucher_changes(&mut tx, 1).await?;
                    for chunk in voucher_ids.chunks(CHUNK) {
                        vouchers.extend(
                            Self::change_vouchers_in(&mut tx, Which::Ids(chunk), revoke, seq, now)
                                .await?,
                        );
                    }
                }
                if let Some(answer) = sms(&consents) {
                    Self::insert_sms(&mut tx, std::slice::from_ref(&answer), now).await?;
                }
                tx.commit().await?;
                Ok(Withdrawal { consents, vouchers })
            }

            async fn withdrawn_consents(
                &self,
                school_year: &str,
                phone: &str,
            ) -> StoreResult<Vec<ConsentTarget>> {
                Ok(sqlx::query_as(&format!(
                    "{TARGET_SELECT}
                     WHERE c.phone = $1 AND c.school_year = $2 AND c.status = 'withdrawn'
                       AND p.removed_at IS NULL
                     ORDER BY c.id"
                ))
                .bind(phone)
                .bind(school_year)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_withdrawal);
