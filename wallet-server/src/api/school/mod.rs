//! `/api/v1/school/...`: the JSON (and CSV) side of the school pages, for staff, authorities and
//! operators. Every per-school route takes the school's BIN from the path through
//! [`SchoolAccess`](crate::staff::access::SchoolAccess), which refuses schools outside the
//! caller's scope with 404.

pub mod auth;
pub mod consents;
pub mod feedback;
pub mod meals;
pub mod reports;
pub mod states;
pub mod terminals;
pub mod vouchers;

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(meals::router())
        .merge(terminals::router())
        .merge(feedback::router())
        .merge(reports::router())
        .merge(vouchers::router())
        .merge(states::router())
        .merge(consents::router())
}

/// Today in local time, the default end of every range.
pub(crate) fn today(state: &AppState) -> chrono::NaiveDate {
    shared::ServiceDay::from_unix(state.now()).0
}
