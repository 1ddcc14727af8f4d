//! Public records of signing keys and the signed trust lists built from them. The private keys
//! live in files (mode 0600) in the data dir's `keys/` folder, never in the database.

use super::StoreResult;
use async_trait::async_trait;
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct KeyRecord {
    pub key_id: String,
    pub public_key: String,
    pub not_before: i64,
    pub not_after: Option<i64>,
    pub verify_until: Option<i64>,
    pub created_at: i64,
}

#[async_trait]
pub trait KeyRecordStore {
    async fn insert_key_record(&self, key: &KeyRecord) -> StoreResult<()>;
    /// Stores `key` only if the database has no signing key yet; `false` when another instance
    /// created the first key. Serialised across instances (an advisory lock on PostgreSQL, the
    /// write lock on SQLite), so a fresh database gets exactly one first key.
    async fn insert_first_key_record(&self, key: &KeyRecord) -> StoreResult<bool>;
    async fn key_records(&self) -> StoreResult<Vec<KeyRecord>>;
    async fn retire_key(&self, key_id: &str, not_after: i64, verify_until: i64) -> StoreResult<()>;
    /// The newest trust list: version and the signed JSON.
    async fn latest_trust_list(&self) -> StoreResult<Option<(i64, String)>>;
    /// `Conflict` when that version exists (another instance published first).
    async fn insert_trust_list(&self, version: i64, signed: &str, now: i64) -> StoreResult<()>;
}

/// The advisory lock taken while the first signing key is created (any constant no other
/// part of the schema uses; "TAMAQKEY" in ASCII).
const FIRST_KEY_LOCK: i64 = 0x54414D41514B4559;

macro_rules! impl_keys {
    ($t:ty) => {
        #[async_trait]
        impl KeyRecordStore for $t {
            async fn insert_key_record(&self, k: &KeyRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (key_id, public_key, not_before, not_after, verify_until, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&k.key_id)
                .bind(&k.public_key)
                .bind(k.not_before)
                .bind(k.not_after)
                .bind(k.verify_until)
                .bind(k.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_first_key_record(&self, k: &KeyRecord) -> StoreResult<bool> {
                let mut tx = self.pool.begin_with(super::sql::begin_write(Self::BACKEND)).await?;
                if Self::BACKEND == super::Backend::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(FIRST_KEY_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
                    .fetch_one(&mut *tx)
                    .await?;
                if existing > 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO signing_keys (key_id, public_key, not_before, not_after, verify_until, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&k.key_id)
                .bind(&k.public_key)
                .bind(k.not_before)
                .bind(k.not_after)
                .bind(k.verify_until)
                .bind(k.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn key_records(&self) -> StoreResult<Vec<KeyRecord>> {
                Ok(sqlx::query_as(
                    "SELECT key_id, public_key, not_before, not_after, verify_until, created_at
                     FROM signing_keys ORDER BY created_at, key_id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn retire_key(&self, key_id: &str, not_after: i64, verify_until: i64) -> StoreResult<()> {
                sqlx::query("UPDATE signing_keys SET not_after = $1, verify_until = $2 WHERE key_id = $3")
                    .bind(not_after)
                    .bind(verify_until)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn latest_trust_list(&self) -> StoreResult<Option<(i64, String)>> {
                Ok(sqlx::query_as("SELECT version, signed FROM trust_lists ORDER BY version DESC LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_trust_list(&self, version: i64, signed: &str, now: i64) -> StoreResult<()> {
                sqlx::query("INSERT INTO trust_lists (version, signed, created_at) VALUES ($1, $2, $3)")
                    .bind(version)
                    .bind(signed)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
crate::impl_for_backends!(impl_keys);
