//! Parents' ratings (averages per day and per week, comments) and complaints of one school.

use super::today;
use crate::error::AppResult;
use crate::review::params::{Params, ReviewQuery};
use crate::staff::access::SchoolAccess;
use crate::state::AppState;
use crate::store::feedback_read::{weekly, ComplaintRow, RatingComment, WeekRatings};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

const COMMENT_LIMIT: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/school/schools/{bin}/ratings", get(ratings))
        .route("/school/schools/{bin}/complaints", get(complaints))
}

#[derive(Debug, Serialize)]
pub struct DayAverage {
    pub service_day: String,
    pub ratings: i64,
    pub average: f64,
}

#[derive(Debug, Serialize)]
pub struct RatingsResponse {
    pub school_bin: String,
    pub from: String,
    pub to: String,
    pub by_day: Vec<DayAverage>,
    pub by_week: Vec<WeekRatings>,
    pub comments: Vec<RatingComment>,
}

pub(crate) async fn load_ratings(
    state: &AppState,
    access: &SchoolAccess,
    q: &ReviewQuery,
) -> AppResult<RatingsResponse> {
    let (from, to) = q.range(today(state))?;
    let (from, to) = (from.to_string(), to.to_string());
    let store = state.store.as_ref();
    let days = store.ratings_by_day(access.school.code, &from, &to).await?;
    Ok(RatingsResponse {
        school_bin: access.school.bin.clone(),
        by_week: weekly(&days),
        by_day: days
            .iter()
            .map(|d| DayAverage {
                service_day: d.service_day.clone(),
                ratings: d.ratings,
                average: d.average(),
            })
            .collect(),
        comments: store
            .rating_comments(access.school.code, &from, &to, COMMENT_LIMIT)
            .await?,
        from,
        to,
    })
}

async fn ratings(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
) -> AppResult<Json<RatingsResponse>> {
    Ok(Json(load_ratings(&state, &access, &q).await?))
}

pub(crate) async fn load_complaints(
    state: &AppState,
    access: &SchoolAccess,
    q: &ReviewQuery,
) -> AppResult<Vec<ComplaintRow>> {
    let (from, to) = q.range(today(state))?;
    let since = crate::nobd::build::day_window(from).start;
    let until = crate::nobd::build::day_window(to).end;
    Ok(state
        .store
        .school_complaints(access.school.code, since, until, COMMENT_LIMIT)
        .await?)
}

async fn complaints(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
) -> AppResult<Json<Vec<ComplaintRow>>> {
    Ok(Json(load_complaints(&state, &access, &q).await?))
}
