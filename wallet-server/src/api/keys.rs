//! `GET /api/v1/keys`: the signed trust list, for anyone who verifies Tamaq tokens.

use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::trust::SignedTrustList;

pub fn router() -> Router<AppState> {
    Router::new().route("/keys", get(trust_list))
}

async fn trust_list(State(state): State<AppState>) -> Json<SignedTrustList> {
    Json(state.keys.active().trust.clone())
}
