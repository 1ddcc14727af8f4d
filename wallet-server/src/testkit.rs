//! A ready server state for tests: a fresh store (SQLite or PostgreSQL), keys in a temp dir,
//! default settings and a manual clock.

use crate::clock::Clock;
use crate::config::{Paths, Settings};
use crate::state::AppState;
use crate::store::testing::{self, TestDb};

/// 2026-11-23 09:00 local (UTC+5), a Monday of the default 2026-2027 school year.
pub const MONDAY_9AM: i64 = 1_795_406_400;

pub struct TestState {
    pub state: AppState,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
}

pub async fn state(pg: bool) -> TestState {
    state_with(pg, Settings::default()).await
}

pub async fn state_with(pg: bool, settings: Settings) -> TestState {
    let (store, db) = testing::any(pg).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths::new(dir.path().to_path_buf(), Some(db.url.clone()));
    let clock = Clock::manual(MONDAY_9AM);
    let state = AppState::assemble(store, settings, paths, clock, false)
        .await
        .expect("assemble test state");
    TestState { state, db, dir }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monday_9am_is_what_it_says() {
        let day = shared::ServiceDay::from_unix(MONDAY_9AM);
        assert_eq!(day.to_string(), "2026-11-23");
        assert_eq!(
            shared::calendar::local_time(MONDAY_9AM).to_string(),
            "09:00:00"
        );
    }
}
