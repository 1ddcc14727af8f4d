//! Applying a validated roster in one transaction: schools, pupils (multi-row upserts; rows that
//! did not change are not written), what becomes of the vouchers of pupils listed with changed
//! data (moved to their new school, revoked as no longer eligible, restored; each voucher as
//! the lifecycle plans it), and in snapshot mode the removal of pupils the file no longer
//! lists, with the change of their vouchers the lifecycle decided (revoked, audited).

use super::roster::{NewPupil, Pupil, PUPIL_COLUMNS};
use super::sms::{insert_sms_sql, NewSms};
use super::sql::{begin_write, bulk, placeholders, values_list, CHUNK};
use super::vouchers::{AuditNote, StateChange, Voucher, VoucherMove, Which, VOUCHER_COLUMNS};
use super::StoreResult;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSchool {
    pub bin: String,
    pub name: String,
}

/// A pupil row: `school` indexes [`RosterBatch::schools`]; `pupil.school_code` is ignored (the
/// code is known only once the school is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPupil {
    pub school: usize,
    pub pupil: NewPupil,
    /// The file line, for what the import reports of this row.
    pub line: u64,
}

/// A row whose card another pupil of the same school already holds: the earlier holder keeps
/// it, the row is imported without the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardConflict {
    pub line: u64,
    pub card_number: String,
}

/// A change of state a listed pupil's voucher gets from the import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedChange {
    /// [`ListedRules::revoke`], with the parent's SMS.
    Revoke,
    /// [`ListedRules::restore`].
    Restore,
}

/// What the import does with one voucher of a pupil it lists with changed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoucherPlan {
    /// The voucher follows the pupil to the school the file names.
    pub follows: bool,
    pub change: Option<ListedChange>,
}

/// Decides a voucher's plan from the voucher and whether its pupil is eligible by the file.
pub type PlanFn<'a> = &'a (dyn Fn(&Voucher, bool) -> VoucherPlan + Send + Sync);
/// The SMS to the parent of a pupil (as the file gives it) at a school (its name) whose
/// voucher [`ListedRules::revoke`] revoked; `None`: no SMS.
pub type RevokedSmsFn<'a> = &'a (dyn Fn(&NewPupil, &str) -> Option<NewSms> + Send + Sync);

/// The lifecycle's rules for the vouchers of pupils the file lists with changed data
/// ([`crate::lifecycle::listed_plan`]).
pub struct ListedRules<'a> {
    pub plan: PlanFn<'a>,
    pub revoke: StateChange<'a>,
    pub restore: StateChange<'a>,
    pub revoked_sms: RevokedSmsFn<'a>,
    /// The audit of each move (`detail`: the file; the schools' BINs are added).
    pub moved: AuditNote<'a>,
}

pub struct RosterBatch<'a> {
    pub schools: &'a [ImportSchool],
    pub pupils: &'a [ImportPupil],
    /// What becomes of the vouchers of the pupils listed with changed data.
    pub listed: ListedRules<'a>,
    /// Also remove the listed schools' pupils missing from the file, applying `removal` to
    /// their vouchers.
    pub snapshot: bool,
    /// What a removal does to the pupil's vouchers ([`crate::lifecycle::removal`]).
    pub removal: StateChange<'a>,
    /// Every IIN the file mentions, rejected rows included: a snapshot never removes a pupil
    /// whose row was only refused for a typo elsewhere.
    pub listed_iins: &'a HashSet<String>,
    /// Who imported (audit `actor`) and from where (audit `subject`).
    pub actor: &'a str,
    pub source: &'a str,
    /// Rows refused by validation (for the audit entry).
    pub rejected: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub schools_created: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    pub vouchers_revoked: usize,
    /// Vouchers that followed their pupil to another school.
    pub vouchers_moved: usize,
    /// Vouchers revoked because the pupil is no longer eligible.
    pub vouchers_not_eligible: usize,
    /// Vouchers restored: the pupil listed again, or eligible again.
    pub vouchers_restored: usize,
    /// Rows imported without their card because another pupil of the school holds it.
    pub card_conflicts: Vec<CardConflict>,
}

/// Called with the number of pupil rows applied so far.
pub type Progress<'a> = &'a (dyn Fn(usize) + Send + Sync);

const IMPORT_CACHE: &str = "PRAGMA cache_size = -32768";
const DEFAULT_CACHE: &str = "PRAGMA cache_size = -2000";

