//! What an operator reads about the database itself: queue depths and states for the metrics,
//! and an online copy of a SQLite store for backups.

use super::state_counts::{StateCountStore, VoucherStateCount};
use super::{PgStore, SqliteStore, StoreError, StoreResult};
use async_trait::async_trait;
use std::path::Path;

/// Every state a consent can be in (the `consents.status` check constraint).
pub const CONSENT_STATES: &[&str] = &[
    "pending",
    "requested",
    "repeated",
    "consented",
    "refused",
    "expired",
    "no_phone",
    "withdrawn",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsSnapshot {
    /// SMS not yet sent.
    pub sms_depth: i64,
    /// Seconds since the oldest unsent SMS was queued; 0 when none waits.
    pub sms_oldest_age: i64,
    /// NOBD report revisions not yet accepted by the receiver.
    pub nobd_depth: i64,
    pub nobd_oldest_age: i64,
    /// `(state, count)` for the states that occur.
    pub consents: Vec<(String, i64)>,
    /// Vouchers by school year, state and (revoked) reason, of all schools.
    pub vouchers: Vec<VoucherStateCount>,
    /// Pupils whose personal data retention erased.
    pub pupils_erased: i64,
    pub pool_size: i64,
    pub pool_idle: i64,
    pub pool_max: i64,
}

#[async_trait]
pub trait OpsStore {
    async fn ops_snapshot(&self, now: i64) -> StoreResult<OpsSnapshot>;

    /// Writes a consistent copy of the whole database to `to` while the server keeps serving.
    /// SQLite only; PostgreSQL has its own tools (`pg_dump`, base backups).
    async fn backup_to(&self, to: &Path) -> StoreResult<()>;
}

macro_rules! impl_ops {
    ($t:ty) => {
        #[async_trait]
        impl OpsStore for $t {
            async fn ops_snapshot(&self, now: i64) -> StoreResult<OpsSnapshot> {
                let (sms_depth, sms_oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created_at) FROM sms_outbox WHERE sent_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                let (nobd_depth, nobd_oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created_at) FROM nobd_outbox WHERE delivered_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                let consents: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM consents GROUP BY status")
                        .fetch_all(&self.pool)
                        .await?;
                let vouchers = self.voucher_state_counts(None).await?;
                let pupils_erased = self.erased_pupil_count(None).await?;
                let age = |oldest: Option<i64>| oldest.map(|t| (now - t).max(0)).unwrap_or(0);
                Ok(OpsSnapshot {
                    sms_depth,
                    sms_oldest_age: age(sms_oldest),
                    nobd_depth,
                    nobd_oldest_age: age(nobd_oldest),
                    consents,
                    vouchers,
                    pupils_erased,
                    pool_size: i64::from(self.pool.size()),
                    pool_idle: self.pool.num_idle() as i64,
                    pool_max: i64::from(self.pool.options().get_max_connections()),
                })
            }

            async fn backup_to(&self, to: &Path) -> StoreResult<()> {
                self.backup_into(to).await
            }
        }
    };
}
crate::impl_for_backends!(impl_ops);

impl PgStore {
    async fn backup_into(&self, _to: &Path) -> StoreResult<()> {
        Err(StoreError::Db(sqlx::Error::Configuration(
            "backup copies SQLite stores only; on PostgreSQL use pg_dump or a base backup (docs/deploy.md)"
                .into(),
        )))
    }
}

impl SqliteStore {
    async fn backup_into(&self, to: &Path) -> StoreResult<()> {
        backup_sqlite(self, to).await
    }
}

async fn backup_sqlite(sqlite: &SqliteStore, to: &Path) -> StoreResult<()> {
    let text = to.to_str().ok_or_else(|| {
        StoreError::Db(sqlx::Error::Configuration(
            "the backup path must be valid UTF-8".into(),
        ))
    })?;
    // Created empty and private first (VACUUM INTO accepts an empty file): the copy holds
    // personal data and must never exist readable by others, not even for a moment.
    let io = |e: std::io::Error| StoreError::Db(sqlx::Error::Io(e));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(to).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::Conflict(format!(
                    "{} exists; backups never overwrite a file",
                    to.display()
                ))
            } else {
                io(e)
            }
        })?;
    }
    // VACUUM INTO reads one snapshot of the database in a read transaction: writers carry on
    // (WAL), and the copy holds every transaction committed before it started, compacted,
    // without the -wal file that a plain file copy would have to catch at the same instant.
    let done = sqlx::query("VACUUM INTO $1")
        .bind(text)
        .execute(&sqlite.pool)
        .await;
    if let Err(e) = done {
        // A half-written copy must not pass for a backup.
        let _ = std::fs::remove_file(to);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn snapshot_counts_and_backup_copies() {
        let (store, db) = testing::sqlite().await;
        sqlx::query(
            "INSERT INTO sms_outbox (id, to_phone, text, kind, created_at, next_attempt_at)
             VALUES ('a', '+77010000000', 't', 'login', 100, 100),
                    ('b', '+77010000001', 't', 'login', 40, 40)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let s = store.ops_snapshot(160).await.unwrap();
        assert_eq!((s.sms_depth, s.sms_oldest_age), (2, 120));
        assert_eq!((s.nobd_depth, s.nobd_oldest_age), (0, 0));
        assert!(s.pool_max >= 1);

        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("copy.db");
        store.backup_to(&to).await.unwrap();
        let copy = crate::store::connect_sqlite(&format!("sqlite://{}", to.display()))
            .await
            .unwrap();
        assert_eq!(copy.ops_snapshot(160).await.unwrap().sms_depth, 2);
        let again = store.backup_to(&to).await.unwrap_err().to_string();
        assert!(again.contains("never overwrite"), "{again}");
        drop(db);
    }
}
