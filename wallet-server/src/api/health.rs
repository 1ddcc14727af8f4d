//! `GET /healthz`: the process is up and the database answers. `GET /metrics`: the front
//! door's connection counts in Prometheus text.

use crate::error::AppResult;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.front_door.snapshot().prometheus("tamaq_http"),
    )
}

async fn healthz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    state.store.schools().await?;
    Ok(Json(json!({"status": "ok", "time": state.now()})))
}
