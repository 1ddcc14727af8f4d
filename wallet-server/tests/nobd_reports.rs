//! NOBD daily reports: the figures equal what the terminals served (duplicates apart), late
//! scans make a new revision only when they change the day, and delivery retries until
//! accepted without ever sending a report twice — also with two instances on one database.

mod common;

use axum::http::StatusCode;
use chrono::NaiveDate;
use common::{Fx, Raw};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wallet_server::eligibility::Category;
use wallet_server::lease::Worker;
use wallet_server::nobd::build::{build_day, Coverage};
use wallet_server::nobd::deliver::{deliver_due, Sink};
use wallet_server::nobd::{job, report_command};

use common::{at, day, D, H};

fn schema_validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/nobd-report.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

fn assert_valid(doc: &Value) {
    let v = schema_validator();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "report breaks the schema: {errors:?}\n{doc:#}"
    );
}

fn read_report(fx: &Fx, report_id: &str) -> Value {
    let path =
        fx.t.dir
            .path()
            .join("outbox/nobd")
            .join(format!("{report_id}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

both_backends!(report_counts_what_was_served, |pg| async move {
    let fx = Fx::new(pg).await;
    let s = common::seed(&fx).await;
    fx.state().clock.set(at(26, 0)); // 02:00 the next morning
    let out = report_command(fx.state(), day(), None).await.unwrap();
    let id1 = format!("{}-{D}-r1", s.s1.bin);
    let id2 = format!("{}-{D}-r1", s.s2.bin);
    let mut ids = out.build.new_reports.clone();
    ids.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(out.delivery.delivered, 2);
    assert!(out.undelivered.is_empty());

    let r1 = read_report(&fx, &id1);
    assert_valid(&r1);
    assert_eq!(r1["report_id"], id1.as_str());
    assert_eq!(r1["revision"], 1);
    assert_eq!(r1["date"], D);
    assert_eq!(r1["school"]["bin"], s.s1.bin.as_str());
    assert_eq!(r1["school"]["code"], s.s1.code);
    // p1 lunch (twice: one duplicate), p2 lunch, p3 lunch and breakfast, p4 lunch; the scans of
    // other days do not count.
    let m = &r1["meals"];
    assert_eq!(m["served_total"], 5, "{m}");
    assert_eq!(m["duplicates"], 1);
    assert_eq!(m["by_category"]["asp"], 2);
    assert_eq!(m["by_category"]["low_income"], 1);
    assert_eq!(m["by_category"]["orphan"], 2);
    assert_eq!(m["by_category"]["other"], 0);
    assert_eq!(m["by_meal_kind"]["lunch"], 4);
    assert_eq!(m["by_meal_kind"]["breakfast"], 1);
    assert_eq!(m["by_meal_kind"]["snack"], 0);
    // Each pupil served, once per meal kind (the duplicate is not a second entry), sorted.
    let served: Vec<(String, String)> = m["served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pupil_iin"].as_str().unwrap().to_owned(),
                e["meal_kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = [
        (11, "lunch"),
        (12, "lunch"),
        (13, "breakfast"),
        (13, "lunch"),
        (14, "lunch"),
    ]
    .into_iter()
    .map(|(n, k)| (common::iin(n), k.to_owned()))
    .collect();
    want.sort();
    assert_eq!(served, want, "{m}");
    for class in ["proven", "card", "unverified"] {
        let listed = m["served"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["proof"] == class)
            .count();
        assert_eq!(
            serde_json::json!(listed),
            m["by_proof"][class],
            "{class}: {m}"
        );
    }
    let r = &r1["rejected_scans"];
    assert_eq!(r["total"], 4);
    assert_eq!(r["by_verdict"]["already_served"], 2);
    assert_eq!(r["by_verdict"]["expired"], 1);
    assert_eq!(r["by_verdict"]["bad_format"], 1);
    assert_eq!(r["by_verdict"]["wrong_school"], 0);
    let vch = &r1["vouchers"];
    assert_eq!(vch["issued_total"], 7);
    assert_eq!(vch["activated_total"], 7);
    assert_eq!(vch["activated_on_day"], 1);
    assert_eq!(vch["activations"][0]["pupil_iin"], s.p5_iin.as_str());
    assert_eq!(vch["activations"][0]["voucher_id"], s.p5_voucher.as_str());
    assert_eq!(
        vch["activations"][0]["activated_at"],
        "2026-11-23T10:00:00+05:00"
    );
    let c = r1["consent_outcomes"].as_array().unwrap();
    assert_eq!(c.len(), 1, "only the day's outcomes: {c:?}");
    assert_eq!(c[0]["pupil_iin"], s.p6_iin.as_str());
    assert_eq!(c[0]["status"], "refused");
    assert_eq!(c[0]["at"], "2026-11-23T15:00:00+05:00");

    let r2 = read_report(&fx, &id2);
    assert_valid(&r2);
    let m = &r2["meals"];
    assert_eq!(m["served_total"], 3);
    assert_eq!(m["duplicates"], 2);
    assert_eq!(m["by_category"]["asp"], 1);
    assert_eq!(m["by_category"]["orphan"], 1);
    assert_eq!(m["by_category"]["low_income"], 1);
    let served: Vec<&str> = m["served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pupil_iin"].as_str().unwrap())
        .collect();
    let mut want = vec![common::iin(21), common::iin(22), common::iin(23)];
    want.sort();
    assert_eq!(served, want, "{m}");
    assert_eq!(r2["rejected_scans"]["by_verdict"]["wrong_school"], 1);
    assert_eq!(r2["rejected_scans"]["total"], 1);
    assert_eq!(r2["vouchers"]["activated_on_day"], 0);
    assert!(r2["consent_outcomes"].as_array().unwrap().is_empty());

    // The school's own page counts the same meals as the report.
    let f = wallet_server::store::school_view::MealFilter {
        school_code: s.s1.code,
        from: D.into(),
        to: D.into(),
        class: None,
        voucher: None,
    };
    let days = fx.state().store.meals_by_day(&f).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].meals, 5);
    assert_eq!(days[0].duplicates, 1);
    let _ = &s.v;

    // Rebuilding the same day changes nothing and sends nothing.
    fx.state().clock.advance(H);
    let again = report_command(fx.state(), day(), None).await.unwrap();
    assert!(again.build.new_reports.is_empty());
    assert_eq!(again.build.unchanged, 2);
    assert_eq!(again.delivery.delivered, 0);
});

