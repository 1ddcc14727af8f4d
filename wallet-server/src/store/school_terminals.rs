//! A school's canteen terminals as staff manage them: their sync state, one-time enrollment
//! codes (kept as SHA-256 hashes) and revocation.

use super::StoreResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct TerminalRow {
    pub id: String,
    pub label: String,
    pub enrolled_at: i64,
    pub revoked_at: Option<i64>,
    pub last_sync_at: Option<i64>,
    /// Terminal clock minus server clock at the last sync, seconds.
    pub clock_offset: Option<i64>,
    pub last_seq: i64,
    /// The version the terminal last named.
    pub version: Option<String>,
    /// Set while its uploads are refused until it is upgraded.
    pub upgrade_required_at: Option<i64>,
}

/// An enrollment code as listed: the code itself is shown once, at creation, and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct EnrollCodeRow {
    pub created_at: i64,
    pub expires_at: i64,
    pub created_by: String,
    pub used_at: Option<i64>,
    pub terminal_id: Option<String>,
}

#[async_trait]
pub trait SchoolTerminalStore {
    async fn school_terminals(&self, school_code: i64) -> StoreResult<Vec<TerminalRow>>;
    /// Codes still usable, and the most recent used ones.
    async fn school_enroll_codes(
        &self,
        school_code: i64,
        now: i64,
    ) -> StoreResult<Vec<EnrollCodeRow>>;
    async fn insert_enroll_code(
        &self,
        code_hash: &str,
        school_code: i64,
        now: i64,
        expires_at: i64,
        created_by: &str,
    ) -> StoreResult<()>;
    /// Marks the school's terminal revoked; `None` if the school has no such terminal. A
    /// terminal revoked before keeps its first revocation time.
    async fn revoke_school_terminal(
        &self,
        school_code: i64,
        terminal_id: &str,
        now: i64,
    ) -> StoreResult<Option<TerminalRow>>;
}

const TERMINAL_COLUMNS: &str =
    "id, label, enrolled_at, revoked_at, last_sync_at, clock_offset, last_seq, version, \
     upgrade_required_at";

macro_rules! impl_school_terminals {
    ($t:ty) => {
        #[async_trait]
        impl SchoolTerminalStore for $t {
            async fn school_terminals(&self, school_code: i64) -> StoreResult<Vec<TerminalRow>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {TERMINAL_COLUMNS} FROM terminals WHERE school_code = $1
                     ORDER BY revoked_at IS NOT NULL, enrolled_at, id"
                ))
                .bind(school_code)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn school_enroll_codes(
                &self,
                school_code: i64,
                now: i64,
            ) -> StoreResult<Vec<EnrollCodeRow>> {
                Ok(sqlx::query_as(
                    "SELECT created_at, expires_at, created_by, used_at, terminal_id
                     FROM enroll_codes
                     WHERE school_code = $1 AND (used_at IS NOT NULL OR expires_at > $2)
                     ORDER BY created_at DESC LIMIT 20",
                )
                .bind(school_code)
                .bind(now)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_enroll_code(
                &self,
                code_hash: &str,
                school_code: i64,
                now: i64,
                expires_at: i64,
                created_by: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO enroll_codes (code_hash, school_code, created_at, expires_at, created_by)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(code_hash)
                .bind(school_code)
                .bind(now)
                .bind(expires_at)
                .bind(created_by)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn revoke_school_terminal(
                &self,
                school_code: i64,
                terminal_id: &str,
                now: i64,
            ) -> StoreResult<Option<TerminalRow>> {
                Ok(sqlx::query_as(&format!(
                    "UPDATE terminals SET revoked_at = COALESCE(revoked_at, $1)
                     WHERE id = $2 AND school_code = $3
                     RETURNING {TERMINAL_COLUMNS}"
                ))
                .bind(now)
                .bind(terminal_id)
                .bind(school_code)
                .fetch_optional(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_school_terminals);
