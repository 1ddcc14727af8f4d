//! Meal history, ratings and complaints (with their delivery to e-Otinish).

mod wallet_support;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wallet_server::wallet::complaints;
use wallet_support::*;

wallet_test!(history_lists_served_meals_only, |w: World| async move {
    let (a, b) = (w.school_a.0, w.school_b.0);
    let at = |day: &str, hhmm: &str| {
        let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let t = chrono::NaiveTime::parse_from_str(hhmm, "%H:%M").unwrap();
        shared::ServiceDay(d).unix_at(t)
    };
    let (t1, t2, t3) = (
        at("2026-11-20", "12:10"),
        at("2026-11-23", "12:05"),
        at("2026-11-23", "12:30"),
    );
    let (own, other, own_b) = (&w.own_a.id, &w.other_a.id, &w.own_b.id);
    w.exec(&format!(
        "INSERT INTO terminals (id, school_code, label, secret_hash, enrolled_at) VALUES
            ('t1', {a}, 'Canteen 1', 'h1', 1), ('t2', {a}, 'Canteen 2', 'h2', 1), ('t3', {b}, 'Асхана', 'h3', 1);
         INSERT INTO terminal_events (terminal_id, seq, event_id, school_code, voucher_id, verdict,
            source, meal_kind, service_day, scanned_at, received_at, duplicate) VALUES
            ('t1', 1, 'e1', {a}, '{own}', 'ok', 'qr', 'lunch', '2026-11-20', {t1}, {t1}, FALSE),
            ('t1', 2, 'e2', {a}, '{own}', 'ok', 'qr', 'lunch', '2026-11-23', {t2}, {t2}, FALSE),
            ('t2', 1, 'e3', {a}, '{own}', 'ok', 'qr', 'lunch', '2026-11-23', {t3}, {t3}, TRUE),
            ('t1', 3, 'e4', {a}, '{own}', 'already_served', 'qr', 'lunch', '2026-11-23', {t3}, {t3}, FALSE),
            ('t1', 4, 'e5', {a}, '{own}', 'expired', 'qr', 'lunch', '2026-11-23', {t3}, {t3}, FALSE),
            ('t1', 5, 'e6', {a}, '{other}', 'ok', 'qr', 'lunch', '2026-11-23', {t2}, {t2}, FALSE),
            ('t1', 6, 'e7', {a}, NULL, 'bad_format', 'qr', 'lunch', '2026-11-23', {t2}, {t2}, FALSE),
            ('t3', 1, 'e8', {b}, '{own_b}', 'ok', 'card', 'breakfast', '2026-11-23', {t2}, {t2}, FALSE);"
    ))
    .await;
    let token = w.login(P1).await;
    let r = w
        .call(
            Method::GET,
            &format!("/api/v1/wallet/vouchers/{own}/history"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        json!([
            {"served_at": t2, "meal_kind": "lunch", "school_bin": w.school_a.1, "school_name": "№1 мектеп-гимназия", "service_day": "2026-11-23"},
            {"served_at": t1, "meal_kind": "lunch", "school_bin": w.school_a.1, "school_name": "№1 мектеп-гимназия", "service_day": "2026-11-20"},
        ])
    );
    let r = w
        .call(
            Method::GET,
            &format!("/api/v1/wallet/vouchers/{own_b}/history"),
            Some(&token),
            None,
        )
        .await
        .json();
    assert_eq!(r.as_array().unwrap().len(), 1);
    assert_eq!(r[0]["meal_kind"], "breakfast");
    assert_eq!(r[0]["school_bin"], w.school_b.1.as_str());
});

async fn rate(w: &World, token: &str, body: Value) -> Reply {
    w.call(
        Method::POST,
        "/api/v1/wallet/ratings",
        Some(token),
        Some(body),
    )
    .await
}

wallet_test!(ratings_one_per_voucher_per_day, |w: World| async move {
    let token = w.login(P1).await;
    let id = w.own_a.id.clone();
    let r = rate(&w, &token, json!({"voucher_id": id, "stars": 4})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["stars"], 4);
    assert_eq!(r.json()["service_day"], "2026-11-23");
    assert_eq!(r.json()["comment"], Value::Null);
    // Changed the same day: still one rating.
    w.state().clock.advance(3_600);
    let r = rate(
        &w,
        &token,
        json!({"voucher_id": id, "stars": 2, "comment": "  Сорпа суық болды  "}),
    )
    .await;
    assert_eq!(r.json()["stars"], 2);
    assert_eq!(r.json()["comment"], "Сорпа суық болды");
    let list = w
        .call(
            Method::GET,
            &format!("/api/v1/wallet/ratings?voucher_id={id}"),
            Some(&token),
            None,
        )
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["stars"], 2);
    // The next day: a second rating.
    w.set_local("2026-11-24", "13:00");
    assert_eq!(
        rate(&w, &token, json!({"voucher_id": id, "stars": 5}))
            .await
            .status,
        StatusCode::OK
    );
    let list = w
        .call(
            Method::GET,
            &format!("/api/v1/wallet/ratings?voucher_id={id}"),
            Some(&token),
            None,
        )
        .await
        .json();
    let days: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["service_day"].clone(), r["stars"].clone()))
        .collect();
    assert_eq!(
        days,
        vec![
            (json!("2026-11-24"), json!(5)),
            (json!("2026-11-23"), json!(2))
        ]
    );

    // Bad input: a clear error, nothing written.
    for (body, code) in [
        (json!({"voucher_id": id, "stars": 0}), "bad_stars"),
        (json!({"voucher_id": id, "stars": 6}), "bad_stars"),
        (json!({"voucher_id": id, "stars": "4"}), "bad_request"),
        (
            json!({"voucher_id": id, "stars": 3, "comment": "a\u{0}b"}),
            "bad_text",
        ),
        (
            json!({"voucher_id": id, "stars": 3, "comment": "ы".repeat(1_001)}),
            "text_too_long",
        ),
        (json!({"stars": 3}), "bad_request"),
    ] {
        let r = rate(&w, &token, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_code(), code, "{body}");
    }
    let stored = w.state().store.ratings_for(&id).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].stars, 5);
    let r = w
        .call(Method::GET, "/api/v1/wallet/ratings", Some(&token), None)
        .await;
    assert_eq!(r.error_code(), "bad_request", "voucher_id is required");
});

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn complain(w: &World, token: &str, text: &str) -> Reply {
    w.call(
        Method::POST,
        "/api/v1/wallet/complaints",
        Some(token),
        Some(json!({"voucher_id": w.own_a.id, "text": text})),
    )
    .await
}

