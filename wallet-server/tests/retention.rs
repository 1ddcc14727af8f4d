//! Retention (DESIGN §10) on SQLite and PostgreSQL: pupils who left the roster lose their
//! personal data `[retention] days` after the later of their last voucher's school year and
//! their leaving, and not a day before; pupils still listed keep theirs; counts, vouchers,
//! meals and the NOBD reports already written stay (with the IINs replaced); the erasure is
//! audited; a second run erases nothing. On SQLite the erased values are looked for in the
//! bytes of the database files, on PostgreSQL in the text of every row of every table. The
//! real `wallet-server retention` binary is run too.

#[path = "core_support/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "terminal_sync/fixtures.rs"]
mod fixtures;

use axum::http::StatusCode;
use common::{bin, csv, iin, row, with, PUBLIC_URL};
use fixtures::{call, enroll, ev, upload};
use serde_json::{json, Value};
use shared::verdict::Verdict;
use std::process::Command;
use wallet_server::config::Settings;
use wallet_server::consent;
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::roster::{self, Column, Format, ImportOptions, ImportRequest, Mode};
use wallet_server::sms;
use wallet_server::sms::file::FileGateway;
use wallet_server::store::roster::Pupil;
use wallet_server::store::Store;
use wallet_server::{retention, testkit, AppState};

/// Pupil 1 left without ever holding a voucher (her mother refused); she shares her mother's
/// number with pupil 4, who stays. Pupil 3 left during a year in which he held a voucher.
/// Pupil 2 stays.
const M1: &str = "+77010000001";
const F1: &str = "+77019990001";
const M2: &str = "+77010000002";
const M3: &str = "+77010000003";
const FIRST1: &str = "Жанерке";
const FIRST3: &str = "Айдана";
const FIRST4: &str = "Тимур";
const CARD1: &str = "RETCARD0001";
const CARD3: &str = "RETCARD0003";

const TWO_YEARS: &str = r#"
[[school_years]]
start = "2026-09-01"
end = "2027-05-25"

[[school_years]]
start = "2027-09-01"
end = "2028-05-25"
"#;

fn settings() -> Settings {
    Settings::from_toml(&format!(
        "[server]\npublic_url = \"{PUBLIC_URL}\"\ndefault_lang = \"ru\"\n{TWO_YEARS}"
    ))
    .unwrap()
}

/// Unix seconds of a local date and time.
fn at(day: &str, hhmm: &str) -> i64 {
    let date = day.parse().unwrap();
    let time = chrono::NaiveTime::parse_from_str(hhmm, "%H:%M").unwrap();
    shared::ServiceDay(date).unix_at(time)
}

fn roster_rows() -> Vec<[String; 19]> {
    let p1 = with(
        with(
            with(row(1, 0, M1), Column::FirstName, FIRST1),
            Column::FatherPhone,
            F1,
        ),
        Column::CardNumber,
        CARD1,
    );
    let p3 = with(
        with(row(3, 0, M3), Column::FirstName, FIRST3),
        Column::CardNumber,
        CARD3,
    );
    let p4 = with(row(4, 0, M1), Column::FirstName, FIRST4);
    vec![p1, row(2, 0, M2), p3, p4]
}

struct World {
    state: AppState,
    app: axum::Router,
    gateway: FileGateway,
    db_url: String,
    _dir: tempfile::TempDir,
}

impl World {
    fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    async fn import(&self, rows: &[[String; 19]], mode: Mode, now: i64) {
        let text = csv(rows);
        roster::import(
            self.store(),
            &self.state.settings,
            &ImportRequest {
                name: "roster.csv",
                actor: "test",
                bytes: text.as_bytes(),
                format: Format::Csv,
                options: ImportOptions {
                    mode,
                    skip_invalid: false,
                },
            },
            now,
            &|_, _| {},
        )
        .await
        .unwrap();
    }

    async fn deliver(&self, now: i64) {
        sms::deliver_due(self.store(), &self.gateway, now)
            .await
            .unwrap();
    }

