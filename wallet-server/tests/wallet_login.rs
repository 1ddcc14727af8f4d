//! Parent login by SMS code: the flow, wrong codes, expiry, rate limits, sessions.

mod wallet_support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use wallet_support::*;

async fn ask(w: &World, phone: &str) -> Reply {
    w.call(
        Method::POST,
        "/api/v1/wallet/login",
        None,
        Some(json!({ "phone": phone })),
    )
    .await
}

async fn verify(w: &World, phone: &str, code: &str) -> Reply {
    w.call(
        Method::POST,
        "/api/v1/wallet/login/verify",
        None,
        Some(json!({ "phone": phone, "code": code })),
    )
    .await
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

wallet_test!(login_then_vouchers_then_logout, |w: World| async move {
    // Written forms of the number normalise: the SMS goes to +7701..., in both languages.
    let r = ask(&w, "8 (701) 000-00-01").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json(), json!({"status": "code_sent", "expires_in": 300}));
    let texts = w
        .state()
        .store
        .sms_texts_to(P1, "login_code")
        .await
        .unwrap();
    assert_eq!(texts.len(), 1);
    assert!(
        texts[0].contains("кіру коды") || texts[0].contains("коды"),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("Никому"), "{}", texts[0]);
    let code = code_in(&texts[0]);

    let r = verify(&w, "+7 701 000 00 01", &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["cache-control"], "no-store");
    let token = r.json()["session_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(
        r.json()["expires_at"].as_i64().unwrap(),
        w.state().now() + 30 * 86_400
    );
    // The same code does not work twice.
    assert_eq!(verify(&w, P1, &code).await.error_code(), "code_expired");

    let r = w
        .call(Method::GET, "/api/v1/wallet/vouchers", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["voucher_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&w.own_a.id.as_str()) && ids.contains(&w.own_b.id.as_str()));
    let a = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["voucher_id"] == w.own_a.id.as_str())
        .unwrap();
    assert_eq!(a["status"], "issued");
    assert_eq!(a["pupil_name"], "Сапарова Айгерим");
    assert_eq!(a["school_bin"], w.school_a.1.as_str());
    assert_eq!(a["school_code"], w.school_a.0);
    assert_eq!(a["valid_from"], "2026-09-01");
    assert_eq!(a["valid_to"], "2027-05-25");

    // No session, a made-up session, another scheme: 401 in the error body.
    for auth in [None, Some("not-a-session")] {
        let r = w
            .call(Method::GET, "/api/v1/wallet/vouchers", auth, None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error_code(), "unauthorized");
    }

    let r = w
        .call(Method::POST, "/api/v1/wallet/logout", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = w
        .call(Method::GET, "/api/v1/wallet/vouchers", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
});

wallet_test!(sessions_expire_after_30_days, |w: World| async move {
    let token = w.login(P1).await;
    w.state().clock.advance(30 * 86_400 - 10);
    let r = w
        .call(Method::GET, "/api/v1/wallet/vouchers", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    w.state().clock.advance(11);
    let r = w
        .call(Method::GET, "/api/v1/wallet/vouchers", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
});

wallet_test!(
    unknown_numbers_get_the_same_answer_and_no_sms,
    |w: World| async move {
        let known = ask(&w, P1).await;
        let unknown = ask(&w, UNKNOWN).await;
        assert_eq!(known.status, unknown.status);
        assert_eq!(known.bytes, unknown.bytes);
        assert!(w
            .state()
            .store
            .sms_texts_to(UNKNOWN, "login_code")
            .await
            .unwrap()
            .is_empty());
        // Guessing for an unknown number reads like guessing for a known one.
        let r = verify(&w, UNKNOWN, "123456").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "wrong_code");
        // And the per-phone limit hits both alike.
        for _ in 0..2 {
            w.state().clock.advance(1);
            assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
            assert_eq!(ask(&w, UNKNOWN).await.status, StatusCode::ACCEPTED);
        }
        let (k, u) = (ask(&w, P1).await, ask(&w, UNKNOWN).await);
        assert_eq!(k.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(k.bytes, u.bytes);
        // A number with no code at all: the same answer as an expired code.
        assert_eq!(
            verify(&w, "+77479999999", "123456").await.error_code(),
            "code_expired"
        );
    }
);

wallet_test!(five_wrong_codes_lock_the_code, |w: World| async move {
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    let code = w.last_code(P1).await.unwrap();
    for left in (0..5).rev() {
        let r = verify(&w, P1, &wrong(&code)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "wrong_code");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("Attempts left: {left}")),
            "{}",
            r.text()
        );
    }
    // The sixth try, even with the right code, is refused: the code is used up.
    let r = verify(&w, P1, &code).await;
    assert_eq!(r.error_code(), "code_expired");
    // Malformed codes are refused without costing an attempt.
    assert_eq!(verify(&w, P1, "12ab56").await.error_code(), "bad_code");
    // A new code works.
    w.state().clock.advance(1);
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    let fresh = w.last_code(P1).await.unwrap();
    assert_eq!(verify(&w, P1, &fresh).await.status, StatusCode::OK);
});

wallet_test!(codes_expire_after_five_minutes, |w: World| async move {
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    let first = w.last_code(P1).await.unwrap();
    w.state().clock.advance(299);
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    let second = w.last_code(P1).await.unwrap();
    // 5 minutes and 1 second after the first code: it has expired, the second still works.
    w.state().clock.advance(2);
    if first != second {
        assert_eq!(verify(&w, P1, &first).await.error_code(), "wrong_code");
    }
    assert_eq!(verify(&w, P1, &second).await.status, StatusCode::OK);
    // And the second, too, dies at five minutes.
    w.state().clock.advance(1);
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    let third = w.last_code(P1).await.unwrap();
    w.state().clock.advance(300);
    assert_eq!(verify(&w, P1, &third).await.error_code(), "code_expired");
});

wallet_test!(per_phone_rate_limit, |w: World| async move {
    for _ in 0..3 {
        assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
        w.state().clock.advance(10);
    }
    let r = ask(&w, P1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "too_many_requests");
    assert_eq!(
        w.state()
            .store
            .sms_texts_to(P1, "login_code")
            .await
            .unwrap()
            .len(),
        3,
        "no SMS for the refused request"
    );
    // Other numbers are not affected; after ten minutes this one may ask again.
    assert_eq!(ask(&w, P2).await.status, StatusCode::ACCEPTED);
    w.state().clock.advance(600);
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    // At most ten a day, however they are spread (an hour apart: under the hourly budget).
    for _ in 0..6 {
        w.state().clock.advance(3601);
        assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    }
    w.state().clock.advance(3601);
    assert_eq!(ask(&w, P1).await.status, StatusCode::TOO_MANY_REQUESTS);
    w.state().clock.advance(86_400);
    assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
});

wallet_test!(per_address_rate_limit, |w: World| async move {
    let from = |last: u8| Some(SocketAddr::from(([10, 1, 2, last], 40_000)));
    let login = |i: u32, peer| {
        let w = &w;
        async move {
            w.call_from(
                Method::POST,
                "/api/v1/wallet/login",
                None,
                Some(json!({ "phone": format!("+7705{:07}", i) })),
                peer,
            )
            .await
        }
    };
    for i in 0..30 {
        assert_eq!(login(i, from(1)).await.status, StatusCode::ACCEPTED, "{i}");
    }
    let r = login(31, from(1)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "too_many_requests");
    // Another address is not affected; without connect info (router tests) nothing is limited.
    assert_eq!(login(32, from(2)).await.status, StatusCode::ACCEPTED);
    assert_eq!(login(33, None).await.status, StatusCode::ACCEPTED);
    // Code guesses are limited per address too, across phones.
    for i in 0..60 {
        let r = w
            .call_from(
                Method::POST,
                "/api/v1/wallet/login/verify",
                None,
                Some(json!({ "phone": format!("+7705{:07}", i), "code": "000000" })),
                from(3),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{i}: {}", r.text());
    }
    let r = w
        .call_from(
            Method::POST,
            "/api/v1/wallet/login/verify",
            None,
            Some(json!({ "phone": P1, "code": "000000" })),
            from(3),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // The window passes.
    w.state().clock.advance(600);
    assert_eq!(login(34, from(1)).await.status, StatusCode::ACCEPTED);
});

wallet_test!(bad_login_bodies_are_clear_errors, |w: World| async move {
    let r = ask(&w, "+49 170 1234567").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "bad_phone");
    for body in [
        &b"{"[..],
        b"[]",
        b"{\"phone\": 7}",
        b"{\"phone\": \"+77010000001\", \"extra\": 1}",
        b"",
    ] {
        let r = w
            .raw(Method::POST, "/api/v1/wallet/login", None, body.to_vec())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", body);
        assert_eq!(r.error_code(), "bad_request");
    }
    assert!(w
        .state()
        .store
        .sms_texts_to(P1, "login_code")
        .await
        .unwrap()
        .is_empty());
});

wallet_test!(
    unknown_numbers_leave_nothing_stored_and_decoys_answer_guesses,
    |w: World| async move {
        for _ in 0..3 {
            assert_eq!(ask(&w, UNKNOWN).await.status, StatusCode::ACCEPTED);
            w.state().clock.advance(1);
        }
        let store = &w.state().store;
        assert_eq!(store.login_codes_since(UNKNOWN, 0).await.unwrap(), 0);
        assert_eq!(store.login_codes_total_since(0).await.unwrap(), 0);
        // Five guesses, counted down like a real code, then the code is gone.
        for left in (0..5).rev() {
            let r = verify(&w, UNKNOWN, "123456").await;
            assert_eq!(r.error_code(), "wrong_code");
            assert!(
                r.text().contains(&format!("Attempts left: {left}")),
                "{}",
                r.text()
            );
        }
        assert_eq!(
            verify(&w, UNKNOWN, "123456").await.error_code(),
            "code_expired"
        );
    }
);

wallet_test!(
    login_codes_have_a_per_phone_and_a_global_hourly_budget,
    settings = settings("[sms]\nlogin_codes_per_hour = 3\nlogin_codes_per_phone_per_hour = 4\n"),
    |w: World| async move {
        // Per phone: 3 in ten minutes, 4 in the hour, for listed and unlisted numbers alike.
        for _ in 0..3 {
            assert_eq!(ask(&w, UNKNOWN).await.status, StatusCode::ACCEPTED);
        }
        assert_eq!(ask(&w, UNKNOWN).await.status, StatusCode::TOO_MANY_REQUESTS);
        w.state().clock.advance(600);
        assert_eq!(ask(&w, UNKNOWN).await.status, StatusCode::ACCEPTED);
        let over = ask(&w, UNKNOWN).await;
        assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);

        // Global: three stored codes in the hour, then everyone waits, listed or not.
        assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
        assert_eq!(ask(&w, P2).await.status, StatusCode::ACCEPTED);
        assert_eq!(ask(&w, P3).await.status, StatusCode::ACCEPTED);
        let (known, unknown) = (ask(&w, P1).await, ask(&w, "+77470000123").await);
        assert_eq!(known.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(known.bytes, unknown.bytes);
        assert!(
            known.text().contains("Вход по SMS сейчас ограничен"),
            "{}",
            known.text()
        );
        let store = &w.state().store;
        assert_eq!(store.login_codes_total_since(0).await.unwrap(), 3);
        assert_eq!(store.sms_texts_to(P1, "login_code").await.unwrap().len(), 1);
        // An hour later the budget is back.
        w.state().clock.advance(3601);
        assert_eq!(ask(&w, P1).await.status, StatusCode::ACCEPTED);
    }
);
