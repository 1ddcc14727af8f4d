//! Activation, QR tokens (JSON and PNG), daily limits, key rotation, the share page, and the
//! access matrix: parent × own pupil / other family's pupil / other school, for every endpoint.

mod wallet_support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use shared::token::{self, DEFAULT_SKEW};
use shared::trust::{KeyRing, SignedTrustList};
use shared::wire::VoucherStatus;
use shared::KeyPair;
use std::sync::Arc;
use wallet_server::testkit;
use wallet_server::wallet::qr::Matrix;
use wallet_server::wallet::WalletRuntime;
use wallet_support::*;

/// The trust list as anyone fetches it, verified with the server's root key.
async fn ring(w: &World) -> KeyRing {
    let r = w.call(Method::GET, "/api/v1/keys", None, None).await;
    let list: SignedTrustList = serde_json::from_slice(&r.bytes).unwrap();
    let payload = list
        .verify(&w.state().keys.root().verifying_key(), None)
        .unwrap();
    KeyRing::from_payload(&payload).unwrap()
}

async fn qr(w: &World, token: &str, voucher: &str, validity: &str) -> Reply {
    w.call(
        Method::POST,
        &format!("/api/v1/wallet/vouchers/{voucher}/qr"),
        Some(token),
        Some(json!({ "validity": validity })),
    )
    .await
}

fn decode_png(bytes: &[u8]) -> String {
    let img = image::load_from_memory(bytes).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
        img.width() as usize,
        img.height() as usize,
        |x, y| img.get_pixel(x as u32, y as u32).0[0],
    );
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    grids[0].decode().unwrap().1
}

wallet_test!(activation, |w: World| async move {
    let token = w.login(P1).await;
    let before = w
        .state()
        .store
        .voucher(w.own_a.uuid())
        .await
        .unwrap()
        .unwrap();
    let url = format!("/api/v1/wallet/vouchers/{}/activate", w.own_a.id);
    let r = w.call(Method::POST, &url, Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "active");
    assert_eq!(r.json()["activated_at"], w.state().now());
    let after = w
        .state()
        .store
        .voucher(w.own_a.uuid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status(), VoucherStatus::Active);
    assert!(after.change_seq > before.change_seq, "terminals learn it");
    let audit = w.state().store.audit_entries(10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "voucher.activate"
        && e.subject.as_deref() == Some(w.own_a.id.as_str())
        && e.actor == format!("parent:{P1}")));

    // Idempotent: again is fine and changes nothing.
    w.state().clock.advance(60);
    let r = w.call(Method::POST, &url, Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["activated_at"], w.state().now() - 60);
    let again = w
        .state()
        .store
        .voucher(w.own_a.uuid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.change_seq, after.change_seq);

    // Revoked: refused, and stays revoked.
    w.revoke(&w.own_b).await;
    let r = w
        .call(
            Method::POST,
            &format!("/api/v1/wallet/vouchers/{}/activate", w.own_b.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "voucher_revoked");
    let b = w
        .state()
        .store
        .voucher(w.own_b.uuid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.status(), VoucherStatus::Revoked);
});

wallet_test!(
    expired_vouchers_cannot_be_activated,
    |w: World| async move {
        w.set_local("2027-05-26", "09:00");
        let token = w.login(P1).await;
        let r = w
            .call(
                Method::POST,
                &format!("/api/v1/wallet/vouchers/{}/activate", w.own_a.id),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.error_code(), "voucher_expired");
        let list = w
            .call(Method::GET, "/api/v1/wallet/vouchers", Some(&token), None)
            .await
            .json();
        assert!(list
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["status"] == "expired"));
    }
);

