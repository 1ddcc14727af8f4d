//! No entitled child left out (DESIGN §11), on SQLite and PostgreSQL: a consent recorded at
//! school through the school API and the school's page, the pupil served by card the same day
//! and reported to NOBD; and a late `3#1` after the process ended.

#[path = "core_support/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "terminal_sync/fixtures.rs"]
mod fixtures;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{bin, csv, iin, row, with, PUBLIC_URL};
use fixtures::{call, enroll, ev, snapshot, spec_check, upload};
use serde_json::{json, Value};
use shared::verdict::Verdict;
use shared::wire::{ScanSource, VoucherStatus};
use tower::ServiceExt;
use wallet_server::config::Settings;
use wallet_server::consent::{self, ConsentStatus, ReplyOutcome};
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::roster::{self, Column, Format, ImportOptions, ImportRequest, Mode};
use wallet_server::sms::file::{read_outbox, FileGateway};
use wallet_server::sms::{self, OutgoingSms};
use wallet_server::store::vouchers::Voucher;
use wallet_server::store::Store;
use wallet_server::{testkit, AppState};

const M2: &str = "+77010000002"; // mother of pupil 2
const F2: &str = "+77020000002"; // father of pupil 2 (listed, not asked)
const Y1: &str = "2026-2027";
const PASSWORD: &str = "Tamaq-test-Pa55";

fn settings() -> Settings {
    Settings::from_toml(&format!(
        r#"
[server]
public_url = "{PUBLIC_URL}"
default_lang = "ru"
[[school_years]]
start = "2026-09-01"
end = "2027-05-25"
"#
    ))
    .unwrap()
}

struct World {
    state: AppState,
    app: axum::Router,
    gateway: FileGateway,
    outbox: std::path::PathBuf,
    seen: usize,
    _t: testkit::TestState,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(pg: bool) -> World {
        let t = testkit::state_with(pg, settings()).await;
        let state = t.state.clone();
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("sms.jsonl");
        World {
            app: wallet_server::app(state.clone()),
            state,
            gateway: FileGateway::new(outbox.clone()),
            outbox,
            seen: 0,
            _t: t,
            _dir: dir,
        }
    }

    fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    async fn import(&self, rows: &[[String; 19]], at: i64) {
        let text = csv(rows);
        let request = ImportRequest {
            name: "roster.csv",
            actor: "test",
            bytes: text.as_bytes(),
            format: Format::Csv,
            options: ImportOptions {
                mode: Mode::Incremental,
                skip_invalid: false,
            },
        };
        let report = roster::import(self.store(), &self.state.settings, &request, at, &|_, _| {})
            .await
            .unwrap();
        assert!(report.applied, "{:?}", report.errors);
    }

    async fn tick(&self, at: i64) {
        self.state.clock.set(at);
        consent::tick(self.store(), &self.state.settings, at)
            .await
            .unwrap();
        sms::deliver_due(self.store(), &self.gateway, at)
            .await
            .unwrap();
    }

    async fn reply(&self, from: &str, text: &str, at: i64) -> ReplyOutcome {
        self.state.clock.set(at);
        let phone = shared::phone::Phone::parse(from).unwrap();
        let out = consent::handle_reply(self.store(), &self.state.settings, &phone, text, at)
            .await
            .unwrap();
        sms::deliver_due(self.store(), &self.gateway, at)
            .await
            .unwrap();
        out
    }

    /// The SMS delivered since the last call, sorted by (to, kind); login codes left out.
    fn new_sms(&mut self) -> Vec<OutgoingSms> {
        let all = read_outbox(&self.outbox).unwrap();
        let mut fresh: Vec<OutgoingSms> = all[self.seen..]
            .iter()
            .filter(|s| s.kind != "login_code")
            .cloned()
            .collect();
        self.seen = all.len();
        fresh.sort_by(|a, b| (&a.to, &a.kind).cmp(&(&b.to, &b.kind)));
        fresh
    }

    async fn pupil(&self, n: usize) -> i64 {
        self.store()
            .pupil_by_iin(&iin(n))
            .await
            .unwrap()
            .unwrap()
            .id
    }

    async fn consent(&self, n: usize) -> Option<ConsentStatus> {
        let id = self.pupil(n).await;
        let c = self.store().consent_for_pupil(id, Y1).await.unwrap();
        c.map(|c| c.status)
    }

