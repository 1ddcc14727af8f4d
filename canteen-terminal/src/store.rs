//! The terminal's SQLite file: opening it durably, and every statement the terminal runs.
//!
//! Durability: WAL with `synchronous=FULL`, so a committed transaction is fsynced to the WAL
//! before `COMMIT` returns; `ok` is shown only after that.

use crate::flood::{Landed, Placement, RowKey};
use chrono::NaiveDate;
use shared::calendar::{MealKind, MealWindow, SchoolYear};
use shared::trust::SignedTrustList;
use shared::verdict::Verdict;
use shared::wire::{ScanSource, Snapshot, SnapshotVoucher, TerminalEvent, VoucherStatus};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Connection;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

pub const DB_FILE: &str = "terminal.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("terminal database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("terminal database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("terminal database holds an unreadable value in {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
    #[error("the meal log {path} is damaged: {detail}")]
    Damaged { path: String, detail: String },
}

fn corrupt(what: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        value: value.into(),
    }
}

fn options(dir: &Path, busy_timeout: Duration) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(dir.join(DB_FILE))
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // A kiosk and a CLI may share the file; writers wait for each other instead of failing.
        .busy_timeout(busy_timeout)
        // Checkpoints belong off the scan path (see `spawn_checkpointer`); this is only the
        // safety net for a process that runs none (40 MB of WAL).
        .pragma("wal_autocheckpoint", "10000")
}

/// How long a writer waits for another process holding the log before its scan is
/// `not_recorded`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating if needed) and migrates the database in `dir`. Enrollment and tools only:
/// an enrolled terminal opens its log with [`open_existing`], which never creates one.
pub async fn open(dir: &Path) -> Result<SqlitePool, StoreError> {
    // The file is created 0600 before SQLite sees it; its -wal and -shm take the same mode.
    shared::private_fs::precreate_private_file(&dir.join(DB_FILE)).map_err(sqlx::Error::Io)?;
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .connect_with(options(dir, DEFAULT_BUSY_TIMEOUT))
        .await?;
    sqlx::migrate!("../migrations/terminal").run(&pool).await?;
    Ok(pool)
}

/// Opens the log of an enrolled terminal: the file must exist, pass `PRAGMA quick_check` and
/// hold the terminal's tables before anything (migrations included) writes to it. A damaged
/// log is refused rather than repaired or replaced.
pub async fn open_existing(dir: &Path, busy_timeout: Duration) -> Result<SqlitePool, StoreError> {
    let path = dir.join(DB_FILE);
    let damaged = |detail: String| StoreError::Damaged {
        path: path.display().to_string(),
        detail,
    };
    // SQLite takes an empty file for a new database: never for an enrolled terminal's log.
    match std::fs::metadata(&path) {
        Ok(m) if m.len() == 0 => return Err(damaged("the file is empty".to_owned())),
        Ok(_) => {}
        Err(e) => return Err(damaged(e.to_string())),
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(1)
        .connect_with(options(dir, busy_timeout).create_if_missing(false))
        .await
        .map_err(|e| damaged(e.to_string()))?;
    let verdict = check_integrity(&pool, false).await;
    let result = match verdict {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(damaged(problems.join("; "))),
        Err(e) => Err(damaged(e.to_string())),
    };
    if let Err(e) = result {
        pool.close().await;
        return Err(e);
    }
    let tables: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('identity', 'events', 'meals')",
    )
    .fetch_one(&pool)
    .await
    .map_err(|e| damaged(e.to_string()))?;
    if tables.0 != 3 {
        pool.close().await;
        return Err(damaged(
            "it is not a terminal meal log (its tables are missing)".to_owned(),
        ));
    }
    sqlx::migrate!("../migrations/terminal").run(&pool).await?;
    Ok(pool)
}

