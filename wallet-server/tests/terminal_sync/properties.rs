//! Whatever a client sends to `POST /terminal/events`: never a server error, and a refused body
//! writes nothing.

use crate::fixtures::*;
use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Events that are nearly right: each field valid or not.
fn arb_event(voucher: String) -> impl Strategy<Value = Value> {
    let seq = prop_oneof![1i64..30, any::<i64>()].prop_map(Value::from);
    let verdict = prop_oneof![
        prop::sample::select(shared::Verdict::ALL.map(|v| v.code()).to_vec()).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    let day = prop_oneof![
        Just(Value::from(day(MONDAY_NOON))),
        Just(Value::from("2026-11-24")),
        Just(Value::from("2026-02-30")),
        ".{0,10}".prop_map(Value::from),
    ];
    let scanned = prop_oneof![
        (0i64..7200).prop_map(|d| MONDAY_NOON + d - 3600),
        any::<i64>()
    ]
    .prop_map(Value::from);
    let voucher_id = prop_oneof![
        Just(Value::from(voucher)),
        Just(Value::Null),
        Just(Value::from(uuid::Uuid::new_v4().to_string())),
        ".{0,36}".prop_map(Value::from),
    ];
    let event_id = prop_oneof![
        Just(uuid::Uuid::new_v4().to_string()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
        ".{0,10}",
    ];
    let source = prop::sample::select(vec!["qr", "card", "nfc", ""]);
    let meal = prop::sample::select(vec!["lunch", "breakfast", "snack", "dinner"]);
    let key_id = prop_oneof![
        Just(Value::Null),
        "[0-9a-f]{8}".prop_map(Value::from),
        ".{0,10}".prop_map(Value::from)
    ];
    let proof = prop_oneof![
        Just(Value::Null),
        "[A-Za-z0-9_-]{140}".prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    (
        (seq, verdict, day, scanned, voucher_id),
        (event_id, source, meal, key_id, proof),
    )
        .prop_map(
            |(
                (seq, verdict, day, scanned, voucher_id),
                (event_id, source, meal, key_id, proof),
            )| {
                json!({
                    "event_id": event_id, "seq": seq, "scanned_at": scanned, "service_day": day,
                    "verdict": verdict, "source": source, "meal_kind": meal,
                    "voucher_id": voucher_id, "key_id": key_id, "proof": proof,
                })
            },
        )
}

fn body(voucher: String) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(arb_event(voucher), 0..6)
            .prop_map(|events| json!({ "events": events }).to_string().into_bytes()),
        arb_json().prop_map(|v| v.to_string().into_bytes()),
        arb_json().prop_map(|v| json!({ "events": v }).to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn run(pg: bool, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ts = rt.block_on(wallet_server::testkit::state(pg));
    let app = app(&ts.state);
    let (t, voucher_id) = rt.block_on(async {
        let s = school(&ts.state, BIN_A, "Школа 1").await;
        let v = voucher(&ts.state, &s, "iin-1", "Али", "Ахметов", true).await;
        (enroll(&app, &ts.state, BIN_A, "1").await, v.id)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&body(voucher_id), |bytes| {
            let (status, resp, before, after) = rt.block_on(async {
                let before = ts.state.store.terminal_event_count().await.unwrap();
                let (status, resp) = call_raw(
                    &app,
                    "POST",
                    "/api/v1/terminal/events",
                    Some(&t.auth),
                    &[(
                        shared::wire::TERMINAL_VERSION_HEADER,
                        env!("CARGO_PKG_VERSION"),
                    )],
                    Some(bytes.clone()),
                )
                .await;
                let after = ts.state.store.terminal_event_count().await.unwrap();
                (status, resp, before, after)
            });
            prop_assert!(!status.is_server_error(), "{status}: {resp}");
            if status != StatusCode::OK {
                prop_assert_eq!(before, after, "refused ({}) but wrote: {}", status, resp);
                prop_assert!(resp["error"]["code"].is_string(), "error body: {}", resp);
            } else {
                let stored = resp["stored"].as_i64().unwrap();
                prop_assert_eq!(after - before, stored);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn event_bodies_never_fail_the_server_sqlite() {
    run(false, 256);
}

#[test]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
fn event_bodies_never_fail_the_server_postgres() {
    run(true, 128);
}