wallet_test!(
    complaint_lands_in_the_outbox_folder,
    |w: World| async move {
        let token = w.login(P1).await;
        assert_eq!(
            complain(&w, &token, "short").await.error_code(),
            "text_too_short"
        );
        assert_eq!(
            complain(&w, &token, "Суп\u{7} суық болды бүгін")
                .await
                .error_code(),
            "bad_text"
        );
        let text = "Сегодня обед был холодным, и порции маленькие.";
        w.set_local("2026-11-23", "13:30");
        let r = complain(&w, &token, text).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        assert_eq!(r.json()["status"], "queued");
        let id = r.json()["complaint_id"].as_str().unwrap().to_owned();
        let path = w
            .state()
            .paths
            .outbox_dir()
            .join("eotinish")
            .join(format!("{id}.json"));
        wait_until("the complaint is sent", || async {
            complaints::deliver_due(w.state()).await.unwrap();
            w.state()
                .store
                .complaint_delivery(&id)
                .await
                .unwrap()
                .unwrap()
                .status
                == "sent"
        })
        .await;
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["complaint_id"], id.as_str());
        assert_eq!(doc["recipient"]["kind"], "district_education_authority");
        assert_eq!(doc["school"]["bin"], w.school_a.1.as_str());
        assert_eq!(doc["school"]["name"], "№1 мектеп-гимназия");
        assert_eq!(doc["pupil"]["name"], "Сапарова Айгерим");
        assert_eq!(doc["pupil"]["grade"], 3);
        assert_eq!(doc["pupil"]["class_letter"], "А");
        assert_eq!(doc["applicant"]["phone"], P1);
        assert_eq!(doc["text"], text);
        assert_eq!(doc["submitted_at"], "2026-11-23T13:30:00+05:00");
        let list = w
            .call(Method::GET, "/api/v1/wallet/complaints", Some(&token), None)
            .await
            .json();
        assert_eq!(list[0]["complaint_id"], id.as_str());
        assert_eq!(list[0]["status"], "sent");
        assert_eq!(list[0]["sent_at"], w.state().now());
        // At most ten a day from one number.
        for i in 1..10 {
            let r = complain(&w, &token, &format!("Жалоба номер {i}: опять холодно.")).await;
            assert_eq!(r.status, StatusCode::CREATED, "{i}");
        }
        assert_eq!(
            complain(&w, &token, "And one more complaint today.")
                .await
                .error_code(),
            "too_many_requests"
        );
    }
);