/// `PRAGMA quick_check` (or the full `integrity_check`): the problems found, none when sound.
pub async fn check_integrity(pool: &SqlitePool, full: bool) -> Result<Vec<String>, StoreError> {
    let pragma = if full {
        "PRAGMA integrity_check"
    } else {
        "PRAGMA quick_check"
    };
    let rows: Vec<(String,)> = sqlx::query_as(pragma).fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|r| r.0)
        .filter(|r| r != "ok")
        .collect())
}

/// What `canteen-terminal check` verifies beyond SQLite's own check: the log's invariants.
pub async fn check_log(pool: &SqlitePool) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let (n, max): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(pool)
        .await?;
    if n != max {
        problems.push(format!(
            "seq is not contiguous: {n} events but the highest seq is {max}"
        ));
    }
    let (orphans,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM meals m LEFT JOIN events e ON e.seq = m.event_seq \
         WHERE e.seq IS NULL OR e.verdict <> 'ok' OR e.voucher_id <> m.voucher_id",
    )
    .fetch_one(pool)
    .await?;
    if orphans > 0 {
        problems.push(format!("{orphans} meal rows without their ok event"));
    }
    let (unmatched,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM events e WHERE e.verdict = 'ok' AND NOT EXISTS \
         (SELECT 1 FROM meals m WHERE m.event_seq = e.seq)",
    )
    .fetch_one(pool)
    .await?;
    if unmatched > 0 {
        problems.push(format!("{unmatched} ok events without their meal row"));
    }
    Ok(problems)
}

/// Copies committed WAL pages into the database file every `every`, on a connection of its own,
/// so that no scan pays for a checkpoint inside its commit.
pub fn spawn_checkpointer(pool: SqlitePool, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!("WAL checkpoint failed (will retry): {e}");
            }
        }
    })
}

/// How often long-running commands (scan from stdin, kiosk) checkpoint.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub terminal_id: Uuid,
    pub label: Option<String>,
    pub school_code: u32,
    pub school_bin: String,
    pub school_name: String,
    pub server_url: String,
    pub root_public_key: String,
    pub enrolled_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    pub trust_list: Option<SignedTrustList>,
    pub trust_version: Option<u64>,
    pub snapshot_cursor: i64,
    pub last_sync_at: Option<i64>,
    pub server_offset: Option<i64>,
    pub uploaded_through: i64,
    pub last_seen_time: i64,
    pub last_sync_attempt_at: Option<i64>,
    pub last_sync_error: Option<String>,
}

pub async fn identity(pool: &SqlitePool) -> Result<Option<Identity>, StoreError> {
    type Row = (
        String,
        Option<String>,
        i64,
        String,
        String,
        String,
        String,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT terminal_id, label, school_code, school_bin, school_name, server_url, \
         root_public_key, enrolled_at FROM identity WHERE id = 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Identity {
            terminal_id: parse_uuid("identity.terminal_id", &r.0)?,
            label: r.1,
            school_code: u32::try_from(r.2)
                .map_err(|_| corrupt("identity.school_code", r.2.to_string()))?,
            school_bin: r.3,
            school_name: r.4,
            server_url: r.5,
            root_public_key: r.6,
            enrolled_at: r.7,
        })
    })
    .transpose()
}

pub async fn sync_state(pool: &SqlitePool) -> Result<SyncState, StoreError> {
    type Row = (
        Option<String>,
        Option<i64>,
        i64,
        Option<i64>,
        Option<i64>,
        i64,
        i64,
        Option<i64>,
        Option<String>,
    );
    // last_seen_time comes back as the effective watermark (see the migration).
    let row: Option<Row> = sqlx::query_as(
        "SELECT trust_list, trust_version, snapshot_cursor, last_sync_at, server_offset, \
         uploaded_through, max(last_seen_time, COALESCE((SELECT MAX(scanned_at) FROM events \
         WHERE seq > s.watermark_seq), 0)), last_sync_attempt_at, last_sync_error \
         FROM sync_state s WHERE id = 1",
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(SyncState::default());
    };
    let trust_list = match r.0 {
        Some(text) => {
            Some(serde_json::from_str(&text).map_err(|_| corrupt("sync_state.trust_list", text))?)
        }
        None => None,
    };
    Ok(SyncState {
        trust_list,
        trust_version: r.1.map(|v| v as u64),
        snapshot_cursor: r.2,
        last_sync_at: r.3,
        server_offset: r.4,
        uploaded_through: r.5,
        last_seen_time: r.6,
        last_sync_attempt_at: r.7,
        last_sync_error: r.8,
    })
}

