//! Enrollment: single-use codes valid 24 hours, clear refusals that write nothing, rate limits,
//! and the CLI that prints a code alone on one line.

use crate::fixtures::*;
use crate::state_test;
use axum::http::StatusCode;
use serde_json::json;
use wallet_server::terminal_sync::credentials::sha256_hex;
use wallet_server::AppState;

state_test!(code_is_single_use, |state: AppState| async move {
    let app = app(&state);
    let state = &state;
    let s = school(state, BIN_A, "Школа 1").await;
    let v = voucher(state, &s, "iin-1", "Айгерим", "Сапарова", true).await;
    let code = code_for(state, BIN_A).await;
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        // Staff may type it in lower case with a dash in the middle.
        Some(json!({"code": format!("{}-{}", &code[..5], &code[5..]).to_lowercase(), "label": "Столовая 1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: shared::wire::EnrollResponse = serde_json::from_value(body).unwrap();
    assert_eq!(resp.school_bin, BIN_A);
    assert_eq!(resp.school_code as i64, s.code);
    assert_eq!(resp.school_name, "Школа 1");
    assert_eq!(resp.root_public_key, state.keys.root_public_b64());
    assert_eq!(shared::b64::decode(&resp.secret).unwrap().len(), 32);
    assert!(resp.snapshot.full);
    assert_eq!(resp.snapshot.vouchers.len(), 1);
    assert_eq!(resp.snapshot.vouchers[0].voucher_id, v.uuid());
    assert_eq!(resp.snapshot.vouchers[0].display_name, "Айгерим С.");

    // Only the secret's hash is stored.
    let t = state
        .store
        .terminal(resp.terminal_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.secret_hash, sha256_hex(resp.secret.as_bytes()));
    assert_eq!(t.label, "Столовая 1");
    let stored = state
        .store
        .enroll_code(&sha256_hex(code.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.used_at, Some(MONDAY_9AM));
    assert_eq!(stored.terminal_id.as_deref(), Some(t.id.as_str()));

    // The same code again: refused, and no second terminal.
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "enroll_code_used");
    assert_eq!(
        state.store.terminals_of_school(s.code).await.unwrap().len(),
        1
    );

    let audit = state.store.audit_entries(10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "terminal.enroll_code" && a.actor == "test"));
    assert!(audit.iter().any(|a| a.action == "terminal.enroll"
        && a.subject.as_deref() == Some(&format!("terminal:{}", resp.terminal_id)[..])));
});

state_test!(codes_expire_after_24_hours, |state: AppState| async move {
    let app = app(&state);
    let state = &state;
    let s = school(state, BIN_A, "Школа 1").await;
    let early = code_for(state, BIN_A).await;
    let late = code_for(state, BIN_A).await;
    state.clock.advance(24 * 3600 - 1);
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        Some(json!({"code": early})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "one second before expiry: {body}");
    state.clock.advance(1);
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        Some(json!({"code": late})),
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "enroll_code_expired");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("24 hours"));
    assert_eq!(
        state.store.terminals_of_school(s.code).await.unwrap().len(),
        1
    );
    let unused = state
        .store
        .enroll_code(&sha256_hex(late.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unused.used_at, None, "an expired code is not marked used");
});

state_test!(wrong_codes_write_nothing, |state: AppState| async move {
    let app = app(&state);
    let state = &state;
    let s = school(state, BIN_A, "Школа 1").await;
    let good = code_for(state, BIN_A).await;
    let other: String = good.chars().rev().collect();
    let other = if other == good {
        "ABCDEFGH23".to_owned()
    } else {
        other
    };
    for (body, status, code) in [
        (
            json!({"code": other}),
            StatusCode::BAD_REQUEST,
            "enroll_code_unknown",
        ),
        (
            json!({"code": "12345"}),
            StatusCode::BAD_REQUEST,
            "enroll_code_invalid",
        ),
        (
            json!({"code": "OOOOOOOOOO"}),
            StatusCode::BAD_REQUEST,
            "enroll_code_invalid",
        ),
        (
            json!({"code": good, "label": "a\u{0007}b"}),
            StatusCode::BAD_REQUEST,
            "bad_label",
        ),
        (
            json!({"label": "x"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let (got, resp) = call(
            &app,
            "POST",
            "/api/v1/terminal/enroll",
            None,
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}: {resp}");
        assert_eq!(resp["error"]["code"], code, "{body}: {resp}");
    }
    assert!(state
        .store
        .terminals_of_school(s.code)
        .await
        .unwrap()
        .is_empty());
    // The good code was not spent by the refused attempt with a bad label.
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        Some(json!({"code": good})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
});

state_test!(
    failed_guesses_are_rate_limited,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        school(state, BIN_A, "Школа 1").await;
        let good = code_for(state, BIN_A).await;
        for _ in 0..wallet_server::api::terminal::ENROLL_MAX_FAILURES {
            let (status, _) = call(
                &app,
                "POST",
                "/api/v1/terminal/enroll",
                None,
                Some(json!({"code": "ZZZZZZZZZZ"})),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/terminal/enroll",
            None,
            Some(json!({"code": good})),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"]["code"], "too_many_attempts");
        state
            .clock
            .advance(wallet_server::api::terminal::ENROLL_WINDOW_SECONDS);
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/terminal/enroll",
            None,
            Some(json!({"code": good})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "after the window: {body}");
    }
);

state_test!(
    enroll_code_refuses_unknown_schools,
    |state: AppState| async move {
        let state = &state;
        let err = wallet_server::terminal_sync::enroll::create_code(state, BIN_B, "test")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no school with BIN"), "{err}");
        let err = wallet_server::terminal_sync::enroll::create_code(state, "000140000007", "test")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a valid school BIN"), "{err}");
    }
);

/// `wallet-server terminal enroll-code` prints the code alone on one line, and it enrolls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_the_code_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = format!("sqlite://{}", data.join("tamaq.db").display());
    {
        let store = wallet_server::store::connect(&url).await.unwrap();
        store.upsert_school(BIN_A, "Школа 1", 1).await.unwrap();
    }
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wallet-server"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("TAMAQ_DATABASE_URL")
            .env_remove("TAMAQ_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["terminal", "enroll-code", "--school", BIN_A]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.ends_with('\n') && stdout.lines().count() == 1,
        "{stdout:?}"
    );
    let code = stdout.trim_end();
    assert_eq!(
        wallet_server::terminal_sync::credentials::normalize_code(code).as_deref(),
        Some(code)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Школа 1"));

    let bad = run(&["terminal", "enroll-code", "--school", BIN_B]);
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());

    // The printed code enrolls a terminal against the same database.
    let paths = wallet_server::config::Paths::new(data.clone(), None);
    let store = wallet_server::store::connect(&paths.database_url)
        .await
        .unwrap();
    let clock = wallet_server::clock::Clock::System;
    let state = wallet_server::AppState::assemble(
        store,
        wallet_server::config::Settings::default(),
        paths,
        clock,
        false,
    )
    .await
    .unwrap();
    let app = wallet_server::app(state.clone());
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/terminal/enroll",
        None,
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit = state.store.audit_entries(10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "terminal.enroll_code" && a.actor == "cli"));
}

/// A proxy that passes one request on, waits for the server's answer to begin (the server has
/// committed by then) and closes the client's connection without passing the answer on.
async fn proxy_that_loses_the_answer(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut request = Vec::new();
            // Headers, then the body its Content-Length announces.
            loop {
                let n = client.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            server.write_all(&request).await.unwrap();
            let _ = server.read(&mut buf).await.unwrap();
            // SO_LINGER 0: the client sees a reset, as on a dropped mobile link.
            let _ = client.set_zero_linger();
            drop(client);
        }
    });
    addr
}

state_test!(
    enrollment_retried_after_a_lost_answer_gets_the_same_terminal,
    |state: AppState| async move {
        let s = school(&state, BIN_A, "Школа 1").await;
        let code = code_for(&state, BIN_A).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let app = app(&state);
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap()
        });
        let proxy = proxy_that_loses_the_answer(server).await;
        let key = shared::b64::encode(&[7u8; 32]);
        let body = json!({"code": code, "label": "Столовая 1", "terminal_key": key});
        let http = reqwest::Client::new();

        let lost = http
            .post(format!("http://{proxy}/api/v1/terminal/enroll"))
            .json(&body)
            .send()
            .await;
        assert!(lost.is_err(), "the answer was dropped: {lost:?}");
        let made = state.store.terminals_of_school(s.code).await.unwrap();
        assert_eq!(made.len(), 1, "the server committed the enrollment");

        // The retry: same code, same key.
        let again = http
            .post(format!("http://{server}/api/v1/terminal/enroll"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), reqwest::StatusCode::OK);
        let resp: shared::wire::EnrollResponse = again.json().await.unwrap();
        assert_eq!(resp.terminal_id.to_string(), made[0].id);
        assert_eq!(resp.secret, key);
        assert!(resp.snapshot.full);
        let after = state.store.terminals_of_school(s.code).await.unwrap();
        assert_eq!(after.len(), 1, "no second terminal");
        // The credential works.
        let snap = http
            .get(format!("http://{server}/api/v1/terminal/snapshot?cursor=0"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(snap.status(), reqwest::StatusCode::OK);

        // Someone else with the code but not the key: refused, nothing written.
        let other = json!({"code": code, "terminal_key": shared::b64::encode(&[8u8; 32])});
        let (status, body) = call(
            &app_for(&state),
            "POST",
            "/api/v1/terminal/enroll",
            None,
            Some(other),
        )
        .await;
        assert_eq!(status, StatusCode::GONE, "{body}");
        assert_eq!(body["error"]["code"], "enroll_code_used");
        // A key that is not one: refused as bad input.
        let bad = json!({"code": code, "terminal_key": "short"});
        let (status, body) = call(
            &app_for(&state),
            "POST",
            "/api/v1/terminal/enroll",
            None,
            Some(bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "bad_terminal_key");
        assert_eq!(
            state.store.terminals_of_school(s.code).await.unwrap().len(),
            1
        );
    }
);

fn app_for(state: &AppState) -> axum::Router {
    app(state)
}