/// `(idempotency key, authorization, body)` of one request.
type Hit = (Option<String>, Option<String>, String);

#[derive(Default)]
struct Receiver {
    fail_first: usize,
    hits: Mutex<Vec<Hit>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut hits = r.hits.lock().unwrap();
    hits.push((h("idempotency-key"), h("authorization"), body));
    if hits.len() <= r.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::ACCEPTED
    }
}

async fn http_delivery(pg: bool) {
    let receiver = Arc::new(Receiver {
        fail_first: 2,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/complaints", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let w = World::with_settings(
        pg,
        settings(&format!(
            "[eotinish]\nurl = \"http://{addr}/complaints\"\ntoken = \"eo-s3cret\""
        )),
    )
    .await;
    let token = w.login(P1).await;
    let r = complain(&w, &token, "Бүгін түскі ас берілмеді.").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["complaint_id"].as_str().unwrap().to_owned();
    let store = w.state().store.clone();
    let delivery = || {
        let store = store.clone();
        let id = id.clone();
        async move { store.complaint_delivery(&id).await.unwrap().unwrap() }
    };
    // The first attempt starts at once and fails.
    wait_until("the first attempt is recorded", || async {
        delivery().await.attempts == 1
    })
    .await;
    let d = delivery().await;
    assert_eq!(d.status, "queued");
    assert_eq!(d.next_attempt_at, w.state().now() + 30);
    assert!(d.last_error.unwrap().contains("503"));
    // Not before its time.
    w.state().clock.advance(29);
    assert_eq!(complaints::deliver_due(w.state()).await.unwrap(), 0);
    assert_eq!(receiver.hits.lock().unwrap().len(), 1);
    // Second attempt fails, then back-off doubles.
    w.state().clock.advance(1);
    assert_eq!(complaints::deliver_due(w.state()).await.unwrap(), 0);
    let d = delivery().await;
    assert_eq!((d.attempts, d.next_attempt_at), (2, w.state().now() + 60));
    w.state().clock.advance(60);
    assert_eq!(complaints::deliver_due(w.state()).await.unwrap(), 1);
    let d = delivery().await;
    assert_eq!(d.status, "sent");
    assert_eq!(d.sent_at, Some(w.state().now()));
    // Delivered exactly once: later rounds send nothing.
    w.state().clock.advance(86_400);
    assert_eq!(complaints::deliver_due(w.state()).await.unwrap(), 0);
    let hits = receiver.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3, "two failures and one acceptance");
    for (key, auth, body) in &hits {
        assert_eq!(key.as_deref(), Some(id.as_str()), "idempotency key");
        assert_eq!(auth.as_deref(), Some("Bearer eo-s3cret"));
        assert_eq!(body, &hits[0].2, "the same document each time");
    }
    let doc: Value = serde_json::from_str(&hits[2].2).unwrap();
    assert_eq!(doc["complaint_id"], id.as_str());
    let list = w
        .call(Method::GET, "/api/v1/wallet/complaints", Some(&token), None)
        .await
        .json();
    assert_eq!(list[0]["status"], "sent");
    assert!(
        !w.state().paths.outbox_dir().join("eotinish").exists(),
        "no outbox file when HTTP is configured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaint_http_delivery_retries_until_accepted_sqlite() {
    http_delivery(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
async fn complaint_http_delivery_retries_until_accepted_postgres() {
    http_delivery(true).await;
}
