//! A ready server state for tests: a fresh store (SQLite or PostgreSQL), keys in a temp dir,
//! default settings and a manual clock.

use crate::clock::Clock;
use crate::config::{Paths, Settings};
use crate::lifecycle;
use crate::state::AppState;
use crate::store::testing::{self, TestDb};
use crate::store::vouchers::{NewVoucher, Voucher};
use crate::store::Store;
use shared::calendar::SchoolYear;

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

/// Issues `year`'s voucher to a pupil through the lifecycle (as a consent does); panics if the
/// pupil has one for that year already.
pub async fn issue_voucher(
    store: &dyn Store,
    pupil_id: i64,
    school_code: i64,
    year: &SchoolYear,
    now: i64,
) -> Voucher {
    let row = NewVoucher {
        pupil_id,
        school_code,
        sms: None,
    };
    let why = lifecycle::IssueReason::Consented;
    lifecycle::issue(store, year, &[row], why, "test", now)
        .await
        .expect("issue a voucher")
        .pop()
        .expect("the pupil had no voucher for that year")
}

/// Activates an issued voucher through the lifecycle (as its parent does).
pub async fn activate_voucher(store: &dyn Store, v: &Voucher, now: i64) -> Voucher {
    lifecycle::activate(store, &v.id, "test", now)
        .await
        .expect("activate a voucher")
        .expect("the voucher was issued")
}

/// Revokes a live voucher through the lifecycle.
pub async fn revoke_voucher(
    store: &dyn Store,
    v: &Voucher,
    why: lifecycle::RevokeReason,
    now: i64,
) -> Voucher {
    lifecycle::revoke(store, std::slice::from_ref(&v.id), why, "test", now)
        .await
        .expect("revoke a voucher")
        .pop()
        .expect("the voucher was issued or active")
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
