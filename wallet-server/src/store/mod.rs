//! Storage: one trait per resource, one implementation per backend, chosen from the URL.
//!
//! SQL is written once, in the dialect both SQLite and PostgreSQL accept, and compiled for each
//! backend by the `impl_for_backends!` macro. Placeholders are `$1`, `$2`, ... numbered in order of
//! first appearance (SQLite numbers `$N` parameters by first appearance, PostgreSQL by N; keeping
//! them in order makes the two agree). Where the dialects differ, `Self::BACKEND` decides.

pub mod anomalies;
pub mod audit;
pub mod consent;
pub mod feedback_read;
pub mod import;
pub mod keys;
pub mod lease;
pub mod maintenance;
pub mod nobd;
pub mod ops;
pub mod retention;
pub mod roster;
pub mod school_terminals;
pub mod school_view;
pub mod sms;
pub mod sql;
pub mod staff;
pub mod state_counts;
pub mod terminals;
pub mod testing;
pub mod vouchers;
pub mod wallet;
pub mod withdrawal;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use anomalies::AnomalyStore;
pub use audit::AuditStore;
pub use consent::ConsentStore;
pub use feedback_read::FeedbackReadStore;
pub use import::ImportStore;
pub use keys::KeyRecordStore;
pub use lease::LeaseStore;
pub use maintenance::MaintenanceStore;
pub use nobd::NobdStore;
pub use ops::OpsStore;
pub use retention::RetentionStore;
pub use roster::RosterStore;
pub use school_terminals::SchoolTerminalStore;
pub use school_view::SchoolViewStore;
pub use sms::SmsOutboxStore;
pub use staff::StaffStore;
pub use state_counts::StateCountStore;
pub use terminals::TerminalStore;
pub use vouchers::VoucherStore;
pub use wallet::WalletStore;
pub use withdrawal::WithdrawalStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the string names what already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("invalid stored value: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(d.constraint().unwrap_or(d.message()).to_owned())
            }
            _ => StoreError::Db(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the server stores. Each resource trait lives in its own module.
pub trait Store:
    RosterStore
    + VoucherStore
    + AuditStore
    + KeyRecordStore
    + ImportStore
    + ConsentStore
    + SmsOutboxStore
    + TerminalStore
    + WalletStore
    + StaffStore
    + SchoolViewStore
    + SchoolTerminalStore
    + FeedbackReadStore
    + NobdStore
    + AnomalyStore
    + MaintenanceStore
    + LeaseStore
    + OpsStore
    + RetentionStore
    + StateCountStore
    + WithdrawalStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
}

#[derive(Clone)]
pub struct SqliteStore {
    pub pool: SqlitePool,
    /// Taken by event uploads for their whole transaction. SQLite has one writer at a time; a
    /// connection that finds the write lock taken sleeps in the busy handler (1, 2, 5, … 100 ms)
    /// and retries, so parallel uploads lost most of their time sleeping (p99 720 ms, half the
    /// throughput of one terminal alone). Queued here, the next one starts the moment the
    /// previous commits.
    pub(crate) event_writer: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone)]
pub struct PgStore {
    pub pool: PgPool,
}

impl SqliteStore {
    pub const BACKEND: Backend = Backend::Sqlite;

    /// See `event_writer`.
    pub(crate) async fn event_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.event_writer.lock().await)
    }
}

impl PgStore {
    pub const BACKEND: Backend = Backend::Postgres;

    /// PostgreSQL writes rows in parallel; uploads of one school take turns with an advisory
    /// lock instead (see `TerminalStore::store_events`).
    pub(crate) async fn event_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

/// Expands `$m!(SqliteStore)` and `$m!(PgStore)`: the same SQL for both backends.
#[macro_export]
macro_rules! impl_for_backends {
    ($m:ident) => {
        $m!($crate::store::SqliteStore);
        $m!($crate::store::PgStore);
    };
}

/// Opens the database named by the URL (`sqlite://PATH` or `postgres://...`), creating a
/// SQLite file if needed, and applies the migrations of that backend.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(connect_postgres(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(connect_sqlite(url).await?))
    } else {
        Err(StoreError::Db(sqlx::Error::Configuration(
            format!(
                "database URL must start with sqlite:// or postgres://, got {:?}",
                redact(url)
            )
            .into(),
        )))
    }
}

