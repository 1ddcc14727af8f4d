//! Canteen terminals (DESIGN §5): one-time enrollment codes, terminals and their bearer-secret
//! hashes, the events they upload, and what a snapshot needs to read.
//!
//! Counting rule for meals served twice: among the `ok` events of one (voucher, service day,
//! meal kind), the one scanned first counts — ordered by `(scanned_at, terminal_id, seq)` — and
//! every other is kept with `duplicate = TRUE`. The order does not depend on when events reach
//! the server: an event that arrives late but was scanned earlier takes the count over and the
//! previous one is re-marked. A partial unique index allows one counted row per key, so two
//! uploads racing on PostgreSQL cannot both count one; the loser retries with fresh data.

use super::sql::{json_array, json_in};
use super::{Backend, StoreError, StoreResult};
use async_trait::async_trait;
use shared::wire::TerminalEvent;
use sqlx::FromRow;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// Attempts of one upload when a concurrent upload took the same meal first (PostgreSQL; only
/// possible across schools, as one school's uploads take turns).
const UPLOAD_ATTEMPTS: usize = 10;
/// High bits of the advisory-lock key that makes one school's uploads take turns.
const SCHOOL_LOCK_SPACE: i64 = 0x7445_0000_0000_0000;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EnrollCode {
    pub code_hash: String,
    pub school_code: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub created_by: String,
    pub used_at: Option<i64>,
    pub terminal_id: Option<String>,
}

/// Why a code cannot be used (or that it can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    Unknown,
    Used,
    Expired,
    Valid { school_code: i64 },
}

impl EnrollCode {
    pub fn state(&self, now: i64) -> CodeState {
        if self.used_at.is_some() {
            CodeState::Used
        } else if self.expires_at <= now {
            CodeState::Expired
        } else {
            CodeState::Valid {
                school_code: self.school_code,
            }
        }
    }
}

/// A terminal with its secret hash: only for authentication.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TerminalRecord {
    pub id: String,
    pub school_code: i64,
    pub label: String,
    pub secret_hash: String,
    pub enrolled_at: i64,
    pub revoked_at: Option<i64>,
    pub last_sync_at: Option<i64>,
    pub clock_offset: Option<i64>,
    pub last_seq: i64,
    /// The version the terminal last named.
    pub version: Option<String>,
    /// Set while its uploads are refused because its version sends meals without proof.
    pub upgrade_required_at: Option<i64>,
}

impl TerminalRecord {
    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).expect("terminal ids are written as UUIDs")
    }
}

/// A terminal as school staff see it (no secret hash).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TerminalInfo {
    pub id: String,
    pub school_code: i64,
    pub label: String,
    pub enrolled_at: i64,
    pub revoked_at: Option<i64>,
    pub last_sync_at: Option<i64>,
    /// Terminal clock minus server clock, seconds, as last reported.
    pub clock_offset: Option<i64>,
    /// Highest seq held, contiguous from 1.
    pub last_seq: i64,
    pub version: Option<String>,
    pub upgrade_required_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTerminal {
    pub id: Uuid,
    pub label: String,
    pub secret_hash: String,
}

