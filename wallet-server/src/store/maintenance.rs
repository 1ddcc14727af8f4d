//! Upkeep of the database itself, run by a background job.

use super::{PgStore, SqliteStore, StoreResult};
use async_trait::async_trait;

#[async_trait]
pub trait MaintenanceStore {
    /// On SQLite, copies the write-ahead log into the database file and truncates it (to
    /// `journal_size_limit`). SQLite's own checkpoint after a commit never waits for readers, so
    /// under steady parallel load it may never reach the end of the log, and the log grows
    /// without bound; this one waits (up to the busy timeout) until it can. Nothing on PostgreSQL.
    async fn checkpoint(&self) -> StoreResult<()>;
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn checkpoint(&self) -> StoreResult<()> {
        // Returns (busy, log frames, frames checkpointed); busy only means "try next round".
        let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await?;
        tracing::debug!(busy, log, done, "WAL checkpoint");
        Ok(())
    }
}

#[async_trait]
impl MaintenanceStore for PgStore {
    async fn checkpoint(&self) -> StoreResult<()> {
        Ok(())
    }
}
