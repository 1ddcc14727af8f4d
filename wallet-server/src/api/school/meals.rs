//! Meals, scans and consent follow-ups of one school, as JSON and CSV.

use super::today;
use crate::error::AppResult;
use crate::review::export::{self, MealRows, ROW_LIMIT};
use crate::review::params::Params;
use crate::review::texts::request_lang;
use crate::staff::access::SchoolAccess;
use crate::state::AppState;
use crate::store::anomalies::Anomalies;
use crate::store::school_view::{
    ConsentFollowUp, DuplicateScan, RejectedScan, RepeatedAlreadyServed, VerdictCount,
};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// `already_served` refusals of one voucher in a range from which it is flagged.
pub const REPEATED_ALREADY_SERVED: i64 = 2;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/school/schools/{bin}/meals", get(meals))
        .route("/school/schools/{bin}/meals.csv", get(meals_csv))
        .route("/school/schools/{bin}/scans", get(scans))
        .route("/school/schools/{bin}/scans.csv", get(scans_csv))
        .route("/school/schools/{bin}/anomalies", get(anomalies))
        .route("/school/schools/{bin}/consent", get(consent))
        .route("/school/schools/{bin}/consent.csv", get(consent_csv))
}

#[derive(Debug, Serialize)]
pub struct MealsResponse {
    pub school_bin: String,
    pub from: String,
    pub to: String,
    pub group: &'static str,
    pub class: Option<String>,
    pub rows: MealRows,
}

async fn meals(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
) -> AppResult<Json<MealsResponse>> {
    let f = q.filter(access.school.code, today(&state))?;
    let group = q.group()?;
    let rows = export::load_meals(state.store.as_ref(), &f, group).await?;
    Ok(Json(MealsResponse {
        school_bin: access.school.bin,
        from: f.from,
        to: f.to,
        group: group.as_str(),
        class: f.class.map(|c| c.to_string()),
        rows,
    }))
}

async fn meals_csv(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
    headers: HeaderMap,
) -> AppResult<Response> {
    let f = q.filter(access.school.code, today(&state))?;
    let group = q.group()?;
    let lang = request_lang(
        q.lang.as_deref(),
        &headers,
        state.settings.server.default_lang,
    );
    let rows = export::load_meals(state.store.as_ref(), &f, group).await?;
    Ok(export::csv_response(
        &format!(
            "meals-{}-{}-{}-{}",
            access.school.bin,
            group.as_str(),
            f.from,
            f.to
        ),
        export::meals_csv(lang, &rows),
    ))
}

#[derive(Debug, Serialize)]
pub struct ScansResponse {
    pub school_bin: String,
    pub from: String,
    pub to: String,
    pub verdicts: Vec<VerdictCount>,
    pub repeated_already_served: Vec<RepeatedAlreadyServed>,
    pub duplicates: Vec<DuplicateScan>,
    pub rejected: Vec<RejectedScan>,
}

#[derive(Debug, Serialize)]
pub struct AnomaliesResponse {
    pub school_bin: String,
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub anomalies: Anomalies,
}

/// Refused events, seq gaps, card share per terminal and day, repeats apart from second
/// attempts: what the school and its authority must look at.
async fn anomalies(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
) -> AppResult<Json<AnomaliesResponse>> {
    let f = q.filter(access.school.code, today(&state))?;
    let anomalies = state
        .store
        .anomalies(f.school_code, &f.from, &f.to, ROW_LIMIT)
        .await?;
    Ok(Json(AnomaliesResponse {
        school_bin: access.school.bin,
        from: f.from,
        to: f.to,
        anomalies,
    }))
}

async fn scans(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
) -> AppResult<Json<ScansResponse>> {
    let f = q.filter(access.school.code, today(&state))?;
    let store = state.store.as_ref();
    Ok(Json(ScansResponse {
        school_bin: access.school.bin,
        verdicts: store.verdict_counts(&f).await?,
        repeated_already_served: store
            .repeated_already_served(&f, REPEATED_ALREADY_SERVED)
            .await?,
        duplicates: store.duplicate_scans(&f, ROW_LIMIT).await?,
        rejected: store.rejected_scans(&f, ROW_LIMIT).await?,
        from: f.from,
        to: f.to,
    }))
}

/// `?kind=rejected` (default) or `?kind=duplicates`.
async fn scans_csv(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
    headers: HeaderMap,
) -> AppResult<Response> {
    let f = q.filter(access.school.code, today(&state))?;
    let lang = request_lang(
        q.lang.as_deref(),
        &headers,
        state.settings.server.default_lang,
    );
    let store = state.store.as_ref();
    let name = |kind: &str| format!("{kind}-{}-{}-{}", access.school.bin, f.from, f.to);
    match q.kind.as_deref().unwrap_or("rejected") {
        "rejected" => Ok(export::csv_response(
            &name("rejected"),
            export::rejected_csv(lang, &store.rejected_scans(&f, ROW_LIMIT).await?),
        )),
        "duplicates" => Ok(export::csv_response(
            &name("duplicates"),
            export::duplicates_csv(lang, &store.duplicate_scans(&f, ROW_LIMIT).await?),
        )),
        other => Err(crate::error::AppError::Invalid(
            "bad_filter",
            format!("kind must be rejected or duplicates; got {other:?}"),
        )),
    }
}

async fn consent(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
) -> AppResult<Json<Vec<ConsentFollowUp>>> {
    let status = q.follow_up_status()?;
    Ok(Json(
        state
            .store
            .consent_follow_ups(access.school.code, status)
            .await?,
    ))
}

async fn consent_csv(
    State(state): State<AppState>,
    access: SchoolAccess,
    Params(q): Params,
    headers: HeaderMap,
) -> AppResult<Response> {
    let status = q.follow_up_status()?;
    let lang = request_lang(
        q.lang.as_deref(),
        &headers,
        state.settings.server.default_lang,
    );
    let rows = state
        .store
        .consent_follow_ups(access.school.code, status)
        .await?;
    Ok(export::csv_response(
        &format!("consent-{}", access.school.bin),
        export::consent_csv(lang, &rows),
    ))
}
