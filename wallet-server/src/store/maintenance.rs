//! Upkeep of the database itself, run by a background job.

use super::{PgStore, SqliteStore, StoreResult};
use async_trait::async_trait;

/// What a checkpoint did, in WAL frames (pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Frames in the log when the (first) checkpoint ran.
    pub log_frames: i64,
    /// Of those, frames copied into the database file.
    pub copied: i64,
    /// The log was large enough that a truncating checkpoint ran as well.
    pub truncated: bool,
}

#[async_trait]
pub trait MaintenanceStore {
    /// On SQLite, copies the write-ahead log into the database file without waiting for anyone
    /// (`PASSIVE`) and, when the log holds more than `truncate_above_frames` frames afterwards,
    /// once more in the mode that waits for readers and writers and truncates the log (to
    /// `journal_size_limit`). SQLite's own checkpoints never wait for readers, so under steady
    /// parallel load they may never reach the end of the log and it grows without bound; but a
    /// truncating checkpoint stops every writer while it runs (up to 1.8 s seen with a busy
    /// log), so it runs only when the log is large. Nothing on PostgreSQL.
    async fn checkpoint(&self, truncate_above_frames: i64) -> StoreResult<Checkpoint>;
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn checkpoint(&self, truncate_above_frames: i64) -> StoreResult<Checkpoint> {
        // Each returns (busy, log frames, frames checkpointed); busy only means "next round".
        let (busy, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await?;
        let mut done = Checkpoint {
            log_frames: log,
            copied,
            truncated: false,
        };
        if log > truncate_above_frames {
            let (busy, log, copied): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&self.pool)
                    .await?;
            tracing::debug!(busy, log, copied, "WAL checkpoint, truncating");
            done.truncated = busy == 0;
        }
        tracing::debug!(busy, ?done, "WAL checkpoint");
        Ok(done)
    }
}

#[async_trait]
impl MaintenanceStore for PgStore {
    async fn checkpoint(&self, _truncate_above_frames: i64) -> StoreResult<Checkpoint> {
        Ok(Checkpoint::default())
    }
}

#[cfg(test)]
mod tests {
    use super::MaintenanceStore;
    use crate::store::testing;

    #[tokio::test]
    async fn checkpoint_copies_the_log_and_truncates_it_only_when_large() {
        let (store, db) = testing::sqlite().await;
        let wal = format!("{}-wal", db.url.trim_start_matches("sqlite://"));
        let write = |from: usize| {
            let pool = store.pool.clone();
            async move {
                for i in from..from + 50 {
                    sqlx::query("INSERT INTO counters (name, value) VALUES ($1, 1)")
                        .bind(format!("c{i}"))
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        };
        write(0).await;
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(size > 0);
        // A small log is copied but left in place: no writer had to wait.
        let small = store.checkpoint(1_000_000).await.unwrap();
        assert!(small.log_frames > 0 && !small.truncated, "{small:?}");
        assert_eq!(small.copied, small.log_frames);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), size);
        // Above the limit it is truncated.
        write(50).await;
        let large = store.checkpoint(0).await.unwrap();
        assert!(large.truncated, "{large:?}");
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        let limit: i64 = sqlx::query_scalar("PRAGMA journal_size_limit")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(limit, 64 * 1024 * 1024);
    }
}
