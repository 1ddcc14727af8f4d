//! What happened to one school's vouchers this school year (DESIGN §10): pupils who came or
//! left with their voucher, and the vouchers revoked with their reasons.

use crate::config::Settings;
use crate::error::AppResult;
use crate::staff::access::SchoolAccess;
use crate::state::AppState;
use crate::store::school_view::VoucherChanges;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use shared::calendar::SchoolYear;

pub fn router() -> Router<AppState> {
    Router::new().route("/school/schools/{bin}/vouchers", get(changes))
}

/// The school year the page shows on `today`: the one in force; between years the one that
/// ended last (its story is still being read), or before the first the first.
pub fn year_shown(settings: &Settings, today: NaiveDate) -> SchoolYear {
    let years = &settings.school_years;
    years
        .year_for(today)
        .or_else(|| years.last_before(today))
        .or_else(|| years.next_after(today))
        .map_or_else(|| SchoolYear::default_for(today), |y| y.into_owned())
}

async fn changes(
    State(state): State<AppState>,
    access: SchoolAccess,
) -> AppResult<Json<VoucherChanges>> {
    let year = year_shown(&state.settings, super::today(&state));
    Ok(Json(
        state
            .store
            .voucher_changes(access.school.code, &year.label())
            .await?,
    ))
}