    async fn transitions(&self, n: usize) -> Vec<(String, Option<String>)> {
        let id = self.pupil(n).await;
        let Some(c) = self.store().consent_for_pupil(id, Y1).await.unwrap() else {
            return Vec::new();
        };
        self.store()
            .consent_transitions(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.status, t.detail))
            .collect()
    }

    async fn voucher(&self, n: usize) -> Option<Voucher> {
        let id = self.pupil(n).await;
        self.store().voucher_for_pupil(id, Y1).await.unwrap()
    }

    async fn staff(&self, username: &str, role: &str, school: usize) -> String {
        let bins = vec![bin(school)];
        wallet_server::staff::add_staff(
            self.store(),
            username,
            role,
            &bins,
            PASSWORD,
            "test",
            self.state.now(),
        )
        .await
        .unwrap();
        let (status, body) = call(
            &self.app,
            "POST",
            "/api/v1/school/login",
            None,
            Some(json!({"username": username, "password": PASSWORD})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["session_token"].as_str().unwrap().to_owned()
    }

    async fn record(&self, session: &str, school: usize, form: Value) -> (StatusCode, Value) {
        let uri = format!("/api/v1/school/schools/{}/consents", bin(school));
        let auth = format!("Bearer {session}");
        call(&self.app, "POST", &uri, Some(&auth), Some(form)).await
    }

    /// A school page request (checked against the spec), its status and HTML.
    async fn page(
        &self,
        method: &str,
        uri: &str,
        session: &str,
        form: Option<&str>,
    ) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {session}"));
        let req = match form {
            Some(f) => req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(f.to_owned())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        spec_check::assert_answer(
            method,
            uri,
            status.as_u16(),
            content_type.as_deref(),
            &bytes,
        );
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// The day's NOBD report of `school` (its first build), checked against the schema.
    async fn report(&self, school: usize, date: &str, now: i64) -> Value {
        build_day(
            self.store(),
            date.parse().unwrap(),
            None,
            Coverage::AllSchools,
            now,
        )
        .await
        .unwrap();
        let id = format!("{}-{date}-r1", bin(school));
        let body = self.store().nobd_report_body(&id).await.unwrap().unwrap();
        let doc: Value = serde_json::from_str(&body).unwrap();
        let errors: Vec<String> = common::nobd_schema()
            .iter_errors(&doc)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
        doc
    }
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report["consent_outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["pupil_iin"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn form(n: usize) -> Value {
    json!({
        "pupil_iin": iin(n),
        "signer_name": "Сапарова Динара Ерлановна",
        "relation": "mother",
        "document_number": "N 04512345",
        "signed_on": "2026-11-20",
    })
}

fn with_field(mut f: Value, key: &str, value: Value) -> Value {
    f[key] = value;
    f
}

/// Pupil 1 (school 0) has no phone and a card; pupil 2 (school 0) has a mother and a father
/// listed; pupil 3 is at school 1; pupil 4 is in no eligible category.
fn rows() -> Vec<[String; 19]> {
    vec![
        with(row(1, 0, ""), Column::CardNumber, "CARD-1"),
        with(row(2, 0, M2), Column::FatherPhone, F2),
        row(3, 1, ""),
        with(row(4, 0, ""), Column::ReceivesAsp, "нет"),
    ]
}

async fn recorded_at_school(pg: bool) {
    let mut w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(&rows(), t0 - 3600).await;
    w.tick(t0).await;
    assert_eq!(w.consent(1).await, Some(ConsentStatus::NoPhone));
    assert_eq!(w.consent(2).await, Some(ConsentStatus::Requested));
    let director = w.staff("director.a", "school_admin", 0).await;
    let authority = w.staff("authority.a", "authority", 0).await;
    w.new_sms();

    // Refused, and nothing written: the wrong role, each bad field, the wrong school, a pupil
    // in no category.
    let t1 = t0 + 3600;
    w.state.clock.set(t1);
    let refusals = [
        (&authority, 0, form(1), StatusCode::FORBIDDEN, "forbidden"),
        (
            &director,
            0,
            with_field(form(1), "signer_name", json!("")),
            StatusCode::BAD_REQUEST,
            "bad_consent_form",
        ),
        (
            &director,
            0,
            with_field(form(1), "document_number", json!("9".repeat(33))),
            StatusCode::BAD_REQUEST,
            "bad_consent_form",
        ),
        (
            &director,
            0,
            with_field(form(1), "relation", json!("neighbour")),
            StatusCode::BAD_REQUEST,
            "bad_consent_form",
        ),
        (
            &director,
            0,
            with_field(form(1), "signed_on", json!("2026-12-01")),
            StatusCode::BAD_REQUEST,
            "bad_consent_form",
        ),
        (
            &director,
            0,
            json!({"pupil_iin": iin(1)}),
            StatusCode::BAD_REQUEST,
            "bad_consent_form",
        ),
        (&director, 0, form(3), StatusCode::NOT_FOUND, "not_found"),
        (&director, 1, form(3), StatusCode::NOT_FOUND, "not_found"),
        (&director, 0, form(4), StatusCode::CONFLICT, "conflict"),
    ];
    for (session, school, f, status, code) in refusals {
        let (got, body) = w.record(session, school, f.clone()).await;
        assert_eq!(got, status, "{f}: {body}");
        assert_eq!(body["error"]["code"], code, "{f}: {body}");
    }
    for n in [1, 3, 4] {
        assert!(w.voucher(n).await.is_none(), "pupil {n}");
    }
    assert_eq!(w.consent(1).await, Some(ConsentStatus::NoPhone));
    assert_eq!(w.transitions(1).await.len(), 1, "only no_phone");
    assert_eq!(w.consent(4).await, None);

    // The director records the paper form: the voucher is issued and active at once.
    let (status, body) = w.record(&director, 0, form(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["consent"], "consented");
    assert_eq!(body["voucher_status"], "active");
    assert_eq!(body["school_year"], Y1);
    assert_eq!(body["recorded_by"], "director.a");
    let v1 = w.voucher(1).await.expect("a voucher");
    assert_eq!(body["voucher_id"], v1.id.as_str());
    assert_eq!(v1.status(), VoucherStatus::Active);
    assert_eq!(v1.activated_at, Some(t1));
    assert_eq!(w.consent(1).await, Some(ConsentStatus::Consented));
    let kept = w.transitions(1).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[1].0, "consented");
    assert!(
        kept[1].1.as_deref().unwrap().contains("recorded at school"),
        "{kept:?}"
    );
    let audit = w.store().audit_entries(10).await.unwrap();
    let of_voucher: Vec<(&str, &str, Option<&str>)> = audit
        .iter()
        .filter(|a| a.subject.as_deref() == Some(v1.id.as_str()))
        .map(|a| (a.actor.as_str(), a.action.as_str(), a.detail.as_deref()))
        .collect();
    assert_eq!(
        of_voucher,
        vec![
            (
                "staff:director.a",
                "voucher.activate",
                Some("school_recorded")
            ),
            ("staff:director.a", "voucher.issue", Some("school_recorded")),
        ]
    );
    assert!(w.new_sms().is_empty(), "no phone, no SMS");

    // Once more: the pupil has the year's voucher; nothing changes.
    let (status, body) = w.record(&director, 0, form(1)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(w.transitions(1).await.len(), 2);
    assert_eq!(w.voucher(1).await.unwrap().change_seq, v1.change_seq);

    // The canteen serves the pupil by card the same day.
    let terminal = enroll(&w.app, &w.state, &bin(0), "Асхана").await;
    let snap = snapshot(&w.app, &terminal, 0).await;
    let known = snap
        .vouchers
        .iter()
        .find(|v| v.voucher_id == v1.uuid())
        .expect("the terminal knows the voucher");
    assert_eq!(known.status, VoucherStatus::Active);
    assert_eq!(known.card_number.as_deref(), Some("CARD-1"));
    let noon = t0 + 3 * 3600;
    let mut meal = ev(1, noon, Some(v1.uuid()), Verdict::Ok);
    meal.source = ScanSource::Card;
    meal.key_id = None;
    let (status, body) = upload(&w.app, &terminal, &[meal]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Pupil 2's mother refuses; the school's page offers the form beside the pupil; the
    // director records the father's paper form there.
    w.reply(M2, "3#2", t0 + 4 * 3600).await;
    let page_uri = format!("/school/s/{}/consent", bin(0));
    let (status, html) = w.page("GET", &page_uri, &director, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("value=\"{}\"", iin(2))), "{html}");
    assert!(
        !html.contains(&format!("value=\"{}\"", iin(1))),
        "pupil 1 is served"
    );
    let (status, html) = w.page("GET", &page_uri, &authority, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("/record\""), "an authority only reads");
    let t2 = t0 + 5 * 3600;
    w.state.clock.set(t2);
    let post_uri = format!("{page_uri}/record");
    let bad = format!(
        "pupil_iin={}&signer_name=&relation=father&document_number=N1&signed_on=2026-11-23",
        iin(2)
    );
    let (status, _) = w.page("POST", &post_uri, &director, Some(&bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = w.page("POST", &post_uri, &authority, Some(&bad)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(w.consent(2).await, Some(ConsentStatus::Refused));
    let good = format!(
        "pupil_iin={}&signer_name=%D0%A1%D0%B0%D0%BF%D0%B0%D1%80%D0%BE%D0%B2+%D0%A0%D1%83%D1%81%D0%BB%D0%B0%D0%BD\
         &relation=father&document_number=N2&signed_on=2026-11-23",
        iin(2)
    );
    let (status, html) = w.page("POST", &post_uri, &director, Some(&good)).await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    let v2 = w.voucher(2).await.expect("a voucher");
    assert!(html.contains(&v2.id), "{html}");
    assert_eq!(v2.status(), VoucherStatus::Active);
    assert_eq!(w.consent(2).await, Some(ConsentStatus::Consented));
    assert!(w.new_sms().iter().all(|s| s.kind != "consent_confirmed"));

    // NOBD: the day's outcomes and the meal by card.
    let report = w.report(0, "2026-11-23", t0 + 10 * 3600).await;
    let mut want = vec![
        (iin(1), "consented_at_school".to_owned()),
        (iin(1), "no_phone".to_owned()),
        (iin(2), "consented_at_school".to_owned()),
        (iin(2), "refused".to_owned()),
    ];
    want.sort();
    assert_eq!(outcomes(&report), want);
    assert_eq!(report["meals"]["by_proof"]["card"], 1, "{report:#}");
    assert_eq!(report["vouchers"]["activated_on_day"], 2, "{report:#}");
}

both_backends!(consent_recorded_at_school, super::recorded_at_school);

const M5: &str = "+77010000005"; // mother of pupil 5 (asked)
const F5: &str = "+77020000005"; // father of pupil 5 (listed, not asked)
const M6: &str = "+77010000006"; // mother of pupil 6
const M7: &str = "+77010000007"; // mother of pupil 7

fn kinds(sms: &[OutgoingSms]) -> Vec<(&str, &str)> {
    sms.iter()
        .map(|s| (s.to.as_str(), s.kind.as_str()))
        .collect()
}

async fn late_answers(pg: bool) {
    let mut w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(
        &[
            with(row(5, 0, M5), Column::FatherPhone, F5),
            row(6, 0, M6),
            row(7, 0, M7),
        ],
        t0 - 3600,
    )
    .await;
    w.tick(t0).await;
    // Pupil 6's mother refuses; pupil 7's consents, then withdraws.
    w.reply(M6, "3#2", t0 + 60).await;
    w.reply(M7, "3#1", t0 + 60).await;
    w.reply(M7, "3#2", t0 + 120).await;
    assert_eq!(w.consent(7).await, Some(ConsentStatus::Withdrawn));
    // Pupil 5's mother never answers: repeat, then expiry.
    w.tick(t0 + 3 * common::DAY + 60).await;
    let day7 = t0 + 6 * common::DAY + 120;
    w.tick(day7).await;
    assert_eq!(w.consent(5).await, Some(ConsentStatus::Expired));
    w.new_sms();

    // The father answers: nothing changes; he learns which number was asked.
    let t1 = day7 + 3600;
    assert_eq!(
        w.reply(F5, "3#1", t1).await,
        ReplyOutcome::AskedElsewhere { answered: true }
    );
    let sent = w.new_sms();
    assert_eq!(kinds(&sent), vec![(F5, "help")]);
    assert!(
        sent[0].text.contains("+7 701 *** ** 05"),
        "{}",
        sent[0].text
    );
    assert!(!sent[0].text.contains(M5), "masked");
    assert_eq!(w.consent(5).await, Some(ConsentStatus::Expired));
    assert!(w.voucher(5).await.is_none());

    // The asked mother answers late: a consent, confirmed as usual, with a voucher.
    let t2 = t1 + 60;
    assert_eq!(
        w.reply(M5, " 3#1 ", t2).await,
        ReplyOutcome::Consented {
            consents: 1,
            vouchers: 1
        }
    );
    assert_eq!(kinds(&w.new_sms()), vec![(M5, "consent_confirmed")]);
    assert_eq!(w.consent(5).await, Some(ConsentStatus::Consented));
    let v5 = w.voucher(5).await.expect("a voucher");
    assert_eq!(v5.status(), VoucherStatus::Issued);
    let kept = w.transitions(5).await;
    assert_eq!(
        kept.last().unwrap(),
        &(
            "consented".to_owned(),
            Some("reply 3#1 after the process ended".to_owned())
        )
    );
    // Answered once: the next 3#1 has nothing to change.
    assert!(matches!(
        w.reply(M5, "3#1", t2 + 60).await,
        ReplyOutcome::NothingPending { .. }
    ));
    assert_eq!(w.voucher(5).await.unwrap().change_seq, v5.change_seq);

    // After a refusal too; but never after a withdrawal.
    assert_eq!(
        w.reply(M6, "3#1", t2 + 120).await,
        ReplyOutcome::Consented {
            consents: 1,
            vouchers: 1
        }
    );
    assert!(matches!(
        w.reply(M7, "3#1", t2 + 180).await,
        ReplyOutcome::AlreadyWithdrawn { .. }
    ));
    assert_eq!(w.consent(7).await, Some(ConsentStatus::Withdrawn));
    assert_eq!(w.voucher(7).await.unwrap().status(), VoucherStatus::Revoked);
    let sent = w.new_sms();
    assert_eq!(
        kinds(&sent),
        vec![(M5, "help"), (M6, "consent_confirmed"), (M7, "help")]
    );

    // NOBD: the day's outcomes — the expiry that morning, then each late consent once.
    let date = shared::ServiceDay::from_unix(t2).to_string();
    let report = w.report(0, &date, t2 + 3600).await;
    let mut want = vec![
        (iin(5), "expired".to_owned()),
        (iin(5), "consented_late".to_owned()),
        (iin(6), "consented_late".to_owned()),
    ];
    want.sort();
    assert_eq!(outcomes(&report), want);
}

both_backends!(late_answer, super::late_answers);

/// The paper form's signer and document as stored.
async fn stored_forms(url: &str) -> Vec<(Option<String>, Option<String>, String)> {
    let sql = "SELECT signer_name, document_number, relation FROM consent_school_records";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

async fn retention_erases_the_form(pg: bool) {
    let w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(&[row(1, 0, ""), row(2, 0, "")], t0 - 3600).await;
    w.tick(t0).await;
    let director = w.staff("director.a", "school_admin", 0).await;
    let (status, body) = w.record(&director, 0, form(1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = w._t.db.url.clone();
    assert_eq!(
        stored_forms(&url).await,
        vec![(
            Some("Сапарова Динара Ерлановна".to_owned()),
            Some("N 04512345".to_owned()),
            "mother".to_owned()
        )]
    );

    // Pupil 1 leaves the roster; a year after the end of her voucher's school year she is
    // erased, and the form's personal values with her.
    let text = csv(&[row(2, 0, "")]);
    let request = ImportRequest {
        name: "roster.csv",
        actor: "test",
        bytes: text.as_bytes(),
        format: Format::Csv,
        options: ImportOptions {
            mode: Mode::Snapshot,
            skip_invalid: false,
        },
    };
    let report = roster::import(
        w.store(),
        &w.state.settings,
        &request,
        t0 + common::DAY,
        &|_, _| {},
    )
    .await
    .unwrap();
    assert!(report.applied, "{:?}", report.errors);
    let later = t0 + 600 * common::DAY;
    w.state.clock.set(later);
    wallet_server::retention::run(w.store(), &w.state.settings, "test", later, &mut |_| {})
        .await
        .unwrap();
    assert!(w.store().pupil_by_iin(&iin(1)).await.unwrap().is_none());
    assert_eq!(
        stored_forms(&url).await,
        vec![(None, None, "mother".to_owned())]
    );
}

both_backends!(retention_of_the_form, super::retention_erases_the_form);
