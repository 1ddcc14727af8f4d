//! The counter screen: a local web page (big green/red verdicts, name and class, an input that
//! keeps focus for wedge scanners, the camera where the browser allows) and background sync.

use crate::frames::{FrameError, Frames};
use crate::image_input::{self, ImageError};
use crate::kiosk_guard::{self, Guard};
use crate::outcome::{local_datetime, NotRecorded};
use crate::sync::SyncReport;
use crate::terminal::Terminal;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::calendar::MealKind;
use shared::error::ErrorBody;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const PAGE: &str = include_str!("kiosk.html");

/// The outcome of the last background (or button) sync, for the status line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LastSync {
    pub at: Option<i64>,
    pub at_local: Option<String>,
    pub ok: bool,
    pub unreachable: bool,
    pub message: Option<String>,
    pub report: Option<SyncReport>,
}

/// A camera frame body larger than this is refused unread (a 1920×1080 JPEG is well under 1 MB).
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// A code held in front of the camera shows up in many frames; it is scanned once while it stays
/// in view, and counts as gone (so that showing it again is a new scan) only after no frame has
/// held it for this long. Decoders miss a frame now and then, so one frame without it is not
/// enough.
pub const FRAME_GONE_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Kiosk {
    terminal: Arc<Terminal>,
    last_sync: Arc<Mutex<LastSync>>,
    last_frame_code: Arc<Mutex<Option<(String, std::time::Instant)>>>,
    frames: Frames,
    front_door: Arc<front_door::Counters>,
    guard_refusals: Arc<std::sync::OnceLock<Arc<Guard>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub card: Option<String>,
    #[serde(default)]
    pub meal: Option<MealKind>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

impl Kiosk {
    pub fn new(terminal: Arc<Terminal>) -> Kiosk {
        Kiosk {
            terminal,
            last_sync: Arc::new(Mutex::new(LastSync::default())),
            last_frame_code: Arc::new(Mutex::new(None)),
            frames: Frames::new(image_input::BUDGET),
            front_door: Arc::default(),
            guard_refusals: Arc::default(),
        }
    }

    /// The page and its endpoints, answering only to the host names of `own`, the address
    /// the kiosk listens on.
    pub fn router(&self, own: std::net::SocketAddr) -> Router {
        let guard = Arc::new(Guard::new(own, PAGE));
        let _ = self.guard_refusals.set(guard.clone());
        Router::new()
            .route("/", get(page))
            .route("/scan", post(scan).layer(DefaultBodyLimit::max(16 * 1024)))
            .route(
                "/scan/frame",
                post(scan_frame).layer(DefaultBodyLimit::max(MAX_FRAME_BYTES)),
            )
            .route("/status", get(status))
            .route("/sync", post(sync_now))
            .with_state(self.clone())
            .layer(axum::middleware::from_fn_with_state(
                guard,
                kiosk_guard::guard,
            ))
    }

    /// One sync round, remembered for the status line.
    pub async fn sync_once(&self) -> LastSync {
        let result = self.terminal.sync().await;
        let at = self.terminal.now();
        let last = match result {
            Ok(report) => LastSync {
                at: Some(at),
                at_local: Some(local_datetime(at)),
                ok: true,
                unreachable: false,
                message: None,
                report: Some(report),
            },
            Err(e) => {
                tracing::warn!("sync failed: {e}");
                LastSync {
                    at: Some(at),
                    at_local: Some(local_datetime(at)),
                    ok: false,
                    unreachable: e.is_unreachable(),
                    message: Some(e.to_string()),
                    report: None,
                }
            }
        };
        *self.last_sync.lock().await = last.clone();
        last
    }

    /// Syncs every `interval` until the task is dropped.
    pub fn spawn_background_sync(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let kiosk = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                kiosk.sync_once().await;
            }
        })
    }

    /// Serves until the listener fails; background sync runs alongside.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let interval = Duration::from_secs(self.terminal.settings().sync_interval_seconds);
        let _sync = self.spawn_background_sync(interval);
        let _checkpoints = crate::store::spawn_checkpointer(
            self.terminal.pool().clone(),
            crate::store::CHECKPOINT_EVERY,
        );
        let own = listener.local_addr()?;
        let limits = self.terminal.settings().front_door;
        let counters = self.front_door.clone();
        let router = self.router(own);
        front_door::serve(listener, router, limits, counters, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    }
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
}

/// What `POST /scan` asks for, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanInput {
    Token(String, Option<MealKind>),
    Card(String, Option<MealKind>),
}

/// Parses a `POST /scan` body: exactly one of a non-blank `token` or `card`, and an optional
/// `meal`. Blank input is refused here (as blank stdin lines are skipped): it is not a scan.
pub fn parse_scan_request(body: &[u8]) -> Result<ScanInput, String> {
    let req: ScanRequest = serde_json::from_slice(body)
        .map_err(|e| format!("expected {{\"token\": \"...\"}} or {{\"card\": \"...\"}}: {e}"))?;
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    match (present(&req.token), present(&req.card)) {
        (true, false) => Ok(ScanInput::Token(req.token.unwrap_or_default(), req.meal)),
        (false, true) => Ok(ScanInput::Card(req.card.unwrap_or_default(), req.meal)),
        _ => Err("send exactly one of a non-empty \"token\" or \"card\"".to_owned()),
    }
}

fn unsupported(expected: &str) -> Response {
    error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &format!("Content-Type {expected} керек / нужен Content-Type {expected}"),
    )
}

