//! `GET /healthz`: the process is up and the database answers.

use crate::error::AppResult;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    state.store.schools().await?;
    Ok(Json(json!({"status": "ok", "time": state.now()})))
}
