//! Fresh stores for tests: a SQLite file in a temporary folder, or a new PostgreSQL database on
//! the server named by `TAMAQ_TEST_PG_URL` (dropped again when the guard goes).

use super::{connect_postgres, connect_sqlite, PgStore, SqliteStore, Store};
use std::sync::Arc;

pub const PG_ENV: &str = "TAMAQ_TEST_PG_URL";

/// Keeps the test database alive; drops it (or removes the folder) on drop.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop from a thread of its own: this may run inside a runtime that is shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let pool = sqlx::PgPool::connect(&admin).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub async fn sqlite() -> (SqliteStore, TestDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("tamaq.db").display());
    let store = connect_sqlite(&url).await.expect("open SQLite test store");
    (
        store,
        TestDb {
            url,
            _dir: Some(dir),
            pg_admin: None,
        },
    )
}

/// A URL for a brand-new PostgreSQL database; panics with a clear message when the variable is
/// unset (PostgreSQL tests are `#[ignore]`d and only run when asked for).
pub async fn postgres_url() -> (String, TestDb) {
    let admin = std::env::var(PG_ENV).unwrap_or_else(|_| {
        panic!("{PG_ENV} is not set: point it at a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/test")
    });
    let name = format!("tamaq_t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {PG_ENV}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let url = format!("{base}/{name}");
    (
        url.clone(),
        TestDb {
            url,
            _dir: None,
            pg_admin: Some((admin, name)),
        },
    )
}

pub async fn postgres() -> (PgStore, TestDb) {
    let (url, guard) = postgres_url().await;
    let store = connect_postgres(&url)
        .await
        .expect("open PostgreSQL test store");
    (store, guard)
}

pub async fn any(pg: bool) -> (Arc<dyn Store>, TestDb) {
    if pg {
        let (s, g) = postgres().await;
        (Arc::new(s), g)
    } else {
        let (s, g) = sqlite().await;
        (Arc::new(s), g)
    }
}

/// Declares one async test body twice: `<name>_sqlite` and `<name>_postgres` (ignored unless
/// asked for, since it needs a server). The body gets `store: Arc<dyn Store>`.
///
/// ```text
/// backend_test!(imports_roster, |store| async move { ... });
/// ```
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _guard) = $crate::store::testing::any(false).await;
                ($body)(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
            async fn postgres() {
                let (store, _guard) = $crate::store::testing::any(true).await;
                ($body)(store).await;
            }
        }
    };
}