#[async_trait]
pub trait ImportStore {
    /// Applies the batch in one transaction: all of it or (on error) nothing.
    async fn apply_roster(
        &self,
        batch: &RosterBatch<'_>,
        now: i64,
        progress: Progress<'_>,
    ) -> StoreResult<ImportCounts>;
}

/// The stored row already says what the file says (and the pupil is not marked removed).
fn unchanged(old: &Pupil, school_code: i64, new: &NewPupil) -> bool {
    old.removed_at.is_none()
        && old.school_code == school_code
        && old.last_name == new.last_name
        && old.first_name == new.first_name
        && old.middle_name == new.middle_name
        && old.grade == new.grade
        && old.class_letter == new.class_letter
        && old.receives_asp == new.receives_asp
        && old.per_capita_income_kzt == new.per_capita_income_kzt
        && old.orphan == new.orphan
        && old.mother_name == new.mother_name
        && old.mother_phone == new.mother_phone
        && old.father_name == new.father_name
        && old.father_phone == new.father_phone
        && old.guardian_name == new.guardian_name
        && old.guardian_phone == new.guardian_phone
        && old.card_number == new.card_number
        && old.lang == new.lang
        && old.category == new.category
        && old.contact_phone == new.contact_phone
        && old.contact_name == new.contact_name
}

/// A change a terminal's snapshot shows: the display name, class, card, the pupil listed again
/// after removal, or a move to another school (the vouchers that follow the pupil get the
/// import's change number again when they move) — or a new priority phone: the change number is
/// also what tells the wallet's signing cache (`wallet::session::OwnershipCache`) that the
/// phone allowed to sign for the voucher may have changed.
fn voucher_visible_change(old: &Pupil, school_code: i64, new: &NewPupil) -> bool {
    old.removed_at.is_some()
        || old.school_code != school_code
        || old.last_name != new.last_name
        || old.first_name != new.first_name
        || old.grade != new.grade
        || old.class_letter != new.class_letter
        || old.card_number != new.card_number
        || old.contact_phone != new.contact_phone
}

const PUPIL_VALUE_COLUMNS: usize = 23;

fn upsert_pupils_sql(rows: usize) -> String {
    let values = values_list(rows, PUPIL_VALUE_COLUMNS, 1);
    format!(
        "INSERT INTO pupils (created_at, updated_at, iin, school_code, last_name, first_name,
            middle_name, grade, class_letter, receives_asp, per_capita_income_kzt, orphan,
            mother_name, mother_phone, father_name, father_phone, guardian_name, guardian_phone,
            card_number, lang, category, contact_phone, contact_name)
         VALUES {values}
         ON CONFLICT (iin) DO UPDATE SET school_code = excluded.school_code,
            last_name = excluded.last_name, first_name = excluded.first_name,
            middle_name = excluded.middle_name, grade = excluded.grade,
            class_letter = excluded.class_letter, receives_asp = excluded.receives_asp,
            per_capita_income_kzt = excluded.per_capita_income_kzt, orphan = excluded.orphan,
            mother_name = excluded.mother_name, mother_phone = excluded.mother_phone,
            father_name = excluded.father_name, father_phone = excluded.father_phone,
            guardian_name = excluded.guardian_name, guardian_phone = excluded.guardian_phone,
            card_number = excluded.card_number, lang = excluded.lang,
            category = excluded.category, contact_phone = excluded.contact_phone,
            contact_name = excluded.contact_name, removed_at = NULL,
            updated_at = excluded.updated_at"
    )
}

/// A pupil known before and listed with changed data, as the file gives them.
struct Relisted<'a> {
    pupil_id: i64,
    school_code: i64,
    pupil: &'a NewPupil,
}

