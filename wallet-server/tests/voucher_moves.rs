//! Vouchers that follow their pupil through the roster's changes (DESIGN §10), on SQLite and
//! PostgreSQL, through the real import, consent process, wallet API, terminal sync and NOBD
//! report: a move to another school, eligibility lost and regained, a snapshot's removal
//! corrected, and revocations an import must never undo.

#[path = "core_support/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "terminal_sync/fixtures.rs"]
mod fixtures;

use axum::http::StatusCode;
use common::{bin, csv, iin, row, with, PUBLIC_URL};
use fixtures::{call, enroll, ev, snapshot, upload, Enrolled};
use serde_json::{json, Value};
use shared::verdict::Verdict;
use shared::wire::{Snapshot, SnapshotVoucher, VoucherStatus};
use uuid::Uuid;
use wallet_server::config::Settings;
use wallet_server::consent;
use wallet_server::lifecycle::RevokeReason;
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::roster::{
    self, Column, Format, ImportOptions, ImportReport, ImportRequest, Mode,
};
use wallet_server::store::roster::School;
use wallet_server::store::vouchers::Voucher;
use wallet_server::store::Store;
use wallet_server::{testkit, AppState};

const M1: &str = "+77010000001";
const M2: &str = "+77010000002";
const M3: &str = "+77010000003";
const PASSWORD: &str = "Tamaq-test-Pa55";
/// 2026-11-23 09:00, a Monday of the configured year.
const T0: i64 = testkit::MONDAY_9AM;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn settings() -> Settings {
    Settings::from_toml(&format!(
        r#"
[server]
public_url = "{PUBLIC_URL}"
default_lang = "ru"
[school_year]
start = "2026-09-01"
end = "2027-05-25"
"#
    ))
    .unwrap()
}

struct World {
    t: testkit::TestState,
    app: axum::Router,
}

impl World {
    async fn new(pg: bool) -> World {
        let t = testkit::state_with(pg, settings()).await;
        let app = wallet_server::app(t.state.clone());
        World { t, app }
    }

    fn state(&self) -> &AppState {
        &self.t.state
    }

    fn store(&self) -> &dyn Store {
        self.t.state.store.as_ref()
    }

    async fn import(&self, rows: &[[String; 19]], mode: Mode, at: i64) -> ImportReport {
        let text = csv(rows);
        let request = ImportRequest {
            name: "roster.csv",
            actor: "office",
            bytes: text.as_bytes(),
            format: Format::Csv,
            options: ImportOptions {
                mode,
                skip_invalid: false,
            },
        };
        self.state().clock.set(at);
        let report = roster::import(
            self.store(),
            &self.state().settings,
            &request,
            at,
            &|_, _| {},
        )
        .await
        .unwrap();
        assert!(report.applied, "{:?}", report.errors);
        report
    }

    /// The consent process run for the listed pupils: requests, then `3#1` from each phone.
    async fn consent(&self, phones: &[&str], at: i64) {
        consent::tick(self.store(), &self.state().settings, at)
            .await
            .unwrap();
        for p in phones {
            let phone = shared::phone::Phone::parse(p).unwrap();
            consent::handle_reply(self.store(), &self.state().settings, &phone, "3#1", at + 60)
                .await
                .unwrap();
        }
    }

    async fn school(&self, k: usize) -> School {
        self.store().school_by_bin(&bin(k)).await.unwrap().unwrap()
    }

    async fn voucher_of(&self, n: usize) -> Voucher {
        let pupil = self.store().pupil_by_iin(&iin(n)).await.unwrap().unwrap();
        self.store()
            .voucher_for_pupil(pupil.id, "2026-2027")
            .await
            .unwrap()
            .expect("a voucher this year")
    }

    async fn fresh(&self, v: &Voucher) -> Voucher {
        self.store().voucher(v.uuid()).await.unwrap().unwrap()
    }

    /// (to, kind, text) of every SMS queued, oldest first.
    async fn outbox(&self) -> Vec<(String, String, String)> {
        let mut all = self.store().sms_outbox(10_000).await.unwrap();
        all.sort_by_key(|s| s.created_at);
        all.into_iter()
            .map(|s| (s.to_phone, s.kind, s.text))
            .collect()
    }