/// Writes the identity and an empty sync state; refuses when the terminal is already enrolled.
pub async fn insert_identity(pool: &SqlitePool, id: &Identity, now: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT INTO identity (id, terminal_id, label, school_code, school_bin, school_name, \
         server_url, root_public_key, enrolled_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.terminal_id.to_string())
    .bind(&id.label)
    .bind(i64::from(id.school_code))
    .bind(&id.school_bin)
    .bind(&id.school_name)
    .bind(&id.server_url)
    .bind(&id.root_public_key)
    .bind(id.enrolled_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO sync_state (id, last_seen_time) VALUES (1, ?)")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct StoredCalendar {
    pub school_year: SchoolYear,
    /// The year after `school_year`, once the server has it.
    pub next_school_year: Option<SchoolYear>,
    pub meal_windows: Vec<MealWindow>,
}

pub async fn calendar(pool: &SqlitePool) -> Result<Option<StoredCalendar>, StoreError> {
    let row: Option<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT school_year, next_school_year, meal_windows FROM school_calendar WHERE id = 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(|(y, next, w)| {
        Ok(StoredCalendar {
            school_year: serde_json::from_str(&y)
                .map_err(|_| corrupt("school_calendar.school_year", y.clone()))?,
            next_school_year: next
                .map(|n| {
                    serde_json::from_str(&n)
                        .map_err(|_| corrupt("school_calendar.next_school_year", n.clone()))
                })
                .transpose()?,
            meal_windows: serde_json::from_str(&w)
                .map_err(|_| corrupt("school_calendar.meal_windows", w.clone()))?,
        })
    })
    .transpose()
}

pub async fn listed_vouchers(pool: &SqlitePool) -> Result<Vec<SnapshotVoucher>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT voucher_id, status, valid_from, valid_to, display_name, grade, class_letter, \
         card_number FROM vouchers WHERE listed = 1",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(SnapshotVoucher {
                voucher_id: parse_uuid("vouchers.voucher_id", &r.0)?,
                status: VoucherStatus::parse(&r.1)
                    .ok_or_else(|| corrupt("vouchers.status", r.1))?,
                valid_from: parse_day("vouchers.valid_from", &r.2)?,
                valid_to: parse_day("vouchers.valid_to", &r.3)?,
                display_name: r.4,
                grade: u8::try_from(r.5).map_err(|_| corrupt("vouchers.grade", r.5.to_string()))?,
                class_letter: r.6,
                card_number: r.7,
                moved_away: false,
            })
        })
        .collect()
}

/// A meal already served on a day: here (`terminal_label` None) or at another terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorMeal {
    pub voucher_id: Uuid,
    pub meal_kind: MealKind,
    pub served_at: i64,
    pub terminal_label: Option<String>,
    /// For a QR meal served here: the token text it was served on (to tell a repeat).
    pub proof: Option<String>,
}

pub async fn meals_on(pool: &SqlitePool, day: NaiveDate) -> Result<Vec<PriorMeal>, StoreError> {
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT m.voucher_id, m.meal_kind, m.served_at, e.proof FROM meals m \
         JOIN events e ON e.seq = m.event_seq WHERE m.service_day = ? ORDER BY m.served_at",
    )
    .bind(day.to_string())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(v, k, at, proof)| {
            Ok(PriorMeal {
                voucher_id: parse_uuid("meals.voucher_id", &v)?,
                meal_kind: parse_kind("meals.meal_kind", &k)?,
                served_at: at,
                terminal_label: None,
                proof,
            })
        })
        .collect()
}