macro_rules! impl_import {
    ($t:ty) => {
        impl $t {
            /// Applies the lifecycle's plan to every voucher of the `relisted` pupils (at most
            /// [`CHUNK`]): moves, then revocations with their SMS, then restorations, all
            /// under the import's change number (reserved here if it was not yet).
            async fn follow_vouchers(
                tx: &mut sqlx::Transaction<'static, <$t as super::sql::HasDb>::Db>,
                batch: &RosterBatch<'_>,
                relisted: &[Relisted<'_>],
                names: &HashMap<i64, &str>,
                change_seq: &mut Option<i64>,
                counts: &mut ImportCounts,
                now: i64,
            ) -> StoreResult<()> {
                let lock = if Self::BACKEND == super::Backend::Postgres { " FOR UPDATE" } else { "" };
                let sql = bulk(
                    Self::BACKEND,
                    format!(
                        "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE pupil_id IN ({})
                         ORDER BY pupil_id, school_year{lock}",
                        placeholders(relisted.len(), 1)
                    ),
                );
                let mut q = sqlx::query_as::<_, Voucher>(&sql);
                for r in relisted {
                    q = q.bind(r.pupil_id);
                }
                let vouchers = q.fetch_all(&mut **tx).await?;
                let of: HashMap<i64, &Relisted<'_>> =
                    relisted.iter().map(|r| (r.pupil_id, r)).collect();
                let mut moves: Vec<VoucherMove> = Vec::new();
                let mut revoke: Vec<String> = Vec::new();
                let mut restore: Vec<String> = Vec::new();
                for v in &vouchers {
                    let Some(r) = of.get(&v.pupil_id) else { continue };
                    let plan = (batch.listed.plan)(v, r.pupil.category.is_eligible());
                    if plan.follows && v.school_code != r.school_code {
                        moves.push(VoucherMove {
                            voucher_id: v.id.clone(),
                            pupil_id: v.pupil_id,
                            school_year: v.school_year.clone(),
                            from_school: v.school_code,
                            to_school: r.school_code,
                        });
                    }
                    match plan.change {
                        Some(ListedChange::Revoke) => revoke.push(v.id.clone()),
                        Some(ListedChange::Restore) => restore.push(v.id.clone()),
                        None => {}
                    }
                }
                if moves.is_empty() && revoke.is_empty() && restore.is_empty() {
                    return Ok(());
                }
                let seq = match *change_seq {
                    Some(seq) => seq,
                    None => *change_seq.insert(Self::reserve_voucher_changes(tx, 1).await?),
                };
                // Moved first: a voucher revoked in the same import is revoked at its new school.
                counts.vouchers_moved +=
                    Self::move_vouchers_in(tx, &moves, &batch.listed.moved, seq, now).await?;
                for ids in revoke.chunks(CHUNK) {
                    let revoked =
                        Self::change_vouchers_in(tx, Which::Ids(ids), &batch.listed.revoke, seq, now)
                            .await?;
                    counts.vouchers_not_eligible += revoked.len();
                    // Only vouchers this import revoked are told of: a second import of the same
                    // file finds them revoked and sends nothing.
                    let sms: Vec<NewSms> = revoked
                        .iter()
                        .filter_map(|v| {
                            let r = of.get(&v.pupil_id)?;
                            let school = names.get(&r.school_code).copied().unwrap_or_default();
                            (batch.listed.revoked_sms)(r.pupil, school)
                        })
                        .collect();
                    if !sms.is_empty() {
                        let sql = bulk(Self::BACKEND, insert_sms_sql(sms.len()));
                        $crate::bind_sms!(sqlx::query(&sql), sms.iter(), now)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
                for ids in restore.chunks(CHUNK) {
                    counts.vouchers_restored +=
                        Self::change_vouchers_in(tx, Which::Ids(ids), &batch.listed.restore, seq, now)
                            .await?
                            .len();
                }
                Ok(())
            }
        }

        #[async_trait]
        impl ImportStore for $t {
            async fn apply_roster(
                &self,
                batch: &RosterBatch<'_>,
                now: i64,
                progress: Progress<'_>,
            ) -> StoreResult<ImportCounts> {
                let mut counts = ImportCounts::default();
                let mut tx = self.pool.begin_with(begin_write(Self::BACKEND)).await?;
                if Self::BACKEND == super::Backend::Sqlite {
                    // A roster touches every index at random places; with SQLite's default 2 MB
                    // page cache most of those reads miss. Reset before the connection is reused.
                    sqlx::query(IMPORT_CACHE).execute(&mut *tx).await?;
                }

                let mut codes = Vec::with_capacity(batch.schools.len());
                for s in batch.schools {
                    let existing: Option<(i64, String)> =
                        sqlx::query_as("SELECT code, name FROM schools WHERE bin = $1")
                            .bind(&s.bin)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let code = match existing {
                        Some((code, name)) => {
                            if name != s.name {
                                sqlx::query("UPDATE schools SET name = $1, updated_at = $2 WHERE code = $3")
                                    .bind(&s.name)
                                    .bind(now)
                                    .bind(code)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            code
                        }
                        None => {
                            counts.schools_created += 1;
                            sqlx::query_scalar(
                                "INSERT INTO schools (bin, name, created_at, updated_at)
                                 VALUES ($1, $2, $3, $3) RETURNING code",
                            )
                            .bind(&s.bin)
                            .bind(&s.name)
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?
                        }
                    };
                    codes.push(code);
                }

                let names: HashMap<i64, &str> = codes
                    .iter()
                    .zip(batch.schools)
                    .map(|(&code, s)| (code, s.name.as_str()))
                    .collect();
                let mut done = 0;
                // One change number for every voucher this import changes as terminals see it.
                let mut change_seq: Option<i64> = None;
                for chunk in batch.pupils.chunks(CHUNK) {
                    let sql = bulk(
                        Self::BACKEND,
                        format!(
                            "SELECT {PUPIL_COLUMNS} FROM pupils WHERE iin IN ({})",
                            placeholders(chunk.len(), 1)
                        ),
                    );
                    let mut q = sqlx::query_as::<_, Pupil>(&sql);
                    for row in chunk {
                        q = q.bind(&row.pupil.iin);
                    }
                    let existing: HashMap<String, Pupil> = q
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(|p| (p.iin.clone(), p))
                        .collect();
                    // A card names one pupil at its school: whoever holds it keeps it.
                    let cards: Vec<&str> = chunk
                        .iter()
                        .filter_map(|r| r.pupil.card_number.as_deref())
                        .collect();
                    let holders: HashMap<(i64, String), String> = if cards.is_empty() {
                        HashMap::new()
                    } else {
                        let sql = bulk(
                            Self::BACKEND,
                            format!(
                                "SELECT school_code, card_number, iin FROM pupils
                                 WHERE removed_at IS NULL AND card_number IN ({})",
                                placeholders(cards.len(), 1)
                            ),
                        );
                        let mut q = sqlx::query_as::<_, (i64, String, String)>(&sql);
                        for c in &cards {
                            q = q.bind(*c);
                        }
                        q.fetch_all(&mut *tx)
                            .await?
                            .into_iter()
                            .map(|(school, card, iin)| ((school, card), iin))
                            .collect()
                    };
                    let mut carded: Vec<NewPupil> = Vec::new();
                    let mut rows: Vec<(i64, &NewPupil)> = Vec::with_capacity(chunk.len());
                    let mut conflicted: Vec<(i64, usize)> = Vec::new();
                    for row in chunk {
                        let code = codes[row.school];
                        let taken = row.pupil.card_number.as_ref().is_some_and(|card| {
                            holders
                                .get(&(code, card.clone()))
                                .is_some_and(|holder| *holder != row.pupil.iin)
                        });
                        if taken {
                            let card = row.pupil.card_number.clone().unwrap_or_default();
                            counts.card_conflicts.push(CardConflict {
                                line: row.line,
                                card_number: card,
                            });
                            let mut p = row.pupil.clone();
                            p.card_number = None;
                            conflicted.push((code, carded.len()));
                            carded.push(p);
                        } else {
                            rows.push((code, &row.pupil));
                        }
                    }
                    rows.extend(conflicted.iter().map(|&(code, i)| (code, &carded[i])));
                    let mut writes = Vec::with_capacity(chunk.len());
                    let mut seen_changed: Vec<i64> = Vec::new();
                    // Pupils known before whose data changed: their vouchers may follow them,
                    // lose or regain their validity. Unchanged rows cannot change a voucher.
                    let mut relisted: Vec<Relisted<'_>> = Vec::new();
                    for (code, pupil) in rows {
                        match existing.get(&pupil.iin) {
                            None => {
                                counts.added += 1;
                                writes.push((code, pupil));
                            }
                            Some(old) if unchanged(old, code, pupil) => counts.unchanged += 1,
                            Some(old) => {
                                counts.updated += 1;
                                writes.push((code, pupil));
                                if voucher_visible_change(old, code, pupil) {
                                    seen_changed.push(old.id);
                                }
                                relisted.push(Relisted {
                                    pupil_id: old.id,
                                    school_code: code,
                                    pupil,
                                });
                            }
                        }
                    }
                    if !writes.is_empty() {
                        let sql = bulk(Self::BACKEND, upsert_pupils_sql(writes.len()));
                        let mut q = sqlx::query(&sql);
                        for &(code, p) in &writes {
                            q = q
                                .bind(now)
                                .bind(now)
                                .bind(&p.iin)
                                .bind(code)
                                .bind(&p.last_name)
                                .bind(&p.first_name)
                                .bind(&p.middle_name)
                                .bind(p.grade)
                                .bind(&p.class_letter)
                                .bind(p.receives_asp)
                                .bind(p.per_capita_income_kzt)
                                .bind(p.orphan)
                                .bind(&p.mother_name)
                                .bind(&p.mother_phone)
                                .bind(&p.father_name)
                                .bind(&p.father_phone)
                                .bind(&p.guardian_name)
                                .bind(&p.guardian_phone)
                                .bind(&p.card_number)
                                .bind(&p.lang)
                                .bind(p.category.as_str())
                                .bind(&p.contact_phone)
                                .bind(&p.contact_name);
                        }
                        q.execute(&mut *tx).await?;
                    }
                    if !seen_changed.is_empty() {
                        // Terminals hold names, class and card of their school's vouchers and
                        // re-read only rows whose change_seq passed their cursor.
                        let seq = match change_seq {
                            Some(seq) => seq,
                            None => {
                                let seq = Self::reserve_voucher_changes(&mut tx, 1).await?;
                                *change_seq.insert(seq)
                            }
                        };
                        let sql = bulk(
                            Self::BACKEND,
                            format!(
                                "UPDATE vouchers SET change_seq = $1 WHERE pupil_id IN ({})",
                                placeholders(seen_changed.len(), 2)
                            ),
                        );
                        let mut q = sqlx::query(&sql).bind(seq);
                        for id in &seen_changed {
                            q = q.bind(id);
                        }
                        q.execute(&mut *tx).await?;
                    }
                    if !relisted.is_empty() {
                        Self::follow_vouchers(
                            &mut tx,
                            batch,
                            &relisted,
                            &names,
                            &mut change_seq,
                            &mut counts,
                            now,
                        )
                        .await?;
                    }
                    done += chunk.len();
                    progress(done);
                }

                if batch.snapshot {
                    let mut missing: Vec<i64> = Vec::new();
                    for code in &codes {
                        let listed: Vec<(i64, String)> = sqlx::query_as(
                            "SELECT id, iin FROM pupils WHERE school_code = $1 AND removed_at IS NULL",
                        )
                        .bind(code)
                        .fetch_all(&mut *tx)
                        .await?;
                        missing.extend(
                            listed
                                .into_iter()
                                .filter(|(_, iin)| !batch.listed_iins.contains(iin))
                                .map(|(id, _)| id),
                        );
                    }
                    counts.removed = missing.len();
                    let seq: Option<i64> = if missing.is_empty() {
                        None
                    } else {
                        // One change number for every revocation of this import: they commit
                        // together, so a terminal's cursor sees all of them or none.
                        Some(Self::reserve_voucher_changes(&mut tx, 1).await?)
                    };
                    for chunk in missing.chunks(CHUNK) {
                        let sql = bulk(
                            Self::BACKEND,
                            format!(
                                "UPDATE pupils SET removed_at = $1, updated_at = $2 WHERE id IN ({})",
                                placeholders(chunk.len(), 3)
                            ),
                        );
                        let mut q = sqlx::query(&sql).bind(now).bind(now);
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&mut *tx).await?;

                        let revoked = Self::change_vouchers_in(
                            &mut tx,
                            Which::OfPupils(chunk),
                            &batch.removal,
                            seq.unwrap_or(0),
                            now,
                        )
                        .await?;
                        counts.vouchers_revoked += revoked.len();
                    }
                }

                let detail = serde_json::json!({
                    "mode": if batch.snapshot { "snapshot" } else { "incremental" },
                    "rows": batch.pupils.len(),
                    "rejected": batch.rejected,
                    "counts": counts,
                });
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, subject, detail)
                     VALUES ($1, $2, 'roster.import', $3, $4)",
                )
                .bind(now)
                .bind(batch.actor)
                .bind(batch.source)
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
                if Self::BACKEND == super::Backend::Sqlite {
                    sqlx::query(DEFAULT_CACHE).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(counts)
            }
        }
    };
}
crate::impl_for_backends!(impl_import);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_parameters_once_in_order() {
        let sql = upsert_pupils_sql(2);
        assert!(sql.find("($1, $2,").unwrap() < sql.find("($24, $25,").unwrap());
        assert!(sql.contains("$46)"));
        assert!(!sql.contains("$47"));
        let sqlite = bulk(super::super::Backend::Sqlite, sql);
        assert_eq!(sqlite.matches('?').count(), 46);
    }
}
