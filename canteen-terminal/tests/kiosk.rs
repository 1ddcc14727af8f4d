//! The counter screen over HTTP: the page, /scan, /scan/frame, /status, /sync.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::kiosk::Kiosk;
use common::*;
use shared::wire::VoucherStatus;
use std::sync::Arc;

async fn start() -> (String, World, FakeServer, tempfile::TempDir) {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![
        voucher(1, VoucherStatus::Active),
        voucher(2, VoucherStatus::Active),
        voucher(3, VoucherStatus::Revoked),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "K", "Асхана 1", &clock).await;
    let kiosk = Kiosk::new(Arc::new(t));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, kiosk.router(addr)).await.unwrap() });
    (format!("http://{addr}"), world, server, dir)
}

fn id(n: u32) -> uuid::Uuid {
    voucher(n, VoucherStatus::Active).voucher_id
}

#[tokio::test]
async fn page_scan_status_and_sync() {
    let (base, world, server, _dir) = start().await;
    let http = reqwest::Client::new();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    for needle in [
        "autofocus",
        "BarcodeDetector",
        "getUserMedia",
        "/scan",
        "Покажите QR-код",
        "QR-кодты көрсетіңіз",
        "Последняя синхронизация",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }

    let token = world.token(id(1), monday_noon());
    let ok: serde_json::Value = http
        .post(format!("{base}/scan"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["verdict"], "ok");
    assert_eq!(ok["serve"], true);
    assert_eq!(ok["display_name"], "Айгерим1 С.");
    assert_eq!(ok["class"], "2Б");
    let again: serde_json::Value = http
        .post(format!("{base}/scan"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["verdict"], "already_served");
    assert_eq!(again["serve"], false);
    let revoked: serde_json::Value = http
        .post(format!("{base}/scan"))
        .json(&serde_json::json!({ "card": "000000003" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["verdict"], "voucher_inactive");
    assert!(revoked["display_name"].is_null(), "no name on refusal");

    for bad in [
        "not json",
        r#"{"token": "a", "card": "b"}"#,
        r#"{}"#,
        r#"{"card": "  "}"#,
        r#"{"token": 5}"#,
        r#"{"token": "a", "extra": 1}"#,
    ] {
        let resp = http
            .post(format!("{base}/scan"))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: shared::ErrorBody = resp.json().await.unwrap();
        assert_eq!(body.error.code, "bad_request");
    }

    // A camera frame with the code of voucher 2 on it.
    let frame = render_qr(&world.token(id(2), monday_noon()), 5);
    let resp: serde_json::Value = http
        .post(format!("{base}/scan/frame"))
        .header("content-type", "image/png")
        .body(png_bytes(&frame))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["verdict"], "ok", "{resp}");
    assert_eq!(resp["display_name"], "Айгерим2 С.");
    // The next frames still show the same code: not scanned again.
    let resp: serde_json::Value = http
        .post(format!("{base}/scan/frame"))
        .header("content-type", "image/png")
        .body(png_bytes(&frame))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (resp["found"].clone(), resp["repeat"].clone()),
        (true.into(), true.into())
    );
    let blank = image::GrayImage::from_pixel(64, 48, image::Luma([200]));
    let resp: serde_json::Value = http
        .post(format!("{base}/scan/frame"))
        .header("content-type", "image/png")
        .body(png_bytes(&blank))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["found"], false);
    let resp = http
        .post(format!("{base}/scan/frame"))
        .header("content-type", "image/jpeg")
        .body("not a picture")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Any page can post a picture as a form; only the page's own typed uploads are decoded.
    let resp = http
        .post(format!("{base}/scan/frame"))
        .header("content-type", "text/plain")
        .body(png_bytes(&blank))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    let status: serde_json::Value = http
        .get(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["unsynced_events"], 4,
        "bad requests and empty frames are not scans"
    );
    assert_eq!(status["label"], "Асхана 1");
    assert_eq!(status["current_meal"], "lunch");

    let synced: serde_json::Value = http
        .post(format!("{base}/sync"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(synced["ok"], true, "{synced}");
    assert_eq!(synced["report"]["uploaded"], 4);
    let status: serde_json::Value = http
        .get(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["unsynced_events"], 0);
    assert_eq!(status["last_sync_attempt"]["ok"], true);

    // Server gone: the status line says so, scanning goes on.
    drop(server.stop());
    let synced: serde_json::Value = http
        .post(format!("{base}/sync"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(synced["ok"], false);
    assert_eq!(synced["unreachable"], true);
}

/// One raw HTTP/1.1 request, so that `Host` can be anything: the status code and the body.
async fn raw(base: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused_and_the_page_is_locked_down() {
    let (base, world, _server, _dir) = start().await;
    let addr = base.trim_start_matches("http://").to_owned();
    let token = world.token(id(1), monday_noon());
    let json_body = serde_json::json!({ "token": token }).to_string();

    // DNS rebinding: a name that resolves to the kiosk is still not the kiosk's name.
    let (status, text) = raw(
        &base,
        &format!(
            "GET /status HTTP/1.1\r\nHost: rebind.example:{}\r\nConnection: close\r\n\r\n",
            addr.rsplit(':').next().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("foreign_host"), "{text}");

    // A cross-site form post (text/plain, the one a form can send without a preflight).
    let form = format!("token={token}");
    let (status, text) = raw(
        &base,
        &format!(
            "POST /scan HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("foreign_origin"), "{text}");
    // Even from the page's own origin, text/plain is not JSON.
    let (status, _) = raw(
        &base,
        &format!(
            "POST /scan HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json_body}",
            json_body.len()
        ),
    )
    .await;
    assert_eq!(status, 415);

    // JSON with a foreign Origin, and with a foreign Referer and no Origin.
    let http = reqwest::Client::new();
    for (name, value) in [
        ("origin", "http://evil.example".to_owned()),
        ("referer", format!("http://evil.example/{addr}/")),
    ] {
        let resp = http
            .post(format!("{base}/scan"))
            .header(name, value)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}");
    }
    // Nothing of that was recorded: the first real scan is this one, and it is `ok`.
    let ok: serde_json::Value = http
        .post(format!("{base}/scan"))
        .header("origin", format!("http://{addr}"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["verdict"], "ok", "{ok}");

    let page = http.get(format!("{base}/")).send().await.unwrap();
    let h = page.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'sha256-",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let status: serde_json::Value = http
        .get(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["front_door"]["foreign_requests_refused"], 4,
        "{status}"
    );
}

#[tokio::test]
async fn a_scan_that_cannot_be_committed_is_not_recorded_and_the_alarm_stays_until_a_commit() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    drop(enrolled_terminal(dir.path(), &server, "K", "Асхана 1", &clock).await);
    let settings = canteen_terminal::Settings {
        db_busy_timeout_ms: 200,
        // Always warn, to see the free-space warning reach the status line.
        low_space_warning_mb: u64::MAX / (1024 * 1024),
        ..canteen_terminal::Settings::default()
    };
    let t = canteen_terminal::Terminal::open(dir.path(), settings, Arc::new(clock.clone()))
        .await
        .unwrap();
    let kiosk = Kiosk::new(Arc::new(t));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    tokio::spawn(async move { axum::serve(listener, kiosk.router(addr)).await.unwrap() });
    let http = reqwest::Client::new();
    let status = || async {
        http.get(format!("{base}/status"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let s = status().await;
    assert!(s["storage_alarm"].is_null());
    assert!(s["free_bytes"].as_u64().unwrap() > 0);
    let codes: Vec<&str> = s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"low_disk_space"), "{codes:?}");

    // Another process holds the log's write lock past the timeout.
    let other = canteen_terminal::store::open(dir.path()).await.unwrap();
    let mut holder = other.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let token = world.token(id(1), monday_noon());
    let resp = http
        .post(format!("{base}/scan"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["verdict"], "not_recorded");
    assert_eq!(v["serve"], false);
    assert!(v["message_ru"]
        .as_str()
        .unwrap()
        .contains("сообщите администратору"));
    let s = status().await;
    assert_eq!(s["storage_alarm"]["failures"], 1);
    assert!(s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == "storage_failed"));

    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    drop(holder);
    other.close().await;
    let v: serde_json::Value = http
        .post(format!("{base}/scan"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["seq"].as_i64()),
        (Some("ok"), Some(1))
    );
    assert!(
        status().await["storage_alarm"].is_null(),
        "cleared by the commit"
    );
}