    async fn tick(&self, now: i64) {
        self.state.clock.set(now);
        consent::tick(self.store(), &self.state.settings, now)
            .await
            .unwrap();
        self.deliver(now).await;
    }

    async fn reply(&self, from: &str, text: &str, now: i64) {
        let phone = shared::phone::Phone::parse(from).unwrap();
        consent::handle_reply(self.store(), &self.state.settings, &phone, text, now)
            .await
            .unwrap();
        self.deliver(now).await;
    }

    async fn pupil(&self, id: i64) -> Pupil {
        self.store().pupil(id).await.unwrap().unwrap()
    }

    async fn pupil_id(&self, n: usize) -> i64 {
        self.store()
            .pupil_by_iin(&iin(n))
            .await
            .unwrap()
            .unwrap()
            .id
    }

    async fn api(
        &self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let auth = auth.map(|s| format!("Bearer {s}"));
        let body = (!body.is_null()).then_some(body);
        call(&self.app, method, uri, auth.as_deref(), body).await
    }

    async fn parent_login(&self, phone: &str) -> String {
        let (status, body) = self
            .api(
                "POST",
                "/api/v1/wallet/login",
                None,
                json!({ "phone": phone }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let texts = self
            .store()
            .sms_texts_to(phone, "login_code")
            .await
            .unwrap();
        let code = texts
            .last()
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_owned();
        let (status, body) = self
            .api(
                "POST",
                "/api/v1/wallet/login/verify",
                None,
                json!({ "phone": phone, "code": code }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["session_token"].as_str().unwrap().to_owned()
    }

    async fn retention(&self, now: i64) -> retention::Report {
        self.state.clock.set(now);
        retention::run(self.store(), &self.state.settings, "test", now, &mut |_| {})
            .await
            .unwrap()
    }

    /// The values that occur: on SQLite in the bytes of the database, its log and its index
    /// (`-wal`, `-shm`); on PostgreSQL in the text of any row of any table (named with them).
    async fn occurs(&self, values: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(path) = self.db_url.strip_prefix("sqlite://") {
            let files = sqlite_bytes(std::path::Path::new(path));
            for v in values {
                if contains(&files, v.as_bytes()) {
                    found.push((*v).to_owned());
                }
            }
            return found;
        }
        let pool = sqlx::PgPool::connect(&self.db_url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.len() > 20, "{tables:?}");
        for v in values {
            let mut holders = Vec::new();
            for t in &tables {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM {t} WHERE CAST({t} AS TEXT) LIKE $1"
                ))
                .bind(format!("%{v}%"))
                .fetch_one(&pool)
                .await
                .unwrap();
                if n > 0 {
                    holders.push(t.clone());
                }
            }
            if !holders.is_empty() {
                found.push(format!("{v} in {}", holders.join(", ")));
            }
        }
        pool.close().await;
        found
    }
}

/// The main file, `-wal` and `-shm` of a SQLite database, one after the other.
fn sqlite_bytes(db: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&file) {
            all.extend(bytes);
        }
    }
    assert!(!all.is_empty(), "no database at {}", db.display());
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn audit_of(store: &dyn Store, action: &str) -> Vec<Value> {
    store
        .audit_entries(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == action)
        .map(|a| serde_json::from_str(a.detail.as_deref().unwrap_or("null")).unwrap())
        .collect()
}

async fn count(state: &AppState, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match state.store.backend() {
        wallet_server::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&state.paths.database_url)
                .await
                .unwrap();
            let n = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        wallet_server::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&state.paths.database_url)
                .await
                .unwrap();
            let n = sqlx::query_scalar(&sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    }
}