pub async fn served_elsewhere_on(
    pool: &SqlitePool,
    day: NaiveDate,
) -> Result<Vec<PriorMeal>, StoreError> {
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT voucher_id, meal_kind, served_at, terminal_label FROM served_elsewhere \
         WHERE service_day = ? ORDER BY served_at",
    )
    .bind(day.to_string())
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(v, k, at, label)| {
            Ok(PriorMeal {
                voucher_id: parse_uuid("served_elsewhere.voucher_id", &v)?,
                meal_kind: parse_kind("served_elsewhere.meal_kind", &k)?,
                served_at: at,
                terminal_label: Some(label),
                proof: None,
            })
        })
        .collect()
}

/// One scan about to be appended to the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub scanned_at: i64,
    pub service_day: NaiveDate,
    pub verdict: Verdict,
    pub source: ScanSource,
    pub meal_kind: MealKind,
    pub voucher_id: Option<Uuid>,
    pub key_id: Option<String>,
    /// The token text; kept only when the event is a served QR meal.
    pub proof: Option<String>,
    pub repeat: bool,
    /// For a rejection: where the flood rules let it go (see [`crate::flood`]). The default
    /// places it in a new row of its own.
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub seq: i64,
    /// The verdict as committed; an `ok` becomes `already_served` when another process on this
    /// data dir served the same (voucher, day, meal kind) first.
    pub verdict: Verdict,
    /// For `already_served` found here: when the earlier meal was served.
    pub earlier_served_at: Option<i64>,
    /// For `already_served` found here: the token the earlier meal was served on.
    pub earlier_proof: Option<String>,
    pub repeat: bool,
    /// Where the scan went: a new row, or counted into an existing event.
    pub landed: Landed,
    /// The event the scan is recorded in (an existing one when it was counted into it).
    pub event_id: Uuid,
    /// That event's count after this scan.
    pub count: i64,
}

/// Appends the event — and, for `ok`, its meal row, written by the `events_ok_serves_meal`
/// trigger — in one `BEGIN IMMEDIATE … COMMIT` transaction, and returns only once `COMMIT`
/// itself succeeded (synchronous=FULL: the WAL is fsynced by then). Any failure on the way —
/// a full disk, an I/O error, a failing fsync, a lock held past the busy timeout — is an error
/// and nothing may be shown as recorded; `seq` is the rowid, so the next committed event takes
/// the same number and no gap is left for a row that does not exist.
///
/// If another process on this data dir served the same (voucher, day, meal kind) first, the
/// `ok` INSERT fails on the meal's primary key; the scan is then recorded as `already_served`
/// in the same transaction.
pub async fn record(pool: &SqlitePool, ev: &NewEvent) -> Result<Recorded, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut commit_attempted = false;
    let result = record_on(&mut conn, ev, &mut commit_attempted).await;
    if result.is_err() {
        // The transaction may be open, rolled back by SQLite, or its connection in an error
        // state: roll back what can be, and never hand this connection to the next scan.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        if commit_attempted {
            if let Err(e) = overwrite_failed_commit(&mut conn, ev.scanned_at).await {
                tracing::warn!("could not overwrite the failed commit's frames: {e}");
            }
        }
        let _ = conn.detach().close().await;
    }
    result
}

