//! A seeded server for the wallet tests: two schools, three families, and helpers to call the
//! HTTP API the way a phone would.
#![allow(dead_code)]

#[path = "../spec_check/mod.rs"]
pub mod spec_check;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use shared::calendar::SchoolYear;
use shared::ids::with_check_digit;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use tower::ServiceExt;
use uuid::Uuid;
use wallet_server::config::Settings;
use wallet_server::eligibility::Category;
use wallet_server::store::roster::NewPupil;
use wallet_server::store::vouchers::Voucher;
use wallet_server::testkit::{self, TestState, MONDAY_9AM};
use wallet_server::AppState;

/// Mother of `own_a` (school A) and father of `own_b` (school B).
pub const P1: &str = "+77010000001";
/// Mother of `other_a` (school A).
pub const P2: &str = "+77020000002";
/// Guardian of `other_b` (school B).
pub const P3: &str = "+77050000003";
/// Listed for nobody.
pub const UNKNOWN: &str = "+77070000009";

pub const SCHOOL_YEAR_TOML: &str = r#"
[school_year]
start = "2026-09-01"
end = "2027-05-25"
breaks = [["2026-10-26", "2026-11-01"], ["2026-12-29", "2027-01-07"], ["2027-03-19", "2027-03-29"]]
school_days = ["mon", "tue", "wed", "thu", "fri"]
"#;

pub fn settings(extra: &str) -> Settings {
    Settings::from_toml(&format!("{SCHOOL_YEAR_TOML}\n{extra}")).expect("test settings")
}

pub struct World {
    pub t: TestState,
    pub app: Router,
    pub school_a: (i64, String),
    pub school_b: (i64, String),
    /// P1's child at school A.
    pub own_a: Voucher,
    /// P1's child at school B.
    pub own_b: Voucher,
    /// P2's child at school A.
    pub other_a: Voucher,
    /// P3's child at school B.
    pub other_b: Voucher,
}

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// A fresh valid IIN (digit 7 is 5) or BIN (digit 5 is 4).
pub fn id12(bin: bool) -> String {
    loop {
        let n = SERIAL.fetch_add(1, Ordering::SeqCst);
        let first = if bin {
            format!("0001{}{:06}", 4, n)
        } else {
            format!("120304{}{:04}", 5, n)
        };
        if let Some(id) = with_check_digit(&first) {
            return id;
        }
    }
}

pub fn pupil(school_code: i64, first: &str, last: &str, phones: [Option<&str>; 3]) -> NewPupil {
    let [mother, father, guardian] = phones.map(|p| p.map(str::to_owned));
    NewPupil {
        iin: id12(false),
        school_code,
        last_name: last.into(),
        first_name: first.into(),
        middle_name: None,
        grade: 3,
        class_letter: "А".into(),
        receives_asp: true,
        per_capita_income_kzt: None,
        orphan: false,
        mother_name: mother.as_ref().map(|_| "Ана".to_owned()),
        contact_phone: mother.clone().or(father.clone()).or(guardian.clone()),
        mother_phone: mother,
        father_name: father.as_ref().map(|_| "Әке".to_owned()),
        father_phone: father,
        guardian_name: guardian.as_ref().map(|_| "Қамқоршы".to_owned()),
        guardian_phone: guardian,
        card_number: None,
        lang: "kk".into(),
        category: Category::Asp,
        contact_name: None,
    }
}

impl World {
    pub async fn new(pg: bool) -> World {
        World::with_settings(pg, settings("")).await
    }

    pub async fn with_settings(pg: bool, settings: Settings) -> World {
        let t = testkit::state_with(pg, settings).await;
        let s = &t.state;
        let store = &s.store;
        let year = s.settings.year_at(testkit::MONDAY_9AM).unwrap();
        let a = store
            .upsert_school(&id12(true), "№1 мектеп-гимназия", 1)
            .await
            .unwrap();
        let b = store
            .upsert_school(&id12(true), "Школа-лицей №2", 1)
            .await
            .unwrap();
        let voucher = |p: NewPupil, year: SchoolYear| {
            let store = store.clone();
            async move {
                let id = store.upsert_pupil(&p, 1).await.unwrap();
                testkit::issue_voucher(store.as_ref(), id, p.school_code, &year, 2).await
            }
        };
        let own_a = voucher(
            pupil(a.code, "Айгерим", "Сапарова", [Some(P1), None, None]),
            year.clone(),
        )
        .await;
        let own_b = voucher(
            pupil(b.code, "Ерлан", "Сапаров", [None, Some(P1), None]),
            year.clone(),
        )
        .await;
        let other_a = voucher(
            pupil(a.code, "Дана", "Ким", [Some(P2), None, None]),
            year.clone(),
        )
        .await;
        let other_b = voucher(
            pupil(b.code, "Тимур", "Ахметов", [None, None, Some(P3)]),
            year.clone(),
        )
        .await;
        let app = wallet_server::app(s.clone());
        World {
            app,
            school_a: (a.code, a.bin),
            school_b: (b.code, b.bin),
            own_a,
            own_b,
            other_a,
            other_b,
            t,
        }
    }