async fn scan(State(k): State<Kiosk>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if kiosk_guard::media_type(&headers).as_deref() != Some("application/json") {
        return unsupported("application/json");
    }
    let result = match parse_scan_request(&body) {
        Ok(ScanInput::Token(token, meal)) => k.terminal.scan(&token, meal).await,
        Ok(ScanInput::Card(card, meal)) => k.terminal.redeem_card(&card, meal).await,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", &message),
    };
    verdict_response(result)
}

/// A recorded verdict as 200; `not_recorded` as 503 with the same shape, so the page shows it
/// like any verdict (red) and raises its storage alarm.
fn verdict_response(result: Result<crate::outcome::ScanOutcome, NotRecorded>) -> Response {
    match result {
        Ok(outcome) => Json(outcome).into_response(),
        Err(failed) => (StatusCode::SERVICE_UNAVAILABLE, Json(failed)).into_response(),
    }
}

#[derive(Serialize)]
struct NoCode {
    found: bool,
    /// The code of the previous frame, already scanned.
    repeat: bool,
    /// A newer frame arrived before this one was decoded; only the newest is looked at.
    dropped: bool,
}

async fn scan_frame(
    State(k): State<Kiosk>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !matches!(
        kiosk_guard::media_type(&headers).as_deref(),
        Some("image/jpeg" | "image/png")
    ) {
        return unsupported("image/jpeg / image/png");
    }
    let tokens = match k.frames.decode(body).await {
        Ok(tokens) => tokens,
        Err(FrameError::Dropped) => {
            return Json(NoCode {
                found: false,
                repeat: false,
                dropped: true,
            })
            .into_response()
        }
        Err(FrameError::TooSlow(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_slow",
                &FrameError::TooSlow(image_input::BUDGET.time).to_string(),
            )
        }
        Err(FrameError::Image(e)) => {
            let status = match e {
                ImageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                ImageError::TooSlow(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            return error(status, e.code(), &e.to_string());
        }
    };
    let Some(token) = tokens.first() else {
        return Json(NoCode {
            found: false,
            repeat: false,
            dropped: false,
        })
        .into_response();
    };
    {
        let mut last = k.last_frame_code.lock().await;
        let now = std::time::Instant::now();
        if let Some((code, seen)) = last.as_mut() {
            if code == token && now.duration_since(*seen) < FRAME_GONE_AFTER {
                // Still in view: its verdict is on the screen already.
                *seen = now;
                return Json(NoCode {
                    found: true,
                    repeat: true,
                    dropped: false,
                })
                .into_response();
            }
        }
        *last = Some((token.clone(), now));
    }
    verdict_response(k.terminal.scan(token, None).await)
}

#[derive(Serialize)]
struct StatusBody {
    #[serde(flatten)]
    status: crate::terminal::Status,
    last_sync_attempt: LastSync,
    front_door: FrontDoorStatus,
}

/// What the page's front door has turned away, for whoever looks at `/status`.
#[derive(Serialize)]
struct FrontDoorStatus {
    connections_open: u64,
    connections_refused: u64,
    foreign_requests_refused: u64,
}

async fn status(State(k): State<Kiosk>) -> Response {
    match k.terminal.status().await {
        Ok(status) => Json(StatusBody {
            status,
            last_sync_attempt: k.last_sync.lock().await.clone(),
            front_door: {
                let c = k.front_door.snapshot();
                FrontDoorStatus {
                    connections_open: c.open,
                    connections_refused: c.refused_client_cap + c.refused_total_cap,
                    foreign_requests_refused: k.guard_refusals.get().map_or(0, |g| g.refused()),
                }
            },
        })
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "status_failed",
            &e.to_string(),
        ),
    }
}

async fn sync_now(State(k): State<Kiosk>) -> Response {
    Json(k.sync_once().await).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scan_requests() {
        assert_eq!(
            parse_scan_request(br#"{"token": "abc", "meal": "lunch"}"#),
            Ok(ScanInput::Token("abc".into(), Some(MealKind::Lunch)))
        );
        assert_eq!(
            parse_scan_request(br#"{"card": "0001"}"#),
            Ok(ScanInput::Card("0001".into(), None))
        );
        for bad in [
            &br#"{"token": " ", "card": ""}"#[..],
            br#"{"token": "a", "card": "b"}"#,
            br#"{"token": "a", "meal": "dinner"}"#,
            br#"{"token": "a", "x": 1}"#,
            br#"[]"#,
            b"",
        ] {
            assert!(
                parse_scan_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn scan_request_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_scan_request(&body);
        }

        #[test]
        fn accepted_requests_carry_exactly_one_non_blank_credential(
            token in proptest::option::of("[ a-zA-Z0-9_-]{0,20}"),
            card in proptest::option::of("[ 0-9-]{0,12}"),
        ) {
            let body = serde_json::json!({"token": token, "card": card}).to_string();
            let blank = |v: &Option<String>| !matches!(v.as_deref(), Some(s) if !s.trim().is_empty());
            match parse_scan_request(body.as_bytes()) {
                Ok(ScanInput::Token(t, _)) => prop_assert!(!t.trim().is_empty() && blank(&card)),
                Ok(ScanInput::Card(c, _)) => prop_assert!(!c.trim().is_empty() && blank(&token)),
                Err(_) => prop_assert!(blank(&token) == blank(&card)),
            }
        }
    }
}