both_backends!(report_command_refuses_bad_input, |pg| async move {
    let fx = Fx::new(pg).await;
    let s1 = fx.school(1).await;
    let tomorrow = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let err = report_command(fx.state(), tomorrow, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has not started"), "{err}");
    let yesterday = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let err = report_command(fx.state(), yesterday, Some(&common::bin(99)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no school"), "{err}");
    let err = report_command(fx.state(), yesterday, Some("123"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a valid BIN"), "{err}");
    assert_eq!(
        fx.raw.count("SELECT COUNT(*) FROM nobd_reports").await,
        0,
        "bad input writes nothing"
    );
    // One school only.
    fx.school(2).await;
    let out = report_command(fx.state(), yesterday, Some(&s1.bin))
        .await
        .unwrap();
    assert_eq!(
        out.build.new_reports,
        vec![format!("{}-2026-11-22-r1", s1.bin)]
    );
});

both_backends!(
    late_scans_make_a_new_revision_only_when_the_day_changes,
    |pg| async move {
        let fx = Fx::new(pg).await;
        let s = common::seed(&fx).await;
        let sink = Sink::from_settings(&fx.state().settings, &fx.state().paths).unwrap();
        let state = fx.state();

        // 00:30: too early for the day's reports.
        state.clock.set(at(24, 30));
        let r = job::round(state, &sink, &Worker::one_off("w"))
            .await
            .unwrap();
        assert!(r.days_built.is_empty());
        // 01:05: the day before is built for every school and delivered.
        state.clock.set(at(25, 5));
        let r = job::round(state, &sink, &Worker::one_off("w"))
            .await
            .unwrap();
        assert_eq!(r.days_built, vec![day()]);
        assert_eq!(r.new_reports, 2);
        assert_eq!(r.delivered, 2);
        let first = read_report(&fx, &format!("{}-{D}-r1", s.s1.bin));
        assert_eq!(first["meals"]["served_total"], 5);
        // The next round builds nothing new.
        state.clock.advance(60);
        let r = job::round(state, &sink, &Worker::one_off("w"))
            .await
            .unwrap();
        assert!(r.days_built.is_empty());
        assert_eq!(r.new_reports, 0);

        // A terminal that was offline syncs a meal of that day late.
        let late = state.now();
        fx.event(
            "t1a",
            8,
            &s.s1,
            Some(&s.v["p5"]),
            "ok",
            "lunch",
            D,
            at(13, 0),
            late,
            false,
        )
        .await;
        state.clock.advance(60);
        let r = job::round(state, &sink, &Worker::one_off("w"))
            .await
            .unwrap();
        assert_eq!(r.new_reports, 1, "only the school whose day changed");
        assert_eq!(r.delivered, 1);
        let second = read_report(&fx, &format!("{}-{D}-r2", s.s1.bin));
        assert_valid(&second);
        assert_eq!(second["revision"], 2);
        assert_eq!(second["meals"]["served_total"], 6);
        assert_eq!(second["meals"]["by_category"]["asp"], 3);
        assert_eq!(first["meals"]["served_total"], 5, "r1 stays as it was");

        // The next round looks at the same late scan again (its look-back overlaps): the content
        // is unchanged, so no revision.
        state.clock.advance(60);
        let r = job::round(state, &sink, &Worker::one_off("w"))
            .await
            .unwrap();
        assert_eq!(r.new_reports, 0, "unchanged content, no new revision");
        let revisions = fx
            .raw
            .count(&format!(
                "SELECT COUNT(*) FROM nobd_reports WHERE school_code = {}",
                s.s1.code
            ))
            .await;
        assert_eq!(revisions, 2);
        assert_eq!(
            fx.raw
                .count(&format!(
                    "SELECT COUNT(*) FROM nobd_reports WHERE school_code = {}",
                    s.s2.code
                ))
                .await,
            1
        );
        let files = std::fs::read_dir(fx.t.dir.path().join("outbox/nobd"))
            .unwrap()
            .count();
        assert_eq!(files, 3);
    }
);

/// A NOBD endpoint on 127.0.0.1 that refuses the first `fail_first` requests of each report
/// with 503, then accepts (or answers 409 for keys it is told it already has).
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(String, String, u16)>>>,
    fail_first: usize,
    known: Arc<Mutex<Vec<String>>>,
    delay_ms: u64,
}

impl Receiver {
    async fn start(self) -> (String, Receiver) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        let app = axum::Router::new().route(
            "/nobd",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Receiver>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    if r.delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(r.delay_ms)).await;
                    }
                    let key = headers
                        .get("idempotency-key")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let mut calls = r.calls.lock().unwrap();
                    let seen = calls.iter().filter(|c| c.0 == key).count();
                    let status = if seen < r.fail_first {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else if r.known.lock().unwrap().contains(&key) {
                        StatusCode::CONFLICT
                    } else {
                        StatusCode::ACCEPTED
                    };
                    calls.push((key, body, status.as_u16()));
                    status
                },
            ),
        );
        tokio::spawn(async move {
            axum::serve(listener, app.with_state(me)).await.unwrap();
        });
        (format!("http://{addr}/nobd"), self)
    }

    fn calls(&self) -> Vec<(String, String, u16)> {
        self.calls.lock().unwrap().clone()
    }
}