async fn leavers_lose_their_data(pg: bool) {
    let t = testkit::state_with(pg, settings()).await;
    let dir = tempfile::tempdir().unwrap();
    let w = World {
        app: wallet_server::app(t.state.clone()),
        state: t.state.clone(),
        gateway: FileGateway::new(dir.path().join("sms.jsonl")),
        db_url: t.db.url.clone(),
        _dir: dir,
    };
    let y1 = "2026-2027";

    // ---- The first year: requests; 1 and 4 refused (one number), 2 and 3 agree.
    let t0 = testkit::MONDAY_9AM;
    w.import(&roster_rows(), Mode::Incremental, t0 - 86_400)
        .await;
    let (p1, p2, p3, p4) = (
        w.pupil_id(1).await,
        w.pupil_id(2).await,
        w.pupil_id(3).await,
        w.pupil_id(4).await,
    );
    w.tick(t0).await;
    w.reply(M1, "3#2", t0 + 600).await;
    w.reply(M2, "3#1", t0 + 700).await;
    w.reply(M3, "3#1", t0 + 800).await;
    let v3 = w.store().voucher_for_pupil(p3, y1).await.unwrap().unwrap();
    assert!(w.store().voucher_for_pupil(p1, y1).await.unwrap().is_none());

    // Pupil 3's parent activates, rates and complains; a meal at the school.
    w.state.clock.set(t0 + 900);
    let session = w.parent_login(M3).await;
    let (status, body) = w
        .api(
            "POST",
            &format!("/api/v1/wallet/vouchers/{}/activate", v3.id),
            Some(&session),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let terminal = enroll(&w.app, &w.state, &bin(0), "Асхана").await;
    let (status, body) = upload(
        &w.app,
        &terminal,
        &[ev(1, t0 + 3 * 3600, Some(v3.uuid()), Verdict::Ok)],
    )
    .await;
    assert_eq!(
        (status, &body["refused"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );
    w.state.clock.set(t0 + 4 * 3600);
    let (status, body) = w
        .api(
            "POST",
            "/api/v1/wallet/ratings",
            Some(&session),
            json!({ "voucher_id": v3.id, "stars": 2, "comment": "суп холодный" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let complaint = format!("{FIRST3} остался без обеда, звоните {M3}");
    let (status, body) = w
        .api(
            "POST",
            "/api/v1/wallet/complaints",
            Some(&session),
            json!({ "voucher_id": v3.id, "text": complaint }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The day's NOBD report names every outcome and the activation by IIN.
    let day = "2026-11-23".parse().unwrap();
    let built = build_day(w.store(), day, None, Coverage::AllSchools, t0 + 12 * 3600)
        .await
        .unwrap();
    assert_eq!(built.new_reports.len(), 1);
    let report_id = built.new_reports[0].clone();
    let report = || async {
        w.store()
            .nobd_report_body(&report_id)
            .await
            .unwrap()
            .unwrap()
    };
    for n in 1..=4 {
        assert!(report().await.contains(&iin(n)), "pupil {n} in the report");
    }
    // The next day pupil 3 only eats: that day's report names him in its list of pupils
    // served, and nothing else of his happened that day.
    let (status, body) = upload(
        &w.app,
        &terminal,
        &[ev(2, t0 + 86_400 + 3 * 3600, Some(v3.uuid()), Verdict::Ok)],
    )
    .await;
    assert_eq!(
        (status, &body["refused"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );
    let next_day = "2026-11-24".parse().unwrap();
    let built = build_day(
        w.store(),
        next_day,
        None,
        Coverage::ActiveSchools,
        t0 + 36 * 3600,
    )
    .await
    .unwrap();
    assert_eq!(built.new_reports.len(), 1);
    let served_report_id = built.new_reports[0].clone();
    let served_report = || async {
        w.store()
            .nobd_report_body(&served_report_id)
            .await
            .unwrap()
            .unwrap()
    };
    assert!(served_report().await.contains(&iin(3)));

    // ---- February: pupil 1 moves to school 2 (her refusal went to NOBD in school 1's
    // report). 10 March: a snapshot of both schools lists 2, 4 and a pupil 5 only; 1 and 3
    // leave (3's voucher is revoked).
    let rows = roster_rows();
    let moved = with(rows[0].clone(), Column::SchoolBin, &bin(1));
    w.import(&[moved], Mode::Incremental, at("2027-02-01", "09:00"))
        .await;
    assert_ne!(w.pupil(p1).await.school_code, w.pupil(p2).await.school_code);
    let left = at("2027-03-10", "09:00");
    let p5 = with(row(5, 1, "+77010000005"), Column::SchoolName, "Школа №2");
    w.import(
        &[rows[1].clone(), rows[3].clone(), p5],
        Mode::Snapshot,
        left,
    )
    .await;
    assert!(w.pupil(p1).await.removed_at.is_some());
    let v3 = w.store().voucher(v3.uuid()).await.unwrap().unwrap();
    assert_eq!(
        (v3.status.as_str(), v3.revoke_reason.as_deref()),
        ("revoked", Some("removed"))
    );
    // The next year: 2's consent stands (a new voucher), 4 is asked again.
    w.tick(at("2027-09-01", "09:00")).await;

    let kept = [w.pupil(p2).await, w.pupil(p4).await];
    let vouchers = count(&w.state, "vouchers").await;
    let meals = count(&w.state, "terminal_events").await;
    let reports = count(&w.state, "nobd_reports").await;
    let one = [iin(1), FIRST1.to_owned(), F1.to_owned(), CARD1.to_owned()];
    let three = [iin(3), FIRST3.to_owned(), M3.to_owned(), CARD3.to_owned()];
    let values = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join("|");

    // ---- Pupil 1 is due 365 days after she left (2028-03-09), not a day before.
    let r = w.retention(at("2028-03-08", "23:59")).await;
    assert!(r.erased.pupils.is_empty() && r.purge.is_none(), "{r:?}");
    let all: Vec<&str> = one.iter().chain(three.iter()).map(String::as_str).collect();
    assert_eq!(
        w.occurs(&all).await.len(),
        all.len(),
        "every value is stored before the erasure: {}",
        values(&one)
    );

    let r = w.retention(at("2028-03-09", "00:30")).await;
    assert_eq!(r.erased.pupils, [p1], "{r:?}");
    assert!(r.purge.as_ref().is_some_and(|p| p.complete), "{r:?}");
    assert_eq!(r.erased.consents, 1);
    let erased = w.pupil(p1).await;
    assert_eq!(erased.iin, format!("erased:{p1}"));
    assert_eq!(erased.full_name(), format!("erased:{p1}"));
    assert_eq!(
        (
            erased.mother_phone.as_deref(),
            erased.father_phone.as_deref(),
            erased.mother_name.as_deref(),
            erased.card_number.as_deref(),
            erased.contact_phone.as_deref()
        ),
        (None, None, None, None, None)
    );
    assert_eq!(erased.grade, 3, "what is not personal stays");
    let gone: Vec<&str> = one.iter().map(String::as_str).collect();
    assert_eq!(
        w.occurs(&gone).await,
        Vec::<String>::new(),
        "pupil 1 erased"
    );
    let still: Vec<&str> = three.iter().map(String::as_str).collect();
    assert_eq!(
        w.occurs(&still).await.len(),
        still.len(),
        "pupil 3 is not due yet"
    );
    // The number pupil 4 still uses stays, with his messages; the one naming pupil 1 is gone.
    let to_m1 = w.store().sms_texts_to(M1, "consent_request").await.unwrap();
    assert_eq!(to_m1.len(), 3, "{to_m1:?}");
    assert_eq!(to_m1.iter().filter(|t| t.contains(FIRST4)).count(), 2);
    assert_eq!(to_m1.iter().filter(|t| *t == "erased").count(), 1);
    assert_eq!(
        [w.pupil(p2).await, w.pupil(p4).await],
        kept,
        "the listed keep everything"
    );

    // ---- Pupil 3 is due 365 days after his voucher's year ended (2028-05-24).
    let r = w.retention(at("2028-05-23", "12:00")).await;
    assert!(r.erased.pupils.is_empty() && r.purge.is_none(), "{r:?}");
    let r = w.retention(at("2028-05-24", "00:05")).await;
    assert_eq!(r.erased.pupils, [p3], "{r:?}");
    assert_eq!((r.erased.ratings, r.erased.complaints), (1, 1), "{r:?}");
    assert!(r.erased.login_codes >= 1 && r.erased.sessions >= 1, "{r:?}");
    assert!(
        r.erased.sms_erased >= 3,
        "request, confirmation, login code: {r:?}"
    );
    assert!(
        r.erased.audit_rows >= 2,
        "issued on his number's reply, activated by it: {r:?}"
    );
    assert_eq!(
        w.occurs(&still).await,
        Vec::<String>::new(),
        "pupil 3 erased"
    );
    assert_eq!([w.pupil(p2).await, w.pupil(p4).await], kept);
    let listed: Vec<String> = [
        iin(2),
        iin(4),
        M2.to_owned(),
        M1.to_owned(),
        FIRST4.to_owned(),
    ]
    .into();
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    assert_eq!(w.occurs(&listed).await.len(), listed.len(), "{listed:?}");

    // Counts, vouchers, meals and reports stay; the complaint keeps its words.
    assert_eq!(count(&w.state, "vouchers").await, vouchers);
    assert_eq!(count(&w.state, "terminal_events").await, meals);
    assert_eq!(count(&w.state, "nobd_reports").await, reports);
    let v3 = w.store().voucher(v3.uuid()).await.unwrap().unwrap();
    assert_eq!((v3.status.as_str(), v3.pupil_id), ("revoked", p3));
    let body = report().await;
    for (n, id) in [(1, p1), (3, p3)] {
        assert!(
            !body.contains(&iin(n)) && body.contains(&format!("\"erased:{id}\"")),
            "{body}"
        );
    }
    assert!(body.contains(&iin(2)) && body.contains(&iin(4)), "{body}");
    let body = served_report().await;
    assert!(
        !body.contains(&iin(3)) && body.contains(&format!("\"erased:{p3}\"")),
        "{body}"
    );
    let complaints = w.store().complaints_of("erased").await.unwrap();
    assert_eq!(complaints.len(), 1);
    assert!(
        complaints[0]
            .text
            .contains("остался без обеда, звоните erased"),
        "{}",
        complaints[0].text
    );

    // The audit: how many and which ids, nothing else.
    let audit = audit_of(w.store(), "retention.erase").await;
    let ids: Vec<Value> = audit.iter().map(|a| a["pupil_ids"].clone()).collect();
    assert_eq!(ids.len(), 2, "{audit:?}");
    assert!(
        ids.contains(&json!([p1])) && ids.contains(&json!([p3])),
        "{ids:?}"
    );
    let text = serde_json::to_string(&audit).unwrap();
    for v in one.iter().chain(three.iter()) {
        assert!(!text.contains(v.as_str()), "{v} in {text}");
    }

    // A second run finds nothing.
    let r = w.retention(at("2028-05-24", "00:10")).await;
    assert!(r.erased.pupils.is_empty() && r.purge.is_none(), "{r:?}");
    assert_eq!(audit_of(w.store(), "retention.erase").await.len(), 2);

    // The authority's view and the metrics count by school year and state.
    let login = |user: &'static str, role: &'static str, schools: Vec<String>| {
        let w = &w;
        async move {
            let pass = "Staff-pass-123";
            wallet_server::staff::add_staff(w.store(), user, role, &schools, pass, "test", 1)
                .await
                .unwrap();
            let body = json!({ "username": user, "password": pass });
            let (status, body) = w.api("POST", "/api/v1/school/login", None, body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["session_token"].as_str().unwrap().to_owned()
        }
    };
    let operator = login("operator", "operator", vec![]).await;
    let (status, all) = w
        .api(
            "GET",
            "/api/v1/school/voucher-states",
            Some(&operator),
            Value::Null,
        )
        .await;
    assert_eq!(
        (status, &all["pupils_erased"]),
        (StatusCode::OK, &json!(2)),
        "{all}"
    );
    let staff = login("akimat", "authority", vec![bin(0)]).await;
    let (status, view) = w
        .api(
            "GET",
            "/api/v1/school/voucher-states",
            Some(&staff),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    // Pupil 1 had moved to the second school, which is not this authority's.
    assert_eq!(view["pupils_erased"], 1, "{view}");
    let years = view["years"].as_array().unwrap();
    assert_eq!(years.len(), 2, "{view}");
    assert_eq!(years[0]["school_year"], y1);
    assert_eq!(
        (
            &years[0]["expired"],
            &years[0]["revoked"]["removed"],
            &years[0]["total"]
        ),
        (&json!(1), &json!(1), &json!(2)),
        "{view}"
    );
    assert_eq!(
        (&years[1]["issued"], &years[1]["total"]),
        (&json!(1), &json!(1))
    );
    let auth = format!("Bearer {staff}");
    let (status, page) = fixtures::call_raw(
        &w.app,
        "GET",
        "/school/voucher-states?lang=ru",
        Some(&auth),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap().to_owned();
    for needle in [
        "Выбыл из списка",
        "2026-2027",
        "по истечении срока хранения: <b>1</b>",
    ] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    let metrics = wallet_server::metrics::render(&w.state).await;
    for line in [
        "tamaq_vouchers{school_year=\"2026-2027\",state=\"revoked\",reason=\"removed\"} 1",
        "tamaq_vouchers{school_year=\"2026-2027\",state=\"expired\"} 1",
        "tamaq_vouchers{school_year=\"2027-2028\",state=\"issued\"} 1",
        "tamaq_pupils_erased 2",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

both_backends!(
    leavers_lose_their_data_and_nothing_else,
    super::leavers_lose_their_data
);

/// 620 leavers (two batches), erased by the server's background job and by a second instance
/// running `retention` at the same moment: each pupil once, every one, nothing twice.
async fn two_instances(pg: bool) {
    let t = testkit::state_with(pg, settings()).await;
    let dir = tempfile::tempdir().unwrap();
    let w = World {
        app: wallet_server::app(t.state.clone()),
        state: t.state.clone(),
        gateway: FileGateway::new(dir.path().join("sms.jsonl")),
        db_url: t.db.url.clone(),
        _dir: dir,
    };
    let n = 620;
    let rows: Vec<[String; 19]> = (0..=n)
        .map(|k| row(k, 0, &format!("+7702{k:07}")))
        .collect();
    let t0 = testkit::MONDAY_9AM;
    w.import(&rows, Mode::Incremental, t0).await;
    let left = at("2026-12-01", "10:00");
    w.import(&rows[..1], Mode::Snapshot, left).await;
    let due = at("2027-12-02", "03:00");

    let second: std::sync::Arc<dyn Store> = wallet_server::store::connect(&t.db.url).await.unwrap();
    w.state.clock.set(due);
    let jobs = wallet_server::jobs::start(w.state.clone()).unwrap();
    let settings = w.state.settings.clone();
    let other = tokio::spawn(async move {
        retention::run(second.as_ref(), &settings, "cli", due, &mut |_| {})
            .await
            .unwrap()
    });
    let by_cli = other.await.unwrap().erased.pupils;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let erased = loop {
        let audit = audit_of(w.store(), "retention.erase").await;
        let ids: Vec<i64> = audit
            .iter()
            .flat_map(|a| a["pupil_ids"].as_array().unwrap().clone())
            .map(|v| v.as_i64().unwrap())
            .collect();
        if ids.len() >= n || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    jobs.stop(tokio::time::Instant::now() + std::time::Duration::from_secs(10))
        .await;
    let mut unique = erased.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((erased.len(), unique.len()), (n, n), "each leaver once");
    assert!(by_cli.iter().all(|id| unique.binary_search(id).is_ok()));
    let kept = w.store().pupil_by_iin(&iin(0)).await.unwrap().unwrap();
    assert!(!unique.contains(&kept.id), "the listed pupil stays");
    for k in [1, n / 2, n] {
        assert!(
            w.store().pupil_by_iin(&iin(k)).await.unwrap().is_none(),
            "pupil {k}"
        );
    }
    let r = w.retention(due + 60).await;
    assert!(r.erased.pupils.is_empty() && r.purge.is_none(), "{r:?}");
}

both_backends!(a_job_and_a_command_at_once, super::two_instances);

fn wallet_server_cmd(
    data: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("TAMAQ_CONFIG")
        .env_remove("TAMAQ_DATABASE_URL")
        .env("TAMAQ_SCHOOL_YEAR_START", "2026-09-01")
        .env("TAMAQ_SCHOOL_YEAR_END", "2027-05-25")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The binary as an operator runs it: a pupil asked for consent leaves the roster; `retention`
/// before her day erases nothing, after it erases her, and the database files no longer hold
/// her IIN, name or number.
#[test]
fn the_command_erases_and_purges_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("roster.csv");
    let leaver = with(row(1, 0, M1), Column::FirstName, FIRST1);
    std::fs::write(&file, csv(&[leaver, row(2, 0, M2)])).unwrap();
    let file = file.to_str().unwrap();
    let run = |args: &[&str]| wallet_server_cmd(&data, args, &[]);
    let (ok, out, err) = run(&["import-roster", file]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&["consent", "tick", "--now", "2026-11-23T09:00:00+05:00"]);
    assert!(ok && out.contains("requested 2"), "{out}{err}");
    let snapshot = dir.path().join("snapshot.csv");
    std::fs::write(&snapshot, csv(&[row(2, 0, M2)])).unwrap();
    let (ok, out, err) = run(&[
        "import-roster",
        snapshot.to_str().unwrap(),
        "--mode",
        "snapshot",
    ]);
    assert!(ok && out.contains("removed 1"), "{out}{err}");

    let db = data.join("tamaq.db");
    let hers = [iin(1), FIRST1.to_owned(), M1.to_owned()];
    let found = |values: &[String]| {
        let bytes = sqlite_bytes(&db);
        values
            .iter()
            .filter(|v| contains(&bytes, v.as_bytes()))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(found(&hers), hers, "stored before");
    // She left today (the import ran on the real clock): due in 365 days.
    let when = |days: i64| {
        (chrono::Utc::now() + chrono::Duration::days(days))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let (ok, out, err) = run(&["retention", "--now", &when(300)]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("pupils erased 0 (none)") && out.contains("nothing to purge"),
        "{out}"
    );
    assert_eq!(found(&hers), hers);

    let (ok, out, err) = run(&["retention", "--now", &when(366)]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("pupils erased 1 (ids "), "{out}");
    assert!(out.contains("consent phones 1"), "{out}");
    assert!(
        out.contains("purged from the database files: VACUUM"),
        "{out}"
    );
    assert!(
        err.contains("retention: 1 pupils erased"),
        "progress on stderr: {err}"
    );
    assert_eq!(found(&hers), Vec::<String>::new(), "gone from the files");
    let his = [iin(2), M2.to_owned()];
    assert_eq!(found(&his), his, "the listed pupil stays");

    let (ok, out, err) = run(&["retention", "--now", &when(367)]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("pupils erased 0 (none)") && out.contains("nothing to purge"),
        "{out}"
    );

    let (ok, _, err) = run(&["retention", "--now", "next year"]);
    assert!(!ok && err.contains("RFC 3339"), "{err}");
    for bad in ["0", "-1", "99999"] {
        let (ok, _, err) =
            wallet_server_cmd(&data, &["retention"], &[("TAMAQ_RETENTION_DAYS", bad)]);
        assert!(!ok, "days = {bad}");
        assert!(
            err.contains("[retention] days must be between 30 and 3650"),
            "{err}"
        );
    }
}
