//! A school's terminals: list with sync state, enrollment codes, revocation.

use crate::error::{AppError, AppResult};
use crate::review::terminals as actions;
use crate::staff::access::SchoolAccess;
use crate::state::AppState;
use crate::store::school_terminals::{EnrollCodeRow, TerminalRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/school/schools/{bin}/terminals", get(list))
        .route("/school/schools/{bin}/enroll-codes", post(create_code))
        .route(
            "/school/schools/{bin}/terminals/{terminal_id}/revoke",
            post(revoke),
        )
}

#[derive(Debug, Serialize)]
pub struct TerminalsResponse {
    pub terminals: Vec<TerminalRow>,
    pub enroll_codes: Vec<EnrollCodeRow>,
}

async fn list(
    State(state): State<AppState>,
    access: SchoolAccess,
) -> AppResult<Json<TerminalsResponse>> {
    let store = state.store.as_ref();
    Ok(Json(TerminalsResponse {
        terminals: store.school_terminals(access.school.code).await?,
        enroll_codes: store
            .school_enroll_codes(access.school.code, state.now())
            .await?,
    }))
}

pub(crate) fn require_manager(access: &SchoolAccess) -> AppResult<()> {
    if access.staff.role.manages_terminals() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the school's staff and operators manage terminals".into(),
        ))
    }
}

#[derive(Debug, Serialize)]
pub struct EnrollCodeResponse {
    /// Shown once: type it into `canteen-terminal enroll --code`.
    pub code: String,
    pub expires_at: i64,
}

async fn create_code(
    State(state): State<AppState>,
    access: SchoolAccess,
) -> AppResult<(StatusCode, Json<EnrollCodeResponse>)> {
    require_manager(&access)?;
    let (code, expires_at) = actions::create_enroll_code(
        state.store.as_ref(),
        &access.school,
        &access.staff.account.username,
        state.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollCodeResponse { code, expires_at }),
    ))
}

async fn revoke(
    State(state): State<AppState>,
    access: SchoolAccess,
    Path((_, terminal_id)): Path<(String, String)>,
) -> AppResult<Json<TerminalRow>> {
    require_manager(&access)?;
    Ok(Json(
        actions::revoke_terminal(
            state.store.as_ref(),
            &access.school,
            &terminal_id,
            &access.staff.account.username,
            state.now(),
        )
        .await?,
    ))
}
