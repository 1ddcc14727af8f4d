//! `POST /api/v1/school/schools/{bin}/consents`: a consent given in person at school (DESIGN
//! §11), recorded by the school's staff; the voucher is issued and active in the answer.

use crate::consent::school::{self, ConsentForm, Recorded};
use crate::error::{ApiJson, AppError, AppResult};
use crate::staff::access::SchoolAccess;
use crate::staff::Role;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/school/schools/{bin}/consents", post(record))
}

/// Only the staff of the pupil's school hold the paper form.
pub(crate) fn require_school_staff(access: &SchoolAccess) -> AppResult<()> {
    if access.staff.role == Role::SchoolAdmin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the school's own staff record a consent given at school".into(),
        ))
    }
}

async fn record(
    State(state): State<AppState>,
    access: SchoolAccess,
    ApiJson(form): ApiJson<ConsentForm>,
) -> AppResult<(StatusCode, Json<Recorded>)> {
    require_school_staff(&access)?;
    let done = school::record(
        state.store.as_ref(),
        &state.settings,
        &access.school,
        &access.staff.account.username,
        &form,
        state.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(done)))
}