fn http_settings(url: &str) -> wallet_server::config::Settings {
    wallet_server::config::Settings::from_toml(&format!(
        "[nobd]\nurl = \"{url}\"\ntoken = \"t0ken\""
    ))
    .unwrap()
}

both_backends!(
    http_delivery_retries_with_backoff_until_accepted,
    |pg| async move {
        let (url, rx) = Receiver {
            fail_first: 2,
            ..Receiver::default()
        }
        .start()
        .await;
        let fx = Fx::with_settings(pg, http_settings(&url)).await;
        let school = fx.school(1).await;
        let state = fx.state();
        state.clock.set(at(26, 0));
        let built = build_day(
            state.store.as_ref(),
            day(),
            None,
            Coverage::AllSchools,
            state.now(),
        )
        .await
        .unwrap();
        let id = format!("{}-{D}-r1", school.bin);
        assert_eq!(built.new_reports, vec![id.clone()]);
        let sink = Sink::from_settings(&state.settings, &state.paths).unwrap();
        let store = state.store.as_ref();

        let s = deliver_due(store, &sink, &Worker::one_off("w"), &state.clock)
            .await
            .unwrap();
        assert_eq!((s.delivered, s.failed), (0, 1));
        assert!(s.last_error.unwrap().contains("503"));
        // Not due again before the back-off (30 s after the first failure).
        let s = deliver_due(store, &sink, &Worker::one_off("w"), &state.clock)
            .await
            .unwrap();
        assert_eq!((s.delivered, s.failed), (0, 0));
        state.clock.advance(30);
        let s = deliver_due(store, &sink, &Worker::one_off("w"), &state.clock)
            .await
            .unwrap();
        assert_eq!((s.delivered, s.failed), (0, 1));
        state.clock.advance(59); // the second back-off is 60 s
        let s = deliver_due(store, &sink, &Worker::one_off("w"), &state.clock)
            .await
            .unwrap();
        assert_eq!((s.delivered, s.failed), (0, 0));
        state.clock.advance(1);
        let s = deliver_due(store, &sink, &Worker::one_off("w"), &state.clock)
            .await
            .unwrap();
        assert_eq!((s.delivered, s.failed), (1, 0));
        state.clock.advance(86_400);
        let s = deliver_due(store, &sink, &Worker::one_off("w"), &state.clock)
            .await
            .unwrap();
        assert_eq!((s.delivered, s.failed), (0, 0));

        let calls = rx.calls();
        assert_eq!(
            calls.len(),
            3,
            "two refusals, one acceptance, nothing after"
        );
        assert!(
            calls.iter().all(|c| c.0 == id),
            "Idempotency-Key is the report id"
        );
        assert_eq!(
            calls.iter().filter(|c| c.2 == 202).count(),
            1,
            "accepted exactly once"
        );
        let doc: Value = serde_json::from_str(&calls[2].1).unwrap();
        assert_eq!(doc["report_id"], id.as_str());
        assert_valid(&doc);
        assert_eq!(
        fx.raw
            .count("SELECT COUNT(*) FROM nobd_outbox WHERE delivered_at IS NOT NULL AND last_error IS NULL AND attempts = 3")
            .await,
        1
    );
    }
);