/// After a failed `COMMIT` its frames may sit in the WAL complete with their commit mark (the
/// write went through, the fsync failed). The wal-index never took them, so the next writer
/// starts on the same frame: this transaction overwrites them, and their checksum chain breaks.
/// Whether it then commits or fails too, recovery can no longer revive the scan shown as
/// `not_recorded`.
async fn overwrite_failed_commit(conn: &mut SqliteConnection, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let done = sqlx::query(
        "INSERT INTO commit_failures (id, failures, last_at) VALUES (1, 1, ?) \
         ON CONFLICT (id) DO UPDATE SET failures = failures + 1, last_at = excluded.last_at",
    )
    .bind(at)
    .execute(&mut *conn)
    .await;
    let done = match done {
        Ok(_) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    done
}

async fn record_on(
    conn: &mut SqliteConnection,
    ev: &NewEvent,
    commit_attempted: &mut bool,
) -> Result<Recorded, StoreError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    if ev.verdict != Verdict::Ok {
        if let Some(folded) = fold(&mut *conn, ev).await? {
            *commit_attempted = true;
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            return Ok(folded);
        }
    }
    let recorded = match insert_event(&mut *conn, ev).await {
        Ok(seq) => Recorded {
            seq,
            verdict: ev.verdict,
            earlier_served_at: None,
            earlier_proof: None,
            repeat: ev.repeat,
            landed: Landed::Row {
                seq,
                capped: ev.placement.capped && ev.verdict != Verdict::Ok,
            },
            event_id: ev.event_id,
            count: 1,
        },
        Err(sqlx::Error::Database(e)) if ev.verdict == Verdict::Ok && e.is_unique_violation() => {
            // Only the failed statement was undone; the transaction goes on.
            let existing: Option<(i64, Option<String>)> = sqlx::query_as(
                "SELECT m.served_at, e.proof FROM meals m JOIN events e ON e.seq = m.event_seq \
                 WHERE m.service_day = ? AND m.meal_kind = ? AND m.voucher_id = ?",
            )
            .bind(ev.service_day.to_string())
            .bind(ev.meal_kind.as_str())
            .bind(ev.voucher_id.map(|v| v.to_string()))
            .fetch_optional(&mut *conn)
            .await?;
            // Another process of this data dir served it in between: the same rule as in memory.
            let repeat = existing.as_ref().is_some_and(|(at, earlier)| {
                crate::verify::is_repeat(
                    earlier.as_deref(),
                    *at,
                    ev.proof.as_deref(),
                    ev.scanned_at,
                )
            });
            let refused = NewEvent {
                verdict: Verdict::AlreadyServed,
                proof: None,
                repeat,
                placement: Placement::default(),
                ..ev.clone()
            };
            let seq = insert_event(&mut *conn, &refused).await?;
            Recorded {
                seq,
                verdict: Verdict::AlreadyServed,
                earlier_served_at: existing.as_ref().map(|e| e.0),
                earlier_proof: existing.and_then(|e| e.1),
                repeat,
                landed: Landed::Row { seq, capped: false },
                event_id: ev.event_id,
                count: 1,
            }
        }
        Err(e) => return Err(e.into()),
    };
    *commit_attempted = true;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(recorded)
}

/// Counts a rejection into an existing event where its placement allows and the event is not
/// sealed for an upload: the previous event for the same input (only while it is still the
/// last of the log), else the capped event of its key. `None` when neither took it.
async fn fold(conn: &mut SqliteConnection, ev: &NewEvent) -> Result<Option<Recorded>, sqlx::Error> {
    let p = &ev.placement;
    let tries = [
        (p.same_input, true),
        (p.capped_event.filter(|_| p.capped), false),
    ];
    for (seq, must_be_last) in tries {
        let Some(seq) = seq else { continue };
        // fetch_all: the statement runs to its end before the COMMIT.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE events SET count = count + 1 \
             WHERE seq = ?1 AND verdict <> 'ok' AND count < ?2 \
               AND (?3 = 0 OR seq = (SELECT MAX(seq) FROM events)) \
               AND seq > (SELECT max(uploaded_through, sealed_through) FROM sync_state WHERE id = 1) \
             RETURNING event_id, count",
        )
        .bind(seq)
        .bind(shared::wire::MAX_EVENT_COUNT)
        .bind(must_be_last)
        .fetch_all(&mut *conn)
        .await?;
        if let Some((event_id, count)) = rows.into_iter().next() {
            let event_id = Uuid::parse_str(&event_id)
                .map_err(|_| sqlx::Error::Decode("events.event_id is not a UUID".into()))?;
            return Ok(Some(Recorded {
                seq,
                verdict: ev.verdict,
                earlier_served_at: None,
                earlier_proof: None,
                repeat: ev.repeat,
                landed: if must_be_last {
                    Landed::SameInput { seq }
                } else {
                    Landed::CappedEvent { seq }
                },
                event_id,
                count,
            }));
        }
    }
    Ok(None)
}

