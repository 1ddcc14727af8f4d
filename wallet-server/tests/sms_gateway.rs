//! The HTTP SMS gateway against a local stand-in provider, and delivery retries through the
//! outbox; the background jobs of `serve` sending the consent requests.

#[path = "core_support/mod.rs"]
mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wallet_server::config::Secret;
use wallet_server::roster::ImportOptions;
use wallet_server::sms::http::HttpGateway;
use wallet_server::sms::{self, OutgoingSms, SmsKind};
use wallet_server::store::testing;

/// Authorization header, idempotency key and body of one request the provider saw.
type Seen = (Option<String>, Option<String>, OutgoingSms);

#[derive(Clone, Default)]
struct Provider {
    /// Status codes to answer, in order; 200 once they run out.
    script: Arc<Mutex<Vec<u16>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn receive(
    State(p): State<Provider>,
    headers: HeaderMap,
    Json(sms): Json<OutgoingSms>,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    p.seen
        .lock()
        .unwrap()
        .push((h("authorization"), h("idempotency-key"), sms));
    let mut script = p.script.lock().unwrap();
    if script.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::from_u16(script.remove(0)).unwrap()
    }
}

async fn provider(script: Vec<u16>) -> (String, Provider) {
    let p = Provider {
        script: Arc::new(Mutex::new(script)),
        ..Provider::default()
    };
    let app = Router::new()
        .route("/send", post(receive))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/send"), p)
}

fn gateway(url: &str) -> HttpGateway {
    HttpGateway::new(url, Some(Secret::new("tok")))
        .unwrap()
        .with_pause(Duration::from_millis(10))
}

#[tokio::test]
async fn retries_temporary_failures_then_sends() {
    let (store, _db) = testing::any(false).await;
    let (url, p) = provider(vec![500, 503]).await;
    let phone = shared::phone::Phone::parse("+77011112233").unwrap();
    let id = sms::queue(
        store.as_ref(),
        &phone,
        "Код: 123456",
        SmsKind::LoginCode,
        1_000,
    )
    .await
    .unwrap();
    let report = sms::deliver_due(store.as_ref(), &gateway(&url), 1_000)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let seen = p.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two failures, then success");
    for (auth, key, sms) in &seen {
        assert_eq!(auth.as_deref(), Some("Bearer tok"));
        assert_eq!(key.as_deref(), Some(id.as_str()));
        assert_eq!(sms.to, "+77011112233");
        assert_eq!(sms.kind, "login_code");
        assert_eq!(sms.created_at, "1970-01-01T00:16:40Z");
    }
    assert_eq!(store.unsent_sms_count().await.unwrap(), 0);
}

#[tokio::test]
async fn failures_wait_in_the_outbox() {
    let (store, _db) = testing::any(false).await;
    // Three 502s use up one round's attempts; a 400 is a rejection.
    let (url, p) = provider(vec![502, 502, 502, 400]).await;
    let phone = shared::phone::Phone::parse("+77011112233").unwrap();
    sms::queue(store.as_ref(), &phone, "a", SmsKind::Help, 1_000)
        .await
        .unwrap();
    let gw = gateway(&url);
    let r = sms::deliver_due(store.as_ref(), &gw, 1_000).await.unwrap();
    assert_eq!((r.sent, r.failed), (0, 1));
    let row = &store.sms_outbox(10).await.unwrap()[0];
    assert_eq!(row.next_attempt_at, 1_030, "first back-off: 30 s");
    assert!(row.last_error.as_deref().unwrap().contains("502"));
    // Not due yet: nothing is sent.
    let r = sms::deliver_due(store.as_ref(), &gw, 1_029).await.unwrap();
    assert_eq!((r.sent, r.failed), (0, 0));
    // Due: the provider rejects it; it waits the longest back-off.
    let r = sms::deliver_due(store.as_ref(), &gw, 1_030).await.unwrap();
    assert_eq!((r.sent, r.failed), (0, 1));
    let row = &store.sms_outbox(10).await.unwrap()[0];
    assert_eq!((row.attempts, row.next_attempt_at), (2, 1_030 + 3_600));
    let r = sms::deliver_due(store.as_ref(), &gw, 4_630).await.unwrap();
    assert_eq!((r.sent, r.failed), (1, 0));
    assert_eq!(p.seen.lock().unwrap().len(), 5);
    assert_eq!(store.unsent_sms_count().await.unwrap(), 0);
}

#[tokio::test]
async fn unreachable_provider_is_a_temporary_failure() {
    let (store, _db) = testing::any(false).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    drop(listener);
    let phone = shared::phone::Phone::parse("+77011112233").unwrap();
    sms::queue(store.as_ref(), &phone, "a", SmsKind::Help, 1_000)
        .await
        .unwrap();
    let r = sms::deliver_due(store.as_ref(), &gateway(&url), 1_000)
        .await
        .unwrap();
    assert_eq!(r.failed, 1);
    let row = &store.sms_outbox(10).await.unwrap()[0];
    assert!(row.last_error.as_deref().unwrap().contains("unreachable"));
    assert!(HttpGateway::new("ftp://x", None).is_err());
    assert!(HttpGateway::new("not a url", None).is_err());
}

/// `serve`'s jobs: the consent tick runs at start and the SMS job delivers what it queued;
/// stopping waits for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_jobs_send_requests_and_stop() {
    let mut s = settings();
    s.server.job_interval_seconds = 3600;
    let t = wallet_server::testkit::state_with(false, s).await;
    import(
        &t.state.store,
        &csv(&[row(1, 0, "+77010000001"), row(2, 0, "+77010000002")]),
        ImportOptions::default(),
    )
    .await;
    let jobs = wallet_server::jobs::start(t.state.clone()).unwrap();
    let outbox = t.state.paths.outbox_dir().join("sms.jsonl");
    let mut sent = Vec::new();
    for _ in 0..100 {
        sent = sms::file::read_outbox(&outbox).unwrap();
        if sent.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent.len(), 2, "both requests delivered by the jobs");
    assert!(sent.iter().all(|s| s.kind == "consent_request"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    tokio::time::timeout(Duration::from_secs(10), jobs.stop(deadline))
        .await
        .expect("jobs stop promptly");
}
