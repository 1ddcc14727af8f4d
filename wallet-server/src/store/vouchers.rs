//! Vouchers: one per pupil per school year (a unique constraint), with a change sequence that
//! terminals follow with their snapshot cursor.
//!
//! The writes here are primitives without rules: which vouchers are made, from which states a
//! change applies and what it leads to are decided by [`crate::lifecycle`], the one caller.
//! Each write reserves its change numbers and writes an audit row per voucher it changed, in
//! the same transaction as the change.

use super::sms::{insert_sms_sql, NewSms};
use super::sql::{begin_write, bulk, placeholders, values_list, CHUNK};
use super::StoreResult;
use async_trait::async_trait;
use chrono::NaiveDate;
use shared::wire::VoucherStatus;
use sqlx::FromRow;
use std::collections::HashMap;
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

/// The audit row written for each voucher a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditNote<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
}

/// New vouchers of one school year, as the lifecycle makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issue<'a> {
    pub school_year: &'a str,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub status: VoucherStatus,
    pub audit: AuditNote<'a>,
}

/// A voucher to make for a pupil, and the SMS that goes out only if it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVoucher {
    pub pupil_id: i64,
    pub school_code: i64,
    pub sms: Option<NewSms>,
}

/// The state a change leads to (the columns that go with it follow from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewState {
    /// `active`; `activated_at` set the first time.
    Active,
    /// `revoked`, with `revoked_at` and the reason.
    Revoked,
    /// `expired`.
    Expired,
    /// The state before the revocation: `active` if the voucher was ever activated (activation
    /// is the only way to `active`, and `activated_at` is never cleared), else `issued`;
    /// `revoked_at` and the reason cleared.
    BeforeRevocation,
}

/// A change of state as the lifecycle decided it; applied to the vouchers still in `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange<'a> {
    pub from: &'a [VoucherStatus],
    pub to: NewState,
    /// Stored as `revoke_reason` by [`NewState::Revoked`].
    pub reason: &'a str,
    pub audit: AuditNote<'a>,
}

/// A voucher a roster import moves to its pupil's new school (not a change of state: the
/// voucher keeps its state and its id, only the school it is served at changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherMove {
    pub voucher_id: String,
    pub pupil_id: i64,
    pub school_year: String,
    pub from_school: i64,
    pub to_school: i64,
}

/// Which vouchers a change looks at (at most [`CHUNK`] per call inside a transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    Ids(&'a [String]),
    /// Every voucher of these pupils.
    OfPupils(&'a [i64]),
}

