//! `/api/v1`: one module per resource, each with its own `router()`.

pub mod health;
pub mod keys;
pub mod school;
pub mod sms;
pub mod terminal;
pub mod wallet;

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(keys::router())
        .merge(sms::router())
        .merge(terminal::router())
        .merge(wallet::router())
        .merge(school::router())
}