async fn insert_event(conn: &mut SqliteConnection, ev: &NewEvent) -> Result<i64, sqlx::Error> {
    let proof = if ev.verdict == Verdict::Ok && ev.source == ScanSource::Qr {
        ev.proof.as_deref()
    } else {
        None
    };
    // A capped row stands for many inputs: it names no key id, and a voucher only for
    // `already_served` (RowKey::capped).
    let capped = ev.placement.capped && ev.verdict != Verdict::Ok;
    let (voucher_id, key_id) = if capped {
        let voucher = ev
            .voucher_id
            .filter(|_| ev.verdict == Verdict::AlreadyServed);
        (voucher, None)
    } else {
        (ev.voucher_id, ev.key_id.as_deref())
    };
    let done = sqlx::query(
        "INSERT INTO events (event_id, scanned_at, service_day, verdict, source, meal_kind, \
         voucher_id, key_id, proof, repeat, capped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ev.event_id.to_string())
    .bind(ev.scanned_at)
    .bind(ev.service_day.to_string())
    .bind(ev.verdict.code())
    .bind(source_str(ev.source))
    .bind(ev.meal_kind.as_str())
    .bind(voucher_id.map(|v| v.to_string()))
    .bind(key_id)
    .bind(proof)
    .bind(ev.repeat)
    .bind(capped)
    .execute(&mut *conn)
    .await?;
    Ok(done.last_insert_rowid())
}

/// Rejection rows of the minute holding `now` among the last `limit` events, for
/// [`crate::flood::Guard::seed`].
pub async fn flood_seed(
    pool: &SqlitePool,
    now: i64,
    limit: i64,
) -> Result<Vec<crate::flood::SeedRow>, StoreError> {
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        bool,
        bool,
        bool,
    );
    let start = now.div_euclid(60) * 60;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, verdict, service_day, source, meal_kind, voucher_id, key_id, repeat, capped, \
         seq > (SELECT max(uploaded_through, sealed_through) FROM sync_state WHERE id = 1) \
         FROM events WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM events) - ? \
         AND scanned_at >= ? AND scanned_at < ? AND verdict <> 'ok' ORDER BY seq",
    )
    .bind(limit)
    .bind(start)
    .bind(start + 60)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(crate::flood::SeedRow {
                seq: r.0,
                key: RowKey {
                    verdict: Verdict::from_str(&r.1).map_err(|_| corrupt("events.verdict", r.1))?,
                    service_day: parse_day("events.service_day", &r.2)?,
                    source: parse_source("events.source", &r.3)?,
                    meal_kind: parse_kind("events.meal_kind", &r.4)?,
                    voucher_id: r
                        .5
                        .as_deref()
                        .map(|v| parse_uuid("events.voucher_id", v))
                        .transpose()?,
                    key_id: r.6,
                    repeat: r.7,
                },
                capped: r.8,
                open: r.9,
            })
        })
        .collect()
}

pub fn source_str(s: ScanSource) -> &'static str {
    match s {
        ScanSource::Qr => "qr",
        ScanSource::Card => "card",
    }
}

fn parse_source(what: &'static str, s: &str) -> Result<ScanSource, StoreError> {
    match s {
        "qr" => Ok(ScanSource::Qr),
        "card" => Ok(ScanSource::Card),
        _ => Err(corrupt(what, s)),
    }
}

fn parse_uuid(what: &'static str, s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| corrupt(what, s))
}

fn parse_day(what: &'static str, s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| corrupt(what, s))
}

fn parse_kind(what: &'static str, s: &str) -> Result<MealKind, StoreError> {
    MealKind::from_str(s).map_err(|_| corrupt(what, s))
}