wallet_test!(
    qr_tokens_verify_and_carry_the_right_claims,
    |w: World| async move {
        let token = w.login(P1).await;
        // Not active yet.
        let r = qr(&w, &token, &w.own_a.id, "short").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.error_code(), "voucher_not_active");
        w.activate(&w.own_a).await;

        let now = w.state().now();
        let r = qr(&w, &token, &w.own_a.id, "short").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.headers["cache-control"], "no-store");
        let body = r.json();
        let t = body["token"].as_str().unwrap();
        assert_eq!(t.len(), 140);
        assert_eq!(body["issued_at"], now);
        assert_eq!(body["expires_at"], now + 600);
        let claims =
            token::verify(t, &ring(&w).await, w.school_a.0 as u32, now, DEFAULT_SKEW).unwrap();
        assert_eq!(claims.voucher_id, w.own_a.uuid());
        assert_eq!(i64::from(claims.issued_at), now);
        assert_eq!(i64::from(claims.expires_at), now + 600);
        assert_eq!(claims.key_id, w.state().keys.active().signing.key_id());
        // The SVG is the token's QR code.
        assert_eq!(
            body["svg"].as_str().unwrap(),
            Matrix::encode(t.as_bytes()).unwrap().svg()
        );
        // Another school's terminal refuses it.
        assert_eq!(
            token::verify(t, &ring(&w).await, w.school_b.0 as u32, now, DEFAULT_SKEW),
            Err(shared::Verdict::WrongSchool)
        );
        // Every token is fresh.
        let again = qr(&w, &token, &w.own_a.id, "short").await.json();
        assert_ne!(again["token"], body["token"]);

        // `today`: until the end of lunch, 15:00 local.
        let end = local("2026-11-23", "15:00");
        let r = qr(&w, &token, &w.own_a.id, "today").await.json();
        assert_eq!(r["expires_at"], end);
        let claims = token::verify(
            r["token"].as_str().unwrap(),
            &ring(&w).await,
            w.school_a.0 as u32,
            end,
            0,
        )
        .unwrap();
        assert_eq!(i64::from(claims.expires_at), end);
        // After lunch `today` is refused, `short` still works; on Sunday there is no `today`.
        w.set_local("2026-11-23", "15:00");
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "today").await.error_code(),
            "no_meals_left_today"
        );
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "short").await.status,
            StatusCode::OK
        );
        w.set_local("2026-11-22", "10:00");
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "today").await.error_code(),
            "no_meals_today"
        );
        // Unknown validity or body: a clear 400.
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "forever").await.error_code(),
            "bad_request"
        );
    }
);

wallet_test!(
    qr_refused_outside_the_school_year_or_when_revoked,
    |w: World| async move {
        w.activate(&w.own_a).await;
        w.set_local("2027-05-26", "09:00");
        let token = w.login(P1).await;
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "short").await.error_code(),
            "voucher_expired"
        );
        w.reset_clock();
        // A voucher for next year, already active: not valid yet.
        let next_year =
            shared::SchoolYear::default_for(chrono::NaiveDate::from_ymd_opt(2027, 9, 1).unwrap());
        let store = w.state().store.clone();
        let v = testkit::issue_voucher(
            store.as_ref(),
            w.own_a.pupil_id,
            w.school_a.0,
            &next_year,
            5,
        )
        .await;
        w.activate(&v).await;
        assert_eq!(
            qr(&w, &token, &v.id, "short").await.error_code(),
            "voucher_not_yet_valid"
        );
        w.revoke(&w.own_a).await;
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "short").await.error_code(),
            "voucher_revoked"
        );
    }
);

wallet_test!(
    revocation_reaches_the_wallet_within_seconds,
    |w: World| async move {
        let token = w.login(P1).await;
        w.activate(&w.own_a).await;
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "short").await.status,
            StatusCode::OK
        );
        w.revoke(&w.own_a).await;
        // The signing read is reused for at most five seconds per session.
        w.state()
            .clock
            .advance(wallet_server::wallet::session::OWNERSHIP_SECONDS);
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "short").await.error_code(),
            "voucher_revoked"
        );
        // Another session reads it fresh at once.
        let other = w.login(P1).await;
        assert_eq!(
            qr(&w, &other, &w.own_a.id, "short").await.error_code(),
            "voucher_revoked"
        );
    }
);

