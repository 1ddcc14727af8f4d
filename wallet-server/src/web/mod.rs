//! Server-rendered web pages: `/school` for school staff, authorities and operators.

pub mod school;

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new().merge(school::router())
}
