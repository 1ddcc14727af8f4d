//! `/api/v1/terminal/...`: enrollment, snapshot and event upload for canteen terminals
//! (DESIGN §5, docs/terminal-sync.md). The work is in `terminal_sync`; this is the HTTP face.

use crate::error::{ApiJson, AppError};
use crate::state::AppState;
use crate::store::terminals::TerminalRecord;
use crate::store::StoreError;
use crate::terminal_sync::credentials::{authenticate, parse_authorization, AuthFailure};
use crate::terminal_sync::enroll::{self, EnrollError};
use crate::terminal_sync::events::{self, BatchError, UploadError};
use crate::terminal_sync::snapshot;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use shared::error::ErrorBody;
use shared::wire::{EnrollRequest, EnrollResponse, EventAck, EventUpload, Snapshot};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// The terminal's own clock, Unix seconds, sent with snapshot and event calls.
pub const TERMINAL_TIME_HEADER: &str = "x-terminal-time";
/// Failed enrollment attempts allowed per peer address within `ENROLL_WINDOW_SECONDS`.
pub const ENROLL_MAX_FAILURES: u32 = 10;
pub const ENROLL_WINDOW_SECONDS: i64 = 15 * 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/terminal/enroll", post(enroll_terminal))
        .route("/terminal/snapshot", get(get_snapshot))
        .route("/terminal/events", post(upload_events))
        // One limiter per application instance (tests build many; each gets its own).
        .layer(Extension(Arc::new(EnrollLimiter::default())))
}

/// An error of this API: our error body with any status (410, 413 are needed here).
#[derive(Debug)]
pub enum ApiError {
    App(AppError),
    Status(StatusCode, &'static str, String),
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Status(status, code, message.into())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::App(e.into())
    }
}

impl From<AuthFailure> for ApiError {
    fn from(e: AuthFailure) -> Self {
        match e {
            AuthFailure::Revoked => {
                ApiError::new(StatusCode::FORBIDDEN, "terminal_revoked", e.to_string())
            }
            _ => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "terminal_unauthorized",
                e.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::App(e) => e.into_response(),
            ApiError::Status(status, code, message) => {
                let mut resp = (status, Json(ErrorBody::new(code, message))).into_response();
                if status == StatusCode::UNAUTHORIZED {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Bearer realm=\"tamaq-terminal\""),
                    );
                }
                resp
            }
        }
    }
}

/// The authenticated, unrevoked terminal making the call.
pub struct AuthedTerminal(pub TerminalRecord);

impl FromRequestParts<AppState> for AuthedTerminal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| AuthFailure::Malformed)?),
        };
        let credential = parse_authorization(header)?;
        let terminal = authenticate(state.store.as_ref(), &credential).await??;
        Ok(AuthedTerminal(terminal))
    }
}

/// `X-Terminal-Time`, if sent.
pub struct TerminalTime(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for TerminalTime {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(TERMINAL_TIME_HEADER) else {
            return Ok(TerminalTime(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .filter(|t| (0..=253_402_300_799).contains(t))
            .map(|t| TerminalTime(Some(t)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_terminal_time",
                    "X-Terminal-Time must be the terminal's clock in Unix seconds",
                )
            })
    }
}

impl TerminalTime {
    /// Terminal clock minus server clock.
    fn offset(&self, now: i64) -> Option<i64> {
        self.0.map(|t| t - now)
    }
}

/// The real client's address (see [`crate::client_addr`]; absent without a socket, as in tests).
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(crate::client_addr::client_ip(&parts.extensions)))
    }
}