both_backends!(
    a_conflict_means_the_receiver_already_has_it,
    |pg| async move {
        let rx = Receiver::default();
        let fx_school_bin = common::bin(1);
        rx.known
            .lock()
            .unwrap()
            .push(format!("{fx_school_bin}-{D}-r1"));
        let (url, rx) = rx.start().await;
        let fx = Fx::with_settings(pg, http_settings(&url)).await;
        fx.school(1).await;
        let state = fx.state();
        state.clock.set(at(26, 0));
        let out = report_command(state, day(), None).await.unwrap();
        assert_eq!(out.delivery.delivered, 1);
        assert!(out.undelivered.is_empty());
        assert_eq!(rx.calls().len(), 1);
        assert_eq!(rx.calls()[0].2, 409);
    }
);

both_backends!(
    unreachable_endpoint_keeps_reports_in_the_outbox,
    |pg| async move {
        // Nothing listens on this port (bound, then dropped).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fx =
            Fx::with_settings(pg, http_settings(&format!("http://127.0.0.1:{port}/nobd"))).await;
        fx.school(1).await;
        let state = fx.state();
        state.clock.set(at(26, 0));
        let out = report_command(state, day(), None).await.unwrap();
        assert_eq!(out.delivery.failed, 1);
        assert_eq!(out.undelivered.len(), 1);
        assert!(out.undelivered[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("unreachable"));
        assert_eq!(fx.raw.count("SELECT COUNT(*) FROM nobd_reports").await, 1);
    }
);

both_backends!(two_instances_send_each_report_once, |pg| async move {
    let (url, rx) = Receiver {
        delay_ms: 5,
        ..Receiver::default()
    }
    .start()
    .await;
    let fx = Fx::with_settings(pg, http_settings(&url)).await;
    for n in 1..=40 {
        fx.school(n).await;
    }
    let state = fx.state();
    state.clock.set(at(26, 0));
    let built = build_day(
        state.store.as_ref(),
        day(),
        None,
        Coverage::AllSchools,
        state.now(),
    )
    .await
    .unwrap();
    assert_eq!(built.new_reports.len(), 40);
    // A second server instance: its own connection pool on the same database.
    let other = wallet_server::store::connect(&fx.t.db.url).await.unwrap();
    let sink = Sink::from_settings(&state.settings, &state.paths).unwrap();
    let (wa, wb) = (Worker::one_off("instance-a"), Worker::one_off("instance-b"));
    let (a, b) = tokio::join!(
        deliver_due(state.store.as_ref(), &sink, &wa, &state.clock),
        deliver_due(other.as_ref(), &sink, &wb, &state.clock),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.delivered + b.delivered, 40);
    let calls = rx.calls();
    assert_eq!(calls.len(), 40, "no report sent twice");
    let mut keys: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 40);
    let mut built_ids = built.new_reports.clone();
    built_ids.sort();
    assert_eq!(
        keys,
        built_ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        fx.raw
            .count("SELECT COUNT(*) FROM nobd_outbox WHERE delivered_at IS NULL")
            .await,
        0
    );
    let _: &Raw = &fx.raw;
});

