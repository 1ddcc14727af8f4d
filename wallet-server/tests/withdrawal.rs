//! A parent withdraws consent by `3#2` (DESIGN §10), and a new priority phone takes the pupil
//! over in the wallet, on SQLite and PostgreSQL: through real roster imports, SMS replies, the
//! wallet's API, a terminal and the NOBD report.

#[path = "core_support/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "terminal_sync/fixtures.rs"]
mod fixtures;

use axum::http::StatusCode;
use common::{bin, csv, iin, row, with, PUBLIC_URL};
use fixtures::{call, enroll, ev, snapshot, upload};
use serde_json::{json, Value};
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use wallet_server::config::{Lang, Settings};
use wallet_server::consent::{self, texts, ConsentStatus, ReplyOutcome, TickReport};
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::roster::{self, Column, Format, ImportOptions, ImportRequest, Mode};
use wallet_server::sms::file::{read_outbox, FileGateway};
use wallet_server::sms::{self, OutgoingSms};
use wallet_server::store::vouchers::Voucher;
use wallet_server::store::Store;
use wallet_server::wallet::session::OWNERSHIP_CHECK;
use wallet_server::{testkit, AppState};

const M1: &str = "+77010000001"; // mother of pupils 1 and 2
const M3: &str = "+77010000003"; // mother of pupil 3
const NEW: &str = "+77010000009"; // pupil 1's mother's new number
const F1: &str = "+77020000001"; // pupil 1's father

const Y1: &str = "2026-2027";
const Y2: &str = "2027-2028";

