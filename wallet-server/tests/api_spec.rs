//! `docs/openapi.yaml` and the routers agree: every route the source declares is in the spec,
//! every operation in the spec reaches a handler of the real router (not the router's own 404
//! or 405), and nothing is listed that does not exist.
//!
//! Routes are read from the `.route("…", get(…).post(…))` calls in `src/`: axum cannot list a
//! router's routes, so the source is the list, and the walk through the real router checks
//! that list against what is actually served.
//!
//! The answers themselves are checked by `spec_check` (every HTTP helper of the wallet, school
//! and terminal tests and the end-to-end flow goes through it); the tests at the end show that
//! the check converts every schema of the spec and rejects answers that break it.

mod spec_check;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(METHOD, path)` of every `.route(...)` in the source, with the `/api/v1` prefix for the
/// API modules (`app.rs` nests `api::router()` there; `/healthz` is merged at the root).
fn source_routes() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let app = std::fs::read_to_string(src.join("app.rs")).unwrap();
    assert!(
        app.contains(".nest(\"/api/v1\", api::router())"),
        "the prefix rule below follows app.rs"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let prefix = if rel.starts_with("api/") && rel != "api/health.rs" {
            "/api/v1"
        } else {
            ""
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            // The call's extent: up to its closing parenthesis.
            let mut depth = 1;
            let mut end = call.len();
            for (i, c) in call.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &call[..end];
            let path = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
                .unwrap_or_else(|| panic!("{rel}: a route whose path is not a literal: {call}"));
            let mut found = false;
            for m in METHODS {
                let needle = format!("{m}(");
                for (i, _) in call.match_indices(&needle) {
                    let before = call[..i].chars().last();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        out.insert((m.to_uppercase(), format!("{prefix}{path}")));
                        found = true;
                    }
                }
            }
            assert!(found, "{rel}: no method in {call}");
            rest = &rest[at + 1..];
        }
    }
    out
}

/// `(METHOD, path)` of every operation in the spec. The file is written in one block style
/// (paths at two spaces, methods at four); anything else fails the count below.
fn spec_routes() -> BTreeSet<(String, String)> {
    let spec =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml"))
            .unwrap();
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in spec.lines() {
        // Blank lines occur inside multi-line strings; they end nothing.
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            current = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            if !p.starts_with(' ') {
                current = Some(format!("/{}", p.trim_end_matches(':')));
                continue;
            }
        }
        if let (Some(path), Some(m)) = (&current, line.strip_prefix("    ")) {
            let m = m.trim_end_matches(':');
            if METHODS.contains(&m) {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn spec_and_source_list_the_same_routes() {
    let source = source_routes();
    let spec = spec_routes();
    assert!(source.len() > 40, "the scan found {} routes", source.len());
    let missing: Vec<_> = source.difference(&spec).collect();
    let extra: Vec<_> = spec.difference(&source).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes missing from docs/openapi.yaml: {missing:?}\nlisted but not served: {extra:?}"
    );
}

/// A concrete path for a pattern: a syntactically valid value for each parameter.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            "{bin}" => "000140000002".to_owned(),
            "{id}" | "{terminal_id}" => "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f".to_owned(),
            "{lang}" => "kk".to_owned(),
            s if s.starts_with('{') => "x".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_operation_reaches_a_handler() {
    let ts = wallet_server::testkit::state(false).await;
    let app = wallet_server::app(ts.state.clone());
    let routes: BTreeSet<_> = spec_routes().union(&source_routes()).cloned().collect();
    let mut mismatches = Vec::new();
    for (method, pattern) in routes {
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(concrete(&pattern))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let uri = req.uri().to_string();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        // Whatever a handler makes of an empty JSON object, its answer is one the spec lists.
        if let Err(e) = spec_check::spec().check(
            &method,
            &uri,
            status.as_u16(),
            content_type.as_deref(),
            &body,
        ) {
            mismatches.push(format!("{method} {uri} → {status}: {e}"));
        }
        // The router's own refusals have empty bodies; a handler's 404 says what is missing.
        let router_refused = (status == StatusCode::NOT_FOUND
            || status == StatusCode::METHOD_NOT_ALLOWED)
            && body.is_empty();
        assert!(!router_refused, "{method} {pattern}: {status}, no handler");
    }
    assert!(
        mismatches.is_empty(),
        "answers that break docs/openapi.yaml:\n{}",
        mismatches.join("\n")
    );
    // And the check can tell: a route that does not exist is refused by the router itself.
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/v1/no-such-route")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn every_json_answer_of_the_spec_has_a_schema_the_check_understands() {
    let spec = spec_check::spec();
    let answers = spec.json_answers();
    assert!(answers.len() > 80, "{} JSON answers", answers.len());
    for (method, template, status) in answers {
        let schema = spec
            .response_schema(&method, &template, status)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("a JSON schema");
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: {e}"));
    }
}

fn voucher() -> serde_json::Value {
    serde_json::json!({
        "voucher_id": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
        "status": "active",
        "pupil_name": "Сапарова Айгерим Ерлановна",
        "school_bin": "000140000002",
        "school_code": 1,
        "valid_from": "2026-09-01",
        "valid_to": "2027-05-25",
        "school_name": "№1 мектеп-гимназия",
        "grade": 3,
        "class_letter": "А",
        "school_year": "2026-2027",
        "activated_at": 1795406400
    })
}

#[test]
fn the_check_rejects_answers_that_break_the_schema() {
    let spec = spec_check::spec();
    let list = "/api/v1/wallet/vouchers";
    let check = |v: serde_json::Value| spec.check_json("GET", list, 200, &v);
    check(serde_json::json!([voucher()])).expect("a good answer passes");
    let mut not_yet = voucher();
    not_yet["activated_at"] = serde_json::Value::Null;
    check(serde_json::json!([not_yet])).expect("activated_at is nullable");
    check(serde_json::json!([])).expect("no vouchers");

    let broken = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut v = voucher();
        change(&mut v);
        check(serde_json::json!([v]))
    };
    for (what, result, needle) in [
        (
            "missing required field",
            broken(&|v| {
                v.as_object_mut().unwrap().remove("status");
            }),
            "status",
        ),
        (
            "integer as a string",
            broken(&|v| v["grade"] = "3".into()),
            "grade",
        ),
        (
            "string as a number",
            broken(&|v| v["school_bin"] = 140000002.into()),
            "school_bin",
        ),
        (
            "null where not nullable",
            broken(&|v| v["school_name"] = serde_json::Value::Null),
            "school_name",
        ),
        (
            "value outside the enum",
            broken(&|v| v["status"] = "lost".into()),
            "status",
        ),
        (
            "not a date",
            broken(&|v| v["valid_from"] = "01.09.2026".into()),
            "valid_from",
        ),
        (
            "not a UUID",
            broken(&|v| v["voucher_id"] = "voucher-1".into()),
            "voucher_id",
        ),
        (
            "an undocumented field",
            broken(&|v| v["iin"] = "120304500012".into()),
            "iin",
        ),
        (
            "pattern",
            broken(&|v| v["school_bin"] = "BIN".into()),
            "school_bin",
        ),
    ] {
        let err = result.expect_err(what);
        assert!(err.contains(needle), "{what}: {err}");
    }
    let err = check(serde_json::json!(voucher())).expect_err("an object where a list is due");
    assert!(err.contains("array"), "{err}");
}

#[test]
fn the_check_rejects_undocumented_statuses_content_and_bodies() {
    let spec = spec_check::spec();
    let json = Some("application/json");
    let body = serde_json::to_vec(&serde_json::json!([voucher()])).unwrap();
    let list = "/api/v1/wallet/vouchers";
    spec.check("GET", list, 200, json, &body).unwrap();
    spec.check("GET", "/api/v1/wallet/vouchers?x=1", 200, json, &body)
        .unwrap();

    let errors = [
        spec.check("GET", list, 418, json, &body),
        spec.check("GET", list, 200, Some("text/html"), &body),
        spec.check("GET", list, 200, None, &body),
        spec.check("GET", list, 200, json, b"<html>"),
        // 204 is documented without a body.
        spec.check("POST", "/api/v1/wallet/logout", 204, json, b"{}"),
        // An error body without its message.
        spec.check(
            "GET",
            list,
            401,
            json,
            br#"{"error": {"code": "unauthorized"}}"#,
        ),
        // A route the spec does not list, answered by a handler.
        spec.check("GET", "/api/v1/wallet/secrets", 200, json, b"{}"),
    ];
    for (i, e) in errors.into_iter().enumerate() {
        assert!(e.is_err(), "case {i} passed");
    }
    spec.check(
        "GET",
        list,
        401,
        json,
        br#"{"error": {"code": "unauthorized", "message": "sign in"}}"#,
    )
    .unwrap();
    spec.check("POST", "/api/v1/wallet/logout", 204, None, b"")
        .unwrap();
    // The router's own refusal of what does not exist.
    spec.check("GET", "/api/v1/wallet/secrets", 404, None, b"")
        .unwrap();

    // Concrete paths find their templates; a literal segment beats a parameter.
    let id = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
    for (path, template) in [
        (
            format!("/api/v1/wallet/vouchers/{id}/qr"),
            "/api/v1/wallet/vouchers/{id}/qr",
        ),
        (
            format!("/api/v1/wallet/vouchers/{id}/qr.png"),
            "/api/v1/wallet/vouchers/{id}/qr.png",
        ),
        ("/wallet/".to_owned(), "/wallet/"),
        ("/wallet".to_owned(), "/wallet"),
    ] {
        assert_eq!(
            spec.template("GET", &path)
                .as_deref()
                .or(spec.template("POST", &path).as_deref()),
            Some(template),
            "{path}"
        );
    }
    assert_eq!(spec.template("DELETE", "/api/v1/wallet/vouchers"), None);
}

/// The conversion of what the project's spec does not show yet: `allOf` of several parts,
/// `nullable` without a type, maps, and keywords it does not know.
#[test]
fn the_conversion_handles_composition_and_refuses_what_it_does_not_know() {
    let spec = spec_check::Spec::from_yaml(
        r#"
openapi: 3.0.3
paths:
  /a:
    get:
      responses:
        '200':
          content:
            application/json:
              schema:
                type: object
                properties:
                  both:
                    allOf:
                    - $ref: '#/components/schemas/Named'
                    - type: object
                      required: [n]
                      properties:
                        n: {type: integer}
                  maybe:
                    nullable: true
                    allOf:
                    - $ref: '#/components/schemas/Named'
                  counts:
                    type: object
                    additionalProperties: {type: integer}
        '201':
          content:
            application/json:
              schema:
                not: {type: string}
components:
  schemas:
    Named:
      type: object
      required: [name]
      properties:
        name: {type: string}
"#,
    )
    .unwrap();
    let ok = serde_json::json!({
        "both": {"name": "a", "n": 1},
        "maybe": null,
        "counts": {"asp": 3, "orphan": 0}
    });
    spec.check_json("GET", "/a", 200, &ok).unwrap();
    for bad in [
        serde_json::json!({"both": {"name": "a"}}),
        serde_json::json!({"both": {"name": "a", "n": 1, "extra": true}}),
        serde_json::json!({"maybe": {"name": 1}}),
        serde_json::json!({"counts": {"asp": "3"}}),
        serde_json::json!({"other": 1}),
    ] {
        assert!(spec.check_json("GET", "/a", 200, &bad).is_err(), "{bad}");
    }
    let err = spec
        .check_json("GET", "/a", 201, &serde_json::json!(1))
        .unwrap_err();
    assert!(err.contains("`not` is not handled"), "{err}");
}
