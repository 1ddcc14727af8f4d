//! Schools, pupils, vouchers, enrolled terminals and HTTP calls for the terminal sync tests.

#[path = "../spec_check/mod.rs"]
pub mod spec_check;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use shared::calendar::{MealKind, ServiceDay};
use shared::verdict::Verdict;
use shared::wire::{EnrollResponse, ScanSource, TerminalEvent};
use tower::ServiceExt;
use uuid::Uuid;
use wallet_server::eligibility::Category;
use wallet_server::store::roster::{NewPupil, School};
use wallet_server::store::vouchers::Voucher;
use wallet_server::testkit;
use wallet_server::AppState;

pub use wallet_server::testkit::MONDAY_9AM;

/// Valid BINs (check digit per DESIGN §7.1).
pub const BIN_A: &str = "000140000002";
pub const BIN_B: &str = "000240000006";
/// 2026-11-23 12:00 local, inside the lunch window.
pub const MONDAY_NOON: i64 = MONDAY_9AM + 3 * 3600;

/// Declares a test body twice: on SQLite, and on PostgreSQL (ignored unless asked for). The body
/// gets an `AppState`; the test database lives until the body is done.
#[macro_export]
macro_rules! state_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let ts = wallet_server::testkit::state(false).await;
                ($body)(ts.state.clone()).await;
                drop(ts);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
            async fn postgres() {
                let ts = wallet_server::testkit::state(true).await;
                ($body)(ts.state.clone()).await;
                drop(ts);
            }
        }
    };
}

pub async fn school(state: &AppState, bin: &str, name: &str) -> School {
    state.store.upsert_school(bin, name, 100).await.unwrap()
}

pub fn new_pupil(iin: &str, school_code: i64, first: &str, last: &str) -> NewPupil {
    NewPupil {
        iin: iin.into(),
        school_code,
        last_name: last.into(),
        first_name: first.into(),
        middle_name: None,
        grade: 3,
        class_letter: "Б".into(),
        receives_asp: true,
        per_capita_income_kzt: None,
        orphan: false,
        mother_name: Some("Мама".into()),
        mother_phone: Some("+77010000001".into()),
        father_name: None,
        father_phone: None,
        guardian_name: None,
        guardian_phone: None,
        card_number: Some(iin.replace("iin", "card")),
        lang: "kk".into(),
        category: Category::Asp,
        contact_phone: Some("+77010000001".into()),
        contact_name: Some("Мама".into()),
    }
}

/// A pupil with a voucher for the configured school year, activated or only issued.
pub async fn voucher(
    state: &AppState,
    school: &School,
    iin: &str,
    first: &str,
    last: &str,
    active: bool,
) -> Voucher {
    let id = state
        .store
        .upsert_pupil(&new_pupil(iin, school.code, first, last), 200)
        .await
        .unwrap();
    let store = state.store.as_ref();
    let year = state.settings.year_at(MONDAY_9AM).unwrap();
    let v = testkit::issue_voucher(store, id, school.code, &year, 300).await;
    if active {
        testkit::activate_voucher(store, &v, 400).await
    } else {
        v
    }
}

pub struct Enrolled {
    pub resp: EnrollResponse,
    /// `Bearer {terminal_id}:{secret}`.
    pub auth: String,
    /// The server's signing key when the terminal enrolled: `upload` signs the proofs a real
    /// terminal would have scanned with it.
    pub signer: shared::keys::KeyPair,
    /// The server's clock: an upload happens after its scans, so `upload` moves it forward.
    pub clock: wallet_server::clock::Clock,
}

impl Enrolled {
    pub fn id(&self) -> Uuid {
        self.resp.terminal_id
    }
}

pub async fn code_for(state: &AppState, bin: &str) -> String {
    wallet_server::terminal_sync::enroll::create_code(state, bin, "test")
        .await
        .unwrap()
        .code
}