/// Counts failed enrollment attempts per peer address in a fixed window.
#[derive(Default)]
pub struct EnrollLimiter {
    failures: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl EnrollLimiter {
    fn key(ip: Option<IpAddr>) -> IpAddr {
        ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    pub fn blocked(&self, ip: Option<IpAddr>, now: i64) -> bool {
        let map = self.failures.lock().expect("limiter lock");
        map.get(&Self::key(ip)).is_some_and(|&(start, n)| {
            now < start + ENROLL_WINDOW_SECONDS && n >= ENROLL_MAX_FAILURES
        })
    }

    pub fn record_failure(&self, ip: Option<IpAddr>, now: i64) {
        let mut map = self.failures.lock().expect("limiter lock");
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now < *start + ENROLL_WINDOW_SECONDS);
        }
        let entry = map.entry(Self::key(ip)).or_insert((now, 0));
        if now >= entry.0 + ENROLL_WINDOW_SECONDS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

async fn enroll_terminal(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<EnrollLimiter>>,
    PeerIp(ip): PeerIp,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let now = state.now();
    if limiter.blocked(ip, now) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many wrong enrollment codes from this address; wait 15 minutes and check the code",
        ));
    }
    match enroll::enroll(&state, &req).await {
        Ok(resp) => Ok(Json(resp)),
        Err(e) => {
            if e.is_failed_guess() {
                limiter.record_failure(ip, now);
            }
            let message = e.to_string();
            Err(match e {
                EnrollError::MalformedCode => {
                    ApiError::new(StatusCode::BAD_REQUEST, "enroll_code_invalid", message)
                }
                EnrollError::UnknownCode => {
                    ApiError::new(StatusCode::BAD_REQUEST, "enroll_code_unknown", message)
                }
                EnrollError::UsedCode => {
                    ApiError::new(StatusCode::GONE, "enroll_code_used", message)
                }
                EnrollError::ExpiredCode => {
                    ApiError::new(StatusCode::GONE, "enroll_code_expired", message)
                }
                EnrollError::BadLabel => {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_label", message)
                }
                EnrollError::BadTerminalKey => {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_terminal_key", message)
                }
                EnrollError::App(e) => ApiError::App(e),
            })
        }
    }
}

#[derive(Debug, Deserialize)]
struct SnapshotQuery {
    cursor: Option<String>,
}

async fn get_snapshot(
    State(state): State<AppState>,
    AuthedTerminal(terminal): AuthedTerminal,
    time: TerminalTime,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Json<Snapshot>, ApiError> {
    let bad_cursor = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_cursor",
            "cursor must be 0 or a cursor from an earlier snapshot",
        )
    };
    let cursor = match query {
        Ok(Query(SnapshotQuery { cursor: None })) => 0,
        Ok(Query(SnapshotQuery { cursor: Some(c) })) => c
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or_else(bad_cursor)?,
        Err(_) => return Err(bad_cursor()),
    };
    let school = state
        .store
        .school_by_code(terminal.school_code)
        .await?
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "terminal {} belongs to missing school {}",
                terminal.id,
                terminal.school_code
            ))
        })?;
    let snap = snapshot::build(&state, &school, Some(terminal.uuid()), cursor).await?;
    state
        .store
        .note_terminal_sync(
            terminal.uuid(),
            snap.server_time,
            time.offset(snap.server_time),
        )
        .await?;
    Ok(Json(snap))
}

async fn upload_events(
    State(state): State<AppState>,
    AuthedTerminal(terminal): AuthedTerminal,
    time: TerminalTime,
    headers: axum::http::HeaderMap,
    ApiJson(upload): ApiJson<EventUpload>,
) -> Result<Json<EventAck>, ApiError> {
    let now = state.now();
    // Only a short, printable version is believed; anything else is "no version".
    let version = headers
        .get(shared::wire::TERMINAL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_graphic()));
    let keys = state.keys.active();
    let windows = state.settings.windows();
    let checks = events::Checks {
        ring: &keys.ring,
        years: &state.settings.school_years,
        windows: &windows,
        skew: shared::token::DEFAULT_SKEW,
    };
    let batch = events::Upload {
        events: &upload.events,
        now,
        clock_offset: time.offset(now),
        version,
    };
    events::upload(state.store.as_ref(), &terminal, batch, &checks)
        .await
        .map(|ack| {
            crate::metrics::record_upload("stored");
            Json(ack)
        })
        .map_err(|e| {
            crate::metrics::record_upload("refused");
            let message = e.to_string();
            match e {
                UploadError::Batch(BatchError::TooLarge(_)) => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", message)
                }
                UploadError::Batch(BatchError::Invalid { .. }) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", message)
                }
                UploadError::SeqTaken { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "seq_conflict", message)
                }
                UploadError::EventIdTaken(_) => {
                    ApiError::new(StatusCode::CONFLICT, "event_id_conflict", message)
                }
                UploadError::TerminalGone => AuthFailure::Revoked.into(),
                UploadError::UpgradeRequired(_) => ApiError::new(
                    StatusCode::UPGRADE_REQUIRED,
                    "terminal_upgrade_required",
                    message,
                ),
                UploadError::Store(e) => e.into(),
            }
        })
}
