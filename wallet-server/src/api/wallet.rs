//! `/api/v1/wallet/...`: what a parent's wallet calls (DESIGN §6.3).
//!
//! Every voucher endpoint looks the voucher up together with the signed-in phone: a voucher of
//! another family answers exactly like an id that does not exist (404 `not_found`), so ids cannot
//! be probed.

use crate::error::{ApiJson, AppError, AppResult};
use crate::state::AppState;
use crate::store::wallet::{NewRating, ParentVoucher, SigningVoucher};
use crate::wallet::extract::{ApiQuery, ClientAddr};
use crate::wallet::qr::{Matrix, PNG_MODULE_PX};
use crate::wallet::session::Parent;
use crate::wallet::views::{
    self, clean_text, ComplaintRequest, ComplaintView, LoginAccepted, LoginRequest, PngQuery,
    RatingRequest, RatingView, SessionResponse, VerifyRequest, VoucherQuery, COMMENT_MAX_CHARS,
};
use crate::wallet::{complaints, issuance, login, session};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use shared::phone::Phone;
use shared::wire::{HistoryEntry, QrRequest, QrResponse, Validity, VoucherStatus, WalletVoucher};
use shared::ServiceDay;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/wallet/login", post(login_request))
        .route("/wallet/login/verify", post(login_verify))
        .route("/wallet/logout", post(logout))
        .route("/wallet/vouchers", get(vouchers))
        .route("/wallet/vouchers/{id}/activate", post(activate))
        .route("/wallet/vouchers/{id}/qr", post(qr_json))
        .route("/wallet/vouchers/{id}/qr.png", get(qr_png))
        .route("/wallet/vouchers/{id}/history", get(history))
        .route("/wallet/ratings", post(rate).get(ratings))
        .route("/wallet/complaints", post(complain).get(complaints_list))
}

/// History shows at most this many meals (a school year has fewer than 200 school days).
pub const HISTORY_LIMIT: i64 = 400;

fn phone(text: &str) -> AppResult<Phone> {
    Phone::parse(text).map_err(|e| AppError::Invalid("bad_phone", e.to_string()))
}

async fn own_voucher(state: &AppState, parent: &Parent, id: &str) -> AppResult<ParentVoucher> {
    let id = views::voucher_id(id)?;
    state
        .store
        .parent_voucher(&id.to_string(), &parent.phone)
        .await?
        .ok_or_else(views::not_found)
}

/// [`own_voucher`] for the QR endpoints: the same ownership rule, a smaller read, reused per
/// session until any voucher changes (see `OwnershipCache`).
async fn signing_voucher(state: &AppState, parent: &Parent, id: &str) -> AppResult<SigningVoucher> {
    let id = views::voucher_id(id)?;
    let now = state.now();
    let cache = &state.wallet.ownership;
    let epoch = cache.epoch(state.store.as_ref()).await?;
    if let Some(v) = cache.get(&parent.token_hash, id, now, epoch) {
        return Ok(v);
    }
    let v = state
        .store
        .signing_voucher(&id.to_string(), &parent.phone)
        .await?
        .ok_or_else(views::not_found)?;
    cache.put(parent.token_hash, id, &v, now, epoch);
    Ok(v)
}

fn today(state: &AppState) -> chrono::NaiveDate {
    ServiceDay::from_unix(state.now()).date()
}

fn no_store<R: IntoResponse>(r: R) -> Response {
    let mut r = r.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn login_request(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> AppResult<Response> {
    let phone = phone(&body.phone)?;
    login::request_code(&state, &phone, addr).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(LoginAccepted {
            status: "code_sent".into(),
            expires_in: login::CODE_SECONDS,
        }),
    )
        .into_response())
}

