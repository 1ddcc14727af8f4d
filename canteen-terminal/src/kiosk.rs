//! The counter screen: a local web page (big green/red verdicts, name and class, an input that
//! keeps focus for wedge scanners, the camera where the browser allows) and background sync.

use crate::image_input::{self, DEFAULT_DECODER};
use crate::outcome::{local_datetime, NotRecorded};
use crate::sync::SyncReport;
use crate::terminal::Terminal;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
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
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/scan", post(scan).layer(DefaultBodyLimit::max(16 * 1024)))
            .route(
                "/scan/frame",
                post(scan_frame).layer(DefaultBodyLimit::max(8 * 1024 * 1024)),
            )
            .route("/status", get(status))
            .route("/sync", post(sync_now))
            .with_state(self.clone())
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
        axum::serve(listener, self.router()).await
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

async fn scan(State(k): State<Kiosk>, body: axum::body::Bytes) -> Response {
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
}

async fn scan_frame(State(k): State<Kiosk>, body: axum::body::Bytes) -> Response {
    let decoded =
        tokio::task::spawn_blocking(move || image_input::decode_bytes(&body, DEFAULT_DECODER))
            .await;
    let tokens = match decoded {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_image", &e.to_string()),
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "decoder_failed",
                "the QR decoder failed on this frame",
            )
        }
    };
    let Some(token) = tokens.first() else {
        return Json(NoCode {
            found: false,
            repeat: false,
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
}

async fn status(State(k): State<Kiosk>) -> Response {
    match k.terminal.status().await {
        Ok(status) => Json(StatusBody {
            status,
            last_sync_attempt: k.last_sync.lock().await.clone(),
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
