//! The few steps the tool does straight in the database because at pilot scale the real path
//! would take hours without measuring anything §8 asks about: a million parents answering the
//! consent SMS (a sample of them does answer through the gateway endpoint, and is timed) and a
//! million parents pressing "activate". Plain SQL that both backends accept.

use anyhow::Context;
use sqlx::{postgres::PgPoolOptions, sqlite::SqlitePoolOptions, Connection, PgPool, SqlitePool};

pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        Ok(if url.starts_with("postgres") {
            Db::Postgres(PgPoolOptions::new().max_connections(2).connect(url).await?)
        } else {
            Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await?,
            )
        })
    }

    pub async fn execute(&self, sql: &str) -> anyhow::Result<u64> {
        let done = match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
        };
        Ok(done)
    }

    pub async fn strings(&self, sql: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
            Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        })
    }

    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        })
    }

    /// Database size on disk, MB (SQLite: pages in use; PostgreSQL: `pg_database_size`).
    pub async fn size_mb(&self) -> anyhow::Result<f64> {
        let bytes = match self {
            Db::Sqlite(_) => {
                self.count(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                )
                .await?
            }
            Db::Postgres(_) => {
                self.count("SELECT pg_database_size(current_database())")
                    .await?
            }
        };
        Ok(bytes as f64 / 1e6)
    }

    /// Every parent still asked answers `3#1` at `now`, with the transition NOBD counts.
    pub async fn consent_all_awaiting(&self, now: i64) -> anyhow::Result<u64> {
        self.execute(&format!(
            "INSERT INTO consent_transitions (consent_id, status, at, detail) \
             SELECT id, 'consented', {now}, 'load tool' FROM consents \
             WHERE status IN ('requested', 'repeated')"
        ))
        .await?;
        self.execute(&format!(
            "UPDATE consents SET status = 'consented', ended_at = {now}, updated_at = {now} \
             WHERE status IN ('requested', 'repeated')"
        ))
        .await
    }

    /// Every issued voucher activated by its parent at `now`.
    pub async fn activate_all(&self, now: i64) -> anyhow::Result<u64> {
        self.execute(&format!(
            "UPDATE vouchers SET status = 'active', activated_at = {now} WHERE status = 'issued'"
        ))
        .await
    }
}

/// A fresh database on the PostgreSQL server at `server_url`; dropped by [`drop_database`].
pub async fn create_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {server_url}"))?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let base = server_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .context("a PostgreSQL URL ends with /DATABASE")?;
    Ok(format!("{base}/{name}"))
}

pub async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(server_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}