async fn login_verify(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> AppResult<Response> {
    let phone = phone(&body.phone)?;
    let (session_token, expires_at) = login::verify_code(&state, &phone, &body.code, addr).await?;
    Ok(no_store(ApiJson(SessionResponse {
        session_token,
        expires_at,
    })))
}

async fn logout(State(state): State<AppState>, parent: Parent) -> AppResult<StatusCode> {
    session::end(&state, &parent).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn vouchers(
    State(state): State<AppState>,
    parent: Parent,
) -> AppResult<ApiJson<Vec<WalletVoucher>>> {
    let today = today(&state);
    let rows = state.store.parent_vouchers(&parent.phone).await?;
    Ok(ApiJson(
        rows.iter()
            .map(|v| v.to_wire(today))
            .collect::<AppResult<_>>()?,
    ))
}

async fn activate(
    State(state): State<AppState>,
    parent: Parent,
    Path(id): Path<String>,
) -> AppResult<ApiJson<WalletVoucher>> {
    let v = own_voucher(&state, &parent, &id).await?;
    let today = today(&state);
    match v.status_on(today)? {
        VoucherStatus::Active => return Ok(ApiJson(v.to_wire(today)?)),
        VoucherStatus::Revoked => {
            return Err(AppError::Invalid(
                "voucher_revoked",
                "This voucher has been revoked and cannot be activated.".into(),
            ))
        }
        VoucherStatus::Expired => return Err(issuance::year_over(&state.settings, today)),
        VoucherStatus::Issued => {}
    }
    let now = state.now();
    let actor = format!("parent:{}", parent.phone);
    if crate::lifecycle::activate(state.store.as_ref(), &v.id, &actor, now)
        .await?
        .is_some()
    {
        tracing::info!(voucher = %v.id, "voucher activated by parent");
    }
    // Read again: activated now, by a parallel request, or revoked meanwhile.
    let fresh = own_voucher(&state, &parent, &id).await?;
    match fresh.status_on(today)? {
        VoucherStatus::Active => Ok(ApiJson(fresh.to_wire(today)?)),
        _ => Err(AppError::Conflict(
            "The voucher changed while activating; reload and try again.".into(),
        )),
    }
}

async fn qr_json(
    State(state): State<AppState>,
    parent: Parent,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<QrRequest>,
) -> AppResult<Response> {
    let v = signing_voucher(&state, &parent, &id).await?;
    let issued = issuance::issue(&state, &v, body.validity).await?;
    let svg = Matrix::encode(issued.token.as_bytes())
        .map_err(|e| AppError::Internal(e.into()))?
        .svg();
    Ok(no_store(ApiJson(QrResponse {
        token: issued.token,
        issued_at: issued.issued_at,
        expires_at: issued.expires_at,
        svg,
    })))
}

async fn qr_png(
    State(state): State<AppState>,
    parent: Parent,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PngQuery>,
) -> AppResult<Response> {
    let v = signing_voucher(&state, &parent, &id).await?;
    let issued = issuance::issue(&state, &v, q.validity.unwrap_or(Validity::Short)).await?;
    let png = Matrix::encode(issued.token.as_bytes())
        .map_err(|e| AppError::Internal(e.into()))?
        .png(PNG_MODULE_PX);
    let mut r = no_store(([(header::CONTENT_TYPE, "image/png")], png));
    let h = r.headers_mut();
    h.insert("x-token-issued-at", HeaderValue::from(issued.issued_at));
    h.insert("x-token-expires-at", HeaderValue::from(issued.expires_at));
    Ok(r)
}

async fn history(
    State(state): State<AppState>,
    parent: Parent,
    Path(id): Path<String>,
) -> AppResult<ApiJson<Vec<HistoryEntry>>> {
    let v = own_voucher(&state, &parent, &id).await?;
    let rows = state.store.meal_history(&v.id, HISTORY_LIMIT).await?;
    Ok(ApiJson(
        rows.iter().map(|m| m.to_wire()).collect::<AppResult<_>>()?,
    ))
}

async fn rate(
    State(state): State<AppState>,
    parent: Parent,
    ApiJson(body): ApiJson<RatingRequest>,
) -> AppResult<ApiJson<RatingView>> {
    let v = own_voucher(&state, &parent, &body.voucher_id).await?;
    if !(1..=5).contains(&body.stars) {
        return Err(AppError::Invalid(
            "bad_stars",
            "Stars are a whole number from 1 to 5.".into(),
        ));
    }
    let comment = match &body.comment {
        Some(c) => Some(clean_text(c, "The comment", COMMENT_MAX_CHARS)?).filter(|c| !c.is_empty()),
        None => None,
    };
    let day = today(&state).to_string();
    let row = state
        .store
        .upsert_rating(&NewRating {
            voucher_id: &v.id,
            school_code: v.school_code,
            service_day: &day,
            stars: body.stars,
            comment: comment.as_deref(),
            phone: &parent.phone,
            now: state.now(),
        })
        .await?;
    Ok(ApiJson(row.to_view()?))
}

async fn ratings(
    State(state): State<AppState>,
    parent: Parent,
    ApiQuery(q): ApiQuery<VoucherQuery>,
) -> AppResult<ApiJson<Vec<RatingView>>> {
    let v = own_voucher(&state, &parent, &q.voucher_id).await?;
    let rows = state.store.ratings_for(&v.id).await?;
    Ok(ApiJson(
        rows.iter().map(|r| r.to_view()).collect::<AppResult<_>>()?,
    ))
}

async fn complain(
    State(state): State<AppState>,
    parent: Parent,
    ApiJson(body): ApiJson<ComplaintRequest>,
) -> AppResult<Response> {
    let v = own_voucher(&state, &parent, &body.voucher_id).await?;
    let view = complaints::file(&state, &v, &parent.phone, &body.text).await?;
    Ok((StatusCode::CREATED, ApiJson(view)).into_response())
}

async fn complaints_list(
    State(state): State<AppState>,
    parent: Parent,
) -> AppResult<ApiJson<Vec<ComplaintView>>> {
    let rows = state.store.complaints_of(&parent.phone).await?;
    Ok(ApiJson(
        rows.iter().map(|c| c.to_view()).collect::<AppResult<_>>()?,
    ))
}