fn settings() -> Settings {
    Settings::from_toml(&format!(
        r#"
[server]
public_url = "{PUBLIC_URL}"
default_lang = "ru"
[[school_years]]
start = "2026-09-01"
end = "2027-05-25"
[[school_years]]
start = "2027-09-01"
end = "2028-05-25"
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

    async fn import(&self, rows: &[[String; 19]], mode: Mode, at: i64) {
        let text = csv(rows);
        let request = ImportRequest {
            name: "roster.csv",
            actor: "test",
            bytes: text.as_bytes(),
            format: Format::Csv,
            options: ImportOptions {
                mode,
                skip_invalid: false,
            },
        };
        let report = roster::import(self.store(), &self.state.settings, &request, at, &|_, _| {})
            .await
            .unwrap();
        assert!(report.applied, "{:?}", report.errors);
    }

    async fn tick(&self, at: i64) -> TickReport {
        self.state.clock.set(at);
        let r = consent::tick(self.store(), &self.state.settings, at)
            .await
            .unwrap();
        sms::deliver_due(self.store(), &self.gateway, at)
            .await
            .unwrap();
        r
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

    async fn consent(&self, n: usize, year: &str) -> Option<ConsentStatus> {
        let id = self.pupil(n).await;
        let c = self.store().consent_for_pupil(id, year).await.unwrap();
        c.map(|c| c.status)
    }

    async fn voucher(&self, n: usize, year: &str) -> Option<Voucher> {
        let id = self.pupil(n).await;
        self.store().voucher_for_pupil(id, year).await.unwrap()
    }

    async fn api(
        &self,
        method: &str,
        uri: &str,
        session: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let auth = session.map(|s| format!("Bearer {s}"));
        let body = (!body.is_null()).then_some(body);
        call(&self.app, method, uri, auth.as_deref(), body).await
    }

    async fn login(&self, phone: &str) -> String {
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
            .expect("a login code")
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

    async fn vouchers(&self, session: &str) -> Vec<Value> {
        let (status, body) = self
            .api("GET", "/api/v1/wallet/vouchers", Some(session), Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    async fn activate(&self, session: &str, id: &str) -> (StatusCode, Value) {
        let uri = format!("/api/v1/wallet/vouchers/{id}/activate");
        self.api("POST", &uri, Some(session), Value::Null).await
    }

    async fn qr(&self, session: &str, id: &str) -> (StatusCode, Value) {
        let uri = format!("/api/v1/wallet/vouchers/{id}/qr");
        self.api("POST", &uri, Some(session), json!({ "validity": "short" }))
            .await
    }

    /// The day's NOBD report of school 0 (its first build), checked against the documented
    /// schema.
    async fn report(&self, date: &str, now: i64) -> Value {
        let built = build_day(
            self.store(),
            date.parse().unwrap(),
            None,
            Coverage::AllSchools,
            now,
        )
        .await
        .unwrap();
        let id = format!("{}-{date}-r1", bin(0));
        assert!(built.new_reports.contains(&id), "{built:?}");
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

fn kinds(sms: &[OutgoingSms]) -> Vec<(&str, &str)> {
    sms.iter()
        .map(|s| (s.to.as_str(), s.kind.as_str()))
        .collect()
}

/// Siblings 1 and 2 of mother M1, pupil 3 of mother M3 (with pupil 1's father listed too).
fn family_rows() -> Vec<[String; 19]> {
    vec![
        with(row(1, 0, M1), Column::FatherPhone, F1),
        row(2, 0, M1),
        row(3, 0, M3),
    ]
}

async fn withdraw_by_sms(pg: bool) {
    let mut w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(&family_rows(), Mode::Incremental, t0 - 3600).await;
    assert_eq!(w.tick(t0).await.requested, 3);
    assert_eq!(
        w.reply(M1, "3#1", t0 + 60).await,
        ReplyOutcome::Consented {
            consents: 2,
            vouchers: 2
        }
    );
    w.reply(M3, "3#1", t0 + 70).await;
    w.new_sms();
    let v1 = w.voucher(1, Y1).await.unwrap();
    let v2 = w.voucher(2, Y1).await.unwrap();
    let v3 = w.voucher(3, Y1).await.unwrap();

    // The mother activates one voucher and shows a QR code; a terminal knows the voucher.
    w.state.clock.set(t0 + 120);
    let session = w.login(M1).await;
    let (status, body) = w.activate(&session, &v1.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = w.qr(&session, &v1.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let terminal = enroll(&w.app, &w.state, &bin(0), "Асхана").await;
    let before = snapshot(&w.app, &terminal, 0).await;

    // 3#2 after consenting: both children's vouchers revoked, one confirmation naming them.
    let t1 = t0 + 3600;
    assert_eq!(
        w.reply(M1, " 3 # 2 ", t1).await,
        ReplyOutcome::Withdrawn {
            consents: 2,
            vouchers: 2
        }
    );
    for v in [&v1, &v2] {
        let now = w.store().voucher(v.uuid()).await.unwrap().unwrap();
        assert_eq!(now.status(), VoucherStatus::Revoked);
        assert_eq!(now.revoke_reason.as_deref(), Some("withdrawn"));
        assert_eq!(now.revoked_at, Some(t1));
        assert!(now.change_seq > v.change_seq, "terminals learn it");
    }
    let untouched = w.store().voucher(v3.uuid()).await.unwrap().unwrap();
    assert_eq!(
        untouched.status(),
        VoucherStatus::Issued,
        "another family's"
    );
    assert_eq!(w.consent(1, Y1).await, Some(ConsentStatus::Withdrawn));
    assert_eq!(w.consent(2, Y1).await, Some(ConsentStatus::Withdrawn));
    assert_eq!(w.consent(3, Y1).await, Some(ConsentStatus::Consented));
    let consent = w
        .store()
        .consent_for_pupil(w.pupil(1).await, Y1)
        .await
        .unwrap()
        .unwrap();
    let last = w
        .store()
        .consent_transitions(consent.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((last.status.as_str(), last.at), ("withdrawn", t1));
    let audit = w.store().audit_entries(50).await.unwrap();
    for v in [&v1, &v2] {
        assert!(
            audit.iter().any(|e| e.action == "voucher.revoke"
                && e.subject.as_deref() == Some(v.id.as_str())
                && e.actor == format!("sms:{M1}")
                && e.detail.as_deref().is_some_and(|d| d.contains("3#2"))),
            "{audit:?}"
        );
    }
    let sent = w.new_sms();
    assert_eq!(kinds(&sent), vec![(M1, "consent_withdrawn")]);
    let children = [
        "Сапаров Алихан1 Русланович".to_owned(),
        "Сапаров Алихан2 Русланович".to_owned(),
    ];
    assert_eq!(sent[0].text, texts::withdrawn(Lang::Ru, &children));
    assert!(sent[0].text.contains("Сапаров Алихан1 Русланович"));

    // The wallet: no QR code, no activation; each voucher shows why.
    // No time passes on the server's clock: the signing cache sees the change by its number.
    tokio::time::sleep(OWNERSHIP_CHECK).await;
    let (status, body) = w.qr(&session, &v1.id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("voucher_revoked")),
        "{body}"
    );
    let (status, body) = w.activate(&session, &v2.id).await;
    assert_eq!(body["error"]["code"], "voucher_revoked", "{status} {body}");
    let list = w.vouchers(&session).await;
    assert_eq!(list.len(), 2, "{list:?}");
    for v in &list {
        assert_eq!(v["status"], "revoked");
        assert_eq!(v["revoke_reason"], "withdrawn");
        assert_eq!(v["revoked_at"], t1);
    }
    // The terminal drops it at its next sync.
    let after = snapshot(&w.app, &terminal, before.cursor).await;
    let revoked = after.vouchers.iter().find(|v| v.voucher_id == v1.uuid());
    assert_eq!(revoked.map(|v| v.status), Some(VoucherStatus::Revoked));

    // Again: nothing changes and no second confirmation; the answer says it was withdrawn.
    assert_eq!(
        w.reply(M1, "3#2", t1 + 60).await,
        ReplyOutcome::AlreadyWithdrawn { answered: true }
    );
    let sent = w.new_sms();
    assert_eq!(kinds(&sent), vec![(M1, "help")]);
    assert_eq!(sent[0].text, texts::already_withdrawn(Lang::Ru, &children));
    // 3#1 is no way back either.
    assert_eq!(
        w.reply(M1, "3#1", t1 + 120).await,
        ReplyOutcome::AlreadyWithdrawn { answered: true }
    );
    assert_eq!(kinds(&w.new_sms()), vec![(M1, "help")]);
    assert_eq!(w.consent(1, Y1).await, Some(ConsentStatus::Withdrawn));
    let still = w.store().voucher(v1.uuid()).await.unwrap().unwrap();
    assert_eq!(
        (still.status(), still.revoked_at),
        (VoucherStatus::Revoked, Some(t1))
    );
    // The tick owes them nothing.
    assert_eq!(w.tick(t1 + 600).await, TickReport::default());
    assert!(w.new_sms().is_empty());
    let outbox = read_outbox(&w.outbox).unwrap();
    assert_eq!(
        outbox
            .iter()
            .filter(|s| s.kind == "consent_withdrawn")
            .count(),
        1
    );

    // NOBD: the day's outcomes are the consents and the withdrawals.
    let report = w.report("2026-11-23", t1 + 3600).await;
    let mut expected = vec![
        (iin(1), "consented".to_owned()),
        (iin(1), "withdrawn".to_owned()),
        (iin(2), "consented".to_owned()),
        (iin(2), "withdrawn".to_owned()),
        (iin(3), "consented".to_owned()),
    ];
    expected.sort();
    assert_eq!(outcomes(&report), expected);
    assert_eq!(report["vouchers"]["revoked_total"], 2);

    // A consent withdrawn does not stand in the next school year: the parent is asked again.
    let turn = t0 + 282 * common::DAY;
    let r = w.tick(turn).await;
    assert_eq!((r.consents_carried, r.requested), (1, 2), "{r:?}");
    assert_eq!(w.consent(1, Y2).await, Some(ConsentStatus::Requested));
    assert_eq!(w.consent(3, Y2).await, Some(ConsentStatus::Consented));
    assert_eq!(
        kinds(&w.new_sms()),
        vec![
            (M1, "consent_request"),
            (M1, "consent_request"),
            (M3, "voucher_issued")
        ]
    );
}

both_backends!(withdrawal_by_sms, super::withdraw_by_sms);

/// A request awaiting an answer comes first: the `3#2` refuses it and leaves the sibling's
/// voucher alone; the next `3#2` withdraws. A consent whose voucher was revoked for another
/// reason has nothing to withdraw.
async fn pending_requests_first(pg: bool) {
    let mut w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(
        &[row(1, 0, M1), row(3, 0, M3)],
        Mode::Incremental,
        t0 - 3600,
    )
    .await;
    w.tick(t0).await;
    w.reply(M1, "3#1", t0 + 60).await;
    w.reply(M3, "3#1", t0 + 70).await;
    // A sibling joins the roster and is asked on the same number.
    w.import(&family_rows(), Mode::Incremental, t0 + 600).await;
    assert_eq!(w.tick(t0 + 700).await.requested, 1);
    w.new_sms();

    assert_eq!(
        w.reply(M1, "3#2", t0 + 800).await,
        ReplyOutcome::Refused { consents: 1 }
    );
    assert_eq!(kinds(&w.new_sms()), vec![(M1, "consent_refused")]);
    assert_eq!(w.consent(2, Y1).await, Some(ConsentStatus::Refused));
    let v1 = w.voucher(1, Y1).await.unwrap();
    assert_eq!(
        v1.status(),
        VoucherStatus::Issued,
        "the sibling's voucher stays"
    );

    assert_eq!(
        w.reply(M1, "3#2", t0 + 900).await,
        ReplyOutcome::Withdrawn {
            consents: 1,
            vouchers: 1
        }
    );
    let sent = w.new_sms();
    assert_eq!(kinds(&sent), vec![(M1, "consent_withdrawn")]);
    assert!(sent[0].text.contains("Сапаров Алихан1 Русланович"));
    assert!(
        !sent[0].text.contains("Алихан2"),
        "only the child it applied to"
    );

    // Pupil 3's voucher is revoked by an operator: a 3#2 finds nothing to withdraw.
    let v3 = w.voucher(3, Y1).await.unwrap();
    let why = wallet_server::lifecycle::RevokeReason::Operator;
    testkit::revoke_voucher(w.store(), &v3, why, t0 + 950).await;
    assert_eq!(
        w.reply(M3, "3#2", t0 + 1000).await,
        ReplyOutcome::NothingPending { answered: true }
    );
    assert_eq!(kinds(&w.new_sms()), vec![(M3, "help")]);
    assert_eq!(w.consent(3, Y1).await, Some(ConsentStatus::Consented));
    let v3 = w.store().voucher(v3.uuid()).await.unwrap().unwrap();
    assert_eq!(v3.revoke_reason.as_deref(), Some("operator"));
}

both_backends!(
    pending_requests_before_withdrawal,
    super::pending_requests_first
);

/// DESIGN §10, "A new phone": from the import on, the wallet shows the pupil to the new
/// priority phone only; the old number's open session loses it (list, QR, history); the consent
/// given stands.
async fn phone_change(pg: bool) {
    let mut w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(&family_rows(), Mode::Incremental, t0 - 3600).await;
    w.tick(t0).await;
    w.reply(M1, "3#1", t0 + 60).await;
    let v1 = w.voucher(1, Y1).await.unwrap();
    let v2 = w.voucher(2, Y1).await.unwrap();

    w.state.clock.set(t0 + 120);
    let old = w.login(M1).await;
    let (status, body) = w.activate(&old, &v1.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = w.qr(&old, &v1.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only the priority phone sees a pupil: pupil 1's father is listed, but the mother comes
    // first.
    let father = w.login(F1).await;
    assert!(w.vouchers(&father).await.is_empty());
    let (status, _) = w.qr(&father, &v1.id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    w.new_sms();

    // The roster now gives pupil 1's mother a new number.
    let t1 = t0 + 3600;
    let mut rows = family_rows();
    rows[0] = with(rows[0].clone(), Column::MotherPhone, NEW);
    w.import(&rows, Mode::Incremental, t1).await;

    // The old number's session, opened before the import: the pupil is gone.
    // No time passes on the server's clock: the signing cache sees the change by its number.
    tokio::time::sleep(OWNERSHIP_CHECK).await;
    let list = w.vouchers(&old).await;
    let ids: Vec<&str> = list
        .iter()
        .map(|v| v["voucher_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![v2.id.as_str()], "the sibling stays with M1");
    let (status, body) = w.qr(&old, &v1.id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let png = format!("/api/v1/wallet/vouchers/{}/qr.png", v1.id);
    let (status, _) = w.api("GET", &png, Some(&old), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let history = format!("/api/v1/wallet/vouchers/{}/history", v1.id);
    let (status, _) = w.api("GET", &history, Some(&old), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The new number sees the same voucher, still active: the consent stands.
    let new = w.login(NEW).await;
    let list = w.vouchers(&new).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["voucher_id"], v1.id);
    assert_eq!(list[0]["status"], "active");
    let (status, body) = w.qr(&new, &v1.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.consent(1, Y1).await, Some(ConsentStatus::Consented));
    let stored = w.store().voucher(v1.uuid()).await.unwrap().unwrap();
    assert_eq!(
        (stored.status(), stored.activated_at),
        (VoucherStatus::Active, Some(t0 + 120))
    );
    // Nobody is asked again.
    assert_eq!(w.tick(t1 + 600).await, TickReport::default());
    assert!(w.new_sms().is_empty());
}

both_backends!(new_priority_phone, super::phone_change);

/// The wallet's JSON: both school years' vouchers, each with its history, and revoked ones with
/// their reasons (withdrawn, operator, removed).
async fn both_years_and_reasons(pg: bool) {
    let mut w = World::new(pg).await;
    let t0 = testkit::MONDAY_9AM;
    w.import(&family_rows(), Mode::Incremental, t0 - 3600).await;
    w.tick(t0).await;
    w.reply(M1, "3#1", t0 + 60).await;
    w.reply(M3, "3#1", t0 + 70).await;
    let first = w.voucher(1, Y1).await.unwrap();
    w.state.clock.set(t0 + 120);
    let session = w.login(M1).await;
    let (status, body) = w.activate(&session, &first.id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let terminal = enroll(&w.app, &w.state, &bin(0), "Асхана").await;
    let meal = ev(1, t0 + 3 * 3600, Some(first.uuid()), Verdict::Ok);
    let (status, body) = upload(&w.app, &terminal, &[meal]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The next school year: last year's voucher expires, the consent stands, a new voucher.
    let turn = t0 + 282 * common::DAY;
    w.tick(turn).await;
    let second = w.voucher(1, Y2).await.unwrap();
    w.new_sms();
    // Then the mother withdraws (this year's vouchers), and a snapshot import no longer lists
    // pupil 3.
    assert_eq!(
        w.reply(M1, "3#2", turn + 600).await,
        ReplyOutcome::Withdrawn {
            consents: 2,
            vouchers: 2
        }
    );
    assert_eq!(
        w.store()
            .voucher(first.uuid())
            .await
            .unwrap()
            .unwrap()
            .status(),
        VoucherStatus::Expired,
        "last year's stays expired"
    );
    let removed = w.voucher(3, Y2).await.unwrap();
    let rows = family_rows();
    w.import(&rows[..2], Mode::Snapshot, turn + 700).await;

    w.state.clock.set(turn + 800);
    let session = w.login(M1).await;
    let list = w.vouchers(&session).await;
    let years: Vec<(&str, &str, &str, Value)> = list
        .iter()
        .map(|v| {
            (
                v["school_year"].as_str().unwrap(),
                v["pupil_name"].as_str().unwrap(),
                v["status"].as_str().unwrap(),
                v["revoke_reason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        years,
        vec![
            (
                Y2,
                "Сапаров Алихан1 Русланович",
                "revoked",
                json!("withdrawn")
            ),
            (
                Y2,
                "Сапаров Алихан2 Русланович",
                "revoked",
                json!("withdrawn")
            ),
            (Y1, "Сапаров Алихан1 Русланович", "expired", Value::Null),
            (Y1, "Сапаров Алихан2 Русланович", "expired", Value::Null),
        ],
        "newest year first: {list:?}"
    );
    assert_eq!(list[0]["voucher_id"], second.id);
    assert_eq!(list[0]["revoked_at"], turn + 600);
    assert_eq!(list[2]["revoked_at"], Value::Null);
    // Each with its history: last year's meal stays, this year's has none.
    for (id, meals) in [(&first.id, 1), (&second.id, 0)] {
        let uri = format!("/api/v1/wallet/vouchers/{id}/history");
        let (status, body) = w.api("GET", &uri, Some(&session), Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.as_array().unwrap().len(), meals, "{body}");
    }

    // The removed pupil's voucher stays visible to the parent with the reason, never signed.
    let other = w.login(M3).await;
    let list = w.vouchers(&other).await;
    let now = list.iter().find(|v| v["voucher_id"] == removed.id).unwrap();
    assert_eq!(
        (&now["status"], &now["revoke_reason"]),
        (&json!("revoked"), &json!("removed"))
    );
    let (status, _) = w.qr(&other, &removed.id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

both_backends!(
    wallet_shows_both_years_and_reasons,
    super::both_years_and_reasons
);

/// The SQLite migration rebuilds `consents` (and `consent_transitions` with it) to allow the
/// new status: a database with consents and their transitions keeps every row, and the
/// foreign key from transitions to consents still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_keeps_consents_and_transitions() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;
    use wallet_server::store::ConsentStore;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    // The schema as it was before withdrawal existed.
    let mut before = sqlx::migrate!("../migrations/server-sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 14)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let seed = format!(
        "INSERT INTO schools (code, bin, name, created_at, updated_at) VALUES (1, '{}', 'Ш', 1, 1);
         INSERT INTO pupils (id, iin, school_code, last_name, first_name, grade, class_letter,
            receives_asp, orphan, lang, category, contact_phone, created_at, updated_at)
         VALUES (7, '{}', 1, 'Сапаров', 'Алихан', 3, 'А', 1, 0, 'ru', 'asp', '{M1}', 1, 1);
         INSERT INTO consents (id, pupil_id, school_year, phone, status, requested_at, ended_at,
            updated_at, carried_from)
         VALUES (40, 7, '{Y1}', '{M1}', 'consented', 10, 20, 20, NULL);
         INSERT INTO consent_transitions (id, consent_id, status, at, detail)
         VALUES (90, 40, 'requested', 10, NULL), (91, 40, 'consented', 20, 'reply 3#1');",
        bin(0),
        iin(1)
    );
    sqlx::raw_sql(&seed).execute(&pool).await.unwrap();
    pool.close().await;

    let store = wallet_server::store::connect_sqlite(&url).await.unwrap();
    let consent = store.consent_for_pupil(7, Y1).await.unwrap().unwrap();
    assert_eq!(
        (consent.id, consent.status, consent.ended_at),
        (40, ConsentStatus::Consented, Some(20))
    );
    let transitions = store.consent_transitions(40).await.unwrap();
    let kept: Vec<(&str, i64)> = transitions
        .iter()
        .map(|t| (t.status.as_str(), t.at))
        .collect();
    assert_eq!(kept, vec![("requested", 10), ("consented", 20)]);
    let check = |sql: &'static str| {
        let pool = store.pool.clone();
        async move { sqlx::raw_sql(sql).execute(&pool).await }
    };
    check("UPDATE consents SET status = 'withdrawn' WHERE id = 40")
        .await
        .expect("the new status is allowed");
    assert!(
        check("UPDATE consents SET status = 'other' WHERE id = 40")
            .await
            .is_err(),
        "the check constraint still holds"
    );
    assert!(
        check("INSERT INTO consent_transitions (consent_id, status, at) VALUES (999, 'x', 1)")
            .await
            .is_err(),
        "the foreign key still holds"
    );
    let violations = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert!(violations.is_empty());
}
