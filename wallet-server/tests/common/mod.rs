//! Fixtures for the school and NOBD tests: a full server state on either backend, rows seeded
//! directly (terminal events as the sync API would store them), HTTP calls through the router.

#![allow(dead_code)]

#[path = "../spec_check/mod.rs"]
pub mod spec_check;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use shared::calendar::SchoolYear;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;
use wallet_server::eligibility::Category;
use wallet_server::store::roster::{NewPupil, School};
use wallet_server::testkit::{self, TestState};
use wallet_server::AppState;

/// Declares a test body twice, on SQLite and (ignored unless asked) on PostgreSQL; the body gets
/// `pg: bool`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
            async fn postgres() {
                ($body)(true).await;
            }
        }
    };
}

/// Plain SQL on the test database, for rows other modules own (terminals, events, consents).
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    pub async fn open(url: &str) -> Raw {
        if url.starts_with("postgres") {
            Raw::Pg(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            Raw::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        }
    }

    pub async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Raw::Pg(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn text(&self, sql: &str) -> Option<String> {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_optional(p).await,
            Raw::Pg(p) => sqlx::query_scalar(sql).fetch_optional(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

pub struct Fx {
    pub t: TestState,
    pub raw: Raw,
}

/// A valid IIN or BIN from a serial number (skipping the few prefixes without a check digit).
pub fn iin(n: u32) -> String {
    (0..)
        .find_map(|k| shared::ids::with_check_digit(&format!("1001015{:04}", n * 7 + k)))
        .unwrap()
}

pub fn bin(n: u32) -> String {
    (0..)
        .find_map(|k| shared::ids::with_check_digit(&format!("2609{:07}", n * 7 + k)))
        .unwrap()
}

pub const D: &str = "2026-11-23";
pub const H: i64 = 3600;

pub fn day() -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(D, "%Y-%m-%d").unwrap()
}

/// Local time on the service day `D`, e.g. `at(12, 5)`.
pub fn at(h: i64, m: i64) -> i64 {
    wallet_server::testkit::MONDAY_9AM - 9 * H + h * H + m * 60
}

pub const PASSWORD: &str = "Tamaq-test-Pa55";

impl Fx {
    pub async fn new(pg: bool) -> Fx {
        Fx::with_settings(pg, wallet_server::config::Settings::default()).await
    }

    pub async fn with_settings(pg: bool, settings: wallet_server::config::Settings) -> Fx {
        let t = testkit::state_with(pg, settings).await;
        let raw = Raw::open(&t.db.url).await;
        Fx { t, raw }
    }

    pub fn state(&self) -> &AppState {
        &self.t.state
    }

    pub fn now(&self) -> i64 {
        self.t.state.now()
    }

    pub async fn school(&self, n: u32) -> School {
        self.state()
            .store
            .upsert_school(&bin(n), &format!("Мектеп №{n}"), self.now())
            .await
            .unwrap()
    }

    /// A pupil with an active voucher (activated at `activated_at`); returns (pupil id, voucher id).
    pub async fn pupil(
        &self,
        n: u32,
        school: &School,
        grade: i64,
        letter: &str,
        category: Category,
        activated_at: i64,
    ) -> (i64, String) {
        let store = &self.state().store;
        let p = NewPupil {
            iin: iin(n),
            school_code: school.code,
            last_name: format!("Фамилия{n}"),
            first_name: format!("Имя{n}"),
            middle_name: None,
            grade,
            class_letter: letter.into(),
            receives_asp: category == Category::Asp,
            per_capita_income_kzt: None,
            orphan: category == Category::Orphan,
            mother_name: None,
            mother_phone: Some(format!("+7701{n:07}")),
            father_name: None,
            father_phone: None,
            guardian_name: None,
            guardian_phone: None,
            card_number: None,
            lang: "kk".into(),
            category,
            contact_phone: Some(format!("+7701{n:07}")),
            contact_name: None,
        };
        let id = store.upsert_pupil(&p, activated_at - 86_400).await.unwrap();
        let year = SchoolYear::default_for(chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        let v = testkit::issue_voucher(store.as_ref(), id, school.code, &year, activated_at - 3600)
            .await;
        testkit::activate_voucher(store.as_ref(), &v, activated_at).await;
        (id, v.id)
    }

    pub async fn terminal(&self, id: &str, school: &School, label: &str) {
        self.raw
            .exec(&format!(
                "INSERT INTO terminals (id, school_code, label, secret_hash, enrolled_at, last_sync_at, clock_offset)
                 VALUES ('{id}', {}, '{label}', 'hash-{id}', {}, {}, 3)",
                school.code,
                self.now() - 86_400,
                self.now()
            ))
            .await;
    }

    /// One scan as the terminal sync API stores it.
    #[allow(clippy::too_many_arguments)]
    pub async fn event(
        &self,
        terminal: &str,
        seq: i64,
        school: &School,
        voucher: Option<&str>,
        verdict: &str,
        meal_kind: &str,
        day: &str,
        scanned_at: i64,
        received_at: i64,
        duplicate: bool,
    ) {
        let voucher = voucher
            .map(|v| format!("'{v}'"))
            .unwrap_or_else(|| "NULL".into());
        self.raw
            .exec(&format!(
                "INSERT INTO terminal_events (terminal_id, seq, event_id, school_code, voucher_id, verdict,
                    source, meal_kind, service_day, scanned_at, key_id, received_at, duplicate)
                 VALUES ('{terminal}', {seq}, '{}', {}, {voucher}, '{verdict}', 'qr', '{meal_kind}',
                    '{day}', {scanned_at}, NULL, {received_at}, {})",
                uuid::Uuid::new_v4(),
                school.code,
                if duplicate { "TRUE" } else { "FALSE" }
            ))
            .await;
    }

    /// A consent of the pupil with a transition to `status` at `at`.
    pub async fn consent(&self, pupil_id: i64, status: &str, at: i64) {
        self.raw
            .exec(&format!(
                "INSERT INTO consents (pupil_id, school_year, phone, status, ended_at, updated_at)
                 VALUES ({pupil_id}, '2026-2027', NULL, '{status}', {at}, {at})"
            ))
            .await;
        let consent_id = self
            .raw
            .count(&format!(
                "SELECT id FROM consents WHERE pupil_id = {pupil_id}"
            ))
            .await;
        self.raw
            .exec(&format!(
                "INSERT INTO consent_transitions (consent_id, status, at) VALUES ({consent_id}, '{status}', {at})"
            ))
            .await;
    }

    /// The wallet's rating and complaint tables in the shape the school pages read (they come
    /// with the wallet's migration; created here only where that migration is absent).
    pub async fn feedback_tables(&self) {
        self.raw
            .exec(
                "CREATE TABLE IF NOT EXISTS ratings (voucher_id TEXT NOT NULL, service_day TEXT NOT NULL,
                    stars INTEGER NOT NULL, comment TEXT, created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL, PRIMARY KEY (voucher_id, service_day))",
            )
            .await;
        self.raw
            .exec(
                "CREATE TABLE IF NOT EXISTS complaints (id TEXT PRIMARY KEY, voucher_id TEXT NOT NULL,
                    text TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL)",
            )
            .await;
    }

    pub async fn rating(&self, voucher: &str, day: &str, stars: i64, comment: Option<&str>) {
        let comment = comment
            .map(|c| format!("'{c}'"))
            .unwrap_or_else(|| "NULL".into());
        self.raw
            .exec(&format!(
                "INSERT INTO ratings (voucher_id, school_code, service_day, stars, comment, phone,
                    created_at, updated_at)
                 SELECT '{voucher}', school_code, '{day}', {stars}, {comment}, '+77010000000', {0}, {0}
                 FROM vouchers WHERE id = '{voucher}'",
                self.now()
            ))
            .await;
    }

    pub async fn complaint(&self, voucher: &str, text: &str, status: &str, at: i64) {
        self.raw
            .exec(&format!(
                "INSERT INTO complaints (id, voucher_id, school_code, phone, text, payload, status,
                    created_at, next_attempt_at)
                 SELECT '{}', '{voucher}', school_code, '+77010000000', '{text}', '{{}}', '{status}',
                    {at}, {at}
                 FROM vouchers WHERE id = '{voucher}'",
                uuid::Uuid::new_v4()
            ))
            .await;
    }

    pub async fn staff(&self, username: &str, role: &str, schools: &[&School]) {
        let bins: Vec<String> = schools.iter().map(|s| s.bin.clone()).collect();
        wallet_server::staff::add_staff(
            self.state().store.as_ref(),
            username,
            role,
            &bins,
            PASSWORD,
            "test",
            self.now(),
        )
        .await
        .unwrap();
    }

    /// Sends a request through the router; the answer must match docs/openapi.yaml.
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let (method, uri) = (req.method().clone(), req.uri().to_string());
        let resp = wallet_server::app(self.state().clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        spec_check::assert_answer(
            method.as_str(),
            &uri,
            status.as_u16(),
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            &body,
        );
        (status, headers, body)
    }

    /// Signs in through the API; returns the session token.
    pub async fn login(&self, username: &str) -> String {
        let (status, _, body) = self
            .call(json_request(
                Method::POST,
                "/api/v1/school/login",
                &serde_json::json!({"username": username, "password": PASSWORD}),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["session_token"].as_str().unwrap().to_owned()
    }

    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.call(authed(Method::GET, path, token, Body::empty()))
            .await
    }

    /// A page request with the session cookie, as a browser sends it.
    pub async fn page(
        &self,
        path: &str,
        token: &str,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::COOKIE, format!("tamaq_staff={token}"))
            .body(Body::empty())
            .unwrap();
        let (s, h, b) = self.call(req).await;
        (s, h, String::from_utf8(b).unwrap())
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        self.call(authed(Method::POST, path, token, Body::empty()))
            .await
    }
}