/// Events with `after < seq <= through`, oldest first, at most `limit`.
pub async fn events_between(
    pool: &SqlitePool,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<TerminalEvent>, StoreError> {
    type Row = (
        i64,
        String,
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
        i64,
        bool,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, event_id, scanned_at, service_day, verdict, source, meal_kind, voucher_id, \
         key_id, proof, repeat, count, capped FROM events WHERE seq > ? AND seq <= ? \
         ORDER BY seq LIMIT ?",
    )
    .bind(after)
    .bind(through)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(TerminalEvent {
                seq: r.0,
                event_id: parse_uuid("events.event_id", &r.1)?,
                scanned_at: r.2,
                service_day: parse_day("events.service_day", &r.3)?,
                verdict: Verdict::from_str(&r.4).map_err(|_| corrupt("events.verdict", r.4))?,
                source: parse_source("events.source", &r.5)?,
                meal_kind: parse_kind("events.meal_kind", &r.6)?,
                voucher_id: r
                    .7
                    .as_deref()
                    .map(|v| parse_uuid("events.voucher_id", v))
                    .transpose()?,
                key_id: r.8,
                proof: r.9,
                repeat: r.10,
                count: r.11,
                capped: r.12,
            })
        })
        .collect()
}

pub async fn last_seq(pool: &SqlitePool) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// Seals every event logged so far before an upload reads them: from now on none of them
/// changes (a rejection's count stops growing; the next repeat starts a new event), so what
/// the server keeps of each seq is final. Returns the highest sealed seq. Its own transaction:
/// a scan that counts into an event either committed before (and is uploaded with it) or
/// sees the seal.
pub async fn seal_for_upload(pool: &SqlitePool) -> Result<i64, StoreError> {
    let (sealed,): (i64,) = sqlx::query_as(
        "UPDATE sync_state SET sealed_through = \
         max(sealed_through, (SELECT COALESCE(MAX(seq), 0) FROM events)) \
         WHERE id = 1 RETURNING sealed_through",
    )
    .fetch_one(pool)
    .await?;
    Ok(sealed)
}

