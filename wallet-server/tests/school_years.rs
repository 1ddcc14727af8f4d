//! Two school years on one server (DESIGN §10), on SQLite and PostgreSQL: consent, activation
//! and a meal in the first; the summer between the years; then the turn of the year, ticked by
//! two instances at once and again, with the wallet, a terminal and the NOBD report looking on.

#[path = "core_support/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "terminal_sync/fixtures.rs"]
mod fixtures;

use axum::http::StatusCode;
use common::{bin, csv, iin, row, PUBLIC_URL};
use fixtures::{call, enroll, ev, snapshot, upload};
use serde_json::{json, Value};
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use std::collections::HashMap;
use std::sync::Arc;
use wallet_server::config::Settings;
use wallet_server::consent::{self, ConsentStatus, TickReport};
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::roster::{self, Format, ImportOptions, ImportRequest};
use wallet_server::sms::file::{read_outbox, FileGateway};
use wallet_server::sms::{self, OutgoingSms};
use wallet_server::store::{self, Store};
use wallet_server::{testkit, AppState};

const M1: &str = "+77010000001"; // agrees in the first year
const M2: &str = "+77010000002"; // refuses in the first year
const M4: &str = "+77010000004"; // never answers in the first year

const TWO_YEARS: &str = r#"
[[school_years]]
start = "2026-09-01"
end = "2027-05-25"
breaks = [["2026-12-29", "2027-01-07"]]

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

struct World {
    state: AppState,
    app: axum::Router,
    gateway: FileGateway,
    outbox: std::path::PathBuf,
    seen: usize,
    _dir: tempfile::TempDir,
}

impl World {
    fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    async fn deliver(&self, at: i64) {
        sms::deliver_due(self.store(), &self.gateway, at)
            .await
            .unwrap();
    }

    async fn tick(&self, at: i64) -> TickReport {
        self.state.clock.set(at);
        let r = consent::tick(self.store(), &self.state.settings, at)
            .await
            .unwrap();
        self.deliver(at).await;
        r
    }

    async fn reply(&self, from: &str, text: &str, at: i64) {
        let phone = shared::phone::Phone::parse(from).unwrap();
        consent::handle_reply(self.store(), &self.state.settings, &phone, text, at)
            .await
            .unwrap();
        self.deliver(at).await;
    }

