//! `POST /api/v1/sms/inbound`: the gateway secret, bad bodies, and what a reply does.

#[path = "core_support/mod.rs"]
mod common;
mod spec_check;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use tower::ServiceExt;
use wallet_server::config::Settings;
use wallet_server::consent::{self, ConsentStatus};
use wallet_server::roster::ImportOptions;
use wallet_server::testkit::{self, TestState};

const SECRET: &str = "gateway-s3cret";

async fn world(pg: bool, settings: Settings, demo: bool) -> TestState {
    let mut t = testkit::state_with(pg, settings).await;
    t.state.demo = demo;
    import(
        &t.state.store,
        &csv(&[row(1, 0, "+77010000001")]),
        ImportOptions::default(),
    )
    .await;
    consent::tick(t.state.store.as_ref(), &t.state.settings, MONDAY_9AM)
        .await
        .unwrap();
    t
}

async fn post(t: &TestState, secret: Option<&str>, body: &str) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post("/api/v1/sms/inbound").header("content-type", "application/json");
    if let Some(s) = secret {
        req = req.header("X-Gateway-Secret", s);
    }
    let resp = wallet_server::app(t.state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    spec_check::assert_answer(
        "POST",
        "/api/v1/sms/inbound",
        status.as_u16(),
        content_type.as_deref(),
        &bytes,
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Outbox rows and the pupil's consent status: what a refused request must not change.
async fn written(t: &TestState) -> (usize, ConsentStatus) {
    let store = &t.state.store;
    let outbox = store.sms_outbox(1000).await.unwrap().len();
    let p = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
    let c = store
        .consent_for_pupil(p.id, "2026-2027")
        .await
        .unwrap()
        .unwrap();
    (outbox, c.status)
}

const AGREE: &str = r#"{"from": "+77010000001", "text": "3#1"}"#;

async fn secret_is_required(pg: bool) {
    let t = world(pg, settings_with_secret(SECRET), false).await;
    let before = written(&t).await;
    assert_eq!(before, (1, ConsentStatus::Requested));
    for secret in [None, Some("wrong"), Some(""), Some("gateway-s3cret ")] {
        let (status, body) = post(&t, secret, AGREE).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{secret:?}");
        assert_eq!(body["error"]["code"], "forbidden");
        assert_eq!(
            body["error"]["message"],
            "missing or wrong X-Gateway-Secret header"
        );
    }
    assert_eq!(written(&t).await, before, "nothing written");

    // Right secret, bad bodies: 400 in the shared error body, nothing written.
    for (bad, code) in [
        ("{\"from\": \"+77010000001\"", "bad_request"),
        ("{\"text\": \"3#1\"}", "bad_request"),
        (
            "{\"from\": \"+7 727 123 45 67\", \"text\": \"3#1\"}",
            "bad_phone",
        ),
        ("[]", "bad_request"),
    ] {
        let (status, body) = post(&t, Some(SECRET), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], code, "{bad}");
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{body}"
        );
    }
    let long = format!(
        r#"{{"from": "+77010000001", "text": "{}"}}"#,
        "x".repeat(1601)
    );
    assert_eq!(
        post(&t, Some(SECRET), &long).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(written(&t).await, before, "nothing written");

    let (status, body) = post(&t, Some(SECRET), AGREE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"result": "consented", "consents": 1, "vouchers": 1})
    );
    assert_eq!(written(&t).await, (2, ConsentStatus::Consented));

    let (status, body) = post(
        &t,
        Some(SECRET),
        r#"{"from": "87010000001", "text": "спасибо"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"result": "help", "answered": true})
    );
}

both_backends!(inbound_checks_the_gateway_secret, super::secret_is_required);

async fn unset_secret_refuses_all(pg: bool) {
    let t = world(pg, settings(), false).await;
    let before = written(&t).await;
    for secret in [None, Some(""), Some("anything")] {
        let (status, body) = post(&t, secret, AGREE).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inbound_secret"));
    }
    let mut empty = settings();
    empty.sms.inbound_secret = Some(wallet_server::config::Secret::new(""));
    let t2 = world(pg, empty, false).await;
    assert_eq!(
        post(&t2, Some(""), AGREE).await.0,
        StatusCode::FORBIDDEN,
        "an empty secret is no secret"
    );
    assert_eq!(post(&t2, None, AGREE).await.0, StatusCode::FORBIDDEN);
    assert_eq!(written(&t).await, before);

    // Demo mode takes replies without a secret.
    let demo = world(pg, settings(), true).await;
    let (status, body) = post(&demo, None, AGREE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(written(&demo).await, (2, ConsentStatus::Consented));
}

both_backends!(
    inbound_without_secret_is_off,
    super::unset_secret_refuses_all
);

/// A megabyte of `from`, or a huge value of the wrong type, is not echoed back: the error quotes
/// a short escaped start of it and says how long it was, and nothing is written.
async fn error_bodies_are_bounded(pg: bool) {
    let t = world(pg, settings_with_secret(SECRET), false).await;
    let before = written(&t).await;
    let huge = format!("+7\"\n{}", "9".repeat(1 << 20));
    for body in [
        serde_json::json!({"from": huge, "text": "3#1"}).to_string(),
        // serde quotes a string it did not expect in its message.
        serde_json::Value::String(huge.clone()).to_string(),
        serde_json::json!({"from": huge.as_str(), "text": 7}).to_string(),
    ] {
        let (status, err) = post(&t, Some(SECRET), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        let text = err.to_string();
        assert!(text.len() < 1024, "{} bytes: {}", text.len(), &text[..200]);
    }
    let (_, err) = post(
        &t,
        Some(SECRET),
        &serde_json::json!({"from": huge, "text": "3#1"}).to_string(),
    )
    .await;
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"+7\\\"\\n999"), "{message}");
    assert!(
        message.contains(&format!("({} bytes)", huge.len())),
        "{message}"
    );
    assert_eq!(written(&t).await, before);
}

both_backends!(
    inbound_error_bodies_are_bounded,
    super::error_bodies_are_bounded
);