/// What SQLite's write-ahead log is cut back to after a truncating checkpoint; the checkpoint
/// job truncates once the log has grown past it (`MaintenanceStore::checkpoint`).
pub const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// SQLite's page size (its default; the schema never sets another), the size of a log frame.
pub const SQLITE_PAGE_BYTES: i64 = 4096;

pub async fn connect_sqlite(url: &str) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a transaction the server acknowledged survives a power cut, not just a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // After a checkpoint resets the log, its file is cut back to this size; without a
        // limit it stays as large as it ever grew (see `MaintenanceStore::checkpoint`).
        .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string())
        // SQLite checkpoints after a commit once the log holds this many pages (default 1,000,
        // 4 MB). A page rewritten by many commits in between is copied to the database once:
        // at pilot scale each upload dirties a few hundred index pages (docs/benchmarks.md,
        // "Pilot scale").
        .pragma("wal_autocheckpoint", "8192");
    if let Some(file) = sqlite_file(url) {
        let io = |e| StoreError::Db(sqlx::Error::Io(e));
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            shared::private_fs::create_private_dir_all(dir).map_err(io)?;
        }
        // Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
        shared::private_fs::precreate_private_file(&file).map_err(io)?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("../migrations/server-sqlite")
        .run(&pool)
        .await?;
    Ok(SqliteStore {
        pool,
        event_writer: Arc::default(),
    })
}

/// The database file of a `sqlite://PATH[?...]` URL; None for in-memory databases.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

pub async fn connect_postgres(url: &str) -> StoreResult<PgStore> {
    let options = PgConnectOptions::from_str(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?;
    sqlx::migrate!("../migrations/server-postgres")
        .run(&pool)
        .await?;
    Ok(PgStore { pool })
}

/// A database URL fit for logs: the password replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Next value of a named global counter (starts at 1).
#[async_trait]
pub trait Counters {
    async fn next_counter(&self, name: &str) -> StoreResult<i64>;
}

macro_rules! impl_counters {
    ($t:ty) => {
        #[async_trait]
        impl Counters for $t {
            async fn next_counter(&self, name: &str) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO counters (name, value) VALUES ($1, 1)
                     ON CONFLICT (name) DO UPDATE SET value = counters.value + 1
                     RETURNING value",
                )
                .bind(name)
                .fetch_one(&self.pool)
                .await?)
            }
        }
    };
}
impl_for_backends!(impl_counters);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sqlite_file_names_the_file_to_create_private() {
        let f = |u: &str| sqlite_file(u).map(|p| p.display().to_string());
        assert_eq!(
            f("sqlite://data/tamaq.db").as_deref(),
            Some("data/tamaq.db")
        );
        assert_eq!(
            f("sqlite:///var/lib/t.db?mode=rwc").as_deref(),
            Some("/var/lib/t.db")
        );
        assert_eq!(f("sqlite://:memory:"), None);
        assert_eq!(f("sqlite://x.db?cache=shared&mode=memory"), None);
        assert_eq!(f("sqlite::memory:"), None);
        assert_eq!(f("sqlite://"), None);
        assert_eq!(f("postgres://u@h/db"), None);
    }

    proptest! {
        /// Whatever the operator types, the file is the part between `sqlite://` and `?`, and an
        /// in-memory database never gets a file created for it.
        #[test]
        fn sqlite_file_is_the_path_before_the_query(path in "[a-zA-Z0-9_./:-]{0,30}", query in "[a-z=&]{0,20}") {
            let url = format!("sqlite://{path}?{query}");
            match sqlite_file(&url) {
                Some(p) => {
                    prop_assert_eq!(p.display().to_string(), path.clone());
                    prop_assert!(path != ":memory:" && !query.split('&').any(|kv| kv == "mode=memory"));
                }
                None => prop_assert!(path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory")),
            }
        }
    }

    #[test]
    fn redact_hides_password() {
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/tamaq.db"), "sqlite://data/tamaq.db");
    }
}