    /// The SMS delivered since the last call, as (to, kind), sorted; login codes left out.
    fn new_sms(&mut self) -> Vec<(String, String)> {
        let all = read_outbox(&self.outbox).unwrap();
        let mut fresh: Vec<(String, String)> = all[self.seen..]
            .iter()
            .filter(|s| s.kind != "login_code")
            .map(|s| (s.to.clone(), s.kind.clone()))
            .collect();
        self.seen = all.len();
        fresh.sort();
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
        let text = texts.last().expect("a login code");
        let code = text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap();
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

    async fn vouchers(&self, session: &str) -> Vec<Value> {
        let (status, body) = self
            .api("GET", "/api/v1/wallet/vouchers", Some(session), Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }
}

fn count(sms: &[OutgoingSms], to: &str, kind: &str) -> usize {
    sms.iter().filter(|s| s.to == to && s.kind == kind).count()
}

async fn two_years(pg: bool) {
    let t = testkit::state_with(pg, settings()).await;
    let state = t.state.clone();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.jsonl");
    let mut w = World {
        app: wallet_server::app(state.clone()),
        state,
        gateway: FileGateway::new(outbox.clone()),
        outbox,
        seen: 0,
        _dir: dir,
    };
    let y1 = "2026-2027";
    let y2 = "2027-2028";

    // ---- The first year: pupil 1 agrees, 2 refuses, 3 has no phone, 4 never answers.
    let rows = [row(1, 0, M1), row(2, 0, M2), row(3, 0, ""), row(4, 0, M4)];
    let text = csv(&rows);
    let request = ImportRequest {
        name: "roster.csv",
        actor: "test",
        bytes: text.as_bytes(),
        format: Format::Csv,
        options: ImportOptions::default(),
    };
    let t0 = testkit::MONDAY_9AM;
    roster::import(
        w.store(),
        &w.state.settings,
        &request,
        t0 - 3600,
        &|_, _| {},
    )
    .await
    .unwrap();
    let r = w.tick(t0).await;
    assert_eq!((r.requested, r.no_phone), (3, 1));
    w.reply(M1, "3#1", t0 + 600).await;
    w.reply(M2, "3#2", t0 + 700).await;
    assert_eq!(
        w.new_sms(),
        [
            (M1.into(), "consent_confirmed".into()),
            (M1.into(), "consent_request".into()),
            (M2.into(), "consent_refused".into()),
            (M2.into(), "consent_request".into()),
            (M4.into(), "consent_request".into()),
        ]
    );
    let first = w
        .store()
        .voucher_for_pupil(w.pupil(1).await, y1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.valid_from.as_str(), first.valid_to.as_str()),
        ("2026-09-01", "2027-05-25")
    );

    // The parent activates it; a meal at the school's terminal.
    w.state.clock.set(t0 + 900);
    let session = w.login(M1).await;
    let (status, body) = w
        .api(
            "POST",
            &format!("/api/v1/wallet/vouchers/{}/activate", first.id),
            Some(&session),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let terminal = enroll(&w.app, &w.state, &bin(0), "Асхана").await;
    let snap1 = snapshot(&w.app, &terminal, 0).await;
    assert_eq!(snap1.calendar.label(), y1);
    assert_eq!(
        snap1.next_calendar.as_ref().map(|y| y.label()).as_deref(),
        Some(y2),
        "terminals know the next year once it is configured"
    );
    let noon = t0 + 3 * 3600;
    let meal = ev(1, noon, Some(first.uuid()), Verdict::Ok);
    let (status, body) = upload(&w.app, &terminal, &[meal]).await;
    assert_eq!(
        (status, &body["refused"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );
    let history = format!("/api/v1/wallet/vouchers/{}/history", first.id);
    let (_, meals) = w.api("GET", &history, Some(&session), Value::Null).await;
    assert_eq!(meals.as_array().unwrap().len(), 1, "{meals}");

    // ---- Summer: no school year. The first year's voucher expires, the open request ends;
    // nothing is asked, nothing issued, no SMS.
    let summer = at("2027-06-15", "09:00");
    let r = w.tick(summer).await;
    assert_eq!(
        r,
        TickReport {
            vouchers_expired: 1,
            requests_closed: 1,
            ..TickReport::default()
        }
    );
    assert_eq!(w.tick(summer + 60).await, TickReport::default());
    assert!(w.new_sms().is_empty());
    assert_eq!(w.consent(4, y1).await, Some(ConsentStatus::Expired));
    let expired = w.store().voucher(first.uuid()).await.unwrap().unwrap();
    assert_eq!(expired.status(), VoucherStatus::Expired);
    // No token between years; the refusal says when the next year starts.
    w.state.clock.set(summer);
    let session = w.login(M1).await;
    let (status, body) = w
        .api(
            "POST",
            &format!("/api/v1/wallet/vouchers/{}/qr", first.id),
            Some(&session),
            json!({ "validity": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "voucher_expired");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("2027-09-01"), "{message}");
    // A late 3#1 finds nothing to answer.
    w.reply(M2, "3#1", summer + 120).await;
    assert_eq!(w.new_sms(), [(M2.into(), "help".into())]);

    // ---- The turn of the year: two instances tick at once, then both again.
    let turn = at("2027-09-01", "09:00");
    let second: Arc<dyn Store> = store::connect(&t.db.url).await.unwrap();
    let mut reports = Vec::new();
    for round in 0..2 {
        let at = turn + 60 * round;
        let ticks = [w.state.store.clone(), second.clone()].map(|s| {
            let settings = w.state.settings.clone();
            tokio::spawn(async move { consent::tick(s.as_ref(), &settings, at).await.unwrap() })
        });
        for t in ticks {
            reports.push(t.await.unwrap());
        }
        w.deliver(at).await;
        sms::deliver_due(second.as_ref(), &w.gateway, at)
            .await
            .unwrap();
    }
    let sum = reports
        .iter()
        .fold(TickReport::default(), |a, r| TickReport {
            requested: a.requested + r.requested,
            no_phone: a.no_phone + r.no_phone,
            vouchers_issued: a.vouchers_issued + r.vouchers_issued,
            consents_carried: a.consents_carried + r.consents_carried,
            vouchers_announced: a.vouchers_announced + r.vouchers_announced,
            ..a
        });
    assert_eq!(
        (
            sum.consents_carried,
            sum.vouchers_issued,
            sum.vouchers_announced
        ),
        (1, 1, 1),
        "{reports:?}"
    );
    assert_eq!((sum.requested, sum.no_phone), (2, 1), "{reports:?}");
    // Each SMS exactly once: the standing consent's new voucher, new requests for the refused
    // and the silent one.
    assert_eq!(
        w.new_sms(),
        [
            (M1.into(), "voucher_issued".into()),
            (M2.into(), "consent_request".into()),
            (M4.into(), "consent_request".into()),
        ]
    );
    let all = read_outbox(&w.outbox).unwrap();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for s in &all {
        *ids.entry(s.id.as_str()).or_default() += 1;
    }
    assert!(ids.values().all(|&n| n == 1), "an SMS sent twice");
    assert_eq!(count(&all, M1, "voucher_issued"), 1);
    let announce = all.iter().find(|s| s.kind == "voucher_issued").unwrap();
    for needle in ["Алихан1", y2, &format!("{PUBLIC_URL}/wallet")] {
        assert!(
            announce.text.contains(needle),
            "{needle}: {}",
            announce.text
        );
    }

    assert_eq!(w.consent(1, y2).await, Some(ConsentStatus::Consented));
    let carried = w
        .store()
        .consent_for_pupil(w.pupil(1).await, y2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carried.carried_from.as_deref(), Some(y1));
    assert_eq!(w.consent(2, y2).await, Some(ConsentStatus::Requested));
    assert_eq!(w.consent(3, y2).await, Some(ConsentStatus::NoPhone));
    assert_eq!(w.consent(4, y2).await, Some(ConsentStatus::Requested));
    let new = w
        .store()
        .voucher_for_pupil(w.pupil(1).await, y2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.status(), VoucherStatus::Issued);
    assert_eq!(
        (new.valid_from.as_str(), new.valid_to.as_str()),
        ("2027-09-01", "2028-05-25")
    );
    assert_ne!(new.id, first.id);
    for n in [2, 3, 4] {
        let p = w.pupil(n).await;
        assert!(w.store().voucher_for_pupil(p, y2).await.unwrap().is_none());
    }

    // The wallet: the new voucher to activate, last year's expired with its history.
    w.state.clock.set(turn + 600);
    let session = w.login(M1).await;
    let list = w.vouchers(&session).await;
    let status_of = |id: &str| {
        list.iter()
            .find(|v| v["voucher_id"] == id)
            .map(|v| (v["status"].clone(), v["school_year"].clone()))
    };
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(status_of(&new.id), Some((json!("issued"), json!(y2))));
    assert_eq!(status_of(&first.id), Some((json!("expired"), json!(y1))));
    let (_, meals) = w.api("GET", &history, Some(&session), Value::Null).await;
    assert_eq!(meals.as_array().unwrap().len(), 1, "history stays: {meals}");
    let (status, body) = w
        .api(
            "POST",
            &format!("/api/v1/wallet/vouchers/{}/activate", new.id),
            Some(&session),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = w
        .api(
            "POST",
            &format!("/api/v1/wallet/vouchers/{}/qr", new.id),
            Some(&session),
            json!({ "validity": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The terminal: this year's calendar; the old voucher expired, the new one active.
    let snap2 = snapshot(&w.app, &terminal, snap1.cursor).await;
    assert_eq!(snap2.calendar.label(), y2);
    assert_eq!(snap2.next_calendar, None, "no year after it is configured");
    let status_in = |s: &shared::wire::Snapshot, id: uuid::Uuid| {
        s.vouchers
            .iter()
            .find(|v| v.voucher_id == id)
            .map(|v| v.status)
    };
    assert_eq!(
        status_in(&snap2, first.uuid()),
        Some(VoucherStatus::Expired)
    );
    assert_eq!(status_in(&snap2, new.uuid()), Some(VoucherStatus::Active));
    let full = snapshot(&w.app, &terminal, 0).await;
    assert_eq!(
        status_in(&full, first.uuid()),
        None,
        "last year's are not sent again"
    );
    assert_eq!(status_in(&full, new.uuid()), Some(VoucherStatus::Active));

    // NOBD: the day's consent outcomes and the new year's vouchers.
    let date = "2027-09-01".parse().unwrap();
    build_day(w.store(), date, None, Coverage::AllSchools, turn + 3600)
        .await
        .unwrap();
    let report_id = format!("{}-2027-09-01-r1", bin(0));
    let body = w
        .store()
        .nobd_report_body(&report_id)
        .await
        .unwrap()
        .unwrap();
    let report: Value = serde_json::from_str(&body).unwrap();
    let outcomes: Vec<(String, String)> = report["consent_outcomes"]
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
    let mut outcomes = outcomes;
    outcomes.sort();
    let mut expected = vec![
        (iin(1), "consented".to_owned()),
        (iin(3), "no_phone".to_owned()),
    ];
    expected.sort();
    assert_eq!(outcomes, expected);
    assert_eq!(report["vouchers"]["issued_total"], 1);
}

both_backends!(two_school_years, super::two_years);