both_backends!(
    weekend_reports_only_for_schools_with_activity,
    |pg| async move {
        let fx = Fx::new(pg).await;
        let s1 = fx.school(1).await;
        fx.school(2).await;
        let (p, _) = fx
            .pupil(11, &s1, 3, "А", Category::Asp, at(10, 0) - 7 * 86_400)
            .await;
        // Saturday 2026-11-21: a parent refuses; no lessons.
        let saturday = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        fx.consent(p, "refused", at(11, 0) - 2 * 86_400).await;
        let state = fx.state();
        let out = build_day(
            state.store.as_ref(),
            saturday,
            None,
            Coverage::ActiveSchools,
            state.now(),
        )
        .await
        .unwrap();
        assert_eq!(out.new_reports, vec![format!("{}-2026-11-21-r1", s1.bin)]);
    }
);

#[test]
fn documented_example_follows_the_schema_and_the_schema_has_teeth() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/nobd-report.example.json"
    );
    let example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_valid(&example);
    // It also reads back as the server's own type.
    let doc: wallet_server::nobd::report::NobdReport =
        serde_json::from_value(example.clone()).unwrap();
    assert_eq!(doc.content.meals.served_total, 6);
    assert_eq!(
        doc.content.meals.served.len(),
        6,
        "one entry per meal counted"
    );
    let mut sorted = doc.content.meals.served.clone();
    sorted.sort();
    assert_eq!(sorted, doc.content.meals.served, "listed in order");
    let v = schema_validator();
    for (pointer, bad) in [
        ("/meals/served_total", serde_json::json!(-1)),
        ("/report_id", serde_json::json!("260900000076-2026-11-23")),
        ("/consent_outcomes/0/status", serde_json::json!("pending")),
        ("/generated_at", serde_json::json!("2026-11-24T04:12:40Z")),
        ("/rejected_scans/by_verdict/ok", serde_json::json!(3)),
        ("/vouchers/revocations/0/reason", serde_json::json!("moved")),
        ("/meals/served/0/proof", serde_json::json!("qr")),
        ("/meals/served/0/pupil_iin", serde_json::json!("1001")),
        ("/meals/served/0/meal_kind", serde_json::json!("dinner")),
    ] {
        let mut broken = example.clone();
        match broken.pointer_mut(pointer) {
            Some(slot) => *slot = bad,
            None => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                broken.pointer_mut(parent).unwrap()[key] = bad;
            }
        }
        assert!(!v.is_valid(&broken), "{pointer} should break the schema");
    }
}

both_backends!(
    concurrent_report_runs_report_what_happened,
    |pg| async move {
        let (url, rx) = Receiver {
            delay_ms: 300,
            ..Receiver::default()
        }
        .start()
        .await;
        let fx = Fx::with_settings(pg, http_settings(&url)).await;
        for n in 1..=40 {
            fx.school(n).await;
        }
        fx.state().clock.set(at(26, 0));
        // Four operators (or an operator and cron jobs) run `report nobd` for the same day at
        // once, each with its own connection pool.
        let mut runs = Vec::new();
        for _ in 0..4 {
            let mut state = fx.state().clone();
            state.store = wallet_server::store::connect(&fx.t.db.url).await.unwrap();
            runs.push(tokio::spawn(async move {
                report_command(&state, day(), None).await
            }));
        }
        let mut delivered = 0;
        for run in runs {
            let out = run.await.unwrap().unwrap();
            assert!(
                out.undelivered.is_empty(),
                "a report delivered by another run is not waiting: {:?}",
                out.undelivered
            );
            delivered += out.delivery.delivered;
        }
        assert_eq!(delivered, 40, "each report delivered by exactly one run");
        let calls = rx.calls();
        let mut keys: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!((calls.len(), keys.len()), (40, 40), "no report sent twice");
    }
);