/// Records the server's acknowledgement: the next upload starts after it.
pub async fn set_uploaded_through(pool: &SqlitePool, seq: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_state SET uploaded_through = ? WHERE id = 1")
        .bind(seq)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn note_sync_attempt(
    pool: &SqlitePool,
    at: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sync_state SET last_sync_attempt_at = ?, last_sync_error = ? WHERE id = 1")
        .bind(at)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// What a verified snapshot changes, applied in one transaction.
pub struct SnapshotApply<'a> {
    pub snapshot: &'a Snapshot,
    pub trust_version: u64,
    pub own_terminal_id: Uuid,
    pub local_now: i64,
    pub server_offset: i64,
    /// The clock watermark after this sync (see `sync::watermark_after_sync`); events logged
    /// before this sync no longer count towards it.
    pub last_seen_time: i64,
}

pub async fn apply_snapshot(pool: &SqlitePool, a: &SnapshotApply<'_>) -> Result<(), StoreError> {
    let s = a.snapshot;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let trust_json = serde_json::to_string(&s.trust_list).expect("trust list serialises");
    sqlx::query(
        "UPDATE sync_state SET trust_list = ?, trust_version = ?, snapshot_cursor = ?, \
         last_sync_at = ?, server_offset = ?, last_seen_time = ?, last_sync_attempt_at = ?, \
         last_sync_error = NULL, watermark_seq = (SELECT COALESCE(MAX(seq), 0) FROM events) \
         WHERE id = 1",
    )
    .bind(trust_json)
    .bind(a.trust_version as i64)
    .bind(s.cursor)
    .bind(a.local_now)
    .bind(a.server_offset)
    .bind(a.last_seen_time)
    .bind(a.local_now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO school_calendar (id, school_year, next_school_year, meal_windows, updated_at) \
         VALUES (1, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET school_year = excluded.school_year, \
         next_school_year = excluded.next_school_year, \
         meal_windows = excluded.meal_windows, updated_at = excluded.updated_at",
    )
    .bind(serde_json::to_string(&s.calendar).expect("calendar serialises"))
    .bind(
        s.next_calendar
            .as_ref()
            .map(|y| serde_json::to_string(y).expect("calendar serialises")),
    )
    .bind(serde_json::to_string(&s.meal_windows).expect("meal windows serialise"))
    .bind(a.local_now)
    .execute(&mut *tx)
    .await?;
    if s.full {
        sqlx::query("UPDATE vouchers SET listed = 0")
            .execute(&mut *tx)
            .await?;
    }
    for v in &s.vouchers {
        // A voucher that moved to another school is kept (rows are never deleted) but unlisted:
        // the counter refuses it as unknown, and its card names nobody here any more.
        sqlx::query(
            "INSERT INTO vouchers (voucher_id, status, valid_from, valid_to, display_name, grade, \
             class_letter, card_number, listed, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (voucher_id) DO UPDATE SET status = excluded.status, \
             valid_from = excluded.valid_from, valid_to = excluded.valid_to, \
             display_name = excluded.display_name, grade = excluded.grade, \
             class_letter = excluded.class_letter, card_number = excluded.card_number, \
             listed = excluded.listed, updated_at = excluded.updated_at",
        )
        .bind(v.voucher_id.to_string())
        .bind(v.status.as_str())
        .bind(v.valid_from.to_string())
        .bind(v.valid_to.to_string())
        .bind(&v.display_name)
        .bind(i64::from(v.grade))
        .bind(&v.class_letter)
        .bind(if v.moved_away {
            None
        } else {
            v.card_number.as_deref()
        })
        .bind(!v.moved_away)
        .bind(a.local_now)
        .execute(&mut *tx)
        .await?;
    }
    for m in &s.served_today {
        if m.terminal_id == a.own_terminal_id {
            continue;
        }
        sqlx::query(
            "INSERT INTO served_elsewhere (voucher_id, service_day, meal_kind, served_at, \
             terminal_id, terminal_label) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(m.voucher_id.to_string())
        .bind(m.service_day.to_string())
        .bind(m.meal_kind.as_str())
        .bind(m.served_at)
        .bind(m.terminal_id.to_string())
        .bind(&m.terminal_label)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The day's local summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DayCounts {
    pub served: Vec<(MealKind, i64)>,
    /// Scans by verdict: each event with its count.
    pub by_verdict: Vec<(Verdict, i64)>,
    /// Rejections over the per-minute cap, kept only as counts in capped events.
    pub capped: i64,
}

pub async fn day_counts(pool: &SqlitePool, day: NaiveDate) -> Result<DayCounts, StoreError> {
    let served: Vec<(String, i64)> = sqlx::query_as(
        "SELECT meal_kind, COUNT(*) FROM meals WHERE service_day = ? GROUP BY meal_kind ORDER BY meal_kind",
    )
    .bind(day.to_string())
    .fetch_all(pool)
    .await?;
    let verdicts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT verdict, SUM(count) FROM events WHERE service_day = ? GROUP BY verdict",
    )
    .bind(day.to_string())
    .fetch_all(pool)
    .await?;
    let mut by_verdict = verdicts
        .into_iter()
        .map(|(v, n)| {
            Ok((
                Verdict::from_str(&v).map_err(|_| corrupt("events.verdict", v))?,
                n,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    by_verdict.sort();
    let (capped,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(SUM(count), 0) FROM events WHERE service_day = ? AND capped = 1",
    )
    .bind(day.to_string())
    .fetch_one(pool)
    .await?;
    Ok(DayCounts {
        capped,
        served: served
            .into_iter()
            .map(|(k, n)| Ok((parse_kind("meals.meal_kind", &k)?, n)))
            .collect::<Result<_, StoreError>>()?,
        by_verdict,
    })
}
