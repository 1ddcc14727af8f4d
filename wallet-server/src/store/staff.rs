//! School staff: accounts with their schools, hashed sessions, and login attempts for the rate
//! limits.

use super::StoreResult;
use async_trait::async_trait;
use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StaffAccount {
    pub id: i64,
    pub username: String,
    /// argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

const STAFF_COLUMNS: &str = "id, username, password_hash, role, created_at, disabled_at";

/// Failed attempts within a window: for this username from this address, and from this address
/// for any username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginFailures {
    pub by_user_and_address: i64,
    pub by_address: i64,
}

#[async_trait]
pub trait StaffStore {
    /// Creates the account and its school list in one transaction; `Conflict` if the username
    /// is taken.
    async fn create_staff(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        school_codes: &[i64],
        now: i64,
    ) -> StoreResult<StaffAccount>;
    async fn staff_by_username(&self, username: &str) -> StoreResult<Option<StaffAccount>>;
    async fn staff_school_codes(&self, staff_id: i64) -> StoreResult<Vec<i64>>;
    async fn create_staff_session(
        &self,
        token_hash: &str,
        staff_id: i64,
        now: i64,
        expires_at: i64,
        address: &str,
    ) -> StoreResult<()>;
    /// The account behind a session that has not expired and whose account is not disabled.
    async fn staff_by_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<StaffAccount>>;
    async fn delete_staff_session(&self, token_hash: &str) -> StoreResult<()>;
    async fn record_login_attempt(
        &self,
        username: &str,
        address: &str,
        now: i64,
        success: bool,
    ) -> StoreResult<()>;
    async fn login_failures_since(
        &self,
        username: &str,
        address: &str,
        since: i64,
    ) -> StoreResult<LoginFailures>;
    /// Drops sessions that expired and attempts older than `before`; returns rows removed.
    async fn purge_staff_auth(&self, now: i64, before: i64) -> StoreResult<u64>;
    /// Every account, by username.
    async fn list_staff(&self) -> StoreResult<Vec<StaffAccount>>;
    /// Disables (`Some(time)`) or enables (`None`) an account; disabling also ends its sessions,
    /// in the same transaction. Returns the number of sessions ended.
    async fn set_staff_disabled(&self, staff_id: i64, disabled_at: Option<i64>)
        -> StoreResult<u64>;
    /// Replaces the password hash and ends every session of the account (whoever had the old
    /// password may be signed in); returns the number of sessions ended.
    async fn set_staff_password(&self, staff_id: i64, password_hash: &str) -> StoreResult<u64>;
}

macro_rules! impl_staff {
    ($t:ty) => {
        #[async_trait]
        impl StaffStore for $t {
            async fn create_staff(
                &self,
                username: &str,
                password_hash: &str,
                role: &str,
                school_codes: &[i64],
                now: i64,
            ) -> StoreResult<StaffAccount> {
                let mut tx = self.pool.begin().await?;
                let account: StaffAccount = sqlx::query_as(&format!(
                    "INSERT INTO staff_accounts (username, password_hash, role, created_at)
                     VALUES ($1, $2, $3, $4) RETURNING {STAFF_COLUMNS}"
                ))
                .bind(username)
                .bind(password_hash)
                .bind(role)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                for code in school_codes {
                    sqlx::query(
                        "INSERT INTO staff_schools (staff_id, school_code) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(account.id)
                    .bind(code)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(account)
            }

            async fn staff_by_username(&self, username: &str) -> StoreResult<Option<StaffAccount>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {STAFF_COLUMNS} FROM staff_accounts WHERE username = $1"
                ))
                .bind(username)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn staff_school_codes(&self, staff_id: i64) -> StoreResult<Vec<i64>> {
                Ok(sqlx::query_scalar(
                    "SELECT school_code FROM staff_schools WHERE staff_id = $1 ORDER BY school_code",
                )
                .bind(staff_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn create_staff_session(
                &self,
                token_hash: &str,
                staff_id: i64,
                now: i64,
                expires_at: i64,
                address: &str,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO staff_sessions (token_hash, staff_id, created_at, expires_at, address)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(staff_id)
                .bind(now)
                .bind(expires_at)
                .bind(address)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn staff_by_session(
                &self,
                token_hash: &str,
                now: i64,
            ) -> StoreResult<Option<StaffAccount>> {
                Ok(sqlx::query_as(
                    "SELECT a.id, a.username, a.password_hash, a.role, a.created_at, a.disabled_at
                     FROM staff_sessions s JOIN staff_accounts a ON a.id = s.staff_id
                     WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn delete_staff_session(&self, token_hash: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_login_attempt(
                &self,
                username: &str,
                address: &str,
                now: i64,
                success: bool,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO staff_login_attempts (username, address, at, success)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(username)
                .bind(address)
                .bind(now)
                .bind(success)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn login_failures_since(
                &self,
                username: &str,
                address: &str,
                since: i64,
            ) -> StoreResult<LoginFailures> {
                let by_user_and_address: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM staff_login_attempts
                     WHERE username = $1 AND address = $2 AND at >= $3 AND success = FALSE",
                )
                .bind(username)
                .bind(address)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                let by_address: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM staff_login_attempts
                     WHERE address = $1 AND at >= $2 AND success = FALSE",
                )
                .bind(address)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(LoginFailures {
                    by_user_and_address,
                    by_address,
                })
            }

            async fn list_staff(&self) -> StoreResult<Vec<StaffAccount>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {STAFF_COLUMNS} FROM staff_accounts ORDER BY username"
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn set_staff_disabled(
                &self,
                staff_id: i64,
                disabled_at: Option<i64>,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query("UPDATE staff_accounts SET disabled_at = $1 WHERE id = $2")
                    .bind(disabled_at)
                    .bind(staff_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(super::StoreError::NotFound);
                }
                let ended = if disabled_at.is_some() {
                    sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
                        .bind(staff_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                } else {
                    0
                };
                tx.commit().await?;
                Ok(ended)
            }

            async fn set_staff_password(
                &self,
                staff_id: i64,
                password_hash: &str,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let updated =
                    sqlx::query("UPDATE staff_accounts SET password_hash = $1 WHERE id = $2")
                        .bind(password_hash)
                        .bind(staff_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if updated == 0 {
                    return Err(super::StoreError::NotFound);
                }
                let ended = sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1")
                    .bind(staff_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(ended)
            }

            async fn purge_staff_auth(&self, now: i64, before: i64) -> StoreResult<u64> {
                let sessions = sqlx::query("DELETE FROM staff_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                let attempts = sqlx::query("DELETE FROM staff_login_attempts WHERE at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(sessions + attempts)
            }
        }
    };
}
crate::impl_for_backends!(impl_staff);