    pub fn state(&self) -> &AppState {
        &self.t.state
    }

    pub fn set_local(&self, day: &str, hhmm: &str) {
        self.state().clock.set(local(day, hhmm));
    }

    pub fn reset_clock(&self) {
        self.state().clock.set(MONDAY_9AM);
    }

    /// Sends a request through the router; the answer must match docs/openapi.yaml.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let (method, uri) = (req.method().clone(), req.uri().to_string());
        let r = self.app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        spec_check::assert_answer(
            method.as_str(),
            &uri,
            status.as_u16(),
            headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            &bytes,
        );
        Reply {
            status,
            headers,
            bytes,
        }
    }

    /// A JSON request (`body` serialised), optionally with a session token and a peer address.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_from(method, uri, token, body, None).await
    }

    pub async fn call_from(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        peer: Option<SocketAddr>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = b.body(body).unwrap();
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        self.send(req).await
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        bytes: Vec<u8>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(Body::from(bytes)).unwrap()).await
    }

    /// The code of the newest login SMS to this phone, read from the SMS outbox table.
    pub async fn last_code(&self, phone: &str) -> Option<String> {
        let texts = self
            .state()
            .store
            .sms_texts_to(phone, "login_code")
            .await
            .unwrap();
        texts.last().map(|t| code_in(t))
    }

    /// Signs in through the API as a parent would; returns the session token.
    pub async fn login(&self, phone: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/wallet/login",
                None,
                Some(serde_json::json!({ "phone": phone })),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let code = self.last_code(phone).await.expect("an SMS with the code");
        // Codes requested in the same second must not be confused by later calls.
        self.state().clock.advance(1);
        let r = self
            .call(
                Method::POST,
                "/api/v1/wallet/login/verify",
                None,
                Some(serde_json::json!({ "phone": phone, "code": code })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["session_token"].as_str().unwrap().to_owned()
    }

    pub async fn revoke(&self, v: &Voucher) {
        let store = self.state().store.clone();
        let why = wallet_server::lifecycle::RevokeReason::Operator;
        testkit::revoke_voucher(store.as_ref(), v, why, self.state().now()).await;
    }

    pub async fn activate(&self, v: &Voucher) {
        testkit::activate_voucher(self.state().store.as_ref(), v, self.state().now()).await;
    }

    /// Runs SQL directly against the test database (rows other modules would write).
    pub async fn exec(&self, sql: &str) {
        let url = &self.t.db.url;
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Unix seconds of a local (UTC+5) date and time.
pub fn local(day: &str, hhmm: &str) -> i64 {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    let time = chrono::NaiveTime::parse_from_str(hhmm, "%H:%M").unwrap();
    shared::ServiceDay(date).unix_at(time)
}

pub fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("six digits in the SMS")
        .to_owned()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error.code` of an error body (and checks its shape).
    pub fn error_code(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error body without a message: {v}"
        );
        v["error"]["code"].as_str().expect("error.code").to_owned()
    }
}

pub fn random_id() -> Uuid {
    Uuid::new_v4()
}

/// Declares a test body twice: on SQLite, and on PostgreSQL (ignored unless asked for).
#[macro_export]
macro_rules! wallet_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let w = $crate::wallet_support::World::new(false).await;
                ($body)(w).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
            async fn postgres() {
                let w = $crate::wallet_support::World::new(true).await;
                ($body)(w).await;
            }
        }
    };
    ($name:ident, settings = $settings:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let w = $crate::wallet_support::World::with_settings(false, $settings).await;
                ($body)(w).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
            async fn postgres() {
                let w = $crate::wallet_support::World::with_settings(true, $settings).await;
                ($body)(w).await;
            }
        }
    };
}
