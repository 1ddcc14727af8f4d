//! Staff sign-in for API clients and pages: `POST /school/login`, `POST /school/logout`,
//! `GET /school/me`, `GET /school/schools`.

use crate::error::{ApiJson, AppError, AppResult};
use crate::review::params::Params;
use crate::staff::access::schools_in_scope;
use crate::staff::session::{self, ClientAddr, LoginError, Staff};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/school/login", post(login))
        .route("/school/logout", post(logout))
        .route("/school/me", get(me))
        .route("/school/schools", get(schools))
}

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub session_token: String,
    pub expires_at: i64,
    pub username: String,
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SchoolItem {
    pub bin: String,
    pub name: String,
    pub code: i64,
}

/// Whether cookies get the `Secure` flag: the server is published over HTTPS.
pub(crate) fn secure_cookies(state: &AppState) -> bool {
    state.settings.server.public_url.starts_with("https://")
}

/// The failed-login answer of both the API and the pages.
pub(crate) fn login_error(e: LoginError) -> Response {
    match e {
        LoginError::Invalid => (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody::new("invalid_credentials", e.to_string())),
        )
            .into_response(),
        LoginError::TooMany => AppError::TooManyRequests(e.to_string()).into_response(),
        LoginError::Store(s) => AppError::from(s).into_response(),
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Response {
    match session::login(
        state.store.as_ref(),
        &req.username,
        &req.password,
        &addr,
        state.now(),
    )
    .await
    {
        Ok(s) => (
            [(
                header::SET_COOKIE,
                session::session_cookie(&s.token, session::SESSION_SECONDS, secure_cookies(&state)),
            )],
            Json(LoginResponse {
                session_token: s.token,
                expires_at: s.expires_at,
                username: s.account.username,
                role: s.account.role,
            }),
        )
            .into_response(),
        Err(e) => login_error(e),
    }
}

async fn logout(State(state): State<AppState>, staff: Staff) -> AppResult<Response> {
    state.store.delete_staff_session(&staff.token_hash).await?;
    Ok((
        [(
            header::SET_COOKIE,
            session::clear_cookie(secure_cookies(&state)),
        )],
        StatusCode::NO_CONTENT,
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct Me {
    username: String,
    role: String,
    /// `null` for operators: every school.
    schools: Option<Vec<SchoolItem>>,
}

async fn me(State(state): State<AppState>, staff: Staff) -> AppResult<Json<Me>> {
    let schools = match staff.scope {
        crate::staff::access::Scope::All => None,
        ref scope => Some(
            schools_in_scope(state.store.as_ref(), scope, None, usize::MAX)
                .await?
                .into_iter()
                .map(|s| SchoolItem {
                    bin: s.bin,
                    name: s.name,
                    code: s.code,
                })
                .collect(),
        ),
    };
    Ok(Json(Me {
        username: staff.account.username,
        role: staff.account.role,
        schools,
    }))
}

/// At most this many schools per answer (an operator has thousands): search with `?q=`.
const SCHOOL_LIST_LIMIT: usize = 500;

async fn schools(
    State(state): State<AppState>,
    staff: Staff,
    Params(q): Params,
) -> AppResult<Json<Vec<SchoolItem>>> {
    Ok(Json(
        schools_in_scope(
            state.store.as_ref(),
            &staff.scope,
            q.q.as_deref(),
            SCHOOL_LIST_LIMIT,
        )
        .await?
        .into_iter()
        .map(|s| SchoolItem {
            bin: s.bin,
            name: s.name,
            code: s.code,
        })
        .collect(),
    ))
}