wallet_test!(
    daily_limit_per_voucher_survives_a_restart,
    settings = settings("[tokens]\ndaily_limit_per_voucher = 3"),
    |w: World| async move {
        let token = w.login(P1).await;
        w.activate(&w.own_a).await;
        w.activate(&w.own_b).await;
        for _ in 0..2 {
            assert_eq!(
                qr(&w, &token, &w.own_a.id, "short").await.status,
                StatusCode::OK
            );
        }
        let png = w
            .call(
                Method::GET,
                &format!("/api/v1/wallet/vouchers/{}/qr.png", w.own_a.id),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(png.status, StatusCode::OK, "PNGs count too");
        let r = qr(&w, &token, &w.own_a.id, "short").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.error_code(), "too_many_requests");
        // Each voucher has its own allowance.
        assert_eq!(
            qr(&w, &token, &w.own_b.id, "short").await.status,
            StatusCode::OK
        );

        // Counts reach the database in a batch, and a restarted server keeps refusing.
        wallet_server::wallet::jobs::flush(w.state()).await;
        let day = "2026-11-23";
        assert_eq!(
            w.state().store.token_count(&w.own_a.id, day).await.unwrap(),
            3
        );
        assert_eq!(
            w.state().store.token_count(&w.own_b.id, day).await.unwrap(),
            1
        );
        let mut restarted = w.state().clone();
        restarted.wallet = Arc::new(WalletRuntime::open(&w.state().paths.keys_dir()).unwrap());
        let app = wallet_server::app(restarted.clone());
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/wallet/vouchers/{}/qr", w.own_a.id))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"validity":"short"}"#))
            .unwrap();
        let r = tower::ServiceExt::oneshot(app, req).await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

        // A new day, a new allowance.
        w.set_local("2026-11-24", "08:00");
        assert_eq!(
            qr(&w, &token, &w.own_a.id, "short").await.status,
            StatusCode::OK
        );
    }
);