pub async fn enroll(app: &Router, state: &AppState, bin: &str, label: &str) -> Enrolled {
    let code = code_for(state, bin).await;
    let (status, body) = call(
        app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        Some(serde_json::json!({"code": code, "label": label})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: EnrollResponse = serde_json::from_value(body).unwrap();
    let auth = format!("Bearer {}:{}", resp.terminal_id, resp.secret);
    let signer = state.keys.active().signing.clone();
    Enrolled {
        resp,
        auth,
        signer,
        clock: state.clock.clone(),
    }
}

pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_raw(
        app,
        method,
        uri,
        auth,
        &[],
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

pub async fn call_raw(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let (method, uri) = (req.method().clone(), req.uri().to_string());
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    spec_check::assert_answer(
        method.as_str(),
        &uri,
        status.as_u16(),
        content_type.as_deref(),
        &bytes,
    );
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub async fn snapshot(app: &Router, t: &Enrolled, cursor: i64) -> shared::wire::Snapshot {
    let (status, body) = call(
        app,
        "GET",
        &format!("/api/v1/terminal/snapshot?cursor={cursor}"),
        Some(&t.auth),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Uploads as a current terminal would: served QR events carry the token they were served on
/// (signed here for the event's voucher and time when the event has none).
pub async fn upload(app: &Router, t: &Enrolled, events: &[TerminalEvent]) -> (StatusCode, Value) {
    let events: Vec<TerminalEvent> = events.iter().map(|e| with_proof(t, e)).collect();
    if let Some(last) = events.iter().map(|e| e.scanned_at).max() {
        if t.clock.now() < last {
            t.clock.set(last);
        }
    }
    upload_as(app, t, &events, Some(env!("CARGO_PKG_VERSION"))).await
}

/// Uploads exactly these events, naming `version` (none: an old terminal).
pub async fn upload_as(
    app: &Router,
    t: &Enrolled,
    events: &[TerminalEvent],
    version: Option<&str>,
) -> (StatusCode, Value) {
    let headers: Vec<(&str, &str)> = version
        .map(|v| vec![(shared::wire::TERMINAL_VERSION_HEADER, v)])
        .unwrap_or_default();
    call_raw(
        app,
        "POST",
        "/api/v1/terminal/events",
        Some(&t.auth),
        &headers,
        Some(
            serde_json::json!({ "events": events })
                .to_string()
                .into_bytes(),
        ),
    )
    .await
}

/// A token for `voucher` at this terminal's school, valid from a minute before `at`.
pub fn token_at(t: &Enrolled, voucher: Uuid, at: i64) -> String {
    shared::token::sign(
        &shared::token::TokenRequest {
            voucher_id: voucher,
            school_code: t.resp.school_code,
            issued_at: (at - 60) as u32,
            expires_at: (at + 540) as u32,
        },
        &t.signer,
    )
}

/// The event with the proof a terminal would attach (served QR events only).
pub fn with_proof(t: &Enrolled, e: &TerminalEvent) -> TerminalEvent {
    let mut e = e.clone();
    if e.verdict == Verdict::Ok && e.source == ScanSource::Qr && e.proof.is_none() {
        if let Some(v) = e.voucher_id {
            e.proof = Some(token_at(t, v, e.scanned_at));
        }
    }
    e
}

pub fn ev(seq: i64, scanned_at: i64, voucher: Option<Uuid>, verdict: Verdict) -> TerminalEvent {
    TerminalEvent {
        event_id: Uuid::new_v4(),
        seq,
        scanned_at,
        service_day: ServiceDay::from_unix(scanned_at).date(),
        verdict,
        source: ScanSource::Qr,
        meal_kind: MealKind::Lunch,
        voucher_id: voucher,
        key_id: Some("0a1b2c3d".into()),
        proof: None,
        repeat: false,
        count: 1,
        capped: false,
    }
}

pub fn day(ts: i64) -> String {
    ServiceDay::from_unix(ts).to_string()
}

pub fn app(state: &AppState) -> Router {
    wallet_server::app(state.clone())
}

/// The NOBD report content of one school for one service day, as the daily job would build it.
pub async fn nobd_content(
    state: &AppState,
    school: &School,
    date: chrono::NaiveDate,
) -> wallet_server::nobd::report::ReportContent {
    let window = wallet_server::nobd::build::day_window(date);
    let data = state
        .store
        .nobd_day_data(&window, Some(school.code))
        .await
        .unwrap();
    let mut reports =
        wallet_server::nobd::report::assemble(&window, date, std::slice::from_ref(school), data);
    reports
        .remove(&school.code)
        .expect("a report for the school")
}
