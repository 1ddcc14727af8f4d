//! `GET /school/voucher-states`: vouchers by school year and lifecycle state, and pupils erased
//! by retention, over the caller's schools (an authority's, or all for an operator).

use crate::error::AppResult;
use crate::review::states::{self, StatesView};
use crate::staff::session::Staff;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/school/voucher-states", get(voucher_states))
}

async fn voucher_states(
    State(state): State<AppState>,
    staff: Staff,
) -> AppResult<Json<StatesView>> {
    Ok(Json(
        states::for_scope(state.store.as_ref(), &staff.scope).await?,
    ))
}