fn status_list(states: &[VoucherStatus]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `UPDATE` of a change: `SET` with its parameters first, then `change_seq`, then the ids.
fn change_sql(change: &StateChange<'_>, which: Which<'_>) -> String {
    let (set, params) = match change.to {
        NewState::Active => (
            "status = 'active', activated_at = COALESCE(activated_at, $1)",
            1,
        ),
        NewState::Revoked => ("status = 'revoked', revoked_at = $1, revoke_reason = $2", 2),
        NewState::Expired => ("status = 'expired'", 0),
        NewState::BeforeRevocation => (
            "status = CASE WHEN activated_at IS NULL THEN 'issued' ELSE 'active' END,
             revoked_at = NULL, revoke_reason = NULL",
            0,
        ),
    };
    let (column, n) = match which {
        Which::Ids(ids) => ("id", ids.len()),
        Which::OfPupils(pupils) => ("pupil_id", pupils.len()),
    };
    format!(
        "UPDATE vouchers SET {set}, change_seq = ${seq}
         WHERE {column} IN ({ids}) AND status IN ({from})
         RETURNING {VOUCHER_COLUMNS}",
        seq = params + 1,
        ids = placeholders(n, params + 2),
        from = status_list(change.from),
    )
}

#[async_trait]
pub trait VoucherStore {
    /// Makes the vouchers of `issue` for pupils without one that school year (the unique
    /// `(pupil_id, school_year)` key skips the others, also when another instance made theirs
    /// meanwhile), with an audit row each and, for each one made, its SMS. One transaction per
    /// [`CHUNK`] rows. Returns the vouchers made.
    async fn insert_vouchers(
        &self,
        rows: &[NewVoucher],
        issue: &Issue<'_>,
        now: i64,
    ) -> StoreResult<Vec<Voucher>>;
    /// Applies `change` to the vouchers of `which` that are in one of its `from` states, with
    /// an audit row each, in one transaction; returns the vouchers changed.
    async fn change_vouchers(
        &self,
        which: Which<'_>,
        change: &StateChange<'_>,
        now: i64,
    ) -> StoreResult<Vec<Voucher>>;
    /// Ids of up to `limit` vouchers in one of `states` whose validity ended before `day`.
    async fn vouchers_ended_before(
        &self,
        day: NaiveDate,
        states: &[VoucherStatus],
        limit: i64,
    ) -> StoreResult<Vec<String>>;
    async fn voucher(&self, id: Uuid) -> StoreResult<Option<Voucher>>;
    /// The last voucher change number handed out: it moves with every change of a voucher's
    /// state, school or pupil data, and of the phone that may see it.
    async fn voucher_change_number(&self) -> StoreResult<i64>;
    async fn voucher_for_pupil(
        &self,
        pupil_id: i64,
        school_year: &str,
    ) -> StoreResult<Option<Voucher>>;
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

            /// One audit row per voucher, with the same note.
            async fn audit_vouchers(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                ids: &[&str],
                note: &AuditNote<'_>,
                now: i64,
            ) -> StoreResult<()> {
                for chunk in ids.chunks(CHUNK) {
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES {}",
                            values_list(chunk.len(), 5, 1)
                        ),
                    );
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind(now).bind(note.actor).bind(note.action).bind(*id).bind(note.detail);
                    }
                    q.execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// [`VoucherStore::change_vouchers`] inside `tx` for at most [`CHUNK`] vouchers,
            /// all under change number `seq`: for writes that commit with other changes (a
            /// roster import revoking the vouchers of the pupils it removes).
            pub(crate) async fn change_vouchers_in(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                which: Which<'_>,
                change: &StateChange<'_>,
                seq: i64,
                now: i64,
            ) -> StoreResult<Vec<Voucher>> {
                let sql = bulk(Self::BACKEND, change_sql(change, which));
                let mut q = sqlx::query_as::<_, Voucher>(&sql);
                match change.to {
                    NewState::Active => q = q.bind(now),
                    NewState::Revoked => q = q.bind(now).bind(change.reason),
                    NewState::Expired | NewState::BeforeRevocation => {}
                }
                q = q.bind(seq);
                match which {
                    Which::Ids(ids) => {
                        for id in ids {
                            q = q.bind(id);
                        }
                    }
                    Which::OfPupils(pupils) => {
                        for id in pupils {
                            q = q.bind(id);
                        }
                    }
                }
                let changed = q.fetch_all(&mut **tx).await?;
                let ids: Vec<&str> = changed.iter().map(|v| v.id.as_str()).collect();
                Self::audit_vouchers(tx, &ids, &change.audit, now).await?;
                Ok(changed)
            }
        }

        impl $t {
            /// Moves each voucher of `moves` still at its `from_school` (and not expired) to
            /// its `to_school` under change number `seq`, inside `tx`: a `voucher_moves` row
            /// (the old school's terminals drop the voucher by it; the school pages list it)
            /// and an audit row (`detail` of `audit` with both schools' BINs) each. Returns
            /// how many moved.
            pub(crate) async fn move_vouchers_in(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                moves: &[VoucherMove],
                audit: &AuditNote<'_>,
                seq: i64,
                now: i64,
            ) -> StoreResult<usize> {
                let mut moved = 0;
                for m in moves {
                    let done = sqlx::query(
                        "UPDATE vouchers SET school_code = $1, change_seq = $2
                         WHERE id = $3 AND school_code = $4 AND status <> 'expired'",
                    )
                    .bind(m.to_school)
                    .bind(seq)
                    .bind(&m.voucher_id)
                    .bind(m.from_school)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if done == 0 {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO voucher_moves (voucher_id, pupil_id, school_year, from_school,
                            to_school, moved_at, change_seq)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&m.voucher_id)
                    .bind(m.pupil_id)
                    .bind(&m.school_year)
                    .bind(m.from_school)
                    .bind(m.to_school)
                    .bind(now)
                    .bind(seq)
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO audit_log (at, actor, action, subject, detail)
                         SELECT $1, $2, $3, $4, 'from ' || f.bin || ' to ' || t.bin || ': ' || $5
                         FROM schools f, schools t WHERE f.code = $6 AND t.code = $7",
                    )
                    .bind(now)
                    .bind(audit.actor)
                    .bind(audit.action)
                    .bind(&m.voucher_id)
                    .bind(audit.detail)
                    .bind(m.from_school)
                    .bind(m.to_school)
                    .execute(&mut **tx)
                    .await?;
                    moved += 1;
                }
                Ok(moved)
            }
        }

        #[async_trait]
        impl VoucherStore for $t {
            async fn insert_vouchers(
                &self,
                rows: &[NewVoucher],
                issue: &Issue<'_>,
                now: i64,
            ) -> StoreResult<Vec<Voucher>> {
                let mut made = Vec::new();
                for chunk in rows.chunks(CHUNK) {
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
                             ON CONFLICT (pupil_id, school_year) DO NOTHING
                             RETURNING {VOUCHER_COLUMNS}",
                            values_list(chunk.len(), 9, 1)
                        ),
                    );
                    let mut q = sqlx::query_as::<_, Voucher>(&sql);
                    for (i, row) in chunk.iter().enumerate() {
                        q = q
                            .bind(Uuid::new_v4().to_string())
                            .bind(row.pupil_id)
                            .bind(row.school_code)
                            .bind(issue.school_year)
                            .bind(issue.status.as_str())
                            .bind(issue.valid_from.to_string())
                            .bind(issue.valid_to.to_string())
                            .bind(now)
                            .bind(first + i as i64);
                    }
                    let mut inserted = q.fetch_all(&mut *tx).await?;
                    inserted.sort_by_key(|v| v.change_seq);
                    let ids: Vec<&str> = inserted.iter().map(|v| v.id.as_str()).collect();
                    Self::audit_vouchers(&mut tx, &ids, &issue.audit, now).await?;
                    let sms_of: HashMap<i64, &NewSms> = chunk
                        .iter()
                        .filter_map(|r| r.sms.as_ref().map(|s| (r.pupil_id, s)))
                        .collect();
                    let outgoing: Vec<&NewSms> = inserted
                        .iter()
                        .filter_map(|v| sms_of.get(&v.pupil_id).copied())
                        .collect();
                    for part in outgoing.chunks(CHUNK) {
                        let sql = bulk(Self::BACKEND, insert_sms_sql(part.len()));
                        $crate::bind_sms!(sqlx::query(&sql), part.iter().copied(), now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    made.extend(inserted);
                }
                Ok(made)
            }

            async fn change_vouchers(
                &self,
                which: Which<'_>,
                change: &StateChange<'_>,
                now: i64,
            ) -> StoreResult<Vec<Voucher>> {
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                let seq = Self::reserve_voucher_changes(&mut tx, 1).await?;
                let mut changed = Vec::new();
                match which {
                    Which::Ids(ids) => {
                        for chunk in ids.chunks(CHUNK) {
                            changed.extend(
                                Self::change_vouchers_in(&mut tx, Which::Ids(chunk), change, seq, now)
                                    .await?,
                            );
                        }
                    }
                    Which::OfPupils(pupils) => {
                        for chunk in pupils.chunks(CHUNK) {
                            changed.extend(
                                Self::change_vouchers_in(&mut tx, Which::OfPupils(chunk), change, seq, now)
                                    .await?,
                            );
                        }
                    }
                }
                if changed.is_empty() {
                    // Nothing to change: leave the counter as it was.
                    tx.rollback().await?;
                } else {
                    tx.commit().await?;
                }
                Ok(changed)
            }

            async fn vouchers_ended_before(
                &self,
                day: NaiveDate,
                states: &[VoucherStatus],
                limit: i64,
            ) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(&format!(
                    // No ORDER BY: with it both backends sort every voucher still live
                    // before taking the first batch, once per batch (minutes at pilot scale);
                    // without it the (status, valid_to) index is read only up to the limit.
                    "SELECT id FROM vouchers WHERE status IN ({}) AND valid_to < $1 LIMIT $2",
                    status_list(states)
                ))
                .bind(day.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn voucher(&self, id: Uuid) -> StoreResult<Option<Voucher>> {
                Ok(sqlx::query_as(&format!("SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn voucher_change_number(&self) -> StoreResult<i64> {
                Ok(
                    sqlx::query_scalar::<_, i64>("SELECT value FROM counters WHERE name = $1")
                        .bind(VOUCHER_CHANGE)
                        .fetch_optional(&self.pool)
                        .await?
                        .unwrap_or(0),
                )
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
        }
    };
}
crate::impl_for_backends!(impl_vouchers);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_parameters_once_in_order() {
        let note = AuditNote {
            actor: "a",
            action: "b",
            detail: "c",
        };
        for (to, first_id) in [
            (NewState::Active, 3),
            (NewState::Revoked, 4),
            (NewState::Expired, 2),
            (NewState::BeforeRevocation, 2),
        ] {
            let change = StateChange {
                from: &[VoucherStatus::Issued, VoucherStatus::Active],
                to,
                reason: "r",
                audit: note,
            };
            let ids = ["x".to_owned(), "y".to_owned()];
            let sql = change_sql(&change, Which::Ids(&ids));
            assert!(
                sql.contains(&format!("id IN (${first_id}, ${})", first_id + 1)),
                "{sql}"
            );
            assert!(sql.contains("status IN ('issued', 'active')"), "{sql}");
            // Every parameter once, in order (what `bulk` needs on SQLite).
            let sqlite = bulk(super::super::Backend::Sqlite, sql);
            assert_eq!(sqlite.matches('?').count(), first_id + 1);
        }
    }
}
