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

#[cfg(test)]
mod tests {
    use super::MaintenanceStore;
    use crate::store::testing;

    #[tokio::test]
    async fn checkpoint_empties_the_log() {
        let (store, db) = testing::sqlite().await;
        let wal = format!("{}-wal", db.url.trim_start_matches("sqlite://"));
        for i in 0..50 {
            sqlx::query("INSERT INTO counters (name, value) VALUES ($1, 1)")
                .bind(format!("c{i}"))
                .execute(&store.pool)
                .await
                .unwrap();
        }
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        store.checkpoint().await.unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let limit: i64 = sqlx::query_scalar("PRAGMA journal_size_limit")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(limit, 64 * 1024 * 1024);
    }
}