    async fn sms_count(&self, to: &str, kind: &str) -> usize {
        self.outbox()
            .await
            .iter()
            .filter(|(t, k, _)| t == to && k == kind)
            .count()
    }

    async fn wallet_login(&self, phone: &str, at: i64) -> String {
        self.state().clock.set(at);
        let (status, body) = call(
            &self.app,
            "POST",
            "/api/v1/wallet/login",
            None,
            Some(json!({ "phone": phone })),
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
        let (status, body) = call(
            &self.app,
            "POST",
            "/api/v1/wallet/login/verify",
            None,
            Some(json!({ "phone": phone, "code": code })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        format!("Bearer {}", body["session_token"].as_str().unwrap())
    }

    async fn activate(&self, session: &str, v: &Voucher) {
        let (status, body) = call(
            &self.app,
            "POST",
            &format!("/api/v1/wallet/vouchers/{}/activate", v.id),
            Some(session),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// A school admin of these schools, signed in: the `Authorization` header value.
    async fn staff(&self, username: &str, schools: &[&School]) -> String {
        let bins: Vec<String> = schools.iter().map(|s| s.bin.clone()).collect();
        wallet_server::staff::add_staff(
            self.store(),
            username,
            "school_admin",
            &bins,
            PASSWORD,
            "test",
            self.state().now(),
        )
        .await
        .unwrap();
        let (status, body) = call(
            &self.app,
            "POST",
            "/api/v1/school/login",
            None,
            Some(json!({ "username": username, "password": PASSWORD })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        format!("Bearer {}", body["session_token"].as_str().unwrap())
    }

    async fn school_vouchers(&self, auth: &str, school: &School) -> Value {
        let (status, body) = call(
            &self.app,
            "GET",
            &format!("/api/v1/school/schools/{}/vouchers", school.bin),
            Some(auth),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The NOBD report of a school and day, as the daily job builds it.
    async fn nobd(&self, school: &School, day: &str, at: i64) -> Value {
        build_day(
            self.store(),
            day.parse().unwrap(),
            None,
            Coverage::AllSchools,
            at,
        )
        .await
        .unwrap();
        let reports = self
            .store()
            .nobd_school_reports(school.code, 100)
            .await
            .unwrap();
        let latest = reports
            .iter()
            .filter(|r| r.service_day == day)
            .max_by_key(|r| r.revision)
            .expect("a report of the day");
        let body = self
            .store()
            .nobd_report_body(&latest.report_id)
            .await
            .unwrap()
            .unwrap();
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_valid(&doc);
        doc
    }
}

fn assert_valid(doc: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/nobd-report.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
}

fn in_snapshot(s: &Snapshot, id: Uuid) -> Option<&SnapshotVoucher> {
    s.vouchers.iter().find(|v| v.voucher_id == id)
}

fn status_in(s: &Snapshot, id: Uuid) -> Option<VoucherStatus> {
    in_snapshot(s, id).map(|v| v.status)
}

/// Rows of `n` receiving АСП (eligible) or nothing (not eligible).
fn eligible(r: [String; 19], yes: bool) -> [String; 19] {
    with(r, Column::ReceivesAsp, if yes { "да" } else { "нет" })
}

async fn serve(app: &axum::Router, t: &Enrolled, seq: i64, at: i64, v: &Voucher) -> Value {
    let (status, body) = upload(app, t, &[ev(seq, at, Some(v.uuid()), Verdict::Ok)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A pupil moves from school 0 to school 1: the same voucher, now at school 1; school 0's
/// terminals drop it, school 1's get it; new tokens name school 1; the meal school 0 served
/// before the move stays school 0's, even uploaded after it.
async fn move_between_schools(pg: bool) {
    let w = World::new(pg).await;
    let first = [row(1, 0, M1), row(2, 0, M2), row(3, 1, M3)];
    w.import(&first, Mode::Incremental, T0 - HOUR).await;
    w.consent(&[M1], T0).await;
    let v = w.voucher_of(1).await;
    let (a, b) = (w.school(0).await, w.school(1).await);
    assert_eq!(v.school_code, a.code);
    let session = w.wallet_login(M1, T0 + 900).await;
    w.activate(&session, &v).await;

    let ta = enroll(&w.app, w.state(), &a.bin, "Асхана A").await;
    let tb = enroll(&w.app, w.state(), &b.bin, "Асхана B").await;
    let sa = snapshot(&w.app, &ta, 0).await;
    let sb = snapshot(&w.app, &tb, 0).await;
    assert_eq!(status_in(&sa, v.uuid()), Some(VoucherStatus::Active));
    assert_eq!(status_in(&sb, v.uuid()), None);

    // Noon: school 0's terminal serves the child, offline; at 13:00 the roster moves them.
    let noon = T0 + 3 * HOUR;
    let meal = ev(1, noon, Some(v.uuid()), Verdict::Ok);
    let moved = [row(1, 1, M1)];
    let report = w.import(&moved, Mode::Incremental, T0 + 4 * HOUR).await;
    assert_eq!(report.counts.vouchers_moved, 1, "{:?}", report.counts);
    assert!(
        report.summary().contains("vouchers moved 1"),
        "{}",
        report.summary()
    );
    let after = w.fresh(&v).await;
    assert_eq!(after.id, v.id, "the same voucher");
    assert_eq!(after.school_code, b.code);
    assert_eq!(
        after.status(),
        VoucherStatus::Active,
        "its state goes with it"
    );

    // The meal served before the move, uploaded after it, counts at school 0.
    let (status, body) = upload(&w.app, &ta, &[meal]).await;
    assert_eq!(
        (status, &body["refused"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );

    // School 0's terminal drops it at its next sync; an older terminal reads `revoked`.
    w.state().clock.set(T0 + 5 * HOUR);
    let da = snapshot(&w.app, &ta, sa.cursor).await;
    let gone = in_snapshot(&da, v.uuid()).expect("the departure is in the delta");
    assert!(gone.moved_away);
    assert_eq!(gone.status, VoucherStatus::Revoked);
    assert_eq!(gone.card_number, None);
    let wire = serde_json::to_value(&da).unwrap();
    let row_of = |s: &Value, id: &str| -> Value {
        s["vouchers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["voucher_id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(row_of(&wire, &v.id)["status"], "revoked");
    assert_eq!(row_of(&wire, &v.id)["moved_away"], true);
    let full_a = snapshot(&w.app, &ta, 0).await;
    assert_eq!(
        status_in(&full_a, v.uuid()),
        None,
        "not school 0's any more"
    );
    let again = snapshot(&w.app, &ta, da.cursor).await;
    assert_eq!(status_in(&again, v.uuid()), None, "told once");
    // School 1's terminal receives it, without the mark.
    let db = snapshot(&w.app, &tb, sb.cursor).await;
    let here = in_snapshot(&db, v.uuid()).expect("school 1 gets it");
    assert_eq!(
        (here.status, here.moved_away),
        (VoucherStatus::Active, false)
    );
    assert!(row_of(&serde_json::to_value(&db).unwrap(), &v.id)
        .get("moved_away")
        .is_none());

    // A token issued now names school 1.
    let session = w.wallet_login(M1, T0 + 5 * HOUR).await;
    let (status, body) = call(
        &w.app,
        "POST",
        &format!("/api/v1/wallet/vouchers/{}/qr", v.id),
        Some(&session),
        Some(json!({ "validity": "short" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = shared::token::decode(body["token"].as_str().unwrap()).unwrap();
    assert_eq!(i64::from(token.claims.school_code), b.code);
    let (_, list) = call(
        &w.app,
        "GET",
        "/api/v1/wallet/vouchers",
        Some(&session),
        None,
    )
    .await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["voucher_id"] == v.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["school_bin"], b.bin.as_str());

    // The next day: school 0's terminal, still offline, serves it again: refused; school 1's
    // serves it and that meal counts there.
    let noon2 = noon + DAY;
    let body = serve(&w.app, &ta, 2, noon2, &v).await;
    assert_eq!(body["refused"], 1, "{body}");
    let body = serve(&w.app, &tb, 1, noon2 + 60, &v).await;
    assert_eq!(body["refused"], 0, "{body}");

    let day1 = w.nobd(&a, "2026-11-23", T0 + 2 * DAY).await;
    assert_eq!(day1["meals"]["served_total"], 1, "{day1}");
    let day1_b = w.nobd(&b, "2026-11-23", T0 + 2 * DAY).await;
    assert_eq!(day1_b["meals"]["served_total"], 0, "{day1_b}");
    let day2_a = w.nobd(&a, "2026-11-24", T0 + 2 * DAY).await;
    assert_eq!(day2_a["meals"]["served_total"], 0);
    assert_eq!(
        day2_a["refused_events"]["by_reason"]["other_school_voucher"],
        1
    );
    let day2_b = w.nobd(&b, "2026-11-24", T0 + 2 * DAY).await;
    assert_eq!(day2_b["meals"]["served_total"], 1, "{day2_b}");

    // Audited, and listed to both schools.
    let audit = w.store().audit_entries(100).await.unwrap();
    let moves: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "voucher.move")
        .collect();
    assert_eq!(moves.len(), 1, "{audit:?}");
    assert_eq!(moves[0].actor, "office");
    assert_eq!(moves[0].subject.as_deref(), Some(v.id.as_str()));
    let detail = moves[0].detail.as_deref().unwrap();
    for needle in [a.bin.as_str(), b.bin.as_str(), "roster.csv"] {
        assert!(detail.contains(needle), "{detail}");
    }
    w.state().clock.set(T0 + 2 * DAY);
    let staff_b = w.staff("admin.b", &[&b]).await;
    let staff_a = w.staff("admin.a", &[&a]).await;
    let at_b = w.school_vouchers(&staff_b, &b).await;
    assert_eq!(at_b["school_year"], "2026-2027");
    let ins = at_b["transfers_in"].as_array().unwrap();
    assert_eq!(ins.len(), 1, "{at_b}");
    assert_eq!(ins[0]["voucher_id"], v.id.as_str());
    assert_eq!(ins[0]["first_name"], "Алихан1");
    assert_eq!(ins[0]["other_school_bin"], a.bin.as_str());
    assert!(at_b["transfers_out"].as_array().unwrap().is_empty());
    let at_a = w.school_vouchers(&staff_a, &a).await;
    let outs = at_a["transfers_out"].as_array().unwrap();
    assert_eq!(outs.len(), 1, "{at_a}");
    assert_eq!(outs[0]["other_school_bin"], b.bin.as_str());
    assert!(at_a["transfers_in"].as_array().unwrap().is_empty());
    let token = staff_b.trim_start_matches("Bearer ");
    let html = page_html(&w, &format!("/school/s/{}/vouchers?lang=ru", b.bin), token).await;
    assert!(html.contains("Перешли из другой школы"), "{html}");
    assert!(html.contains("Сапаров Алихан1 Русланович"), "{html}");
    assert!(html.contains(&format!("Школа №1 ({})", a.bin)), "{html}");
    // Staff of one school do not read the other's list.
    let (status, _) = call(
        &w.app,
        "GET",
        &format!("/api/v1/school/schools/{}/vouchers", a.bin),
        Some(&staff_b),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The same file again changes nothing.
    let report = w.import(&moved, Mode::Incremental, T0 + 2 * DAY).await;
    assert_eq!(report.counts.vouchers_moved, 0);
    let at_b = w.school_vouchers(&staff_b, &b).await;
    assert_eq!(at_b["transfers_in"].as_array().unwrap().len(), 1);
}

both_backends!(
    a_pupil_moves_school_with_the_voucher,
    super::move_between_schools
);

/// A pupil no longer eligible: revoked `not_eligible`, one SMS (also when the file comes again),
/// in the day's NOBD report; eligible again the same year: back as it was, nothing asked.
async fn eligibility_lost_and_regained(pg: bool) {
    let w = World::new(pg).await;
    let rows = [row(1, 0, M1), row(2, 0, M2)];
    w.import(&rows, Mode::Incremental, T0 - HOUR).await;
    w.consent(&[M1, M2], T0).await;
    let v = w.voucher_of(1).await;
    let session = w.wallet_login(M1, T0 + 900).await;
    w.activate(&session, &v).await;
    let school = w.school(0).await;
    let t = enroll(&w.app, w.state(), &school.bin, "Асхана").await;
    let s0 = snapshot(&w.app, &t, 0).await;
    assert_eq!(status_in(&s0, v.uuid()), Some(VoucherStatus::Active));
    let requests_before = w.sms_count(M1, "consent_request").await;
    assert_eq!(requests_before, 1);

    // The next day's roster: pupil 1's family no longer receives АСП (no other category).
    let lost = [eligible(row(1, 0, M1), false), row(2, 0, M2)];
    let at = T0 + DAY;
    let report = w.import(&lost, Mode::Incremental, at).await;
    assert_eq!(
        report.counts.vouchers_not_eligible, 1,
        "{:?}",
        report.counts
    );
    let revoked = w.fresh(&v).await;
    assert_eq!(revoked.status(), VoucherStatus::Revoked);
    assert_eq!(revoked.revoke_reason.as_deref(), Some("not_eligible"));
    assert_eq!(revoked.revoked_at, Some(at));
    let texts: Vec<String> = w
        .outbox()
        .await
        .into_iter()
        .filter(|(_, k, _)| k == "voucher_revoked")
        .map(|(to, _, text)| {
            assert_eq!(to, M1);
            text
        })
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    for needle in [
        "Сапаров Алихан1 Русланович",
        "Школа №1",
        "больше не относится",
    ] {
        assert!(texts[0].contains(needle), "{needle}: {}", texts[0]);
    }
    // The same file again, and the same file as a snapshot: nothing more.
    let again = w.import(&lost, Mode::Incremental, at + 60).await;
    assert_eq!(again.counts.vouchers_not_eligible, 0);
    w.import(&lost, Mode::Snapshot, at + 120).await;
    assert_eq!(w.sms_count(M1, "voucher_revoked").await, 1);
    assert_eq!(w.sms_count(M2, "voucher_revoked").await, 0);
    // Audited with the file; the terminal refuses it from its next sync.
    let audit = w.store().audit_entries(200).await.unwrap();
    let entry = audit
        .iter()
        .find(|e| e.action == "voucher.revoke" && e.subject.as_deref() == Some(v.id.as_str()))
        .expect("the revocation is audited");
    assert_eq!(entry.actor, "office");
    assert!(
        entry.detail.as_deref().unwrap().contains("roster.csv"),
        "{entry:?}"
    );
    w.state().clock.set(at + 300);
    let s1 = snapshot(&w.app, &t, s0.cursor).await;
    assert_eq!(status_in(&s1, v.uuid()), Some(VoucherStatus::Revoked));

    // The day's NOBD report lists it; the day before does not.
    let doc = w.nobd(&school, "2026-11-24", T0 + 2 * DAY).await;
    let list = doc["vouchers"]["revocations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{doc}");
    assert_eq!(list[0]["voucher_id"], v.id.as_str());
    assert_eq!(list[0]["pupil_iin"], iin(1).as_str());
    assert_eq!(list[0]["reason"], "not_eligible");
    assert_eq!(list[0]["revoked_at"], "2026-11-24T09:00:00+05:00");
    let before = w.nobd(&school, "2026-11-23", T0 + 2 * DAY).await;
    assert!(before["vouchers"]["revocations"]
        .as_array()
        .unwrap()
        .is_empty());
    // ... and the school page shows it with its reason.
    let staff = w.staff("admin", &[&school]).await;
    let page = w.school_vouchers(&staff, &school).await;
    let rev = page["revocations"].as_array().unwrap();
    assert_eq!(rev.len(), 1, "{page}");
    assert_eq!(rev[0]["reason"], "not_eligible");
    let token = staff.trim_start_matches("Bearer ");
    let html = page_html(
        &w,
        &format!("/school/s/{}/vouchers?lang=ru", school.bin),
        token,
    )
    .await;
    assert!(
        html.contains("Больше не относится к льготным категориям"),
        "{html}"
    );
    assert!(html.contains("Алихан1"), "{html}");
    let html = page_html(
        &w,
        &format!("/school/s/{}/vouchers?lang=kk", school.bin),
        token,
    )
    .await;
    assert!(html.contains("Санаттарға енді жатпайды"), "{html}");

    // Eligible again two days later: active as before, no new consent asked, no SMS.
    let back = [row(1, 0, M1), row(2, 0, M2)];
    let report = w.import(&back, Mode::Incremental, T0 + 3 * DAY).await;
    assert_eq!(report.counts.vouchers_restored, 1, "{:?}", report.counts);
    let restored = w.fresh(&v).await;
    assert_eq!(restored.status(), VoucherStatus::Active);
    assert_eq!((restored.revoked_at, restored.revoke_reason), (None, None));
    consent::tick(w.store(), &w.state().settings, T0 + 3 * DAY + 60)
        .await
        .unwrap();
    assert_eq!(w.sms_count(M1, "consent_request").await, requests_before);
    assert_eq!(w.sms_count(M1, "voucher_revoked").await, 1);
    w.state().clock.set(T0 + 3 * DAY + 120);
    let s2 = snapshot(&w.app, &t, s1.cursor).await;
    assert_eq!(status_in(&s2, v.uuid()), Some(VoucherStatus::Active));
    assert!(audit_has(&w, "voucher.restore", &v.id).await);
}

both_backends!(
    a_pupil_loses_and_regains_eligibility,
    super::eligibility_lost_and_regained
);

async fn page_html(w: &World, path: &str, token: &str) -> String {
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .uri(path)
        .header("cookie", format!("tamaq_staff={token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn audit_has(w: &World, action: &str, subject: &str) -> bool {
    w.store()
        .audit_entries(500)
        .await
        .unwrap()
        .iter()
        .any(|e| e.action == action && e.subject.as_deref() == Some(subject))
}

/// A snapshot drops pupils 1 (active) and 2 (issued) by mistake; the next lists them again:
/// each voucher back in the state it had, no consent asked again, the terminal sees them.
async fn removed_then_listed_again(pg: bool) {
    let w = World::new(pg).await;
    let all = [row(1, 0, M1), row(2, 0, M2), row(3, 0, M3)];
    w.import(&all, Mode::Snapshot, T0 - HOUR).await;
    w.consent(&[M1, M2, M3], T0).await;
    let (v1, v2) = (w.voucher_of(1).await, w.voucher_of(2).await);
    let session = w.wallet_login(M1, T0 + 900).await;
    w.activate(&session, &v1).await;
    let school = w.school(0).await;
    let t = enroll(&w.app, w.state(), &school.bin, "Асхана").await;
    let s0 = snapshot(&w.app, &t, 0).await;
    let sms_before = w.outbox().await.len();

    let report = w.import(&[row(3, 0, M3)], Mode::Snapshot, T0 + DAY).await;
    assert_eq!(
        (report.counts.removed, report.counts.vouchers_revoked),
        (2, 2)
    );
    for v in [&v1, &v2] {
        let r = w.fresh(v).await;
        assert_eq!(
            (r.status(), r.revoke_reason.as_deref()),
            (VoucherStatus::Revoked, Some("removed"))
        );
    }
    w.state().clock.set(T0 + DAY + 60);
    let s1 = snapshot(&w.app, &t, s0.cursor).await;
    assert_eq!(status_in(&s1, v1.uuid()), Some(VoucherStatus::Revoked));

    // Corrected the next day.
    let report = w.import(&all, Mode::Snapshot, T0 + 2 * DAY).await;
    assert_eq!(report.counts.vouchers_restored, 2, "{:?}", report.counts);
    assert_eq!(
        w.fresh(&v1).await.status(),
        VoucherStatus::Active,
        "active stays active"
    );
    assert_eq!(w.fresh(&v2).await.status(), VoucherStatus::Issued);
    consent::tick(w.store(), &w.state().settings, T0 + 2 * DAY + 60)
        .await
        .unwrap();
    let new_sms: Vec<_> = w.outbox().await.into_iter().skip(sms_before).collect();
    assert!(
        new_sms.iter().all(|(_, k, _)| k == "login_code"),
        "no consent asked again, nothing said: {new_sms:?}"
    );
    w.state().clock.set(T0 + 2 * DAY + 120);
    let s2 = snapshot(&w.app, &t, s1.cursor).await;
    assert_eq!(status_in(&s2, v1.uuid()), Some(VoucherStatus::Active));
    assert_eq!(status_in(&s2, v2.uuid()), Some(VoucherStatus::Issued));
    for v in [&v1, &v2] {
        assert!(audit_has(&w, "voucher.restore", &v.id).await, "{}", v.id);
    }
    // Still one voucher each.
    let pupil = w.store().pupil_by_iin(&iin(1)).await.unwrap().unwrap();
    assert_eq!(
        w.store()
            .voucher_for_pupil(pupil.id, "2026-2027")
            .await
            .unwrap()
            .map(|v| v.id),
        Some(v1.id.clone())
    );
}

both_backends!(
    a_removal_corrected_restores_the_vouchers,
    super::removed_then_listed_again
);

/// Revocations the parent or an operator made are never undone by an import: not by the pupil
/// listed again after a removal, not by eligibility regained; and a pupil removed while not
/// eligible keeps the voucher revoked when listed again still not eligible.
async fn imports_never_undo_withdrawal_or_operator(pg: bool) {
    let w = World::new(pg).await;
    let all = [row(1, 0, M1), row(2, 0, M2), row(3, 0, M3)];
    w.import(&all, Mode::Snapshot, T0 - HOUR).await;
    w.consent(&[M1, M2, M3], T0).await;
    let (v1, v2, v3) = (
        w.voucher_of(1).await,
        w.voucher_of(2).await,
        w.voucher_of(3).await,
    );
    let store = w.store();
    testkit::revoke_voucher(store, &v1, RevokeReason::Withdrawn, T0 + HOUR).await;
    testkit::revoke_voucher(store, &v2, RevokeReason::Operator, T0 + HOUR).await;

    // Removed, then listed again; not eligible, then eligible again.
    w.import(&[row(3, 0, M3)], Mode::Snapshot, T0 + DAY).await;
    w.import(&all, Mode::Snapshot, T0 + 2 * DAY).await;
    let flip = [
        eligible(row(1, 0, M1), false),
        eligible(row(2, 0, M2), false),
        eligible(row(3, 0, M3), false),
    ];
    let report = w.import(&flip, Mode::Incremental, T0 + 3 * DAY).await;
    assert_eq!(
        report.counts.vouchers_not_eligible, 1,
        "only pupil 3's was live"
    );
    let report = w.import(&all, Mode::Incremental, T0 + 4 * DAY).await;
    assert_eq!(report.counts.vouchers_restored, 1, "only pupil 3's");

    for (v, reason) in [(&v1, "withdrawn"), (&v2, "operator")] {
        let r = w.fresh(v).await;
        assert_eq!(
            (r.status(), r.revoke_reason.as_deref()),
            (VoucherStatus::Revoked, Some(reason))
        );
    }
    assert_eq!(w.fresh(&v3).await.status(), VoucherStatus::Issued);
    // Only pupil 3 heard of the eligibility change: the others' vouchers were revoked already.
    assert_eq!(w.sms_count(M1, "voucher_revoked").await, 0);
    assert_eq!(w.sms_count(M2, "voucher_revoked").await, 0);
    assert_eq!(w.sms_count(M3, "voucher_revoked").await, 1);

    // Removed while not eligible, listed again still not eligible: stays revoked.
    w.import(
        &[row(1, 0, M1), row(2, 0, M2)],
        Mode::Snapshot,
        T0 + 5 * DAY,
    )
    .await;
    assert_eq!(w.fresh(&v3).await.revoke_reason.as_deref(), Some("removed"));
    let report = w
        .import(
            &[eligible(row(3, 0, M3), false)],
            Mode::Incremental,
            T0 + 6 * DAY,
        )
        .await;
    assert_eq!(report.counts.vouchers_restored, 0);
    let r = w.fresh(&v3).await;
    assert_eq!(
        (r.status(), r.revoke_reason.as_deref()),
        (VoucherStatus::Revoked, Some("removed"))
    );
    assert_eq!(w.sms_count(M3, "voucher_revoked").await, 1);
}

both_backends!(
    imports_never_undo_a_withdrawal,
    super::imports_never_undo_withdrawal_or_operator
);
