//! The audit log: admin actions, imports, key rotations and revocations (DESIGN §9).

use super::StoreResult;
use async_trait::async_trait;
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

#[async_trait]
pub trait AuditStore {
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first.
    async fn audit_entries(&self, limit: i64) -> StoreResult<Vec<AuditEntry>>;
}

macro_rules! impl_audit {
    ($t:ty) => {
        #[async_trait]
        impl AuditStore for $t {
            async fn audit(&self, e: &AuditEntry) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.subject)
                .bind(&e.detail)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn audit_entries(&self, limit: i64) -> StoreResult<Vec<AuditEntry>> {
                Ok(sqlx::query_as(
                    "SELECT at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
crate::impl_for_backends!(impl_audit);