wallet_test!(qr_png_decodes_to_a_valid_token, |w: World| async move {
    let token = w.login(P1).await;
    w.activate(&w.own_a).await;
    let now = w.state().now();
    let r = w
        .call(
            Method::GET,
            &format!("/api/v1/wallet/vouchers/{}/qr.png", w.own_a.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(
        r.headers["x-token-expires-at"],
        (now + 600).to_string().as_str()
    );
    assert_eq!(&r.bytes[..8], b"\x89PNG\r\n\x1a\n");
    let text = decode_png(&r.bytes);
    let claims = token::verify(
        &text,
        &ring(&w).await,
        w.school_a.0 as u32,
        now,
        DEFAULT_SKEW,
    )
    .unwrap();
    assert_eq!(claims.voucher_id, w.own_a.uuid());
    let r = w
        .call(
            Method::GET,
            &format!(
                "/api/v1/wallet/vouchers/{}/qr.png?validity=today",
                w.own_a.id
            ),
            Some(&token),
            None,
        )
        .await;
    let end = local("2026-11-23", "15:00");
    assert_eq!(r.headers["x-token-expires-at"], end.to_string().as_str());
    let r = w
        .call(
            Method::GET,
            &format!(
                "/api/v1/wallet/vouchers/{}/qr.png?validity=weekly",
                w.own_a.id
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.error_code(), "bad_request");
});

wallet_test!(
    key_rotation_is_seamless_for_parents,
    |w: World| async move {
        let token = w.login(P1).await;
        w.activate(&w.own_a).await;
        let old = qr(&w, &token, &w.own_a.id, "short").await.json();
        let state = w.state();
        state
            .keys
            .rotate(state.store.as_ref(), state.now())
            .await
            .unwrap();
        let new = qr(&w, &token, &w.own_a.id, "short").await.json();
        let ring = ring(&w).await;
        let now = state.now();
        let school = w.school_a.0 as u32;
        let c_old = token::verify(old["token"].as_str().unwrap(), &ring, school, now, 0).unwrap();
        let c_new = token::verify(new["token"].as_str().unwrap(), &ring, school, now, 0).unwrap();
        assert_ne!(c_old.key_id, c_new.key_id, "signed with the new key");
        assert_eq!(c_new.key_id, state.keys.active().signing.key_id());
    }
);

wallet_test!(share_page_shows_only_the_code, |w: World| async move {
    let token = w.login(P1).await;
    w.activate(&w.own_a).await;
    let t = qr(&w, &token, &w.own_a.id, "today").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = w.call(Method::GET, &format!("/q/{t}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(html.contains(&Matrix::encode(t.as_bytes()).unwrap().svg()));
    let remaining = local("2026-11-23", "15:00") - w.state().now();
    assert!(
        html.contains(&format!(r#"data-remaining="{remaining}""#)),
        "counts down to the end of lunch"
    );
    assert!(html.contains("Покажи") && html.contains("көрсет"));
    for private in ["Айгерим", "Сапарова", P1, &w.school_a.1, "мектеп-гимназия"]
    {
        assert!(!html.contains(private), "{private} leaked");
    }
    assert_eq!(r.headers["referrer-policy"], "no-referrer");
    assert!(r.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));

    // Garbage, a token of someone else's key, an expired token.
    let r = w.call(Method::GET, "/q/not-a-token", None, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Ссылка неверная"));
    let foreign = token::sign(
        &token::TokenRequest {
            voucher_id: w.own_a.uuid(),
            school_code: w.school_a.0 as u32,
            issued_at: w.state().now() as u32,
            expires_at: w.state().now() as u32 + 600,
        },
        &KeyPair::generate(),
    );
    let r = w
        .call(Method::GET, &format!("/q/{foreign}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    w.set_local("2026-11-23", "15:01");
    let r = w.call(Method::GET, &format!("/q/{t}"), None, None).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.text().contains("Срок кода истёк"));
    assert!(!r.text().contains("<svg"));
});

wallet_test!(wallet_page_in_both_languages, |w: World| async move {
    let r = w.call(Method::GET, "/wallet", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().contains(r#"<html lang="ru">"#), "server default");
    let req = axum::http::Request::builder()
        .uri("/wallet")
        .header("cookie", "tamaq_lang=kk")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = w.send(req).await;
    assert!(r.text().contains(r#"<html lang="kk">"#) && r.text().contains("Код алу"));
    for (path, ty) in [
        ("/wallet/app.js", "text/javascript"),
        ("/wallet/share.js", "text/javascript"),
        ("/wallet/app.css", "text/css"),
    ] {
        let r = w.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.headers["content-type"].to_str().unwrap().starts_with(ty));
    }
});

/// Every voucher endpoint, for one voucher id: `(method, path, body)`.
fn endpoints(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            format!("/api/v1/wallet/vouchers/{id}/activate"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/wallet/vouchers/{id}/qr"),
            Some(json!({"validity": "short"})),
        ),
        (
            Method::GET,
            format!("/api/v1/wallet/vouchers/{id}/qr.png"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/wallet/vouchers/{id}/history"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/wallet/ratings".into(),
            Some(json!({"voucher_id": id, "stars": 4})),
        ),
        (
            Method::GET,
            format!("/api/v1/wallet/ratings?voucher_id={id}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/wallet/complaints".into(),
            Some(json!({"voucher_id": id, "text": "The soup was cold again today."})),
        ),
    ]
}

wallet_test!(access_matrix, |w: World| async move {
    for v in [&w.own_a, &w.own_b, &w.other_a, &w.other_b] {
        w.activate(v).await;
    }
    let p1 = w.login(P1).await;
    let p2 = w.login(P2).await;
    // P1: own pupil at school A and own pupil at school B (a family with two schools).
    for own in [&w.own_a, &w.own_b] {
        for (m, path, body) in endpoints(&own.id) {
            let r = w.call(m.clone(), &path, Some(&p1), body).await;
            assert!(
                r.status.is_success(),
                "{m} {path}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    // Another family's pupil at the same school, another family at another school, an id
    // that exists nowhere, and something that is no id: all the same 404.
    let nowhere = random_id().to_string();
    for id in [&w.other_a.id, &w.other_b.id, &nowhere, &"abc'--".to_owned()] {
        for (m, path, body) in endpoints(id) {
            let r = w.call(m.clone(), &path, Some(&p1), body).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.text());
            assert_eq!(r.error_code(), "not_found");
        }
    }
    // Without a session nothing answers.
    for (m, path, body) in endpoints(&w.own_a.id) {
        let r = w.call(m.clone(), &path, None, body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {path}");
    }
    // Lists show only one's own.
    let list = w
        .call(Method::GET, "/api/v1/wallet/vouchers", Some(&p2), None)
        .await
        .json();
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["voucher_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(w.other_a.id)]);
    let mine = w
        .call(Method::GET, "/api/v1/wallet/complaints", Some(&p1), None)
        .await
        .json();
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let theirs = w
        .call(Method::GET, "/api/v1/wallet/complaints", Some(&p2), None)
        .await
        .json();
    assert_eq!(theirs, json!([]));
    // Nothing was written for the refused requests.
    assert!(w
        .state()
        .store
        .ratings_for(&w.other_a.id)
        .await
        .unwrap()
        .is_empty());
    let other = w
        .state()
        .store
        .voucher(w.other_a.uuid())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.status(), VoucherStatus::Active);
    assert_eq!(
        w.state().wallet.tokens.current(
            w.other_a.uuid(),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        ),
        None,
        "no token was counted for another family's voucher"
    );
    // A pupil removed from the roster disappears from the parent's wallet.
    let pupil = w
        .state()
        .store
        .pupil(w.other_a.pupil_id)
        .await
        .unwrap()
        .unwrap();
    w.exec(&format!(
        "UPDATE pupils SET removed_at = 5 WHERE id = {}",
        pupil.id
    ))
    .await;
    let r = qr(&w, &p2, &w.other_a.id, "short").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
});

wallet_test!(
    revoked_with_reason_and_last_years_voucher,
    |w: World| async move {
        let store = w.state().store.clone();
        // Last school year's voucher of P1's child at school A, expired with the year.
        let last_year = shared::calendar::SchoolYear::default_for(
            chrono::NaiveDate::from_ymd_opt(2025, 11, 1).unwrap(),
        );
        assert_eq!(last_year.label(), "2025-2026");
        let old = testkit::issue_voucher(
            store.as_ref(),
            w.own_a.pupil_id,
            w.school_a.0,
            &last_year,
            1,
        )
        .await;
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let expired = wallet_server::lifecycle::expire_ended(store.as_ref(), today, 3)
            .await
            .unwrap();
        assert_eq!(expired, 1);
        // This year's voucher of P1's other child is revoked by an operator.
        w.revoke(&w.own_b).await;
        let revoked_at = w.state().now();

        let p1 = w.login(P1).await;
        let list = w
            .call(Method::GET, "/api/v1/wallet/vouchers", Some(&p1), None)
            .await
            .json();
        let rows: Vec<(Value, Value, Value, Value)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["voucher_id"].clone(),
                    v["school_year"].clone(),
                    v["status"].clone(),
                    v["revoke_reason"].clone(),
                )
            })
            .collect();
        let this_year = |id: &str, status: &str, reason: Value| {
            (json!(id), json!("2026-2027"), json!(status), reason)
        };
        assert_eq!(rows.len(), 3, "{list}");
        assert_eq!(
            rows[2],
            (
                json!(old.id),
                json!("2025-2026"),
                json!("expired"),
                Value::Null
            ),
            "last year's last: {list}"
        );
        assert!(rows.contains(&this_year(&w.own_a.id, "issued", Value::Null)));
        assert!(rows.contains(&this_year(&w.own_b.id, "revoked", json!("operator"))));
        let revoked = list
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["voucher_id"] == w.own_b.id)
            .unwrap();
        assert_eq!(revoked["revoked_at"], revoked_at);
        // Last year's voucher keeps its history, and signs nothing.
        let r = w
            .call(
                Method::GET,
                &format!("/api/v1/wallet/vouchers/{}/history", old.id),
                Some(&p1),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json(), json!([]));
        let r = qr(&w, &p1, &old.id, "short").await;
        assert_eq!(r.error_code(), "voucher_expired");
        let r = qr(&w, &p1, &w.own_b.id, "short").await;
        assert_eq!(r.error_code(), "voucher_revoked");
    }
);

wallet_test!(
    only_the_priority_phone_sees_a_pupil,
    |w: World| async move {
        // A pupil with the mother's and the father's phone listed: the mother's comes first.
        let store = w.state().store.clone();
        let year = w.state().settings.year_at(w.state().now()).unwrap();
        let p = pupil(w.school_a.0, "Әлия", "Нұрлан", [Some(P2), Some(P3), None]);
        assert_eq!(p.contact_phone.as_deref(), Some(P2));
        let id = store.upsert_pupil(&p, 1).await.unwrap();
        let v = testkit::issue_voucher(store.as_ref(), id, p.school_code, &year, 2).await;
        let ids = |list: Value| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|v| v["voucher_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let mother = w.login(P2).await;
        let father = w.login(P3).await;
        let list = w
            .call(Method::GET, "/api/v1/wallet/vouchers", Some(&mother), None)
            .await
            .json();
        assert!(ids(list).contains(&v.id));
        let list = w
            .call(Method::GET, "/api/v1/wallet/vouchers", Some(&father), None)
            .await
            .json();
        assert!(!ids(list).contains(&v.id));
        let r = w
            .call(
                Method::POST,
                &format!("/api/v1/wallet/vouchers/{}/activate", v.id),
                Some(&father),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
);
