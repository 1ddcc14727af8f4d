//! The NOBD reports of one school: revisions with their delivery state, and each document.

use crate::error::{AppError, AppResult};
use crate::staff::access::SchoolAccess;
use crate::state::AppState;
use crate::store::nobd::ReportStatus;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

pub const REPORT_LIST_LIMIT: i64 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/school/schools/{bin}/reports", get(list))
        .route("/school/schools/{bin}/reports/{report_id}", get(one))
}

async fn list(
    State(state): State<AppState>,
    access: SchoolAccess,
) -> AppResult<Json<Vec<ReportStatus>>> {
    Ok(Json(
        state
            .store
            .nobd_school_reports(access.school.code, REPORT_LIST_LIMIT)
            .await?,
    ))
}

async fn one(
    State(state): State<AppState>,
    access: SchoolAccess,
    Path((_, report_id)): Path<(String, String)>,
) -> AppResult<Response> {
    let body = state
        .store
        .nobd_school_report_body(access.school.code, &report_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no report {report_id} of this school")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
