//! Property test: no body sent to a wallet endpoint makes the server fail (5xx). Arbitrary
//! bytes, and arbitrary JSON objects with the fields the endpoints expect (so the input gets
//! past the JSON parser into the validation behind it).

mod wallet_support;

use axum::http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use wallet_support::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        // Near-valid values: digits, phones, uuids, stars.
        "[0-9]{5,7}".prop_map(Value::String),
        "(\\+7|8)?7[0-9]{9}".prop_map(Value::String),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
            .prop_map(Value::String),
        (0i64..8).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "phone",
    "code",
    "validity",
    "voucher_id",
    "stars",
    "comment",
    "text",
];

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(FIELDS), json_value(), 0..5).prop_map(|m| {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        object().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

fn run(pg: bool, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(World::new(pg));
    let token = rt.block_on(async {
        w.activate(&w.own_a).await;
        w.login(P1).await
    });
    let paths = [
        "/api/v1/wallet/login".to_owned(),
        "/api/v1/wallet/login/verify".to_owned(),
        format!("/api/v1/wallet/vouchers/{}/qr", w.own_a.id),
        format!("/api/v1/wallet/vouchers/{}/activate", w.own_a.id),
        "/api/v1/wallet/ratings".to_owned(),
        "/api/v1/wallet/complaints".to_owned(),
        "/api/v1/wallet/logout".to_owned(),
    ];
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(prop::sample::select(paths.to_vec()), body(), any::<bool>()),
            |(path, bytes, signed_in)| {
                // Logging out would end the session the other cases use.
                let signed_in = signed_in && !path.ends_with("logout");
                let r = rt.block_on(w.raw(
                    Method::POST,
                    &path,
                    signed_in.then_some(token.as_str()),
                    bytes.clone(),
                ));
                prop_assert!(
                    !r.status.is_server_error(),
                    "{path} answered {} to {:?}: {}",
                    r.status,
                    String::from_utf8_lossy(&bytes),
                    r.text()
                );
                if !r.status.is_success() {
                    let v: Value = serde_json::from_slice(&r.bytes)
                        .map_err(|e| TestCaseError::fail(format!("not JSON: {e}: {}", r.text())))?;
                    prop_assert!(v["error"]["code"].is_string(), "{v}");
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn wallet_bodies_never_fail_the_server_sqlite() {
    run(false, 600);
}

#[test]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
fn wallet_bodies_never_fail_the_server_postgres() {
    run(true, 300);
}