/// One voucher row of a snapshot, with the few pupil fields a terminal may hold.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SnapshotRow {
    pub id: String,
    pub status: String,
    pub valid_from: String,
    pub valid_to: String,
    pub change_seq: i64,
    pub first_name: String,
    pub last_name: String,
    pub grade: i64,
    pub class_letter: String,
    pub card_number: Option<String>,
    pub pupil_removed_at: Option<i64>,
    /// The voucher left the school (it followed its pupil to another one): terminals drop it.
    #[sqlx(default)]
    pub moved_away: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRows {
    /// The cursor to hand out: every change up to it is in `rows` (or was before the input cursor).
    pub cursor: i64,
    /// The input cursor was 0 or ahead of the server (a restored database): everything is sent.
    pub full: bool,
    pub rows: Vec<SnapshotRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ServedRow {
    pub voucher_id: String,
    pub meal_kind: String,
    pub service_day: String,
    pub scanned_at: i64,
    pub terminal_id: String,
    pub terminal_label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StoredEvent {
    pub terminal_id: String,
    pub seq: i64,
    pub event_id: String,
    pub school_code: i64,
    pub voucher_id: Option<String>,
    pub verdict: String,
    pub source: String,
    pub meal_kind: String,
    pub service_day: String,
    pub scanned_at: i64,
    pub key_id: Option<String>,
    pub received_at: i64,
    pub duplicate: bool,
    pub foreign_voucher: bool,
    pub proof_class: Option<String>,
    pub refusal: Option<String>,
    pub is_repeat: bool,
    /// Scans this event stands for (a rejection repeated, or over the terminal's cap).
    pub count: i64,
    pub capped: bool,
}

const EVENT_COLUMNS: &str =
    "terminal_id, seq, event_id, school_code, voucher_id, verdict, source, \
    meal_kind, service_day, scanned_at, key_id, received_at, duplicate, foreign_voucher, \
    proof_class, refusal, is_repeat, count, capped";

/// What the voucher named by an uploaded event was, read in the upload's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherFacts {
    pub id: Uuid,
    pub school_code: i64,
    pub activated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub valid_from: chrono::NaiveDate,
    pub valid_to: chrono::NaiveDate,
    /// The voucher's moves to another school as `(moved_at, from_school)`, oldest first.
    pub moves: Vec<(i64, i64)>,
}

impl VoucherFacts {
    /// The school the voucher belonged to at `at`: the school it left by its first move after
    /// `at`, else the one it is at now. A meal served before a move stays with its school.
    pub fn school_at(&self, at: i64) -> i64 {
        self.moves
            .iter()
            .find(|(moved_at, _)| *moved_at > at)
            .map_or(self.school_code, |&(_, from)| from)
    }
}

/// How an uploaded event is stored, as the caller's rules decided it. The store knows one
/// thing of it: a refused served event never counts (the counted index leaves it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// A rejection at the counter: no meal, no proof class.
    NotServed,
    /// A served meal that counts, with its class of proof (`proven`, `card`).
    Counts(&'static str),
    /// A served meal the server refused, with the reason code.
    Refused(&'static str),
}

/// One upload of one terminal, as the store records it.
#[derive(Debug, Clone, Copy)]
pub struct EventBatch<'a> {
    pub terminal_id: Uuid,
    pub school_code: i64,
    pub events: &'a [TerminalEvent],
    pub now: i64,
    /// Terminal clock minus server clock, when the terminal sent its time.
    pub clock_offset: Option<i64>,
    /// What the terminal names itself.
    pub version: Option<&'a str>,
}

/// The rules that class each event of an upload, given its voucher's facts.
pub type Classifier<'a> =
    &'a (dyn Fn(&TerminalEvent, Option<&VoucherFacts>) -> EventClass + Send + Sync);

/// Asked just before an upload's COMMIT whether the classes it was given still stand; `false`
/// rolls the upload back ([`EventsOutcome::Reclassify`]). It lets the slow part of a check
/// (the token signatures) run on another core while the transaction does its work.
#[async_trait]
pub trait BeforeCommit: Send + Sync {
    async fn classes_stand(&self) -> bool;
}

/// For a classifier that decided everything itself.
pub struct ClassesFinal;

#[async_trait]
impl BeforeCommit for ClassesFinal {
    async fn classes_stand(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsStored {
    pub stored: u64,
    pub already_had: u64,
    /// New served events stored as refused.
    pub refused: u64,
    /// New served events stored as counting, by class of proof (`proven`, `card`).
    pub proven: u64,
    pub card: u64,
    pub last_seq: i64,
}

/// What became of an upload. Everything but `Stored` wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsOutcome {
    Stored(EventsStored),
    /// The terminal already uploaded this seq with another event id: its log was reset or
    /// restored from an old copy, and storing the new event would lose one of the two.
    SeqTaken {
        seq: i64,
        event_id: String,
    },
    /// Another terminal's event has this id.
    EventIdTaken {
        event_id: String,
    },
    /// Revoked (or removed) since it authenticated.
    TerminalGone,
    /// The classes assumed did not stand at COMMIT: class again with the full check.
    Reclassify,
}

#[async_trait]
pub trait TerminalStore {
    /// Stores a new code (by hash) and audits it, in one transaction.
    async fn create_enroll_code(
        &self,
        code_hash: &str,
        school_code: i64,
        actor: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    async fn enroll_code(&self, code_hash: &str) -> StoreResult<Option<EnrollCode>>;
    /// Consumes the code if it is unused and unexpired at `now` and creates the terminal, in one
    /// transaction; `None` (and nothing written) when the code cannot be used.
    async fn enroll_terminal(
        &self,
        code_hash: &str,
        terminal: &NewTerminal,
        now: i64,
    ) -> StoreResult<Option<TerminalRecord>>;
    async fn terminal(&self, id: Uuid) -> StoreResult<Option<TerminalRecord>>;
    async fn terminal_by_secret_hash(&self, hash: &str) -> StoreResult<Option<TerminalRecord>>;
    /// The school's terminals, revoked ones too, in enrollment order.
    async fn terminals_of_school(&self, school_code: i64) -> StoreResult<Vec<TerminalInfo>>;
    /// Revokes and audits; `false` when it was already revoked, `NotFound` when unknown.
    async fn revoke_terminal(&self, id: Uuid, actor: &str, now: i64) -> StoreResult<bool>;
    /// Records a sync; the clock offset only when the terminal reported its time.
    async fn note_terminal_sync(
        &self,
        id: Uuid,
        now: i64,
        clock_offset: Option<i64>,
    ) -> StoreResult<()>;
    /// Stores a validated batch in one transaction: new seqs inserted, known ones counted as
    /// already had, duplicates marked (module docs), `last_seq` advanced over contiguous seqs.
    /// Each event is classed by `classify` inside the transaction, with its voucher's facts
    /// as they are then; nothing commits unless `before_commit` says the classes stand.
    async fn store_events(
        &self,
        batch: &EventBatch<'_>,
        classify: Classifier<'_>,
        before_commit: &dyn BeforeCommit,
    ) -> StoreResult<EventsOutcome>;
    /// Records that the terminal's upload was refused because its version sends no proofs.
    async fn note_upgrade_required(
        &self,
        id: Uuid,
        version: Option<&str>,
        now: i64,
    ) -> StoreResult<()>;
    /// Vouchers of the school changed after `cursor` (all when `cursor` is 0 or ahead), leaving
    /// out on a full snapshot those whose validity ended before `today` (`YYYY-MM-DD`). A
    /// delta also holds, marked `moved_away` (status `revoked`, no card), the vouchers that
    /// left the school after `cursor` and are not back.
    async fn snapshot_vouchers(
        &self,
        school_code: i64,
        cursor: i64,
        today: &str,
    ) -> StoreResult<SnapshotRows>;
    /// `ok` events of the school on that service day from terminals other than `except`.
    async fn served_on_day(
        &self,
        school_code: i64,
        service_day: &str,
        except: Option<Uuid>,
    ) -> StoreResult<Vec<ServedRow>>;
    /// Events of the school on a service day (all terminals), in scan order.
    async fn school_events_on_day(
        &self,
        school_code: i64,
        service_day: &str,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// A terminal's events in seq order.
    async fn terminal_events(&self, terminal_id: Uuid) -> StoreResult<Vec<StoredEvent>>;
    async fn terminal_event_count(&self) -> StoreResult<i64>;
}

/// A counted `ok` row, as far as deciding which one counts goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    scanned_at: i64,
    terminal_id: String,
    seq: i64,
}

type MealKey = (String, String, String);

fn meal_key(e: &TerminalEvent) -> Option<MealKey> {
    Some((
        e.voucher_id?.to_string(),
        e.service_day.to_string(),
        e.meal_kind.as_str().to_owned(),
    ))
}

/// One event as the bulk insert reads it from its JSON parameter.
#[derive(serde::Serialize)]
struct EventRow<'a> {
    seq: i64,
    event_id: String,
    voucher_id: Option<String>,
    verdict: &'a str,
    source: &'a str,
    meal_kind: &'a str,
    service_day: String,
    scanned_at: i64,
    key_id: Option<&'a str>,
    duplicate: bool,
    proof_class: Option<&'static str>,
    refusal: Option<&'static str>,
    is_repeat: bool,
    count: i64,
    capped: bool,
}

const EVENT_ROW_FIELDS: [(&str, &str); 15] = [
    ("seq", "bigint"),
    ("event_id", "text"),
    ("voucher_id", "text"),
    ("verdict", "text"),
    ("source", "text"),
    ("meal_kind", "text"),
    ("service_day", "text"),
    ("scanned_at", "bigint"),
    ("key_id", "text"),
    ("duplicate", "boolean"),
    ("proof_class", "text"),
    ("refusal", "text"),
    ("is_repeat", "boolean"),
    ("count", "bigint"),
    ("capped", "boolean"),
];

/// `$1` terminal id, `$2` school code, `$3` received at, `$4` the JSON array of `EventRow`s.
/// `foreign_voucher` is decided here, by the voucher's primary key per row, rather than by a
/// query of its own before: one statement less per batch.
fn insert_events_sql(backend: Backend) -> String {
    let names: Vec<&str> = EVENT_ROW_FIELDS.iter().map(|(n, _)| *n).collect();
    let rows = match backend {
        Backend::Sqlite => format!(
            "SELECT {} FROM json_each($4) AS j",
            names
                .iter()
                .map(|n| format!("json_extract(j.value, '$.{n}') AS {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Backend::Postgres => format!(
            "SELECT * FROM jsonb_to_recordset($4::jsonb) AS j({})",
            EVENT_ROW_FIELDS
                .iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    // `WHERE TRUE`: SQLite reads `ON CONFLICT` after a bare FROM as a join constraint.
    format!(
        "INSERT INTO terminal_events (terminal_id, school_code, received_at, {}, foreign_voucher)
         SELECT $1, $2, $3, {},
                e.voucher_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM vouchers v WHERE v.id = e.voucher_id AND v.school_code = $2)
         FROM ({rows}) AS e WHERE TRUE
         ON CONFLICT (terminal_id, seq) DO NOTHING",
        names.join(", "),
        names
            .iter()
            .map(|n| format!("e.{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// A meal key as `counted_rows_sql` reads it from its JSON parameter.
#[derive(serde::Serialize)]
struct MealKeyRow<'a> {
    voucher_id: &'a str,
    service_day: &'a str,
    meal_kind: &'a str,
}

/// The counted rows of the meal keys in `$1` (a JSON array of `MealKeyRow`s): one lookup of the
/// partial unique index per key. Two lists instead (days, vouchers) let PostgreSQL's generic
/// plan read every event of those days through the day index and test each against the whole
/// voucher list; a plain join may become a hash join over the whole table. The `LIMIT 1`
/// keeps PostgreSQL from flattening the lookup into such a join (the index is unique anyway).
/// The literals `'ok'`, `FALSE` and `IS NULL` let the planner use the partial index.
fn counted_rows_sql(backend: Backend) -> String {
    const COLUMNS: &str =
        "e.voucher_id, e.service_day, e.meal_kind, e.terminal_id, e.seq, e.scanned_at";
    const COUNTED: &str = "e.verdict = 'ok' AND e.duplicate = FALSE AND e.refusal IS NULL";
    const SAME_KEY: &str =
        "e.service_day = k.service_day AND e.voucher_id = k.voucher_id AND e.meal_kind = k.meal_kind";
    match backend {
        Backend::Sqlite => format!(
            "SELECT {COLUMNS}
             FROM (SELECT json_extract(j.value, '$.voucher_id') AS voucher_id,
                          json_extract(j.value, '$.service_day') AS service_day,
                          json_extract(j.value, '$.meal_kind') AS meal_kind
                   FROM json_each($1) AS j) AS k
             JOIN terminal_events e ON {SAME_KEY}
             WHERE {COUNTED}"
        ),
        Backend::Postgres => format!(
            "SELECT {COLUMNS}
             FROM jsonb_to_recordset($1::jsonb) AS k(voucher_id text, service_day text, meal_kind text)
             CROSS JOIN LATERAL (SELECT * FROM terminal_events e WHERE {SAME_KEY} AND {COUNTED} LIMIT 1) e"
        ),
    }
}

/// A concurrent upload won a race the database noticed: run the batch again on fresh data.
fn worth_retrying(e: &StoreError) -> bool {
    match e {
        StoreError::Conflict(what) => {
            what.contains("terminal_events_counted") || what.contains("terminal_events.voucher_id")
        }
        // Deadlock detected / serialization failure (PostgreSQL).
        StoreError::Db(sqlx::Error::Database(d)) => {
            matches!(d.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
    }
}

fn is_event_id_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict(what) if what.contains("event_id"))
}

/// Which of the batch's new `ok` events count, given the counted rows already stored for their
/// keys: returns the flags per new event (by index) and the stored rows to re-mark.
fn decide_duplicates(
    terminal_id: &str,
    new: &[&TerminalEvent],
    counts: &[bool],
    counted: &HashMap<MealKey, Rank>,
) -> (Vec<bool>, Vec<Rank>) {
    let mut duplicate = vec![false; new.len()];
    let mut best: BTreeMap<MealKey, (Rank, Option<usize>)> = BTreeMap::new();
    for (key, rank) in counted {
        best.insert(key.clone(), (rank.clone(), None));
    }
    for (i, e) in new.iter().enumerate() {
        if !counts[i] {
            continue;
        }
        let Some(key) = meal_key(e) else { continue };
        let rank = Rank {
            scanned_at: e.scanned_at,
            terminal_id: terminal_id.to_owned(),
            seq: e.seq,
        };
        match best.get_mut(&key) {
            None => {
                best.insert(key, (rank, Some(i)));
            }
            Some(current) => {
                if rank < current.0 {
                    if let Some(prev) = current.1 {
                        duplicate[prev] = true;
                    }
                    *current = (rank, Some(i));
                } else {
                    duplicate[i] = true;
                }
            }
        }
    }
    // Sorted, so concurrent uploads lock the rows they re-mark in one order.
    let mut remark: Vec<Rank> = counted
        .iter()
        .filter(|(key, _)| matches!(best.get(*key), Some((_, Some(_)))))
        .map(|(_, rank)| rank.clone())
        .collect();
    remark.sort();
    (duplicate, remark)
}

macro_rules! impl_terminals {
    ($t:ty) => {
        impl $t {
            async fn terminals_audit_in(
                tx: &mut sqlx::Transaction<'_, <Self as StoreDb>::Db>,
                at: i64,
                actor: &str,
                action: &str,
                subject: &str,
                detail: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(at)
                .bind(actor)
                .bind(action)
                .bind(subject)
                .bind(detail)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// One attempt of `store_events`; errors roll the transaction back.
            async fn terminals_store_events_once(
                &self,
                batch: &EventBatch<'_>,
                classify: Classifier<'_>,
                before_commit: &dyn BeforeCommit,
            ) -> StoreResult<EventsOutcome> {
                let terminal_id = &batch.terminal_id.to_string();
                let EventBatch {
                    school_code,
                    events,
                    now,
                    clock_offset,
                    version,
                    ..
                } = *batch;
                let _writer = self.event_writer().await;
                let mut tx = self.pool.begin().await?;
                if Self::BACKEND == super::Backend::Postgres {
                    // Uploads of one school's terminals take turns: the meals they may share are
                    // decided without racing (and without deadlocks on the counted index).
                    // Other schools run in parallel. SQLite has one writer anyway.
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(SCHOOL_LOCK_SPACE | (school_code & 0xFFFF_FFFF))
                        .execute(&mut *tx)
                        .await?;
                }
                // A write first: it takes SQLite's write lock before anything is read, and on
                // PostgreSQL locks the terminal's row, so one terminal's uploads run one by one.
                let last_seq: Option<i64> = sqlx::query_scalar(
                    "UPDATE terminals SET last_sync_at = $1, clock_offset = COALESCE($2, clock_offset),
                        version = COALESCE($4, version), upgrade_required_at = NULL
                     WHERE id = $3 AND revoked_at IS NULL RETURNING last_seq",
                )
                .bind(now)
                .bind(clock_offset)
                .bind(terminal_id)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(mut last_seq) = last_seq else {
                    return Ok(EventsOutcome::TerminalGone);
                };
                if events.is_empty() {
                    tx.commit().await?;
                    return Ok(EventsOutcome::Stored(EventsStored {
                        stored: 0,
                        already_had: 0,
                        refused: 0,
                        proven: 0,
                        card: 0,
                        last_seq,
                    }));
                }

                let lo = events.iter().map(|e| e.seq).min().unwrap_or(0);
                let hi = events.iter().map(|e| e.seq).max().unwrap_or(0);
                let held: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
                    "SELECT seq, event_id FROM terminal_events
                     WHERE terminal_id = $1 AND seq >= $2 AND seq <= $3",
                )
                .bind(terminal_id)
                .bind(lo)
                .bind(hi)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
                let mut new: Vec<&TerminalEvent> = Vec::with_capacity(events.len());
                let mut already_had = 0u64;
                for e in events {
                    match held.get(&e.seq) {
                        Some(id) if *id == e.event_id.to_string() => already_had += 1,
                        Some(_) => {
                            return Ok(EventsOutcome::SeqTaken {
                                seq: e.seq,
                                event_id: e.event_id.to_string(),
                            })
                        }
                        None => new.push(e),
                    }
                }

                // The class of each new event, by the rules, with its voucher as it is now.
                let voucher_ids: Vec<String> = new
                    .iter()
                    .filter(|e| e.verdict.serves())
                    .filter_map(|e| e.voucher_id.map(|v| v.to_string()))
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let mut facts: HashMap<Uuid, VoucherFacts> = HashMap::new();
                if !voucher_ids.is_empty() {
                    let rows = sqlx::query_as::<_, (String, i64, Option<i64>, Option<i64>, String, String)>(&format!(
                        "SELECT id, school_code, activated_at, revoked_at, valid_from, valid_to
                         FROM vouchers WHERE {}",
                        json_in(Self::BACKEND, "id", 1)
                    ))
                    .bind(json_array(&voucher_ids))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (id, school_code, activated_at, revoked_at, from, to) in rows {
                        let day = |d: &str| {
                            d.parse::<chrono::NaiveDate>()
                                .map_err(|_| StoreError::Corrupt(format!("vouchers.valid_from/valid_to {d:?}")))
                        };
                        let id = Uuid::parse_str(&id)
                            .map_err(|_| StoreError::Corrupt(format!("vouchers.id {id:?}")))?;
                        facts.insert(id, VoucherFacts {
                            id,
                            school_code,
                            activated_at,
                            revoked_at,
                            valid_from: day(&from)?,
                            valid_to: day(&to)?,
                            moves: Vec::new(),
                        });
                    }
                    let moves = sqlx::query_as::<_, (String, i64, i64)>(&format!(
                        "SELECT voucher_id, moved_at, from_school FROM voucher_moves WHERE {}
                         ORDER BY moved_at, id",
                        json_in(Self::BACKEND, "voucher_id", 1)
                    ))
                    .bind(json_array(&voucher_ids))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (id, moved_at, from) in moves {
                        if let Some(f) = Uuid::parse_str(&id).ok().and_then(|id| facts.get_mut(&id)) {
                            f.moves.push((moved_at, from));
                        }
                    }
                }
                let classes: Vec<EventClass> = new
                    .iter()
                    .map(|e| classify(e, e.voucher_id.and_then(|v| facts.get(&v))))
                    .collect();
                let counts: Vec<bool> = classes
                    .iter()
                    .map(|c| matches!(c, EventClass::Counts(_)))
                    .collect();

                // Counted rows already stored for the keys of the new counting events.
                let oks: Vec<MealKey> = new
                    .iter()
                    .zip(&counts)
                    .filter(|(_, c)| **c)
                    .filter_map(|(e, _)| meal_key(e))
                    .collect();
                let mut counted: HashMap<MealKey, Rank> = HashMap::new();
                if !oks.is_empty() {
                    let keys: Vec<MealKeyRow> = oks
                        .iter()
                        .collect::<HashSet<_>>()
                        .into_iter()
                        .map(|(voucher_id, service_day, meal_kind)| MealKeyRow {
                            voucher_id,
                            service_day,
                            meal_kind,
                        })
                        .collect();
                    let rows = sqlx::query_as::<_, (String, String, String, String, i64, i64)>(
                        &counted_rows_sql(Self::BACKEND),
                    )
                    .bind(json_array(&keys))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (voucher, day, kind, tid, seq, scanned_at) in rows {
                        counted.insert((voucher, day, kind), Rank { scanned_at, terminal_id: tid, seq });
                    }
                }
                let (duplicate, remark) = decide_duplicates(terminal_id, &new, &counts, &counted);
                for r in &remark {
                    let done = sqlx::query(
                        "UPDATE terminal_events SET duplicate = TRUE
                         WHERE terminal_id = $1 AND seq = $2 AND duplicate = FALSE",
                    )
                    .bind(&r.terminal_id)
                    .bind(r.seq)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if done != 1 {
                        // Another upload re-marked it first: decide again on fresh data.
                        return Err(StoreError::Conflict("terminal_events_counted (re-marked)".into()));
                    }
                }

                // Counted rows in key order, so concurrent uploads take the unique index's
                // locks in one order (no deadlock between two terminals' batches).
                let mut order: Vec<usize> = (0..new.len()).collect();
                order.sort_by_cached_key(|&i| {
                    let counted = counts[i] && !duplicate[i];
                    (!counted, if counted { meal_key(new[i]) } else { None }, new[i].seq)
                });
                let rows: Vec<EventRow> = order
                    .iter()
                    .map(|&i| {
                        let e = new[i];
                        let voucher_id = e.voucher_id.map(|v| v.to_string());
                        EventRow {
                            seq: e.seq,
                            event_id: e.event_id.to_string(),
                            voucher_id,
                            verdict: e.verdict.code(),
                            source: match e.source {
                                shared::wire::ScanSource::Qr => "qr",
                                shared::wire::ScanSource::Card => "card",
                            },
                            meal_kind: e.meal_kind.as_str(),
                            service_day: e.service_day.to_string(),
                            scanned_at: e.scanned_at,
                            key_id: e.key_id.as_deref(),
                            duplicate: duplicate[i],
                            proof_class: match classes[i] {
                                EventClass::NotServed => None,
                                EventClass::Counts(class) => Some(class),
                                EventClass::Refused(_) => Some("refused"),
                            },
                            refusal: match classes[i] {
                                EventClass::Refused(reason) => Some(reason),
                                _ => None,
                            },
                            is_repeat: e.repeat,
                            count: e.count,
                            capped: e.capped,
                        }
                    })
                    .collect();
                let stored = sqlx::query(&insert_events_sql(Self::BACKEND))
                    .bind(terminal_id)
                    .bind(school_code)
                    .bind(now)
                    .bind(serde_json::to_string(&rows).expect("event rows serialise"))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                // The terminal's row is locked, so no other upload of it stored these seqs.
                already_had += new.len() as u64 - stored;

                // Advance over contiguous seqs: the batch's own first (all stored now), then any
                // stored past a gap this batch filled, from the table.
                let mut seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
                seqs.sort_unstable();
                for s in seqs {
                    if s == last_seq + 1 {
                        last_seq = s;
                    } else if s > last_seq {
                        break;
                    }
                }
                loop {
                    let seqs: Vec<i64> = sqlx::query_scalar(
                        "SELECT seq FROM terminal_events WHERE terminal_id = $1 AND seq > $2
                         ORDER BY seq LIMIT 1000",
                    )
                    .bind(terminal_id)
                    .bind(last_seq)
                    .fetch_all(&mut *tx)
                    .await?;
                    let n = seqs.len();
                    let mut advanced = 0;
                    for s in seqs {
                        if s != last_seq + 1 {
                            break;
                        }
                        last_seq = s;
                        advanced += 1;
                    }
                    if advanced < n || n < 1000 {
                        break;
                    }
                }
                sqlx::query("UPDATE terminals SET last_seq = $1 WHERE id = $2")
                    .bind(last_seq)
                    .bind(terminal_id)
                    .execute(&mut *tx)
                    .await?;
                if !before_commit.classes_stand().await {
                    tx.rollback().await?;
                    return Ok(EventsOutcome::Reclassify);
                }
                tx.commit().await?;
                let count = |f: &dyn Fn(&EventClass) -> bool| classes.iter().filter(|c| f(c)).count() as u64;
                Ok(EventsOutcome::Stored(EventsStored {
                    stored,
                    already_had,
                    refused: count(&|c| matches!(c, EventClass::Refused(_))),
                    proven: count(&|c| *c == EventClass::Counts("proven")),
                    card: count(&|c| *c == EventClass::Counts("card")),
                    last_seq,
                }))
            }
        }

        #[async_trait]
        impl TerminalStore for $t {
            async fn create_enroll_code(
                &self,
                code_hash: &str,
                school_code: i64,
                actor: &str,
                now: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO enroll_codes (code_hash, school_code, created_at, expires_at, created_by)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(code_hash)
                .bind(school_code)
                .bind(now)
                .bind(expires_at)
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                Self::terminals_audit_in(
                    &mut tx,
                    now,
                    actor,
                    "terminal.enroll_code",
                    &format!("school:{school_code}"),
                    Some(&format!("expires_at={expires_at}")),
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn enroll_code(&self, code_hash: &str) -> StoreResult<Option<EnrollCode>> {
                Ok(sqlx::query_as(
                    "SELECT code_hash, school_code, created_at, expires_at, created_by, used_at, terminal_id
                     FROM enroll_codes WHERE code_hash = $1",
                )
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn enroll_terminal(
                &self,
                code_hash: &str,
                terminal: &NewTerminal,
                now: i64,
            ) -> StoreResult<Option<TerminalRecord>> {
                let mut tx = self.pool.begin().await?;
                // Single use even under concurrency: only one UPDATE can see used_at IS NULL.
                let school: Option<i64> = sqlx::query_scalar(
                    "UPDATE enroll_codes SET used_at = $1, terminal_id = $2
                     WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1
                     RETURNING school_code",
                )
                .bind(now)
                .bind(terminal.id.to_string())
                .bind(code_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(school_code) = school else {
                    return Ok(None);
                };
                let record: TerminalRecord = sqlx::query_as(
                    "INSERT INTO terminals (id, school_code, label, secret_hash, enrolled_at)
                     VALUES ($1, $2, $3, $4, $5)
                     RETURNING id, school_code, label, secret_hash, enrolled_at, revoked_at,
                        last_sync_at, clock_offset, last_seq, version, upgrade_required_at",
                )
                .bind(terminal.id.to_string())
                .bind(school_code)
                .bind(&terminal.label)
                .bind(&terminal.secret_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                Self::terminals_audit_in(
                    &mut tx,
                    now,
                    "enroll-code",
                    "terminal.enroll",
                    &format!("terminal:{}", terminal.id),
                    Some(&format!("school:{school_code} label={:?}", terminal.label)),
                )
                .await?;
                tx.commit().await?;
                Ok(Some(record))
            }

            async fn terminal(&self, id: Uuid) -> StoreResult<Option<TerminalRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, school_code, label, secret_hash, enrolled_at, revoked_at,
                        last_sync_at, clock_offset, last_seq, version, upgrade_required_at
                     FROM terminals WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn terminal_by_secret_hash(&self, hash: &str) -> StoreResult<Option<TerminalRecord>> {
                Ok(sqlx::query_as(
                    "SELECT id, school_code, label, secret_hash, enrolled_at, revoked_at,
                        last_sync_at, clock_offset, last_seq, version, upgrade_required_at
                     FROM terminals WHERE secret_hash = $1",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn terminals_of_school(&self, school_code: i64) -> StoreResult<Vec<TerminalInfo>> {
                Ok(sqlx::query_as(
                    "SELECT id, school_code, label, enrolled_at, revoked_at, last_sync_at,
                        clock_offset, last_seq, version, upgrade_required_at
                     FROM terminals WHERE school_code = $1 ORDER BY enrolled_at, id",
                )
                .bind(school_code)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn revoke_terminal(&self, id: Uuid, actor: &str, now: i64) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let revoked = sqlx::query(
                    "UPDATE terminals SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !revoked {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT school_code FROM terminals WHERE id = $1")
                            .bind(id.to_string())
                            .fetch_optional(&mut *tx)
                            .await?;
                    return match exists {
                        Some(_) => Ok(false),
                        None => Err(StoreError::NotFound),
                    };
                }
                Self::terminals_audit_in(&mut tx, now, actor, "terminal.revoke", &format!("terminal:{id}"), None)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn note_terminal_sync(
                &self,
                id: Uuid,
                now: i64,
                clock_offset: Option<i64>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE terminals SET last_sync_at = $1, clock_offset = COALESCE($2, clock_offset)
                     WHERE id = $3",
                )
                .bind(now)
                .bind(clock_offset)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn store_events(
                &self,
                batch: &EventBatch<'_>,
                classify: Classifier<'_>,
                before_commit: &dyn BeforeCommit,
            ) -> StoreResult<EventsOutcome> {
                let id = batch.terminal_id.to_string();
                let events = batch.events;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self
                        .terminals_store_events_once(batch, classify, before_commit)
                        .await
                    {
                        Err(e) if attempt < UPLOAD_ATTEMPTS && worth_retrying(&e) => {
                            tracing::debug!(terminal = %id, attempt, error = %e, "upload raced another; retrying");
                            tokio::time::sleep(std::time::Duration::from_millis(
                                5 * attempt as u64 + rand::random::<u64>() % 20,
                            ))
                            .await;
                        }
                        Err(e) if is_event_id_conflict(&e) => {
                            // Find which id, for a message the terminal's operator can act on.
                            let ids: Vec<String> =
                                events.iter().map(|e| e.event_id.to_string()).collect();
                            let taken: Option<String> = sqlx::query_scalar(&format!(
                                "SELECT event_id FROM terminal_events
                                 WHERE terminal_id <> $1 AND {} LIMIT 1",
                                json_in(Self::BACKEND, "event_id", 2)
                            ))
                            .bind(&id)
                            .bind(json_array(&ids))
                            .fetch_optional(&self.pool)
                            .await?;
                            if let Some(event_id) = taken {
                                return Ok(EventsOutcome::EventIdTaken { event_id });
                            }
                            return Err(e);
                        }
                        other => return other,
                    }
                }
            }

            async fn note_upgrade_required(&self, id: Uuid, version: Option<&str>, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE terminals SET upgrade_required_at = $1, version = $2, last_sync_at = $1 WHERE id = $3",
                )
                .bind(now)
                .bind(version)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn snapshot_vouchers(
                &self,
                school_code: i64,
                cursor: i64,
                today: &str,
            ) -> StoreResult<SnapshotRows> {
                // The counter first: a change that commits after this read has a higher value,
                // so `change_seq <= upto` below never hides a change from the next cursor.
                let upto: i64 = sqlx::query_scalar::<_, i64>("SELECT value FROM counters WHERE name = $1")
                    .bind(super::vouchers::VOUCHER_CHANGE)
                    .fetch_optional(&self.pool)
                    .await?
                    .unwrap_or(0);
                let full = cursor <= 0 || cursor > upto;
                let (after, since_day) = if full { (0, today) } else { (cursor, "") };
                let rows: Vec<SnapshotRow> = sqlx::query_as(
                    "SELECT v.id, v.status, v.valid_from, v.valid_to, v.change_seq,
                        p.first_name, p.last_name, p.grade, p.class_letter, p.card_number,
                        p.removed_at AS pupil_removed_at
                     FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                     WHERE v.school_code = $1 AND v.change_seq > $2 AND v.change_seq <= $3
                       AND v.valid_to >= $4
                     ORDER BY v.change_seq, v.id",
                )
                .bind(school_code)
                .bind(after)
                .bind(upto)
                .bind(since_day)
                .fetch_all(&self.pool)
                .await?;
                let mut rows = rows;
                if !full {
                    // A full snapshot replaces what the terminal held: departures go without
                    // saying. The last move away of each voucher is enough.
                    let left: Vec<SnapshotRow> = sqlx::query_as(
                        "SELECT v.id, 'revoked' AS status, v.valid_from, v.valid_to,
                            MAX(m.change_seq) AS change_seq,
                            p.first_name, p.last_name, p.grade, p.class_letter,
                            NULL AS card_number, p.removed_at AS pupil_removed_at
                         FROM voucher_moves m
                         JOIN vouchers v ON v.id = m.voucher_id
                         JOIN pupils p ON p.id = v.pupil_id
                         WHERE m.from_school = $1 AND m.change_seq > $2 AND m.change_seq <= $3
                           AND v.school_code <> $1
                         GROUP BY v.id, v.valid_from, v.valid_to, p.first_name, p.last_name,
                            p.grade, p.class_letter, p.removed_at",
                    )
                    .bind(school_code)
                    .bind(after)
                    .bind(upto)
                    .fetch_all(&self.pool)
                    .await?;
                    if !left.is_empty() {
                        rows.extend(left.into_iter().map(|r| SnapshotRow { moved_away: true, ..r }));
                        rows.sort_by(|a, b| (a.change_seq, &a.id).cmp(&(b.change_seq, &b.id)));
                    }
                }
                Ok(SnapshotRows { cursor: upto, full, rows })
            }

            async fn served_on_day(
                &self,
                school_code: i64,
                service_day: &str,
                except: Option<Uuid>,
            ) -> StoreResult<Vec<ServedRow>> {
                Ok(sqlx::query_as(
                    "SELECT e.voucher_id, e.meal_kind, e.service_day, e.scanned_at, e.terminal_id,
                        t.label AS terminal_label
                     FROM terminal_events e JOIN terminals t ON t.id = e.terminal_id
                     WHERE e.school_code = $1 AND e.service_day = $2 AND e.verdict = 'ok'
                       AND e.refusal IS NULL AND e.voucher_id IS NOT NULL AND e.terminal_id <> $3
                     ORDER BY e.scanned_at, e.terminal_id, e.seq",
                )
                .bind(school_code)
                .bind(service_day)
                .bind(except.map(|u| u.to_string()).unwrap_or_default())
                .fetch_all(&self.pool)
                .await?)
            }

            async fn school_events_on_day(
                &self,
                school_code: i64,
                service_day: &str,
            ) -> StoreResult<Vec<StoredEvent>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {EVENT_COLUMNS} FROM terminal_events
                     WHERE school_code = $1 AND service_day = $2
                     ORDER BY scanned_at, terminal_id, seq"
                ))
                .bind(school_code)
                .bind(service_day)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn terminal_events(&self, terminal_id: Uuid) -> StoreResult<Vec<StoredEvent>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {EVENT_COLUMNS} FROM terminal_events WHERE terminal_id = $1 ORDER BY seq"
                ))
                .bind(terminal_id.to_string())
                .fetch_all(&self.pool)
                .await?)
            }

            async fn terminal_event_count(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM terminal_events")
                    .fetch_one(&self.pool)
                    .await?)
            }
        }
    };
}

/// The sqlx database type of each backend, for helpers that take a transaction.
pub trait StoreDb {
    type Db: sqlx::Database;
}

impl StoreDb for super::SqliteStore {
    type Db = sqlx::Sqlite;
}

impl StoreDb for super::PgStore {
    type Db = sqlx::Postgres;
}

crate::impl_for_backends!(impl_terminals);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use shared::calendar::MealKind;
    use shared::verdict::Verdict;
    use shared::wire::ScanSource;

    fn ev(seq: i64, scanned_at: i64, voucher: Uuid, verdict: Verdict) -> TerminalEvent {
        TerminalEvent {
            event_id: Uuid::new_v4(),
            seq,
            scanned_at,
            service_day: NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            verdict,
            source: ScanSource::Qr,
            meal_kind: MealKind::Lunch,
            voucher_id: Some(voucher),
            key_id: None,
            proof: None,
            repeat: false,
            count: 1,
            capped: false,
        }
    }

    #[test]
    fn earliest_scan_counts_whatever_the_arrival_order() {
        let v = Uuid::new_v4();
        let a = ev(1, 100, v, Verdict::Ok);
        let b = ev(2, 50, v, Verdict::Ok);
        let rejected = ev(3, 10, v, Verdict::AlreadyServed);
        // Within one batch: the earlier scan counts even though its seq is later.
        let (dup, remark) = decide_duplicates(
            "t1",
            &[&a, &b, &rejected],
            &[true, true, false],
            &HashMap::new(),
        );
        assert_eq!(dup, vec![true, false, false]);
        assert!(remark.is_empty());

        // A stored counted row scanned later is re-marked; one scanned earlier keeps the count.
        let key = meal_key(&a).unwrap();
        let later = HashMap::from([(
            key.clone(),
            Rank {
                scanned_at: 200,
                terminal_id: "t0".into(),
                seq: 9,
            },
        )]);
        let (dup, remark) = decide_duplicates("t1", &[&a], &[true], &later);
        assert_eq!(dup, vec![false]);
        assert_eq!(remark.len(), 1);
        let earlier = HashMap::from([(
            key,
            Rank {
                scanned_at: 100,
                terminal_id: "t0".into(),
                seq: 9,
            },
        )]);
        // Same second: the lower terminal id wins, so the result is the same on every server.
        let (dup, remark) = decide_duplicates("t1", &[&a], &[true], &earlier);
        assert_eq!(dup, vec![true]);
        assert!(remark.is_empty());
        // A refused serve neither counts nor takes the count from a real one.
        let (dup, remark) = decide_duplicates("t1", &[&b, &a], &[false, true], &HashMap::new());
        assert_eq!(dup, vec![false, false]);
        assert!(remark.is_empty());
    }

    #[test]
    fn insert_sql_lists_every_column_once() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let sql = insert_events_sql(backend);
            for (name, ty) in EVENT_ROW_FIELDS {
                let read = match backend {
                    Backend::Sqlite => format!("json_extract(j.value, '$.{name}')"),
                    Backend::Postgres => format!("{name} {ty}"),
                };
                assert_eq!(sql.matches(&read).count(), 1, "{name}: {sql}");
            }
            assert!(sql.contains("ON CONFLICT (terminal_id, seq) DO NOTHING"));
        }
    }
}