pub fn json_request(method: Method, path: &str, body: &serde_json::Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

pub fn authed(method: Method, path: &str, token: Option<&str>, body: Body) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(body).unwrap()
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

pub fn arc_store(fx: &Fx) -> Arc<dyn wallet_server::store::Store> {
    fx.state().store.clone()
}

pub struct Seeded {
    pub s1: School,
    pub s2: School,
    pub p5_iin: String,
    pub p5_voucher: String,
    pub p6_iin: String,
    pub v: HashMap<&'static str, String>,
}

/// Two schools with two terminals each and a day of scans: served, served twice at two
/// terminals, refused, on other days.
pub async fn seed(fx: &Fx) -> Seeded {
    let s1 = fx.school(1).await;
    let s2 = fx.school(2).await;
    let week_ago = at(10, 0) - 7 * 86_400;
    let mut v = HashMap::new();
    for (name, n, school, grade, letter, cat, act) in [
        ("p1", 11, &s1, 3, "А", Category::Asp, week_ago),
        ("p2", 12, &s1, 3, "А", Category::LowIncome, week_ago),
        ("p3", 13, &s1, 4, "Б", Category::Orphan, week_ago),
        ("p4", 14, &s1, 4, "Б", Category::Asp, week_ago),
        ("p5", 15, &s1, 4, "Б", Category::Asp, at(10, 0)),
        ("q1", 21, &s2, 1, "А", Category::Asp, week_ago),
        ("q2", 22, &s2, 1, "А", Category::Orphan, week_ago),
        ("q3", 23, &s2, 2, "В", Category::LowIncome, week_ago),
    ] {
        let (_, voucher) = fx.pupil(n, school, grade, letter, cat, act).await;
        v.insert(name, voucher);
    }
    // A pupil whose parents refused, on the day; another who consented the day before.
    let (p6, _) = fx.pupil(16, &s1, 2, "А", Category::Orphan, week_ago).await;
    fx.consent(p6, "refused", at(15, 0)).await;
    let (p7, _) = fx.pupil(17, &s1, 2, "А", Category::Orphan, week_ago).await;
    fx.consent(p7, "consented", at(15, 0) - 86_400).await;
    for (id, school, label) in [
        ("t1a", &s1, "Асхана 1"),
        ("t1b", &s1, "Асхана 2"),
        ("t2a", &s2, "Столовая 1"),
        ("t2b", &s2, "Столовая 2"),
    ] {
        fx.terminal(id, school, label).await;
    }
    let recv = at(16, 0);
    let prev = "2026-11-22";
    let next = "2026-11-24";
    let ev = |t, seq, s, voucher: Option<&str>, verdict, kind, day, ts, dup| {
        (
            t,
            seq,
            s,
            voucher.map(str::to_owned),
            verdict,
            kind,
            day,
            ts,
            dup,
        )
    };
    let events = [
        ev(
            "t1a",
            1,
            &s1,
            Some(&v["p1"]),
            "ok",
            "lunch",
            D,
            at(12, 0),
            false,
        ),
        ev(
            "t1b",
            1,
            &s1,
            Some(&v["p1"]),
            "ok",
            "lunch",
            D,
            at(12, 1),
            true,
        ),
        ev(
            "t1a",
            2,
            &s1,
            Some(&v["p1"]),
            "already_served",
            "lunch",
            D,
            at(12, 5),
            false,
        ),
        ev(
            "t1a",
            3,
            &s1,
            Some(&v["p1"]),
            "already_served",
            "lunch",
            D,
            at(12, 6),
            false,
        ),
        ev(
            "t1a",
            4,
            &s1,
            Some(&v["p2"]),
            "ok",
            "lunch",
            D,
            at(12, 10),
            false,
        ),
        ev(
            "t1b",
            2,
            &s1,
            Some(&v["p3"]),
            "ok",
            "lunch",
            D,
            at(12, 11),
            false,
        ),
        ev(
            "t1b",
            3,
            &s1,
            Some(&v["p3"]),
            "ok",
            "breakfast",
            D,
            at(8, 30),
            false,
        ),
        ev(
            "t1a",
            5,
            &s1,
            Some(&v["p4"]),
            "expired",
            "lunch",
            D,
            at(12, 20),
            false,
        ),
        ev(
            "t1a",
            6,
            &s1,
            None,
            "bad_format",
            "lunch",
            D,
            at(12, 21),
            false,
        ),
        ev(
            "t1a",
            7,
            &s1,
            Some(&v["p4"]),
            "ok",
            "lunch",
            D,
            at(12, 22),
            false,
        ),
        ev(
            "t1b",
            4,
            &s1,
            Some(&v["p5"]),
            "ok",
            "lunch",
            prev,
            at(12, 0) - 86_400,
            false,
        ),
        ev(
            "t1b",
            5,
            &s1,
            Some(&v["p2"]),
            "ok",
            "lunch",
            next,
            at(12, 0) + 86_400,
            false,
        ),
        ev(
            "t2a",
            1,
            &s2,
            Some(&v["q1"]),
            "ok",
            "lunch",
            D,
            at(12, 0),
            false,
        ),
        ev(
            "t2b",
            1,
            &s2,
            Some(&v["q1"]),
            "ok",
            "lunch",
            D,
            at(12, 2),
            true,
        ),
        ev(
            "t2b",
            2,
            &s2,
            Some(&v["q1"]),
            "ok",
            "lunch",
            D,
            at(12, 3),
            true,
        ),
        ev(
            "t2a",
            2,
            &s2,
            Some(&v["q2"]),
            "ok",
            "lunch",
            D,
            at(12, 4),
            false,
        ),
        ev(
            "t2b",
            3,
            &s2,
            Some(&v["p1"]),
            "wrong_school",
            "lunch",
            D,
            at(12, 5),
            false,
        ),
        ev(
            "t2a",
            3,
            &s2,
            Some(&v["q3"]),
            "ok",
            "lunch",
            D,
            at(12, 6),
            false,
        ),
    ];
    for (t, seq, s, voucher, verdict, kind, d, ts, dup) in events {
        fx.event(
            t,
            seq,
            s,
            voucher.as_deref(),
            verdict,
            kind,
            d,
            ts,
            recv,
            dup,
        )
        .await;
    }
    Seeded {
        p5_iin: iin(15),
        p5_voucher: v["p5"].clone(),
        p6_iin: iin(16),
        s1,
        s2,
        v,
    }
}
